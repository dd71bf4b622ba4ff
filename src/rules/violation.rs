//! What a rule yields: a violation with a stable fingerprint, and the names
//! of rules, severities and actions.

use crate::journey::{RoleId, StageId};
use chrono::NaiveDate;
use journeyd_connector::{ConnectorName, ObjectKind, OwnerId, RecordId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The built-in rules. A closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRule {
    MissingOwner,
    OwnerRoleMismatch,
    ExitCriteriaUnmet,
    StageSkipped,
    Stalled,
    HandoffIncomplete,
    UnmappedStage,
    LifecycleMismatch,
    DuplicateRecord,
    MissingOnboardingTask,
}

impl BuiltinRule {
    pub const ALL: [BuiltinRule; 10] = [
        BuiltinRule::MissingOwner,
        BuiltinRule::OwnerRoleMismatch,
        BuiltinRule::ExitCriteriaUnmet,
        BuiltinRule::StageSkipped,
        BuiltinRule::Stalled,
        BuiltinRule::HandoffIncomplete,
        BuiltinRule::UnmappedStage,
        BuiltinRule::LifecycleMismatch,
        BuiltinRule::DuplicateRecord,
        BuiltinRule::MissingOnboardingTask,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinRule::MissingOwner => "missing_owner",
            BuiltinRule::OwnerRoleMismatch => "owner_role_mismatch",
            BuiltinRule::ExitCriteriaUnmet => "exit_criteria_unmet",
            BuiltinRule::StageSkipped => "stage_skipped",
            BuiltinRule::Stalled => "stalled",
            BuiltinRule::HandoffIncomplete => "handoff_incomplete",
            BuiltinRule::UnmappedStage => "unmapped_stage",
            BuiltinRule::LifecycleMismatch => "lifecycle_mismatch",
            BuiltinRule::DuplicateRecord => "duplicate_record",
            BuiltinRule::MissingOnboardingTask => "missing_onboarding_task",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == name)
    }

    /// How severe a break of the rule is unless `[checks] severity` says
    /// otherwise. High: nobody will act, or a won customer is waiting, so
    /// revenue is at risk today. Medium: the journey was broken, but an
    /// owner holds the record and can put it right. Low: hygiene that
    /// costs little while it waits.
    pub fn default_severity(self) -> Severity {
        match self {
            BuiltinRule::MissingOwner | BuiltinRule::MissingOnboardingTask => Severity::High,
            BuiltinRule::OwnerRoleMismatch
            | BuiltinRule::ExitCriteriaUnmet
            | BuiltinRule::StageSkipped
            | BuiltinRule::Stalled
            | BuiltinRule::HandoffIncomplete
            | BuiltinRule::UnmappedStage => Severity::Medium,
            BuiltinRule::LifecycleMismatch | BuiltinRule::DuplicateRecord => Severity::Low,
        }
    }

    /// What the rule calls for unless the write-back policy says otherwise.
    /// An unmapped stage is config drift: the fix is in journeyd's config, not
    /// in the CRM, so it asks for no write.
    pub fn default_action(self) -> ActionKind {
        match self {
            BuiltinRule::LifecycleMismatch => ActionKind::SetLifecycle,
            BuiltinRule::UnmappedStage => ActionKind::None,
            _ => ActionKind::Task,
        }
    }

    pub fn id(self) -> RuleId {
        RuleId::new(self.as_str())
    }
}

impl fmt::Display for BuiltinRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's id: a built-in rule's name or a custom rule's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(String);

impl RuleId {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of corrective write a rule calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A task for the accountable owner.
    Task,
    /// Set the record's lifecycle status to match its journey stage.
    SetLifecycle,
    /// Log only.
    None,
}

impl ActionKind {
    pub const ALL: [ActionKind; 3] = [ActionKind::Task, ActionKind::SetLifecycle, ActionKind::None];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Task => "task",
            ActionKind::SetLifecycle => "set_lifecycle",
            ActionKind::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The corrective write one violation calls for, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlannedAction {
    Task {
        subject: String,
        /// Who the task is for; `None` when nobody accountable is known.
        owner_id: Option<OwnerId>,
    },
    SetLifecycle {
        field: String,
        value: String,
    },
    None,
}

impl PlannedAction {
    pub fn kind(&self) -> ActionKind {
        match self {
            PlannedAction::Task { .. } => ActionKind::Task,
            PlannedAction::SetLifecycle { .. } => ActionKind::SetLifecycle,
            PlannedAction::None => ActionKind::None,
        }
    }
}

/// Identity of a violation across runs: the same problem on the same record
/// at the same stage is the same fingerprint, whatever its message says now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// 16 bytes of SHA-256 over the identity fields, each length-prefixed so
    /// that no two field lists can collide by concatenation.
    pub fn of(
        connector: &ConnectorName,
        object: ObjectKind,
        record: &RecordId,
        rule: &RuleId,
        stage: Option<&StageId>,
    ) -> Fingerprint {
        let mut hash = Sha256::new();
        for part in [
            connector.as_str(),
            object.as_str(),
            record.as_str(),
            rule.as_str(),
            stage.map_or("", StageId::as_str),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        // Every record's every violation is fingerprinted on each audit: a
        // table lookup, not a `format!` per byte.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(32);
        for byte in &digest[..16] {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Fingerprint(hex)
    }

    /// For values read back from the store.
    pub fn from_stored(value: String) -> Fingerprint {
        Fingerprint(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One broken journey rule on one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub fingerprint: Fingerprint,
    pub connector: ConnectorName,
    pub object: ObjectKind,
    pub record_id: RecordId,
    pub record_name: Option<String>,
    pub record_url: Option<String>,
    pub rule: RuleId,
    pub severity: Severity,
    /// The stage the problem belongs to (for exit criteria, the stage whose
    /// criteria are unmet).
    pub stage: Option<StageId>,
    /// The accountable owner: who should act.
    pub owner_id: Option<OwnerId>,
    /// The role accountable at `stage`.
    pub owner_role: Option<RoleId>,
    /// Names the record and exactly what is missing. As a rule yields it,
    /// a count of days in stage is the [`DAYS_IN_STAGE`] mark, so that the
    /// message stays the same from one day to the next; the count is put in
    /// when it is shown ([`render_days`]). Read from the store, it is
    /// rendered.
    pub message: String,
    /// The org's date the record entered its stage, where `message` counts
    /// the days since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_since: Option<NaiveDate>,
    pub action: PlannedAction,
}

/// Where a message counts the days a record has been in its stage. Made of
/// control characters, which no message text otherwise holds.
pub const DAYS_IN_STAGE: &str = "\u{1}days_in_stage\u{1}";

/// `message` with its [`DAYS_IN_STAGE`] marks replaced by the whole days
/// from `since` to `today` (never below 0); `?` where the date is unknown.
pub fn render_days(message: &str, since: Option<NaiveDate>, today: NaiveDate) -> String {
    if !message.contains(DAYS_IN_STAGE) {
        return message.to_owned();
    }
    let days = since.map_or_else(
        || "?".to_owned(),
        |since| (today - since).num_days().max(0).to_string(),
    );
    message.replace(DAYS_IN_STAGE, &days)
}
