//! Write-back: the corrective writes the violations log calls for, planned,
//! capped, recorded in the ledger before they are sent and confirmed after.
//!
//! - [`plan`] reads the store a page at a time: the open violations whose
//!   write is due (and resolved ones whose task is still open), in the
//!   order the cap keeps, up to the cap; what the ledger holds already,
//!   what the policy refuses and what is over the cap are counted by the
//!   store, never read, so planning takes memory for the cap and a page,
//!   whatever the size of the violations log. Every write has a
//!   deterministic key derived from its violation, so the same violation
//!   never yields two tasks, whatever crashes;
//! - [`run`] executes a plan against a connector: first it recovers writes a
//!   crash left unconfirmed (`pending`/`sent`) by asking the CRM which of
//!   their keys it holds, a batch at a time, then sends the plan in
//!   batches, each batch recorded `pending`, then `sent`, then its
//!   outcomes, one transaction each.
//!
//! A [`dry_run`] plans and reports; it writes nothing, to the CRM or the
//! store, and needs no connector.

use crate::config::{ConnectorConfig, WritebackPolicy};
use crate::rules::{BuiltinRule, Fingerprint, PlannedAction, RuleId, Severity};
use crate::store::{
    FailedWrite, LedgerCursor, LedgerEntry, LedgerMark, LedgerState, ResolvedTask, RunKind,
    RunStatus, Store, StoreError, StoreHandle, ViolationRow, WriteCandidate, WriteClass,
    WritebackFilter,
};
use chrono::{Days, NaiveDate, Utc};
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, Connector, ConnectorError,
    ConnectorName, ObjectKind, OwnerId, Priority, RecordId,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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

/// Rows the planner reads per store query. With the cap, what bounds the
/// memory of planning: a page is read, turned into writes, and dropped.
const PAGE: usize = 500;

/// Refused writes, and writes to park, that a plan names one by one; the
/// rest are counted.
pub const LISTED: usize = 100;

