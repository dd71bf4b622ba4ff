//! [`SalesforceConnector`]: the contract's `Connector` for Salesforce.
//!
//! It holds the one HTTP client every call goes through, whose base URL is
//! the `instance_url` of the token response (checked against
//! `instance_hosts`), and the daily API usage Salesforce last reported:
//! once that reaches `daily_stop_share`, no new call is started. Reading
//! is in `pull`, writing in `writeback`.

use crate::dialect::{SalesforceDialect, Usage};
use crate::settings::{SalesforceAuth, SalesforceCredentials, SalesforceSettings};
use crate::wire::QueryPage;
use journeyd_connector::connector::{Connector, PullFrom, Recovery};
use journeyd_connector::http::{
    AuthSettings, Bucket, Call, CallStats, HttpClient, HttpSettings, InstanceCheck, Resend, Target,
};
use journeyd_connector::traced::{page_span, traced, write_span};
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ConnectorError, ConnectorName, CrmRecord, ObjectKind,
    Owner, Page, RecordId,
};
use reqwest::Method;
use reqwest::header::HeaderName;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;

const OBJECTS: [ObjectKind; 4] = [
    ObjectKind::Lead,
    ObjectKind::Contact,
    ObjectKind::Account,
    ObjectKind::Deal,
];

/// Route templates: what spans and call counts name (never a query).
pub(crate) const QUERY_ROUTE: &str = "/services/data/{version}/query";
pub(crate) const QUERY_ALL_ROUTE: &str = "/services/data/{version}/queryAll";
pub(crate) const NEXT_ROUTE: &str = "/services/data/{version}/query/{locator}";
pub(crate) const DELETED_ROUTE: &str = "/services/data/{version}/sobjects/{sobject}/deleted/";
pub(crate) const COLLECTIONS_ROUTE: &str = "/services/data/{version}/composite/sobjects";
pub(crate) const UPSERT_ROUTE: &str =
    "/services/data/{version}/composite/sobjects/Task/{external_id_field}";

pub struct SalesforceConnector {
    name: ConnectorName,
    pub(crate) settings: SalesforceSettings,
    http: HttpClient,
    usage: Arc<Usage>,
}

