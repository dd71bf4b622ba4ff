//! The [`AuditWriter`]: an audit's writes, chunk by chunk. A chunk's
//! violations and per-record facts for the report are written whole, in
//! the writer's transaction; `finish` resolves the violations of records
//! gone from the CRM and lifts expired suppressions, in one more.
//!
//! A nightly audit judges only the records that changed and mostly finds
//! what it found the night before, so it writes only what changed. A chunk
//! reads the stored violations of its records (one range of an index where
//! they are close together, a seek per record where they are spread) and
//! compares: a violation found again as it was is not written; one found
//! with other content is rewritten; one not found is marked no longer
//! failing, and resolves when the audit finishes; so do the violations of
//! a queued record the CRM deleted. Day counts in
//! messages are not stored ([`crate::rules::DAYS_IN_STAGE`]), and when a
//! violation was last seen is the connector's last finished audit
//! (`audit_sightings`), so the same problem reads the same every night.
//!
//! Chunks commit together, a second's worth at a time ([`COMMIT_EVERY`]):
//! in between the write lock is free, and an admin's acknowledgement or a
//! sync's page goes through. A chunk is never half-written, and an audit
//! stopped before `finish` (a shutdown, a crash) resolves nothing: what it
//! committed are whole chunks, their violations opened, refreshed or marked
//! no longer failing.
//!
//! The audit reads its records on another connection
//! ([`Store::audit_queue_chunk`]: the records queued because they changed,
//! see [`super::audit_queue`]), so that reading never waits for writing.

use super::audit_queue::{
    ConnectorBasis, QueueMark, WholeConnector, dequeue, enqueue, settle_bases,
};
use super::chunks::{Scope, StoredRecord, read_chunk};
use super::columns::{date, severity_rank, ts};
use super::violations::{AUDIT_ACTOR, EventKind, ViolationId, ViolationStatus, insert_event};
use super::{RunId, SqlContext, Store, StoreError, json_error};
use crate::journey::{RoleId, StageId};
use crate::rules::Violation;
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::{ConnectorName, ObjectKind, OwnerId, RecordId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::ops::AddAssign;
use std::time::{Duration, Instant};

/// How long the audit's transaction stays open across chunks. Each commit
/// writes every index page it touched; committing a second's chunks at
/// once writes a page touched by many of them once. Other writers (an
/// admin's acknowledgement, a sync's page) wait this long at most.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// How long the audit leaves the write lock free after a commit before it
/// writes on: long enough for a waiting writer, which tries every few
/// milliseconds, to take it.
pub(super) const LOCK_GAP: Duration = Duration::from_millis(20);

/// What the last audit derived of one record, for the stage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    /// The record's rowid in the store, where the caller knows it (the
    /// audit does); looked up by connector, object and id otherwise.
    pub record_rowid: Option<i64>,
    pub connector: ConnectorName,
    pub object: ObjectKind,
    pub record_id: RecordId,
    /// The journey stage; `None` when unmapped or outside the journey.
    pub stage: Option<StageId>,
    pub stage_index: Option<usize>,
    /// The furthest stage the record reached, from its history.
    pub max_stage_index: Option<usize>,
    /// The org's date the record entered its stage: days in stage are
    /// counted from it when shown.
    pub stage_entered_on: Option<NaiveDate>,
    pub stalled: bool,
    pub owner_id: Option<OwnerId>,
    pub owner_role: Option<RoleId>,
    /// The org's date from which time alone may change what the rules find
    /// on the record ([`crate::rules::Evaluation::recheck_on`]).
    pub recheck_on: Option<NaiveDate>,
}

/// What recording one chunk's violations did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChunkDiff {
    /// Fingerprints never seen before: opened.
    pub new: u64,
    /// Resolved violations found again: reopened.
    pub reopened: u64,
    /// Open, acknowledged or suppressed violations found again: refreshed,
    /// status untouched.
    pub still_failing: u64,
}

impl AddAssign for ChunkDiff {
    fn add_assign(&mut self, other: ChunkDiff) {
        self.new += other.new;
        self.reopened += other.reopened;
        self.still_failing += other.still_failing;
    }
}

/// What finishing an audit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AuditDiff {
    /// Open or acknowledged violations of the audited connectors that the
    /// audit did not find again.
    pub resolved: u64,
    /// Suppressions whose date passed: the violations are open again.
    pub unsuppressed: u64,
}

/// Temp tables the audit works with; per connection, so made at open.
pub(super) fn create_temp_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE audit_scope (connector TEXT PRIMARY KEY) WITHOUT ROWID;
         CREATE TEMP TABLE audit_resolving (
             id INTEGER PRIMARY KEY, from_status TEXT NOT NULL, reason TEXT NOT NULL);",
    )
}

/// Sets the connectors an audit covers, on `conn`.
fn set_scope(conn: &Connection, connectors: &[ConnectorName]) -> Result<(), StoreError> {
    conn.execute("DELETE FROM temp.audit_scope", [])
        .op("set the audit's scope")?;
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO temp.audit_scope (connector) VALUES (?1)")
        .op("prepare the audit's scope")?;
    for connector in connectors {
        stmt.execute([connector.as_str()])
            .op("set the audit's scope")?;
    }
    Ok(())
}

impl Store {
    /// Starts the audit run `run` of `connectors`: their violations not
    /// found again by this audit resolve at [`AuditWriter::finish`];
    /// violations of other connectors are left alone. `today` is the
    /// org's date, after which a suppression dated before it ends.
    pub fn begin_audit(
        &mut self,
        run: RunId,
        connectors: &[ConnectorName],
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<AuditWriter<'_>, StoreError> {
        set_scope(&self.conn, connectors)?;
        self.begin_writer(run, connectors, None, now, today)
    }

    /// Starts the audit run `run` of `bases`' connectors that judges only
    /// what changed ([`super::audit_queue`]): it queues what it must judge
    /// and the caller reads it with [`Store::audit_queue_chunk`]. `full`
    /// judges every record whatever changed. `generations` are the owners'
    /// generations read before the owners the records are judged with.
    pub fn begin_queued_audit(
        &mut self,
        run: RunId,
        bases: &[ConnectorBasis],
        generations: &HashMap<ConnectorName, i64>,
        full: bool,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<AuditWriter<'_>, StoreError> {
        let connectors: Vec<ConnectorName> = bases.iter().map(|b| b.connector.clone()).collect();
        set_scope(&self.conn, &connectors)?;
        let whole = enqueue(&mut self.conn, bases, generations, full, today)?;
        self.begin_writer(run, &connectors, Some(whole), now, today)
    }

