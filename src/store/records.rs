//! CRM records in: snapshots, stage history (the CRM's and the changes
//! journeyd observed between syncs), and soft deletion.
//!
//! Upserting is the sync's hot path: one transaction per call, cached
//! statements, one indexed lookup and one write per record.

use super::columns::ts;
use super::watermarks;
use super::{SqlContext, Store, StoreError, json_error};
use crate::journey::normalize::{domain_key, email_key};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, CrmRecord, ObjectKind, RecordId, Watermark};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// One page of a pull, as [`Store::store_changes`] writes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageWrite<'a> {
    pub records: &'a [CrmRecord],
    /// Records the CRM reported deleted.
    pub removed: &'a [RecordId],
    pub watermark: Option<&'a Watermark>,
    /// The cursor of the next page; `None` when the pull is complete.
    pub cursor: Option<&'a str>,
    /// The delta link the next incremental pull starts from.
    pub delta: Option<&'a str>,
}

/// What an upsert did, record by record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertCounts {
    /// Records the store had never seen.
    pub inserted: u64,
    /// Records whose snapshot or history changed, or that came back after
    /// being deleted.
    pub updated: u64,
    /// Records identical to what the store held (only `last_seen` moved).
    pub unchanged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, other: UpsertCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

impl UpsertCounts {
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.unchanged
    }
}

/// Where a stage change came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The CRM's own stage history.
    Crm,
    /// The native stage differed from the stored one at a sync.
    Observed,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Crm => "crm",
            Source::Observed => "observed",
        }
    }
}

impl Store {
    /// Stores `records` of `connector` in one transaction. A record's
    /// snapshot is replaced; its CRM stage history is merged into what the
    /// store holds; when its native stage differs from the stored one, the
    /// change is recorded as observed at `stage_entered_at` (or
    /// `modified_at`). A deleted record that comes back is undeleted.
    pub fn upsert_records(
        &mut self,
        connector: &ConnectorName,
        records: &[CrmRecord],
        seen_at: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let tx = self.conn.transaction().op("begin a record upsert")?;
        let counts = upsert(&tx, connector, records, seen_at)?;
        tx.commit().op("commit a record upsert")?;
        Ok(counts)
    }

    /// Stores one page of a pull, and the watermark of `object` with the
    /// cursor of the next page, in the same transaction: the watermark never
    /// runs ahead of the data it covers, and a pull stopped after this page
    /// resumes at the next one. With no watermark yet (nothing read so far),
    /// only an existing watermark row's cursor can move: there is nothing
    /// to resume past.
    pub fn store_page(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        records: &[CrmRecord],
        watermark: Option<&Watermark>,
        cursor: Option<&str>,
        seen_at: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let page = PageWrite {
            records,
            watermark,
            cursor,
            ..PageWrite::default()
        };
        Ok(self.store_changes(connector, object, &page, seen_at)?.0)
    }

    /// As [`Store::store_page`], for a page of a change feed: the records
    /// it reports deleted are marked so, and the delta link the next pull
    /// starts from is kept, in the same transaction as the page. Returns
    /// the upsert counts and how many live records were marked deleted.
    pub fn store_changes(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        page: &PageWrite<'_>,
        seen_at: DateTime<Utc>,
    ) -> Result<(UpsertCounts, usize), StoreError> {
        let tx = self.conn.transaction().op("begin a page")?;
        let counts = upsert(&tx, connector, page.records, seen_at)?;
        let deleted = mark(&tx, connector, object, page.removed, seen_at)?;
        match page.watermark {
            Some(watermark) => {
                watermarks::set(&tx, connector, object, watermark, page.cursor, seen_at)?
            }
            None => watermarks::set_cursor(&tx, connector, object, page.cursor, seen_at)?,
        }
        if let Some(link) = page.delta {
            watermarks::set_delta_link(&tx, connector, object, link, seen_at)?;
        }
        tx.commit().op("commit a page")?;
        Ok((counts, deleted))
    }

    /// Marks records the CRM reports gone as deleted at `at`. Returns how
    /// many were live until now; unknown and already deleted ids are skipped.
    pub fn mark_deleted(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        ids: &[RecordId],
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction()
            .op("begin marking records deleted")?;
        let deleted = mark(&tx, connector, object, ids, at)?;
        tx.commit().op("commit marking records deleted")?;
        Ok(deleted)
    }