impl SalesforceConnector {
    /// A connector named `name`. Fails when the credentials do not fit the
    /// configured kind of authentication, a configured field name is not a
    /// plain API name, or the HTTP client refuses the settings.
    pub fn new(
        name: ConnectorName,
        settings: SalesforceSettings,
        credentials: SalesforceCredentials,
    ) -> Result<Self, ConnectorError> {
        let refuse = |reason: String| ConnectorError::Auth {
            connector: name.to_string(),
            reason,
        };
        let token_url = settings
            .login_url
            .join("/services/oauth2/token")
            .map_err(|_| refuse("the login url cannot take a token path".into()))?;
        let auth = match (&settings.auth, credentials) {
            (
                SalesforceAuth::JwtBearer {
                    client_id,
                    username,
                },
                SalesforceCredentials::JwtBearer { private_key },
            ) => AuthSettings::JwtBearer {
                token_url,
                client_id: client_id.clone(),
                subject: username.clone(),
                audience: settings
                    .jwt_audience
                    .clone()
                    .unwrap_or_else(|| settings.login_url.origin().ascii_serialization()),
                private_key,
            },
            (
                SalesforceAuth::RefreshToken { client_id },
                SalesforceCredentials::RefreshToken {
                    client_secret,
                    refresh_token,
                    store,
                },
            ) => AuthSettings::RefreshToken {
                token_url,
                client_id: client_id.clone(),
                client_secret,
                refresh_token,
                store,
            },
            (configured, _) => {
                return Err(refuse(format!(
                    "the credentials given do not fit the configured {} authentication",
                    match configured {
                        SalesforceAuth::JwtBearer { .. } => "jwt bearer",
                        SalesforceAuth::RefreshToken { .. } => "refresh token",
                    }
                )));
            }
        };
        let configured_fields = settings
            .properties
            .values()
            .flatten()
            .chain(&settings.lifecycle_field)
            .chain(&settings.task_external_id)
            .chain(&settings.account_stage_field);
        for field in configured_fields {
            if !crate::soql::is_field_name(field) {
                return Err(ConnectorError::Malformed {
                    connector: name.to_string(),
                    route: "settings".into(),
                    reason: format!("{field:?} is not a salesforce field api name"),
                });
            }
        }
        if !settings
            .api_version
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            return Err(ConnectorError::Malformed {
                connector: name.to_string(),
                route: "settings".into(),
                reason: format!(
                    "{:?} is not an api version like v62.0",
                    settings.api_version
                ),
            });
        }
        let usage = Arc::new(Usage::default());
        let http = HttpClient::new(
            HttpSettings {
                connector: name.clone(),
                // Never called: calls go to the instance the token names.
                base_url: settings.login_url.clone(),
                auth,
                limits: settings.limits,
                retry: settings.retry,
                instance: Some(InstanceCheck {
                    allowed_hosts: settings.instance_hosts.clone(),
                }),
            },
            SalesforceDialect {
                usage: Arc::clone(&usage),
            },
        )?;
        Ok(Self {
            name,
            settings,
            http,
            usage,
        })
    }

    /// What the HTTP client has done so far (requests by route, retries,
    /// token refreshes).
    /// The daily API usage Salesforce last reported: (used, allowed).
    pub fn daily_usage(&self) -> Option<(u64, u64)> {
        self.usage.share()
    }

    /// Ends every wait of this connector's calls (the rate limit, a
    /// backoff, a `Retry-After`) once `stop` turns `true`; see
    /// [`HttpClient::stop_on`].
    pub fn stop_waits_on(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        self.http.stop_on(stop);
    }

    pub fn stats(&self) -> CallStats {
        self.http.stats()
    }

    pub(crate) fn name_str(&self) -> String {
        self.name.to_string()
    }

    /// The identity URL the token response named (`id`), obtaining a token
    /// if none is held yet.
    pub(crate) async fn identity(&self) -> Result<Option<String>, ConnectorError> {
        self.http.identity().await
    }

    /// The instance the token response named (`instance_url`), obtaining
    /// a token if none is held yet.
    pub(crate) async fn instance(&self) -> Result<Option<url::Url>, ConnectorError> {
        self.http.instance().await
    }

    /// `/services/data/v62.0` + `tail`.
    pub(crate) fn data_path(&self, tail: &str) -> String {
        format!("/services/data/{}{tail}", self.settings.api_version)
    }

    /// Refuses to start a call once the reported daily usage has reached
    /// the configured share of the allowance.
    fn check_allowance(&self) -> Result<(), ConnectorError> {
        if let Some((used, max)) = self.usage.share() {
            #[allow(clippy::cast_precision_loss)]
            let share = used as f64 / max as f64;
            if share >= self.settings.daily_stop_share {
                tracing::warn!(
                    connector = %self.name,
                    used,
                    max,
                    stop_share = self.settings.daily_stop_share,
                    "daily api allowance share reached, no new call started"
                );
                return Err(ConnectorError::AllowanceExhausted {
                    connector: self.name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Runs one SOQL query (`all`: `queryAll`, deleted rows included) and
    /// returns its first page.
    pub(crate) async fn query(&self, soql: &str, all: bool) -> Result<QueryPage, ConnectorError> {
        let (route, tail) = if all {
            (QUERY_ALL_ROUTE, "/queryAll")
        } else {
            (QUERY_ROUTE, "/query")
        };
        self.get_page(route, self.data_path(tail), vec![("q".into(), soql.into())])
            .await
    }

    /// The page a `nextRecordsUrl` names: a path under this API's
    /// `/services/data/`, nothing else.
    pub(crate) async fn next_page(&self, link: &str) -> Result<QueryPage, ConnectorError> {
        let valid = link.starts_with("/services/data/")
            && !link.contains(['?', '#'])
            && !link.split('/').any(|part| part == "..");
        if !valid {
            return Err(ConnectorError::Malformed {
                connector: self.name_str(),
                route: NEXT_ROUTE.into(),
                reason: "a next-page link is not a query path".into(),
            });
        }
        self.get_page(NEXT_ROUTE, link.to_owned(), Vec::new()).await
    }

    /// Every row of a query, following `nextRecordsUrl` to the end; for
    /// small side queries (the lookups of what was written).
    pub(crate) async fn query_to_end(
        &self,
        soql: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ConnectorError> {
        let mut page = self.query(soql, false).await?;
        let mut rows = std::mem::take(&mut page.records);
        // Bounded: a server that never says done cannot hold the run forever.
        for _ in 0..MAX_SIDE_PAGES {
            match (page.done, page.next_records_url.take()) {
                (false, Some(link)) => {
                    page = self.next_page(&link).await?;
                    rows.append(&mut page.records);
                }
                _ => return Ok(rows),
            }
        }
        Err(ConnectorError::Malformed {
            connector: self.name_str(),
            route: NEXT_ROUTE.into(),
            reason: format!("a side query did not end within {MAX_SIDE_PAGES} pages"),
        })
    }

    async fn get_page(
        &self,
        route: &'static str,
        path: String,
        query: Vec<(String, String)>,
    ) -> Result<QueryPage, ConnectorError> {
        self.send(Call {
            method: Method::GET,
            route,
            target: Target::Path(path),
            query,
            json: None,
            raw: None,
            bucket: Bucket::General,
            resend: Resend::Always,
            headers: vec![(
                HeaderName::from_static("sforce-query-options"),
                // Salesforce takes 200..2000; the daemon's config checks the range.
                format!("batchSize={}", self.settings.query_batch),
            )],
        })
        .await
    }

    /// A JSON read outside SOQL (getDeleted).
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: String,
        query: Vec<(String, String)>,
    ) -> Result<T, ConnectorError> {
        self.send(Call {
            method: Method::GET,
            route,
            target: Target::Path(path),
            query,
            json: None,
            raw: None,
            bucket: Bucket::General,
            resend: Resend::Always,
            headers: Vec::new(),
        })
        .await
    }

    /// A JSON write; `resend` says whether it may go twice.
    pub(crate) async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        route: &'static str,
        path: String,
        body: serde_json::Value,
        resend: Resend,
    ) -> Result<T, ConnectorError> {
        self.send(Call {
            method,
            route,
            target: Target::Path(path),
            query: Vec::new(),
            json: Some(body),
            raw: None,
            bucket: Bucket::General,
            resend,
            headers: Vec::new(),
        })
        .await
    }

    async fn send<T: DeserializeOwned>(&self, call: Call) -> Result<T, ConnectorError> {
        self.check_allowance()?;
        let route = call.route;
        let response = self.http.send(call).await?;
        serde_json::from_slice(&response.body).map_err(|err| ConnectorError::Malformed {
            connector: self.name.to_string(),
            route: route.to_owned(),
            reason: err.to_string(),
        })
    }
}

/// Pages a side query, or one parent's child rows, may take before they
/// are deemed endless.
pub(crate) const MAX_SIDE_PAGES: usize = 1000;

/// Salesforce's name for `object`.
pub(crate) fn sobject(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Lead => "Lead",
        ObjectKind::Contact => "Contact",
        ObjectKind::Account => "Account",
        ObjectKind::Deal => "Opportunity",
    }
}

impl Connector for SalesforceConnector {
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
        traced(span, self.deletions_page(object, cursor), |page| {
            page.items.len()
        })
    }

    fn apply(
        &self,
        actions: &[ActionRequest],
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send {
        let span = write_span(&self.name);
        traced(span, self.apply_actions(actions), Vec::len)
    }

    /// With a Task external-id field every create is an upsert by its key,
    /// so an unconfirmed write is simply sent again; without one, creates
    /// are looked up once Salesforce has had `settle` to finish them.
    fn recovery(&self) -> Recovery {
        match self.settings.task_external_id {
            Some(_) => Recovery::Resend,
            // A lost create reached Salesforce at most the send window after
            // it was recorded, and may run on the settle time after that.
            None => Recovery::LookUp {
                settle: self.settings.retry.send_window + self.settings.settle,
            },
        }
    }

    fn find_applied(
        &self,
        keys: &[ActionKey],
        since: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send {
        let span = write_span(&self.name);
        traced(span, self.find_applied_keys(keys, since), Vec::len)
    }
}
