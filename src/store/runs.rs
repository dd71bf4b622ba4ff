//! A row per run (import, sync, audit, write-back): when, how it ended, its
//! counts. Audits and violation events point at their run.

use super::columns::{get_opt_ts, get_ts, sql_enum, sql_id, ts};
use super::{SqlContext, Store, StoreError, json_error};
use chrono::{DateTime, Utc};
use journeyd_connector::ConnectorName;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use std::fmt;

/// A run's id, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

sql_id!(RunId);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

sql_enum!(
    /// What a run did.
    RunKind {
        Import => "import",
        Sync => "sync",
        Audit => "audit",
        Writeback => "writeback",
    }
);

sql_enum!(
    /// How a run stands or ended.
    RunStatus {
        Running => "running",
        Ok => "ok",
        /// Finished, with records skipped or actions failed.
        Partial => "partial",
        Failed => "failed",
        /// Stopped before it finished: by a stop signal at a safe point,
        /// or found `running` after its process was gone.
        Interrupted => "interrupted",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub kind: RunKind,
    pub connector: Option<ConnectorName>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub counts: Option<serde_json::Value>,
    pub error: Option<String>,
}

impl Store {
    /// Starts a run: a row with status `running`, naming this process.
    pub fn begin_run(
        &mut self,
        kind: RunKind,
        connector: Option<&ConnectorName>,
        at: DateTime<Utc>,
    ) -> Result<RunId, StoreError> {
        let me = crate::process::current();
        self.conn
            .prepare_cached(
                "INSERT INTO runs (kind, connector, started_at, status, pid, pid_started)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5) RETURNING id",
            )
            .op("prepare beginning a run")?
            .query_row(
                params![
                    kind,
                    connector.map(|c| c.as_str()),
                    ts(at),
                    me.map(|p| p.pid),
                    me.map(|p| p.started.as_str()),
                ],
                |row| row.get(0),
            )
            .op("begin a run")
    }

    /// Marks `interrupted` every `running` run whose process is gone, as
    /// `alive(pid, started)` judges it; a row that names no process (one
    /// written before runs recorded theirs) counts as gone. Returns the
    /// runs marked.
    pub fn interrupt_orphaned_runs(
        &mut self,
        alive: impl Fn(u32, Option<&str>) -> bool,
        at: DateTime<Utc>,
    ) -> Result<Vec<RunRow>, StoreError> {
        let running: Vec<(RunRow, Option<u32>, Option<String>)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS}, pid, pid_started FROM runs
                 WHERE status = 'running' ORDER BY id"
            ))
            .op("prepare finding running runs")?
            .query_map([], |row| Ok((run_row(row)?, row.get(8)?, row.get(9)?)))
            .op("find running runs")?
            .collect::<Result<_, _>>()
            .op("find running runs")?;
        let mut marked = Vec::new();
        for (row, pid, started) in running {
            if pid.is_some_and(|pid| alive(pid, started.as_deref())) {
                continue;
            }
            let error = match pid {
                Some(pid) => format!("process {pid} ended before the run finished"),
                None => "left running by an earlier version; its process is not known".to_owned(),
            };
            self.conn
                .prepare_cached(
                    "UPDATE runs SET status = 'interrupted', error = ?2, finished_at = ?3
                     WHERE id = ?1 AND status = 'running'",
                )
                .op("prepare marking a run interrupted")?
                .execute(params![row.id, error, ts(at)])
                .op("mark a run interrupted")?;
            marked.push(row);
        }
        Ok(marked)
    }

    /// Ends `run` with `status`, its counts and, if it failed, its error.
    pub fn finish_run(
        &mut self,
        run: RunId,
        status: RunStatus,
        counts: &serde_json::Value,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let counts = serde_json::to_string(counts)
            .map_err(json_error(format!("the counts of run {run}")))?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE runs SET status = ?2, counts = ?3, error = ?4, finished_at = ?5
                 WHERE id = ?1",
            )
            .op("prepare finishing a run")?
            .execute(params![run, status, counts, error, ts(at)])
            .op("finish a run")?;
        if changed == 0 {
            return Err(StoreError::RunNotFound(run));
        }
        Ok(())
    }

    /// Ends `run` as failed with `error` and no counts.
    pub fn fail_run(
        &mut self,
        run: RunId,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.finish_run(
            run,
            RunStatus::Failed,
            &serde_json::Value::Null,
            Some(error),
            at,
        )
    }

    pub fn run(&self, run: RunId) -> Result<Option<RunRow>, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
            .op("prepare reading a run")?
            .query_row([run], run_row)
            .optional()
            .op("read a run")
    }

    /// The latest run of `kind` that has finished (well or not), of
    /// `connector` (`None`: runs of no connector, such as audits). A run
    /// still going, or left `running` by a crash, is not it.
    pub fn last_finished_run(
        &self,
        kind: RunKind,
        connector: Option<&ConnectorName>,
    ) -> Result<Option<RunRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE kind = ?1 AND connector IS ?2 AND finished_at IS NOT NULL
                 ORDER BY id DESC LIMIT 1"
            ))
            .op("prepare reading the last run")?
            .query_row(params![kind, connector.map(|c| c.as_str())], run_row)
            .optional()
            .op("read the last run")
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))
            .op("prepare listing runs")?;
        let rows = stmt
            .query_map([limit], run_row)
            .op("list runs")?
            .collect::<Result<Vec<_>, _>>()
            .op("list runs")?;
        Ok(rows)
    }
}

