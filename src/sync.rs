//! One sync of one connector: its owners, then each object kind's records
//! changed since the watermark, page by page, and (on a full sync) the
//! records the CRM reports deleted.
//!
//! The caller drives and state moves with data: each page's records, the
//! advanced watermark and the cursor of the next page are stored in one
//! transaction before the next page is asked for. Between pages the loop
//! checks the shutdown signal and, if it is set, stops with the cursor
//! saved: the next sync resumes at the next page. A connector error ends
//! this connector's sync with the error recorded in its run row; the caller
//! goes on with the other connectors.
//!
//! Some trouble belongs to one step only (one object kind's records or
//! deletions, or the owners), and the other steps go on: a page that came
//! back unreadable is asked for again like a 5xx (up to the connection's
//! `limits.max_attempts`), a cursor the CRM refuses restarts that pull
//! from its watermark (up to [`CURSOR_RESTARTS`] times), and paging that
//! loops or has no end is stopped ([`paging`]). A step given up is named,
//! with why, in the summary and the run row.

use crate::config::ConnectorConfig;
use crate::store::{PageWrite, RunKind, RunStatus, StoreError, StoreHandle};
use crate::telemetry::ErrorChain;
use chrono::{DateTime, Utc};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::http::RetryPolicy;
use journeyd_connector::{
    Connector, ConnectorError, ConnectorName, CrmRecord, ObjectKind, Page, RecordId, Retry,
    Skipped, Watermark,
};
use paging::{PageGuard, Runaway};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

pub mod paging;

/// Set to `true` to stop every sync at its next page boundary.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Read every record from the start, not only what changed since the
    /// watermark, and reconcile deletions.
    pub full: bool,
    /// Only these object kinds (`None`: every kind the config and the
    /// connector have).
    pub objects: Option<BTreeSet<ObjectKind>>,
    /// Let a full pull mark deleted more than half of an object kind's
    /// records, which it otherwise refuses to do (see [`MASS_DELETION`]).
    pub accept_mass_deletion: bool,
}

/// A full pull that did not see more than this many records of an object
/// kind, and more than half of them, marks none deleted unless told to: an
/// integration user who lost read access, or a sharing rule changed, looks
/// exactly like a CRM emptied overnight.
pub const MASS_DELETION: u64 = 10;

/// Times one pull of an object kind may be restarted from its watermark in
/// one sync because the CRM refused its cursor. A cursor from a pull just
/// restarted is fresh; refused again and again, something other than an
/// idle cursor is wrong, and the next run tries again.
pub const CURSOR_RESTARTS: u32 = 3;

/// A part of a sync, as progress reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Owners,
    Records(ObjectKind),
    Deletions(ObjectKind),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Owners => f.write_str("owners"),
            Step::Records(object) => write!(f, "{object} records"),
            Step::Deletions(object) => write!(f, "{object} deletions"),
        }
    }
}

/// Hears how a sync goes, page by page (the command line draws progress
/// bars from it). Every method defaults to doing nothing.
pub trait SyncProgress: Send + Sync {
    fn step_started(&self, connector: &ConnectorName, step: Step) {
        let _ = (connector, step);
    }
    /// A page of `items` was stored.
    fn page(&self, connector: &ConnectorName, step: Step, items: u64) {
        let _ = (connector, step, items);
    }
    fn step_finished(&self, connector: &ConnectorName, step: Step) {
        let _ = (connector, step);
    }
}

/// Progress nobody watches.
pub struct NoProgress;

impl SyncProgress for NoProgress {}

/// What one connector's sync did; also the counts of its run row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncSummary {
    pub connector: ConnectorName,
    pub run: i64,
    pub status: RunStatus,
    pub pages: u64,
    pub records_new: u64,
    pub records_changed: u64,
    pub records_unchanged: u64,
    /// Records (and owners) the connector could not read; each is logged.
    pub skipped: u64,
    /// Records newly marked deleted.
    pub deleted: u64,
    pub owners: u64,
    pub ms: u64,
    /// Stopped by the shutdown signal, with the cursor saved.
    pub stopped: bool,
    /// Why the sync ended early, or what it gave up on.
    pub error: Option<String>,
    /// The steps given up while the others went on, each with why.
    pub failed: Vec<FailedStep>,
}

