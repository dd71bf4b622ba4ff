//! The typed, validated configuration. Every value here has been checked once,
//! at load; the rest of the daemon never re-checks a string from the config.

use crate::journey::{Expr, Journey, RoleId, StageId};
use crate::rules::{ActionKind, BuiltinRule, MessageTemplate, RuleId, Severity};
use journeyd_connector::{ConnectorName, ObjectKind, System};
use journeyd_dynamics::DynamicsSettings;
use journeyd_hubspot::HubspotSettings;
use journeyd_salesforce::SalesforceSettings;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;

#[derive(Debug)]
pub struct Config {
    /// The daemon config file this was loaded from.
    pub path: PathBuf,
    /// The SQLite file holding all state.
    pub state_path: PathBuf,
    pub journey: Journey,
    pub schedule: Schedule,
    pub checks: Checks,
    /// Sorted by name.
    pub connectors: Vec<ConnectorConfig>,
    pub writeback: WritebackPolicy,
    pub custom_rules: Vec<CustomRule>,
    pub service: ServiceConfig,
    pub console: ConsoleConfig,
}

impl Config {
    pub fn connector(&self, name: &ConnectorName) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| &c.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone: chrono_tz::Tz,
    /// Each connector's incremental sync.
    pub sync: CronExpr,
    /// The nightly full audit.
    pub audit: CronExpr,
}

impl Schedule {
    /// The org's date at `now`: "today" in `timezone`, for task due dates,
    /// days in stage and the end of a suppression.
    pub fn today(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        now.with_timezone(&self.timezone).date_naive()
    }
}

/// A cron expression that has been checked to parse (seconds field optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr(String);

impl CronExpr {
    /// Only `config` builds these, after checking the expression parses.
    pub(crate) fn new_unchecked(source: String) -> Self {
        Self(source)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The expression with its seconds field: `0` prepended to a
    /// five-field one, for schedulers that require six.
    pub fn with_seconds(&self) -> String {
        if self.0.split_whitespace().count() == 5 {
            format!("0 {}", self.0.trim())
        } else {
            self.0.trim().to_owned()
        }
    }
}

/// Parameters of the built-in rules.
#[derive(Debug, Clone)]
pub struct Checks {
    pub disabled: BTreeSet<BuiltinRule>,
    /// Overrides of the built-in rules' default severities.
    pub severity: BTreeMap<BuiltinRule, Severity>,
    /// `None` when the check is off: disabled, or not configured and the
    /// journey has no `onboarding` stage to default to.
    pub onboarding: Option<OnboardingCheck>,
}

impl Checks {
    pub fn enabled(&self, rule: BuiltinRule) -> bool {
        !self.disabled.contains(&rule)
    }

    pub fn severity_of(&self, rule: BuiltinRule) -> Severity {
        self.severity
            .get(&rule)
            .copied()
            .unwrap_or_else(|| rule.default_severity())
    }
}

/// `missing_onboarding_task`: a deal in `stage` for more than `after_days`
/// with no task whose subject contains `subject_contains`.
#[derive(Debug, Clone)]
pub struct OnboardingCheck {
    pub stage: StageId,
    pub after_days: u32,
    /// Lowercased.
    pub subject_contains: String,
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: ConnectorName,
    pub system: System,
    /// Where the connector's credential comes from; `None` where a connector
    /// is only fed by `journeyd import`.
    pub secret: Option<SecretRef>,
    /// Native stage value -> journey stage, per object kind. An object kind
    /// absent here is not part of the journey.
    pub stages: BTreeMap<ObjectKind, BTreeMap<String, StageId>>,
    /// Native stage values mapped to `"-"`: the record has left the journey
    /// (closed-lost, disqualified) and only record-level rules apply.
    pub outside: BTreeMap<ObjectKind, BTreeSet<String>>,
    pub roles: RoleMap,
    /// Journey role -> who gets a task when the record's owner is inactive
    /// or unknown: an owner id, or an email (lowercased) matched against
    /// the connector's owners when the task is planned.
    pub fallback_owners: BTreeMap<RoleId, String>,
    /// CRM field name -> canonical field name.
    pub fields: BTreeMap<String, String>,
    pub lifecycle: Option<LifecycleMap>,
    /// The object kinds a sync pulls: the config's `objects`, or every kind
    /// the CRM has.
    pub objects: BTreeSet<ObjectKind>,
    /// How to reach the CRM.
    pub connection: Connection,
}

/// How the daemon reaches a connector's CRM: the closed set of CRMs whose
/// connectors are built. Settings types are owned by the connector crates;
/// the config only validates and fills them.
#[derive(Debug, Clone)]
pub enum Connection {
    Hubspot(Box<HubspotConnection>),
    Salesforce(Box<SalesforceConnection>),
    Dynamics(Box<DynamicsConnection>),
}

impl Connection {
    /// Actions per write-back batch call.
    pub fn batch_limit(&self) -> NonZeroUsize {
        match self {
            Connection::Hubspot(hubspot) => hubspot.settings.batch_limit,
            Connection::Salesforce(salesforce) => salesforce.settings.batch_limit,
            Connection::Dynamics(dynamics) => dynamics.settings.batch_limit,
        }
    }

