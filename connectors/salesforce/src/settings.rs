//! What the daemon's config tells the Salesforce connector. Every value has
//! been validated by the daemon's config module; secrets arrive separately,
//! at startup, as [`SalesforceCredentials`].

use journeyd_connector::ObjectKind;
use journeyd_connector::http::{RateLimits, RetryPolicy, TokenStore};
use journeyd_connector::secret::SecretString;
use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// Where tokens are asked for: `https://login.salesforce.com`,
    /// `https://test.salesforce.com`, a My Domain host, or an emulator on
    /// loopback. `/services/oauth2/token` is appended.
    pub login_url: Url,
    /// The hosts an `instance_url` from a token response may name, e.g.
    /// `*.my.salesforce.com`; anything else is refused (a forged token
    /// response must not redirect journeyd's calls). Loopback is accepted
    /// only when `login_url` is loopback.
    pub instance_hosts: Vec<String>,
    /// `v62.0`.
    pub api_version: String,
    /// The `aud` claim of JWT bearer assertions: `https://login.salesforce.com`,
    /// `https://test.salesforce.com` or a community URL. `None`: the origin
    /// of `login_url` (right for the first two, not for a My Domain login).
    pub jwt_audience: Option<String>,
    pub auth: SalesforceAuth,
    pub limits: RateLimits,
    pub retry: RetryPolicy,
    /// Rows asked per query page (`Sforce-Query-Options: batchSize`, 200..2000).
    pub query_batch: NonZeroU32,
    /// Records per sObject Collections call (at most 200).
    pub batch_limit: NonZeroUsize,
    /// How far before the stored watermark an incremental query starts.
    pub overlap: Duration,
    /// Share of the daily API allowance after which no new work starts.
    pub daily_stop_share: f64,
    /// CRM fields the daemon's field map names, by object, read on every
    /// pull into `CrmRecord::fields`. Per object, since Salesforce refuses a
    /// whole query (400 `INVALID_FIELD`) that names a field its object lacks.
    pub properties: BTreeMap<ObjectKind, Vec<String>>,
    /// The field holding a lifecycle status, if any; read on the objects
    /// whose `properties` list it.
    pub lifecycle_field: Option<String>,
    /// An external-id field on Task to upsert corrective tasks by; `None`:
    /// the key is carried in the task's description and looked up. The
    /// field should be marked Unique, so that an upsert racing another of
    /// the same key can never insert twice.
    pub task_external_id: Option<String>,
    /// Without `task_external_id`: how long after a batch was sent a create
    /// whose answer was lost is looked up, the time within which Salesforce
    /// may still be finishing a request whose client died (config key
    /// `settle_seconds`).
    pub settle: Duration,
    /// The custom account field holding the account's journey stage
    /// (`Customer_Stage__c`), if accounts are in the journey.
    pub account_stage_field: Option<String>,
}

/// How the connector authenticates; the secrets are in [`SalesforceCredentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SalesforceAuth {
    /// OAuth2 JWT bearer: an RS256 assertion signed with the connected
    /// app's private key, for `username`. No refresh token: a new
    /// assertion is minted before the access token expires.
    JwtBearer { client_id: String, username: String },
    /// OAuth2 refresh-token grant.
    RefreshToken { client_id: String },
}

/// The secrets, read at startup from the environment or systemd credentials.
#[derive(Clone)]
pub enum SalesforceCredentials {
    JwtBearer {
        /// PEM of the connected app's private key.
        private_key: SecretString,
    },
    RefreshToken {
        client_secret: SecretString,
        refresh_token: SecretString,
        store: Arc<dyn TokenStore>,
    },
}

impl SalesforceSettings {
    /// Salesforce's published limits against `login_url`: pages of 2,000,
    /// collections of 200, no per-second cap (the daily allowance is what
    /// binds), stop at 80% of the daily allowance; a lost create is looked
    /// up 30 s after it was sent.
    pub fn defaults(login_url: Url, auth: SalesforceAuth) -> Self {
        let nz = |n: u32| NonZeroU32::new(n).expect("a non-zero literal");
        Self {
            login_url,
            instance_hosts: vec!["*.my.salesforce.com".into(), "*.salesforce.com".into()],
            api_version: "v62.0".into(),
            jwt_audience: None,
            auth,
            limits: RateLimits {
                general: (nz(25), Duration::from_secs(1)),
                search: None,
            },
            retry: RetryPolicy {
                max_attempts: nz(6),
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
                budget: 500,
                timeout: Duration::from_secs(120),
                send_window: Duration::from_secs(20),
                max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
                max_body: RetryPolicy::DEFAULT_MAX_BODY,
            },
            query_batch: nz(2000),
            batch_limit: NonZeroUsize::new(200).expect("a non-zero literal"),
            overlap: Duration::from_secs(60),
            daily_stop_share: 0.8,
            properties: BTreeMap::new(),
            lifecycle_field: None,
            task_external_id: None,
            settle: Duration::from_secs(30),
            account_stage_field: None,
        }
    }
}
