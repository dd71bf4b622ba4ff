//! Write-back: the corrective writes the violations log calls for, planned,
//! capped, recorded in the ledger before they are sent and confirmed after.
//!
//! - [`plan`] is pure: open violations (and resolved ones whose task is still
//!   open) plus what the ledger already holds -> the writes of this run.
//!   Every write has a deterministic key derived from its violation, so the
//!   same violation never yields two tasks, whatever crashes;
//! - [`run`] executes a plan against a connector: first it recovers writes a
//!   crash left unconfirmed (`pending`/`sent`) by asking the CRM which of
//!   their keys it holds, then sends the plan in batches, each batch
//!   recorded `pending`, then `sent`, then its outcomes, one transaction
//!   each.
//!
//! A [`dry_run`] plans and reports; it writes nothing, to the CRM or the
//! store, and needs no connector.

use crate::config::{ConnectorConfig, WritebackPolicy};
use crate::rules::{BuiltinRule, Fingerprint, PlannedAction, RuleId, Severity};
use crate::store::{
    LedgerEntry, LedgerMark, LedgerState, ResolvedTask, RunKind, RunStatus, Store, StoreError,
    StoreHandle, ViolationRow,
};
use chrono::{Days, NaiveDate, Utc};
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, Connector, ConnectorError,
    ConnectorName, ObjectKind, OwnerId, Priority, RecordId,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

/// A write that failed this many times is parked for an admin.
pub const MAX_ATTEMPTS: u32 = 3;

/// The line a task's body ends with: the key it is found by after a crash.
pub const TASK_MARKER: &str = "journeyd-action:";

/// The key of the one task a violation ever gets: `jd` + fingerprint + `t`.
/// Keys are one alphanumeric token, because the CRM searches them as a token.
pub fn task_key(fingerprint: &Fingerprint) -> ActionKey {
    ActionKey::new(format!("jd{fingerprint}t"))
}

/// The key of completing that task: `jd` + fingerprint + `c`.
pub fn completion_key(fingerprint: &Fingerprint) -> ActionKey {
    ActionKey::new(format!("jd{fingerprint}c"))
}

/// The key of setting `field` to `value` for a violation: a new target value
/// is a new action. `jd` + 32 hex digits of SHA-256 over the three parts
/// (each length-prefixed, so no two lists of parts collide) + `l`.
pub fn lifecycle_key(fingerprint: &Fingerprint, field: &str, value: &str) -> ActionKey {
    let mut hash = Sha256::new();
    for part in [fingerprint.as_str(), field, value] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let hex: String = hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ActionKey::new(format!("jd{hex}l"))
}

/// An open violation that calls for a write, with the record's current
/// value of the field a lifecycle change would set.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub violation: ViolationRow,
    pub current: Option<String>,
}

/// Everything [`plan`] decides from.
pub struct PlanInput<'a> {
    pub policy: &'a WritebackPolicy,
    /// Most severe first: the cap keeps the most important writes.
    pub candidates: &'a [Candidate],
    pub resolved: &'a [ResolvedTask],
    /// Ledger entries of the candidates' and resolved tasks' violations.
    pub ledger: &'a [LedgerEntry],
    pub today: NaiveDate,
}

/// One write, with what an admin needs to read about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    pub request: ActionRequest,
    pub fingerprint: Fingerprint,
    pub object: ObjectKind,
    pub record_id: RecordId,
    /// The record's name, or its id.
    pub record: String,
    /// Who a task is for.
    pub owner_id: Option<OwnerId>,
    pub rule: RuleId,
    pub message: String,
    /// Times it was sent before (a retry when above 0).
    pub attempts: u32,
}

/// A write the policy does not allow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotAllowed {
    pub fingerprint: Fingerprint,
    pub record: String,
    pub rule: RuleId,
    pub reason: String,
}

