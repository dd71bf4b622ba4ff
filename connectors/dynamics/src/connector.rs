//! [`DynamicsConnector`]: the contract's `Connector` for Dynamics 365.
//!
//! It holds the one HTTP client every call goes through (Entra client
//! credentials, 6,000 requests per 300 s, retries per the dialect), a
//! semaphore that keeps at most `max_concurrent` calls in flight, and what
//! it learns once per life: the teams (for owners and owner binds) and the
//! option sets of choice columns it writes. Every data call carries the
//! OData headers (facts 2.1); every URL is built from the API root, and a
//! link Dataverse hands back is followed only if it stays under that root
//! and the entity set it was asked of. Reading is in `pull`, writing in
//! `writeback`.

use crate::batch;
use crate::dialect::DynamicsDialect;
use crate::normalize::Team;
use crate::settings::{DynamicsCredentials, DynamicsSettings};
use crate::wire::{Collection, Row};
use journeyd_connector::connector::{Connector, PullFrom, Recovery};
use journeyd_connector::http::{
    AuthSettings, Bucket, Call, CallStats, HttpClient, HttpResponse, HttpSettings, Resend, Target,
};
use journeyd_connector::traced::{page_span, traced, write_span};
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ConnectorError, ConnectorName, CrmRecord, ObjectKind,
    Owner, Page, RecordId,
};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderName};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Semaphore;

const OBJECTS: [ObjectKind; 4] = [
    ObjectKind::Lead,
    ObjectKind::Contact,
    ObjectKind::Account,
    ObjectKind::Deal,
];

/// Route templates: what spans and call counts name (never a query).
pub(crate) const READ_ROUTE: &str = "/api/data/{version}/{entity_set}";
pub(crate) const NEXT_ROUTE: &str = "/api/data/{version}/{entity_set}?$skiptoken";
pub(crate) const DELTA_ROUTE: &str = "/api/data/{version}/{entity_set}?$deltatoken";
pub(crate) const BATCH_ROUTE: &str = "/api/data/{version}/$batch";
pub(crate) const METADATA_ROUTE: &str =
    "/api/data/{version}/EntityDefinitions({table})/Attributes({column})";

/// Pages a side read (a team list, one part's tasks) may take before it
/// is deemed endless.
pub(crate) const MAX_SIDE_PAGES: usize = 1000;

/// Dataverse's cap on `odata.maxpagesize` and on requests per `$batch`.
const MAX_PAGE_SIZE: u32 = 5000;
const MAX_BATCH: usize = 1000;

/// The option values and labels of a choice column.
pub(crate) type Options = Arc<Vec<(i64, String)>>;

pub struct DynamicsConnector {
    name: ConnectorName,
    pub(crate) settings: DynamicsSettings,
    http: HttpClient,
    permits: Semaphore,
    /// `{url}/api/data/{version}/`.
    root: String,
    /// The teams with their members, read once.
    teams: tokio::sync::Mutex<Option<Arc<Vec<Team>>>>,
    /// Owners seen owning a row as a team (the lookup's table annotation).
    seen_teams: Mutex<BTreeSet<String>>,
    /// Option sets by (table, column); `None`: the column is no choice.
    choices: tokio::sync::Mutex<BTreeMap<(String, String), Option<Options>>>,
}