/// One step of a sync given up while the others went on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedStep {
    /// The object kind (`deal`), or `owner` for the owners.
    pub object: String,
    /// `records`, `deletions` or `owners`.
    pub step: &'static str,
    pub error: String,
}

/// Why one step of a sync was given up while the others went on.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StepError {
    #[error("{connector} {step} page {page} could not be read in {attempts} attempts: {reason}")]
    Unreadable {
        connector: ConnectorName,
        step: Step,
        page: u64,
        attempts: u32,
        reason: String,
    },
    #[error(
        "{connector} {step}: the cursor was refused again after {restarts} restarts of the pull: {reason}"
    )]
    CursorRefused {
        connector: ConnectorName,
        step: Step,
        restarts: u32,
        reason: String,
    },
    #[error("{connector} {step}: paging stopped: {runaway}")]
    Runaway {
        connector: ConnectorName,
        step: Step,
        runaway: Runaway,
    },
}

impl StepError {
    fn step(&self) -> Step {
        match self {
            StepError::Unreadable { step, .. }
            | StepError::CursorRefused { step, .. }
            | StepError::Runaway { step, .. } => *step,
        }
    }
}

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("sync of connector {connector} could not use the store")]
    Store {
        connector: ConnectorName,
        #[source]
        source: StoreError,
    },
}

/// Why a sync, or one of its steps, stopped before its end.
enum Halt {
    Shutdown,
    Connector(ConnectorError),
    Store(StoreError),
    /// This step only: the others go on.
    Step(StepError),
}

impl From<StoreError> for Halt {
    fn from(error: StoreError) -> Self {
        Halt::Store(error)
    }
}

/// What every step of one sync shares.
struct Ctx<'a, C> {
    store: &'a StoreHandle,
    connector: &'a C,
    name: &'a ConnectorName,
    progress: &'a dyn SyncProgress,
    shutdown: &'a Shutdown,
    accept_mass_deletion: bool,
    /// How the connection retries a call: an unreadable page is asked for
    /// again as a 5xx would be.
    retry: RetryPolicy,
    /// When this sync started. A watermark never goes past it: a full pull
    /// reads in id order, so a record it passed early may change during the
    /// pull, after a later one the pull did see; starting the next
    /// incremental pull at this sync's start re-reads such a change
    /// instead of missing it.
    ceiling: DateTime<Utc>,
}

impl<C> Ctx<'_, C> {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn skipped(&self, step: Step, skipped: &[Skipped], summary: &mut SyncSummary) {
        let object = match step {
            Step::Owners => "owner",
            Step::Records(object) | Step::Deletions(object) => object.as_str(),
        };
        for skip in skipped {
            tracing::warn!(
                connector = %self.name,
                object,
                id = %skip.id,
                reason = %skip.reason,
                "skipped an item the connector could not read"
            );
        }
        summary.skipped += skipped.len() as u64;
    }

    /// Asks `ask` for page `page` of `step`, asking again (after the
    /// connection's backoff) while the answer cannot be read, up to its
    /// `max_attempts`. The inner result is the connector's answer; the
    /// outer error ends the step (the page stayed unreadable) or the sync
    /// (shutdown).
    async fn read<T, F, Fut>(
        &self,
        step: Step,
        page: u64,
        mut ask: F,
    ) -> Result<Result<T, ConnectorError>, Halt>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let attempts = self.retry.max_attempts.get();
        let mut wait = self.retry.base_delay;
        let mut attempt = 1;
        loop {
            match ask().await {
                Err(error @ ConnectorError::Malformed { .. }) => {
                    if attempt >= attempts {
                        return Err(Halt::Step(StepError::Unreadable {
                            connector: self.name.clone(),
                            step,
                            page,
                            attempts,
                            reason: error.to_string(),
                        }));
                    }
                    tracing::warn!(connector = %self.name, step = %step, page, attempt,
                        error = %error, "page could not be read; asking for it again");
                    // Ended by a stop like every other wait.
                    let mut shutdown = self.shutdown.clone();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {}
                    }
                    if self.stopping() {
                        return Err(Halt::Shutdown);
                    }
                    wait = (wait * 2).min(self.retry.max_delay.max(self.retry.base_delay));
                    attempt += 1;
                }
                answer => return Ok(answer),
            }
        }
    }

    fn runaway(&self, step: Step, runaway: Runaway) -> Halt {
        Halt::Step(StepError::Runaway {
            connector: self.name.clone(),
            step,
            runaway,
        })
    }
}