/// A write that failed [`MAX_ATTEMPTS`] times and is to be parked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToPark {
    pub key: ActionKey,
    pub attempts: u32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// To send this run, at most the policy's `max_writes_per_run`.
    pub writes: Vec<PlannedWrite>,
    /// Over the cap: they wait for the next run.
    pub deferred: Vec<PlannedWrite>,
    pub to_park: Vec<ToPark>,
    pub not_allowed: Vec<NotAllowed>,
    /// Writes the ledger holds already: applied, in flight, or parked.
    pub known: u64,
}

/// Plans this run's writes. Pure: no IO, no clock.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let ledger: HashMap<&ActionKey, &LedgerEntry> = input
        .ledger
        .iter()
        .map(|entry| (&entry.key, entry))
        .collect();
    let mut out = Plan::default();
    let mut wanted = Vec::new();
    let mut seen = BTreeSet::new();
    for candidate in input.candidates {
        let violation = &candidate.violation.violation;
        let record = record_label(violation.record_name.as_deref(), &violation.record_id);
        let not_allowed = |reason: String| NotAllowed {
            fingerprint: violation.fingerprint.clone(),
            record: record.clone(),
            rule: violation.rule.clone(),
            reason,
        };
        let request = match &violation.action {
            PlannedAction::Task { owner_id, .. } => {
                if !input.policy.task_objects.contains(&violation.object) {
                    out.not_allowed.push(not_allowed(format!(
                        "tasks may not be attached to {} records (writeback.task_objects)",
                        violation.object
                    )));
                    continue;
                }
                let key = task_key(&violation.fingerprint);
                ActionRequest::CreateTask {
                    body: task_body(&candidate.violation, &key),
                    key,
                    object: violation.object,
                    record_id: violation.record_id.clone(),
                    owner_id: owner_id.clone(),
                    subject: format!("[journeyd] {}: {record}", violation.rule),
                    due: input
                        .today
                        .checked_add_days(Days::new(u64::from(input.policy.task_due_days)))
                        .unwrap_or(input.today),
                    priority: priority(violation.severity),
                }
            }
            PlannedAction::SetLifecycle { field, value } => {
                let allowed = input
                    .policy
                    .fields
                    .get(&violation.object)
                    .is_some_and(|fields| fields.contains(field));
                if !allowed {
                    out.not_allowed.push(not_allowed(format!(
                        "field {field} of {} records is not in writeback.fields",
                        violation.object
                    )));
                    continue;
                }
                if candidate.current.as_deref() == Some(value.as_str()) {
                    // The CRM has the value already; the next audit resolves it.
                    continue;
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
            PlannedAction::None => continue,
        };
        wanted.push(PlannedWrite {
            fingerprint: violation.fingerprint.clone(),
            object: violation.object,
            record_id: violation.record_id.clone(),
            owner_id: violation.owner_id.clone(),
            rule: violation.rule.clone(),
            message: violation.message.clone(),
            record,
            attempts: 0,
            request,
        });
    }
    for task in input.resolved {
        let violation = &task.violation.violation;
        wanted.push(PlannedWrite {
            request: ActionRequest::CompleteTask {
                key: completion_key(&violation.fingerprint),
                task_id: task.task_id.clone(),
            },
            fingerprint: violation.fingerprint.clone(),
            object: violation.object,
            record_id: violation.record_id.clone(),
            record: record_label(violation.record_name.as_deref(), &violation.record_id),
            owner_id: violation.owner_id.clone(),
            rule: violation.rule.clone(),
            message: format!("resolved: {}", violation.message),
            attempts: 0,
        });
    }

    let cap = input.policy.max_writes_per_run.get() as usize;
    for mut write in wanted {
        let key = write.request.key().clone();
        if !seen.insert(key.clone()) {
            continue;
        }
        if let Some(entry) = ledger.get(&key) {
            match entry.state {
                LedgerState::Failed if entry.attempts < MAX_ATTEMPTS => {
                    write.attempts = entry.attempts;
                }
                LedgerState::Failed => {
                    out.to_park.push(ToPark {
                        key,
                        attempts: entry.attempts,
                        error: entry.error.clone(),
                    });
                    continue;
                }
                LedgerState::Applied
                | LedgerState::Pending
                | LedgerState::Sent
                | LedgerState::Parked => {
                    out.known += 1;
                    continue;
                }
            }
        }
        if out.writes.len() < cap {
            out.writes.push(write);
        } else {
            out.deferred.push(write);
        }
    }
    out
}

fn record_label(name: Option<&str>, id: &RecordId) -> String {
    match name {
        Some(name) if !name.trim().is_empty() => name.to_owned(),
        _ => id.to_string(),
    }
}

fn priority(severity: Severity) -> Priority {
    match severity {
        Severity::High => Priority::High,
        Severity::Medium => Priority::Normal,
        Severity::Low => Priority::Low,
    }
}

/// The violation's message, what to do about it, and the key marker line.
fn task_body(row: &ViolationRow, key: &ActionKey) -> String {
    let violation = &row.violation;
    let mut body = format!(
        "{}\n\nWhat to do: {}\n\n",
        violation.message,
        advice(&violation.rule)
    );
    body.push_str(&format!(
        "Journey check `{}` (severity {}",
        violation.rule, violation.severity
    ));
    if let Some(stage) = &violation.stage {
        body.push_str(&format!(", stage {stage}"));
    }
    body.push_str(&format!(
        "); this task closes itself once the check passes.\n{TASK_MARKER} {key}"
    ));
    body
}

fn advice(rule: &RuleId) -> String {
    let Some(rule) = BuiltinRule::parse(rule.as_str()) else {
        return format!("fix the record so that the rule `{rule}` no longer applies.");
    };
    match rule {
        BuiltinRule::MissingOwner => "assign an active owner to the record.",
        BuiltinRule::OwnerRoleMismatch => {
            "hand the record to an owner in the role accountable for its stage."
        }
        BuiltinRule::ExitCriteriaUnmet => {
            "complete what the earlier stage required, or move the record back to the stage it is really in."
        }
        BuiltinRule::StageSkipped => {
            "record what was done in the skipped stage, or move the record back to it."
        }
        BuiltinRule::Stalled => "move the record forward, close it, or note why it is waiting.",
        BuiltinRule::HandoffIncomplete => "fill in the data the next owner needs.",
        BuiltinRule::UnmappedStage => "ask the journeyd admin to map this stage.",
        BuiltinRule::LifecycleMismatch => "set the lifecycle status to match the journey stage.",
        BuiltinRule::DuplicateRecord => "merge the duplicate records, or mark which one is right.",
        BuiltinRule::MissingOnboardingTask => "create the onboarding task and plan the kickoff.",
    }
    .to_owned()
}

/// How a write-back run is to go.
pub struct WritebackOptions<'a> {
    pub connector: &'a ConnectorConfig,
    pub policy: &'a WritebackPolicy,
    pub today: NaiveDate,
    /// Actions per batch call.
    pub batch: NonZeroUsize,
}

