//! One audit: the stored records of the configured connectors that changed
//! since they were last judged, normalized under the current config, judged
//! by the rules, and diffed against the violations log. The first audit,
//! and one after the config or a connector's owners changed, judges every
//! record of the connectors concerned; `Depth::Full` judges all of them
//! whatever changed (see [`crate::store::ConnectorBasis`] and [`basis`]).
//!
//! Records stream from the store in chunks of [`CHUNK`], read on a
//! connection of their own; each chunk is evaluated in parallel, then
//! written in a short transaction on the writing connection. Memory is
//! bounded by the chunk size, not by the size of the CRM, and the write lock
//! is free between chunks: health checks, acknowledgements and syncs are
//! not held up. A stop asked for between two chunks ends the run as
//! `interrupted`, having resolved nothing (see [`crate::store::AuditWriter`]);
//! the records it did not reach stay queued.

pub mod basis;

use crate::config::{Config, ConnectorConfig};
use crate::journey::normalize::{OwnerIndex, normalize};
use crate::journey::{JourneyRecord, StageRef};
use crate::rules::{BuiltinRule, Peer, RuleSet, Violation};
use crate::store::{
    AuditDiff, ChunkDiff, QueueMark, RecordState, RunId, RunKind, RunStatus, Store, StoreError,
    StoredRecord,
};
use crate::telemetry::ErrorChain;
use chrono::{DateTime, Utc};
use journeyd_connector::ConnectorName;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;
use thiserror::Error;

/// Records read and evaluated at a time.
pub const CHUNK: NonZeroUsize = NonZeroUsize::new(1000).expect("non-zero");

/// Evaluation errors kept by name in the summary; the rest are counted.
const ERROR_SAMPLES: usize = 10;

/// How much of the CRM an audit judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// The records that changed since they were last judged, and those
    /// whose outcome may change with the date; every record of a connector
    /// whose config or owners changed, or that was never audited whole.
    #[default]
    Changed,
    /// Every record, whatever changed.
    Full,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditSummary {
    pub run: i64,
    /// Records evaluated.
    pub records: u64,
    /// The connectors whose every record was judged; the others' records
    /// were judged where they changed.
    pub whole: Vec<ConnectorName>,
    /// Violations found by this audit (new and still failing).
    pub violations: u64,
    #[serde(flatten)]
    pub chunks: ChunkDiff,
    #[serde(flatten)]
    pub finish: AuditDiff,
    /// Expressions that could not be evaluated on some record.
    pub expression_errors: u64,
    pub expression_error_samples: Vec<String>,
    pub ms: u64,
    /// Stopped before every record was judged: the chunks written stay,
    /// nothing was resolved.
    pub interrupted: bool,
}

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit run {run} failed")]
    Store {
        run: i64,
        #[source]
        source: StoreError,
    },
    #[error("could not start an audit run")]
    Begin(#[source] StoreError),
}

/// A judged chunk on its way to the writer: what was found, on which
/// records, and the queue marks the chunk covered.
type Judgements = (Vec<Violation>, Vec<RecordState>, Vec<QueueMark>);

/// What evaluating one record yields.
struct Judged {
    violations: Vec<Violation>,
    state: RecordState,
    errors: Vec<String>,
}