/// Syncs `connector`, whose config is `config`, into `store`.
///
/// Connector errors end the sync and are recorded in the summary and the
/// run row (`failed`; `partial` when the CRM's daily allowance is used up,
/// since the next run resumes where this one stopped). Only a store that
/// cannot be written is an `Err`.
pub async fn sync<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    config: &ConnectorConfig,
    options: &SyncOptions,
    progress: &dyn SyncProgress,
    shutdown: &Shutdown,
) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    let now = Utc::now();
    let name = config.name.clone();
    let store_error = |source| SyncError::Store {
        connector: config.name.clone(),
        source,
    };
    let run = {
        let name = name.clone();
        store
            .call(move |s| s.begin_run(RunKind::Sync, Some(&name), now))
            .await
            .map_err(store_error)?
    };
    let span = tracing::info_span!("sync", connector = %name, run = run.0);
    let ctx = Ctx {
        store,
        connector,
        name: &name,
        progress,
        shutdown,
        accept_mass_deletion: options.accept_mass_deletion,
        retry: *config.connection.retry(),
        ceiling: now,
    };
    let mut summary = SyncSummary {
        connector: name.clone(),
        run: run.0,
        status: RunStatus::Running,
        pages: 0,
        records_new: 0,
        records_changed: 0,
        records_unchanged: 0,
        skipped: 0,
        deleted: 0,
        owners: 0,
        ms: 0,
        stopped: false,
        error: None,
        failed: Vec::new(),
    };
    let objects: Vec<ObjectKind> = connector
        .objects()
        .iter()
        .copied()
        .filter(|kind| config.objects.contains(kind))
        .filter(|kind| options.objects.as_ref().is_none_or(|o| o.contains(kind)))
        .collect();
    let outcome = all(&ctx, &objects, options.full, &mut summary)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    summary.status = match outcome {
        // A step given up needs someone to look, as a failed sync does.
        Ok(()) if !summary.failed.is_empty() => RunStatus::Failed,
        Ok(()) if summary.skipped > 0 || summary.error.is_some() => RunStatus::Partial,
        Ok(()) => RunStatus::Ok,
        // A wait the shutdown cut short ends the sync as a stop between pages does.
        Err(Halt::Shutdown | Halt::Connector(ConnectorError::Stopped { .. })) => {
            summary.stopped = true;
            summary.error =
                Some("stopped by shutdown; the next sync resumes from the saved cursor".into());
            tracing::warn!(connector = %name, "sync stopped by shutdown");
            RunStatus::Partial
        }
        Err(Halt::Connector(error)) => connector_error(&name, &error, &mut summary),
        Err(Halt::Step(error)) => {
            // Steps are given up in `all`; one cannot end the sync.
            failed_step(&name, error, &mut summary);
            RunStatus::Failed
        }
        Err(Halt::Store(source)) => {
            tracing::error!(connector = %name, error = %ErrorChain(&source), "sync could not use the store");
            let message = crate::telemetry::chain(&source);
            // The store may still take the run's end; if not, the run row
            // stays `running`, which is what happened.
            let _ = store
                .call(move |s| s.fail_run(run, &message, Utc::now()))
                .await;
            return Err(store_error(source));
        }
    };
    summary.ms = started.elapsed().as_millis() as u64;
    let counts = serde_json::to_value(&summary).unwrap_or_default();
    let (status, error) = (summary.status, summary.error.clone());
    store
        .call(move |s| s.finish_run(run, status, &counts, error.as_deref(), Utc::now()))
        .await
        .map_err(store_error)?;
    tracing::info!(
        connector = %name,
        status = %summary.status,
        records = summary.records_new + summary.records_changed + summary.records_unchanged,
        skipped = summary.skipped,
        deleted = summary.deleted,
        ms = summary.ms,
        "sync finished"
    );
    Ok(summary)
}