pub(super) const RUN_COLUMNS: &str =
    "id, kind, connector, started_at, finished_at, status, counts, error";

pub(super) fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let counts: Option<String> = row.get(6)?;
    let counts = counts
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(err))
        })?;
    Ok(RunRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        connector: row.get::<_, Option<String>>(2)?.map(ConnectorName::new),
        started_at: get_ts(row, 3)?,
        finished_at: get_opt_ts(row, 4)?,
        status: row.get(5)?,
        counts,
        error: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot};
    use super::*;

    #[test]
    fn the_last_finished_run_is_per_kind_and_connector_and_skips_a_running_one() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let other = ConnectorName::new("salesforce");
        let counts = serde_json::json!({});
        let first = store
            .begin_run(RunKind::Sync, Some(&hubspot()), day(1, 0))
            .unwrap();
        store
            .finish_run(first, RunStatus::Ok, &counts, None, day(1, 1))
            .unwrap();
        let failed = store
            .begin_run(RunKind::Sync, Some(&hubspot()), day(2, 0))
            .unwrap();
        store.fail_run(failed, "refused", day(2, 1)).unwrap();
        let theirs = store
            .begin_run(RunKind::Sync, Some(&other), day(3, 0))
            .unwrap();
        store
            .finish_run(theirs, RunStatus::Ok, &counts, None, day(3, 1))
            .unwrap();
        store
            .begin_run(RunKind::Sync, Some(&hubspot()), day(4, 0))
            .unwrap();
        let audit = store.begin_run(RunKind::Audit, None, day(4, 1)).unwrap();
        store
            .finish_run(audit, RunStatus::Ok, &counts, None, day(4, 2))
            .unwrap();

        let last = |kind, connector: Option<&ConnectorName>| {
            store
                .last_finished_run(kind, connector)
                .unwrap()
                .map(|run| (run.id, run.status))
        };
        assert_eq!(
            last(RunKind::Sync, Some(&hubspot())),
            Some((failed, RunStatus::Failed))
        );
        assert_eq!(
            last(RunKind::Sync, Some(&other)),
            Some((theirs, RunStatus::Ok))
        );
        assert_eq!(last(RunKind::Audit, None), Some((audit, RunStatus::Ok)));
        assert_eq!(last(RunKind::Writeback, Some(&hubspot())), None);
        assert_eq!(last(RunKind::Sync, None), None);
    }

    #[test]
    fn a_running_run_whose_process_is_gone_is_marked_interrupted_and_a_live_ones_is_not() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let mine = store
            .begin_run(RunKind::Sync, Some(&hubspot()), day(1, 0))
            .unwrap();
        let theirs = store.begin_run(RunKind::Audit, None, day(1, 1)).unwrap();
        let done = store.begin_run(RunKind::Audit, None, day(1, 1)).unwrap();
        store
            .finish_run(done, RunStatus::Ok, &serde_json::json!({}), None, day(1, 2))
            .unwrap();
        // `theirs` was begun by a process that has since died.
        store
            .conn
            .execute(
                "UPDATE runs SET pid = 4194305, pid_started = 'gone/1' WHERE id = ?1",
                [theirs],
            )
            .unwrap();

        let marked = store
            .interrupt_orphaned_runs(crate::process::is_alive, day(2, 0))
            .unwrap();

        assert_eq!(marked.iter().map(|r| r.id).collect::<Vec<_>>(), [theirs]);
        let row = store.run(theirs).unwrap().unwrap();
        assert_eq!(row.status, RunStatus::Interrupted);
        assert_eq!(row.finished_at, Some(day(2, 0)));
        assert!(row.error.unwrap().contains("4194305"));
        assert_eq!(store.run(mine).unwrap().unwrap().status, RunStatus::Running);
        assert_eq!(store.run(done).unwrap().unwrap().status, RunStatus::Ok);
    }

    #[test]
    fn a_run_row_of_the_previous_schema_keeps_its_id_and_the_next_id_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journeyd.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            super::super::migrations::migrations()
                .to_version(&mut conn, 4)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO runs (kind, started_at, status)
                     VALUES ('audit', '2024-05-01T00:00:00.000000000Z', 'running');
                 INSERT INTO violations (fingerprint, connector, object, record_id, rule,
                     severity, message, action, status, first_seen, last_seen, last_run)
                     VALUES ('f', 'hubspot', 'deal', '1', 'missing_owner', 1, 'm', '{}',
                     'open', '2024-05-01T00:00:00.000000000Z',
                     '2024-05-01T00:00:00.000000000Z', 1);",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let marked = store
            .interrupt_orphaned_runs(|_, _| true, day(2, 0))
            .unwrap();
        assert_eq!(marked.len(), 1, "a row without a process is interrupted");
        assert_eq!(
            store.run(RunId(1)).unwrap().unwrap().status,
            RunStatus::Interrupted
        );
        let next = store.begin_run(RunKind::Audit, None, day(2, 0)).unwrap();
        assert_eq!(next, RunId(2));
    }

    #[test]
    fn a_run_is_recorded_running_then_finished_with_its_counts() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let sync = store
            .begin_run(RunKind::Sync, Some(&hubspot()), day(1, 0))
            .unwrap();
        let audit = store.begin_run(RunKind::Audit, None, day(1, 1)).unwrap();
        assert_eq!(store.run(sync).unwrap().unwrap().status, RunStatus::Running);
        let counts = serde_json::json!({ "records": 12, "skipped": 1 });
        store
            .finish_run(sync, RunStatus::Partial, &counts, None, day(1, 2))
            .unwrap();

        let runs = store.runs(10).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![audit, sync]
        );
        let sync_row = &runs[1];
        assert_eq!(sync_row.connector, Some(hubspot()));
        assert_eq!(sync_row.counts, Some(counts));
        assert_eq!(sync_row.finished_at, Some(day(1, 2)));
        assert_eq!(store.runs(1).unwrap().len(), 1);
        let missing = store.finish_run(
            RunId(99),
            RunStatus::Ok,
            &serde_json::json!({}),
            None,
            day(2, 0),
        );
        assert!(matches!(missing, Err(StoreError::RunNotFound(RunId(99)))));
    }
}
