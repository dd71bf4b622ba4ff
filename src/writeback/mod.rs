//! Write-back: the corrective writes the violations log calls for,
//! planned, capped, recorded in the ledger before they are sent and
//! confirmed after, so that no write is ever made twice, whatever crashes.
//!
//! Map of the module:
//! - [`keys`]: every write's deterministic key;
//! - [`policy`]: what one violation's own write may be (allow-lists);
//! - [`owners`]: who a task goes to (the owner, a role's fallback, nobody);
//! - [`task_text`]: what a task says;
//! - [`plan`]: this run's writes, in the cap's order, the rest counted;
//! - [`recovery`]: settling writes an earlier run left unconfirmed, each
//!   CRM's own way, before anything new is sent;
//! - [`send`]: one batch: recorded as sent, sent, each outcome recorded;
//! - [`park`]: writes that failed too often, set aside for an admin.
//!
//! A [`dry_run`] plans and reports from the state file alone: no CRM call,
//! no secret. [`run`] recovers, plans and sends, stopping between batches
//! when told to shut down.

pub mod keys;
pub mod owners;
pub mod park;
pub mod plan;
pub mod policy;
pub mod recovery;
pub mod send;
pub mod task_text;

pub use keys::{completion_key, lifecycle_key, task_key};
pub use plan::{NotAllowed, Plan, PlannedWrite, Planning, ToPark, Unassigned};
pub use policy::{Verdict, judge};

use crate::config::{ConnectorConfig, WritebackPolicy};
use crate::journey::Journey;
use crate::store::{RunKind, RunStatus, StoreError, StoreHandle};
use crate::telemetry::ErrorChain;
use chrono::{NaiveDate, Utc};
use journeyd_connector::{ActionKey, ActionRequest, Connector, ConnectorError, ConnectorName};
use serde::Serialize;
use std::num::NonZeroUsize;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

/// A write that failed this many times is parked for an admin.
pub const MAX_ATTEMPTS: u32 = 3;

/// The line a task's body ends with: the key it is found by after a crash.
pub const TASK_MARKER: &str = "journeyd-action:";

/// Refused writes, unassigned tasks and writes to park that a plan names
/// one by one; the rest are counted.
pub const LISTED: usize = 100;

/// How a write-back run is to go.
pub struct WritebackOptions<'a> {
    pub connector: &'a ConnectorConfig,
    pub policy: &'a WritebackPolicy,
    pub journey: &'a Journey,
    pub today: NaiveDate,
    /// Actions per batch call.
    pub batch: NonZeroUsize,
    /// When set and `true`, the run sends no further batch and stops any
    /// wait: the batch in hand is finished and recorded, the rest waits for
    /// the next run.
    pub shutdown: Option<&'a crate::sync::Shutdown>,
}

impl WritebackOptions<'_> {
    fn stopping(&self) -> bool {
        self.shutdown.is_some_and(|stop| *stop.borrow())
    }
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
    /// Sent again after recovery found the CRM lacks them (part of `sent`).
    pub resent: u64,
    /// Sent, but the CRM's answer proves nothing: recovered by a later run.
    pub unknown: u64,
    /// Tasks not created because nobody can take them.
    pub unassigned: u64,
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

