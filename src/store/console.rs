//! What the web console reads beside the CLI's queries: the owners' names,
//! the open violations counted by one column, a record's violations and its
//! task, each owner's load, and runs of one kind.

use super::columns::get_ts;
use super::violations::{VIOLATION_COLUMNS, violation_row};
use super::{RunKind, RunRow, SqlContext, Store, StoreError, ViolationRow};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, ObjectKind, OwnerId, RecordId};
use rusqlite::params;
use std::collections::HashMap;

/// An owner as pages name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerName {
    pub name: String,
    pub active: bool,
}

/// Every stored owner's name, by connector and id.
pub type OwnerDirectory = HashMap<(ConnectorName, OwnerId), OwnerName>;

/// A column the open violations are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountBy {
    Rule,
    Severity,
    Connector,
    Stage,
}

/// The open and acknowledged rows, `+status` where the status index would
/// be the wrong way in: most rows are open, so the count is a walk of an
/// index that holds the column, in its order, with nothing to sort.
const OPEN: &str = "FROM violation_rows WHERE +status IN ('open', 'acknowledged')";

impl CountBy {
    /// `(value, n)` rows: a walk of the rule index for rules and stages
    /// (counted per rule and stage first, so the walk is in index order),
    /// of the connector index for connectors, of the status index for
    /// severities.
    fn sql(self) -> String {
        match self {
            CountBy::Rule => format!("SELECT rule, count(*) {OPEN} GROUP BY rule"),
            CountBy::Stage => format!(
                "SELECT stage, sum(n) FROM
                     (SELECT rule, stage, count(*) AS n {OPEN} GROUP BY rule, stage)
                 GROUP BY stage"
            ),
            CountBy::Connector => format!("SELECT connector, count(*) {OPEN} GROUP BY connector"),
            CountBy::Severity => "SELECT CAST(severity AS TEXT), sum(n) FROM
                     (SELECT status, severity, count(*) AS n FROM violation_rows
                      WHERE status IN ('open', 'acknowledged') GROUP BY status, severity)
                 GROUP BY severity"
                .to_owned(),
        }
    }
}

/// How many open or acknowledged violations have one value of a column;
/// `None` for those without one (a violation of no stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCount {
    pub value: Option<String>,
    pub count: u64,
}

/// The task journeyd keeps on a record, and the last write made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub subject: String,
    /// The CRM's id, once its create is confirmed.
    pub task_id: Option<String>,
    pub open: bool,
    pub updates: i64,
    pub last_write: Option<LastWrite>,
}

/// A write-back ledger entry, as the record page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWrite {
    /// `pending`, `sent`, `applied`, `failed` or `parked`.
    pub state: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One owner's share of the log and of the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerLoad {
    pub connector: ConnectorName,
    pub owner_id: OwnerId,
    pub name: Option<String>,
    /// `None` for an id the owners table does not hold.
    pub active: Option<bool>,
    pub records: u64,
    /// Open or acknowledged.
    pub open_violations: u64,
}

/// What changes when the figures a page sums over can: the last run
/// begun, the last one finished, and the last change of a violation's
/// status. Figures kept with one version stay right until it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVersion {
    last_run: Option<i64>,
    last_finished: Option<String>,
    last_event: Option<i64>,
}