    /// The writer of an audit of `connectors`, the scope already set.
    fn begin_writer(
        &mut self,
        run: RunId,
        connectors: &[ConnectorName],
        whole: Option<Vec<WholeConnector>>,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<AuditWriter<'_>, StoreError> {
        // An empty log is filled without its lookup indexes, built at the
        // end; any other audit first builds those an earlier one left out.
        if !super::log_indexes::set_aside_if_empty(&self.conn)? {
            super::log_indexes::restore(&self.conn)?;
        }
        let orphans = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM violation_rows WHERE record_rowid IS NULL)",
                [],
                |row| row.get(0),
            )
            .op("look for violations stored without their record")?;
        Ok(AuditWriter {
            orphans,
            conn: &mut self.conn,
            run,
            now,
            now_text: ts(now),
            today,
            connectors: connectors.to_vec(),
            whole,
            judged: RowidSet::default(),
            found_unstored: HashSet::new(),
            open_since: None,
            commit_every: COMMIT_EVERY,
        })
    }

    /// Sets the connectors [`Store::audit_chunk`] and
    /// [`Store::audit_queue_chunk`] read on this connection.
    pub fn set_audit_scope(&self, connectors: &[ConnectorName]) -> Result<(), StoreError> {
        set_scope(&self.conn, connectors)
    }

    /// Like [`Store::records_chunk`], limited to the connectors of
    /// [`Store::set_audit_scope`], read in one read transaction. For the
    /// audit's reading connection.
    pub fn audit_chunk(
        &self,
        after: Option<i64>,
        limit: NonZeroUsize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .op("begin reading a chunk")?;
        let chunk = read_chunk(&tx, Scope::Audit, after, limit)?;
        tx.finish().op("end reading a chunk")?;
        Ok(chunk)
    }
}

/// One audit in progress. See the module documentation.
pub struct AuditWriter<'s> {
    conn: &'s mut Connection,
    run: RunId,
    now: DateTime<Utc>,
    now_text: String,
    today: NaiveDate,
    connectors: Vec<ConnectorName>,
    /// For an audit of what changed, the connectors it judges whole: only
    /// their open violations of records it did not judge resolve, and
    /// their basis is recorded when it finishes. `None` for an audit
    /// that judges every record of every connector.
    whole: Option<Vec<WholeConnector>>,
    /// The rowids of the records judged so far: at the end, an open
    /// violation of any other record (gone from the CRM, never stored)
    /// resolves.
    judged: RowidSet,
    /// Violations found whose record was never stored: they stay open.
    found_unstored: HashSet<ViolationId>,
    /// When the open transaction began; `None` when none is open.
    open_since: Option<Instant>,
    commit_every: Duration,
    /// Whether the log held a violation stored without its record when
    /// the audit began: a chunk's range of the record index cannot find
    /// it, so a violation new to the range is looked up by fingerprint.
    orphans: bool,
}

impl Drop for AuditWriter<'_> {
    /// An audit that failed, or was dropped without [`AuditWriter::flush`]:
    /// the chunks since the last commit are rolled back, whole.
    fn drop(&mut self) {
        self.rollback();
    }
}

/// A set of record rowids, one bit each: a million records cost 125 KB.
#[derive(Debug, Default)]
struct RowidSet(Vec<u64>);

impl RowidSet {
    fn insert(&mut self, rowid: i64) {
        let Ok(rowid) = usize::try_from(rowid) else {
            return;
        };
        let word = rowid / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (rowid % 64);
    }

    fn contains(&self, rowid: i64) -> bool {
        usize::try_from(rowid)
            .ok()
            .and_then(|rowid| {
                self.0
                    .get(rowid / 64)
                    .map(|word| word & (1 << (rowid % 64)) != 0)
            })
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for AuditWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("run", &self.run)
            .field("now", &self.now)
            .finish()
    }
}

/// What one chunk writes with, inside the writer's open transaction.
struct ChunkTx<'t> {
    tx: &'t Connection,
    run: RunId,
    now_text: &'t str,
    /// See [`AuditWriter`]'s field.
    orphans: bool,
}

/// A record as the store knows it: connector, object, id.
type RecordKey<'a> = (&'a str, ObjectKind, &'a str);

/// A stored violation of a chunk's records, with what the audit compares.
struct Stored {
    id: ViolationId,
    record_rowid: Option<i64>,
    status: ViolationStatus,
    failing: bool,
    content: Content,
}

/// What an audit may find changed in a violation it finds again. Equal
/// content, same status: nothing is written.
#[derive(PartialEq)]
struct Content {
    record_name: Option<String>,
    record_url: Option<String>,
    severity: i64,
    owner_id: Option<String>,
    owner_role: Option<String>,
    message: String,
    action: String,
    stage_since: Option<NaiveDate>,
}

impl Content {
    fn of(v: &Violation) -> Result<Content, StoreError> {
        Ok(Content {
            record_name: v.record_name.clone(),
            record_url: v.record_url.clone(),
            severity: severity_rank(v.severity),
            owner_id: v.owner_id.as_ref().map(|o| o.as_str().to_owned()),
            owner_role: v.owner_role.as_ref().map(|r| r.as_str().to_owned()),
            message: v.message.clone(),
            action: serde_json::to_string(&v.action).map_err(json_error("a planned action"))?,
            stage_since: v.stage_since,
        })
    }
}

