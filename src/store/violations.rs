//! The violations log: rows by fingerprint, the event trail of every status
//! change, admin actions (acknowledge, suppress, reopen), lookup by id or
//! fingerprint, and streaming lists for exports of any size.
//!
//! Rows are read through the `violations` view, which renders what a
//! nightly audit no longer writes (day counts, the last sighting); counts
//! and filters over the stored columns read `violation_rows` directly.
//!
//! Statuses move so:
//!
//! | from | by | to | event |
//! | --- | --- | --- | --- |
//! | (none) | audit finds it | open | opened |
//! | resolved | audit finds it | open | reopened |
//! | open, acknowledged | audit no longer finds it | resolved | resolved |
//! | suppressed | its date passed | open | unsuppressed |
//! | open, suppressed | admin acknowledges | acknowledged | acknowledged |
//! | open, acknowledged, suppressed | admin suppresses | suppressed | suppressed |
//! | acknowledged | admin reopens | open | reopened |
//! | suppressed | admin reopens | open | unsuppressed |

use super::columns::{
    get_named, get_object, get_opt_ts, get_severity, get_ts, severity_rank, sql_enum, sql_id, ts,
};
use super::{RunId, SqlContext, Store, StoreError};
use crate::journey::{RoleId, StageId};
use crate::rules::{Fingerprint, RuleId, Severity, Violation, render_days};
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::{ConnectorName, OwnerId, RecordId};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde::Serialize;
use std::fmt;
use std::num::NonZeroUsize;

/// The actor of every change an audit makes.
pub(super) const AUDIT_ACTOR: &str = "journeyd";

/// A fingerprint prefix shorter than this is not looked up.
pub const MIN_PREFIX: usize = 6;

/// The number admins type to name a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ViolationId(pub i64);

sql_id!(ViolationId);

impl fmt::Display for ViolationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

sql_enum!(
    ViolationStatus {
        Open => "open",
        /// An admin knows and intends it; stays until fixed or reopened.
        Acknowledged => "acknowledged",
        /// Hidden by an admin, possibly until a date.
        Suppressed => "suppressed",
        /// An audit no longer finds it.
        Resolved => "resolved",
    }
);

sql_enum!(
    /// What changed a violation's status.
    EventKind {
        Opened => "opened",
        Reopened => "reopened",
        Resolved => "resolved",
        Acknowledged => "acknowledged",
        Suppressed => "suppressed",
        Unsuppressed => "unsuppressed",
    }
);

/// One violation as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViolationRow {
    pub id: ViolationId,
    /// The violation as the last audit that found it described it.
    #[serde(flatten)]
    pub violation: Violation,
    pub status: ViolationStatus,
    /// The reason of the change that gave the current status.
    pub status_reason: Option<String>,
    pub suppressed_until: Option<NaiveDate>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The last audit that found it.
    pub last_run: Option<RunId>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One change of a violation's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub violation_id: ViolationId,
    pub at: DateTime<Utc>,
    /// The audit that made the change; `None` for an admin's.
    pub run_id: Option<RunId>,
    pub actor: String,
    pub kind: EventKind,
    pub from_status: Option<ViolationStatus>,
    pub to_status: ViolationStatus,
    pub reason: Option<String>,
}

/// A column a list can be filtered on by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterColumn {
    Rule,
    Stage,
    Owner,
    Connector,
}

/// Which violations a list returns. Every field narrows; the default
/// returns them all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViolationFilter {
    /// Any of these statuses; empty for every status.
    pub statuses: Vec<ViolationStatus>,
    pub rule: Option<RuleId>,
    pub stage: Option<StageId>,
    pub owner_id: Option<OwnerId>,
    pub connector: Option<ConnectorName>,
    /// First seen at or after this time: what is new since then. (Still
    /// failing older violations are not "since"; filter by status for them.)
    pub since: Option<DateTime<Utc>>,
    /// This severity or higher.
    pub min_severity: Option<Severity>,
    /// Whose record name or message holds this text (ASCII letters in any
    /// case), or whose record id it is.
    pub text: Option<String>,
    /// Only those listed after this one, in the list's order: the next
    /// page.
    pub after: Option<ListPosition>,
    pub limit: Option<NonZeroUsize>,
    /// The list's order; a list read whole for export is in id order.
    pub sort: Sort,
    /// Only each record's first violation in the list's order, among those
    /// the filter selects: one row per record, for a list grouped by
    /// record. Only for a page of a list (a filter with a limit).
    pub one_per_record: bool,
}

/// The orders an admin can read a list in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Sort {
    /// Most severe first, the newest first within a severity: what needs
    /// attention first.
    #[default]
    Severity,
    /// The newest first: what the last audits found.
    Newest,
    /// The oldest first: what has waited longest.
    Oldest,
}

impl Sort {
    pub const ALL: [Sort; 3] = [Sort::Severity, Sort::Newest, Sort::Oldest];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Severity => "severity",
            Sort::Newest => "newest",
            Sort::Oldest => "oldest",
        }
    }

    pub fn parse(name: &str) -> Option<Sort> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == name)
    }

    /// `ORDER BY` of the rows of `violation_rows` or `violations`.
    fn order_by(self) -> &'static str {
        match self {
            Sort::Severity => "severity DESC, id DESC",
            Sort::Newest => "id DESC",
            Sort::Oldest => "id",
        }
    }

    /// Whether the row `w` comes before the row `v` in this order (columns
    /// `{w}severity`, `{v}id`, ...).
    fn before(self, w: &str, v: &str) -> String {
        match self {
            Sort::Severity => format!(
                "({w}severity > {v}severity OR ({w}severity = {v}severity AND {w}id > {v}id))"
            ),
            Sort::Newest => format!("{w}id > {v}id"),
            Sort::Oldest => format!("{w}id < {v}id"),
        }
    }
}

/// Where a page of a list ended: the last row's severity and id (a list
/// in id order reads the id only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPosition {
    pub severity: Severity,
    pub id: ViolationId,
}

/// One line of an audit's summary: what the run opened and resolved for a
/// rule at a stage, and how many are open, acknowledged and suppressed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummaryRow {
    pub rule: RuleId,
    pub stage: Option<StageId>,
    /// Opened or reopened by the run.
    pub new: u64,
    /// Resolved by the run.
    pub resolved: u64,
    pub open: u64,
    pub acknowledged: u64,
    pub suppressed: u64,
}

/// How many violations share a rule, stage and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    pub rule: RuleId,
    pub stage: Option<StageId>,
    pub status: ViolationStatus,
    pub count: u64,
}

/// The view's columns journeyd reads: the message as stored (its day count
/// is counted in Rust, to the org's date, not by the view) and the date the
/// count runs from.
pub(super) const VIOLATION_COLUMNS: &str = "id, fingerprint, connector, object, record_id, record_name, \
     record_url, rule, severity, stage, owner_id, owner_role, message_template, action, status, \
     status_reason, suppressed_until, first_seen, last_seen, last_run, resolved_at, stage_since";

