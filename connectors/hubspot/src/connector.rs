//! [`HubspotConnector`]: the contract's `Connector` for HubSpot.
//!
//! It holds the one HTTP client every call goes through, and the little it
//! learns from HubSpot once per connector (the deal pipelines' stages, the
//! lifecycle stage options). Reading is in `pull`, writing in `writeback`.

use crate::dialect::HubspotDialect;
use crate::settings::{HubspotAuth, HubspotCredentials, HubspotSettings};
use journeyd_connector::connector::{Connector, PullFrom};
use journeyd_connector::http::{
    AuthSettings, Bucket, Call, CallStats, HttpClient, HttpSettings, Resend, Target,
};
use journeyd_connector::traced::{page_span, traced, write_span};
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ConnectorError, ConnectorName, CrmRecord, ObjectKind,
    Owner, Page, RecordId,
};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::OnceCell;

const OBJECTS: [ObjectKind; 3] = [ObjectKind::Deal, ObjectKind::Contact, ObjectKind::Account];

pub struct HubspotConnector {
    name: ConnectorName,
    pub(crate) settings: HubspotSettings,
    http: HttpClient,
    /// Deal stage ids in display order, read on first use.
    pub(crate) pipelines: OnceCell<Arc<Vec<String>>>,
    /// `lifecyclestage` option values in display order, for contacts and
    /// companies, read on first use.
    pub(crate) lifecycle_options: [OnceCell<Arc<Vec<String>>>; 2],
}

impl HubspotConnector {
    /// A connector named `name`. Fails when the credentials do not fit the
    /// configured kind of authentication, or the HTTP client refuses the
    /// settings (a plain-http URL to a host that is not loopback).
    pub fn new(
        name: ConnectorName,
        settings: HubspotSettings,
        credentials: HubspotCredentials,
    ) -> Result<Self, ConnectorError> {
        let auth = match (&settings.auth, credentials) {
            (HubspotAuth::PrivateApp, HubspotCredentials::PrivateApp { token }) => {
                AuthSettings::Bearer(token)
            }
            (
                HubspotAuth::OAuth {
                    client_id,
                    token_url,
                },
                HubspotCredentials::OAuth {
                    client_secret,
                    refresh_token,
                    store,
                },
            ) => AuthSettings::RefreshToken {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret,
                refresh_token,
                store,
            },
            (configured, _) => {
                return Err(ConnectorError::Auth {
                    connector: name.to_string(),
                    reason: format!(
                        "the credentials given do not fit the configured {} authentication",
                        match configured {
                            HubspotAuth::PrivateApp => "private app",
                            HubspotAuth::OAuth { .. } => "oauth",
                        }
                    ),
                });
            }
        };
        let http = HttpClient::new(
            HttpSettings {
                connector: name.clone(),
                base_url: settings.api_url.clone(),
                auth,
                limits: settings.limits,
                retry: settings.retry,
                instance: None,
            },
            HubspotDialect,
        )?;
        Ok(Self {
            name,
            settings,
            http,
            pipelines: OnceCell::new(),
            lifecycle_options: [OnceCell::new(), OnceCell::new()],
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

    pub(crate) async fn get<T: DeserializeOwned>(
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
        .map(|(body, _)| body)
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: String,
        body: &impl Serialize,
        bucket: Bucket,
    ) -> Result<T, ConnectorError> {
        self.post_with_status(route, path, body, bucket, Resend::Always)
            .await
            .map(|(body, _)| body)
    }

    /// A POST that creates records: never sent twice once HubSpot may have
    /// received it (see [`Resend::OnlyIfNotReceived`]).
    pub(crate) async fn post_once<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: String,
        body: &impl Serialize,
    ) -> Result<T, ConnectorError> {
        self.post_with_status(
            route,
            path,
            body,
            Bucket::General,
            Resend::OnlyIfNotReceived,
        )
        .await
        .map(|(body, _)| body)
    }

    /// A POST whose caller needs the status (200, 201 or 207).
    pub(crate) async fn post_with_status<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: String,
        body: &impl Serialize,
        bucket: Bucket,
        resend: Resend,
    ) -> Result<(T, u16), ConnectorError> {
        let json = serde_json::to_value(body).map_err(|err| ConnectorError::Malformed {
            connector: self.name.to_string(),
            route: route.to_owned(),
            reason: format!("could not build the request body: {err}"),
        })?;
        self.send(Call {
            method: Method::POST,
            route,
            target: Target::Path(path),
            query: Vec::new(),
            json: Some(json),
            raw: None,
            bucket,
            resend,
            headers: Vec::new(),
        })
        .await
    }

    async fn send<T: DeserializeOwned>(&self, call: Call) -> Result<(T, u16), ConnectorError> {
        let route = call.route;
        let response = self.http.send(call).await?;
        let body =
            serde_json::from_slice(&response.body).map_err(|err| ConnectorError::Malformed {
                connector: self.name.to_string(),
                route: route.to_owned(),
                reason: err.to_string(),
            })?;
        Ok((body, response.status))
    }
}

/// HubSpot's name for `object` in API paths.
pub(crate) fn object_type(
    connector: &HubspotConnector,
    object: ObjectKind,
) -> Result<&'static str, ConnectorError> {
    match object {
        ObjectKind::Deal => Ok("deals"),
        ObjectKind::Contact => Ok("contacts"),
        ObjectKind::Account => Ok("companies"),
        ObjectKind::Lead => Err(ConnectorError::Unsupported {
            connector: connector.name.to_string(),
            object,
        }),
    }
}

impl Connector for HubspotConnector {
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

    /// HubSpot gives a task no id the client chooses, so a create cannot
    /// be made idempotent: an unconfirmed create is looked up by its key,
    /// once the search index has had time to show it.
    fn recovery(&self) -> journeyd_connector::Recovery {
        // A lost create reached HubSpot at most the send window after it
        // was recorded, and shows in search the index's lag after that.
        journeyd_connector::Recovery::LookUp {
            settle: self.settings.retry.send_window + self.settings.search_lag,
        }
    }

    fn find_applied(
        &self,
        keys: &[ActionKey],
        // Keys are unique search tokens, so a task from before `since`
        // carrying one is not expected; narrowing the search by
        // `hs_createdate` would instead risk missing a write under clock
        // skew between journeyd and HubSpot.
        _since: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send {
        let span = write_span(&self.name);
        traced(span, self.find_applied_keys(keys), Vec::len)
    }
}
