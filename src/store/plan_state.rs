//! What the write-back planner keeps between plans, so that a plan judges
//! only the records whose inputs changed since the last one: for each
//! record whose task needs something, what it needs (its class) and the
//! rank that orders it; the basis those were judged under; and the records
//! triggers noted as changed since (migration 9).
//!
//! Only the choice of which records to look at comes from here: every
//! write a plan makes is decided again from the records, tasks and ledger
//! as they are, so a class out of date can never make a write twice.

use super::{SqlContext, Store, StoreError};
use journeyd_connector::ConnectorName;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// What a record's task needs, as a plan keeps it. A record that needs
/// nothing is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanClass {
    /// A write to send.
    Write = 1,
    /// A write in flight, or waiting for an admin.
    Known = 2,
    /// A task to create that nobody can take.
    Nobody = 3,
}

/// Which records a plan judges: every one of the connector, or those
/// noted as changed since the last plan.
#[derive(Debug, Clone)]
pub struct PlanScope {
    /// Every record: there was no basis, or it did not match.
    pub whole: bool,
    digest: String,
    owner_generation: i64,
}

/// How many records the plan keeps in each class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    pub write: u64,
    pub known: u64,
    pub nobody: u64,
}

/// A place in a class's order: most severe first, then by rowid.
pub type PlanCursor = (i64, i64);

impl Store {
    /// Begins a plan of `connector`'s records' tasks, judged under the
    /// config `digest`: whole when the kept basis differs (or the owners
    /// changed), else of the noted records. Puts the noted records in
    /// `temp.plan_scope`. A whole plan first marks its basis as under
    /// way, so that the changes made while it runs are noted for the next.
    pub fn begin_plan(
        &self,
        connector: &ConnectorName,
        digest: &str,
    ) -> Result<PlanScope, StoreError> {
        // Read before the records are: a change after it can only make the
        // next plan whole.
        let owner_generation = self
            .owner_generations(std::slice::from_ref(connector))?
            .get(connector)
            .copied()
            .unwrap_or(0);
        let basis: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT digest, owner_generation FROM plan_basis WHERE connector = ?1",
                [connector.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .op("read the write-back plan's basis")?;
        let whole = basis.is_none_or(|(kept, generation)| {
            kept.is_empty() || kept != digest || generation != owner_generation
        });
        if whole {
            self.conn
                .execute(
                    "INSERT INTO plan_basis (connector, digest, owner_generation)
                     VALUES (?1, '', 0)
                     ON CONFLICT (connector) DO UPDATE SET digest = '', owner_generation = 0",
                    [connector.as_str()],
                )
                .op("mark a whole write-back plan as under way")?;
        }
        self.conn
            .execute_batch(
                "DROP TABLE IF EXISTS temp.plan_scope;
                 CREATE TEMP TABLE plan_scope (record_rowid INTEGER PRIMARY KEY, mark INTEGER);
                 DROP TABLE IF EXISTS temp.plan_classes;
                 CREATE TEMP TABLE plan_classes (
                     record_rowid INTEGER PRIMARY KEY, class INTEGER NOT NULL,
                     rank INTEGER NOT NULL);",
            )
            .op("make the write-back plan's scope")?;
        self.conn
            .execute(
                "INSERT INTO temp.plan_scope (record_rowid, mark)
                 SELECT d.record_rowid, d.mark FROM plan_dirty d
                 JOIN records r ON r.rowid = d.record_rowid
                 WHERE r.connector = ?1",
                [connector.as_str()],
            )
            .op("read the records changed since the last write-back plan")?;
        Ok(PlanScope {
            whole,
            digest: digest.to_owned(),
            owner_generation,
        })
    }

    /// Notes what the tasks of stored records need, as this plan judged
    /// them: (rowid, class, rank) each, a page in one statement.
    pub fn note_plan_classes(&self, classes: &[(i64, PlanClass, i64)]) -> Result<(), StoreError> {
        if classes.is_empty() {
            return Ok(());
        }
        let rows: Vec<[i64; 3]> = classes
            .iter()
            .map(|&(rowid, class, rank)| [rowid, class as i64, rank])
            .collect();
        self.conn
            .prepare_cached(
                "INSERT INTO temp.plan_classes (record_rowid, class, rank)
                 SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1)",
            )
            .op("prepare noting records' classes")?
            .execute([serde_json::to_string(&rows).unwrap_or_default()])
            .op("note records' classes")?;
        Ok(())
    }