/// One row of [`VIOLATION_COLUMNS`] of the `violations` view, its message's
/// day count counted to `today`.
pub(super) fn violation_row(
    row: &rusqlite::Row<'_>,
    today: NaiveDate,
) -> rusqlite::Result<ViolationRow> {
    let action = row.get_ref(13)?.as_str()?;
    let action = serde_json::from_str(action).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Text, Box::new(err))
    })?;
    let stage_since = row.get(21)?;
    let violation = Violation {
        fingerprint: Fingerprint::from_stored(row.get(1)?),
        connector: ConnectorName::new(row.get::<_, String>(2)?),
        object: get_object(row, 3)?,
        record_id: RecordId::new(row.get::<_, String>(4)?),
        record_name: row.get(5)?,
        record_url: row.get(6)?,
        rule: RuleId::new(row.get::<_, String>(7)?),
        severity: get_severity(row, 8)?,
        stage: row.get::<_, Option<String>>(9)?.map(StageId::new),
        owner_id: row.get::<_, Option<String>>(10)?.map(OwnerId::new),
        owner_role: row.get::<_, Option<String>>(11)?.map(RoleId::new),
        message: render_days(row.get_ref(12)?.as_str()?, stage_since, today),
        stage_since,
        action,
    };
    Ok(ViolationRow {
        id: row.get(0)?,
        violation,
        status: row.get(14)?,
        status_reason: row.get(15)?,
        suppressed_until: row.get(16)?,
        first_seen: get_ts(row, 17)?,
        last_seen: get_ts(row, 18)?,
        last_run: row.get(19)?,
        resolved_at: get_opt_ts(row, 20)?,
    })
}

