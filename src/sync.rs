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

use crate::config::ConnectorConfig;
use crate::store::{PageWrite, RunKind, RunStatus, StoreError, StoreHandle};
use crate::telemetry::ErrorChain;
use chrono::{DateTime, Utc};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::{
    Connector, ConnectorError, ConnectorName, CrmRecord, ObjectKind, Page, RecordId, Retry,
    Skipped, Watermark,
};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

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
    /// Why the sync ended early.
    pub error: Option<String>,
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

/// Why a sync stopped before its end.
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

/// What every step of one sync shares.
struct Ctx<'a, C> {
    store: &'a StoreHandle,
    connector: &'a C,
    name: &'a ConnectorName,
    progress: &'a dyn SyncProgress,
    shutdown: &'a Shutdown,
    accept_mass_deletion: bool,
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
        Ok(()) if summary.skipped > 0 || summary.error.is_some() => RunStatus::Partial,
        Ok(()) => RunStatus::Ok,
        Err(Halt::Shutdown) => {
            summary.stopped = true;
            summary.error =
                Some("stopped by shutdown; the next sync resumes from the saved cursor".into());
            tracing::warn!(connector = %name, "sync stopped by shutdown");
            RunStatus::Partial
        }
        Err(Halt::Connector(error)) => connector_error(&name, &error, &mut summary),
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
            summary.error = Some(crate::telemetry::chain(error));
            RunStatus::Failed
        }
        _ => {
            tracing::warn!(connector = %name, error = %ErrorChain(error), "sync failed; the next run tries again");
            summary.error = Some(crate::telemetry::chain(error));
            RunStatus::Failed
        }
    }
}

async fn all<C: Connector>(
    ctx: &Ctx<'_, C>,
    objects: &[ObjectKind],
    full: bool,
    summary: &mut SyncSummary,
) -> Result<(), Halt> {
    owners(ctx, summary).await?;
    for &object in objects {
        records(ctx, object, full, summary).await?;
        if full {
            deletions(ctx, object, summary).await?;
        }
    }
    Ok(())
}

async fn owners<C: Connector>(ctx: &Ctx<'_, C>, summary: &mut SyncSummary) -> Result<(), Halt> {
    let step = Step::Owners;
    ctx.progress.step_started(ctx.name, step);
    let mut cursor = None;
    loop {
        if ctx.stopping() {
            return Err(Halt::Shutdown);
        }
        let page = ctx
            .connector
            .owners(cursor)
            .await
            .map_err(Halt::Connector)?;
        ctx.skipped(step, &page.skipped, summary);
        let count = page.items.len() as u64;
        let name = ctx.name.clone();
        let owners = page.items;
        ctx.store
            .call(move |s| s.upsert_owners(&name, &owners, Utc::now()))
            .await?;
        summary.owners += count;
        ctx.progress.page(ctx.name, step, count);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ctx.progress.step_finished(ctx.name, step);
    Ok(())
}

/// Where a pull of `object` starts: mid-pull at the saved cursor, else from
/// the start (a full sync, or the first one), else from the delta link the
/// last pull ended with, else from the watermark.
fn pull_from(
    stored: Option<&crate::store::StoredWatermark>,
    delta: Option<String>,
    full: bool,
) -> PullFrom {
    match (stored, delta) {
        (Some(stored), _) if stored.cursor.is_some() => {
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
    let (stored, delta) = {
        let name = ctx.name.clone();
        ctx.store
            .call(move |s| {
                Ok::<_, StoreError>((s.watermark(&name, object)?, s.delta_link(&name, object)?))
            })
            .await?
    };
    let mut from = pull_from(stored.as_ref(), delta, full);
    let mut high = stored.map(|stored| stored.watermark);
    begin(ctx, object, &from).await?;
    loop {
        if ctx.stopping() {
            return Err(Halt::Shutdown);
        }
        let started = Instant::now();
        let span = tracing::info_span!(
            "page",
            object = %object,
            records = tracing::field::Empty,
            ms = tracing::field::Empty
        );
        let pulled = ctx
            .connector
            .pull(object, from.clone())
            .instrument(span.clone())
            .await;
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
                continue;
            }
            pulled => pulled.map_err(Halt::Connector)?,
        };
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
    let step = Step::Deletions(object);
    ctx.progress.step_started(ctx.name, step);
    let mut cursor = None;
    loop {
        if ctx.stopping() {
            return Err(Halt::Shutdown);
        }
        let page = ctx
            .connector
            .deletions(object, cursor)
            .await
            .map_err(Halt::Connector)?;
        ctx.skipped(step, &page.skipped, summary);
        let count = page.items.len() as u64;
        let name = ctx.name.clone();
        let ids = page.items;
        let deleted = ctx
            .store
            .call(move |s| s.mark_deleted(&name, object, &ids, Utc::now()))
            .await?;
        summary.deleted += deleted as u64;
        ctx.progress.page(ctx.name, step, count);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ctx.progress.step_finished(ctx.name, step);
    Ok(())
}

#[cfg(test)]
mod tests;