/// The counts of a write-back run, as its run row holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WritebackCounts {
    /// Writes planned for this run (under the cap).
    pub planned: u64,
    /// Sent to the CRM (retries and recovered re-sends included).
    pub sent: u64,
    pub applied: u64,
    /// Failed; retried by a later run.
    pub failed: u64,
    /// Failed for good, or too often: waiting for an admin.
    pub parked: u64,
    /// Found already written in the CRM after a crash.
    pub recovered: u64,
    /// Left for the next run by `max_writes_per_run`.
    pub skipped_by_cap: u64,
    /// Not allowed by the write-back policy.
    pub not_allowed: u64,
    /// Already in the ledger.
    pub known: u64,
    /// Unconfirmed writes a crash left, to be recovered by the next
    /// `--apply` (dry runs only).
    pub unconfirmed: u64,
}

/// One write the CRM confirmed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Written {
    pub key: ActionKey,
    pub request: ActionRequest,
    pub crm_id: String,
    /// Found in the CRM after a crash rather than sent by this run.
    pub recovered: bool,
}

/// One write the CRM refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refused {
    pub key: ActionKey,
    pub reason: String,
    pub parked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WritebackReport {
    pub connector: ConnectorName,
    /// The run row (apply only).
    pub run: Option<i64>,
    pub applied: bool,
    pub status: RunStatus,
    pub counts: WritebackCounts,
    pub plan: Plan,
    pub written: Vec<Written>,
    pub refused: Vec<Refused>,
    /// Why the run ended early.
    pub error: Option<String>,
    pub ms: u64,
}