    /// How the connection's calls are retried (`limits.max_attempts` and
    /// the backoff); the sync loop asks for an unreadable page again the
    /// same way.
    pub fn retry(&self) -> &journeyd_connector::http::RetryPolicy {
        match self {
            Connection::Hubspot(hubspot) => &hubspot.settings.retry,
            Connection::Salesforce(salesforce) => &salesforce.settings.retry,
            Connection::Dynamics(dynamics) => &dynamics.settings.retry,
        }
    }

    /// The client-side rate limit: requests per period.
    pub fn rate_limit(&self) -> (NonZeroU32, std::time::Duration) {
        match self {
            Connection::Hubspot(hubspot) => hubspot.settings.limits.general,
            Connection::Salesforce(salesforce) => salesforce.settings.limits.general,
            Connection::Dynamics(dynamics) => dynamics.settings.limits.general,
        }
    }

    /// How this connection makes sure a corrective write is never made
    /// twice, as `config check` states it.
    pub fn write_guarantee(&self) -> WriteGuarantee {
        match self {
            Connection::Dynamics(_) => WriteGuarantee {
                kind: "by_construction",
                how: "each task is created under an id journeyd chooses (PATCH with If-None-Match: *): a write whose answer was lost is sent again and cannot make a second task, even while Dataverse still runs the first".into(),
            },
            Connection::Salesforce(salesforce) => match &salesforce.settings.task_external_id {
                Some(field) => WriteGuarantee {
                    kind: "by_construction",
                    how: format!(
                        "each task is upserted by the external id field {field} (mark it Unique): a write whose answer was lost is sent again and cannot make a second task"
                    ),
                },
                None => WriteGuarantee {
                    kind: "by_lookup",
                    how: format!(
                        "a task whose answer was lost is looked up among the integration user's tasks created since it was sent (CreatedById, CreatedDate), {} s after it was recorded as sent (limits.send_window_seconds + settle_seconds), before anything is sent again; set task_external_id to a Unique external-id field of Task for a guarantee by construction",
                        (salesforce.settings.retry.send_window + salesforce.settings.settle).as_secs()
                    ),
                },
            },
            Connection::Hubspot(hubspot) => WriteGuarantee {
                kind: "by_lookup",
                how: format!(
                    "a task whose answer was lost is searched for by its key {} s after it was recorded as sent (limits.send_window_seconds + search_lag_seconds: HubSpot's search lags writes) before anything is sent again",
                    (hubspot.settings.retry.send_window + hubspot.settings.search_lag).as_secs()
                ),
            },
        }
    }

    /// A HubSpot connection on loopback, for specifications that need a
    /// connector config but never reach its CRM.
    #[cfg(test)]
    pub fn unreached() -> Self {
        let url = url::Url::parse("http://127.0.0.1:9").expect("a valid literal URL");
        Connection::Hubspot(Box::new(HubspotConnection {
            settings: HubspotSettings::defaults(url, journeyd_hubspot::HubspotAuth::PrivateApp),
            refresh_token: None,
        }))
    }
}

/// How a connection keeps corrective writes exactly once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteGuarantee {
    /// `by_construction` (every write idempotent) or `by_lookup` (a write
    /// whose answer was lost is looked up before it is sent again).
    pub kind: &'static str,
    pub how: String,
}

#[derive(Debug, Clone)]
pub struct HubspotConnection {
    pub settings: HubspotSettings,
    /// With `auth = "oauth"`: where the refresh token is read from (the
    /// connector's `secret` is then the client secret).
    pub refresh_token: Option<SecretRef>,
}