/// Rows per store query, and names per list, of one plan.
#[derive(Debug, Clone, Copy)]
struct Paging {
    page: usize,
    listed: usize,
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

impl From<&FailedWrite> for ToPark {
    fn from(failed: &FailedWrite) -> Self {
        ToPark {
            key: failed.key.clone(),
            attempts: failed.attempts,
            error: failed.error.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// To send this run, at most the policy's `max_writes_per_run`: the
    /// open violations' writes, most severe first, then the completions of
    /// resolved violations' tasks. Empty in an applied run's report, which
    /// lists them as written or refused instead (`counts.planned` stays).
    pub writes: Vec<PlannedWrite>,
    /// Writes over the cap: they wait for the next run.
    pub deferred: u64,
    /// Writes that failed [`MAX_ATTEMPTS`] times: the first [`LISTED`].
    pub to_park: Vec<ToPark>,
    /// How many writes are to park.
    pub to_park_count: u64,
    /// Writes the policy does not allow: the first [`LISTED`].
    pub not_allowed: Vec<NotAllowed>,
    /// How many writes the policy does not allow.
    pub not_allowed_count: u64,
    /// Writes the ledger holds already: applied, in flight, or parked.
    pub known: u64,
}

/// What the planner makes of one candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Write(PlannedWrite),
    NotAllowed(NotAllowed),
    /// Nothing to write: the CRM holds the value already (the next audit
    /// resolves the violation), or the violation calls for no write.
    Nothing,
}

/// The write one open violation calls for, as the policy allows it. Pure:
/// the store sorted the candidate already, this builds its request and
/// checks the allow-lists once more right before anything can be sent.
pub fn judge(candidate: &WriteCandidate, policy: &WritebackPolicy, today: NaiveDate) -> Verdict {
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
    let request = match &violation.action {
        PlannedAction::Task { owner_id, .. } => {
            if !policy.task_objects.contains(&violation.object) {
                return not_allowed(format!(
                    "tasks may not be attached to {} records (writeback.task_objects)",
                    violation.object
                ));
            }
            let key = task_key(&violation.fingerprint);
            ActionRequest::CreateTask {
                body: task_body(&candidate.violation, &key),
                key,
                object: violation.object,
                record_id: violation.record_id.clone(),
                owner_id: owner_id.clone(),
                subject: format!("[journeyd] {}: {record}", violation.rule),
                due: today
                    .checked_add_days(Days::new(u64::from(policy.task_due_days)))
                    .unwrap_or(today),
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
    Verdict::Write(PlannedWrite {
        fingerprint: violation.fingerprint.clone(),
        object: violation.object,
        record_id: violation.record_id.clone(),
        owner_id: violation.owner_id.clone(),
        rule: violation.rule.clone(),
        message: violation.message.clone(),
        record,
        attempts: candidate
            .failed
            .as_ref()
            .map_or(0, |failed| failed.attempts),
        request,
    })
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
        rule: violation.rule.clone(),
        message: format!("resolved: {}", violation.message),
        attempts: task.failed.as_ref().map_or(0, |failed| failed.attempts),
    }
}

/// The policy as the store's queries sort writes by it.
fn filter(policy: &WritebackPolicy) -> WritebackFilter<'_> {
    WritebackFilter {
        task_objects: &policy.task_objects,
        fields: &policy.fields,
        max_attempts: MAX_ATTEMPTS,
    }
}

/// Plans this run's writes of `connector`, reading the store a page at a
/// time. The writes are the first the cap allows of those due, in the
/// order the cap keeps: the open violations' writes, most severe first,
/// then by violation id; then the completions of resolved violations'
/// tasks, by violation id. Writes the ledger holds, refused, or to park
/// never take a place under the cap; they, and the writes over it, are
/// counted by the store rather than read.
pub fn plan(
    store: &Store,
    connector: &ConnectorName,
    policy: &WritebackPolicy,
    today: NaiveDate,
) -> Result<Plan, StoreError> {
    let paging = Paging {
        page: PAGE,
        listed: LISTED,
    };
    plan_paged(store, connector, policy, today, paging)
}

fn plan_paged(
    store: &Store,
    connector: &ConnectorName,
    policy: &WritebackPolicy,
    today: NaiveDate,
    paging: Paging,
) -> Result<Plan, StoreError> {
    let Paging { page: rows, listed } = paging;
    let filter = filter(policy);
    let tally = store.writeback_tally(connector, &filter)?;
    let cap = usize::try_from(policy.max_writes_per_run.get()).unwrap_or(usize::MAX);
    let mut out = Plan {
        to_park_count: tally.to_park,
        not_allowed_count: tally.not_allowed,
        known: tally.known,
        ..Plan::default()
    };

    let mut due = tally.due;
    let mut after = None;
    while out.writes.len() < cap {
        let limit = rows.min(cap - out.writes.len());
        let page = store.writeback_candidates(connector, &filter, WriteClass::Due, after, limit)?;
        after = page.last().map(WriteCandidate::cursor);
        let last = page.len() < limit;
        for candidate in &page {
            match judge(candidate, policy, today) {
                Verdict::Write(write) => out.writes.push(write),
                // The store's sorting and the policy disagree: the policy
                // wins, and the write is reported as refused.
                Verdict::NotAllowed(refused) => {
                    due = due.saturating_sub(1);
                    out.not_allowed_count += 1;
                    if out.not_allowed.len() < listed {
                        out.not_allowed.push(refused);
                    }
                }
                Verdict::Nothing => due = due.saturating_sub(1),
            }
        }
        if last {
            break;
        }
    }
    let mut after = None;
    while out.writes.len() < cap {
        let limit = rows.min(cap - out.writes.len());
        let page = store.resolved_tasks(connector, &filter, WriteClass::Due, after, limit)?;
        after = page.last().map(|task| task.violation.id);
        let last = page.len() < limit;
        out.writes.extend(page.iter().map(completion));
        if last {
            break;
        }
    }
    out.deferred = due.saturating_sub(out.writes.len() as u64);

    let more = listed.saturating_sub(out.not_allowed.len());
    if more > 0 {
        let refused =
            store.writeback_candidates(connector, &filter, WriteClass::NotAllowed, None, more)?;
        out.not_allowed
            .extend(
                refused
                    .iter()
                    .filter_map(|candidate| match judge(candidate, policy, today) {
                        Verdict::NotAllowed(refused) => Some(refused),
                        Verdict::Write(_) | Verdict::Nothing => None,
                    }),
            );
    }
    let exhausted =
        store.writeback_candidates(connector, &filter, WriteClass::ToPark, None, listed)?;
    out.to_park.extend(
        exhausted
            .iter()
            .filter_map(|c| c.failed.as_ref())
            .map(ToPark::from),
    );
    let more = listed - out.to_park.len();
    if more > 0 {
        let exhausted = store.resolved_tasks(connector, &filter, WriteClass::ToPark, None, more)?;
        out.to_park.extend(
            exhausted
                .iter()
                .filter_map(|t| t.failed.as_ref())
                .map(ToPark::from),
        );
    }
    Ok(out)
}

/// Parks every write that failed [`MAX_ATTEMPTS`] times, a page at a time,
/// in plan order. Returns how many it parked.
fn park_exhausted(
    store: &mut Store,
    connector: &ConnectorName,
    policy: &WritebackPolicy,
) -> Result<u64, StoreError> {
    let filter = filter(policy);
    let mark = |failed: &FailedWrite| LedgerMark {
        error: Some(format!(
            "failed {} times; last: {}",
            failed.attempts,
            failed.error.as_deref().unwrap_or("no reason given")
        )),
        ..LedgerMark::new(failed.key.clone(), LedgerState::Parked)
    };
    let mut parked = 0;
    let mut after = None;
    loop {
        let page =
            store.writeback_candidates(connector, &filter, WriteClass::ToPark, after, PAGE)?;
        after = page.last().map(WriteCandidate::cursor);
        let marks: Vec<LedgerMark> = page
            .iter()
            .filter_map(|c| c.failed.as_ref())
            .map(mark)
            .collect();
        store.ledger_mark_all(&marks, Utc::now())?;
        parked += marks.len() as u64;
        if page.len() < PAGE {
            break;
        }
    }
    let mut after = None;
    loop {
        let page = store.resolved_tasks(connector, &filter, WriteClass::ToPark, after, PAGE)?;
        after = page.last().map(|task| task.violation.id);
        let marks: Vec<LedgerMark> = page
            .iter()
            .filter_map(|t| t.failed.as_ref())
            .map(mark)
            .collect();
        store.ledger_mark_all(&marks, Utc::now())?;
        parked += marks.len() as u64;
        if page.len() < PAGE {
            break;
        }
    }
    Ok(parked)
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
    /// When set and `true`, the run sends no further batch: the batch in
    /// hand is finished and recorded, the rest waits for the next run.
    pub shutdown: Option<&'a crate::sync::Shutdown>,
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

/// The plan of this run and the count of unconfirmed writes, in one store
/// call.
async fn plan_now(
    store: &StoreHandle,
    options: &WritebackOptions<'_>,
) -> Result<(Plan, u64), StoreError> {
    let name = options.connector.name.clone();
    let policy = options.policy.clone();
    let today = options.today;
    store
        .call(move |s| {
            let plan = plan(s, &name, &policy, today)?;
            Ok((plan, s.ledger_unconfirmed_count(&name)?))
        })
        .await
}

/// Why a run stopped before its end.
enum Halt {
    Shutdown,
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
    let (plan, unconfirmed) =
        plan_now(store, options)
            .await
            .map_err(|source| WritebackError::Store {
                connector: name.clone(),
                source,
            })?;
    report.plan = plan;
    report.counts = plan_counts(&report.plan);
    report.counts.unconfirmed = unconfirmed;
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
        Err(Halt::Shutdown) => {
            tracing::warn!(connector = %name, "write-back stopped by shutdown between batches");
            report.error =
                Some("stopped by shutdown; the writes not sent wait for the next run".into());
            RunStatus::Partial
        }
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

fn plan_counts(plan: &Plan) -> WritebackCounts {
    WritebackCounts {
        planned: plan.writes.len() as u64,
        skipped_by_cap: plan.deferred,
        not_allowed: plan.not_allowed_count,
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
    // One lookup per batch of keys; what the CRM lacks stays unconfirmed,
    // to be sent again below.
    let mut resend = 0;
    let mut after: Option<LedgerCursor> = None;
    loop {
        let page = {
            let (name, after) = (name.clone(), after.clone());
            store
                .call(move |s| s.ledger_unconfirmed(&name, after.as_ref(), batch))
                .await?
        };
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.cursor());
        let keys: Vec<ActionKey> = page.iter().map(|entry| entry.key.clone()).collect();
        let found = connector
            .find_applied(&keys, chrono::DateTime::<Utc>::MIN_UTC)
            .await
            .map_err(Halt::Connector)?;
        let found: HashMap<ActionKey, String> = found
            .into_iter()
            .filter_map(|outcome| match outcome.result {
                ActionResult::Applied { crm_id } => Some((outcome.key, crm_id)),
                ActionResult::Failed { .. } | ActionResult::Unknown { .. } => None,
            })
            .collect();
        let mut marks = Vec::new();
        for entry in &page {
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
                None => resend += 1,
            }
        }
        report.counts.recovered += marks.len() as u64;
        store
            .call(move |s| s.ledger_mark_all(&marks, Utc::now()))
            .await?;
        if page.len() < batch {
            break;
        }
    }
    if report.counts.recovered > 0 || resend > 0 {
        tracing::warn!(
            connector = %name,
            recovered = report.counts.recovered,
            resent = resend,
            "recovered write-back actions left unconfirmed by an earlier run"
        );
    }

    // Planned while the writes to send again are still unconfirmed, so
    // that the plan counts them as in flight and never sends them twice.
    let (plan, _) = plan_now(store, options).await?;
    report.plan = plan;
    let recovered = report.counts.recovered;
    report.counts = plan_counts(&report.plan);
    report.counts.recovered = recovered;

    if report.plan.to_park_count > 0 {
        let (name, policy) = (name.clone(), options.policy.clone());
        report.counts.parked += store
            .call(move |s| park_exhausted(s, &name, &policy))
            .await?;
    }

    // The writes to send again, then the plan, in batches of `batch`.
    let mut outbox: Vec<(ActionRequest, Fingerprint)> = Vec::with_capacity(batch);
    let mut after: Option<LedgerCursor> = None;
    if resend > 0 {
        loop {
            let page = {
                let (name, after) = (name.clone(), after.clone());
                store
                    .call(move |s| s.ledger_unconfirmed(&name, after.as_ref(), batch))
                    .await?
            };
            after = page.last().map(LedgerEntry::cursor);
            let last = page.len() < batch;
            for entry in page {
                outbox.push((entry.request, entry.fingerprint));
                if outbox.len() == batch {
                    send_batch(store, connector, &name, &outbox, report, options).await?;
                    outbox.clear();
                }
            }
            if last {
                break;
            }
        }
    }
    // Taken out of the report as they go: an applied run reports each
    // write once, as written or refused, not also as planned.
    for write in std::mem::take(&mut report.plan.writes) {
        outbox.push((write.request, write.fingerprint));
        if outbox.len() == batch {
            send_batch(store, connector, &name, &outbox, report, options).await?;
            outbox.clear();
        }
    }
    if !outbox.is_empty() {
        send_batch(store, connector, &name, &outbox, report, options).await?;
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
    options: &WritebackOptions<'_>,
) -> Result<(), Halt> {
    if options.shutdown.is_some_and(|stop| *stop.borrow()) {
        return Err(Halt::Shutdown);
    }
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
            ActionResult::Unknown { reason } => {
                tracing::warn!(connector = %name, key = %key, error = %reason, "write-back outcome unknown");
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