#[derive(Debug, Error)]
pub enum WritebackError {
    #[error("write-back of connector {connector} could not use the store")]
    Store {
        connector: ConnectorName,
        #[source]
        source: StoreError,
    },
}

/// What the planner reads, in one store call.
struct Inputs {
    candidates: Vec<Candidate>,
    resolved: Vec<ResolvedTask>,
    ledger: Vec<LedgerEntry>,
    unconfirmed: u64,
}

fn load(store: &Store, connector: &ConnectorName) -> Result<Inputs, StoreError> {
    let mut candidates = Vec::new();
    for row in store.writeback_candidates(connector)? {
        let current = match &row.violation.action {
            PlannedAction::SetLifecycle { .. } => store
                .record_snapshot(connector, row.violation.object, &row.violation.record_id)?
                .and_then(|record| record.lifecycle_status),
            _ => None,
        };
        candidates.push(Candidate {
            violation: row,
            current,
        });
    }
    let resolved = store.resolved_tasks(connector)?;
    let fingerprints: Vec<Fingerprint> = candidates
        .iter()
        .map(|c| c.violation.violation.fingerprint.clone())
        .chain(
            resolved
                .iter()
                .map(|t| t.violation.violation.fingerprint.clone()),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ledger = store.ledger_by_fingerprints(&fingerprints)?;
    let unconfirmed = store.ledger_unconfirmed(connector)?.len() as u64;
    Ok(Inputs {
        candidates,
        resolved,
        ledger,
        unconfirmed,
    })
}

/// Why a run stopped before its end.
enum Halt {
    Connector(ConnectorError),
    Store(StoreError),
}

impl From<StoreError> for Halt {
    fn from(error: StoreError) -> Self {
        Halt::Store(error)
    }
}

fn empty_report(name: &ConnectorName, applied: bool) -> WritebackReport {
    WritebackReport {
        connector: name.clone(),
        run: None,
        applied,
        status: RunStatus::Running,
        counts: WritebackCounts::default(),
        plan: Plan::default(),
        written: Vec::new(),
        refused: Vec::new(),
        error: None,
        ms: 0,
    }
}

/// Plans one write-back run of `options.connector` and writes nothing, to
/// the CRM or the store: what `run` would send now (recovery aside).
pub async fn dry_run(
    store: &StoreHandle,
    options: &WritebackOptions<'_>,
) -> Result<WritebackReport, WritebackError> {
    let started = Instant::now();
    let name = options.connector.name.clone();
    let mut report = empty_report(&name, false);
    let inputs = {
        let name = name.clone();
        store.call(move |s| load(s, &name)).await
    }
    .map_err(|source| WritebackError::Store {
        connector: name.clone(),
        source,
    })?;
    report.plan = plan_from(&inputs, options);
    report.counts = plan_counts(&report.plan);
    report.counts.unconfirmed = inputs.unconfirmed;
    report.status = RunStatus::Ok;
    report.ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Executes one write-back run of `connector`: recovery, then the plan.
/// The caller checks that writing is both asked for and allowed by the
/// config. Connector errors end the run and are in the report (writes then
/// in flight stay `sent`, for the next run's recovery); only a store that
/// cannot be used is an `Err`.
pub async fn run<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
) -> Result<WritebackReport, WritebackError> {
    let started = Instant::now();
    let name = options.connector.name.clone();
    let store_error = |source| WritebackError::Store {
        connector: name.clone(),
        source,
    };
    let mut report = empty_report(&name, true);
    let span = tracing::info_span!("write", connector = %name);

    let run = {
        let name = name.clone();
        store
            .call(move |s| s.begin_run(RunKind::Writeback, Some(&name), Utc::now()))
            .await
            .map_err(store_error)?
    };
    report.run = Some(run.0);
    let outcome = apply(store, connector, options, &mut report)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    report.status = match outcome {
        Ok(()) if report.counts.failed + report.counts.parked > 0 => RunStatus::Partial,
        Ok(()) => RunStatus::Ok,
        Err(Halt::Connector(error)) => {
            let allowance = matches!(error, ConnectorError::AllowanceExhausted { .. });
            if allowance {
                tracing::warn!(connector = %name, error = %error, "write-back stopped: allowance exhausted");
            } else {
                tracing::error!(connector = %name, error = %error, "write-back stopped");
            }
            report.error = Some(format!(
                "{error}: writes in flight are checked against the CRM at the next run"
            ));
            if allowance {
                RunStatus::Partial
            } else {
                RunStatus::Failed
            }
        }
        Err(Halt::Store(source)) => {
            tracing::error!(connector = %name, error = %source, "write-back could not use the store");
            let message = source.to_string();
            let _ = store
                .call(move |s| s.fail_run(run, &message, Utc::now()))
                .await;
            return Err(store_error(source));
        }
    };
    report.ms = started.elapsed().as_millis() as u64;
    let counts = serde_json::to_value(&report.counts).unwrap_or_default();
    let (status, error) = (report.status, report.error.clone());
    store
        .call(move |s| s.finish_run(run, status, &counts, error.as_deref(), Utc::now()))
        .await
        .map_err(store_error)?;
    tracing::info!(
        connector = %name,
        status = %report.status,
        sent = report.counts.sent,
        applied = report.counts.applied,
        failed = report.counts.failed,
        parked = report.counts.parked,
        recovered = report.counts.recovered,
        ms = report.ms,
        "write-back finished"
    );
    Ok(report)
}

fn plan_from(inputs: &Inputs, options: &WritebackOptions<'_>) -> Plan {
    plan(&PlanInput {
        policy: options.policy,
        candidates: &inputs.candidates,
        resolved: &inputs.resolved,
        ledger: &inputs.ledger,
        today: options.today,
    })
}

fn plan_counts(plan: &Plan) -> WritebackCounts {
    WritebackCounts {
        planned: plan.writes.len() as u64,
        skipped_by_cap: plan.deferred.len() as u64,
        not_allowed: plan.not_allowed.len() as u64,
        known: plan.known,
        ..WritebackCounts::default()
    }
}

async fn apply<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
    report: &mut WritebackReport,
) -> Result<(), Halt> {
    let name = options.connector.name.clone();
    let batch = options.batch.get();

    // Recovery: what a crash left unconfirmed may be in the CRM already.
    let unconfirmed = {
        let name = name.clone();
        store.call(move |s| s.ledger_unconfirmed(&name)).await?
    };
    let mut resend: Vec<(ActionRequest, Fingerprint)> = Vec::new();
    for chunk in unconfirmed.chunks(batch) {
        let keys: Vec<ActionKey> = chunk.iter().map(|entry| entry.key.clone()).collect();
        let found = connector
            .find_applied(&keys)
            .await
            .map_err(Halt::Connector)?;
        let found: HashMap<ActionKey, String> = found
            .into_iter()
            .filter_map(|outcome| match outcome.result {
                ActionResult::Applied { crm_id } => Some((outcome.key, crm_id)),
                ActionResult::Failed { .. } => None,
            })
            .collect();
        let mut marks = Vec::new();
        for entry in chunk {
            match found.get(&entry.key) {
                Some(crm_id) => {
                    marks.push(LedgerMark {
                        crm_id: Some(crm_id.clone()),
                        ..LedgerMark::new(entry.key.clone(), LedgerState::Applied)
                    });
                    report.written.push(Written {
                        key: entry.key.clone(),
                        request: entry.request.clone(),
                        crm_id: crm_id.clone(),
                        recovered: true,
                    });
                }
                None => resend.push((entry.request.clone(), entry.fingerprint.clone())),
            }
        }
        report.counts.recovered += marks.len() as u64;
        store
            .call(move |s| s.ledger_mark_all(&marks, Utc::now()))
            .await?;
    }
    if report.counts.recovered > 0 || !resend.is_empty() {
        tracing::warn!(
            connector = %name,
            recovered = report.counts.recovered,
            resent = resend.len(),
            "recovered write-back actions left unconfirmed by an earlier run"
        );
    }

    let inputs = {
        let name = name.clone();
        store.call(move |s| load(s, &name)).await?
    };
    report.plan = plan_from(&inputs, options);
    let recovered = report.counts.recovered;
    report.counts = plan_counts(&report.plan);
    report.counts.recovered = recovered;

    if !report.plan.to_park.is_empty() {
        let marks: Vec<LedgerMark> = report
            .plan
            .to_park
            .iter()
            .map(|park| LedgerMark {
                error: Some(format!(
                    "failed {} times; last: {}",
                    park.attempts,
                    park.error.as_deref().unwrap_or("no reason given")
                )),
                ..LedgerMark::new(park.key.clone(), LedgerState::Parked)
            })
            .collect();
        report.counts.parked += marks.len() as u64;
        store
            .call(move |s| s.ledger_mark_all(&marks, Utc::now()))
            .await?;
    }

    let sends: Vec<(ActionRequest, Fingerprint)> = resend
        .into_iter()
        .chain(
            report
                .plan
                .writes
                .iter()
                .map(|write| (write.request.clone(), write.fingerprint.clone())),
        )
        .collect();
    for chunk in sends.chunks(batch) {
        send_batch(store, connector, &name, chunk, report).await?;
    }
    Ok(())
}

