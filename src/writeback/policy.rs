//! What the write-back policy allows one violation's own write to be: a
//! task only on the objects `task_objects` names, a field only when
//! `fields` lists it, never a value the CRM holds already, and never a task
//! nobody can take. Pure: it reads what the store sorted and builds the
//! request; the allow-lists are checked once more right before anything
//! can be sent.

use super::keys::{completion_key, lifecycle_key, task_key};
use super::owners::{Fallbacks, RecordOwner};
use super::plan::{NotAllowed, PlannedWrite, Unassigned};
use super::task_text::{priority, record_label, violation_body, violation_subject};
use crate::config::WritebackPolicy;
use crate::rules::PlannedAction;
use crate::store::{ResolvedTask, WriteCandidate};
use chrono::NaiveDate;
use journeyd_connector::ActionRequest;

/// What the planner makes of one candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Write(Box<PlannedWrite>),
    NotAllowed(NotAllowed),
    /// A task nobody can take.
    Unassigned(Unassigned),
    /// Nothing to write: the CRM holds the value already (the next audit
    /// resolves the violation), or the violation calls for no write.
    Nothing,
}

/// The write one open violation calls for, as the policy allows it and
/// someone can take it. Pure: the store sorted the candidate already; this
/// builds its request and checks the allow-lists once more right before
/// anything can be sent. `due` is a new task's due date.
pub fn judge(
    candidate: &WriteCandidate,
    policy: &WritebackPolicy,
    fallbacks: &Fallbacks,
    due: NaiveDate,
) -> Verdict {
    let violation = &candidate.violation.violation;
    let record = record_label(violation.record_name.as_deref(), &violation.record_id);
    let not_allowed = |reason: String| {
        Verdict::NotAllowed(NotAllowed {
            fingerprint: violation.fingerprint.clone(),
            record: record.clone(),
            rule: violation.rule.clone(),
            reason,
        })
    };
    let mut owner_id = violation.owner_id.clone();
    let mut owner = None;
    let mut fallback = None;
    let request = match &violation.action {
        PlannedAction::Task { .. } => {
            if !policy.task_objects.contains(&violation.object) {
                return not_allowed(format!(
                    "tasks may not be attached to {} records (writeback.task_objects)",
                    violation.object
                ));
            }
            let record_owner = RecordOwner::of(
                candidate.owner_id.as_ref(),
                candidate.owner_active,
                candidate.owner_name.as_deref(),
            );
            let assignee = fallbacks.assign(record_owner.as_ref(), violation.owner_role.as_ref());
            if let Some(reason) = assignee.nobody() {
                return Verdict::Unassigned(Unassigned {
                    object: violation.object,
                    record_id: violation.record_id.clone(),
                    record,
                    rules: vec![violation.rule.clone()],
                    reason: reason.to_owned(),
                });
            }
            fallback = assignee.fallback_note();
            owner_id = assignee.owner_id().cloned();
            owner = assignee.label();
            let key = task_key(&violation.fingerprint);
            ActionRequest::CreateTask {
                body: key.in_text(&violation_body(&candidate.violation)),
                key,
                object: violation.object,
                record_id: violation.record_id.clone(),
                owner_id: owner_id.clone(),
                subject: violation_subject(&violation.rule, &record),
                due,
                priority: priority(violation.severity),
            }
        }
        PlannedAction::SetLifecycle { field, value } => {
            let allowed = policy
                .fields
                .get(&violation.object)
                .is_some_and(|fields| fields.contains(field));
            if !allowed {
                return not_allowed(format!(
                    "field {field} of {} records is not in writeback.fields",
                    violation.object
                ));
            }
            if candidate.current.as_deref() == Some(value.as_str()) {
                return Verdict::Nothing;
            }
            ActionRequest::SetField {
                key: lifecycle_key(&violation.fingerprint, field, value),
                object: violation.object,
                record_id: violation.record_id.clone(),
                field: field.clone(),
                value: value.clone(),
                current: candidate.current.clone(),
            }
        }
        PlannedAction::None => return Verdict::Nothing,
    };
    let task_key = match &request {
        ActionRequest::CreateTask { key, .. } => Some(key.clone()),
        _ => None,
    };
    Verdict::Write(Box::new(PlannedWrite {
        fingerprint: violation.fingerprint.clone(),
        object: violation.object,
        record_id: violation.record_id.clone(),
        owner_id,
        owner,
        fallback,
        rule: violation.rule.clone(),
        rules: Vec::new(),
        message: violation.message.clone(),
        record,
        attempts: candidate
            .failed
            .as_ref()
            .map_or(0, |failed| failed.attempts),
        request,
        task_key,
        record_task: None,
    }))
}

/// Completing the task of a resolved violation.
pub fn completion(task: &ResolvedTask) -> PlannedWrite {
    let violation = &task.violation.violation;
    PlannedWrite {
        request: ActionRequest::CompleteTask {
            key: completion_key(&violation.fingerprint),
            task_id: task.task_id.clone(),
        },
        fingerprint: violation.fingerprint.clone(),
        object: violation.object,
        record_id: violation.record_id.clone(),
        record: record_label(violation.record_name.as_deref(), &violation.record_id),
        owner_id: violation.owner_id.clone(),
        owner: None,
        fallback: None,
        rule: violation.rule.clone(),
        rules: Vec::new(),
        message: format!("resolved: {}", violation.message),
        attempts: task.failed.as_ref().map_or(0, |failed| failed.attempts),
        task_key: Some(task.task_key.clone()),
        record_task: None,
    }
}