impl Store {
    /// The log's [`LogVersion`]: three lookups of a largest key.
    pub fn log_version(&self) -> Result<LogVersion, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT (SELECT max(id) FROM runs),
                        (SELECT max(finished_at) FROM runs WHERE id > (SELECT max(id) - 64 FROM runs)),
                        (SELECT max(id) FROM violation_events)",
            )
            .op("prepare reading the log's version")?
            .query_row([], |row| {
                Ok(LogVersion {
                    last_run: row.get(0)?,
                    last_finished: row.get(1)?,
                    last_event: row.get(2)?,
                })
            })
            .op("read the log's version")
    }

    /// The name of every stored owner.
    pub fn owner_directory(&self) -> Result<OwnerDirectory, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT connector, id, name, active FROM owners")
            .op("prepare reading owner names")?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    (
                        ConnectorName::new(row.get::<_, String>(0)?),
                        OwnerId::new(row.get::<_, String>(1)?),
                    ),
                    OwnerName {
                        name: row.get(2)?,
                        active: row.get(3)?,
                    },
                ))
            })
            .op("read owner names")?;
        rows.collect::<Result<_, _>>().op("read owner names")
    }

    /// The open and acknowledged violations counted by `by`, most first.
    pub fn open_counts(&self, by: CountBy) -> Result<Vec<OpenCount>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT * FROM ({}) ORDER BY 2 DESC, 1", by.sql()))
            .op("prepare counting open violations")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(OpenCount {
                    value: row.get(0)?,
                    count: row.get(1)?,
                })
            })
            .op("count open violations")?;
        rows.collect::<Result<_, _>>().op("count open violations")
    }

    /// Every violation of one record, whatever its status: most severe
    /// first, then the newest.
    pub fn record_violations(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Vec<ViolationRow>, StoreError> {
        let today = self.today();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS} FROM violations WHERE record_rowid =
                     (SELECT rowid FROM records WHERE connector = ?1 AND object = ?2 AND id = ?3)
                 ORDER BY status = 'resolved', severity DESC, id DESC"
            ))
            .op("prepare reading a record's violations")?;
        let rows = stmt
            .query_map(
                params![connector.as_str(), object.as_str(), id.as_str()],
                |row| violation_row(row, today),
            )
            .op("read a record's violations")?;
        rows.collect::<Result<_, _>>()
            .op("read a record's violations")
    }

    /// The task journeyd keeps on one record, if any.
    pub fn record_task(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Option<TaskView>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT t.subject, t.task_id, t.state, t.updates,
                     l.state, l.attempts, l.error, l.updated_at
                 FROM record_tasks t
                 LEFT JOIN writeback_ledger l ON l.action_key = (
                     SELECT action_key FROM writeback_ledger WHERE task_key = t.task_key
                     ORDER BY updated_at DESC, action_key DESC LIMIT 1)
                 WHERE t.connector = ?1 AND t.object = ?2 AND t.record_id = ?3",
            )
            .op("prepare reading a record's task")?;
        let mut rows = stmt
            .query(params![connector.as_str(), object.as_str(), id.as_str()])
            .op("read a record's task")?;
        let Some(row) = rows.next().op("read a record's task")? else {
            return Ok(None);
        };
        let read = || -> rusqlite::Result<TaskView> {
            let state: Option<String> = row.get(4)?;
            let last_write = match state {
                Some(state) => Some(LastWrite {
                    state,
                    attempts: row.get(5)?,
                    error: row.get(6)?,
                    updated_at: get_ts(row, 7)?,
                }),
                None => None,
            };
            Ok(TaskView {
                subject: row.get(0)?,
                task_id: row.get(1)?,
                open: row.get::<_, String>(2)? == "open",
                updates: row.get(3)?,
                last_write,
            })
        };
        read().map(Some).op("read a record's task")
    }

    /// Per owner named on a live record or an open violation: the records
    /// they own and the open or acknowledged violations they are
    /// accountable for, most violations first.
    pub fn owner_loads(&self) -> Result<Vec<OwnerLoad>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "WITH
                 owned AS (SELECT connector, owner_id, count(*) AS n FROM records
                           WHERE deleted_at IS NULL AND owner_id IS NOT NULL
                           GROUP BY connector, owner_id),
                 flagged AS (SELECT connector, owner_id, count(*) AS n FROM violation_rows
                             WHERE status IN ('open', 'acknowledged') AND owner_id IS NOT NULL
                             GROUP BY connector, owner_id),
                 ids AS (SELECT connector, owner_id FROM owned
                         UNION SELECT connector, owner_id FROM flagged
                         UNION SELECT connector, id FROM owners)
                 SELECT ids.connector, ids.owner_id, o.name, o.active,
                     coalesce(owned.n, 0), coalesce(flagged.n, 0)
                 FROM ids
                 LEFT JOIN owners o ON o.connector = ids.connector AND o.id = ids.owner_id
                 LEFT JOIN owned ON owned.connector = ids.connector
                                AND owned.owner_id = ids.owner_id
                 LEFT JOIN flagged ON flagged.connector = ids.connector
                                  AND flagged.owner_id = ids.owner_id
                 ORDER BY coalesce(flagged.n, 0) DESC, ids.connector, o.name, ids.owner_id",
            )
            .op("prepare counting each owner's load")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(OwnerLoad {
                    connector: ConnectorName::new(row.get::<_, String>(0)?),
                    owner_id: OwnerId::new(row.get::<_, String>(1)?),
                    name: row.get(2)?,
                    active: row.get(3)?,
                    records: row.get(4)?,
                    open_violations: row.get(5)?,
                })
            })
            .op("count each owner's load")?;
        rows.collect::<Result<_, _>>().op("count each owner's load")
    }

    /// The latest `limit` runs of `kind`, newest first.
    pub fn runs_of(&self, kind: RunKind, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM runs WHERE kind = ?1 ORDER BY id DESC LIMIT ?2",
                super::runs::RUN_COLUMNS
            ))
            .op("prepare listing runs of a kind")?;
        let rows = stmt
            .query_map(params![kind, limit], super::runs::run_row)
            .op("list runs of a kind")?;
        rows.collect::<Result<_, _>>().op("list runs of a kind")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, hubspot, violation};
    use super::*;
    use crate::rules::BuiltinRule;

    #[test]
    fn open_counts_count_open_and_acknowledged_violations_by_rule() {
        let test = TestStore::audited(&[
            violation("1", BuiltinRule::MissingOwner, Some("a")),
            violation("2", BuiltinRule::MissingOwner, Some("a")),
            violation("2", BuiltinRule::Stalled, Some("a")),
        ]);
        let counts = test.store.open_counts(CountBy::Rule).unwrap();
        let counted: Vec<(Option<&str>, u64)> = counts
            .iter()
            .map(|c| (c.value.as_deref(), c.count))
            .collect();
        assert_eq!(
            counted,
            vec![(Some("missing_owner"), 2), (Some("stalled"), 1)]
        );
    }

    #[test]
    fn open_counts_by_stage_and_severity_sum_over_every_rule() {
        let test = TestStore::audited(&[
            violation("1", BuiltinRule::MissingOwner, Some("a")),
            violation("2", BuiltinRule::Stalled, Some("a")),
            violation("2", BuiltinRule::DuplicateRecord, Some("b")),
        ]);
        let counted = |by| -> Vec<(Option<String>, u64)> {
            test.store
                .open_counts(by)
                .unwrap()
                .into_iter()
                .map(|c| (c.value, c.count))
                .collect()
        };
        assert_eq!(
            counted(CountBy::Stage),
            vec![(Some("a".into()), 2), (Some("b".into()), 1)]
        );
        let severities: u64 = counted(CountBy::Severity).iter().map(|(_, n)| n).sum();
        assert_eq!(severities, 3);
        assert_eq!(
            counted(CountBy::Connector),
            vec![(Some("hubspot".into()), 3)]
        );
    }

    #[test]
    fn a_records_violations_are_read_by_its_key_and_no_others() {
        let test = TestStore::audited(&[
            violation("1", BuiltinRule::MissingOwner, Some("a")),
            violation("2", BuiltinRule::Stalled, Some("a")),
        ]);
        let found = test
            .store
            .record_violations(&hubspot(), ObjectKind::Deal, &RecordId::new("2"))
            .unwrap();
        let rules: Vec<&str> = found.iter().map(|v| v.violation.rule.as_str()).collect();
        assert_eq!(rules, vec!["stalled"]);
    }

    #[test]
    fn a_record_without_a_task_has_none() {
        let test = TestStore::audited(&[violation("1", BuiltinRule::MissingOwner, Some("a"))]);
        let task = test
            .store
            .record_task(&hubspot(), ObjectKind::Deal, &RecordId::new("1"))
            .unwrap();
        assert_eq!(task, None);
    }
}