    /// Keeps what this plan judged, in one transaction: the classes of the
    /// records in its scope (every record of a whole plan) replace theirs,
    /// and the noted records it judged are taken out unless they changed
    /// again since it read them. A whole plan keeps its basis only when
    /// every record it found a need for is stored (`complete`): a record
    /// that is not cannot be noted when it changes.
    pub fn keep_plan(
        &self,
        connector: &ConnectorName,
        scope: &PlanScope,
        complete: bool,
    ) -> Result<(), StoreError> {
        let name = connector.as_str();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .op("begin keeping the write-back plan")?;
        if scope.whole {
            tx.execute("DELETE FROM plan_records WHERE connector = ?1", [name])
        } else {
            tx.execute(
                "DELETE FROM plan_records
                 WHERE record_rowid IN (SELECT record_rowid FROM temp.plan_scope)",
                [],
            )
        }
        .op("drop the classes this plan judged again")?;
        tx.execute(
            "INSERT INTO plan_records (record_rowid, connector, class, rank)
             SELECT record_rowid, ?1, class, rank FROM temp.plan_classes",
            [name],
        )
        .op("keep the classes this plan judged")?;
        tx.execute(
            "DELETE FROM plan_dirty WHERE record_rowid IN (
                 SELECT s.record_rowid FROM temp.plan_scope s
                 JOIN plan_dirty d ON d.record_rowid = s.record_rowid AND d.mark = s.mark)",
            [],
        )
        .op("take out the changed records this plan judged")?;
        if scope.whole {
            if complete {
                // Only over the mark this plan set: a basis taken away
                // meanwhile stays away.
                tx.execute(
                    "UPDATE plan_basis SET digest = ?2, owner_generation = ?3
                     WHERE connector = ?1 AND digest = ''",
                    params![name, scope.digest, scope.owner_generation],
                )
            } else {
                tx.execute("DELETE FROM plan_basis WHERE connector = ?1", [name])
            }
            .op("keep the write-back plan's basis")?;
        }
        tx.commit().op("keep the write-back plan")
    }

    /// How many records of `connector` the kept plan holds in each class.
    pub fn plan_counts(&self, connector: &ConnectorName) -> Result<PlanCounts, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT class, count(*) FROM plan_records WHERE connector = ?1 GROUP BY class",
            )
            .op("prepare counting the kept plan")?;
        let mut rows = stmt.query([connector.as_str()]).op("count the kept plan")?;
        let mut counts = PlanCounts::default();
        while let Some(row) = rows.next().op("count the kept plan")? {
            let (class, n): (i64, u64) = (
                row.get(0).op("count the kept plan")?,
                row.get(1).op("count the kept plan")?,
            );
            match class {
                1 => counts.write = n,
                2 => counts.known = n,
                _ => counts.nobody = n,
            }
        }
        Ok(counts)
    }

    /// Up to `limit` records of `connector` kept in `class`, most severe
    /// first, from just after `after`: their rank and rowid.
    pub fn plan_class_page(
        &self,
        connector: &ConnectorName,
        class: PlanClass,
        after: Option<PlanCursor>,
        limit: usize,
    ) -> Result<Vec<PlanCursor>, StoreError> {
        let (rank, rowid) = after.unwrap_or((i64::MAX, i64::MIN));
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rank, record_rowid FROM plan_records
                 WHERE connector = ?1 AND class = ?2
                   AND (rank < ?3 OR (rank = ?3 AND record_rowid > ?4))
                 ORDER BY rank DESC, record_rowid LIMIT ?5",
            )
            .op("prepare listing the kept plan")?;
        let rows = stmt
            .query_map(
                params![
                    connector.as_str(),
                    class as i64,
                    rank,
                    rowid,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .op("list the kept plan")?;
        rows.collect::<Result<_, _>>().op("list the kept plan")
    }

    /// Puts the stored records `rowids` in `temp.plan_scope`, for
    /// [`Store::gather_record_task_candidates`] to read them as they are.
    pub fn pick_plan_records(&self, rowids: &[i64]) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM temp.plan_scope", [])
            .op("clear the records picked from the kept plan")?;
        self.conn
            .execute(
                "INSERT INTO temp.plan_scope (record_rowid)
                 SELECT value FROM json_each(?1)",
                [serde_json::Value::from(rowids.to_vec()).to_string()],
            )
            .op("pick records from the kept plan")?;
        Ok(())
    }
}