/// One batch: recorded `pending`, then `sent`, then sent, then each outcome
/// recorded; three transactions around one call.
async fn send_batch<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    name: &ConnectorName,
    chunk: &[(ActionRequest, Fingerprint)],
    report: &mut WritebackReport,
) -> Result<(), Halt> {
    let staged = chunk.to_vec();
    let keys: Vec<ActionKey> = chunk.iter().map(|(r, _)| r.key().clone()).collect();
    {
        let name = name.clone();
        let sent: Vec<LedgerMark> = keys
            .iter()
            .map(|key| LedgerMark::new(key.clone(), LedgerState::Sent))
            .collect();
        store
            .call(move |s| {
                let at = Utc::now();
                s.ledger_stage(&name, &staged, at)?;
                s.ledger_mark_all(&sent, at)
            })
            .await?;
    }
    report.counts.sent += chunk.len() as u64;
    let requests: Vec<ActionRequest> = chunk.iter().map(|(r, _)| r.clone()).collect();
    let outcomes = connector.apply(&requests).await.map_err(Halt::Connector)?;
    let mut by_key: HashMap<ActionKey, ActionResult> = outcomes
        .into_iter()
        .map(|ActionOutcome { key, result }| (key, result))
        .collect();
    let mut marks = Vec::with_capacity(chunk.len());
    for request in requests {
        let key = request.key().clone();
        let result = by_key.remove(&key).unwrap_or(ActionResult::Failed {
            reason: "the connector reported no outcome for this action".into(),
            retryable: true,
        });
        match result {
            ActionResult::Applied { crm_id } => {
                report.counts.applied += 1;
                marks.push(LedgerMark {
                    crm_id: Some(crm_id.clone()),
                    ..LedgerMark::new(key.clone(), LedgerState::Applied)
                });
                report.written.push(Written {
                    key,
                    request,
                    crm_id,
                    recovered: false,
                });
            }
            ActionResult::Failed { reason, retryable } => {
                let state = if retryable {
                    report.counts.failed += 1;
                    LedgerState::Failed
                } else {
                    report.counts.parked += 1;
                    LedgerState::Parked
                };
                tracing::warn!(connector = %name, key = %key, error = %reason, retryable, "write-back action failed");
                marks.push(LedgerMark {
                    error: Some(reason.clone()),
                    ..LedgerMark::new(key.clone(), state)
                });
                report.refused.push(Refused {
                    key,
                    reason,
                    parked: !retryable,
                });
            }
        }
    }
    store
        .call(move |s| s.ledger_mark_all(&marks, Utc::now()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
