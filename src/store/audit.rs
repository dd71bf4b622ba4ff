//! The [`AuditWriter`]: an audit's writes, chunk by chunk. Each chunk's
//! violations (upserted by fingerprint) and per-record facts for the report
//! commit in one short transaction of their own; `finish` resolves what
//! was not found again and lifts expired suppressions, in one more.
//!
//! Between two chunks the write lock is free: an admin's acknowledgement
//! or a sync's page goes through. A chunk is never half-written, and an
//! audit stopped before `finish` (a shutdown, a crash) resolves nothing:
//! what it committed are violations it did see, refreshed or opened.
//!
//! The audit reads its records on another connection
//! ([`Store::audit_chunk`]), so that reading never waits for writing.

use super::chunks::{Scope, StoredRecord, read_chunk};
use super::columns::{date, severity_rank, ts};
use super::violations::{AUDIT_ACTOR, EventKind, ViolationId, ViolationStatus, insert_event};
use super::{RunId, SqlContext, Store, StoreError, json_error};
use crate::journey::{RoleId, StageId};
use crate::rules::Violation;
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::{ConnectorName, ObjectKind, OwnerId, RecordId};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use std::num::NonZeroUsize;
use std::ops::AddAssign;

/// What the last audit derived of one record, for the stage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    pub connector: ConnectorName,
    pub object: ObjectKind,
    pub record_id: RecordId,
    /// The journey stage; `None` when unmapped or outside the journey.
    pub stage: Option<StageId>,
    pub stage_index: Option<usize>,
    /// The furthest stage the record reached, from its history.
    pub max_stage_index: Option<usize>,
    pub days_in_stage: Option<i64>,
    pub stalled: bool,
    pub owner_id: Option<OwnerId>,
    pub owner_role: Option<RoleId>,
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
        Ok(AuditWriter {
            conn: &mut self.conn,
            run,
            now,
            now_text: ts(now),
            today,
        })
    }

    /// Sets the connectors [`Store::audit_chunk`] reads on this connection.
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
}

impl std::fmt::Debug for AuditWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("run", &self.run)
            .field("now", &self.now)
            .finish()
    }
}

/// One chunk's transaction, and what it writes with.
struct ChunkTx<'t> {
    tx: Transaction<'t>,
    run: RunId,
    now_text: &'t str,
}

impl AuditWriter<'_> {
    pub fn run(&self) -> RunId {
        self.run
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

    fn begin(&mut self, op: &'static str) -> Result<ChunkTx<'_>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .op(op)?;
        Ok(ChunkTx {
            tx,
            run: self.run,
            now_text: &self.now_text,
        })
    }

    /// Records one chunk, in one transaction: upserts the violations found,
    /// by fingerprint (a new one opens; a resolved one reopens; any other
    /// is refreshed, message, owner, severity, action, last seen, and keeps
    /// its status), and stores what the audit derived of the records,
    /// replacing what an earlier audit derived.
    pub fn record_chunk(
        &mut self,
        violations: &[Violation],
        states: &[RecordState],
    ) -> Result<ChunkDiff, StoreError> {
        let chunk = self.begin("begin an audit chunk")?;
        let mut diff = ChunkDiff::default();
        for violation in violations {
            chunk
                .record_one(violation, &mut diff)
                .map_err(|err| StoreError::RecordViolation {
                    fingerprint: violation.fingerprint.to_string(),
                    source: Box::new(err),
                })?;
        }
        chunk.record_states(states)?;
        chunk.tx.commit().op("commit an audit chunk")?;
        Ok(diff)
    }

    /// [`AuditWriter::record_chunk`] with violations only.
    pub fn record(&mut self, violations: &[Violation]) -> Result<ChunkDiff, StoreError> {
        self.record_chunk(violations, &[])
    }

    /// [`AuditWriter::record_chunk`] with record states only.
    pub fn record_states(&mut self, states: &[RecordState]) -> Result<(), StoreError> {
        self.record_chunk(&[], states).map(|_| ())
    }

    /// Ends the audit, in one transaction. First, suppressions dated before
    /// today end, whatever their connector: those violations are open
    /// again. Then every open or acknowledged violation of an audited
    /// connector that this audit did not record is resolved, whether its
    /// record passes now or is gone. Nothing is deleted.
    pub fn finish(mut self) -> Result<AuditDiff, StoreError> {
        let today = date(self.today);
        let chunk = self.begin("begin finishing an audit")?;
        let unsuppressed = chunk.unsuppress(&today)?;
        let resolved = chunk.resolve()?;
        chunk.tx.commit().op("commit an audit")?;
        Ok(AuditDiff {
            resolved,
            unsuppressed,
        })
    }
}