impl AuditWriter<'_> {
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The connectors this audit judges whole: all of them, unless it
    /// began with [`Store::begin_queued_audit`].
    pub fn whole_connectors(&self) -> Vec<ConnectorName> {
        match &self.whole {
            Some(whole) => whole.iter().map(|w| w.connector.clone()).collect(),
            None => self.connectors.clone(),
        }
    }

    /// Like [`Store::records_chunk`], on the writer's own connection and
    /// limited to the audited connectors.
    pub fn records_chunk(
        &self,
        after: Option<i64>,
        limit: NonZeroUsize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        read_chunk(self.conn, Scope::Audit, after, limit)
    }

    /// Opens the writer's transaction unless it is open.
    fn begin(&mut self, op: &'static str) -> Result<ChunkTx<'_>, StoreError> {
        if self.open_since.is_none() {
            self.conn.execute_batch("BEGIN IMMEDIATE").op(op)?;
            self.open_since = Some(Instant::now());
        }
        Ok(ChunkTx {
            tx: self.conn,
            run: self.run,
            now_text: &self.now_text,
            orphans: self.orphans,
        })
    }

    /// After a chunk: commits once the transaction has been open
    /// [`COMMIT_EVERY`]; after a failed one, rolls back every chunk since
    /// the last commit, so that no chunk is ever half-written.
    fn settle<T>(&mut self, written: Result<T, StoreError>) -> Result<T, StoreError> {
        match written {
            Ok(value) => {
                if self
                    .open_since
                    .is_some_and(|since| since.elapsed() >= self.commit_every)
                {
                    self.flush()?;
                    self.leave_a_gap();
                }
                Ok(value)
            }
            Err(err) => {
                self.rollback();
                Err(err)
            }
        }
    }

    /// Commits the chunks written so far: for an audit that stops before
    /// [`AuditWriter::finish`].
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.open_since.take().is_some() {
            self.conn
                .execute_batch("COMMIT")
                .op("commit an audit's chunks")?;
        }
        Ok(())
    }

    /// Lets a waiting writer (an admin's acknowledgement, a sync's page)
    /// take the lock between two of the audit's transactions.
    fn leave_a_gap(&self) {
        if !self.commit_every.is_zero() {
            std::thread::sleep(LOCK_GAP);
        }
    }

    fn rollback(&mut self) {
        if self.open_since.take().is_some() {
            // Nothing more can be done if this fails: the connection ends
            // the transaction when it closes.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// How long until the open transaction is due to commit; `None` when
    /// none is open. A writer waiting for its next chunk commits then, so
    /// that no transaction is held open while nothing is written.
    pub fn commit_due_in(&self) -> Option<Duration> {
        self.open_since
            .map(|since| self.commit_every.saturating_sub(since.elapsed()))
    }

    /// Commits after every chunk instead of every [`COMMIT_EVERY`]: for
    /// tests that look at the store between two chunks.
    pub fn commit_every(&mut self, every: Duration) {
        self.commit_every = every;
    }

    /// Records one chunk, in one transaction. `states` are the records the
    /// audit judged, `violations` what it found on them. Against what the
    /// store holds for those records: a violation never seen opens; a
    /// resolved one found again reopens; one found again with other
    /// content (message, owner, severity, action) is rewritten, keeping its
    /// status; one found again as it was is not written at all. A violation
    /// of a judged record that was not found again is marked no longer
    /// failing ([`AuditWriter::finish`] resolves it). Then what the audit
    /// derived of the records is stored, where it changed.
    pub fn record_chunk(
        &mut self,
        violations: &[Violation],
        states: &[RecordState],
    ) -> Result<ChunkDiff, StoreError> {
        self.record_queued_chunk(violations, states, &[])
    }

    /// [`AuditWriter::record_chunk`] for a chunk of the audit queue:
    /// `marks` are the queued records it covered. Those gone from the CRM
    /// count as judged with nothing found, and all leave the queue where
    /// their mark is still the one read.
    pub fn record_queued_chunk(
        &mut self,
        violations: &[Violation],
        states: &[RecordState],
        marks: &[QueueMark],
    ) -> Result<ChunkDiff, StoreError> {
        let written = self.write_chunk(violations, states, marks);
        let (diff, judged, unstored) = self.settle(written)?;
        for rowid in judged {
            self.judged.insert(rowid);
        }
        self.found_unstored.extend(unstored);
        Ok(diff)
    }

    fn write_chunk(
        &mut self,
        violations: &[Violation],
        states: &[RecordState],
        marks: &[QueueMark],
    ) -> Result<(ChunkDiff, HashSet<i64>, Vec<ViolationId>), StoreError> {
        let chunk = self.begin("begin an audit chunk")?;
        let mut rowids: HashMap<RecordKey<'_>, Option<i64>> = HashMap::new();
        for state in states {
            let key = (
                state.connector.as_str(),
                state.object,
                state.record_id.as_str(),
            );
            let rowid = match state.record_rowid {
                Some(rowid) => Some(rowid),
                None => chunk.rowid_of(key)?,
            };
            rowids.insert(key, rowid);
        }
        for v in violations {
            let key = (v.connector.as_str(), v.object, v.record_id.as_str());
            if let std::collections::hash_map::Entry::Vacant(entry) = rowids.entry(key) {
                entry.insert(chunk.rowid_of(key)?);
            }
        }
        // A record with a violation found was judged too, states or not;
        // a queued record gone from the CRM was judged to break nothing.
        let judged: HashSet<i64> = rowids
            .values()
            .flatten()
            .copied()
            .chain(marks.iter().map(|m| m.rowid))
            .collect();
        let mut stored = chunk.stored(&judged)?;
        let mut diff = ChunkDiff::default();
        let mut unstored = Vec::new();
        // Where a violation was inserted: the write-back plan judges those
        // records again.
        let mut inserted: Vec<(&str, Option<i64>)> = Vec::new();
        // The same violation found twice (two rules of one id) is one.
        let mut seen: HashSet<&str> = HashSet::with_capacity(violations.len());
        for v in violations {
            if !seen.insert(v.fingerprint.as_str()) {
                continue;
            }
            let rowid = rowids
                .get(&(v.connector.as_str(), v.object, v.record_id.as_str()))
                .copied()
                .flatten();
            let new = diff.new;
            let id = chunk
                .found(v, rowid, &mut stored, &mut diff)
                .map_err(|err| StoreError::RecordViolation {
                    fingerprint: v.fingerprint.to_string(),
                    source: Box::new(err),
                })?;
            if diff.new > new {
                inserted.push((v.connector.as_str(), rowid));
            }
            if rowid.is_none() {
                unstored.push(id);
            }
        }
        for row in stored.values() {
            chunk.not_found(row)?;
        }
        chunk.note_for_plan(&inserted, states)?;
        chunk.record_states(states)?;
        dequeue(chunk.tx, marks)?;
        Ok((diff, judged, unstored))
    }

    /// [`AuditWriter::record_chunk`] with violations only: no record was
    /// judged, so none resolves.
    pub fn record(&mut self, violations: &[Violation]) -> Result<ChunkDiff, StoreError> {
        self.record_chunk(violations, &[])
    }

    /// [`AuditWriter::record_chunk`] with record states only.
    pub fn record_states(&mut self, states: &[RecordState]) -> Result<(), StoreError> {
        self.record_chunk(&[], states).map(|_| ())
    }

    /// Ends the audit, in one transaction. First, suppressions dated before
    /// today end, whatever their connector: those violations are open
    /// again. Then the open and acknowledged violations of an audited
    /// connector resolve where the audit did not find them: marked no
    /// longer failing, or of a record it did not judge (gone from the CRM,
    /// or never stored). Last, the audit is recorded as the connectors'
    /// last sighting: every violation still failing was seen now. Nothing
    /// is deleted.
    pub fn finish(mut self) -> Result<AuditDiff, StoreError> {
        let today = date(self.today);
        let connectors = std::mem::take(&mut self.connectors);
        let judged = std::mem::take(&mut self.judged);
        let found_unstored = std::mem::take(&mut self.found_unstored);
        let whole = self.whole.take();
        // Records not judged by an audit of what changed did not change:
        // only the connectors it judged whole are walked for the rest.
        let walked: Vec<ConnectorName> = match &whole {
            Some(whole) => whole.iter().map(|w| w.connector.clone()).collect(),
            None => connectors.clone(),
        };
        let finished = (|| {
            let chunk = self.begin("begin finishing an audit")?;
            // Before the walk below, which reads them.
            super::log_indexes::restore(chunk.tx)?;
            let unsuppressed = chunk.unsuppress(&today)?;
            let resolved = chunk.resolve(&walked, &judged, &found_unstored)?;
            chunk.sighted(&connectors)?;
            if let Some(whole) = &whole {
                settle_bases(chunk.tx, whole, chunk.run)?;
            }
            Ok(AuditDiff {
                resolved,
                unsuppressed,
            })
        })();
        match finished {
            Ok(diff) => {
                self.flush()?;
                Ok(diff)
            }
            Err(err) => {
                self.rollback();
                Err(err)
            }
        }
    }
}

/// Sets a row's `last_seen` and `last_run` to the last sighting of its
/// connector where that is later and the row was failing: the values the
/// `violations` view showed, kept as the row stops being seen.
const KEEP_SIGHTING: &str = "
    last_run = coalesce((SELECT s.run_id FROM audit_sightings s
                         WHERE s.connector = violation_rows.connector
                           AND s.at > violation_rows.last_seen
                           AND violation_rows.failing = 1
                           AND violation_rows.status <> 'resolved'), last_run),
    last_seen = coalesce((SELECT s.at FROM audit_sightings s
                          WHERE s.connector = violation_rows.connector
                            AND s.at > violation_rows.last_seen
                            AND violation_rows.failing = 1
                            AND violation_rows.status <> 'resolved'), last_seen)";

impl ChunkTx<'_> {
    /// The rowid of a record, for callers that do not know it; `None` for a
    /// record never stored.
    fn rowid_of(&self, (connector, object, id): RecordKey<'_>) -> Result<Option<i64>, StoreError> {
        self.tx
            .prepare_cached(
                "SELECT rowid FROM records WHERE connector = ?1 AND object = ?2 AND id = ?3",
            )
            .op("prepare finding a record")?
            .query_row(params![connector, object.as_str(), id], |row| row.get(0))
            .optional()
            .op("find a record")
    }

    /// The stored violations of the records `rowids`, by fingerprint: one
    /// range of the record index where the records are close together (a
    /// whole audit reads them in rowid order), a seek per record where they
    /// are spread (the few an audit of what changed judges).
    fn stored(&self, rowids: &HashSet<i64>) -> Result<HashMap<String, Stored>, StoreError> {
        let (Some(&first), Some(&last)) = (rowids.iter().min(), rowids.iter().max()) else {
            return Ok(HashMap::new());
        };
        let mut stored = HashMap::new();
        let mut keep = |row: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
            let (fingerprint, one) = stored_row(row)?;
            if one
                .record_rowid
                .is_some_and(|rowid| rowids.contains(&rowid))
            {
                stored.insert(fingerprint, one);
            }
            Ok(())
        };
        let spread =
            last.saturating_sub(first) / 4 > i64::try_from(rowids.len()).unwrap_or(i64::MAX);
        if spread {
            let mut stmt = self
                .tx
                .prepare_cached(&format!(
                    "SELECT {STORED_COLUMNS} FROM violation_rows WHERE record_rowid = ?1"
                ))
                .op("prepare reading a chunk's violations")?;
            for rowid in rowids {
                let mut rows = stmt.query([rowid]).op("read a chunk's violations")?;
                while let Some(row) = rows.next().op("read a chunk's violations")? {
                    keep(row).op("read a chunk's violations")?;
                }
            }
        } else {
            let mut stmt = self
                .tx
                .prepare_cached(&format!(
                    "SELECT {STORED_COLUMNS} FROM violation_rows WHERE record_rowid BETWEEN ?1 AND ?2"
                ))
                .op("prepare reading a chunk's violations")?;
            let mut rows = stmt
                .query(params![first, last])
                .op("read a chunk's violations")?;
            while let Some(row) = rows.next().op("read a chunk's violations")? {
                keep(row).op("read a chunk's violations")?;
            }
        }
        Ok(stored)
    }

    /// The stored violation `fingerprint`, wherever its record: for a row
    /// the chunk's range did not hold (its record stored after it).
    fn stored_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Stored>, StoreError> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {STORED_COLUMNS} FROM violation_rows
                 WHERE substr(fingerprint, 1, 12) = substr(?1, 1, 12) AND fingerprint = ?1"
            ))
            .op("prepare reading a violation")?
            .query_row([fingerprint], |row| stored_row(row).map(|(_, one)| one))
            .optional()
            .op("read a violation")
    }

    /// Records the violation `v`, found by the audit on the record `rowid`.
    fn found(
        &self,
        v: &Violation,
        rowid: Option<i64>,
        stored: &mut HashMap<String, Stored>,
        diff: &mut ChunkDiff,
    ) -> Result<ViolationId, StoreError> {
        let content = Content::of(v)?;
        let existing = match stored.remove(v.fingerprint.as_str()) {
            Some(existing) => existing,
            None => {
                // Not among the stored rows of the chunk's records: new,
                // unless it was stored without its record (then, or now).
                let elsewhere = if rowid.is_none() || self.orphans {
                    self.stored_by_fingerprint(v.fingerprint.as_str())?
                } else {
                    None
                };
                match elsewhere {
                    Some(existing) => existing,
                    None => {
                        let id = self.insert(v, rowid, &content)?;
                        diff.new += 1;
                        return Ok(id);
                    }
                }
            }
        };
        let reopen = existing.status == ViolationStatus::Resolved;
        if reopen {
            diff.reopened += 1;
        } else {
            diff.still_failing += 1;
        }
        // The common case of a nightly audit: the same problem, worded the
        // same, still failing. Nothing to write.
        if !reopen
            && existing.failing
            && existing.content == content
            && existing.record_rowid == rowid
        {
            return Ok(existing.id);
        }
        self.tx
            .prepare_cached(
                "UPDATE violation_rows SET record_name = ?2, record_url = ?3, severity = ?4,
                     owner_id = ?5, owner_role = ?6, message = ?7, action = ?8,
                     stage_since = ?9, record_rowid = ?10, failing = 1,
                     last_seen = ?11, last_run = ?12,
                     status = CASE WHEN ?13 THEN 'open' ELSE status END,
                     status_reason = CASE WHEN ?13 THEN NULL ELSE status_reason END,
                     resolved_at = CASE WHEN ?13 THEN NULL ELSE resolved_at END
                 WHERE id = ?1",
            )
            .op("prepare refreshing a violation")?
            .execute(params![
                existing.id,
                content.record_name,
                content.record_url,
                content.severity,
                content.owner_id,
                content.owner_role,
                content.message,
                content.action,
                content.stage_since.map(date),
                rowid,
                self.now_text,
                self.run,
                reopen,
            ])
            .op("refresh a violation")?;
        if reopen {
            self.event(
                existing.id,
                EventKind::Reopened,
                Some(existing.status),
                ViolationStatus::Open,
                None,
            )?;
        }
        Ok(existing.id)
    }

    fn insert(
        &self,
        v: &Violation,
        rowid: Option<i64>,
        content: &Content,
    ) -> Result<ViolationId, StoreError> {
        // Not RETURNING: that costs every insert a statement journal.
        self.tx
            .prepare_cached(
                "INSERT INTO violation_rows (fingerprint, connector, object, record_id,
                     record_name, record_url, rule, severity, stage, owner_id, owner_role,
                     message, action, stage_since, record_rowid, status, first_seen,
                     last_seen, last_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                         'open', ?16, ?16, ?17)",
            )
            .op("prepare inserting a violation")?
            .execute(params![
                v.fingerprint.as_str(),
                v.connector.as_str(),
                v.object.as_str(),
                v.record_id.as_str(),
                content.record_name,
                content.record_url,
                v.rule.as_str(),
                content.severity,
                v.stage.as_ref().map(StageId::as_str),
                content.owner_id,
                content.owner_role,
                content.message,
                content.action,
                content.stage_since.map(date),
                rowid,
                self.now_text,
                self.run,
            ])
            .op("insert a violation")?;
        let id = ViolationId(self.tx.last_insert_rowid());
        self.event(id, EventKind::Opened, None, ViolationStatus::Open, None)?;
        Ok(id)
    }

    /// A stored violation of a judged record that the audit did not find:
    /// marked no longer failing, its last sighting kept. An open or
    /// acknowledged one resolves when the audit finishes; a suppressed one
    /// when its suppression ends.
    fn not_found(&self, row: &Stored) -> Result<(), StoreError> {
        if row.status == ViolationStatus::Resolved || !row.failing {
            return Ok(());
        }
        self.tx
            .prepare_cached(&format!(
                "UPDATE violation_rows SET {KEEP_SIGHTING}, failing = 0 WHERE id = ?1"
            ))
            .op("prepare marking a violation passing")?
            .execute([row.id])
            .op("mark a violation passing")?;
        Ok(())
    }

    fn event(
        &self,
        id: ViolationId,
        kind: EventKind,
        from: Option<ViolationStatus>,
        to: ViolationStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        insert_event(
            self.tx,
            id,
            self.now_text,
            Some(self.run),
            AUDIT_ACTOR,
            kind,
            from,
            to,
            reason,
        )
    }

    /// Notes for the write-back plan, of the connectors it keeps a basis
    /// for, the records the chunk inserted violations on and those whose
    /// journey stage `states` change (the stage names the role a task goes
    /// to); a violation inserted without its record takes its connector's
    /// basis away. Before `states` are stored. Done here rather than by
    /// triggers, which would cost every violation insert a statement
    /// journal.
    fn note_for_plan(
        &self,
        inserted: &[(&str, Option<i64>)],
        states: &[RecordState],
    ) -> Result<(), StoreError> {
        let planned: HashSet<String> = {
            let mut stmt = self
                .tx
                .prepare_cached("SELECT connector FROM plan_basis")
                .op("prepare reading the write-back plans' bases")?;
            let rows = stmt
                .query_map([], |row| row.get(0))
                .op("read the write-back plans' bases")?;
            rows.collect::<Result<_, _>>()
                .op("read the write-back plans' bases")?
        };
        if planned.is_empty() {
            return Ok(());
        }
        let mut rowids = Vec::new();
        for (connector, rowid) in inserted {
            if !planned.contains(*connector) {
                continue;
            }
            match rowid {
                Some(rowid) => rowids.push(serde_json::Value::from(*rowid)),
                None => {
                    self.tx
                        .prepare_cached("DELETE FROM plan_basis WHERE connector = ?1")
                        .op("prepare dropping a write-back plan's basis")?
                        .execute([connector])
                        .op("drop a write-back plan's basis")?;
                }
            }
        }
        self.tx
            .prepare_cached(
                "INSERT INTO plan_dirty (record_rowid, mark)
                 SELECT value, random() FROM json_each(?1) WHERE true
                 ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark",
            )
            .op("prepare noting records for the write-back plan")?
            .execute([serde_json::Value::from(rowids).to_string()])
            .op("note records for the write-back plan")?;
        let staged: Vec<serde_json::Value> = states
            .iter()
            .filter(|state| planned.contains(state.connector.as_str()))
            .map(|state| {
                serde_json::json!([
                    state.connector.as_str(),
                    state.object.as_str(),
                    state.record_id.as_str(),
                    state.stage.as_ref().map(StageId::as_str)
                ])
            })
            .collect();
        if !staged.is_empty() {
            self.tx
                .prepare_cached(
                    "INSERT INTO plan_dirty (record_rowid, mark)
                     SELECT r.rowid, random() FROM json_each(?1) j
                     JOIN records r ON r.connector = j.value ->> 0
                         AND r.object = j.value ->> 1 AND r.id = j.value ->> 2
                     LEFT JOIN record_state s ON s.connector = r.connector
                         AND s.object = r.object AND s.record_id = r.id
                     WHERE s.stage IS NOT j.value ->> 3
                     ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark",
                )
                .op("prepare noting changed stages for the write-back plan")?
                .execute([serde_json::Value::from(staged).to_string()])
                .op("note changed stages for the write-back plan")?;
        }
        Ok(())
    }

    /// Stores what the audit derived of `states`' records, where it differs
    /// from what the store holds.
    fn record_states(&self, states: &[RecordState]) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO record_state (connector, object, record_id, stage, stage_index,
                     max_stage_index, stage_entered_on, stalled, owner_id, owner_role, run_id,
                     recheck_on)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (connector, object, record_id) DO UPDATE SET
                     stage = excluded.stage, stage_index = excluded.stage_index,
                     max_stage_index = excluded.max_stage_index,
                     stage_entered_on = excluded.stage_entered_on, stalled = excluded.stalled,
                     owner_id = excluded.owner_id, owner_role = excluded.owner_role,
                     run_id = excluded.run_id, recheck_on = excluded.recheck_on
                 WHERE (stage, stage_index, max_stage_index, stage_entered_on, stalled,
                        owner_id, owner_role, recheck_on)
                     IS NOT (excluded.stage, excluded.stage_index, excluded.max_stage_index,
                             excluded.stage_entered_on, excluded.stalled, excluded.owner_id,
                             excluded.owner_role, excluded.recheck_on)",
            )
            .op("prepare storing record states")?;
        for state in states {
            stmt.execute(params![
                state.connector.as_str(),
                state.object.as_str(),
                state.record_id.as_str(),
                state.stage.as_ref().map(StageId::as_str),
                state.stage_index,
                state.max_stage_index,
                state.stage_entered_on.map(date),
                state.stalled,
                state.owner_id.as_ref().map(OwnerId::as_str),
                state.owner_role.as_ref().map(RoleId::as_str),
                self.run,
                state.recheck_on.map(date),
            ])
            .op("store a record state")
            .map_err(|err| {
                StoreError::record(&state.connector, state.object, &state.record_id, err)
            })?;
        }
        Ok(())
    }

    /// Ends the suppressions dated before `today`.
    fn unsuppress(&self, today: &str) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "INSERT INTO violation_events
                     (violation_id, at, run_id, actor, kind, from_status, to_status, reason)
                 SELECT id, ?1, ?2, ?3, 'unsuppressed', 'suppressed', 'open',
                        'suppressed until ' || suppressed_until
                 FROM violation_rows WHERE status = 'suppressed' AND suppressed_until < ?4",
                params![self.now_text, self.run, AUDIT_ACTOR, today],
            )
            .op("record ended suppressions")?;
        let changed = self
            .tx
            .execute(
                "UPDATE violation_rows
                 SET status = 'open', status_reason = 'suppressed until ' || suppressed_until,
                     suppressed_until = NULL
                 WHERE status = 'suppressed' AND suppressed_until < ?1",
                [today],
            )
            .op("end suppressions")?;
        Ok(changed as u64)
    }

    /// Resolves the open and acknowledged violations of `connectors` that
    /// the audit marked no longer failing (a partial index holds them), and
    /// those whose record is not in `judged` (one walk of each connector's
    /// open violations, in an index).
    fn resolve(
        &self,
        connectors: &[ConnectorName],
        judged: &RowidSet,
        found_unstored: &HashSet<ViolationId>,
    ) -> Result<u64, StoreError> {
        let tx = &self.tx;
        tx.execute("DELETE FROM temp.audit_resolving", [])
            .op("resolve violations")?;
        tx.execute(
            "INSERT INTO temp.audit_resolving (id, from_status, reason)
             SELECT v.id, v.status,
                    CASE WHEN v.record_rowid IS NULL OR EXISTS (
                        SELECT 1 FROM records r
                        WHERE r.rowid = v.record_rowid AND r.deleted_at IS NULL)
                    THEN 'no longer found by the audit'
                    ELSE 'record deleted in the crm' END
             FROM violation_rows v INDEXED BY violation_rows_passing
             WHERE v.connector IN (SELECT connector FROM temp.audit_scope)
               AND v.failing = 0 AND v.status IN ('open', 'acknowledged')",
            [],
        )
        .op("find violations to resolve")?;
        let mut unjudged: Vec<ViolationId> = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, record_rowid FROM violation_rows
                     WHERE connector = ?1 AND status IN ('open', 'acknowledged')",
                )
                .op("prepare finding violations to resolve")?;
            for connector in connectors {
                let mut rows = stmt
                    .query([connector.as_str()])
                    .op("find violations to resolve")?;
                while let Some(row) = rows.next().op("find violations to resolve")? {
                    let id: ViolationId = row.get(0).op("find violations to resolve")?;
                    let rowid: Option<i64> = row.get(1).op("find violations to resolve")?;
                    let seen = match rowid {
                        Some(rowid) => judged.contains(rowid),
                        None => found_unstored.contains(&id),
                    };
                    if !seen {
                        unjudged.push(id);
                    }
                }
            }
        }
        let mut set_aside = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO temp.audit_resolving (id, from_status, reason)
                 SELECT v.id, v.status,
                        CASE WHEN EXISTS (
                            SELECT 1 FROM records r
                            WHERE r.rowid = v.record_rowid AND r.deleted_at IS NULL)
                        THEN 'no longer found by the audit'
                        ELSE 'record deleted in the crm' END
                 FROM violation_rows v WHERE v.id = ?1",
            )
            .op("prepare resolving violations")?;
        for id in unjudged {
            set_aside.execute([id]).op("find violations to resolve")?;
        }
        tx.execute(
            "INSERT INTO violation_events
                 (violation_id, at, run_id, actor, kind, from_status, to_status, reason)
             SELECT id, ?1, ?2, ?3, 'resolved', from_status, 'resolved', reason
             FROM temp.audit_resolving ORDER BY id",
            params![self.now_text, self.run, AUDIT_ACTOR],
        )
        .op("record resolved violations")?;
        let changed = tx
            .execute(
                &format!(
                    "UPDATE violation_rows
                     SET {KEEP_SIGHTING},
                         status = 'resolved', resolved_at = ?1, failing = 0,
                         status_reason = (SELECT reason FROM temp.audit_resolving a
                                          WHERE a.id = violation_rows.id)
                     WHERE id IN (SELECT id FROM temp.audit_resolving)"
                ),
                [self.now_text],
            )
            .op("resolve violations")?;
        tx.execute("DELETE FROM temp.audit_resolving", [])
            .op("resolve violations")?;
        Ok(changed as u64)
    }

    /// Records this audit as the last sighting of `connectors`.
    fn sighted(&self, connectors: &[ConnectorName]) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO audit_sightings (connector, run_id, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connector) DO UPDATE SET run_id = excluded.run_id, at = excluded.at",
            )
            .op("prepare recording the audit's sighting")?;
        for connector in connectors {
            stmt.execute(params![connector.as_str(), self.run, self.now_text])
                .op("record the audit's sighting")?;
        }
        Ok(())
    }
}

