//! Which records an audit judges: those queued because something they are
//! judged on changed, and every record of a connector judged under another
//! config or other owners than now.
//!
//! Triggers (migration 8) queue a record when it, its stage history, a
//! record sharing its duplicate key, or journeyd's own task on it changes.
//! What the rules read beside the records is checked when an audit begins:
//! a digest of the config (the caller's) and the owners' generation, kept
//! per connector in `audit_basis` by the last audit that judged the whole
//! connector and finished. Time is the last input: a record whose outcome
//! may change with the date alone (`record_state.recheck_on`) is queued
//! from that date.
//!
//! Each queued record carries a random `mark`, drawn anew by every change.
//! The audit reads a record and its mark in one read transaction and takes
//! it out of the queue, with the chunk's writes, only if the mark is still
//! the one it read: a record changed while it was being judged stays
//! queued for the next audit.

use super::chunks::{Scope, StoredRecord, complete, stored_record};
use super::columns::date;
use super::{RunId, SqlContext, Store, StoreError};
use chrono::NaiveDate;
use journeyd_connector::ConnectorName;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::num::NonZeroUsize;

/// What a connector's records are judged under beside their own data: a
/// digest of the config the rules read for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorBasis {
    pub connector: ConnectorName,
    pub digest: String,
}

/// A connector whose records an audit judges whole, and what it judges
/// them under: written to `audit_basis` when the audit finishes.
#[derive(Debug, Clone)]
pub(super) struct WholeConnector {
    pub connector: ConnectorName,
    pub digest: String,
    pub owner_generation: i64,
}

/// A queued record as a chunk read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueMark {
    pub rowid: i64,
    pub mark: i64,
}

/// One chunk of the queue: the live records to judge, and the marks of
/// every queued record the chunk covers, live or gone from the CRM.
#[derive(Debug, Default)]
pub struct QueuedChunk {
    pub records: Vec<StoredRecord>,
    pub marks: Vec<QueueMark>,
}

impl QueuedChunk {
    /// The keyset position of the next chunk; `None` at the end.
    pub fn last(&self) -> Option<i64> {
        self.marks.last().map(|m| m.rowid)
    }
}

impl Store {
    /// Each connector's owners' generation: it counts every change to an
    /// owner's name, email, status or teams. 0 for owners never stored.
    /// Read before the owners an audit judges with, so that a change in
    /// between makes the generation look newer than it is, never older.
    pub fn owner_generations(
        &self,
        connectors: &[ConnectorName],
    ) -> Result<HashMap<ConnectorName, i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT generation FROM owner_generations WHERE connector = ?1")
            .op("prepare reading the owners' generation")?;
        let mut generations = HashMap::new();
        for connector in connectors {
            let generation: Option<i64> = stmt
                .query_row([connector.as_str()], |row| row.get(0))
                .optional()
                .op("read the owners' generation")?;
            generations.insert(connector.clone(), generation.unwrap_or(0));
        }
        Ok(generations)
    }

    /// Up to `limit` queued records of the audited connectors (see
    /// [`Store::set_audit_scope`]) with rowid above `after`, in one read
    /// transaction. Records of other connectors stay queued for their own
    /// audit. An empty chunk means the end.
    pub fn audit_queue_chunk(
        &self,
        after: Option<i64>,
        limit: NonZeroUsize,
    ) -> Result<QueuedChunk, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .op("begin reading a chunk")?;
        let mut chunk = QueuedChunk::default();
        {
            // Each queued record and the record itself in one seek; a record
            // the CRM deleted comes with its mark only.
            let mut stmt = tx
                .prepare_cached(
                    "SELECT r.rowid, r.connector, r.object, r.id, r.snapshot,
                            q.record_rowid, q.mark,
                            r.rowid IS NOT NULL AND r.deleted_at IS NULL
                     FROM audit_queue q LEFT JOIN records r ON r.rowid = q.record_rowid
                     WHERE q.record_rowid > ?1
                       AND (r.rowid IS NULL
                            OR r.connector IN (SELECT connector FROM temp.audit_scope))
                     ORDER BY q.record_rowid LIMIT ?2",
                )
                .op("prepare reading the audit queue")?;
            let mut rows = stmt
                .query(params![
                    after.unwrap_or(i64::MIN),
                    i64::try_from(limit.get()).unwrap_or(i64::MAX)
                ])
                .op("read the audit queue")?;
            while let Some(row) = rows.next().op("read the audit queue")? {
                let read = || -> rusqlite::Result<_> {
                    Ok((
                        QueueMark {
                            rowid: row.get(5)?,
                            mark: row.get(6)?,
                        },
                        row.get::<_, bool>(7)?,
                    ))
                };
                let (mark, live) = read().op("read the audit queue")?;
                chunk.marks.push(mark);
                if live {
                    chunk.records.push(stored_record(row)?);
                }
            }
        }
        chunk.records = complete(&tx, Scope::Audit, chunk.records)?;
        tx.finish().op("end reading a chunk")?;
        Ok(chunk)
    }
}

