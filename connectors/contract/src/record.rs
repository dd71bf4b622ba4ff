//! The canonical CRM record: what every connector turns its CRM's objects into.
//!
//! Field names here are journeyd's, not any CRM's. Native values that the
//! journey maps (stage, lifecycle status, owner) are carried unmapped: mapping
//! them is the daemon's job, so a config change takes effect without a resync.

use crate::ids::{OwnerId, RecordId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The CRMs journeyd speaks to. A closed set, known at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Hubspot,
    Salesforce,
    Dynamics,
}

impl System {
    pub const ALL: [System; 3] = [System::Hubspot, System::Salesforce, System::Dynamics];

    pub fn as_str(self) -> &'static str {
        match self {
            System::Hubspot => "hubspot",
            System::Salesforce => "salesforce",
            System::Dynamics => "dynamics",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of CRM object the journey covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Lead,
    Contact,
    Account,
    Deal,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Lead,
        ObjectKind::Contact,
        ObjectKind::Account,
        ObjectKind::Deal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Lead => "lead",
            ObjectKind::Contact => "contact",
            ObjectKind::Account => "account",
            ObjectKind::Deal => "deal",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One CRM object, normalized to journeyd's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmRecord {
    pub system: System,
    pub object: ObjectKind,
    pub id: RecordId,
    /// Display name (deal name, contact full name, account name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Link to the record in the CRM's own UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<OwnerId>,
    /// The CRM's own stage value (deal stage id, lifecycle stage, status code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The CRM's lifecycle status value, where the connector's config names a
    /// lifecycle field; compared with the journey stage by `lifecycle_mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_status: Option<String>,
    /// When the record entered its current native stage, where the CRM says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_entered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Web domain or website URL (accounts and companies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_start: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_end: Option<NaiveDate>,
    /// Other CRM fields, keyed by their CRM name; the connector config's field
    /// map gives them canonical names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Associations::is_empty")]
    pub associations: Associations,
    /// Tasks attached to the record (open ones at least; closed ones where the
    /// connector sees them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskRef>,
    /// Native stage changes, oldest first, where the CRM keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_history: Vec<StageChange>,
}

/// The host of a website, lowercased, without `www.`: an account's domain
/// as duplicate checks compare it. The value itself if it is no URL at all.
pub fn website_domain(website: &str) -> Option<String> {
    let website = website.trim();
    if website.is_empty() {
        return None;
    }
    let with_scheme = if website.contains("://") {
        website.to_owned()
    } else {
        format!("https://{website}")
    };
    let host = url::Url::parse(&with_scheme)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
    Some(match host {
        Some(host) => host.strip_prefix("www.").unwrap_or(&host).to_owned(),
        None => website.to_owned(),
    })
}

/// Links from a record to the records it belongs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Associations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<RecordId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<RecordId>,
}

impl Associations {
    pub fn is_empty(&self) -> bool {
        self.account.is_none() && self.contacts.is_empty()
    }
}

/// A change of native stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageChange {
    pub stage: String,
    pub at: DateTime<Utc>,
    /// Who owned the record when it entered this stage, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<OwnerId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Completed,
}

/// A task attached to a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    pub id: String,
    pub subject: String,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<OwnerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<NaiveDate>,
    /// journeyd wrote this task: its text ends with a `journeyd-action:`
    /// marker line. Such a task is never evidence for a rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_journeyd: bool,
}

/// A CRM user, queue or team that can own records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub id: OwnerId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// False for deactivated users and archived owners.
    pub active: bool,
    /// Teams, roles or profiles the CRM puts the owner in; the role map of the
    /// connector config matches on these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_kinds_round_trip_through_their_names() {
        for kind in ObjectKind::ALL {
            assert_eq!(ObjectKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ObjectKind::parse("opportunity"), None);
    }

    #[test]
    fn a_record_with_an_unknown_key_is_refused() {
        let line = r#"{"system":"hubspot","object":"deal","id":"1","created_at":"2026-01-01T00:00:00Z","modified_at":"2026-01-01T00:00:00Z","colour":"red"}"#;
        let error = serde_json::from_str::<CrmRecord>(line).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );
    }

    #[test]
    fn absent_optional_parts_are_left_out_when_serialized() {
        let line = r#"{"system":"hubspot","object":"deal","id":"1","created_at":"2026-01-01T00:00:00Z","modified_at":"2026-01-01T00:00:00Z"}"#;
        let record: CrmRecord = serde_json::from_str(line).unwrap();
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            r#"{"system":"hubspot","object":"deal","id":"1","created_at":"2026-01-01T00:00:00Z","modified_at":"2026-01-01T00:00:00Z"}"#
        );
    }
}