/// The columns [`stored_row`] reads.
const STORED_COLUMNS: &str = "id, record_rowid, fingerprint, status, failing, record_name, \
     record_url, severity, owner_id, owner_role, message, action, stage_since";

/// Reads a [`Stored`] from [`STORED_COLUMNS`].
fn stored_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Stored)> {
    Ok((
        row.get(2)?,
        Stored {
            id: row.get(0)?,
            record_rowid: row.get(1)?,
            status: row.get(3)?,
            failing: row.get(4)?,
            content: Content {
                record_name: row.get(5)?,
                record_url: row.get(6)?,
                severity: row.get(7)?,
                owner_id: row.get(8)?,
                owner_role: row.get(9)?,
                message: row.get(10)?,
                action: row.get(11)?,
                stage_since: row.get(12)?,
            },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::super::{EventKind, RunKind, ViolationStatus};
    use super::*;
    use crate::rules::BuiltinRule;
    use std::path::Path;

    /// Runs one audit of the hubspot connector at `now` that finds `found`.
    fn audit(store: &mut Store, now: DateTime<Utc>, found: &[Violation]) -> (ChunkDiff, AuditDiff) {
        let run = store.begin_run(RunKind::Audit, None, now).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], now, now.date_naive())
            .unwrap();
        let chunk = writer.record(found).unwrap();
        (chunk, writer.finish().unwrap())
    }

    fn status(store: &Store, v: &Violation) -> ViolationStatus {
        store
            .violation(v.fingerprint.as_str())
            .unwrap()
            .unwrap()
            .status
    }

    fn kinds(store: &Store, v: &Violation) -> Vec<EventKind> {
        let row = store.violation(v.fingerprint.as_str()).unwrap().unwrap();
        store
            .violation_events(row.id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    fn deals(store: &mut Store, ids: &[&str]) {
        let records: Vec<_> = ids.iter().map(|id| record(ObjectKind::Deal, id)).collect();
        store
            .upsert_records(&hubspot(), &records, day(1, 0))
            .unwrap();
    }

    #[test]
    fn a_violation_opens_resolves_and_reopens_across_three_audits() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::MissingOwner, Some("decision"));

        let (chunk, done) = audit(store, day(1, 2), std::slice::from_ref(&v));
        assert_eq!((chunk.new, chunk.reopened, chunk.still_failing), (1, 0, 0));
        assert_eq!(done, AuditDiff::default());
        assert_eq!(status(store, &v), ViolationStatus::Open);

        let (_, done) = audit(store, day(2, 2), &[]);
        assert_eq!(done.resolved, 1);
        let row = store.violation(v.fingerprint.as_str()).unwrap().unwrap();
        assert_eq!(row.status, ViolationStatus::Resolved);
        assert_eq!(row.resolved_at, Some(day(2, 2)));
        assert_eq!(
            row.status_reason.as_deref(),
            Some("no longer found by the audit")
        );

        let (chunk, _) = audit(store, day(3, 2), std::slice::from_ref(&v));
        assert_eq!((chunk.new, chunk.reopened), (0, 1));
        let row = store.violation(v.fingerprint.as_str()).unwrap().unwrap();
        assert_eq!((row.status, row.resolved_at), (ViolationStatus::Open, None));
        assert_eq!((row.first_seen, row.last_seen), (day(1, 2), day(3, 2)));

        let events = store.violation_events(row.id).unwrap();
        let trail: Vec<_> = events
            .iter()
            .map(|e| (e.kind, e.from_status, e.to_status))
            .collect();
        assert_eq!(
            trail,
            vec![
                (EventKind::Opened, None, ViolationStatus::Open),
                (
                    EventKind::Resolved,
                    Some(ViolationStatus::Open),
                    ViolationStatus::Resolved
                ),
                (
                    EventKind::Reopened,
                    Some(ViolationStatus::Resolved),
                    ViolationStatus::Open
                ),
            ]
        );
        assert!(
            events
                .iter()
                .all(|e| e.actor == "journeyd" && e.run_id.is_some())
        );
    }

    fn rows_of(store: &Store, v: &Violation) -> i64 {
        store
            .conn
            .query_row(
                "SELECT count(*) FROM violation_rows WHERE fingerprint = ?1",
                [v.fingerprint.as_str()],
                |row| row.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_violation_stored_before_its_record_is_found_again_once_the_record_is_stored() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let v = violation("1", BuiltinRule::MissingOwner, Some("decision"));
        let (chunk, _) = audit(store, day(1, 2), std::slice::from_ref(&v));
        assert_eq!(chunk.new, 1);
        deals(store, &["1"]);
        let (chunk, done) = audit(store, day(2, 2), std::slice::from_ref(&v));
        assert_eq!((chunk.new, chunk.still_failing), (0, 1));
        assert_eq!(done.resolved, 0);
        assert_eq!(rows_of(store, &v), 1);
        assert_eq!(status(store, &v), ViolationStatus::Open);
    }

    #[test]
    fn a_violation_found_twice_in_one_chunk_is_stored_once() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::MissingOwner, Some("decision"));
        let (chunk, _) = audit(store, day(1, 2), &[v.clone(), v.clone()]);
        assert_eq!(chunk.new, 1);
        assert_eq!(rows_of(store, &v), 1);
    }

    #[test]
    fn a_still_failing_violation_is_refreshed_without_a_new_event() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let mut v = violation("1", BuiltinRule::Stalled, Some("decision"));
        audit(store, day(1, 2), std::slice::from_ref(&v));
        v.message = "deal 1 stalled for 40 days".into();
        let (chunk, _) = audit(store, day(2, 2), std::slice::from_ref(&v));
        assert_eq!(chunk.still_failing, 1);
        let row = store.violation(v.fingerprint.as_str()).unwrap().unwrap();
        assert_eq!(row.violation.message, "deal 1 stalled for 40 days");
        assert_eq!(kinds(store, &v), vec![EventKind::Opened]);
    }

    #[test]
    fn an_acknowledged_violation_stays_acknowledged_while_it_fails() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::OwnerRoleMismatch, Some("decision"));
        audit(store, day(1, 2), std::slice::from_ref(&v));
        let id = store.violation(v.fingerprint.as_str()).unwrap().unwrap().id;
        store
            .acknowledge(id, "ann", "owner covers for a colleague", day(1, 9))
            .unwrap();

        let (chunk, done) = audit(store, day(2, 2), std::slice::from_ref(&v));
        assert_eq!((chunk.still_failing, done.resolved), (1, 0));
        assert_eq!(status(store, &v), ViolationStatus::Acknowledged);

        let (_, done) = audit(store, day(3, 2), &[]);
        assert_eq!(
            done.resolved, 1,
            "an acknowledged violation still resolves when fixed"
        );
        assert_eq!(
            kinds(store, &v),
            vec![
                EventKind::Opened,
                EventKind::Acknowledged,
                EventKind::Resolved
            ]
        );
    }

    #[test]
    fn a_suppressed_violation_reopens_the_day_after_its_date() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::Stalled, Some("decision"));
        audit(store, day(1, 2), std::slice::from_ref(&v));
        let id = store.violation(v.fingerprint.as_str()).unwrap().unwrap().id;
        let until = day(3, 0).date_naive();
        store
            .suppress(id, "ann", "waiting on legal", Some(until), day(1, 9))
            .unwrap();

        let (_, done) = audit(store, day(2, 2), &[]);
        assert_eq!(done.resolved, 0, "a suppressed violation does not resolve");
        let (_, done) = audit(store, day(3, 2), std::slice::from_ref(&v));
        assert_eq!(done.unsuppressed, 0, "suppressed through its last day");
        assert_eq!(status(store, &v), ViolationStatus::Suppressed);

        let (_, done) = audit(store, day(4, 2), std::slice::from_ref(&v));
        assert_eq!(done.unsuppressed, 1);
        let row = store.violation(v.fingerprint.as_str()).unwrap().unwrap();
        assert_eq!(
            (row.status, row.suppressed_until),
            (ViolationStatus::Open, None)
        );
        assert_eq!(
            kinds(store, &v),
            vec![
                EventKind::Opened,
                EventKind::Suppressed,
                EventKind::Unsuppressed
            ]
        );
    }

    #[test]
    fn an_expired_suppression_of_a_fixed_problem_reopens_then_resolves() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::Stalled, Some("decision"));
        audit(store, day(1, 2), std::slice::from_ref(&v));
        let id = store.violation(v.fingerprint.as_str()).unwrap().unwrap().id;
        store
            .suppress(
                id,
                "ann",
                "quarter end",
                Some(day(2, 0).date_naive()),
                day(1, 9),
            )
            .unwrap();
        let (_, done) = audit(store, day(5, 2), &[]);
        assert_eq!((done.unsuppressed, done.resolved), (1, 1));
        assert_eq!(status(store, &v), ViolationStatus::Resolved);
    }

    #[test]
    fn an_audit_deletes_nothing_and_resolves_violations_of_deleted_records() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1", "2"]);
        let found = [
            violation("1", BuiltinRule::MissingOwner, None),
            violation("2", BuiltinRule::MissingOwner, None),
        ];
        audit(store, day(1, 2), &found);
        store
            .mark_deleted(
                &hubspot(),
                ObjectKind::Deal,
                &[RecordId::new("2")],
                day(2, 0),
            )
            .unwrap();
        let (_, done) = audit(store, day(2, 2), &found[..1]);
        assert_eq!(done.resolved, 1);
        let gone = store
            .violation(found[1].fingerprint.as_str())
            .unwrap()
            .unwrap();
        assert_eq!(gone.status, ViolationStatus::Resolved);
        assert_eq!(
            gone.status_reason.as_deref(),
            Some("record deleted in the crm")
        );

        audit(store, day(3, 2), &[]);
        let count = |table: &str| -> i64 {
            store
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((count("violations"), count("records")), (2, 2));
        assert_eq!(count("violation_events"), 4);
    }

    #[test]
    fn violations_of_connectors_outside_the_audit_are_left_alone() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::MissingOwner, None);
        audit(store, day(1, 2), std::slice::from_ref(&v));
        let run = store.begin_run(RunKind::Audit, None, day(2, 2)).unwrap();
        let other = ConnectorName::new("salesforce");
        let writer = store
            .begin_audit(run, &[other], day(2, 2), day(2, 2).date_naive())
            .unwrap();
        assert!(
            writer
                .records_chunk(None, NonZeroUsize::new(10).unwrap())
                .unwrap()
                .is_empty(),
            "not in scope"
        );
        assert_eq!(writer.finish().unwrap().resolved, 0);
        assert_eq!(status(store, &v), ViolationStatus::Open);
    }

    /// Audits deals "1" to "3" through a reading connection of their own,
    /// two records a chunk, finding each ownerless; `between` runs after
    /// the first chunk. Returns the writer's last word: finished or not.
    fn audit_in_chunks(
        test: &mut TestStore,
        now: DateTime<Utc>,
        between: impl FnOnce(&Path),
        finish: bool,
    ) -> RunId {
        let path = test.path();
        let reader = Store::open_reader(&path).unwrap();
        reader.set_audit_scope(&[hubspot()]).unwrap();
        let store = &mut test.store;
        let run = store.begin_run(RunKind::Audit, None, now).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], now, now.date_naive())
            .unwrap();
        // Each chunk committed as written, for `between` to see.
        writer.commit_every(Duration::ZERO);
        let mut between = Some(between);
        let mut after = None;
        loop {
            let chunk = reader
                .audit_chunk(after, NonZeroUsize::new(2).unwrap())
                .unwrap();
            let Some(last) = chunk.last() else { break };
            after = Some(last.rowid);
            let found: Vec<Violation> = chunk
                .iter()
                .map(|r| violation(r.record.id.as_str(), BuiltinRule::MissingOwner, None))
                .collect();
            writer.record(&found).unwrap();
            if let Some(between) = between.take() {
                between(&path);
            }
        }
        if finish {
            writer.finish().unwrap();
        }
        run
    }

    #[test]
    fn an_admin_acknowledges_a_violation_between_two_chunks_of_an_audit() {
        let mut test = TestStore::new();
        deals(&mut test.store, &["1", "2", "3"]);
        audit_in_chunks(&mut test, day(1, 2), |_| {}, true);
        let first = violation("1", BuiltinRule::MissingOwner, None);

        audit_in_chunks(
            &mut test,
            day(2, 2),
            |path| {
                // Another process, as `journeyd violations ack` is.
                let mut admin = Store::open(path).unwrap();
                let id = admin
                    .violation(first.fingerprint.as_str())
                    .unwrap()
                    .unwrap()
                    .id;
                admin
                    .acknowledge(id, "ann", "known gap", day(2, 3))
                    .unwrap();
            },
            true,
        );

        assert_eq!(status(&test.store, &first), ViolationStatus::Acknowledged);
        assert_eq!(
            kinds(&test.store, &first),
            vec![EventKind::Opened, EventKind::Acknowledged]
        );
    }

    #[test]
    fn an_audit_stopped_before_finish_keeps_its_whole_chunks_and_resolves_nothing() {
        let mut test = TestStore::new();
        deals(&mut test.store, &["1", "2", "3", "4"]);
        test.store
            .mark_deleted(
                &hubspot(),
                ObjectKind::Deal,
                &[RecordId::new("4")],
                day(1, 0),
            )
            .unwrap();
        let gone = violation("4", BuiltinRule::MissingOwner, None);
        audit(&mut test.store, day(1, 1), std::slice::from_ref(&gone));
        let mut visible = 0;
        let run = audit_in_chunks(
            &mut test,
            day(1, 2),
            |path| {
                let reader = Store::open(path).unwrap();
                reader
                    .list_violations(&Default::default(), |_| -> Result<(), StoreError> {
                        visible += 1;
                        Ok(())
                    })
                    .unwrap();
            },
            false,
        );
        assert_eq!(
            visible, 3,
            "the first chunk of two, and the old one, committed"
        );
        assert_eq!(status(&test.store, &gone), ViolationStatus::Open);
        let found = test
            .store
            .violation(
                violation("3", BuiltinRule::MissingOwner, None)
                    .fingerprint
                    .as_str(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(found.status, ViolationStatus::Open);
        assert!(
            test.store
                .violation_events(found.id)
                .unwrap()
                .iter()
                .all(|e| e.run_id == Some(run) && e.kind == EventKind::Opened)
        );
    }

    /// What the audit derived of deal `id`: judged, in no stage.
    fn judged(id: &str) -> RecordState {
        RecordState {
            record_rowid: None,
            connector: hubspot(),
            object: ObjectKind::Deal,
            record_id: RecordId::new(id),
            stage: None,
            stage_index: None,
            max_stage_index: None,
            stage_entered_on: None,
            stalled: false,
            owner_id: None,
            owner_role: None,
            recheck_on: None,
        }
    }

    #[test]
    fn a_passing_record_judged_by_an_audit_that_stops_keeps_its_violation_open_until_one_finishes()
    {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let v = violation("1", BuiltinRule::MissingOwner, None);
        audit(store, day(1, 2), std::slice::from_ref(&v));

        let run = store.begin_run(RunKind::Audit, None, day(2, 2)).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], day(2, 2), day(2, 2).date_naive())
            .unwrap();
        writer.record_chunk(&[], &[judged("1")]).unwrap();
        writer.flush().unwrap();
        drop(writer);
        assert_eq!(status(store, &v), ViolationStatus::Open);
        assert_eq!(kinds(store, &v), vec![EventKind::Opened]);

        let run = store.begin_run(RunKind::Audit, None, day(3, 2)).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], day(3, 2), day(3, 2).date_naive())
            .unwrap();
        writer.record_chunk(&[], &[judged("1")]).unwrap();
        assert_eq!(writer.finish().unwrap().resolved, 1);
        let row = store.violation(v.fingerprint.as_str()).unwrap().unwrap();
        assert_eq!(
            (row.status, row.status_reason.as_deref()),
            (
                ViolationStatus::Resolved,
                Some("no longer found by the audit")
            )
        );
        assert_eq!(row.last_seen, day(1, 2), "last seen by the first audit");
    }

    #[test]
    fn record_states_replace_the_previous_audits() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        deals(store, &["1"]);
        let state = |stage: &str, index: usize| RecordState {
            connector: hubspot(),
            object: ObjectKind::Deal,
            record_id: RecordId::new("1"),
            stage: Some(StageId::new(stage)),
            stage_index: Some(index),
            max_stage_index: Some(index),
            record_rowid: None,
            stage_entered_on: Some(day(1, 0).date_naive()),
            stalled: false,
            owner_id: None,
            owner_role: None,
            recheck_on: None,
        };
        for (now, stage, index) in [(day(1, 2), "consideration", 1), (day(2, 2), "decision", 2)] {
            let run = store.begin_run(RunKind::Audit, None, now).unwrap();
            let mut writer = store
                .begin_audit(run, &[hubspot()], now, now.date_naive())
                .unwrap();
            writer.record_states(&[state(stage, index)]).unwrap();
            writer.finish().unwrap();
        }
        let stages: Vec<(String, i64)> = store
            .conn
            .prepare("SELECT stage, stage_index FROM record_state")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stages, vec![("decision".to_owned(), 2)]);
    }
}
