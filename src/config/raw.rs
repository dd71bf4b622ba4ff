//! The two files exactly as written: serde structs that refuse unknown keys
//! and keep the location of every value a later check may point at.
//!
//! Nothing here is required and nothing is an enum: a missing key or an
//! unknown kind is reported by `validate`, alongside every other problem,
//! instead of stopping serde at the first one. These types never leave
//! `config`.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub(super) type Text = Spanned<String>;
pub(super) type TextMap = BTreeMap<Text, Text>;

/// `journey.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawJourney {
    pub name: Option<Text>,
    pub roles: Option<Spanned<Vec<Text>>>,
    pub stage: Option<Spanned<Vec<Spanned<RawStage>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawStage {
    pub id: Option<Text>,
    pub name: Option<Text>,
    pub owner_role: Option<Text>,
    pub max_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub handoff_fields: Vec<Text>,
    #[serde(default)]
    pub exit_criteria: Vec<Spanned<RawCriterion>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawCriterion {
    pub name: Option<Text>,
    pub expr: Option<Text>,
}

/// `journeyd.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawDaemon {
    pub state_path: Option<Text>,
    pub journey: Option<Text>,
    pub schedule: Option<RawSchedule>,
    pub checks: Option<RawChecks>,
    #[serde(default)]
    pub connectors: BTreeMap<Text, Spanned<RawConnector>>,
    pub writeback: Option<RawWriteback>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    pub service: Option<RawService>,
    pub console: Option<RawConsole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConsole {
    pub listen: Option<Text>,
    pub auth: Option<Text>,
    pub proxy_user_header: Option<Text>,
    pub trusted_proxies: Option<Spanned<Vec<Text>>>,
    pub admins: Option<Spanned<Vec<Text>>>,
    pub users_file: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawService {
    pub health_listen: Option<Text>,
    pub health_public: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawSchedule {
    pub timezone: Option<Text>,
    pub sync: Option<Text>,
    pub audit: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawChecks {
    #[serde(default)]
    pub disabled: Vec<Text>,
    #[serde(default)]
    pub severity: TextMap,
    pub missing_onboarding_task: Option<Spanned<RawOnboarding>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawOnboarding {
    pub stage: Option<Text>,
    pub after_days: Option<Spanned<i64>>,
    pub subject_contains: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConnector {
    pub kind: Option<Text>,
    pub secret: Option<Spanned<RawSecret>>,
    /// Object kind -> native stage value -> stage id.
    #[serde(default)]
    pub stages: BTreeMap<Text, TextMap>,
    pub roles: Option<RawRoles>,
    /// Journey role -> the owner (id or email) who gets a task when the
    /// record's own owner is inactive or unknown.
    #[serde(default)]
    pub fallback_owners: TextMap,
    #[serde(default)]
    pub fields: TextMap,
    pub lifecycle: Option<Spanned<RawLifecycle>>,
    /// Where and how to reach the CRM. Which kind takes which key is
    /// `validate`'s business, so that a key of another kind is reported by
    /// name instead of as unknown.
    pub api_url: Option<Text>,
    pub auth: Option<Text>,
    pub client_id: Option<Text>,
    pub token_url: Option<Text>,
    pub refresh_token: Option<Spanned<RawSecret>>,
    pub portal_id: Option<Text>,
    pub objects: Option<Spanned<Vec<Text>>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub paging: Option<Spanned<RawPaging>>,
    pub lifecycle_forward_only: Option<Spanned<bool>>,
    pub search_lag_seconds: Option<Spanned<i64>>,
    pub settle_seconds: Option<Spanned<i64>>,
    pub login_url: Option<Text>,
    pub instance_hosts: Option<Spanned<Vec<Text>>>,
    pub api_version: Option<Text>,
    pub username: Option<Text>,
    pub account_stage_field: Option<Text>,
    pub task_external_id: Option<Text>,
    pub jwt_audience: Option<Text>,
    pub tenant: Option<Text>,
    pub authority_url: Option<Text>,
    pub scope: Option<Text>,
    pub deal_stage_field: Option<Text>,
    pub lead_stage_field: Option<Text>,
    pub task_alternate_key: Option<Text>,
    pub change_tracking: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawLimits {
    pub requests: Option<Spanned<i64>>,
    pub per_seconds: Option<Spanned<i64>>,
    pub search_per_second: Option<Spanned<i64>>,
    pub retry_budget: Option<Spanned<i64>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub send_window_seconds: Option<Spanned<i64>>,
    pub max_retry_after_seconds: Option<Spanned<i64>>,
    pub max_body_mb: Option<Spanned<i64>>,
    pub daily_stop_share: Option<Spanned<f64>>,
    pub max_concurrent: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawPaging {
    pub list_limit: Option<Spanned<i64>>,
    pub search_limit: Option<Spanned<i64>>,
    pub search_cap: Option<Spanned<i64>>,
    pub batch_limit: Option<Spanned<i64>>,
    pub overlap_seconds: Option<Spanned<i64>>,
    pub query_batch: Option<Spanned<i64>>,
    pub page_size: Option<Spanned<i64>>,
    pub task_lookup_ids: Option<Spanned<i64>>,
    pub association_batch: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as `{ env = \"NAME\" }` or `{ credential = \"NAME\" }`"
)]
pub(super) struct RawSecret {
    pub env: Option<Text>,
    pub credential: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawRoles {
    #[serde(default)]
    pub users: TextMap,
    #[serde(default)]
    pub teams: TextMap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawLifecycle {
    pub field: Option<Text>,
    #[serde(default)]
    pub values: TextMap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawWriteback {
    pub mode: Option<Text>,
    pub max_writes_per_run: Option<Spanned<i64>>,
    pub task_objects: Option<Vec<Text>>,
    pub task_due_days: Option<Spanned<i64>>,
    pub tasks: Option<Text>,
    #[serde(default)]
    pub fields: BTreeMap<Text, Vec<Text>>,
    #[serde(default)]
    pub actions: TextMap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawRule {
    pub id: Option<Text>,
    pub condition: Option<Text>,
    pub severity: Option<Text>,
    pub message: Option<Text>,
    pub action: Option<Text>,
    #[serde(default)]
    pub objects: Vec<Text>,
    #[serde(default)]
    pub stages: Vec<Text>,
}