/// Appends one event to a violation's trail.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per column of the event"
)]
pub(super) fn insert_event(
    conn: &Connection,
    id: ViolationId,
    at: &str,
    run: Option<RunId>,
    actor: &str,
    kind: EventKind,
    from: Option<ViolationStatus>,
    to: ViolationStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO violation_events
             (violation_id, at, run_id, actor, kind, from_status, to_status, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .op("prepare recording a violation event")?
    .execute(params![id, at, run, actor, kind, from, to, reason])
    .op("record a violation event")?;
    Ok(())
}

/// The WHERE clause of a list, with its numbered parameters.
#[derive(Default)]
pub(super) struct Where {
    pub(super) clauses: Vec<String>,
    pub(super) values: Vec<Value>,
}

impl Where {
    /// Adds a parameter; returns its placeholder.
    pub(super) fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    /// Adds `<condition> <placeholder>`.
    fn push(&mut self, condition: &str, value: Value) {
        let mark = self.bind(value);
        self.clauses.push(format!("{condition} {mark}"));
    }

    /// ` WHERE ...`, or nothing.
    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// An admin's change of status, before it is checked.
struct Transition<'a> {
    action: &'static str,
    from: &'a [ViolationStatus],
    to: ViolationStatus,
    until: Option<NaiveDate>,
}

impl Store {
    /// Finds a violation by its id, its fingerprint, or a prefix of its
    /// fingerprint of at least [`MIN_PREFIX`] characters that only it has.
    /// Digits that are both one violation's id and a prefix of another's
    /// fingerprint name neither: [`StoreError::IdOrFingerprint`] lists both.
    pub fn violation(&self, id_or_fingerprint: &str) -> Result<Option<ViolationRow>, StoreError> {
        let key = id_or_fingerprint.trim();
        let by_id = match key.parse::<i64>() {
            Ok(id) => self.violation_by_id(ViolationId(id))?,
            Err(_) => None,
        };
        let by_fingerprint = self.violation_by_prefix(key)?;
        match (by_id, by_fingerprint) {
            (Some(by_id), Some(by_fingerprint)) if by_id.id != by_fingerprint.id => {
                Err(StoreError::IdOrFingerprint {
                    key: key.to_owned(),
                    id: (by_id.id, by_id.violation.fingerprint.to_string()),
                    fingerprint: (
                        by_fingerprint.id,
                        by_fingerprint.violation.fingerprint.to_string(),
                    ),
                })
            }
            (Some(row), _) | (None, Some(row)) => Ok(Some(row)),
            (None, None) => Ok(None),
        }
    }

    /// The one violation whose fingerprint starts with `prefix`.
    fn violation_by_prefix(&self, prefix: &str) -> Result<Option<ViolationRow>, StoreError> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() < MIN_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let today = self.today();
        // Fingerprints are lowercase hex: every one starting with `prefix`
        // sorts in [prefix, prefix + "g").
        let mut stmt = self
            .conn
            .prepare_cached(&by_prefix_sql())
            .op("prepare finding a violation")?;
        let mut rows = stmt
            .query_map(params![prefix, format!("{prefix}g")], |row| {
                violation_row(row, today)
            })
            .op("find a violation")?;
        let first = rows.next().transpose().op("find a violation")?;
        if rows.next().is_some() {
            return Err(StoreError::AmbiguousPrefix(prefix));
        }
        Ok(first)
    }

    /// The distinct values of `column` among all violations, sorted.
    pub fn violation_values(&self, column: FilterColumn) -> Result<Vec<String>, StoreError> {
        let name = match column {
            FilterColumn::Rule => "rule",
            FilterColumn::Stage => "stage",
            FilterColumn::Owner => "owner_id",
            FilterColumn::Connector => "connector",
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT DISTINCT {name} FROM violation_rows WHERE {name} IS NOT NULL ORDER BY {name}"
            ))
            .op("prepare listing the values of a violation column")?;
        let values = stmt
            .query_map([], |row| row.get(0))
            .op("list the values of a violation column")?
            .collect::<Result<_, _>>()
            .op("list the values of a violation column")?;
        Ok(values)
    }

    pub fn violation_by_id(&self, id: ViolationId) -> Result<Option<ViolationRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS} FROM violations WHERE id = ?1"
            ))
            .op("prepare reading a violation")?
            .query_row([id], |row| violation_row(row, self.today()))
            .optional()
            .op("read a violation")
    }

    /// The violation's trail, oldest first.
    pub fn violation_events(&self, id: ViolationId) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, violation_id, at, run_id, actor, kind, from_status, to_status, reason
                 FROM violation_events WHERE violation_id = ?1 ORDER BY id",
            )
            .op("prepare reading violation events")?;
        let events = stmt
            .query_map([id], |row| {
                Ok(EventRow {
                    id: row.get(0)?,
                    violation_id: row.get(1)?,
                    at: get_ts(row, 2)?,
                    run_id: row.get(3)?,
                    actor: row.get(4)?,
                    kind: row.get(5)?,
                    from_status: row.get(6)?,
                    to_status: row.get(7)?,
                    reason: row.get(8)?,
                })
            })
            .op("read violation events")?
            .collect::<Result<_, _>>()
            .op("read violation events")?;
        Ok(events)
    }

    /// An admin marks an open (or suppressed) violation as known and
    /// intended. It stays acknowledged while the audit finds it, and
    /// resolves when the audit no longer does.
    pub fn acknowledge(
        &mut self,
        id: ViolationId,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transition = Transition {
            action: "acknowledge",
            from: &[ViolationStatus::Open, ViolationStatus::Suppressed],
            to: ViolationStatus::Acknowledged,
            until: None,
        };
        self.transition(id, transition, actor, reason, at)
    }

    /// An admin hides a violation, until the end of `until` or for good.
    /// Suppressing a suppressed violation replaces its date and reason.
    pub fn suppress(
        &mut self,
        id: ViolationId,
        actor: &str,
        reason: &str,
        until: Option<NaiveDate>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transition = Transition {
            action: "suppress",
            from: &[
                ViolationStatus::Open,
                ViolationStatus::Acknowledged,
                ViolationStatus::Suppressed,
            ],
            to: ViolationStatus::Suppressed,
            until,
        };
        self.transition(id, transition, actor, reason, at)
    }

    /// An admin undoes an acknowledgement or a suppression.
    pub fn reopen(
        &mut self,
        id: ViolationId,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transition = Transition {
            action: "reopen",
            from: &[ViolationStatus::Acknowledged, ViolationStatus::Suppressed],
            to: ViolationStatus::Open,
            until: None,
        };
        self.transition(id, transition, actor, reason, at)
    }

    fn transition(
        &mut self,
        id: ViolationId,
        t: Transition<'_>,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(StoreError::ReasonRequired {
                id,
                action: t.action,
            });
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .op("begin a violation status change")?;
        let status: ViolationStatus = tx
            .prepare_cached("SELECT status FROM violation_rows WHERE id = ?1")
            .op("prepare reading a violation status")?
            .query_row([id], |row| row.get(0))
            .optional()
            .op("read a violation status")?
            .ok_or(StoreError::ViolationNotFound(id))?;
        if !t.from.contains(&status) {
            return Err(StoreError::InvalidTransition {
                id,
                action: t.action,
                status,
            });
        }
        let kind = match t.to {
            ViolationStatus::Acknowledged => EventKind::Acknowledged,
            ViolationStatus::Suppressed => EventKind::Suppressed,
            _ if status == ViolationStatus::Suppressed => EventKind::Unsuppressed,
            _ => EventKind::Reopened,
        };
        tx.prepare_cached(
            "UPDATE violation_rows SET status = ?2, status_reason = ?3, suppressed_until = ?4
             WHERE id = ?1",
        )
        .op("prepare changing a violation status")?
        .execute(params![id, t.to, reason, t.until])
        .op("change a violation status")?;
        insert_event(
            &tx,
            id,
            &ts(at),
            None,
            actor,
            kind,
            Some(status),
            t.to,
            Some(reason),
        )?;
        tx.commit().op("commit a violation status change")
    }

    /// Streams the violations `filter` selects to `f`, highest severity
    /// first, the newest first within a severity. Memory does not grow with the number of rows when
    /// the filter has a limit (SQLite keeps the top rows only); for every
    /// row of a large log use [`Store::stream_violations`]. `f` can stop the
    /// stream by returning an error, which is passed back.
    pub fn list_violations<E>(
        &self,
        filter: &ViolationFilter,
        f: impl FnMut(ViolationRow) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        let Some(limit) = filter.limit else {
            return self.query_violations(&list_sql(filter, ListOrder::Sorted), f);
        };
        let (ids, _) = self.page_ids(filter, limit)?;
        self.query_violations(&rows_of_ids(&ids, filter.sort), f)
    }

    /// The ids of the page of `filter`'s list, in its order; and, where it
    /// was counted to choose how to read the page, how many violations
    /// the filter selects (one per record or not), up to [`FEW`].
    pub(super) fn page_ids(
        &self,
        filter: &ViolationFilter,
        limit: NonZeroUsize,
    ) -> Result<(Vec<i64>, Option<Option<u64>>), StoreError> {
        // Every violation, not one per record: no fewer records than
        // violations, and a count without the check of each row's record.
        let unpaged = ViolationFilter {
            after: None,
            limit: None,
            one_per_record: false,
            ..filter.clone()
        };
        let counted = if narrows(filter) {
            Some(self.count_violations_upto(&unpaged, FEW)?)
        } else {
            None
        };
        let ids = if counted.is_some_and(|n| n.is_some()) {
            self.page_sorted(filter, limit)?
        } else if filter.sort == Sort::Severity {
            self.page_by_severity(filter, limit)?
        } else {
            self.page_by_id(filter, limit)?
        };
        Ok((ids, counted))
    }

    /// The ids of a page of `filter`'s list, from the few rows it selects,
    /// read through its own index and sorted.
    fn page_sorted(
        &self,
        filter: &ViolationFilter,
        limit: NonZeroUsize,
    ) -> Result<Vec<i64>, StoreError> {
        self.page_in_order(filter_clause(filter), filter, limit)
    }

    /// The ids of a page of `filter`'s list in id order: a walk of the
    /// table from the position that stops when the page is full.
    fn page_by_id(
        &self,
        filter: &ViolationFilter,
        limit: NonZeroUsize,
    ) -> Result<Vec<i64>, StoreError> {
        self.page_in_order(filter_on(filter, "+", "+", "+"), filter, limit)
    }

    /// The ids of the rows `query` selects after `filter`'s position, in
    /// its order, up to `limit`.
    fn page_in_order(
        &self,
        mut query: Where,
        filter: &ViolationFilter,
        limit: NonZeroUsize,
    ) -> Result<Vec<i64>, StoreError> {
        if let Some(after) = filter.after {
            let id = Value::Integer(after.id.0);
            let clause = match filter.sort {
                Sort::Severity => {
                    let severity = query.bind(Value::Integer(severity_rank(after.severity)));
                    let id = query.bind(id);
                    format!("(severity < {severity} OR (severity = {severity} AND id < {id}))")
                }
                Sort::Newest => format!("id < {}", query.bind(id)),
                Sort::Oldest => format!("id > {}", query.bind(id)),
            };
            query.clauses.push(clause);
        }
        let mark = query.bind(Value::Integer(
            i64::try_from(limit.get()).unwrap_or(i64::MAX),
        ));
        let sql = format!(
            "SELECT id FROM violation_rows{} ORDER BY {} LIMIT {mark}",
            query.sql(),
            filter.sort.order_by()
        );
        self.ids(&sql, query.values)
    }

    /// The ids of a page of `filter`'s list, one severity at a time from
    /// the highest: each a seek of an index in the list's order (by rule
    /// and severity for a rule's list, by severity otherwise) and a walk
    /// that stops when the page is full.
    fn page_by_severity(
        &self,
        filter: &ViolationFilter,
        limit: NonZeroUsize,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(limit.get());
        for severity in Severity::ALL.into_iter().rev() {
            let room = limit.get() - ids.len();
            if room == 0 {
                break;
            }
            let Some((sql, values)) = level_sql(filter, severity, room) else {
                continue;
            };
            ids.extend(self.ids(&sql, values)?);
        }
        Ok(ids)
    }

    pub(super) fn ids(&self, sql: &str, values: Vec<Value>) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare(sql).op("prepare listing violations")?;
        let rows = stmt
            .query_map(params_from_iter(values), |row| row.get(0))
            .op("list violations")?;
        rows.collect::<Result<_, _>>().op("list violations")
    }

    /// Streams the violations `filter` selects to `f` in id order, reading
    /// the table in its own order: nothing is sorted, so memory stays flat
    /// however many rows an export has.
    pub fn stream_violations<E>(
        &self,
        filter: &ViolationFilter,
        f: impl FnMut(ViolationRow) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        self.query_violations(&list_sql(filter, ListOrder::Id), f)
    }

    /// How many violations `filter` selects, its limit aside.
    pub fn count_violations(&self, filter: &ViolationFilter) -> Result<u64, StoreError> {
        let query = filter_clause(filter);
        let sql = format!("SELECT count(*) FROM violation_rows{}", query.sql());
        self.conn
            .prepare(&sql)
            .op("prepare counting violations")?
            .query_row(params_from_iter(query.values), |row| row.get(0))
            .op("count violations")
    }

    /// How many violations `filter` selects, its limit aside, counting no
    /// further than `cap`: `None` when there are more. Its cost is bounded
    /// by `cap` whatever the log's size.
    pub fn count_violations_upto(
        &self,
        filter: &ViolationFilter,
        cap: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut query = filter_clause(filter);
        let limit = query.bind(Value::Integer(i64::try_from(cap).unwrap_or(i64::MAX) + 1));
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM violation_rows{} LIMIT {limit})",
            query.sql()
        );
        let counted: u64 = self
            .conn
            .prepare(&sql)
            .op("prepare counting violations")?
            .query_row(params_from_iter(query.values), |row| row.get(0))
            .op("count violations")?;
        Ok((counted <= cap).then_some(counted))
    }

    pub(super) fn query_violations<E>(
        &self,
        (sql, values): &(String, Vec<Value>),
        mut f: impl FnMut(ViolationRow) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        let today = self.today();
        let mut stmt = self.conn.prepare(sql).op("prepare listing violations")?;
        let mut rows = stmt.query(params_from_iter(values)).op("list violations")?;
        while let Some(row) = rows.next().op("list violations")? {
            f(violation_row(row, today).op("read a listed violation")?)?;
        }
        Ok(())
    }

    /// Counts by rule, stage and status.
    pub fn violation_summary(&self) -> Result<Vec<SummaryRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                // The rows themselves: these columns are the view's, and
                // their index walks them in group order, sorting nothing.
                "SELECT rule, stage, status, count(*) FROM violation_rows
                 GROUP BY rule, stage, status ORDER BY rule, stage, status",
            )
            .op("prepare summarizing violations")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(SummaryRow {
                    rule: RuleId::new(row.get::<_, String>(0)?),
                    stage: row.get::<_, Option<String>>(1)?.map(StageId::new),
                    status: get_named(row, 2, ViolationStatus::parse)?,
                    count: row.get(3)?,
                })
            })
            .op("summarize violations")?
            .collect::<Result<_, _>>()
            .op("summarize violations")?;
        Ok(rows)
    }

    /// How many violations are open, by connector and rule, ordered so.
    /// Acknowledged, suppressed and resolved ones are not counted: this is
    /// what still waits for someone.
    pub fn open_violations_by_rule(&self) -> Result<Vec<(ConnectorName, RuleId, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT connector, rule, count(*) FROM violation_rows WHERE status = 'open'
                 GROUP BY connector, rule ORDER BY connector, rule",
            )
            .op("prepare counting open violations")?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    ConnectorName::new(row.get::<_, String>(0)?),
                    RuleId::new(row.get::<_, String>(1)?),
                    row.get(2)?,
                ))
            })
            .op("count open violations")?
            .collect::<Result<_, _>>()
            .op("count open violations")?;
        Ok(rows)
    }

    /// What one audit run did and where the log stands, by rule and stage:
    /// the run's openings and resolutions from its events, and the current
    /// count of each status.
    pub fn run_summary(&self, run: RunId) -> Result<Vec<RunSummaryRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.rule, v.stage, e.kind, count(*) FROM violation_events e
                 JOIN violations v ON v.id = e.violation_id
                 WHERE e.run_id = ?1 GROUP BY v.rule, v.stage, e.kind",
            )
            .op("prepare summarizing a run")?;
        let events: Vec<(RuleId, Option<StageId>, EventKind, u64)> = stmt
            .query_map([run.0], |row| {
                Ok((
                    RuleId::new(row.get::<_, String>(0)?),
                    row.get::<_, Option<String>>(1)?.map(StageId::new),
                    get_named(row, 2, EventKind::parse)?,
                    row.get(3)?,
                ))
            })
            .op("summarize a run")?
            .collect::<Result<_, _>>()
            .op("summarize a run")?;
        let mut merged: std::collections::BTreeMap<(RuleId, Option<StageId>), RunSummaryRow> =
            std::collections::BTreeMap::new();
        for (rule, stage, kind, count) in events {
            let row = run_summary_slot(&mut merged, &rule, &stage);
            match kind {
                EventKind::Opened | EventKind::Reopened | EventKind::Unsuppressed => {
                    row.new += count
                }
                EventKind::Resolved => row.resolved += count,
                EventKind::Acknowledged | EventKind::Suppressed => {}
            }
        }
        for summary in self.violation_summary()? {
            let row = run_summary_slot(&mut merged, &summary.rule, &summary.stage);
            match summary.status {
                ViolationStatus::Open => row.open += summary.count,
                ViolationStatus::Acknowledged => row.acknowledged += summary.count,
                ViolationStatus::Suppressed => row.suppressed += summary.count,
                ViolationStatus::Resolved => {}
            }
        }
        Ok(merged
            .into_values()
            .filter(|r| r.new + r.resolved + r.open + r.acknowledged + r.suppressed > 0)
            .collect())
    }
}

