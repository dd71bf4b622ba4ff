//! Corrective actions journeyd asks a connector to write back.
//!
//! Every action carries an [`ActionKey`] derived from the violation it
//! corrects. The key is recorded before the action is sent and travels into
//! the CRM with it, so that after a crash the connector can find what was
//! already written instead of writing it twice.

use crate::ids::{OwnerId, RecordId};
use crate::record::ObjectKind;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Deterministic idempotency key of one action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionKey(String);

/// What precedes the key on the last line of a task's text, in every CRM
/// whose tasks carry their key in their text.
pub const KEY_LINE: &str = "journeyd-action: ";

impl ActionKey {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The line that carries this key in a task's text, as a CRM is asked
    /// to find it.
    pub fn line(&self) -> String {
        format!("{KEY_LINE}{}", self.0)
    }

    /// `body`, then a blank line and the key's line: how the key travels
    /// into the CRM with a task. A body that ends with this key's line
    /// already is left as it is, so the line is there once.
    pub fn in_text(&self, body: &str) -> String {
        let body = body.trim_end();
        if body.is_empty() {
            self.line()
        } else if ActionKey::from_text(body).as_ref() == Some(self) {
            body.to_owned()
        } else {
            format!("{body}\n\n{}", self.line())
        }
    }

    /// The key on the last line of `text`, if it ends with one.
    pub fn from_text(text: &str) -> Option<ActionKey> {
        let last = text.trim_end().lines().last()?;
        let key = last.trim().strip_prefix(KEY_LINE)?.trim();
        (!key.is_empty()).then(|| ActionKey::new(key))
    }
}

impl fmt::Display for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
}

/// One write a connector is asked to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionRequest {
    /// A task for the accountable owner, attached to the record.
    CreateTask {
        key: ActionKey,
        object: ObjectKind,
        record_id: RecordId,
        owner_id: Option<OwnerId>,
        subject: String,
        /// The text, ending with the marker line `journeyd-action: KEY`;
        /// the connector writes it with exactly one marker line, of `key`,
        /// as its last, whatever marker lines the text carries.
        body: String,
        due: NaiveDate,
        priority: Priority,
    },
    /// Set one field (a lifecycle status) on the record.
    SetField {
        key: ActionKey,
        object: ObjectKind,
        record_id: RecordId,
        field: String,
        value: String,
        /// The field's value when the action was planned, so a connector
        /// whose CRM treats some moves specially (HubSpot's forward-only
        /// lifecycle stage) knows the direction of the move.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current: Option<String>,
    },
    /// Rewrite a task journeyd created earlier (a record's task whose
    /// checklist changed): its subject, body, priority and owner. The body
    /// keeps ending with the marker line of `task_key`, the key the task was
    /// created under, so recovery and admins still find it by that key.
    /// Setting the same text twice changes nothing: safe to send again.
    UpdateTask {
        key: ActionKey,
        /// The key of the create that made the task; its marker line ends
        /// the body.
        task_key: ActionKey,
        task_id: String,
        owner_id: Option<OwnerId>,
        subject: String,
        /// The text, ending with the marker line of `task_key`; written,
        /// as for a create, with exactly one marker line, of `task_key`.
        body: String,
        priority: Priority,
    },
    /// Mark a task journeyd created earlier as completed. A task the CRM no
    /// longer has (someone deleted it: 404 or 410) is as good as closed, and
    /// is reported `Applied`.
    CompleteTask { key: ActionKey, task_id: String },
}

impl ActionRequest {
    pub fn key(&self) -> &ActionKey {
        match self {
            ActionRequest::CreateTask { key, .. }
            | ActionRequest::UpdateTask { key, .. }
            | ActionRequest::SetField { key, .. }
            | ActionRequest::CompleteTask { key, .. } => key,
        }
    }

    /// Whether sending this action twice could write twice: only a create
    /// can. Updates and completions set values, which is the same however
    /// often it is done.
    pub fn creates(&self) -> bool {
        matches!(self, ActionRequest::CreateTask { .. })
    }
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    pub key: ActionKey,
    pub result: ActionResult,
}

impl ActionOutcome {
    /// What `find_applied` reports: an `Applied` outcome for each of `keys`
    /// found in the CRM (`found`: key -> id of the record carrying it), once
    /// per key, in the order of `keys`; keys not found are left out.
    pub fn found(
        keys: &[ActionKey],
        found: &std::collections::BTreeMap<String, String>,
    ) -> Vec<ActionOutcome> {
        let mut seen = std::collections::BTreeSet::new();
        keys.iter()
            .filter(|key| seen.insert(key.as_str()))
            .filter_map(|key| {
                found.get(key.as_str()).map(|id| ActionOutcome {
                    key: key.clone(),
                    result: ActionResult::Applied { crm_id: id.clone() },
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// Written; `crm_id` is the id of what was created or changed.
    Applied { crm_id: String },
    /// Certainly not written: the CRM refused it, or it was never sent.
    /// `retryable` says whether a later run may try again.
    Failed { reason: String, retryable: bool },
    /// The reply does not prove what happened: a timeout, a reset, a 5xx
    /// after the request was sent, a 2xx whose body cannot be read or does
    /// not account for this action. The write may have been made. It stays
    /// unconfirmed and is recovered the connector's own way (see
    /// [`Recovery`](crate::connector::Recovery)), never blindly resent.
    Unknown { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_back_from_the_last_line_of_a_tasks_text() {
        let key = ActionKey::new("jd0123abct");
        let text = key.in_text("Call the customer.\nThen log it.");
        assert!(text.ends_with("\n\njourneyd-action: jd0123abct"));
        assert_eq!(ActionKey::from_text(&text), Some(key.clone()));
        assert_eq!(ActionKey::from_text(&key.in_text("")), Some(key.clone()));
        assert_eq!(ActionKey::from_text("no key here"), None);
        assert_eq!(ActionKey::from_text("journeyd-action: \n"), None);
        assert_eq!(key.in_text(&text), text, "the line is added once");
    }
}