impl WritebackReport {
    fn empty(name: &ConnectorName, applied: bool) -> Self {
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

    /// Takes in the counts of `plan`, and the plan itself.
    fn planned(&mut self, plan: Plan) {
        self.counts.planned = plan.writes.len() as u64;
        self.counts.skipped_by_cap = plan.deferred;
        self.counts.not_allowed = plan.not_allowed_count;
        self.counts.known = plan.known;
        self.counts.unassigned = plan.unassigned_count;
        self.plan = plan;
    }
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

/// The plan for `room` writes and the count of unconfirmed writes, in one
/// store call.
async fn plan_now(
    store: &StoreHandle,
    options: &WritebackOptions<'_>,
    room: u64,
) -> Result<(Plan, u64), StoreError> {
    // The store runs on its own thread: it gets owned copies of what the
    // plan is made from.
    let connector = options.connector.clone();
    let policy = options.policy.clone();
    let stages = task_text::Stages::of(options.journey);
    let today = options.today;
    store
        .call(move |s| {
            let input = Planning {
                connector: &connector,
                policy: &policy,
                stages: &stages,
                today,
                room,
            };
            let plan = plan::plan(s, &input)?;
            Ok((plan, s.ledger_unconfirmed_count(&connector.name)?))
        })
        .await
}

/// Plans one write-back run of `options.connector` and writes nothing to
/// the CRM, the ledger or the runs: what `run` would send now (recovery
/// aside). Like every plan, it keeps what it judged each record's task
/// needs, so that the next plan judges only what changed.
pub async fn dry_run(
    store: &StoreHandle,
    options: &WritebackOptions<'_>,
) -> Result<WritebackReport, WritebackError> {
    let started = Instant::now();
    let name = options.connector.name.clone();
    let mut report = WritebackReport::empty(&name, false);
    let room = u64::from(options.policy.max_writes_per_run.get());
    let (plan, unconfirmed) =
        plan_now(store, options, room)
            .await
            .map_err(|source| WritebackError::Store {
                connector: name.clone(),
                source,
            })?;
    report.planned(plan);
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
    let mut report = WritebackReport::empty(&name, true);
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
        Ok(()) if report.counts.failed + report.counts.parked + report.counts.unknown > 0 => {
            RunStatus::Partial
        }
        Ok(()) => RunStatus::Ok,
        // A wait the shutdown cut short ends the run as a stop between batches does.
        Err(Halt::Shutdown | Halt::Connector(ConnectorError::Stopped { .. })) => {
            tracing::warn!(connector = %name, "write-back stopped by shutdown between batches");
            report.error =
                Some("stopped by shutdown; the writes not sent wait for the next run".into());
            RunStatus::Partial
        }
        Err(Halt::Connector(error)) => {
            let allowance = matches!(error, ConnectorError::AllowanceExhausted { .. });
            if allowance {
                tracing::warn!(connector = %name, error = %ErrorChain(&error), "write-back stopped: allowance exhausted");
            } else {
                tracing::error!(connector = %name, error = %ErrorChain(&error), "write-back stopped");
            }
            report.error = Some(format!(
                "{error}: writes in flight are settled with the CRM at the next run"
            ));
            if allowance {
                RunStatus::Partial
            } else {
                RunStatus::Failed
            }
        }
        Err(Halt::Store(source)) => {
            tracing::error!(connector = %name, error = %ErrorChain(&source), "write-back could not use the store");
            let message = crate::telemetry::chain(&source);
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
        resent = report.counts.resent,
        unknown = report.counts.unknown,
        ms = report.ms,
        "write-back finished"
    );
    Ok(report)
}

/// Recovery, parking, then the plan in batches, within the run's cap.
async fn apply<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
    report: &mut WritebackReport,
) -> Result<(), Halt> {
    let cap = u64::from(options.policy.max_writes_per_run.get());
    // What a crash left unconfirmed is settled first; what it sends again
    // counts toward the cap, like any write.
    let recovery = recovery::recover(store, connector, options, report, cap).await;
    let room = cap.saturating_sub(report.counts.sent);
    // Planned while writes left unconfirmed are still `sent`, so that the
    // plan counts them as in flight and never sends them twice.
    let (plan, _) = plan_now(store, options, room).await?;
    report.planned(plan);
    recovery?;

    if report.plan.to_park_count > 0 {
        let name = options.connector.name.clone();
        report.counts.parked += store
            .call(move |s| park::park_exhausted(s, &name, Utc::now()))
            .await?;
    }

    // Taken out of the report as they go: an applied run reports each
    // write once, as written or refused, not also as planned.
    let writes = std::mem::take(&mut report.plan.writes);
    for chunk in writes.chunks(options.batch.get()) {
        send::send_batch(store, connector, options, chunk, report).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