    /// Every connector the store holds records of, deleted ones included (an
    /// audit of such a connector resolves its violations).
    pub fn connectors_with_records(&self) -> Result<Vec<ConnectorName>, StoreError> {
        // A skip scan over the (connector, object, id) index: one seek per
        // connector instead of a pass over every record.
        let mut stmt = self
            .conn
            .prepare_cached(
                "WITH RECURSIVE c(name) AS (
                     SELECT min(connector) FROM records
                     UNION ALL
                     SELECT (SELECT min(connector) FROM records WHERE connector > c.name)
                     FROM c WHERE c.name IS NOT NULL
                 )
                 SELECT name FROM c WHERE name IS NOT NULL",
            )
            .op("prepare listing connectors")?;
        let names = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .op("list connectors")?
            .map(|name| name.map(ConnectorName::new))
            .collect::<Result<_, _>>()
            .op("list connectors")?;
        Ok(names)
    }

    /// How many records are live (not deleted).
    pub fn record_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM records WHERE deleted_at IS NULL",
                [],
                |row| row.get(0),
            )
            .op("count records")
    }
}

/// Marks `ids` deleted at `at`, inside the caller's transaction; returns how
/// many were live.
fn mark(
    conn: &Connection,
    connector: &ConnectorName,
    object: ObjectKind,
    ids: &[RecordId],
    at: DateTime<Utc>,
) -> Result<usize, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut stmt = conn
        .prepare_cached(
            "UPDATE records SET deleted_at = ?4
             WHERE connector = ?1 AND object = ?2 AND id = ?3 AND deleted_at IS NULL",
        )
        .op("prepare marking records deleted")?;
    let at = ts(at);
    let mut deleted = 0;
    for id in ids {
        deleted += stmt
            .execute(params![
                connector.as_str(),
                object.as_str(),
                id.as_str(),
                at
            ])
            .op("mark a record deleted")?;
    }
    Ok(deleted)
}

/// The upsert itself, inside the caller's transaction.
fn upsert(
    conn: &Connection,
    connector: &ConnectorName,
    records: &[CrmRecord],
    seen_at: DateTime<Utc>,
) -> Result<UpsertCounts, StoreError> {
    let seen = ts(seen_at);
    let mut counts = UpsertCounts::default();
    for record in records {
        let outcome = upsert_one(conn, connector, record, &seen)
            .map_err(|err| StoreError::record(connector, record.object, &record.id, err))?;
        match outcome {
            Outcome::Inserted => counts.inserted += 1,
            Outcome::Updated => counts.updated += 1,
            Outcome::Unchanged => counts.unchanged += 1,
        }
    }
    Ok(counts)
}

enum Outcome {
    Inserted,
    Updated,
    Unchanged,
}

struct Existing {
    rowid: i64,
    stage: Option<String>,
    same_snapshot: bool,
    deleted: bool,
}

fn upsert_one(
    conn: &Connection,
    connector: &ConnectorName,
    record: &CrmRecord,
    seen: &str,
) -> Result<Outcome, StoreError> {
    let snapshot = snapshot_json(record)?;
    let object = record.object.as_str();
    let existing = conn
        .prepare_cached(
            "SELECT rowid, stage, snapshot, deleted_at IS NOT NULL FROM records
             WHERE connector = ?1 AND object = ?2 AND id = ?3",
        )
        .op("prepare reading a record")?
        .query_row(
            params![connector.as_str(), object, record.id.as_str()],
            |row| {
                Ok(Existing {
                    rowid: row.get(0)?,
                    stage: row.get(1)?,
                    same_snapshot: row.get_ref(2)?.as_str()? == snapshot,
                    deleted: row.get(3)?,
                })
            },
        )
        .optional()
        .op("read a record")?;

    let (email, domain) = match record.object {
        ObjectKind::Lead | ObjectKind::Contact => {
            (record.email.as_deref().and_then(email_key), None)
        }
        ObjectKind::Account => (None, record.domain.as_deref().and_then(domain_key)),
        ObjectKind::Deal => (None, None),
    };
    let modified = ts(record.modified_at);
    let owner = record.owner_id.as_ref().map(|id| id.as_str());

    let outcome = match &existing {
        None => {
            conn.prepare_cached(
                "INSERT INTO records (connector, object, id, stage, modified_at, owner_id,
                                      email_key, domain_key, snapshot, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            )
            .op("prepare inserting a record")?
            .execute(params![
                connector.as_str(),
                object,
                record.id.as_str(),
                record.stage,
                modified,
                owner,
                email,
                domain,
                snapshot,
                seen,
            ])
            .op("insert a record")?;
            Outcome::Inserted
        }
        Some(old) if !old.same_snapshot || old.deleted => {
            conn.prepare_cached(
                "UPDATE records SET stage = ?2, modified_at = ?3, owner_id = ?4, email_key = ?5,
                                    domain_key = ?6, snapshot = ?7, last_seen = ?8,
                                    deleted_at = NULL
                 WHERE rowid = ?1",
            )
            .op("prepare updating a record")?
            .execute(params![
                old.rowid,
                record.stage,
                modified,
                owner,
                email,
                domain,
                snapshot,
                seen
            ])
            .op("update a record")?;
            Outcome::Updated
        }
        Some(old) => {
            conn.prepare_cached("UPDATE records SET last_seen = ?2 WHERE rowid = ?1")
                .op("prepare touching a record")?
                .execute(params![old.rowid, seen])
                .op("touch a record")?;
            Outcome::Unchanged
        }
    };

    let mut new_history = 0;
    for change in &record.stage_history {
        new_history += insert_history(
            conn,
            connector,
            record,
            &change.stage,
            &ts(change.at),
            change.owner_id.as_ref().map(|id| id.as_str()),
            Source::Crm,
        )?;
    }
    if let (Some(old), Some(stage)) = (
        existing.as_ref().and_then(|e| e.stage.as_deref()),
        &record.stage,
    ) {
        let reported = record
            .stage_history
            .last()
            .is_some_and(|change| &change.stage == stage);
        if old != stage && !reported {
            let at = record.stage_entered_at.unwrap_or(record.modified_at);
            new_history += insert_history(
                conn,
                connector,
                record,
                stage,
                &ts(at),
                owner,
                Source::Observed,
            )?;
        }
    }

    Ok(match outcome {
        Outcome::Unchanged if new_history > 0 => Outcome::Updated,
        outcome => outcome,
    })
}

