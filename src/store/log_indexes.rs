//! The violations log's lookup indexes, which a first audit builds at its
//! end rather than row by row. Filling an empty log with millions of
//! violations, keeping these indexes as it goes costs more than a third of
//! the audit (the fingerprint's is a random key: every insert lands on
//! another page); building them from the finished log is a sort.
//!
//! The audit that finds the log empty sets them aside: their definitions
//! go to `deferred_indexes` (migration 10), in the transaction that drops
//! them. [`restore`] builds every set-aside index again and is run when
//! that audit finishes, and when any later audit begins, so that one that
//! stopped or crashed midway leaves them missing only until the next audit.
//! Meanwhile lookups by fingerprint, status, owner or rule read the whole
//! log: right, only slower.

use super::{SqlContext, StoreError};
use rusqlite::Connection;

/// The indexes set aside: none is read while the log fills. The audit
/// reads a record's violations through `violation_rows_record_rowid`,
/// which it keeps, as records come in rowid order.
const DEFERRED: &[&str] = &[
    "violation_rows_fingerprint",
    "violations_status",
    "violations_owner",
    "violation_rows_connector",
    "violation_rows_rule",
    "violation_events_violation",
    "violation_rows_severity",
    "violation_rows_rule_severity",
];

/// The page cache while the indexes are built, which is also each sort
/// thread's buffer.
const SORT_CACHE_KIB: i64 = 8 * 1024;

/// Sets the lookup indexes aside if the log is empty; returns whether it
/// did. In one transaction of its own.
pub(super) fn set_aside_if_empty(conn: &Connection) -> Result<bool, StoreError> {
    let tx = conn
        .unchecked_transaction()
        .op("begin setting the log's indexes aside")?;
    let empty: bool = tx
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM violation_rows)",
            [],
            |row| row.get(0),
        )
        .op("look for an empty violations log")?;
    if !empty {
        return Ok(false);
    }
    let names = serde_json::Value::from(DEFERRED.to_vec()).to_string();
    tx.execute(
        "INSERT OR REPLACE INTO deferred_indexes (name, sql)
         SELECT name, sql FROM sqlite_master
         WHERE type = 'index' AND name IN (SELECT value FROM json_each(?1))",
        [&names],
    )
    .op("keep the log's index definitions")?;
    for name in DEFERRED {
        tx.execute(&format!("DROP INDEX IF EXISTS {name}"), [])
            .op("set a log index aside")?;
    }
    tx.commit().op("set the log's indexes aside")?;
    Ok(true)
}

/// Builds every index set aside, in the caller's transaction if there is
/// one; nothing when none is. The sort uses a helper thread per core, each
/// with a buffer of the page cache's size: the cache is made smaller for
/// the build, so that memory stays what the audit takes.
pub(super) fn restore(conn: &Connection) -> Result<(), StoreError> {
    let pending: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare_cached("SELECT name, sql FROM deferred_indexes ORDER BY name")
            .op("prepare reading the log's indexes set aside")?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .op("read the log's indexes set aside")?;
        rows.collect::<Result<_, _>>()
            .op("read the log's indexes set aside")?
    };
    if pending.is_empty() {
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    conn.pragma_update(None, "threads", threads as i64)
        .op("let the index build sort in parallel")?;
    conn.pragma_update(None, "cache_size", -SORT_CACHE_KIB)
        .op("size the index build's sort buffers")?;
    for (name, sql) in &pending {
        let exists: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
                [name],
                |row| row.get(0),
            )
            .op("look for a log index")?;
        if !exists {
            conn.execute(sql, []).op("build a log index")?;
        }
        conn.execute("DELETE FROM deferred_indexes WHERE name = ?1", [name])
            .op("note a log index built")?;
    }
    conn.pragma_update(None, "threads", 0)
        .op("end the index build's parallel sort")?;
    conn.pragma_update(None, "cache_size", -super::CACHE_KIB)
        .op("size the page cache again")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::super::{RunKind, Store};
    use super::DEFERRED;
    use crate::rules::BuiltinRule;
    use journeyd_connector::ObjectKind;

    /// The log's lookup indexes present now, with their definitions.
    fn indexes(store: &Store) -> Vec<(String, String)> {
        let names = serde_json::Value::from(DEFERRED.to_vec()).to_string();
        let mut stmt = store
            .conn
            .prepare(
                "SELECT name, sql FROM sqlite_master
                 WHERE type = 'index' AND name IN (SELECT value FROM json_each(?1))
                 ORDER BY name",
            )
            .unwrap();
        stmt.query_map([names], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// An audit of the hubspot connector begun on day `day_of_may`.
    fn begin_audit(store: &mut Store, day_of_may: u32) -> super::super::AuditWriter<'_> {
        let at = day(day_of_may, 0);
        let run = store.begin_run(RunKind::Audit, None, at).unwrap();
        store
            .begin_audit(run, &[hubspot()], at, at.date_naive())
            .unwrap()
    }

    /// Deal 1 stored, and an audit begun that finds it stalled, its chunk
    /// committed.
    fn first_chunk(test: &mut TestStore) -> super::super::AuditWriter<'_> {
        test.store
            .upsert_records(&hubspot(), &[record(ObjectKind::Deal, "1")], day(1, 0))
            .unwrap();
        let mut writer = begin_audit(&mut test.store, 2);
        writer
            .record(&[violation("1", BuiltinRule::Stalled, Some("decision"))])
            .unwrap();
        writer.flush().unwrap();
        writer
    }

    #[test]
    fn a_first_audit_fills_the_log_without_its_lookup_indexes_and_builds_them_at_its_end() {
        let mut test = TestStore::new();
        let before = indexes(&test.store);
        assert_eq!(before.len(), DEFERRED.len());

        let path = test.path();
        let writer = first_chunk(&mut test);
        let conn = rusqlite::Connection::open(path).unwrap();
        let during: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'violation_rows_fingerprint'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(during, 0, "set aside while the log fills");
        writer.finish().unwrap();

        assert_eq!(
            indexes(&test.store),
            before,
            "the same indexes, built again"
        );
    }

    #[test]
    fn an_audit_after_one_that_stopped_midway_builds_the_indexes_first() {
        let mut test = TestStore::new();
        let before = indexes(&test.store);
        drop(first_chunk(&mut test));
        assert!(
            indexes(&test.store).is_empty(),
            "the stopped audit left them out"
        );

        let writer = begin_audit(&mut test.store, 3);
        drop(writer);

        assert_eq!(indexes(&test.store), before);
    }

    #[test]
    fn an_audit_of_a_log_that_holds_violations_keeps_its_indexes() {
        let mut test = TestStore::new();
        first_chunk(&mut test).finish().unwrap();
        let before = indexes(&test.store);
        let reader = Store::open_read_only(&test.path()).unwrap();

        let writer = begin_audit(&mut test.store, 3);

        assert_eq!(indexes(&reader), before);
        writer.finish().unwrap();
    }
}