fn run_summary_slot<'m>(
    rows: &'m mut std::collections::BTreeMap<(RuleId, Option<StageId>), RunSummaryRow>,
    rule: &RuleId,
    stage: &Option<StageId>,
) -> &'m mut RunSummaryRow {
    rows.entry((rule.clone(), stage.clone()))
        .or_insert_with(|| RunSummaryRow {
            rule: rule.clone(),
            stage: stage.clone(),
            new: 0,
            resolved: 0,
            open: 0,
            acknowledged: 0,
            suppressed: 0,
        })
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListOrder {
    /// The filter's [`Sort`].
    Sorted,
    /// By id, scanning the table (`NOT INDEXED`): never a sort, whatever
    /// the filter.
    Id,
}

/// Past this many rows, a list walks the order's index rather than sort
/// the rows its filter selects.
pub(super) const FEW: u64 = 1_000;

/// Whether `filter` names a column an index other than the order's can
/// find rows by (a status alone does not narrow: most rows are open).
fn narrows(filter: &ViolationFilter) -> bool {
    filter.rule.is_some()
        || filter.stage.is_some()
        || filter.owner_id.is_some()
        || filter.connector.is_some()
        || filter
            .statuses
            .iter()
            .any(|s| !matches!(s, ViolationStatus::Open | ViolationStatus::Acknowledged))
}

/// The WHERE clause of `filter`, its limit aside.
fn filter_clause(filter: &ViolationFilter) -> Where {
    filter_on(filter, "", "", "")
}

/// [`filter_clause`] with each column written `{prefix}column`, but the
/// status `{status_prefix}status` and the rule `{rule_prefix}rule`: a `+`
/// keeps SQLite from answering a filter through an index, for a list that
/// must walk the rows in the order of another index rather than sort them.
pub(super) fn filter_on(
    filter: &ViolationFilter,
    prefix: &str,
    status_prefix: &str,
    rule_prefix: &str,
) -> Where {
    let mut query = Where::default();
    filter_into(&mut query, filter, prefix, status_prefix, rule_prefix);
    if filter.one_per_record {
        // A row is its record's first when no row of the same record that
        // the filter selects comes before it (through the index by record:
        // a record has a few rows). A row stored without its record is its
        // own.
        let outer = query.clauses.len();
        // `+` keeps the filter's columns from SQLite's choice of index for
        // `w`: only the index by record finds a record's few rows; the
        // status index would read every row of the status, for each row.
        filter_into(&mut query, filter, "+w.", "+w.", "+w.");
        let siblings: String = query
            .clauses
            .split_off(outer)
            .into_iter()
            .map(|clause| format!(" AND {clause}"))
            .collect();
        query.clauses.push(format!(
            "NOT EXISTS (SELECT 1 FROM violation_rows w \
             WHERE w.record_rowid = violation_rows.record_rowid AND {}{siblings})",
            filter.sort.before("+w.", "violation_rows.")
        ));
    }
    query
}