impl ChunkTx<'_> {
    fn record_one(&self, v: &Violation, diff: &mut ChunkDiff) -> Result<(), StoreError> {
        let action = serde_json::to_string(&v.action).map_err(json_error("a planned action"))?;
        let stage = v.stage.as_ref().map(StageId::as_str);
        let owner = v.owner_id.as_ref().map(OwnerId::as_str);
        let role = v.owner_role.as_ref().map(RoleId::as_str);
        let existing: Option<(ViolationId, ViolationStatus, bool)> = self
            .tx
            .prepare_cached(
                "SELECT id, status,
                     record_name IS ?2 AND record_url IS ?3 AND severity = ?4
                     AND owner_id IS ?5 AND owner_role IS ?6 AND message = ?7 AND action = ?8
                 FROM violations WHERE fingerprint = ?1",
            )
            .op("prepare reading a violation")?
            .query_row(
                params![
                    v.fingerprint.as_str(),
                    v.record_name,
                    v.record_url,
                    severity_rank(v.severity),
                    owner,
                    role,
                    v.message,
                    action,
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .op("read a violation")?;
        // The common case of a nightly audit: the same problem, worded the
        // same. Only the sighting moves, which touches no index.
        if let Some((id, status, true)) = existing
            && status != ViolationStatus::Resolved
        {
            self.tx
                .prepare_cached("UPDATE violations SET last_seen = ?2, last_run = ?3 WHERE id = ?1")
                .op("prepare refreshing a violation")?
                .execute(params![id, self.now_text, self.run])
                .op("refresh a violation")?;
            diff.still_failing += 1;
            return Ok(());
        }
        match existing.map(|(id, status, _)| (id, status)) {
            None => {
                let id: ViolationId = self
                    .tx
                    .prepare_cached(
                        "INSERT INTO violations (fingerprint, connector, object, record_id,
                             record_name, record_url, rule, severity, stage, owner_id, owner_role,
                             message, action, status, first_seen, last_seen, last_run)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'open',
                                 ?14, ?14, ?15)
                         RETURNING id",
                    )
                    .op("prepare inserting a violation")?
                    .query_row(
                        params![
                            v.fingerprint.as_str(),
                            v.connector.as_str(),
                            v.object.as_str(),
                            v.record_id.as_str(),
                            v.record_name,
                            v.record_url,
                            v.rule.as_str(),
                            severity_rank(v.severity),
                            stage,
                            owner,
                            role,
                            v.message,
                            action,
                            self.now_text,
                            self.run,
                        ],
                        |row| row.get(0),
                    )
                    .op("insert a violation")?;
                self.event(id, EventKind::Opened, None, ViolationStatus::Open)?;
                diff.new += 1;
            }
            Some((id, status)) => {
                let reopen = status == ViolationStatus::Resolved;
                self.tx
                    .prepare_cached(
                        "UPDATE violations SET record_name = ?2, record_url = ?3, severity = ?4,
                             owner_id = ?5, owner_role = ?6, message = ?7, action = ?8,
                             last_seen = ?9, last_run = ?10,
                             status = CASE WHEN ?11 THEN 'open' ELSE status END,
                             status_reason = CASE WHEN ?11 THEN NULL ELSE status_reason END,
                             resolved_at = CASE WHEN ?11 THEN NULL ELSE resolved_at END
                         WHERE id = ?1",
                    )
                    .op("prepare refreshing a violation")?
                    .execute(params![
                        id,
                        v.record_name,
                        v.record_url,
                        severity_rank(v.severity),
                        owner,
                        role,
                        v.message,
                        action,
                        self.now_text,
                        self.run,
                        reopen,
                    ])
                    .op("refresh a violation")?;
                if reopen {
                    self.event(id, EventKind::Reopened, Some(status), ViolationStatus::Open)?;
                    diff.reopened += 1;
                } else {
                    diff.still_failing += 1;
                }
            }
        }
        Ok(())
    }

    fn event(
        &self,
        id: ViolationId,
        kind: EventKind,
        from: Option<ViolationStatus>,
        to: ViolationStatus,
    ) -> Result<(), StoreError> {
        insert_event(
            &self.tx,
            id,
            self.now_text,
            Some(self.run),
            AUDIT_ACTOR,
            kind,
            from,
            to,
            None,
        )
    }

    fn record_states(&self, states: &[RecordState]) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO record_state (connector, object, record_id, stage, stage_index,
                     max_stage_index, days_in_stage, stalled, owner_id, owner_role, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (connector, object, record_id) DO UPDATE SET
                     stage = excluded.stage, stage_index = excluded.stage_index,
                     max_stage_index = excluded.max_stage_index,
                     days_in_stage = excluded.days_in_stage, stalled = excluded.stalled,
                     owner_id = excluded.owner_id, owner_role = excluded.owner_role,
                     run_id = excluded.run_id",
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
                state.days_in_stage,
                state.stalled,
                state.owner_id.as_ref().map(OwnerId::as_str),
                state.owner_role.as_ref().map(RoleId::as_str),
                self.run,
            ])
            .op("store a record state")
            .map_err(|err| {
                StoreError::record(&state.connector, state.object, &state.record_id, err)
            })?;
        }
        Ok(())
    }

    fn unsuppress(&self, today: &str) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "INSERT INTO violation_events
                     (violation_id, at, run_id, actor, kind, from_status, to_status, reason)
                 SELECT id, ?1, ?2, ?3, 'unsuppressed', 'suppressed', 'open',
                        'suppressed until ' || suppressed_until
                 FROM violations WHERE status = 'suppressed' AND suppressed_until < ?4",
                params![self.now_text, self.run, AUDIT_ACTOR, today],
            )
            .op("record ended suppressions")?;
        let changed = self
            .tx
            .execute(
                "UPDATE violations
                 SET status = 'open', status_reason = 'suppressed until ' || suppressed_until,
                     suppressed_until = NULL
                 WHERE status = 'suppressed' AND suppressed_until < ?1",
                [today],
            )
            .op("end suppressions")?;
        Ok(changed as u64)
    }

    fn resolve(&self) -> Result<u64, StoreError> {
        let tx = &self.tx;
        tx.execute("DELETE FROM temp.audit_resolving", [])
            .op("resolve violations")?;
        tx.execute(
            "INSERT INTO temp.audit_resolving (id, from_status, reason)
             SELECT v.id, v.status,
                    CASE WHEN EXISTS (
                        SELECT 1 FROM records r
                        WHERE r.connector = v.connector AND r.object = v.object
                          AND r.id = v.record_id AND r.deleted_at IS NULL)
                    THEN 'no longer found by the audit'
                    ELSE 'record deleted in the crm' END
             FROM violations v
             WHERE v.status IN ('open', 'acknowledged')
               AND v.connector IN (SELECT connector FROM temp.audit_scope)
               AND v.last_run IS NOT ?1",
            [self.run],
        )
        .op("find violations to resolve")?;
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
                "UPDATE violations
                 SET status = 'resolved', resolved_at = ?1,
                     status_reason = (SELECT reason FROM temp.audit_resolving a
                                      WHERE a.id = violations.id)
                 WHERE id IN (SELECT id FROM temp.audit_resolving)",
                [self.now_text],
            )
            .op("resolve violations")?;
        tx.execute("DELETE FROM temp.audit_resolving", [])
            .op("resolve violations")?;
        Ok(changed as u64)
    }
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
            days_in_stage: Some(3),
            stalled: false,
            owner_id: None,
            owner_role: None,
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
