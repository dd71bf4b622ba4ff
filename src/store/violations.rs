//! The violations log: rows by fingerprint, the event trail of every status
//! change, admin actions (acknowledge, suppress, reopen), lookup by id or
//! fingerprint, and streaming lists for exports of any size.
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
use crate::rules::{Fingerprint, RuleId, Severity, Violation};
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
    pub limit: Option<NonZeroUsize>,
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

pub(super) const VIOLATION_COLUMNS: &str = "id, fingerprint, connector, object, record_id, record_name, \
     record_url, rule, severity, stage, owner_id, owner_role, message, action, status, \
     status_reason, suppressed_until, first_seen, last_seen, last_run, resolved_at";

pub(super) fn violation_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ViolationRow> {
    let action = row.get_ref(13)?.as_str()?;
    let action = serde_json::from_str(action).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Text, Box::new(err))
    })?;
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
        message: row.get(12)?,
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
struct Where {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Where {
    /// Adds a parameter; returns its placeholder.
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    /// Adds `<condition> <placeholder>`.
    fn push(&mut self, condition: &str, value: Value) {
        let mark = self.bind(value);
        self.clauses.push(format!("{condition} {mark}"));
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
    /// An id wins over a fingerprint prefix made of the same digits.
    pub fn violation(&self, id_or_fingerprint: &str) -> Result<Option<ViolationRow>, StoreError> {
        let key = id_or_fingerprint.trim();
        if let Ok(id) = key.parse::<i64>()
            && let Some(row) = self.violation_by_id(ViolationId(id))?
        {
            return Ok(Some(row));
        }
        let prefix = key.to_ascii_lowercase();
        if prefix.len() < MIN_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        // Fingerprints are lowercase hex: every one starting with `prefix`
        // sorts in [prefix, prefix + "g").
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS} FROM violations
                 WHERE fingerprint >= ?1 AND fingerprint < ?2 ORDER BY fingerprint LIMIT 2"
            ))
            .op("prepare finding a violation")?;
        let mut rows = stmt
            .query_map(params![prefix, format!("{prefix}g")], violation_row)
            .op("find a violation")?;
        let first = rows.next().transpose().op("find a violation")?;
        if rows.next().is_some() {
            return Err(StoreError::AmbiguousPrefix(prefix));
        }
        Ok(first)
    }

    pub fn violation_by_id(&self, id: ViolationId) -> Result<Option<ViolationRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS} FROM violations WHERE id = ?1"
            ))
            .op("prepare reading a violation")?
            .query_row([id], violation_row)
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
            .prepare_cached("SELECT status FROM violations WHERE id = ?1")
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
            "UPDATE violations SET status = ?2, status_reason = ?3, suppressed_until = ?4
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
    /// first, then by id. Memory does not grow with the number of rows; `f`
    /// can stop the stream by returning an error, which is passed back.
    pub fn list_violations<E>(
        &self,
        filter: &ViolationFilter,
        mut f: impl FnMut(ViolationRow) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        let mut query = Where::default();
        if !filter.statuses.is_empty() {
            let marks: Vec<String> = filter
                .statuses
                .iter()
                .map(|status| query.bind(Value::Text(status.as_str().to_owned())))
                .collect();
            query
                .clauses
                .push(format!("status IN ({})", marks.join(", ")));
        }
        let text = |s: &str| Value::Text(s.to_owned());
        if let Some(rule) = &filter.rule {
            query.push("rule =", text(rule.as_str()));
        }
        if let Some(stage) = &filter.stage {
            query.push("stage =", text(stage.as_str()));
        }
        if let Some(owner) = &filter.owner_id {
            query.push("owner_id =", text(owner.as_str()));
        }
        if let Some(connector) = &filter.connector {
            query.push("connector =", text(connector.as_str()));
        }
        if let Some(since) = filter.since {
            query.push("first_seen >=", Value::Text(ts(since)));
        }
        if let Some(severity) = filter.min_severity {
            query.push("severity >=", Value::Integer(severity_rank(severity)));
        }
        let mut sql = format!("SELECT {VIOLATION_COLUMNS} FROM violations");
        if !query.clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&query.clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY severity DESC, id");
        if let Some(limit) = filter.limit {
            let limit = i64::try_from(limit.get()).unwrap_or(i64::MAX);
            let mark = query.bind(Value::Integer(limit));
            sql.push_str(&format!(" LIMIT {mark}"));
        }
        let values = query.values;
        let mut stmt = self.conn.prepare(&sql).op("prepare listing violations")?;
        let mut rows = stmt.query(params_from_iter(values)).op("list violations")?;
        while let Some(row) = rows.next().op("list violations")? {
            f(violation_row(row).op("read a listed violation")?)?;
        }
        Ok(())
    }

    /// Counts by rule, stage and status.
    pub fn violation_summary(&self) -> Result<Vec<SummaryRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rule, stage, status, count(*) FROM violations
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
                "SELECT connector, rule, count(*) FROM violations WHERE status = 'open'
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

#[cfg(test)]
mod tests {
    use super::super::RunKind;
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::*;
    use crate::rules::{BuiltinRule, Violation};

    /// A store holding `found` from one audit at day 1.
    fn store_with(found: &[Violation]) -> TestStore {
        let mut test = TestStore::new();
        let mut records: Vec<_> = found
            .iter()
            .map(|v| record(v.object, v.record_id.as_str()))
            .collect();
        records.dedup_by(|a, b| a.id == b.id);
        test.store
            .upsert_records(&hubspot(), &records, day(1, 0))
            .unwrap();
        let run = test
            .store
            .begin_run(RunKind::Audit, None, day(1, 2))
            .unwrap();
        let mut writer = test
            .store
            .begin_audit(run, &[hubspot()], day(1, 2), day(1, 2).date_naive())
            .unwrap();
        writer.record(found).unwrap();
        writer.finish().unwrap();
        test
    }

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

    #[test]
    fn a_violation_is_found_by_id_fingerprint_or_unique_prefix() {
        let v = violation("1", BuiltinRule::MissingOwner, None);
        let test = store_with(std::slice::from_ref(&v));
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
        let test = store_with(&[a, b]);
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
        let mut test = store_with(&found);
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
        let mut test = store_with(std::slice::from_ref(&v));
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
        let mut test = store_with(std::slice::from_ref(&v));
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
        let mut test = store_with(std::slice::from_ref(&v));
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
    fn list_filters_narrow_and_order_by_severity_then_id() {
        let mut owned = violation("2", BuiltinRule::OwnerRoleMismatch, Some("decision"));
        owned.owner_id = Some(OwnerId::new("u7"));
        let found = [
            violation("1", BuiltinRule::DuplicateRecord, None),
            owned,
            violation("3", BuiltinRule::MissingOwner, Some("decision")),
            violation("3", BuiltinRule::Stalled, Some("decision")),
        ];
        let mut test = store_with(&found);
        test.store
            .acknowledge(ViolationId(3), "ann", "known", day(2, 0))
            .unwrap();
        let store = &test.store;

        let all = list(store, &ViolationFilter::default());
        assert_eq!(
            all,
            vec![
                "3:missing_owner",
                "2:owner_role_mismatch",
                "3:stalled",
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
        assert_eq!(list(store, &limited), vec!["2:owner_role_mismatch"]);
    }

    #[test]
    fn a_list_stops_at_the_callers_error() {
        let found = [
            violation("1", BuiltinRule::MissingOwner, None),
            violation("2", BuiltinRule::MissingOwner, None),
        ];
        let test = store_with(&found);
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
        let mut test = store_with(&found);
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
}
