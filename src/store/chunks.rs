//! CRM records out, for the audit: streamed chunk by chunk in rowid order,
//! each with its merged stage history and its duplicate peers.
//!
//! Memory is bounded by the chunk size. Each chunk takes three statements
//! whatever its size: the records, their history, their peers. Peers come
//! from one statement whose per-record part is an index seek capped at
//! [`MAX_PEERS`] rows, so a key shared by thousands of records costs no more
//! per record than a key shared by two.

use super::columns::get_object;
use super::{SqlContext, Store, StoreError, json_error};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, CrmRecord, ObjectKind, OwnerId, RecordId, StageChange};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::num::NonZeroUsize;

/// At most this many duplicate peers are returned per record.
pub const MAX_PEERS: usize = 5;

/// A live record as the audit reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The keyset position: pass the last one as `after` for the next chunk.
    pub rowid: i64,
    pub connector: ConnectorName,
    /// The snapshot, with `stage_history` filled from the store (the CRM's
    /// and the observed changes, oldest first, without repeats).
    pub record: CrmRecord,
    /// Other live records of the connector sharing this one's email key
    /// (leads and contacts, across both kinds) or domain key (accounts);
    /// at most [`MAX_PEERS`], first stored first.
    pub duplicates: Vec<DuplicatePeer>,
}

/// A record as the store keeps it, live or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptRecord {
    pub stored: StoredRecord,
    /// When the CRM reported it deleted.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Another record sharing a duplicate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicatePeer {
    pub object: ObjectKind,
    pub id: RecordId,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The shared key: a normalized email address or web domain.
    pub key: String,
}

impl Store {
    /// Up to `limit` live records with rowid above `after` (from the start
    /// when `None`), in rowid order. An empty chunk means the end.
    pub fn records_chunk(
        &self,
        after: Option<i64>,
        limit: NonZeroUsize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        read_chunk(&self.conn, Scope::All, after, limit)
    }

    /// One record, live or deleted, with its stage history and duplicate
    /// peers as an audit reads them, and when the CRM deleted it.
    pub fn stored_record(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Option<KeptRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, connector, object, id, snapshot, deleted_at FROM records
                 WHERE connector = ?1 AND object = ?2 AND id = ?3",
            )
            .op("prepare reading a record")?;
        let mut rows = stmt
            .query(params![connector.as_str(), object.as_str(), id.as_str()])
            .op("read a record")?;
        let Some(row) = rows.next().op("read a record")? else {
            return Ok(None);
        };
        let deleted_at = super::columns::get_opt_ts(row, 5).op("read a record")?;
        let record = stored_record(row)?;
        drop(rows);
        let mut completed = complete(&self.conn, Scope::All, vec![record])?;
        Ok(completed
            .pop()
            .map(|stored| KeptRecord { stored, deleted_at }))
    }
}

/// Which connectors a chunk reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    All,
    /// Those in `temp.audit_scope`.
    Audit,
}

impl Scope {
    fn filter(self, alias: &str) -> String {
        match self {
            Scope::All => String::new(),
            Scope::Audit => {
                // `+` keeps the planner on the rowid range: without it, and
                // without statistics, it may walk a whole connector instead.
                format!("AND +{alias}.connector IN (SELECT connector FROM temp.audit_scope)")
            }
        }
    }
}

pub(super) fn read_chunk(
    conn: &Connection,
    scope: Scope,
    after: Option<i64>,
    limit: NonZeroUsize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let after = after.unwrap_or(i64::MIN);
    let limit = i64::try_from(limit.get()).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT r.rowid, r.connector, r.object, r.id, r.snapshot FROM records r
         WHERE r.rowid > ?1 AND r.deleted_at IS NULL {}
         ORDER BY r.rowid LIMIT ?2",
        scope.filter("r")
    );
    let mut stmt = conn.prepare_cached(&sql).op("prepare reading a chunk")?;
    let records = read_records(stmt.query(params![after, limit]).op("read a chunk")?)?;
    complete(conn, scope, records)
}

