//! What the daemon's config tells the Dynamics 365 connector. Every value
//! has been validated by the daemon's config module (the connector checks
//! column names and the tenant again, since they end up in URLs); the
//! client secret arrives separately, at startup, as [`DynamicsCredentials`].

use journeyd_connector::ObjectKind;
use journeyd_connector::http::{RateLimits, RetryPolicy};
use journeyd_connector::secret::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct DynamicsSettings {
    /// The environment URL, `https://ORG.crm.dynamics.com` (or an emulator
    /// on loopback). The API root is `{url}/api/data/{api_version}/`.
    pub url: Url,
    /// `v9.2`.
    pub api_version: String,
    /// `https://login.microsoftonline.com`; tokens are asked for at
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub authority: Url,
    /// The Entra tenant: its id or one of its domain names.
    pub tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The one resource scope asked for; `None`: `{origin of url}/.default`.
    pub scope: Option<String>,
    /// Client-side pacing: Dataverse allows 6,000 requests per user in a
    /// sliding 300-second window (facts 2.5).
    pub limits: RateLimits,
    pub retry: RetryPolicy,
    /// Calls in flight at once; Dataverse refuses the 53rd (facts 2.5).
    pub max_concurrent: NonZeroUsize,
    /// Rows asked per page (`Prefer: odata.maxpagesize`), at most 5,000.
    pub page_size: NonZeroU32,
    /// Requests per `$batch`, at most 1,000.
    pub batch_limit: NonZeroUsize,
    /// Deal ids per task-lookup `$filter` (one GET part of a `$batch`):
    /// each id adds about 70 characters to the part's URL.
    pub task_lookup_ids: NonZeroUsize,
    /// How far before the stored watermark a `modifiedon` read starts.
    pub overlap: Duration,
    /// Objects read by change tracking (a full read that ends in a delta
    /// link, then only what changed); the table must have "Track changes"
    /// on. The rest are read by a `modifiedon` watermark.
    pub change_tracking: BTreeSet<ObjectKind>,
    /// Columns the daemon's field map names, by object, read on every pull
    /// into `CrmRecord::fields` as their raw values (a choice as its
    /// option value). Per object: a `$select` naming a column its table
    /// lacks fails whole (400).
    pub properties: BTreeMap<ObjectKind, Vec<String>>,
    /// The opportunity column whose label is an open deal's stage:
    /// `salesstage`. A won or lost opportunity is in stage `Won` or `Lost`.
    pub deal_stage_field: String,
    /// The lead column whose label is a lead's stage: `statuscode`.
    pub lead_stage_field: String,
    /// The account column whose label is an account's journey stage
    /// (`new_customerstage`), if accounts are in the journey.
    pub account_stage_field: Option<String>,
    /// The column holding a lifecycle status, if any: read by its label on
    /// the objects whose `properties` list it, written by its option value.
    pub lifecycle_field: Option<String>,
    /// A task column with an alternate key over it (`new_journeydkey`):
    /// each task's action key is written there too, so admins can find it
    /// by that key. Tasks are created by their primary key either way (the
    /// v5 UUID of the action key, see `task_id`); the description's last
    /// line carries the key in every case.
    pub task_alternate_key: Option<String>,
    /// Error codes meaning a delta link has expired (`0x80044352`).
    pub expired_delta_codes: Vec<String>,
}

/// The secret, read at startup from the environment or systemd credentials.
#[derive(Clone)]
pub struct DynamicsCredentials {
    pub client_secret: SecretString,
}

impl DynamicsSettings {
    /// Dataverse's published limits against the environment at `url`:
    /// pages of 5,000, batches of 1,000, 6,000 requests per 300 s, 52 at
    /// once; every object read by change tracking; the standard stage
    /// columns.
    pub fn for_url(url: Url, tenant: impl Into<String>, client_id: impl Into<String>) -> Self {
        let nz = |n: u32| NonZeroU32::new(n).expect("a non-zero literal");
        let nzu = |n: usize| NonZeroUsize::new(n).expect("a non-zero literal");
        Self {
            url,
            api_version: "v9.2".into(),
            authority: Url::parse("https://login.microsoftonline.com").expect("a valid url"),
            tenant: tenant.into(),
            client_id: client_id.into(),
            scope: None,
            limits: RateLimits {
                general: (nz(6000), Duration::from_secs(300)),
                search: None,
            },
            retry: RetryPolicy {
                max_attempts: nz(6),
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(60),
                budget: 500,
                timeout: Duration::from_secs(120),
                send_window: Duration::from_secs(20),
                max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
                max_body: RetryPolicy::DEFAULT_MAX_BODY,
            },
            max_concurrent: nzu(52),
            page_size: nz(5000),
            batch_limit: nzu(1000),
            task_lookup_ids: nzu(200),
            overlap: Duration::from_secs(60),
            change_tracking: ObjectKind::ALL.into_iter().collect(),
            properties: BTreeMap::new(),
            deal_stage_field: "salesstage".into(),
            lead_stage_field: "statuscode".into(),
            account_stage_field: None,
            lifecycle_field: None,
            task_alternate_key: None,
            expired_delta_codes: vec!["0x80044352".into()],
        }
    }

    /// The scope tokens are asked for.
    pub(crate) fn token_scope(&self) -> String {
        self.scope
            .clone()
            .unwrap_or_else(|| format!("{}/.default", self.url.origin().ascii_serialization()))
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token_url(&self) -> Result<Url, String> {
        let tenant_ok = !self.tenant.is_empty()
            && self
                .tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !tenant_ok {
            return Err(format!("{:?} is not a tenant id or domain", self.tenant));
        }
        let joined = format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority.as_str().trim_end_matches('/'),
            self.tenant
        );
        Url::parse(&joined).map_err(|_| "the authority cannot take a token path".to_owned())
    }

    /// `{url}/api/data/{api_version}/`.
    pub(crate) fn api_root(&self) -> String {
        format!(
            "{}/api/data/{}/",
            self.url.as_str().trim_end_matches('/'),
            self.api_version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DynamicsSettings {
        DynamicsSettings::for_url(
            Url::parse("https://contoso.crm.dynamics.com").unwrap(),
            "contoso.onmicrosoft.com",
            "app",
        )
    }

    #[test]
    fn the_scope_defaults_to_the_environments_origin() {
        assert_eq!(
            settings().token_scope(),
            "https://contoso.crm.dynamics.com/.default"
        );
        let mut custom = settings();
        custom.scope = Some("https://other.crm.dynamics.com/.default".into());
        assert_eq!(
            custom.token_scope(),
            "https://other.crm.dynamics.com/.default"
        );
    }

    #[test]
    fn the_token_url_names_the_tenant_and_refuses_one_that_is_no_name() {
        assert_eq!(
            settings().token_url().unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let mut bad = settings();
        bad.tenant = "x/../y".into();
        assert!(bad.token_url().is_err());
    }

    #[test]
    fn the_api_root_ends_with_the_version_and_a_slash() {
        assert_eq!(
            settings().api_root(),
            "https://contoso.crm.dynamics.com/api/data/v9.2/"
        );
    }
}