/// Adds one stage change unless the store has it (same stage at the same
/// time, whatever its source). Returns how many rows were added.
fn insert_history(
    conn: &Connection,
    connector: &ConnectorName,
    record: &CrmRecord,
    stage: &str,
    at: &str,
    owner: Option<&str>,
    source: Source,
) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "INSERT INTO stage_history (connector, object, record_id, stage, at, owner_id, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO NOTHING",
    )
    .op("prepare inserting stage history")?
    .execute(params![
        connector.as_str(),
        record.object.as_str(),
        record.id.as_str(),
        stage,
        at,
        owner,
        source.as_str()
    ])
    .op("insert stage history")
}

/// The record as JSON without its stage history, which lives in its own
/// table. The record is only copied when it has history to leave out.
fn snapshot_json(record: &CrmRecord) -> Result<String, StoreError> {
    let json = if record.stage_history.is_empty() {
        serde_json::to_string(record)
    } else {
        let mut bare = record.clone();
        bare.stage_history = Vec::new();
        serde_json::to_string(&bare)
    };
    json.map_err(json_error("a record snapshot"))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record};
    use super::*;
    use journeyd_connector::StageChange;

    fn history(test: &TestStore, id: &str) -> Vec<(String, String, String)> {
        test.store
            .conn
            .prepare("SELECT stage, at, source FROM stage_history WHERE record_id = ?1 ORDER BY at")
            .unwrap()
            .query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn upsert_counts_inserted_updated_and_unchanged_records() {
        let mut test = TestStore::new();
        let a = record(ObjectKind::Deal, "a");
        let b = record(ObjectKind::Deal, "b");
        let counts = test
            .store
            .upsert_records(&hubspot(), &[a.clone(), b.clone()], day(1, 0))
            .unwrap();
        assert_eq!(
            (counts.inserted, counts.updated, counts.unchanged),
            (2, 0, 0)
        );

        let mut b2 = b.clone();
        b2.amount = Some(10.0);
        let c = record(ObjectKind::Deal, "c");
        let counts = test
            .store
            .upsert_records(&hubspot(), &[a, b2, c], day(2, 0))
            .unwrap();
        assert_eq!(
            (counts.inserted, counts.updated, counts.unchanged),
            (1, 1, 1)
        );
        assert_eq!(test.store.record_count().unwrap(), 3);
    }

    #[test]
    fn the_same_id_under_two_connectors_or_kinds_is_two_records() {
        let mut test = TestStore::new();
        let deal = record(ObjectKind::Deal, "1");
        let contact = record(ObjectKind::Contact, "1");
        test.store
            .upsert_records(&hubspot(), &[deal.clone(), contact], day(1, 0))
            .unwrap();
        test.store
            .upsert_records(&ConnectorName::new("eu"), &[deal], day(1, 0))
            .unwrap();
        assert_eq!(test.store.record_count().unwrap(), 3);
        assert_eq!(
            test.store.connectors_with_records().unwrap(),
            vec![ConnectorName::new("eu"), hubspot()]
        );
    }

    #[test]
    fn a_changed_native_stage_is_recorded_as_observed_history() {
        let mut test = TestStore::new();
        let mut deal = record(ObjectKind::Deal, "1");
        deal.stage = Some("qualified".into());
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(1, 0))
            .unwrap();
        assert!(
            history(&test, "1").is_empty(),
            "a first sighting is not a change"
        );

        deal.stage = Some("contract".into());
        deal.modified_at = day(3, 9);
        let counts = test
            .store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(4, 0))
            .unwrap();
        assert_eq!(counts.updated, 1);
        assert_eq!(
            history(&test, "1"),
            vec![(
                "contract".into(),
                "2024-05-03T09:00:00.000000000Z".into(),
                "observed".into()
            )]
        );

        deal.stage = Some("closed".into());
        deal.stage_entered_at = Some(day(5, 1));
        deal.modified_at = day(5, 2);
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(6, 0))
            .unwrap();
        assert_eq!(
            history(&test, "1")[1].1,
            "2024-05-05T01:00:00.000000000Z",
            "stage_entered_at wins"
        );
    }

    #[test]
    fn crm_history_is_stored_once_and_a_change_it_reports_is_not_observed_again() {
        let mut test = TestStore::new();
        let mut deal = record(ObjectKind::Deal, "1");
        deal.stage = Some("qualified".into());
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(1, 0))
            .unwrap();
        deal.stage = Some("contract".into());
        deal.modified_at = day(3, 0);
        deal.stage_history = vec![
            StageChange {
                stage: "qualified".into(),
                at: day(1, 0),
                owner_id: None,
            },
            StageChange {
                stage: "contract".into(),
                at: day(2, 0),
                owner_id: None,
            },
        ];
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(3, 0))
            .unwrap();
        let counts = test
            .store
            .upsert_records(&hubspot(), &[deal], day(4, 0))
            .unwrap();
        assert_eq!(counts.unchanged, 1);
        let sources: Vec<String> = history(&test, "1").into_iter().map(|h| h.2).collect();
        assert_eq!(sources, vec!["crm", "crm"]);
    }

    #[test]
    fn a_deleted_record_is_kept_and_undeleted_when_it_comes_back() {
        let mut test = TestStore::new();
        let deal = record(ObjectKind::Deal, "1");
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(1, 0))
            .unwrap();
        let ids = [RecordId::new("1"), RecordId::new("unknown")];
        assert_eq!(
            test.store
                .mark_deleted(&hubspot(), ObjectKind::Deal, &ids, day(2, 0))
                .unwrap(),
            1
        );
        assert_eq!(
            test.store
                .mark_deleted(&hubspot(), ObjectKind::Deal, &ids, day(2, 0))
                .unwrap(),
            0
        );
        assert_eq!(test.store.record_count().unwrap(), 0);

        let counts = test
            .store
            .upsert_records(&hubspot(), &[deal], day(3, 0))
            .unwrap();
        assert_eq!(counts.updated, 1);
        assert_eq!(test.store.record_count().unwrap(), 1);
    }

    #[test]
    fn store_page_moves_the_watermark_with_the_records() {
        let mut test = TestStore::new();
        let watermark = Watermark {
            modified_at: day(1, 0),
            id: RecordId::new("1"),
        };
        test.store
            .store_page(
                &hubspot(),
                ObjectKind::Deal,
                &[record(ObjectKind::Deal, "1")],
                Some(&watermark),
                Some("page-2"),
                day(2, 0),
            )
            .unwrap();
        let stored = test
            .store
            .watermark(&hubspot(), ObjectKind::Deal)
            .unwrap()
            .unwrap();
        assert_eq!(stored.watermark, watermark);
        assert_eq!(stored.cursor.as_deref(), Some("page-2"));
        assert_eq!(
            test.store.watermark(&hubspot(), ObjectKind::Lead).unwrap(),
            None
        );

        let later = Watermark {
            modified_at: day(3, 0),
            id: RecordId::new("9"),
        };
        test.store
            .set_watermark(&hubspot(), ObjectKind::Deal, &later, None, day(3, 0))
            .unwrap();
        let stored = test
            .store
            .watermark(&hubspot(), ObjectKind::Deal)
            .unwrap()
            .unwrap();
        assert_eq!((stored.watermark, stored.cursor), (later, None));
    }
}