/// A JSON array of rowids, for `json_each`: one bound parameter however
/// many, and read in any order the statement likes.
fn json_list(rowids: &[i64]) -> String {
    serde_json::Value::from(rowids).to_string()
}

/// Fills the stage history, duplicate peers and own tasks of `records`.
pub(super) fn complete(
    conn: &Connection,
    scope: Scope,
    mut records: Vec<StoredRecord>,
) -> Result<Vec<StoredRecord>, StoreError> {
    if records.is_empty() {
        return Ok(records);
    }
    let rowids: Vec<i64> = records.iter().map(|r| r.rowid).collect();
    let listed = json_list(&rowids);
    let index: HashMap<i64, usize> = rowids.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    read_history(conn, scope, &listed, &index, &mut records)?;
    read_peers(conn, scope, &listed, &index, &mut records)?;
    mark_own_tasks(conn, &mut records)?;
    Ok(records)
}

/// Marks the tasks of `records` that the write-back ledger says journeyd
/// created, whatever their text now says: they are never evidence for a
/// rule. One query for the chunk.
fn mark_own_tasks(conn: &Connection, records: &mut [StoredRecord]) -> Result<(), StoreError> {
    let ids: Vec<&str> = records
        .iter()
        .flat_map(|r| r.record.tasks.iter())
        .filter(|task| !task.by_journeyd)
        .map(|task| task.id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT connector, crm_id FROM writeback_ledger
             WHERE crm_id IN (SELECT value FROM json_each(?1))
               AND json_extract(request, '$.kind') = 'create_task'",
        )
        .op("prepare finding journeyd's own tasks")?;
    let own: std::collections::HashSet<(String, String)> = stmt
        .query_map([serde_json::Value::from(ids).to_string()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .op("find journeyd's own tasks")?
        .collect::<Result<_, _>>()
        .op("find journeyd's own tasks")?;
    if own.is_empty() {
        return Ok(());
    }
    for stored in records.iter_mut() {
        let connector = stored.connector.as_str().to_owned();
        for task in &mut stored.record.tasks {
            if own.contains(&(connector.clone(), task.id.clone())) {
                task.by_journeyd = true;
            }
        }
    }
    Ok(())
}

fn read_records(mut rows: rusqlite::Rows<'_>) -> Result<Vec<StoredRecord>, StoreError> {
    let mut records = Vec::new();
    while let Some(row) = rows.next().op("read a chunk")? {
        records.push(stored_record(row)?);
    }
    Ok(records)
}

/// A record from a row whose first five columns are its rowid, connector,
/// object, id and snapshot.
pub(super) fn stored_record(row: &rusqlite::Row<'_>) -> Result<StoredRecord, StoreError> {
    let read = || -> rusqlite::Result<_> {
        Ok((
            row.get::<_, i64>(0)?,
            ConnectorName::new(row.get::<_, String>(1)?),
            get_object(row, 2)?,
            RecordId::new(row.get::<_, String>(3)?),
        ))
    };
    let (rowid, connector, object, id) = read().op("read a chunk")?;
    let snapshot = row
        .get_ref(4)
        .and_then(|v| Ok(v.as_str()?))
        .op("read a chunk")?;
    let record: CrmRecord = serde_json::from_str(snapshot).map_err(json_error(format!(
        "the snapshot of {object} {id} of connector {connector}"
    )))?;
    Ok(StoredRecord {
        rowid,
        connector,
        record,
        duplicates: Vec::new(),
    })
}

/// Fills each record's history: one statement for the chunk, in time order.
/// A change to the stage the record was already in (the same change seen by
/// the CRM and by a sync at slightly different times) is left out.
fn read_history(
    conn: &Connection,
    scope: Scope,
    rowids: &str,
    index: &HashMap<i64, usize>,
    records: &mut [StoredRecord],
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT r.rowid, h.stage, h.at, h.owner_id
         FROM records r
         CROSS JOIN stage_history h
           ON h.connector = r.connector AND h.object = r.object AND h.record_id = r.id
         WHERE r.rowid IN (SELECT value FROM json_each(?1)) AND r.deleted_at IS NULL {}
         ORDER BY r.rowid, h.at, h.stage",
        scope.filter("r")
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .op("prepare reading stage history")?;
    let mut rows = stmt.query([rowids]).op("read stage history")?;
    while let Some(row) = rows.next().op("read stage history")? {
        let read = || -> rusqlite::Result<_> {
            Ok((
                row.get::<_, i64>(0)?,
                StageChange {
                    stage: row.get(1)?,
                    at: super::columns::get_ts(row, 2)?,
                    owner_id: row.get::<_, Option<String>>(3)?.map(OwnerId::new),
                },
            ))
        };
        let (rowid, change) = read().op("read stage history")?;
        let Some(&i) = index.get(&rowid) else {
            continue;
        };
        let history = &mut records[i].record.stage_history;
        if history
            .last()
            .is_none_or(|previous| previous.stage != change.stage)
        {
            history.push(change);
        }
    }
    Ok(())
}

/// Fills each record's duplicate peers: one statement for the chunk.
fn read_peers(
    conn: &Connection,
    scope: Scope,
    rowids: &str,
    index: &HashMap<i64, usize>,
    records: &mut [StoredRecord],
) -> Result<(), StoreError> {
    // For each key column, each chunk record walks the partial index of its
    // key in rowid order and stops after MAX_PEERS others. CROSS JOIN and
    // `+` pin the plan: chunk records by rowid range outside, peers inside.
    let peers_by = |key: &str| {
        format!(
            "SELECT r.rowid, p.object, p.id, p.snapshot ->> '$.name',
                    p.snapshot ->> '$.created_at', r.{key}, p.rowid
             FROM records r
             CROSS JOIN records p ON p.rowid IN (
                 SELECT q.rowid FROM records q
                 WHERE q.connector = r.connector AND q.{key} = r.{key}
                   AND q.deleted_at IS NULL AND q.rowid <> r.rowid
                 ORDER BY q.rowid LIMIT {MAX_PEERS})
             WHERE r.rowid IN (SELECT value FROM json_each(?1)) AND r.deleted_at IS NULL
               AND +r.{key} IS NOT NULL {}",
            scope.filter("r")
        )
    };
    let sql = format!(
        "{} UNION ALL {} ORDER BY 1, 7",
        peers_by("email_key"),
        peers_by("domain_key")
    );
    let mut stmt = conn.prepare_cached(&sql).op("prepare reading duplicates")?;
    let mut rows = stmt.query([rowids]).op("read duplicates")?;
    while let Some(row) = rows.next().op("read duplicates")? {
        let read = || -> rusqlite::Result<_> {
            Ok((
                row.get::<_, i64>(0)?,
                DuplicatePeer {
                    object: get_object(row, 1)?,
                    id: RecordId::new(row.get::<_, String>(2)?),
                    name: row.get(3)?,
                    created_at: super::columns::get_ts(row, 4)?,
                    key: row.get(5)?,
                },
            ))
        };
        let (rowid, peer) = read().op("read duplicates")?;
        if let Some(&i) = index.get(&rowid) {
            records[i].duplicates.push(peer);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record};
    use super::*;
    use std::collections::HashSet;

    fn n(limit: usize) -> NonZeroUsize {
        NonZeroUsize::new(limit).unwrap()
    }

    fn all_ids(store: &Store, limit: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let chunk = store.records_chunk(after, n(limit)).unwrap();
            assert!(chunk.len() <= limit);
            let Some(last) = chunk.last() else { break };
            after = Some(last.rowid);
            ids.extend(chunk.into_iter().map(|r| r.record.id.to_string()));
        }
        ids
    }

    #[test]
    fn tasks_the_ledger_says_journeyd_created_come_marked_as_its_own() {
        use journeyd_connector::{ActionKey, ActionRequest, TaskRef, TaskStatus};
        let mut test = TestStore::new();
        let store = &mut test.store;
        let task = |id: &str| TaskRef {
            id: id.into(),
            subject: "Onboarding kickoff".into(),
            status: TaskStatus::Open,
            owner_id: None,
            due: None,
            by_journeyd: false,
        };
        let mut deal = record(ObjectKind::Deal, "1");
        deal.tasks = vec![task("t-own"), task("t-theirs")];
        store
            .upsert_records(&hubspot(), &[deal], day(1, 0))
            .unwrap();
        let create = ActionRequest::CreateTask {
            key: ActionKey::new("jdr1"),
            object: ObjectKind::Deal,
            record_id: RecordId::new("1"),
            owner_id: None,
            subject: "s".into(),
            body: "b".into(),
            due: day(1, 0).date_naive(),
            priority: journeyd_connector::Priority::Normal,
        };
        let fingerprint = crate::rules::Fingerprint::from_stored("ab".repeat(16));
        store
            .ledger_insert_pending(&create, &fingerprint, &hubspot(), day(1, 0))
            .unwrap();
        store
            .ledger_mark(
                create.key(),
                super::super::LedgerState::Applied,
                Some("t-own"),
                None,
                day(1, 1),
            )
            .unwrap();

        let chunk = store
            .records_chunk(None, NonZeroUsize::new(10).unwrap())
            .unwrap();

        let own: Vec<(&str, bool)> = chunk[0]
            .record
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.by_journeyd))
            .collect();
        assert_eq!(own, [("t-own", true), ("t-theirs", false)]);
    }

    #[test]
    fn chunks_stream_every_live_record_exactly_once_within_the_limit() {
        let mut test = TestStore::new();
        let records: Vec<CrmRecord> = (0..25)
            .map(|i| record(ObjectKind::Deal, &format!("d{i}")))
            .collect();
        test.store
            .upsert_records(&hubspot(), &records, day(1, 0))
            .unwrap();
        let gone = [RecordId::new("d3"), RecordId::new("d17")];
        test.store
            .mark_deleted(&hubspot(), ObjectKind::Deal, &gone, day(2, 0))
            .unwrap();

        let ids = all_ids(&test.store, 4);
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), 23);
        assert_eq!(unique.len(), 23);
        assert!(!ids.contains(&"d3".to_owned()) && !ids.contains(&"d17".to_owned()));
    }

    #[test]
    fn a_chunk_returns_the_snapshot_with_merged_history_oldest_first() {
        let mut test = TestStore::new();
        let mut deal = record(ObjectKind::Deal, "1");
        deal.stage = Some("b".into());
        deal.stage_history = vec![
            StageChange {
                stage: "a".into(),
                at: day(1, 0),
                owner_id: None,
            },
            StageChange {
                stage: "b".into(),
                at: day(2, 0),
                owner_id: Some(OwnerId::new("u1")),
            },
        ];
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&deal), day(2, 0))
            .unwrap();
        let mut later = deal.clone();
        later.stage = Some("c".into());
        later.stage_history = Vec::new();
        later.modified_at = day(4, 0);
        test.store
            .upsert_records(&hubspot(), std::slice::from_ref(&later), day(4, 0))
            .unwrap();

        let chunk = test.store.records_chunk(None, n(10)).unwrap();
        let stages: Vec<(&str, DateTime<Utc>)> = chunk[0]
            .record
            .stage_history
            .iter()
            .map(|c| (c.stage.as_str(), c.at))
            .collect();
        assert_eq!(
            stages,
            vec![("a", day(1, 0)), ("b", day(2, 0)), ("c", day(4, 0))]
        );
        assert_eq!(
            chunk[0].record.stage_history[1].owner_id,
            Some(OwnerId::new("u1"))
        );
        let mut expected = later;
        expected.stage_history = chunk[0].record.stage_history.clone();
        assert_eq!(chunk[0].record, expected);
    }

    #[test]
    fn duplicates_match_by_email_across_leads_and_contacts() {
        let mut test = TestStore::new();
        let mut lead = record(ObjectKind::Lead, "L1");
        lead.email = Some(" Ann@Example.com".into());
        let mut contact = record(ObjectKind::Contact, "C1");
        contact.email = Some("ann@example.COM".into());
        let mut other = record(ObjectKind::Contact, "C2");
        other.email = Some("bob@example.com".into());
        let mut elsewhere = record(ObjectKind::Contact, "C9");
        elsewhere.email = Some("ann@example.com".into());
        test.store
            .upsert_records(&hubspot(), &[lead, contact, other], day(1, 0))
            .unwrap();
        test.store
            .upsert_records(&ConnectorName::new("eu"), &[elsewhere], day(1, 0))
            .unwrap();

        let chunk = test.store.records_chunk(None, n(10)).unwrap();
        let peers = |id: &str| -> Vec<(ObjectKind, String, String)> {
            chunk
                .iter()
                .find(|r| r.record.id.as_str() == id)
                .unwrap()
                .duplicates
                .iter()
                .map(|p| (p.object, p.id.to_string(), p.key.clone()))
                .collect()
        };
        let key = "ann@example.com".to_owned();
        assert_eq!(
            peers("L1"),
            vec![(ObjectKind::Contact, "C1".into(), key.clone())]
        );
        assert_eq!(peers("C1"), vec![(ObjectKind::Lead, "L1".into(), key)]);
        assert!(peers("C2").is_empty());
        assert!(peers("C9").is_empty(), "other connectors never match");
        let peer = &chunk[0].duplicates[0];
        assert_eq!(
            (peer.name.as_deref(), peer.created_at),
            (Some("contact C1"), day(1, 0))
        );
    }

    #[test]
    fn duplicates_match_accounts_by_domain_and_ignore_deleted_peers() {
        let mut test = TestStore::new();
        let account = |id: &str, domain: &str| {
            let mut a = record(ObjectKind::Account, id);
            a.domain = Some(domain.into());
            a
        };
        let accounts = [
            account("A1", "https://www.acme.com/about"),
            account("A2", "ACME.com"),
            account("A3", "acme.com:443"),
            account("B1", "beta.io"),
        ];
        test.store
            .upsert_records(&hubspot(), &accounts, day(1, 0))
            .unwrap();
        test.store
            .mark_deleted(
                &hubspot(),
                ObjectKind::Account,
                &[RecordId::new("A3")],
                day(2, 0),
            )
            .unwrap();

        let chunk = test.store.records_chunk(None, n(10)).unwrap();
        let a1 = &chunk[0];
        assert_eq!(a1.record.id.as_str(), "A1");
        let peers: Vec<&str> = a1.duplicates.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(peers, vec!["A2"]);
        assert_eq!(a1.duplicates[0].key, "acme.com");
        assert!(
            chunk
                .iter()
                .find(|r| r.record.id.as_str() == "B1")
                .unwrap()
                .duplicates
                .is_empty()
        );
    }

    #[test]
    fn duplicate_peers_are_capped_per_record() {
        let mut test = TestStore::new();
        let leads: Vec<CrmRecord> = (0..12)
            .map(|i| {
                let mut lead = record(ObjectKind::Lead, &format!("L{i:02}"));
                lead.email = Some("info@example.com".into());
                lead
            })
            .collect();
        test.store
            .upsert_records(&hubspot(), &leads, day(1, 0))
            .unwrap();
        let chunk = test.store.records_chunk(None, n(3)).unwrap();
        assert_eq!(chunk.len(), 3);
        for stored in &chunk {
            assert_eq!(stored.duplicates.len(), MAX_PEERS);
            assert!(stored.duplicates.iter().all(|p| p.id != stored.record.id));
        }
        let first: Vec<&str> = chunk[0].duplicates.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            first,
            vec!["L01", "L02", "L03", "L04", "L05"],
            "first stored first"
        );
    }

    #[test]
    fn peers_are_found_by_an_index_seek_not_a_scan() {
        let test = TestStore::new();
        let sql = "SELECT q.rowid FROM records q
                   WHERE q.connector = ?1 AND q.email_key = ?2
                     AND q.deleted_at IS NULL AND q.rowid <> ?3
                   ORDER BY q.rowid LIMIT 5";
        let plan = test.plan(sql, params!["c", "k", 1]).join("\n");
        assert!(plan.contains("USING INDEX records_email"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