/// Appends `filter`'s clauses to `query`, as [`filter_on`] writes them.
fn filter_into(
    query: &mut Where,
    filter: &ViolationFilter,
    prefix: &str,
    status_prefix: &str,
    rule_prefix: &str,
) {
    if !filter.statuses.is_empty() {
        let marks: Vec<String> = filter
            .statuses
            .iter()
            .map(|status| query.bind(Value::Text(status.as_str().to_owned())))
            .collect();
        query
            .clauses
            .push(format!("{status_prefix}status IN ({})", marks.join(", ")));
    }
    let text = |s: &str| Value::Text(s.to_owned());
    if let Some(rule) = &filter.rule {
        query.push(&format!("{rule_prefix}rule ="), text(rule.as_str()));
    }
    if let Some(stage) = &filter.stage {
        query.push(&format!("{prefix}stage ="), text(stage.as_str()));
    }
    if let Some(owner) = &filter.owner_id {
        query.push(&format!("{prefix}owner_id ="), text(owner.as_str()));
    }
    if let Some(connector) = &filter.connector {
        query.push(&format!("{prefix}connector ="), text(connector.as_str()));
    }
    if let Some(since) = filter.since {
        query.push(&format!("{prefix}first_seen >="), Value::Text(ts(since)));
    }
    if let Some(severity) = filter.min_severity {
        query.push(
            &format!("{prefix}severity >="),
            Value::Integer(severity_rank(severity)),
        );
    }
    if let Some(needle) = filter
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let lower = query.bind(Value::Text(needle.to_ascii_lowercase()));
        let exact = query.bind(Value::Text(needle.to_owned()));
        query.clauses.push(format!(
            "(instr(lower({prefix}record_name), {lower}) > 0 \
              OR instr(lower({prefix}message), {lower}) > 0 OR {prefix}record_id = {exact})"
        ));
    }
}

/// The rows of `ids`, in `sort`'s order.
pub(super) fn rows_of_ids(ids: &[i64], sort: Sort) -> (String, Vec<Value>) {
    (
        format!(
            "SELECT {VIOLATION_COLUMNS} FROM violations
             WHERE id IN (SELECT value FROM json_each(?1))
             ORDER BY {}",
            sort.order_by()
        ),
        vec![Value::Text(
            serde_json::Value::from(ids.to_vec()).to_string(),
        )],
    )
}

/// The violations whose fingerprint starts with `?1` (`?2` is `?1` and
/// "g"), through the index of the fingerprints' first 12 characters.
fn by_prefix_sql() -> String {
    format!(
        "SELECT {VIOLATION_COLUMNS} FROM violations
         WHERE substr(fingerprint, 1, 12) >= substr(?1, 1, 12)
           AND substr(fingerprint, 1, 12) < substr(?1, 1, 12) || 'g'
           AND fingerprint >= ?1 AND fingerprint < ?2
         ORDER BY fingerprint LIMIT 2"
    )
}

/// The query of a list, with its parameters.
fn list_sql(filter: &ViolationFilter, order: ListOrder) -> (String, Vec<Value>) {
    debug_assert!(
        !filter.one_per_record,
        "one row per record is read by pages, through `violation_rows`"
    );
    let (mut query, order_by) = match order {
        ListOrder::Sorted => (filter_clause(filter), filter.sort.order_by()),
        ListOrder::Id => (filter_on(filter, "+", "+", "+"), "id"),
    };
    let mut sql = format!(
        "SELECT {VIOLATION_COLUMNS} FROM violations{} ORDER BY {order_by}",
        query.sql()
    );
    if let Some(limit) = filter.limit {
        let limit = i64::try_from(limit.get()).unwrap_or(i64::MAX);
        let mark = query.bind(Value::Integer(limit));
        sql.push_str(&format!(" LIMIT {mark}"));
    }
    (sql, query.values)
}

