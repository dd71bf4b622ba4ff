//! Deletion reconcile by absence: a full pull that reads every record of an
//! object kind, start to end, proves that the live records it did not see
//! are gone from the CRM, whatever the CRM's own deletion feed still
//! remembers (recycle bins and delete logs forget after some days).
//!
//! The pull is noted when it starts, its unreadable records are counted as
//! it goes (a skipped record was not seen but is not gone), and at its end
//! the sync decides from the figures whether to sweep. A pull resumed from
//! a saved cursor in a later run is the same pull: records it stored in the
//! earlier run were seen after it started.

use super::columns::{get_ts, ts};
use super::{SqlContext, Store, StoreError};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, ObjectKind};
use rusqlite::{OptionalExtension, params};

/// A full pull that reached its end, with what a sweep would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReconcile {
    pub started_at: DateTime<Utc>,
    /// Records the pull could not read.
    pub skipped: u64,
    /// Live records the pull did not see.
    pub unseen: u64,
    /// Live records before the sweep.
    pub live: u64,
}

impl Store {
    /// Notes that a full pull of `object` starts `at`, replacing any pull
    /// that never finished.
    pub fn begin_reconcile(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO reconciles (connector, object, started_at, skipped)
                 VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (connector, object) DO UPDATE SET
                     started_at = excluded.started_at, skipped = 0",
            )
            .op("prepare starting a reconcile")?
            .execute(params![connector.as_str(), object.as_str(), ts(at)])
            .op("start a reconcile")?;
        Ok(())
    }

    /// Counts records the full pull under way could not read; nothing
    /// happens when no full pull is under way.
    pub fn note_reconcile_skips(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        skipped: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE reconciles SET skipped = skipped + ?3
                 WHERE connector = ?1 AND object = ?2",
            )
            .op("prepare counting reconcile skips")?
            .execute(params![connector.as_str(), object.as_str(), skipped as i64])
            .op("count reconcile skips")?;
        Ok(())
    }

    /// Forgets the full pull of `object`, if one was under way: an
    /// incremental pull has begun instead.
    pub fn drop_reconcile(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM reconciles WHERE connector = ?1 AND object = ?2")
            .op("prepare dropping a reconcile")?
            .execute(params![connector.as_str(), object.as_str()])
            .op("drop a reconcile")?;
        Ok(())
    }

    /// Whether a full pull of `object` is under way: the cursor saved for
    /// it, if any, is that pull's.
    pub fn reconcile_under_way(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM reconciles WHERE connector = ?1 AND object = ?2")
            .op("prepare looking for a reconcile")?
            .query_row(params![connector.as_str(), object.as_str()], |_| Ok(()))
            .optional()
            .op("look for a reconcile")
            .map(|found| found.is_some())
    }

    /// The full pull of `object` that just ended, with its figures; `None`
    /// when none was under way.
    pub fn pending_reconcile(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
    ) -> Result<Option<PendingReconcile>, StoreError> {
        let Some((started_at, skipped)) = self
            .conn
            .prepare_cached(
                "SELECT started_at, skipped FROM reconciles WHERE connector = ?1 AND object = ?2",
            )
            .op("prepare reading a reconcile")?
            .query_row(params![connector.as_str(), object.as_str()], |row| {
                Ok((get_ts(row, 0)?, row.get::<_, i64>(1)?))
            })
            .optional()
            .op("read a reconcile")?
        else {
            return Ok(None);
        };
        let (live, unseen) = self
            .conn
            .prepare_cached(
                "SELECT count(*), count(*) FILTER (WHERE last_seen < ?3) FROM records
                 WHERE connector = ?1 AND object = ?2 AND deleted_at IS NULL",
            )
            .op("prepare counting unseen records")?
            .query_row(
                params![connector.as_str(), object.as_str(), ts(started_at)],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )
            .op("count unseen records")?;
        Ok(Some(PendingReconcile {
            started_at,
            skipped: skipped as u64,
            unseen: unseen as u64,
            live: live as u64,
        }))
    }

    /// Ends the full pull of `object`: with `sweep`, every live record not
    /// seen since it started is marked deleted `at`. Returns how many were.
    pub fn finish_reconcile(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        sweep: bool,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().op("begin ending a reconcile")?;
        let started: Option<String> = tx
            .prepare_cached(
                "DELETE FROM reconciles WHERE connector = ?1 AND object = ?2 RETURNING started_at",
            )
            .op("prepare ending a reconcile")?
            .query_row(params![connector.as_str(), object.as_str()], |row| {
                row.get(0)
            })
            .optional()
            .op("end a reconcile")?;
        let deleted = match started {
            Some(started) if sweep => tx
                .prepare_cached(
                    "UPDATE records SET deleted_at = ?4
                     WHERE connector = ?1 AND object = ?2 AND deleted_at IS NULL
                       AND last_seen < ?3",
                )
                .op("prepare sweeping unseen records")?
                .execute(params![
                    connector.as_str(),
                    object.as_str(),
                    started,
                    ts(at)
                ])
                .op("sweep unseen records")?,
            _ => 0,
        };
        tx.commit().op("commit ending a reconcile")?;
        Ok(deleted as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit::{TestStore, day, hubspot, record};

    fn stored(test: &mut TestStore, ids: &[&str], at: DateTime<Utc>) {
        let records: Vec<_> = ids.iter().map(|id| record(ObjectKind::Deal, id)).collect();
        test.store
            .store_page(&hubspot(), ObjectKind::Deal, &records, None, None, at)
            .unwrap();
    }

    fn live(test: &TestStore) -> u64 {
        test.store
            .conn
            .query_row(
                "SELECT count(*) FROM records WHERE deleted_at IS NULL",
                [],
                |row| row.get::<_, i64>(0),
            )
            .unwrap() as u64
    }

    #[test]
    fn a_finished_full_pull_sweeps_the_records_it_did_not_see() {
        let mut test = TestStore::new();
        stored(&mut test, &["1", "2", "3"], day(1, 0));
        test.store
            .begin_reconcile(&hubspot(), ObjectKind::Deal, day(2, 0))
            .unwrap();
        stored(&mut test, &["1", "3"], day(2, 1));
        let pending = test
            .store
            .pending_reconcile(&hubspot(), ObjectKind::Deal)
            .unwrap()
            .unwrap();
        assert_eq!((pending.unseen, pending.live, pending.skipped), (1, 3, 0));
        let deleted = test
            .store
            .finish_reconcile(&hubspot(), ObjectKind::Deal, true, day(2, 2))
            .unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(live(&test), 2);
        assert_eq!(
            test.store
                .pending_reconcile(&hubspot(), ObjectKind::Deal)
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_reconcile_ended_without_sweeping_marks_nothing() {
        let mut test = TestStore::new();
        stored(&mut test, &["1", "2"], day(1, 0));
        test.store
            .begin_reconcile(&hubspot(), ObjectKind::Deal, day(2, 0))
            .unwrap();
        let deleted = test
            .store
            .finish_reconcile(&hubspot(), ObjectKind::Deal, false, day(2, 2))
            .unwrap();
        assert_eq!(deleted, 0);
        assert_eq!(live(&test), 2);
    }

    #[test]
    fn skips_are_counted_only_while_a_full_pull_is_under_way() {
        let mut test = TestStore::new();
        test.store
            .note_reconcile_skips(&hubspot(), ObjectKind::Deal, 4)
            .unwrap();
        test.store
            .begin_reconcile(&hubspot(), ObjectKind::Deal, day(2, 0))
            .unwrap();
        test.store
            .note_reconcile_skips(&hubspot(), ObjectKind::Deal, 2)
            .unwrap();
        let pending = test
            .store
            .pending_reconcile(&hubspot(), ObjectKind::Deal)
            .unwrap()
            .unwrap();
        assert_eq!(pending.skipped, 2);
    }

    #[test]
    fn a_dropped_reconcile_sweeps_nothing() {
        let mut test = TestStore::new();
        stored(&mut test, &["1"], day(1, 0));
        test.store
            .begin_reconcile(&hubspot(), ObjectKind::Deal, day(2, 0))
            .unwrap();
        test.store
            .drop_reconcile(&hubspot(), ObjectKind::Deal)
            .unwrap();
        let deleted = test
            .store
            .finish_reconcile(&hubspot(), ObjectKind::Deal, true, day(2, 2))
            .unwrap();
        assert_eq!(deleted, 0);
        assert_eq!(live(&test), 1);
    }
}