/// Queues what an audit of `bases`' connectors must judge, in one
/// transaction on `conn`: every live record of a connector whose basis
/// changed (or of all, when `full`), and the records whose recheck date
/// came by `today`. Returns the connectors judged whole.
pub(super) fn enqueue(
    conn: &mut Connection,
    bases: &[ConnectorBasis],
    generations: &HashMap<ConnectorName, i64>,
    full: bool,
    today: NaiveDate,
) -> Result<Vec<WholeConnector>, StoreError> {
    let tx = conn.transaction().op("begin queueing an audit")?;
    let mut whole = Vec::new();
    for basis in bases {
        let owner_generation = generations.get(&basis.connector).copied().unwrap_or(0);
        let stored: Option<(String, i64)> = tx
            .prepare_cached("SELECT digest, owner_generation FROM audit_basis WHERE connector = ?1")
            .op("prepare reading an audit basis")?
            .query_row([basis.connector.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .op("read an audit basis")?;
        let same = stored.as_ref().is_some_and(|(digest, generation)| {
            *digest == basis.digest && *generation == owner_generation
        });
        if full || !same {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO audit_queue (record_rowid, mark)
                 SELECT rowid, random() FROM records
                 WHERE connector = ?1 AND deleted_at IS NULL",
            )
            .op("prepare queueing a connector's records")?
            .execute([basis.connector.as_str()])
            .op("queue a connector's records")?;
            whole.push(WholeConnector {
                connector: basis.connector.clone(),
                digest: basis.digest.clone(),
                owner_generation,
            });
        }
    }
    tx.execute(
        "INSERT OR IGNORE INTO audit_queue (record_rowid, mark)
         SELECT r.rowid, random()
         FROM record_state s INDEXED BY record_state_recheck
         CROSS JOIN records r
           ON r.connector = s.connector AND r.object = s.object AND r.id = s.record_id
         WHERE s.recheck_on <= ?1
           AND s.connector IN (SELECT connector FROM temp.audit_scope)",
        [date(today)],
    )
    .op("queue the records due a recheck")?;
    tx.commit().op("commit queueing an audit")?;
    Ok(whole)
}

/// Takes the records `marks` judged out of the queue, each only if its
/// mark is the one read.
pub(super) fn dequeue(tx: &Connection, marks: &[QueueMark]) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached("DELETE FROM audit_queue WHERE record_rowid = ?1 AND mark = ?2")
        .op("prepare taking records out of the audit queue")?;
    for m in marks {
        stmt.execute(params![m.rowid, m.mark])
            .op("take a record out of the audit queue")?;
    }
    Ok(())
}