/// The run status a connector error leaves, logged as loud as it needs.
fn connector_error(
    name: &ConnectorName,
    error: &ConnectorError,
    summary: &mut SyncSummary,
) -> RunStatus {
    match (error, error.retry()) {
        (ConnectorError::AllowanceExhausted { .. }, _) => {
            tracing::warn!(connector = %name, error = %ErrorChain(error), "sync stopped: allowance exhausted");
            summary.error = Some(format!(
                "{error}: the sync stopped here and resumes from the saved cursor at the next run"
            ));
            RunStatus::Partial
        }
        (_, Retry::Never) => {
            tracing::error!(connector = %name, error = %ErrorChain(error), "sync failed; retrying cannot help until the config or credentials are fixed");
            add_error(summary, crate::telemetry::chain(error));
            RunStatus::Failed
        }
        _ => {
            tracing::warn!(connector = %name, error = %ErrorChain(error), "sync failed; the next run tries again");
            add_error(summary, crate::telemetry::chain(error));
            RunStatus::Failed
        }
    }
}

/// Adds `why` to the summary's error, after what is already there.
fn add_error(summary: &mut SyncSummary, why: String) {
    summary.error = Some(match summary.error.take() {
        Some(before) => format!("{before}; {why}"),
        None => why,
    });
}

/// Records a step given up, in the summary (and so the run row) and the log.
fn failed_step(name: &ConnectorName, error: StepError, summary: &mut SyncSummary) {
    let (object, step) = match error.step() {
        Step::Owners => ("owner".to_owned(), "owners"),
        Step::Records(object) => (object.to_string(), "records"),
        Step::Deletions(object) => (object.to_string(), "deletions"),
    };
    tracing::error!(connector = %name, object = %object, step, error = %ErrorChain(&error),
        "sync step given up; the other steps go on and the next run tries it again");
    let why = crate::telemetry::chain(&error);
    add_error(summary, why.clone());
    summary.failed.push(FailedStep {
        object,
        step,
        error: why,
    });
}

async fn all<C: Connector>(
    ctx: &Ctx<'_, C>,
    objects: &[ObjectKind],
    full: bool,
    summary: &mut SyncSummary,
) -> Result<(), Halt> {
    let given_up = |outcome: Result<(), Halt>, summary: &mut SyncSummary| match outcome {
        Err(Halt::Step(error)) => {
            failed_step(ctx.name, error, summary);
            Ok(())
        }
        other => other,
    };
    let outcome = owners(ctx, summary).await;
    given_up(outcome, summary)?;
    for &object in objects {
        let outcome = records(ctx, object, full, summary).await;
        given_up(outcome, summary)?;
        if full {
            let outcome = deletions(ctx, object, summary).await;
            given_up(outcome, summary)?;
        }
    }
    Ok(())
}

async fn owners<C: Connector>(ctx: &Ctx<'_, C>, summary: &mut SyncSummary) -> Result<(), Halt> {
    every_page(
        ctx,
        Step::Owners,
        summary,
        |cursor| ctx.connector.owners(cursor),
        |owners| {
            let name = ctx.name.clone();
            let count = owners.len() as u64;
            async move {
                ctx.store
                    .call(move |s| s.upsert_owners(&name, &owners, Utc::now()))
                    .await?;
                Ok(count)
            }
        },
        |summary| &mut summary.owners,
    )
    .await
}