#[cfg(test)]
impl Store {
    /// Drops what the plans of `connector` kept: the next plan is whole.
    pub fn forget_plan(&self, connector: &ConnectorName) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM plan_basis WHERE connector = ?1",
                [connector.as_str()],
            )
            .op("forget the write-back plan")?;
        Ok(())
    }

    /// The rowids of the records noted as changed since the last plan.
    pub fn plan_noted(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record_rowid FROM plan_dirty ORDER BY record_rowid")
            .op("prepare reading the noted records")?;
        let rows = stmt
            .query_map([], |row| row.get(0))
            .op("read the noted records")?;
        rows.collect::<Result<_, _>>().op("read the noted records")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record};
    use journeyd_connector::{ObjectKind, OwnerId};

    /// Stores deal 1, owned by `owner`, at `hour` on day 1.
    fn store_deal(test: &mut TestStore, owner: &str, hour: u32) {
        let mut deal = record(ObjectKind::Deal, "1");
        deal.owner_id = Some(OwnerId::new(owner));
        test.store
            .upsert_records(&hubspot(), &[deal], day(1, hour))
            .unwrap();
    }

    /// A whole plan with nothing found: the connector gets its basis.
    fn plan_whole(test: &TestStore) {
        let scope = test.store.begin_plan(&hubspot(), "digest").unwrap();
        assert!(scope.whole);
        test.store.keep_plan(&hubspot(), &scope, true).unwrap();
    }

    #[test]
    fn before_the_first_plan_no_change_is_noted() {
        let mut test = TestStore::new();
        store_deal(&mut test, "101", 0);

        store_deal(&mut test, "102", 1);

        assert_eq!(test.store.plan_noted().unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn a_records_new_owner_is_noted_and_a_sync_that_changed_nothing_is_not() {
        let mut test = TestStore::new();
        store_deal(&mut test, "101", 0);
        plan_whole(&test);

        store_deal(&mut test, "101", 1);
        assert_eq!(test.store.plan_noted().unwrap(), Vec::<i64>::new());

        store_deal(&mut test, "102", 2);
        assert_eq!(test.store.plan_noted().unwrap().len(), 1);
    }

    #[test]
    fn a_plan_with_the_same_digest_and_owners_judges_only_what_was_noted() {
        let mut test = TestStore::new();
        store_deal(&mut test, "101", 0);
        plan_whole(&test);
        store_deal(&mut test, "102", 1);

        let scope = test.store.begin_plan(&hubspot(), "digest").unwrap();
        assert!(!scope.whole);
        test.store.keep_plan(&hubspot(), &scope, true).unwrap();

        assert_eq!(test.store.plan_noted().unwrap(), Vec::<i64>::new());
        assert!(test.store.begin_plan(&hubspot(), "another").unwrap().whole);
    }
}