/// One severity's share of a page of `filter`'s list: the query of the
/// ids of at most `room` of its rows, newest first, after the list's
/// position; `None` for a severity the filter or the position leaves out.
fn level_sql(
    filter: &ViolationFilter,
    severity: Severity,
    room: usize,
) -> Option<(String, Vec<Value>)> {
    if filter.min_severity.is_some_and(|least| severity < least) {
        return None;
    }
    let before = match filter.after {
        Some(after) if after.severity < severity => return None,
        Some(after) if after.severity == severity => Some(after.id),
        _ => None,
    };
    // Every filter hidden from the indexes but the rule's (an index holds
    // rule and severity): SQLite would otherwise read a connector's rows
    // through its index, say, to sort them.
    let mut query = filter_on(filter, "+", "+", "");
    let level = query.bind(Value::Integer(severity_rank(severity)));
    query.clauses.push(format!("severity = {level}"));
    if let Some(id) = before {
        let mark = query.bind(Value::Integer(id.0));
        query.clauses.push(format!("id < {mark}"));
    }
    let mark = query.bind(Value::Integer(i64::try_from(room).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT id FROM violation_rows{} ORDER BY id DESC LIMIT {mark}",
        query.sql()
    );
    Some((sql, query.values))
}

#[cfg(test)]
mod tests {
    use super::super::RunKind;
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::*;
    use crate::rules::{BuiltinRule, Violation};

    fn list(store: &Store, filter: &ViolationFilter) -> Vec<String> {
        let mut ids = Vec::new();
        store
            .list_violations(filter, |row| -> Result<(), StoreError> {
                ids.push(format!(
                    "{}:{}",
                    row.violation.record_id, row.violation.rule
                ));
                Ok(())
            })
            .unwrap();
        ids
    }

    /// Records 1 to `records`, each breaking every rule of `rules`, in
    /// that order.
    fn each_of(records: usize, rules: &[BuiltinRule]) -> Vec<Violation> {
        (1..=records)
            .flat_map(|i| {
                rules
                    .iter()
                    .map(move |rule| violation(&i.to_string(), *rule, None))
            })
            .collect()
    }

    /// SQLite's plan of one severity's share of a page of `filter`'s list.
    fn level_plan(test: &TestStore, filter: &ViolationFilter, severity: Severity) -> String {
        let (sql, values) = level_sql(filter, severity, 51).expect("the severity is listed");
        test.plan(&sql, params_from_iter(values)).join(" | ")
    }

    #[test]
    fn a_page_after_a_position_seeks_its_severity_and_sorts_nothing() {
        let test = TestStore::audited(&[violation("1", BuiltinRule::MissingOwner, None)]);
        let filter = ViolationFilter {
            statuses: vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            connector: Some(hubspot()),
            owner_id: Some(OwnerId::new("u7")),
            after: Some(ListPosition {
                severity: Severity::High,
                id: ViolationId(9),
            }),
            limit: NonZeroUsize::new(51),
            ..ViolationFilter::default()
        };
        let plan = level_plan(&test, &filter, Severity::High);
        assert!(
            plan.contains("USING INDEX violation_rows_severity (severity=? AND rowid<?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        assert!(level_sql(&filter, Severity::Low, 51).is_some());
    }

    #[test]
    fn a_rules_page_seeks_the_rule_at_each_severity() {
        let test = TestStore::audited(&[violation("1", BuiltinRule::MissingOwner, None)]);
        let filter = ViolationFilter {
            rule: Some(BuiltinRule::DuplicateRecord.id()),
            limit: NonZeroUsize::new(51),
            ..ViolationFilter::default()
        };
        let plan = level_plan(&test, &filter, Severity::High);
        assert!(
            plan.contains("INDEX violation_rows_rule_severity (rule=? AND severity=?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn severities_above_a_position_or_below_the_least_asked_are_not_read() {
        let filter = ViolationFilter {
            min_severity: Some(Severity::Medium),
            after: Some(ListPosition {
                severity: Severity::Medium,
                id: ViolationId(9),
            }),
            ..ViolationFilter::default()
        };
        assert!(level_sql(&filter, Severity::High, 51).is_none());
        assert!(level_sql(&filter, Severity::Medium, 51).is_some());
        assert!(level_sql(&filter, Severity::Low, 51).is_none());
    }

    #[test]
    fn pages_after_a_position_continue_where_the_last_ended() {
        let found = each_of(5, &[BuiltinRule::MissingOwner, BuiltinRule::Stalled]);
        let test = TestStore::audited(&found);
        let whole = list(&test.store, &ViolationFilter::default());
        assert_eq!(paged(&test.store, &ViolationFilter::default(), 3), whole);
        assert_eq!(whole.len(), 10);
    }

    /// Every row of `filter`'s list, read `size` a page through
    /// positions, at most 20 pages.
    fn paged(store: &Store, filter: &ViolationFilter, size: usize) -> Vec<String> {
        let mut filter = ViolationFilter {
            limit: NonZeroUsize::new(size),
            ..filter.clone()
        };
        let mut rows = Vec::new();
        for _ in 0..20 {
            let mut last = None;
            store
                .list_violations(&filter, |row| -> Result<(), StoreError> {
                    rows.push(format!(
                        "{}:{}",
                        row.violation.record_id, row.violation.rule
                    ));
                    last = Some(ListPosition {
                        severity: row.violation.severity,
                        id: row.id,
                    });
                    Ok(())
                })
                .unwrap();
            match last {
                Some(position) => filter.after = Some(position),
                None => break,
            }
        }
        rows
    }

    #[test]
    fn pages_of_a_filter_that_selects_few_rows_continue_where_the_last_ended() {
        let found = each_of(
            5,
            &[
                BuiltinRule::MissingOwner,
                BuiltinRule::Stalled,
                BuiltinRule::DuplicateRecord,
            ],
        );
        let test = TestStore::audited(&found);
        // A rule narrows and selects few rows: they are read by their own
        // index and sorted, the other path of a page.
        let filter = ViolationFilter {
            rule: Some(BuiltinRule::Stalled.id()),
            ..ViolationFilter::default()
        };
        assert!(narrows(&filter));
        let whole = list(&test.store, &filter);
        assert_eq!(whole.len(), 5);
        assert_eq!(paged(&test.store, &filter, 2), whole);
    }

    #[test]
    fn a_list_newest_or_oldest_first_pages_in_id_order_whatever_the_severity() {
        let found = each_of(
            4,
            &[BuiltinRule::DuplicateRecord, BuiltinRule::MissingOwner],
        );
        let test = TestStore::audited(&found);
        let newest = ViolationFilter {
            sort: Sort::Newest,
            ..ViolationFilter::default()
        };
        let oldest = ViolationFilter {
            sort: Sort::Oldest,
            ..ViolationFilter::default()
        };

        let mut ascending = paged(&test.store, &oldest, 3);
        assert_eq!(ascending[..2], ["1:duplicate_record", "1:missing_owner"]);
        assert_eq!(ascending.len(), 8);
        ascending.reverse();
        assert_eq!(paged(&test.store, &newest, 3), ascending);
        assert_eq!(list(&test.store, &newest), ascending);
    }

    #[test]
    fn a_capped_count_says_the_count_up_to_its_cap_and_nothing_past_it() {
        let found = each_of(4, &[BuiltinRule::MissingOwner]);
        let test = TestStore::audited(&found);
        let all = ViolationFilter::default();
        assert_eq!(test.store.count_violations_upto(&all, 4).unwrap(), Some(4));
        assert_eq!(test.store.count_violations_upto(&all, 10).unwrap(), Some(4));
        assert_eq!(test.store.count_violations_upto(&all, 3).unwrap(), None);
    }

    #[test]
    fn a_text_filter_matches_record_names_in_any_case_and_record_ids() {
        let test = TestStore::audited(&[
            violation("17", BuiltinRule::MissingOwner, None),
            violation("28", BuiltinRule::MissingOwner, None),
        ]);
        let text = |t: &str| ViolationFilter {
            text: Some(t.to_owned()),
            ..ViolationFilter::default()
        };
        assert_eq!(
            list(&test.store, &text("DEAL 17")),
            vec!["17:missing_owner"]
        );
        assert_eq!(list(&test.store, &text("28")), vec!["28:missing_owner"]);
        assert_eq!(
            list(&test.store, &text("nothing like it")),
            Vec::<String>::new()
        );
        assert_eq!(test.store.count_violations(&text("deal")).unwrap(), 2);
    }

    #[test]
    fn a_violation_is_found_by_id_fingerprint_or_unique_prefix() {
        let v = violation("1", BuiltinRule::MissingOwner, None);
        let test = TestStore::audited(std::slice::from_ref(&v));
        let fp = v.fingerprint.as_str();
        let by_id = test.store.violation("1").unwrap().unwrap();
        assert_eq!(by_id.violation.fingerprint, v.fingerprint);
        for key in [fp, &fp[..6], &fp[..10].to_uppercase()] {
            assert_eq!(
                test.store.violation(key).unwrap().map(|r| r.id),
                Some(by_id.id),
                "{key}"
            );
        }
        assert_eq!(test.store.violation(&fp[..5]).unwrap(), None, "too short");
        assert_eq!(test.store.violation("2").unwrap(), None);
        assert_eq!(test.store.violation("zzzzzzzz").unwrap(), None);
    }

    #[test]
    fn an_ambiguous_fingerprint_prefix_is_refused() {
        // Search for two fingerprints that share their first six characters.
        let mut seen: std::collections::HashMap<String, Violation> = Default::default();
        let pair = (0..100_000)
            .find_map(|i| {
                let v = violation(&i.to_string(), BuiltinRule::Stalled, None);
                let prefix = v.fingerprint.as_str()[..6].to_owned();
                seen.insert(prefix.clone(), v.clone())
                    .map(|earlier| (earlier, v, prefix))
            })
            .expect("a shared prefix among 100000 fingerprints");
        let (a, b, prefix) = pair;
        let test = TestStore::audited(&[a, b]);
        assert!(matches!(
            test.store.violation(&prefix),
            Err(StoreError::AmbiguousPrefix(p)) if p == prefix
        ));
    }

    #[test]
    fn open_violations_are_counted_by_connector_and_rule_leaving_out_acknowledged_ones() {
        let found = [
            violation("1", BuiltinRule::MissingOwner, None),
            violation("2", BuiltinRule::MissingOwner, None),
            violation("3", BuiltinRule::MissingOwner, None),
            violation("1", BuiltinRule::Stalled, Some("decision")),
        ];
        let mut test = TestStore::audited(&found);
        let stalled = test.store.violation(found[3].fingerprint.as_str()).unwrap();
        test.store
            .acknowledge(stalled.unwrap().id, "ann", "known", day(1, 9))
            .unwrap();
        assert_eq!(
            test.store.open_violations_by_rule().unwrap(),
            [(hubspot(), BuiltinRule::MissingOwner.id(), 3)]
        );
        assert!(
            TestStore::new()
                .store
                .open_violations_by_rule()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn acknowledging_a_resolved_violation_is_refused() {
        let v = violation("1", BuiltinRule::MissingOwner, None);
        let mut test = TestStore::audited(std::slice::from_ref(&v));
        let run = test
            .store
            .begin_run(RunKind::Audit, None, day(2, 2))
            .unwrap();
        test.store
            .begin_audit(run, &[hubspot()], day(2, 2), day(2, 2).date_naive())
            .unwrap()
            .finish()
            .unwrap();
        let id = ViolationId(1);
        let err = test
            .store
            .acknowledge(id, "ann", "known", day(2, 9))
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::InvalidTransition {
                status: ViolationStatus::Resolved,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "cannot acknowledge violation 1: it is resolved"
        );
        assert_eq!(
            test.store.violation_events(id).unwrap().len(),
            2,
            "no event written"
        );
    }

    #[test]
    fn admin_actions_need_a_reason_and_an_existing_violation() {
        let v = violation("1", BuiltinRule::MissingOwner, None);
        let mut test = TestStore::audited(std::slice::from_ref(&v));
        let err = test
            .store
            .acknowledge(ViolationId(1), "ann", "  ", day(2, 0))
            .unwrap_err();
        assert!(matches!(err, StoreError::ReasonRequired { .. }));
        let err = test
            .store
            .suppress(ViolationId(9), "ann", "why", None, day(2, 0))
            .unwrap_err();
        assert!(matches!(err, StoreError::ViolationNotFound(ViolationId(9))));
    }

    #[test]
    fn reopen_undoes_an_acknowledgement_or_a_suppression_with_events() {
        let v = violation("1", BuiltinRule::MissingOwner, None);
        let mut test = TestStore::audited(std::slice::from_ref(&v));
        let store = &mut test.store;
        let id = ViolationId(1);
        assert!(matches!(
            store.reopen(id, "ann", "oops", day(2, 0)),
            Err(StoreError::InvalidTransition {
                status: ViolationStatus::Open,
                ..
            })
        ));
        store.acknowledge(id, "ann", "intended", day(2, 0)).unwrap();
        store
            .reopen(id, "bob", "not intended after all", day(2, 1))
            .unwrap();
        store
            .suppress(
                id,
                "ann",
                "until the migration",
                Some(day(9, 0).date_naive()),
                day(2, 2),
            )
            .unwrap();
        let row = store.violation_by_id(id).unwrap().unwrap();
        assert_eq!(row.suppressed_until, Some(day(9, 0).date_naive()));
        assert_eq!(row.status_reason.as_deref(), Some("until the migration"));
        store
            .reopen(id, "bob", "migration done", day(3, 0))
            .unwrap();
        let row = store.violation_by_id(id).unwrap().unwrap();
        assert_eq!(
            (row.status, row.suppressed_until),
            (ViolationStatus::Open, None)
        );

        let events = store.violation_events(id).unwrap();
        let trail: Vec<(EventKind, &str, Option<&str>)> = events
            .iter()
            .map(|e| (e.kind, e.actor.as_str(), e.reason.as_deref()))
            .collect();
        assert_eq!(
            trail,
            vec![
                (EventKind::Opened, "journeyd", None),
                (EventKind::Acknowledged, "ann", Some("intended")),
                (EventKind::Reopened, "bob", Some("not intended after all")),
                (EventKind::Suppressed, "ann", Some("until the migration")),
                (EventKind::Unsuppressed, "bob", Some("migration done")),
            ]
        );
        assert!(events[1..].iter().all(|e| e.run_id.is_none()));
    }

    #[test]
    fn list_filters_narrow_and_order_by_severity_then_newest_first() {
        let mut owned = violation("2", BuiltinRule::OwnerRoleMismatch, Some("decision"));
        owned.owner_id = Some(OwnerId::new("u7"));
        let found = [
            violation("1", BuiltinRule::DuplicateRecord, None),
            owned,
            violation("3", BuiltinRule::MissingOwner, Some("decision")),
            violation("3", BuiltinRule::Stalled, Some("decision")),
        ];
        let mut test = TestStore::audited(&found);
        test.store
            .acknowledge(ViolationId(3), "ann", "known", day(2, 0))
            .unwrap();
        let store = &test.store;

        let all = list(store, &ViolationFilter::default());
        assert_eq!(
            all,
            vec![
                "3:missing_owner",
                "3:stalled",
                "2:owner_role_mismatch",
                "1:duplicate_record"
            ]
        );
        let open = ViolationFilter {
            statuses: vec![ViolationStatus::Open],
            ..Default::default()
        };
        assert_eq!(list(store, &open).len(), 3);
        let either = ViolationFilter {
            statuses: vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            ..Default::default()
        };
        assert_eq!(list(store, &either).len(), 4);
        let rule = ViolationFilter {
            rule: Some(BuiltinRule::Stalled.id()),
            ..Default::default()
        };
        assert_eq!(list(store, &rule), vec!["3:stalled"]);
        let stage = ViolationFilter {
            stage: Some(StageId::new("decision")),
            ..Default::default()
        };
        assert_eq!(list(store, &stage).len(), 3);
        let owner = ViolationFilter {
            owner_id: Some(OwnerId::new("u7")),
            ..Default::default()
        };
        assert_eq!(list(store, &owner), vec!["2:owner_role_mismatch"]);
        let severe = ViolationFilter {
            min_severity: Some(Severity::Medium),
            ..Default::default()
        };
        assert_eq!(list(store, &severe).len(), 3);
        let other = ViolationFilter {
            connector: Some(ConnectorName::new("eu")),
            ..Default::default()
        };
        assert!(list(store, &other).is_empty());
        let later = ViolationFilter {
            since: Some(day(1, 3)),
            ..Default::default()
        };
        assert!(list(store, &later).is_empty(), "first seen before");
        let limited = ViolationFilter {
            statuses: vec![ViolationStatus::Open],
            min_severity: Some(Severity::Medium),
            limit: NonZeroUsize::new(1),
            ..Default::default()
        };
        assert_eq!(list(store, &limited), vec!["3:stalled"]);
    }

    #[test]
    fn a_list_stops_at_the_callers_error() {
        let found = [
            violation("1", BuiltinRule::MissingOwner, None),
            violation("2", BuiltinRule::MissingOwner, None),
        ];
        let test = TestStore::audited(&found);
        let mut calls = 0;
        let result = test
            .store
            .list_violations(&ViolationFilter::default(), |_| {
                calls += 1;
                Err(StoreError::Closed)
            });
        assert!(matches!(result, Err(StoreError::Closed)));
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_summary_counts_by_rule_stage_and_status() {
        let found = [
            violation("1", BuiltinRule::Stalled, Some("decision")),
            violation("2", BuiltinRule::Stalled, Some("decision")),
            violation("3", BuiltinRule::MissingOwner, None),
        ];
        let mut test = TestStore::audited(&found);
        test.store
            .acknowledge(ViolationId(2), "ann", "known", day(2, 0))
            .unwrap();
        let summary: Vec<(String, Option<String>, ViolationStatus, u64)> = test
            .store
            .violation_summary()
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.rule.to_string(),
                    r.stage.map(|s| s.to_string()),
                    r.status,
                    r.count,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("missing_owner".into(), None, ViolationStatus::Open, 1),
                (
                    "stalled".into(),
                    Some("decision".into()),
                    ViolationStatus::Acknowledged,
                    1
                ),
                (
                    "stalled".into(),
                    Some("decision".into()),
                    ViolationStatus::Open,
                    1
                ),
            ]
        );
    }

    /// Every filter an export can be given, alone and together.
    fn every_filter() -> Vec<ViolationFilter> {
        let all = ViolationFilter {
            statuses: vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            rule: Some(BuiltinRule::Stalled.id()),
            stage: Some(StageId::new("decision")),
            owner_id: Some(OwnerId::new("u7")),
            connector: Some(hubspot()),
            since: Some(day(1, 0)),
            min_severity: Some(Severity::Medium),
            text: Some("deal".into()),
            after: None,
            limit: None,
            sort: Sort::Severity,
            one_per_record: false,
        };
        vec![
            ViolationFilter::default(),
            ViolationFilter {
                statuses: all.statuses.clone(),
                ..Default::default()
            },
            ViolationFilter {
                statuses: vec![ViolationStatus::Resolved],
                ..Default::default()
            },
            ViolationFilter {
                rule: all.rule.clone(),
                ..Default::default()
            },
            ViolationFilter {
                owner_id: all.owner_id.clone(),
                ..Default::default()
            },
            ViolationFilter {
                connector: all.connector.clone(),
                statuses: vec![ViolationStatus::Open],
                ..Default::default()
            },
            ViolationFilter {
                min_severity: all.min_severity,
                ..Default::default()
            },
            all,
        ]
    }

    #[test]
    fn a_fingerprint_prefix_is_found_through_the_fingerprint_index() {
        let test = TestStore::audited(&[violation("1", BuiltinRule::MissingOwner, None)]);
        let plan = test.plan(
            &by_prefix_sql(),
            params!["0123456789abcdef", "0123456789abcdefg"],
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("violation_rows_fingerprint")),
            "{plan:?}"
        );
    }

    #[test]
    fn an_export_stream_sorts_nothing_whatever_its_filter() {
        let test = TestStore::audited(&[violation("1", BuiltinRule::MissingOwner, None)]);
        for filter in every_filter() {
            let (sql, values) = list_sql(&filter, ListOrder::Id);
            let plan = test.plan(&sql, params_from_iter(values));
            assert!(
                plan.iter().all(|step| !step.contains("TEMP B-TREE")),
                "{filter:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn an_export_stream_returns_what_the_list_does_in_id_order() {
        let found = [
            violation("1", BuiltinRule::DuplicateRecord, None),
            violation("2", BuiltinRule::OwnerRoleMismatch, Some("decision")),
            violation("3", BuiltinRule::MissingOwner, Some("decision")),
            violation("3", BuiltinRule::Stalled, Some("decision")),
        ];
        let test = TestStore::audited(&found);
        for filter in every_filter() {
            let mut listed = Vec::new();
            test.store
                .list_violations(&filter, |row| -> Result<(), StoreError> {
                    listed.push(row.id);
                    Ok(())
                })
                .unwrap();
            listed.sort();
            let mut streamed = Vec::new();
            test.store
                .stream_violations(&filter, |row| -> Result<(), StoreError> {
                    streamed.push(row.id);
                    Ok(())
                })
                .unwrap();
            assert_eq!(streamed, listed, "{filter:?}");
            assert_eq!(
                test.store.count_violations(&filter).unwrap(),
                listed.len() as u64
            );
        }
    }

    /// A store whose violation `id` is digits that also begin another
    /// violation's fingerprint, as happens once ids reach six digits.
    fn id_shaped_like_a_fingerprint() -> (TestStore, ViolationRow, ViolationRow, String) {
        let digits = (0..10_000)
            .map(|i| violation(&format!("d{i}"), BuiltinRule::MissingOwner, None))
            .find(|v| {
                v.fingerprint.as_str()[..6]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .expect("one fingerprint in 10000 starts with six digits");
        let prefix = digits.fingerprint.as_str()[..6].to_owned();
        let mut test = TestStore::audited(std::slice::from_ref(&digits));
        let number: i64 = prefix.parse().unwrap();
        test.store
            .conn
            .execute(
                "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'violation_rows'",
                [number - 1],
            )
            .unwrap();
        let other = violation("other", BuiltinRule::Stalled, None);
        test.store
            .upsert_records(&hubspot(), &[record(other.object, "other")], day(2, 0))
            .unwrap();
        let run = test
            .store
            .begin_run(RunKind::Audit, None, day(2, 2))
            .unwrap();
        let mut writer = test
            .store
            .begin_audit(run, &[hubspot()], day(2, 2), day(2, 2).date_naive())
            .unwrap();
        writer.record(&[digits.clone(), other.clone()]).unwrap();
        writer.finish().unwrap();
        let by_fingerprint = test
            .store
            .violation(digits.fingerprint.as_str())
            .unwrap()
            .unwrap();
        let by_id = test
            .store
            .violation(other.fingerprint.as_str())
            .unwrap()
            .unwrap();
        assert_eq!(by_id.id, ViolationId(number));
        (test, by_id, by_fingerprint, prefix)
    }

    #[test]
    fn digits_that_are_an_id_and_a_fingerprint_prefix_name_neither() {
        let (test, by_id, by_fingerprint, prefix) = id_shaped_like_a_fingerprint();
        let err = test.store.violation(&prefix).unwrap_err();
        match &err {
            StoreError::IdOrFingerprint {
                key,
                id,
                fingerprint,
            } => {
                assert_eq!(key, &prefix);
                assert_eq!(id, &(by_id.id, by_id.violation.fingerprint.to_string()));
                assert_eq!(
                    fingerprint,
                    &(
                        by_fingerprint.id,
                        by_fingerprint.violation.fingerprint.to_string()
                    )
                );
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            test.store.violation(&prefix[..5]).unwrap().map(|r| r.id),
            None,
            "five digits are too short for a prefix, and no id"
        );
    }

    #[test]
    fn a_fingerprint_prefix_of_digits_that_is_no_id_finds_its_violation() {
        let digits = (0..10_000)
            .map(|i| violation(&format!("d{i}"), BuiltinRule::MissingOwner, None))
            .find(|v| {
                v.fingerprint.as_str()[..6]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .expect("one fingerprint in 10000 starts with six digits");
        let test = TestStore::audited(std::slice::from_ref(&digits));
        let found = test
            .store
            .violation(&digits.fingerprint.as_str()[..6])
            .unwrap()
            .unwrap();
        assert_eq!(found.violation.fingerprint, digits.fingerprint);
    }

    #[test]
    fn the_values_of_a_filter_column_are_those_the_log_holds() {
        let found = [
            violation("1", BuiltinRule::Stalled, Some("decision")),
            violation("2", BuiltinRule::MissingOwner, None),
        ];
        let test = TestStore::audited(&found);
        assert_eq!(
            test.store.violation_values(FilterColumn::Rule).unwrap(),
            ["missing_owner", "stalled"]
        );
        assert_eq!(
            test.store.violation_values(FilterColumn::Stage).unwrap(),
            ["decision"]
        );
        assert_eq!(
            test.store
                .violation_values(FilterColumn::Connector)
                .unwrap(),
            [hubspot().to_string()]
        );
    }
}