/// Records what the connectors judged whole were judged under.
pub(super) fn settle_bases(
    tx: &Connection,
    whole: &[WholeConnector],
    run: RunId,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO audit_basis (connector, digest, owner_generation, run_id)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector) DO UPDATE SET digest = excluded.digest,
                 owner_generation = excluded.owner_generation, run_id = excluded.run_id",
        )
        .op("prepare recording an audit basis")?;
    for w in whole {
        stmt.execute(params![
            w.connector.as_str(),
            w.digest,
            w.owner_generation,
            run
        ])
        .op("record an audit basis")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record};
    use super::*;
    use crate::store::RunKind;
    use journeyd_connector::{CrmRecord, ObjectKind};

    fn queued(store: &Store) -> Vec<i64> {
        let mut stmt = store
            .conn
            .prepare("SELECT record_rowid FROM audit_queue ORDER BY record_rowid")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn rowid(store: &Store, id: &str) -> i64 {
        store
            .conn
            .query_row("SELECT rowid FROM records WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .unwrap()
    }

    fn empty_queue(store: &Store) {
        store.conn.execute("DELETE FROM audit_queue", []).unwrap();
    }

    fn contact(id: &str, email: &str) -> CrmRecord {
        let mut contact = record(ObjectKind::Contact, id);
        contact.email = Some(email.to_owned());
        contact
    }

    #[test]
    fn a_stored_record_is_queued_and_one_stored_again_unchanged_is_not() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let deal = record(ObjectKind::Deal, "1");
        store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(1, 0))
            .unwrap();
        assert_eq!(queued(store), vec![rowid(store, "1")]);
        empty_queue(store);
        store
            .upsert_records(&hubspot(), &[deal], day(2, 0))
            .unwrap();
        assert!(queued(store).is_empty());
    }

    #[test]
    fn a_stage_change_the_crm_reports_alone_queues_its_record() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let mut deal = record(ObjectKind::Deal, "1");
        deal.stage_history = vec![journeyd_connector::StageChange {
            stage: "appointmentscheduled".into(),
            at: day(1, 0),
            owner_id: None,
        }];
        store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(1, 0))
            .unwrap();
        empty_queue(store);
        deal.stage_history.push(journeyd_connector::StageChange {
            stage: "qualifiedtobuy".into(),
            at: day(2, 0),
            owner_id: None,
        });
        store
            .upsert_records(&hubspot(), &[deal], day(2, 0))
            .unwrap();
        assert_eq!(queued(store), vec![rowid(store, "1")]);
    }

    #[test]
    fn a_new_duplicate_queues_the_record_it_duplicates() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        store
            .upsert_records(
                &hubspot(),
                &[
                    contact("1", "ana@example.com"),
                    contact("2", "bo@example.com"),
                ],
                day(1, 0),
            )
            .unwrap();
        empty_queue(store);
        store
            .upsert_records(&hubspot(), &[contact("3", "Ana@example.com")], day(2, 0))
            .unwrap();
        assert_eq!(queued(store), vec![rowid(store, "1"), rowid(store, "3")]);
    }

    #[test]
    fn a_record_deleted_in_the_crm_queues_itself_and_its_duplicates() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        store
            .upsert_records(
                &hubspot(),
                &[
                    contact("1", "ana@example.com"),
                    contact("2", "ana@example.com"),
                ],
                day(1, 0),
            )
            .unwrap();
        empty_queue(store);
        store
            .mark_deleted(&hubspot(), ObjectKind::Contact, &["2".into()], day(2, 0))
            .unwrap();
        assert_eq!(queued(store), vec![rowid(store, "1"), rowid(store, "2")]);
    }

    #[test]
    fn journeyds_own_task_confirmed_after_the_sync_queues_its_record() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        store
            .upsert_records(&hubspot(), &[record(ObjectKind::Deal, "1")], day(1, 0))
            .unwrap();
        empty_queue(store);
        let request = serde_json::json!({
            "kind": "create_task", "key": "jdk", "object": "deal", "record_id": "1",
            "owner_id": null, "subject": "s", "body": "b", "due": "2026-11-05",
            "priority": "normal"
        });
        store
            .conn
            .execute(
                "INSERT INTO writeback_ledger (action_key, fingerprint, connector, request, state,
                     created_at, updated_at)
                 VALUES ('jdk', 'f', 'hubspot', ?1, 'sent', 'now', 'now')",
                [request.to_string()],
            )
            .unwrap();
        assert!(queued(store).is_empty(), "not before the CRM's id is known");
        store
            .conn
            .execute(
                "UPDATE writeback_ledger SET crm_id = 't-1', state = 'applied'",
                [],
            )
            .unwrap();
        assert_eq!(queued(store), vec![rowid(store, "1")]);
    }

    #[test]
    fn a_record_changed_while_the_audit_judged_it_stays_queued() {
        let test = TestStore::new();
        let path = test.path();
        let mut writer = Store::open(&path).unwrap();
        let reader = Store::open_reader(&path).unwrap();
        let mut syncer = Store::open(&path).unwrap();
        let mut deal = record(ObjectKind::Deal, "1");
        syncer
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(1, 0))
            .unwrap();
        syncer
            .upsert_records(&hubspot(), &[record(ObjectKind::Deal, "2")], day(1, 0))
            .unwrap();
        let run = writer.begin_run(RunKind::Audit, None, day(2, 0)).unwrap();
        let bases = [ConnectorBasis {
            connector: hubspot(),
            digest: "d".into(),
        }];
        let mut audit = writer
            .begin_queued_audit(
                run,
                &bases,
                &HashMap::new(),
                false,
                day(2, 0),
                day(2, 0).date_naive(),
            )
            .unwrap();
        reader.set_audit_scope(&[hubspot()]).unwrap();
        let chunk = reader
            .audit_queue_chunk(None, NonZeroUsize::new(10).unwrap())
            .unwrap();
        assert_eq!(chunk.records.len(), 2);
        // A sync changes deal 1 after the audit read it.
        deal.name = Some("Renamed".into());
        syncer
            .upsert_records(&hubspot(), &[deal], day(2, 1))
            .unwrap();
        audit.record_queued_chunk(&[], &[], &chunk.marks).unwrap();
        audit.finish().unwrap();
        let left = queued(&syncer);
        assert_eq!(left.len(), 1, "only the changed record");
        assert_eq!(left[0], chunk.records[0].rowid);
    }

    #[test]
    fn the_queue_of_another_connector_is_left_for_its_own_audit() {
        let test = TestStore::new();
        let mut store = Store::open(&test.path()).unwrap();
        let other = ConnectorName::new("salesforce");
        store
            .upsert_records(&other, &[record(ObjectKind::Deal, "9")], day(1, 0))
            .unwrap();
        store.set_audit_scope(&[hubspot()]).unwrap();
        let chunk = store
            .audit_queue_chunk(None, NonZeroUsize::new(10).unwrap())
            .unwrap();
        assert!(chunk.marks.is_empty() && chunk.records.is_empty());
        assert_eq!(queued(&store).len(), 1);
    }
}