/// Pages through a step that saves no cursor between runs (owners,
/// deletions) from its first page to its last, under the same guards as
/// records: the page read again while unreadable, a refused cursor
/// restarting the step, paging that runs away stopped. `keep` stores a
/// page's items and says how many count towards `tally`.
async fn every_page<C, T, Ask, Asked, Keep, Kept>(
    ctx: &Ctx<'_, C>,
    step: Step,
    summary: &mut SyncSummary,
    ask: Ask,
    mut keep: Keep,
    tally: fn(&mut SyncSummary) -> &mut u64,
) -> Result<(), Halt>
where
    C: Connector,
    Ask: Fn(Option<String>) -> Asked,
    Asked: Future<Output = Result<Page<T>, ConnectorError>>,
    Keep: FnMut(Vec<T>) -> Kept,
    Kept: Future<Output = Result<u64, Halt>>,
{
    ctx.progress.step_started(ctx.name, step);
    let mut cursor: Option<String> = None;
    let mut guard = PageGuard::default();
    let mut restarts = 0;
    loop {
        if ctx.stopping() {
            return Err(Halt::Shutdown);
        }
        let asked = ctx
            .read(step, guard.next_page(), || ask(cursor.clone()))
            .await?;
        let Some(page) = refused_restarts(ctx, step, asked, &mut restarts)? else {
            cursor = None;
            guard = PageGuard::default();
            continue;
        };
        guard
            .page(page.total, page.next.as_deref())
            .map_err(|runaway| ctx.runaway(step, runaway))?;
        ctx.skipped(step, &page.skipped, summary);
        let count = page.items.len() as u64;
        *tally(summary) += keep(page.items).await?;
        ctx.progress.page(ctx.name, step, count);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ctx.progress.step_finished(ctx.name, step);
    Ok(())
}

/// Where a pull of `object` starts: mid-pull at the saved cursor (on a
/// full sync only when that pull is itself a full one, `full_under_way`:
/// a full sync never finishes an incremental pull), else from the start (a
/// full sync, or the first one), else from the delta link the last pull
/// ended with, else from the watermark.
fn pull_from(
    stored: Option<&crate::store::StoredWatermark>,
    delta: Option<String>,
    full: bool,
    full_under_way: bool,
) -> PullFrom {
    match (stored, delta) {
        (Some(stored), _) if stored.cursor.is_some() && (!full || full_under_way) => {
            PullFrom::Cursor(stored.cursor.clone().unwrap_or_default())
        }
        _ if full => PullFrom::Start,
        (_, Some(link)) => PullFrom::Delta(link),
        (Some(stored), None) => PullFrom::Since(stored.watermark.clone()),
        (None, None) => PullFrom::Start,
    }
}

/// Opens the reconcile a pull from the start ends with, or cancels the one
/// an incremental pull leaves pending.
async fn begin<C>(ctx: &Ctx<'_, C>, object: ObjectKind, from: &PullFrom) -> Result<(), Halt> {
    let name = ctx.name.clone();
    let at = ctx.ceiling;
    match from {
        PullFrom::Start => {
            ctx.store
                .call(move |s| s.begin_reconcile(&name, object, at))
                .await?
        }
        PullFrom::Since(_) | PullFrom::Delta(_) => {
            ctx.store
                .call(move |s| s.drop_reconcile(&name, object))
                .await?
        }
        PullFrom::Cursor(_) => {}
    }
    Ok(())
}

/// The watermark after a page: the latest (modified time, id) seen so far,
/// never past `ceiling` and never behind `before`.
pub fn advance(
    before: Option<Watermark>,
    page: &[CrmRecord],
    ceiling: DateTime<Utc>,
) -> Option<Watermark> {
    let seen = page
        .iter()
        .map(|record| (record.modified_at, &record.id))
        .max()
        .map(|(modified_at, id)| {
            if modified_at > ceiling {
                // Nothing at the ceiling itself is known to be read: the
                // empty id sorts before every other.
                Watermark {
                    modified_at: ceiling,
                    id: RecordId::new(""),
                }
            } else {
                Watermark {
                    modified_at,
                    id: id.clone(),
                }
            }
        });
    before.into_iter().chain(seen).max()
}

async fn records<C: Connector>(
    ctx: &Ctx<'_, C>,
    object: ObjectKind,
    full: bool,
    summary: &mut SyncSummary,
) -> Result<(), Halt> {
    let step = Step::Records(object);
    ctx.progress.step_started(ctx.name, step);
    let (stored, delta, full_under_way) = {
        let name = ctx.name.clone();
        ctx.store
            .call(move |s| {
                Ok::<_, StoreError>((
                    s.watermark(&name, object)?,
                    s.delta_link(&name, object)?,
                    s.reconcile_under_way(&name, object)?,
                ))
            })
            .await?
    };
    let mut from = pull_from(stored.as_ref(), delta, full, full_under_way);
    let mut high = stored.map(|stored| stored.watermark);
    begin(ctx, object, &from).await?;
    let mut guard = match &from {
        PullFrom::Cursor(cursor) => PageGuard::resumed(cursor),
        _ => PageGuard::default(),
    };
    let mut restarts = 0;
    loop {
        if ctx.stopping() {
            return Err(Halt::Shutdown);
        }
        let started = Instant::now();
        let page_number = guard.next_page();
        let span = tracing::info_span!(
            "page",
            object = %object,
            page = page_number,
            records = tracing::field::Empty,
            ms = tracing::field::Empty
        );
        let pulled = ctx
            .read(step, page_number, || {
                ctx.connector
                    .pull(object, from.clone())
                    .instrument(span.clone())
            })
            .await?;
        let page: Page<CrmRecord> = match pulled {
            Err(ConnectorError::ChangesExpired { reason, .. })
                if matches!(from, PullFrom::Delta(_)) =>
            {
                // Deletions the lost changes held are found by absence at
                // the end of the full pull: nothing is silently missed.
                tracing::warn!(connector = %ctx.name, object = %object, reason = %reason,
                    "the changes since the last sync are gone; pulling every record and reconciling");
                let name = ctx.name.clone();
                ctx.store
                    .call(move |s| s.drop_delta_link(&name, object))
                    .await?;
                from = PullFrom::Start;
                begin(ctx, object, &from).await?;
                guard = PageGuard::default();
                continue;
            }
            // Refused mid-page too: Salesforce retires a page's child
            // cursors when the next page is asked for.
            Err(ConnectorError::CursorRefused { reason, .. }) => {
                if restarts == CURSOR_RESTARTS {
                    return Err(Halt::Step(StepError::CursorRefused {
                        connector: ctx.name.clone(),
                        step,
                        restarts,
                        reason,
                    }));
                }
                restarts += 1;
                from = restart(ctx, object, full).await?;
                if from == PullFrom::Start {
                    tracing::warn!(connector = %ctx.name, object = %object, page = page_number,
                        restart = restarts, reason = %reason,
                        "the crm refused the saved cursor; restarting the full pull from the start");
                } else {
                    tracing::warn!(connector = %ctx.name, object = %object, page = page_number,
                        restart = restarts, from = restarted_from(&from), reason = %reason,
                        "the crm refused the saved cursor; restarting the pull from its watermark");
                }
                begin(ctx, object, &from).await?;
                guard = PageGuard::default();
                continue;
            }
            pulled => pulled.map_err(Halt::Connector)?,
        };
        // Before anything of the page is stored: the cursor saved stays
        // the one this page was asked with.
        guard
            .page(page.total, page.next.as_deref())
            .map_err(|runaway| ctx.runaway(step, runaway))?;
        ctx.skipped(step, &page.skipped, summary);
        if !page.skipped.is_empty() {
            // Before the page is stored: a crash in between leaves the
            // pull unable to vouch, never the other way round.
            let name = ctx.name.clone();
            let skipped = page.skipped.len() as u64;
            ctx.store
                .call(move |s| s.note_reconcile_skips(&name, object, skipped))
                .await?;
        }
        high = advance(high, &page.items, ctx.ceiling);
        let count = page.items.len() as u64;
        let next = page.next;
        let (counts, deleted) = {
            let name = ctx.name.clone();
            let (records, removed, delta) = (page.items, page.removed, page.delta);
            let watermark = high.clone();
            let cursor = next.clone();
            ctx.store
                .call(move |s| {
                    let write = PageWrite {
                        records: &records,
                        removed: &removed,
                        watermark: watermark.as_ref(),
                        cursor: cursor.as_deref(),
                        delta: delta.as_deref(),
                    };
                    s.store_changes(&name, object, &write, Utc::now())
                })
                .await?
        };
        summary.deleted += deleted as u64;
        summary.pages += 1;
        summary.records_new += counts.inserted;
        summary.records_changed += counts.updated;
        summary.records_unchanged += counts.unchanged;
        span.record("records", count);
        span.record("ms", started.elapsed().as_millis() as u64);
        span.in_scope(|| tracing::debug!("page stored"));
        ctx.progress.page(ctx.name, step, count);
        match next {
            Some(cursor) => from = PullFrom::Cursor(cursor),
            None => break,
        }
    }
    reconcile(ctx, object, summary).await?;
    ctx.progress.step_finished(ctx.name, step);
    Ok(())
}

/// The page of a step read from the start by cursors alone (owners,
/// deletions), or `None` when the CRM refused the cursor and the step
/// starts over (up to [`CURSOR_RESTARTS`] times).
fn refused_restarts<C, T>(
    ctx: &Ctx<'_, C>,
    step: Step,
    asked: Result<Page<T>, ConnectorError>,
    restarts: &mut u32,
) -> Result<Option<Page<T>>, Halt> {
    match asked {
        Ok(page) => Ok(Some(page)),
        Err(ConnectorError::CursorRefused { reason, .. }) => {
            if *restarts == CURSOR_RESTARTS {
                return Err(Halt::Step(StepError::CursorRefused {
                    connector: ctx.name.clone(),
                    step,
                    restarts: *restarts,
                    reason,
                }));
            }
            *restarts += 1;
            tracing::warn!(connector = %ctx.name, step = %step, restart = *restarts,
                reason = %reason, "the crm refused the saved cursor; restarting from the start");
            Ok(None)
        }
        Err(error) => Err(Halt::Connector(error)),
    }
}

/// Where a pull of `object` whose cursor the CRM refused starts again: a
/// full pull from the start (the reconcile at its end must see every
/// record), any other from the watermark (or the delta link) it began
/// from. The refused cursor is forgotten.
async fn restart<C>(ctx: &Ctx<'_, C>, object: ObjectKind, full: bool) -> Result<PullFrom, Halt> {
    let name = ctx.name.clone();
    let (stored, delta, full_under_way) = ctx
        .store
        .call(move |s| {
            s.forget_cursor(&name, object, Utc::now())?;
            Ok::<_, StoreError>((
                s.watermark(&name, object)?,
                s.delta_link(&name, object)?,
                s.reconcile_under_way(&name, object)?,
            ))
        })
        .await?;
    Ok(if full_under_way {
        PullFrom::Start
    } else {
        pull_from(stored.as_ref(), delta, full, false)
    })
}

/// Where a restarted incremental pull starts, as the log says it.
fn restarted_from(from: &PullFrom) -> &'static str {
    match from {
        PullFrom::Delta(_) => "delta link",
        PullFrom::Since(_) | PullFrom::Start | PullFrom::Cursor(_) => "watermark",
    }
}

