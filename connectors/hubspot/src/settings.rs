//! What the daemon's config tells the HubSpot connector. Every value has
//! been validated by the daemon's config module; secrets arrive separately,
//! at startup, as [`HubspotCredentials`].

use journeyd_connector::http::{RateLimits, RetryPolicy, TokenStore};
use journeyd_connector::secret::SecretString;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct HubspotSettings {
    /// `https://api.hubapi.com`, or an emulator on loopback.
    pub api_url: Url,
    /// Where links to records in HubSpot's UI point (`https://app.hubspot.com`).
    pub app_url: Url,
    /// The HubSpot account (portal) id, for record links; `None`: no links.
    pub portal_id: Option<String>,
    pub auth: HubspotAuth,
    pub limits: RateLimits,
    pub retry: RetryPolicy,
    /// Records per list page (HubSpot's documented maximum is unconfirmed; 100).
    pub list_limit: NonZeroU32,
    /// Records per search page (200).
    pub search_limit: NonZeroU32,
    /// Results one search query can page through before HubSpot refuses (10,000).
    pub search_cap: NonZeroU32,
    /// Inputs per batch call (unconfirmed; 100).
    pub batch_limit: NonZeroUsize,
    /// Inputs per v4 association batch read (1,000 since 2025-02).
    pub association_batch_limit: NonZeroUsize,
    /// How long HubSpot's search index may take to show a write (fact 6.14:
    /// eventually consistent; integrations wait about 10 s). A create whose
    /// answer was lost is looked up by search only once this has passed
    /// since it was sent: sooner, absence proves nothing.
    pub search_lag: Duration,
    /// How far before the stored watermark an incremental search starts, for
    /// clock skew and HubSpot's eventually consistent search index.
    pub overlap: Duration,
    /// CRM properties the daemon's field map names, requested on every object.
    pub properties: Vec<String>,
    /// The property holding the lifecycle status (`lifecyclestage`), if any.
    pub lifecycle_property: Option<String>,
    /// Whether a backward lifecycle move needs clear-then-set (HubSpot's
    /// documented behaviour; unconfirmed under v3, hence a knob).
    pub lifecycle_forward_only: bool,
    /// Association type ids of task -> deal / contact / company (216 / 204 / 192).
    pub task_association_types: TaskAssociationTypes,
    /// Which deals are read with their tasks. Reading tasks costs one batch
    /// read per page that has any, so the daemon asks only for what its
    /// rules look at.
    pub read_tasks: TaskReading,
}

/// Which deals' tasks a pull reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskReading {
    Every,
    /// Only deals in these native stages (deal stage ids).
    InStages(std::collections::BTreeSet<String>),
    /// None: records carry no tasks.
    Never,
}

impl TaskReading {
    pub fn wants(&self, stage: Option<&str>) -> bool {
        match self {
            TaskReading::Every => true,
            TaskReading::InStages(stages) => stage.is_some_and(|s| stages.contains(s)),
            TaskReading::Never => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskAssociationTypes {
    pub deal: u32,
    pub contact: u32,
    pub company: u32,
}

impl Default for TaskAssociationTypes {
    fn default() -> Self {
        Self {
            deal: 216,
            contact: 204,
            company: 192,
        }
    }
}

/// How the connector authenticates; the secrets themselves are in
/// [`HubspotCredentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubspotAuth {
    /// A private app's access token.
    PrivateApp,
    /// OAuth2: a refresh token exchanged at `token_url` (`/oauth/v3/token`).
    OAuth { client_id: String, token_url: Url },
}

/// The secrets, read at startup from the environment or systemd credentials.
#[derive(Clone)]
pub enum HubspotCredentials {
    PrivateApp {
        token: SecretString,
    },
    OAuth {
        client_secret: SecretString,
        refresh_token: SecretString,
        /// Where a rotated refresh token is saved before it is used.
        store: Arc<dyn TokenStore>,
    },
}

impl HubspotSettings {
    /// HubSpot's published defaults against `api_url`: 100 requests per 10 s,
    /// search 4 per second, pages of 100 (list) and 200 (search), batches of
    /// 100 (association reads 1,000), the 10,000-result search cap, and 10 s
    /// for the search index to catch up with a write.
    pub fn defaults(api_url: Url, auth: HubspotAuth) -> Self {
        let nz = |n: u32| NonZeroU32::new(n).expect("a non-zero literal");
        Self {
            api_url,
            app_url: Url::parse("https://app.hubspot.com").expect("a valid literal URL"),
            portal_id: None,
            auth,
            limits: RateLimits {
                general: (nz(100), Duration::from_secs(10)),
                search: Some((nz(4), Duration::from_secs(1))),
            },
            retry: RetryPolicy {
                max_attempts: nz(6),
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
                budget: 500,
                timeout: Duration::from_secs(30),
                send_window: Duration::from_secs(20),
                max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
                max_body: RetryPolicy::DEFAULT_MAX_BODY,
            },
            list_limit: nz(100),
            search_limit: nz(200),
            search_cap: nz(10_000),
            batch_limit: NonZeroUsize::new(100).expect("a non-zero literal"),
            association_batch_limit: NonZeroUsize::new(1000).expect("a non-zero literal"),
            search_lag: Duration::from_secs(10),
            overlap: Duration::from_secs(60),
            properties: Vec::new(),
            lifecycle_property: None,
            lifecycle_forward_only: true,
            task_association_types: TaskAssociationTypes::default(),
            read_tasks: TaskReading::Every,
        }
    }
}