/// Audits the stored records of `config`'s connectors that `depth` calls
/// for, in the store at `path`, on two connections of its own: one reads,
/// one writes. `stop` is asked between chunks.
pub fn run_at(
    path: &Path,
    config: &Config,
    depth: Depth,
    now: DateTime<Utc>,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<AuditSummary, AuditError> {
    let mut writer = Store::open(path).map_err(AuditError::Begin)?;
    let reader = Store::open_reader(path).map_err(AuditError::Begin)?;
    run(&mut writer, &reader, config, depth, now, stop)
}

/// Audits the stored records of `config`'s connectors that `depth` calls
/// for, reading through `reader` and writing through `writer` (two
/// connections to one file).
pub fn run(
    writer: &mut Store,
    reader: &Store,
    config: &Config,
    depth: Depth,
    now: DateTime<Utc>,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<AuditSummary, AuditError> {
    let started = Instant::now();
    let run = writer
        .begin_run(RunKind::Audit, None, now)
        .map_err(AuditError::Begin)?;
    let span = tracing::info_span!("audit", run = run.0);
    let _entered = span.enter();
    match audit(writer, reader, config, depth, run, now, stop) {
        Ok(mut summary) => {
            summary.ms = started.elapsed().as_millis() as u64;
            let counts = serde_json::to_value(&summary).unwrap_or_default();
            let (status, error) = if summary.interrupted {
                (
                    RunStatus::Interrupted,
                    Some("stopped before every record was judged; nothing was resolved"),
                )
            } else {
                (RunStatus::Ok, None)
            };
            writer
                .finish_run(run, status, &counts, error, Utc::now())
                .map_err(|source| AuditError::Store { run: run.0, source })?;
            if summary.interrupted {
                tracing::warn!(
                    records = summary.records,
                    new = summary.chunks.new,
                    ms = summary.ms,
                    "audit interrupted"
                );
            } else {
                tracing::info!(
                    records = summary.records,
                    whole = summary.whole.len(),
                    new = summary.chunks.new,
                    resolved = summary.finish.resolved,
                    expression_errors = summary.expression_errors,
                    ms = summary.ms,
                    "audit finished"
                );
            }
            Ok(summary)
        }
        Err(source) => {
            tracing::error!(error = %ErrorChain(&source), "audit failed");
            // Whole chunks stay written; nothing was resolved. Record why,
            // best effort.
            let _ = writer.finish_run(
                run,
                RunStatus::Failed,
                &serde_json::Value::Null,
                Some(&crate::telemetry::chain(&source)),
                Utc::now(),
            );
            Err(AuditError::Store { run: run.0, source })
        }
    }
}

fn audit(
    writer: &mut Store,
    reader: &Store,
    config: &Config,
    depth: Depth,
    run: RunId,
    now: DateTime<Utc>,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<AuditSummary, StoreError> {
    let names: Vec<ConnectorName> = config.connectors.iter().map(|c| c.name.clone()).collect();
    // Before the owners: a change in between makes the audit judge whole
    // connectors again the next time, never miss it.
    let generations = reader.owner_generations(&names)?;
    let mut owners: HashMap<ConnectorName, OwnerIndex> = HashMap::new();
    for connector in &config.connectors {
        let index = reader
            .owners(&connector.name)?
            .into_iter()
            .map(|owner| (owner.id.clone(), owner))
            .collect();
        owners.insert(connector.name.clone(), index);
    }
    let connectors: HashMap<&ConnectorName, &ConnectorConfig> =
        config.connectors.iter().map(|c| (&c.name, c)).collect();
    let rules = RuleSet::from_config(config);
    let mut summary = AuditSummary {
        run: run.0,
        ..AuditSummary::default()
    };
    reader.set_audit_scope(&names)?;
    let writer = writer.begin_queued_audit(
        run,
        &basis::bases(config),
        &generations,
        depth == Depth::Full,
        now,
        config.schedule.today(now),
    )?;
    summary.whole = writer.whole_connectors();
    // Two stages: this thread reads and judges a chunk while the writer
    // thread writes the one before. A bounded channel keeps at most one
    // judged chunk waiting, so memory stays a few chunks whatever the CRM.
    let (judged_tx, judged_rx) = std::sync::mpsc::sync_channel::<Judgements>(1);
    std::thread::scope(|scope| {
        let writing = scope.spawn(move || -> Result<_, StoreError> {
            let mut writer = writer;
            let mut diff = ChunkDiff::default();
            loop {
                // The transaction stays open for the next chunk only until
                // it is due: an admin's write never waits on a slow read.
                let next = match writer.commit_due_in() {
                    Some(left) => match judged_rx.recv_timeout(left) {
                        Ok(chunk) => Some(chunk),
                        Err(RecvTimeoutError::Timeout) => {
                            writer.flush()?;
                            judged_rx.recv().ok()
                        }
                        Err(RecvTimeoutError::Disconnected) => None,
                    },
                    None => judged_rx.recv().ok(),
                };
                let Some((violations, states, marks)) = next else {
                    break;
                };
                diff += writer.record_queued_chunk(&violations, &states, &marks)?;
                tracing::debug!(records = states.len(), "audit chunk");
            }
            Ok((diff, writer))
        });
        let read = (|| -> Result<(), StoreError> {
            let mut after = None;
            loop {
                if stop() {
                    summary.interrupted = true;
                    return Ok(());
                }
                let chunk = reader.audit_queue_chunk(after, CHUNK)?;
                let Some(last) = chunk.last() else {
                    return Ok(());
                };
                after = Some(last);
                let judged: Vec<Judged> = chunk
                    .records
                    .into_par_iter()
                    .filter_map(|stored| {
                        // Only connectors in scope are read; the lookup
                        // cannot miss.
                        let connector = connectors.get(&stored.connector)?;
                        let owners = owners.get(&stored.connector)?;
                        Some(judge(&rules, connector, owners, stored, now))
                    })
                    .collect();
                let mut violations = Vec::new();
                let mut states = Vec::with_capacity(judged.len());
                for one in judged {
                    summary.records += 1;
                    summary.expression_errors += one.errors.len() as u64;
                    let room = ERROR_SAMPLES.saturating_sub(summary.expression_error_samples.len());
                    summary
                        .expression_error_samples
                        .extend(one.errors.into_iter().take(room));
                    violations.extend(one.violations);
                    states.push(one.state);
                }
                summary.violations += violations.len() as u64;
                // The writer stopped on an error: it says which.
                if judged_tx.send((violations, states, chunk.marks)).is_err() {
                    return Ok(());
                }
            }
        })();
        drop(judged_tx);
        let written = writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read?;
        let (diff, writer) = written?;
        summary.chunks = diff;
        if summary.interrupted {
            let mut writer = writer;
            writer.flush()?;
        } else {
            summary.finish = writer.finish()?;
        }
        Ok(summary)
    })
}

fn judge(
    rules: &RuleSet<'_>,
    connector: &ConnectorConfig,
    owners: &OwnerIndex,
    stored: StoredRecord,
    now: DateTime<Utc>,
) -> Judged {
    let peers: Vec<Peer> = stored
        .duplicates
        .into_iter()
        .map(|peer| Peer {
            id: peer.id,
            name: peer.name,
            created_at: peer.created_at,
            key: peer.key,
        })
        .collect();
    let rowid = stored.rowid;
    let record = normalize(rules.journey, connector, owners, stored.record);
    let evaluation = rules.evaluate(connector, &record, &peers, now);
    let stalled = evaluation
        .violations
        .iter()
        .any(|v| v.rule.as_str() == BuiltinRule::Stalled.as_str());
    Judged {
        state: record_state(
            rowid,
            &record,
            stalled,
            evaluation.recheck_on,
            rules.journey.timezone,
        ),
        violations: evaluation.violations,
        errors: evaluation.expression_errors,
    }
}

fn record_state(
    rowid: i64,
    record: &JourneyRecord,
    stalled: bool,
    recheck_on: Option<chrono::NaiveDate>,
    tz: chrono_tz::Tz,
) -> RecordState {
    let (stage, stage_index) = match &record.stage {
        StageRef::Mapped { id, index } if record.in_journey => (Some(id.clone()), Some(*index)),
        _ => (None, None),
    };
    let reached = record
        .history
        .iter()
        .filter_map(|step| step.stage.mapped().map(|(_, index)| index))
        .chain(stage_index)
        .max();
    RecordState {
        record_rowid: Some(rowid),
        connector: record.connector.clone(),
        object: record.object,
        record_id: record.id.clone(),
        stage,
        stage_index,
        max_stage_index: if record.in_journey { reached } else { None },
        stage_entered_on: stage_index.and(record.stage_entered_on(tz)),
        stalled,
        owner_id: record.owner.as_ref().map(|o| o.id.clone()),
        owner_role: record.owner.as_ref().and_then(|o| o.role.clone()),
        recheck_on,
    }
}

#[cfg(test)]
mod changed_tests;
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rusqlite::Connection;

    /// The shipped config and a state file holding the sample HubSpot
    /// portal, imported on `at`.
    pub(super) fn sample(at: DateTime<Utc>) -> (tempfile::TempDir, std::path::PathBuf, Config) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = crate::config::load(&repo.join("config/journeyd.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let mut store = Store::open(&path).unwrap();
        let sample = std::fs::read(repo.join("tests/fixtures/hubspot-sample.jsonl")).unwrap();
        crate::import::import(
            &mut store,
            &config.connectors,
            Some("hubspot"),
            sample.as_slice(),
            at,
        )
        .unwrap();
        (dir, path, config)
    }

    /// Every violation row and event, every column, in id order.
    pub(super) fn violation_rows(path: &Path) -> Vec<String> {
        let db = Connection::open(path).unwrap();
        let mut rows = Vec::new();
        for table in ["violation_rows", "violation_events"] {
            let mut stmt = db
                .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
                .unwrap();
            let columns = stmt.column_count();
            let mut query = stmt.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                rows.push(format!("{table}: {}", values.join(" | ")));
            }
        }
        rows
    }

    pub(super) fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 2, 0, 0).unwrap()
    }

    #[test]
    fn a_nightly_reaudit_with_nothing_changed_writes_no_violation_rows() {
        let (_dir, path, config) = sample(at(20));
        let first = run_at(&path, &config, Depth::Changed, at(21), &|| false).unwrap();
        assert!(first.violations > 0 && first.chunks.new == first.violations);
        let before = violation_rows(&path);

        let nightly = run_at(&path, &config, Depth::Full, at(22), &|| false).unwrap();
        assert_eq!(
            (
                nightly.violations,
                nightly.chunks.new,
                nightly.chunks.reopened
            ),
            (first.violations, 0, 0)
        );
        assert_eq!(nightly.finish.resolved, 0);
        assert_eq!(
            violation_rows(&path),
            before,
            "no violation row or event was written"
        );
    }

    #[test]
    fn after_a_nightly_reaudit_the_log_reads_as_of_that_audit() {
        let (_dir, path, config) = sample(at(20));
        run_at(&path, &config, Depth::Changed, at(21), &|| false).unwrap();
        let nightly = run_at(&path, &config, Depth::Full, at(22), &|| false).unwrap();
        let mut store = Store::open_read_only(&path).unwrap();
        store.set_timezone(config.schedule.timezone);
        let mut rows = Vec::new();
        store
            .stream_violations(&Default::default(), |row| -> Result<(), StoreError> {
                rows.push(row);
                Ok(())
            })
            .unwrap();
        assert!(!rows.is_empty());
        for row in &rows {
            assert_eq!(row.last_seen, at(22), "{}", row.violation.message);
            assert_eq!(row.last_run.map(|r| r.0), Some(nightly.run));
        }
        let stalled = rows
            .iter()
            .find(|row| row.violation.stage_since.is_some())
            .expect("a violation counting days in stage");
        let today = config.schedule.today(Utc::now());
        let since = stalled.violation.stage_since.unwrap();
        assert!(
            stalled
                .violation
                .message
                .contains(&format!(" for {} days", (today - since).num_days())),
            "counted to today when read: {}",
            stalled.violation.message
        );
        assert!(
            !stalled
                .violation
                .message
                .contains(crate::rules::DAYS_IN_STAGE)
        );
        // sqlite3 reads the same through the view, counted to the UTC date.
        let db = Connection::open(&path).unwrap();
        let (message, template, last_seen): (String, String, String) = db
            .query_row(
                "SELECT message, message_template, last_seen FROM violations WHERE id = ?1",
                [stalled.id.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let utc_today = Utc::now().date_naive();
        assert_eq!(
            message,
            crate::rules::render_days(&template, Some(since), utc_today)
        );
        assert_eq!(last_seen, "2026-11-22T02:00:00.000000000Z");
    }

    #[test]
    fn an_audit_of_a_migrated_state_file_finds_its_violations_again_with_their_statuses() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = crate::config::load(&repo.join("config/journeyd.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        std::fs::copy(repo.join("tests/fixtures/state-v5.sqlite"), &path).unwrap();
        let statuses = |path: &Path| -> Vec<(i64, String)> {
            let db = Connection::open(path).unwrap();
            let mut stmt = db
                .prepare("SELECT id, status FROM violations ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = statuses(&path);
        // The fixture's audits ran at about 13:53 that day.
        let later = Utc.with_ymd_and_hms(2026, 12, 4, 14, 0, 0).unwrap();
        let summary = run_at(&path, &config, Depth::Changed, later, &|| false).unwrap();
        assert_eq!(
            (
                summary.chunks.new,
                summary.chunks.reopened,
                summary.finish.resolved
            ),
            (0, 0, 0)
        );
        assert_eq!(statuses(&path), before);
    }
}