/// At the end of a pull of `object`: if it was a full pull, marks deleted
/// the live records it did not see, unless it could not read them all or
/// they are too many to believe.
async fn reconcile<C: Connector>(
    ctx: &Ctx<'_, C>,
    object: ObjectKind,
    summary: &mut SyncSummary,
) -> Result<(), Halt> {
    let name = ctx.name.clone();
    let Some(pending) = ctx
        .store
        .call(move |s| s.pending_reconcile(&name, object))
        .await?
    else {
        return Ok(());
    };
    let refusal = if pending.skipped > 0 {
        Some(format!(
            "{object} records not seen by the full pull were not marked deleted: \
             {} records could not be read, so the pull cannot vouch for the {} it did not see",
            pending.skipped, pending.unseen
        ))
    } else if pending.unseen > MASS_DELETION
        && pending.unseen * 2 > pending.live
        && !ctx.accept_mass_deletion
    {
        Some(format!(
            "{object} records not seen by the full pull were not marked deleted: \
             {} of {} is more than half; check the integration user's access, \
             then run `journeyd sync --full --accept-mass-deletion` if they are gone",
            pending.unseen, pending.live
        ))
    } else {
        None
    };
    let name = ctx.name.clone();
    let sweep = refusal.is_none();
    let deleted = ctx
        .store
        .call(move |s| s.finish_reconcile(&name, object, sweep, Utc::now()))
        .await?;
    summary.deleted += deleted;
    match refusal {
        Some(why) => {
            tracing::warn!(connector = %ctx.name, object = %object, unseen = pending.unseen,
                live = pending.live, skipped = pending.skipped, "{why}");
            summary.error = Some(match summary.error.take() {
                Some(before) => format!("{before}; {why}"),
                None => why,
            });
        }
        None => {
            tracing::info!(connector = %ctx.name, object = %object, records = deleted,
                "full pull marked the records it did not see deleted");
        }
    }
    Ok(())
}

async fn deletions<C: Connector>(
    ctx: &Ctx<'_, C>,
    object: ObjectKind,
    summary: &mut SyncSummary,
) -> Result<(), Halt> {
    every_page(
        ctx,
        Step::Deletions(object),
        summary,
        |cursor| ctx.connector.deletions(object, cursor),
        |ids| {
            let name = ctx.name.clone();
            async move {
                let deleted = ctx
                    .store
                    .call(move |s| s.mark_deleted(&name, object, &ids, Utc::now()))
                    .await?;
                Ok(deleted as u64)
            }
        },
        |summary| &mut summary.deleted,
    )
    .await
}

#[cfg(test)]
mod tests;