impl DynamicsConnector {
    /// A connector named `name`. Fails when a configured column name is
    /// not a plain logical name, the tenant or API version would not make
    /// a URL, or the HTTP client refuses the settings.
    pub fn new(
        name: ConnectorName,
        settings: DynamicsSettings,
        credentials: DynamicsCredentials,
    ) -> Result<Self, ConnectorError> {
        let refuse = |reason: String| ConnectorError::Malformed {
            connector: name.to_string(),
            route: "settings".into(),
            reason,
        };
        let columns = settings
            .properties
            .values()
            .flatten()
            .chain([&settings.deal_stage_field, &settings.lead_stage_field])
            .chain(&settings.account_stage_field)
            .chain(&settings.lifecycle_field)
            .chain(&settings.task_alternate_key);
        for column in columns {
            if !crate::odata::is_column(column) {
                return Err(refuse(format!(
                    "{column:?} is not a dataverse column logical name"
                )));
            }
        }
        let version_ok = settings
            .api_version
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !version_ok {
            return Err(refuse(format!(
                "{:?} is not an api version like v9.2",
                settings.api_version
            )));
        }
        if settings.url.query().is_some() || settings.url.fragment().is_some() {
            return Err(refuse(
                "the environment url carries a query or fragment".into(),
            ));
        }
        let token_url = settings
            .token_url()
            .map_err(|reason| ConnectorError::Auth {
                connector: name.to_string(),
                reason,
            })?;
        let root = settings.api_root();
        let base_url = url::Url::parse(&root)
            .map_err(|_| refuse("the environment url cannot take the api path".into()))?;
        let http = HttpClient::new(
            HttpSettings {
                connector: name.clone(),
                base_url,
                auth: AuthSettings::ClientCredentials {
                    token_url,
                    client_id: settings.client_id.clone(),
                    client_secret: credentials.client_secret,
                    scopes: vec![settings.token_scope()],
                },
                limits: settings.limits,
                retry: settings.retry,
                instance: None,
            },
            DynamicsDialect,
        )?;
        Ok(Self {
            permits: Semaphore::new(settings.max_concurrent.get()),
            name,
            settings,
            http,
            root,
            teams: tokio::sync::Mutex::new(None),
            seen_teams: Mutex::new(BTreeSet::new()),
            choices: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Ends every wait of this connector's calls (the rate limit, a
    /// backoff, a `Retry-After`) once `stop` turns `true`; see
    /// [`HttpClient::stop_on`].
    pub fn stop_waits_on(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        self.http.stop_on(stop);
    }

    /// What the HTTP client has done so far (requests by route, retries,
    /// token refreshes).
    pub fn stats(&self) -> CallStats {
        self.http.stats()
    }

    pub(crate) fn name_str(&self) -> String {
        self.name.to_string()
    }

    /// `{root}{tail}`: an absolute URL under the API root.
    pub(crate) fn url(&self, tail: &str) -> String {
        format!("{}{tail}", self.root)
    }

    /// Rows asked per page.
    pub(crate) fn page_size(&self) -> u32 {
        self.settings.page_size.get().min(MAX_PAGE_SIZE)
    }

    /// Requests per `$batch`.
    pub(crate) fn batch_size(&self) -> usize {
        self.settings.batch_limit.get().min(MAX_BATCH)
    }

    /// The `Prefer` of a read: paged, annotated, and tracking changes when
    /// `tracking`.
    pub(crate) fn prefer(&self, tracking: bool) -> String {
        let read = format!(
            "odata.maxpagesize={},odata.include-annotations=\"*\"",
            self.page_size()
        );
        if tracking {
            format!("odata.track-changes,{read}")
        } else {
            read
        }
    }

    /// Whether `link` is a URL under the API root on entity set `set`.
    pub(crate) fn is_link_to(&self, link: &str, set: &str) -> bool {
        link.strip_prefix(&self.root)
            .and_then(|rest| rest.strip_prefix(set))
            .is_some_and(|rest| rest.starts_with('?') && !rest.contains('#'))
    }

    /// A malformed-answer error on `route`.
    pub(crate) fn malformed(&self, route: &str, reason: impl Into<String>) -> ConnectorError {
        ConnectorError::Malformed {
            connector: self.name_str(),
            route: route.to_owned(),
            reason: reason.into(),
        }
    }

    /// One page of a collection at `url` (a first page, a next link or a
    /// delta link), with `prefer`.
    pub(crate) async fn collection(
        &self,
        route: &'static str,
        url: String,
        prefer: String,
    ) -> Result<Collection, ConnectorError> {
        self.get_json(route, url, Some(prefer)).await
    }

    /// A JSON GET.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        route: &'static str,
        url: String,
        prefer: Option<String>,
    ) -> Result<T, ConnectorError> {
        let mut headers = odata_headers();
        headers.push((HeaderName::from_static("if-none-match"), "null".into()));
        if let Some(prefer) = prefer {
            headers.push((HeaderName::from_static("prefer"), prefer));
        }
        let response = self
            .send(Call {
                method: Method::GET,
                route,
                target: Target::Absolute(url),
                query: Vec::new(),
                json: None,
                raw: None,
                bucket: Bucket::General,
                resend: Resend::Always,
                headers,
            })
            .await?;
        serde_json::from_slice(&response.body).map_err(|err| self.malformed(route, err.to_string()))
    }

    /// Sends `requests` as one `$batch` (`Prefer: odata.continue-on-error`)
    /// and reads its answer part by part.
    pub(crate) async fn batch(
        &self,
        requests: &[batch::Request],
        resend: Resend,
    ) -> Result<Vec<batch::Answer>, ConnectorError> {
        let boundary = batch::new_boundary();
        let body = batch::build(&boundary, requests);
        let mut headers = odata_headers();
        headers.push((
            HeaderName::from_static("prefer"),
            "odata.continue-on-error".into(),
        ));
        let response = self
            .send(Call {
                method: Method::POST,
                route: BATCH_ROUTE,
                target: Target::Absolute(self.url("$batch")),
                query: Vec::new(),
                json: None,
                raw: Some((batch::content_type(&boundary), body.into())),
                bucket: Bucket::General,
                resend,
                headers,
            })
            .await?;
        let content_type = response
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        batch::parse(content_type, &response.body)
            .map_err(|reason| self.malformed(BATCH_ROUTE, reason))
    }

    /// Every row the GETs at `urls` return: one `$batch` per `batch_limit`
    /// of them, each part's further pages followed by plain GETs, and a
    /// part that failed inside the batch sent again on its own (where the
    /// dialect's retries apply).
    pub(crate) async fn get_many(
        &self,
        route: &'static str,
        urls: Vec<String>,
    ) -> Result<Vec<Row>, ConnectorError> {
        let mut rows = Vec::new();
        for chunk in urls.chunks(self.batch_size()) {
            let requests: Vec<batch::Request> = chunk
                .iter()
                .map(|url| batch::Request {
                    method: "GET",
                    url: url.clone(),
                    headers: vec![
                        ("Accept", "application/json".into()),
                        ("Prefer", self.prefer(false)),
                    ],
                    json: None,
                })
                .collect();
            let answers = self.batch(&requests, Resend::Always).await?;
            if answers.len() != requests.len() {
                return Err(self.malformed(
                    BATCH_ROUTE,
                    format!(
                        "{} answers came back for {} reads",
                        answers.len(),
                        requests.len()
                    ),
                ));
            }
            for (url, answer) in chunk.iter().zip(answers) {
                let mut page: Collection = if (200..300).contains(&answer.status) {
                    serde_json::from_str(&answer.body)
                        .map_err(|err| self.malformed(BATCH_ROUTE, err.to_string()))?
                } else {
                    tracing::debug!(connector = %self.name, route, status = answer.status,
                        "a read inside a batch failed; sent again on its own");
                    self.collection(route, url.clone(), self.prefer(false))
                        .await?
                };
                for _ in 0..MAX_SIDE_PAGES {
                    rows.extend(page.value.into_iter().filter_map(|row| match row {
                        serde_json::Value::Object(row) => Some(row),
                        _ => None,
                    }));
                    match page.next_link.take() {
                        Some(next) if next.starts_with(&self.root) => {
                            page = self
                                .collection(NEXT_ROUTE, next, self.prefer(false))
                                .await?;
                        }
                        Some(_) => {
                            return Err(self.malformed(route, "a next link leaves the api root"));
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(rows)
    }

    async fn send(&self, call: Call) -> Result<HttpResponse, ConnectorError> {
        // Dataverse refuses calls past its concurrency limit outright.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.malformed(call.route, "the connector is shutting down"))?;
        self.http.send(call).await
    }

    /// The teams and their members, read once per connector.
    pub(crate) async fn teams(&self) -> Result<Arc<Vec<Team>>, ConnectorError> {
        let mut cached = self.teams.lock().await;
        if let Some(teams) = &*cached {
            return Ok(Arc::clone(teams));
        }
        let query = crate::odata::query_string(&[
            ("$select", "name,teamid".into()),
            (
                "$expand",
                "teammembership_association($select=systemuserid)".into(),
            ),
        ]);
        let mut page = self
            .collection(
                READ_ROUTE,
                self.url(&format!("teams?{query}")),
                self.prefer(false),
            )
            .await?;
        let mut teams = Vec::new();
        for _ in 0..MAX_SIDE_PAGES {
            teams.extend(
                page.value
                    .iter()
                    .filter_map(serde_json::Value::as_object)
                    .filter_map(crate::normalize::team),
            );
            match page.next_link.take() {
                Some(next) if self.is_link_to(&next, "teams") => {
                    page = self
                        .collection(NEXT_ROUTE, next, self.prefer(false))
                        .await?;
                }
                Some(_) => {
                    return Err(self.malformed(NEXT_ROUTE, "a next link is not one of teams"));
                }
                None => break,
            }
        }
        let teams = Arc::new(teams);
        *cached = Some(Arc::clone(&teams));
        Ok(teams)
    }

    /// Notes that `owner` owns a row as a team.
    pub(crate) fn saw_team(&self, owner: &str) {
        self.seen_teams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(owner.to_owned());
    }

    /// Whether `owner` is known as a team (seen owning a row as one, or
    /// among the teams read).
    pub(crate) async fn is_team(&self, owner: &str) -> Result<bool, ConnectorError> {
        let seen = self
            .seen_teams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(owner);
        Ok(seen || self.teams().await?.iter().any(|team| team.id == owner))
    }

    /// The cached option set of `column` on `table`, reading it on first use.
    pub(crate) async fn options(
        &self,
        table: &'static str,
        column: &str,
    ) -> Result<Option<Options>, ConnectorError> {
        let key = (table.to_owned(), column.to_owned());
        let mut cache = self.choices.lock().await;
        if let Some(known) = cache.get(&key) {
            return Ok(known.clone());
        }
        let read = self.read_options(table, column).await?;
        cache.insert(key, read.clone());
        Ok(read)
    }

    async fn read_options(
        &self,
        table: &'static str,
        column: &str,
    ) -> Result<Option<Options>, ConnectorError> {
        let cast = match column {
            "statuscode" => "StatusAttributeMetadata",
            "statecode" => "StateAttributeMetadata",
            _ => "PicklistAttributeMetadata",
        };
        let url = self.url(&format!(
            "EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')/Microsoft.Dynamics.CRM.{cast}?{}",
            crate::odata::query_string(&[
                ("$select", "LogicalName".into()),
                ("$expand", "OptionSet($select=Options)".into()),
            ])
        ));
        match self
            .get_json::<crate::wire::AttributeMetadata>(METADATA_ROUTE, url, None)
            .await
        {
            Ok(metadata) => Ok(Some(Arc::new(metadata.options()))),
            // Not a choice of that kind (or no such column): written as it is.
            Err(ConnectorError::Api { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// The OData version headers every data call carries (facts 2.1);
/// `Accept: application/json` comes from the client.
fn odata_headers() -> Vec<(HeaderName, String)> {
    vec![
        (HeaderName::from_static("odata-maxversion"), "4.0".into()),
        (HeaderName::from_static("odata-version"), "4.0".into()),
    ]
}

impl Connector for DynamicsConnector {
    fn name(&self) -> &ConnectorName {
        &self.name
    }

    fn objects(&self) -> &[ObjectKind] {
        &OBJECTS
    }

    fn owners(
        &self,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Page<Owner>, ConnectorError>> + Send {
        let span = page_span(&self.name, &"owner");
        traced(span, self.owners_page(cursor), |page| page.items.len())
    }

    fn pull(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> impl Future<Output = Result<Page<CrmRecord>, ConnectorError>> + Send {
        let span = page_span(&self.name, &object);
        traced(span, self.pull_page(object, from), |page| page.items.len())
    }

    fn deletions(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Page<RecordId>, ConnectorError>> + Send {
        let span = page_span(&self.name, &object);
        // Change tracking sends deletions in line with the changes (see
        // `Page::removed`); a full pull is reconciled by absence.
        let _ = cursor;
        traced(
            span,
            async { Ok(Page::default()) },
            |page: &Page<RecordId>| page.items.len(),
        )
    }

    fn apply(
        &self,
        actions: &[ActionRequest],
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send {
        let span = write_span(&self.name);
        traced(span, self.apply_actions(actions), Vec::len)
    }

    /// Every write is idempotent by construction: a task is created by the
    /// primary key journeyd chose for it, insert only (see `writeback`).
    fn recovery(&self) -> Recovery {
        Recovery::Resend
    }

    /// Looks up creates written by earlier versions (see `writeback`);
    /// `since` bounds nothing, since the server's clock is not ours.
    fn find_applied(
        &self,
        keys: &[ActionKey],
        _since: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send {
        let span = write_span(&self.name);
        traced(span, self.find_applied_keys(keys), Vec::len)
    }
}
