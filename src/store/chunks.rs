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
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        read_chunk(&self.conn, Scope::All, after, limit)
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
                format!("AND {alias}.connector IN (SELECT connector FROM temp.audit_scope)")
            }
        }
    }
}

pub(super) fn read_chunk(
    conn: &Connection,
    scope: Scope,
    after: Option<i64>,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let after = after.unwrap_or(i64::MIN);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut records = read_records(conn, scope, after, limit)?;
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(records);
    };
    let range = (first.rowid, last.rowid);
    let index: HashMap<i64, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.rowid, i))
        .collect();
    read_history(conn, scope, range, &index, &mut records)?;
    read_peers(conn, scope, range, &index, &mut records)?;
    Ok(records)
}

fn read_records(
    conn: &Connection,
    scope: Scope,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredRecord>, StoreError> {
    let sql = format!(
        "SELECT r.rowid, r.connector, r.object, r.id, r.snapshot FROM records r
         WHERE r.rowid > ?1 AND r.deleted_at IS NULL {}
         ORDER BY r.rowid LIMIT ?2",
        scope.filter("r")
    );
    let mut stmt = conn.prepare_cached(&sql).op("prepare reading a chunk")?;
    let mut rows = stmt.query(params![after, limit]).op("read a chunk")?;
    let mut records = Vec::new();
    while let Some(row) = rows.next().op("read a chunk")? {
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
        records.push(StoredRecord {
            rowid,
            connector,
            record,
            duplicates: Vec::new(),
        });
    }
    Ok(records)
}

/// Fills each record's history: one statement for the chunk, in time order.
/// A change to the stage the record was already in (the same change seen by
/// the CRM and by a sync at slightly different times) is left out.
fn read_history(
    conn: &Connection,
    scope: Scope,
    (first, last): (i64, i64),
    index: &HashMap<i64, usize>,
    records: &mut [StoredRecord],
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT r.rowid, h.stage, h.at, h.owner_id
         FROM records r
         JOIN stage_history h
           ON h.connector = r.connector AND h.object = r.object AND h.record_id = r.id
         WHERE r.rowid BETWEEN ?1 AND ?2 AND r.deleted_at IS NULL {}
         ORDER BY r.rowid, h.at, h.stage",
        scope.filter("r")
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .op("prepare reading stage history")?;
    let mut rows = stmt.query(params![first, last]).op("read stage history")?;
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
    (first, last): (i64, i64),
    index: &HashMap<i64, usize>,
    records: &mut [StoredRecord],
) -> Result<(), StoreError> {
    // For each key column, each chunk record walks the partial index of its
    // key in rowid order and stops after MAX_PEERS others.
    let peers_by = |key: &str| {
        format!(
            "SELECT r.rowid, p.object, p.id, p.snapshot ->> '$.name',
                    p.snapshot ->> '$.created_at', r.{key}, p.rowid
             FROM records r
             JOIN records p ON p.rowid IN (
                 SELECT q.rowid FROM records q
                 WHERE q.connector = r.connector AND q.{key} = r.{key}
                   AND q.deleted_at IS NULL AND q.rowid <> r.rowid
                 ORDER BY q.rowid LIMIT {MAX_PEERS})
             WHERE r.rowid BETWEEN ?1 AND ?2 AND r.deleted_at IS NULL
               AND r.{key} IS NOT NULL {}",
            scope.filter("r")
        )
    };
    let sql = format!(
        "{} UNION ALL {} ORDER BY 1, 7",
        peers_by("email_key"),
        peers_by("domain_key")
    );
    let mut stmt = conn.prepare_cached(&sql).op("prepare reading duplicates")?;
    let mut rows = stmt.query(params![first, last]).op("read duplicates")?;
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