#[derive(Debug, Clone)]
pub struct SalesforceConnection {
    pub settings: SalesforceSettings,
    /// With `auth = "refresh_token"`: where the refresh token is read from
    /// (the connector's `secret` is then the client secret; with `auth =
    /// "jwt"` it is the private key).
    pub refresh_token: Option<SecretRef>,
}

#[derive(Debug, Clone)]
pub struct DynamicsConnection {
    /// The connector's `secret` is the app registration's client secret.
    pub settings: DynamicsSettings,
}

/// Where a secret is read from at startup. Secrets are never in config files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable's name.
    Env(String),
    /// A systemd credential's name, read from `$CREDENTIALS_DIRECTORY`.
    Credential(String),
}

/// CRM users and teams -> journey roles. A user's own entry wins over teams.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    /// Keyed by owner id or owner email (lowercased).
    pub users: BTreeMap<String, RoleId>,
    /// Keyed by team, role or profile name as the CRM gives it.
    pub teams: BTreeMap<String, RoleId>,
}

/// The CRM field holding a lifecycle status, and what each value means.
#[derive(Debug, Clone)]
pub struct LifecycleMap {
    pub field: String,
    pub values: BTreeMap<String, StageId>,
}

impl LifecycleMap {
    /// The value that says "this record is in `stage`": the first one, in
    /// value order, mapped to it.
    pub fn value_for(&self, stage: &StageId) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, s)| *s == stage)
            .map(|(value, _)| value.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackMode {
    DryRun,
    Apply,
}

#[derive(Debug, Clone)]
pub struct WritebackPolicy {
    pub mode: WritebackMode,
    pub max_writes_per_run: NonZeroU32,
    /// Object kinds a corrective task may be attached to.
    pub task_objects: BTreeSet<ObjectKind>,
    /// Fields that may be written, per object kind (CRM field names).
    pub fields: BTreeMap<ObjectKind, BTreeSet<String>>,
    /// Days from creation to a corrective task's due date.
    pub task_due_days: u32,
    /// One task per record listing its violations, or one per violation.
    pub tasks: TaskMode,
    /// The action each rule calls for, where it differs from the rule's default.
    pub actions: BTreeMap<RuleId, ActionKind>,
}

/// How many tasks journeyd keeps for a record's violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskMode {
    /// One task per record, listing its open violations as a checklist,
    /// updated as they change and completed when none is left.
    #[default]
    PerRecord,
    /// One task per violation, completed when the violation is resolved.
    PerViolation,
}

impl TaskMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskMode::PerRecord => "per_record",
            TaskMode::PerViolation => "per_violation",
        }
    }
}

/// How the long-running daemon shows itself to its operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Where `/healthz` and `/metrics` are served; `None` for no listener.
    /// A loopback address unless the config said `health_public = true`.
    pub health_listen: Option<SocketAddr>,
}

/// The web console (`journeyd console`, and `journeyd run` when set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Where it listens: a loopback address unless `auth` is a proxy's.
    /// `None` when the config does not say; `journeyd run` then serves no
    /// console.
    pub listen: Option<SocketAddr>,
    pub auth: ConsoleAuth,
}

/// Who may use the console, and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConsoleAuth {
    /// No sign-in: it listens on loopback only, and whoever reaches it
    /// acts as the OS user running it.
    #[default]
    Loopback,
    /// Behind a reverse proxy that authenticates admins and names them in
    /// a header.
    Proxy(ProxyAuth),
    /// Its own sign-in, against the users of this file (`journeyd console
    /// user add`).
    Users(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    /// The header the proxy names the user in, lowercased.
    pub user_header: String,
    /// The only addresses a request is taken from.
    pub trusted: Vec<std::net::IpAddr>,
    /// The users who may act; every other user only views.
    pub admins: BTreeSet<String>,
}

/// An admin's own rule.
#[derive(Debug)]
pub struct CustomRule {
    pub id: RuleId,
    /// The violation fires when this holds.
    pub condition: Expr,
    pub severity: Severity,
    pub message: MessageTemplate,
    pub action: ActionKind,
    /// Object kinds it applies to; empty for all.
    pub objects: BTreeSet<ObjectKind>,
    /// Journey stages it applies to; empty for all.
    pub stages: BTreeSet<StageId>,
}
