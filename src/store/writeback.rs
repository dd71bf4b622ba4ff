//! What the write-back planner reads, a page at a time: the open violations
//! that call for a write, the tasks of resolved violations still to
//! complete, and how many of each stand where.
//!
//! The queries sort every write the way the planner does (refused by the
//! policy, already in the CRM, already in the ledger, failed too often, or
//! due), so that a page holds only what it asks for: however many writes
//! are done already, the planner reads no more rows than it sends. A
//! write's ledger entry is found by what it does (the violation's
//! fingerprint and the request's kind, field and value) rather than by its
//! key, a hash SQL cannot compute.

use super::columns::severity_rank;
use super::violations::{VIOLATION_COLUMNS, violation_row};
use super::{SqlContext, Store, StoreError, ViolationId, ViolationRow, json_error};
use crate::rules::Severity;
use journeyd_connector::{ActionKey, ConnectorName, CrmRecord, ObjectKind, OwnerId, RecordId};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet};

/// What the write-back policy allows, and when a failed write is given up
/// on, as the queries sort writes by it.
#[derive(Debug, Clone, Copy)]
pub struct WritebackFilter<'a> {
    /// Object kinds a task may be attached to.
    pub task_objects: &'a BTreeSet<ObjectKind>,
    /// Fields that may be written, per object kind.
    pub fields: &'a BTreeMap<ObjectKind, BTreeSet<String>>,
    /// A write that failed this many times is parked, not retried.
    pub max_attempts: u32,
    /// Whether one violation's task is a write of its own; `false` when
    /// each record keeps one task, and only field writes are per violation.
    pub violation_tasks: bool,
}

impl WritebackFilter<'_> {
    /// The policy as the JSON the queries read with `json_each`: task
    /// objects, fields per object, and the kinds of planned action that
    /// are writes of one violation.
    fn bind(&self) -> (String, String, String) {
        let objects: Vec<&str> = self.task_objects.iter().map(|o| o.as_str()).collect();
        let fields: BTreeMap<&str, &BTreeSet<String>> = self
            .fields
            .iter()
            .map(|(object, fields)| (object.as_str(), fields))
            .collect();
        let kinds: &[&str] = if self.violation_tasks {
            &["task", "set_lifecycle"]
        } else {
            &["set_lifecycle"]
        };
        (
            serde_json::Value::from(objects).to_string(),
            serde_json::json!(fields).to_string(),
            serde_json::Value::from(kinds.to_vec()).to_string(),
        )
    }
}

/// Which writes a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteClass {
    /// To send: never sent, or failed fewer times than the limit.
    Due,
    /// Refused by the policy (candidates only).
    NotAllowed,
    /// Failed as many times as the limit: to park.
    ToPark,
}

impl WriteClass {
    fn as_str(self) -> &'static str {
        match self {
            WriteClass::Due => "due",
            WriteClass::NotAllowed => "not_allowed",
            WriteClass::ToPark => "to_park",
        }
    }
}

/// How many writes stand where, over candidates and completions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WritebackTally {
    /// To send, before the cap.
    pub due: u64,
    /// Refused by the policy.
    pub not_allowed: u64,
    /// Lifecycle values the CRM holds already.
    pub in_crm: u64,
    /// In the ledger already: applied, in flight, or parked.
    pub known: u64,
    /// Failed as many times as the limit.
    pub to_park: u64,
}

impl WritebackTally {
    fn add(&mut self, class: &str, n: u64) {
        match class {
            "due" => self.due += n,
            "not_allowed" => self.not_allowed += n,
            "in_crm" => self.in_crm += n,
            "known" => self.known += n,
            _ => self.to_park += n,
        }
    }
}

/// The ledger entry of a write that failed before.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedWrite {
    pub key: ActionKey,
    /// Times it was sent.
    pub attempts: u32,
    pub error: Option<String>,
}

/// An open violation that calls for a write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteCandidate {
    pub violation: ViolationRow,
    /// The record's current value of the lifecycle field (lifecycle writes
    /// only; `None` for a record the store lacks).
    pub current: Option<String>,
    /// The write's ledger entry, where it failed before.
    pub failed: Option<FailedWrite>,
    /// The record's owner in the CRM, whether they are active (`None`: not
    /// among the connector's owners), and their name.
    pub owner_id: Option<OwnerId>,
    pub owner_active: Option<bool>,
    pub owner_name: Option<String>,
}

impl WriteCandidate {
    /// Where the next page of the same class starts.
    pub fn cursor(&self) -> CandidateCursor {
        CandidateCursor {
            severity: self.violation.violation.severity,
            id: self.violation.id,
        }
    }
}

/// A place in the candidates' order: most severe first, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateCursor {
    pub severity: Severity,
    pub id: ViolationId,
}

/// A task journeyd created for a violation that has since been resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTask {
    /// The ledger key of the task's creation.
    pub task_key: ActionKey,
    /// The task's id in the CRM.
    pub task_id: String,
    pub violation: ViolationRow,
    /// The completion's ledger entry, where it failed before.
    pub failed: Option<FailedWrite>,
}

/// Every open violation of `?1` whose planned action is a write of one of
/// the kinds `?5` (JSON), with the record's current lifecycle value and
/// owner, the write's ledger entry, and its `class`, decided in the
/// planner's order: the policy (`?2` task objects, `?3` fields per object,
/// as JSON), then the CRM's value, then the ledger (`?4` the attempts after
/// which a failed write is parked).
const CANDIDATES: &str = "
    SELECT v.*,
        json_extract(r.snapshot, '$.lifecycle_status') AS current,
        l.action_key AS ledger_key, l.state AS ledger_state,
        l.attempts AS ledger_attempts, l.error AS ledger_error,
        r.owner_id AS record_owner, o.active AS owner_active, o.name AS owner_name,
        CASE
            WHEN NOT coalesce(CASE json_extract(v.action, '$.kind')
                    WHEN 'task' THEN v.object IN (SELECT value FROM json_each(?2))
                    ELSE json_extract(v.action, '$.field')
                        IN (SELECT value FROM json_each(?3, '$.' || v.object))
                END, 0) THEN 'not_allowed'
            WHEN json_extract(r.snapshot, '$.lifecycle_status')
                = json_extract(v.action, '$.value') THEN 'in_crm'
            WHEN l.state IN ('applied', 'pending', 'sent', 'parked') THEN 'known'
            WHEN l.state = 'failed' AND l.attempts >= ?4 THEN 'to_park'
            ELSE 'due'
        END AS class
    FROM violations v
    LEFT JOIN records r
        ON r.connector = v.connector AND r.object = v.object AND r.id = v.record_id
        AND r.deleted_at IS NULL
    LEFT JOIN owners o ON o.connector = v.connector AND o.id = r.owner_id
    LEFT JOIN writeback_ledger l ON l.action_key = (
        SELECT x.action_key FROM writeback_ledger x
        WHERE x.fingerprint = v.fingerprint
          AND CASE json_extract(v.action, '$.kind')
              WHEN 'task' THEN json_extract(x.request, '$.kind') = 'create_task'
              ELSE json_extract(x.request, '$.kind') = 'set_field'
                  AND json_extract(x.request, '$.field') = json_extract(v.action, '$.field')
                  AND json_extract(x.request, '$.value') = json_extract(v.action, '$.value')
          END
        LIMIT 1)
    WHERE v.connector = ?1 AND v.status = 'open'
      AND json_extract(v.action, '$.kind') IN (SELECT value FROM json_each(?5))";

/// A page of [`CANDIDATES`] of class `?6` and severity `?7`, by id from
/// just after `?8`, `?9` at most. With tasks of single violations among
/// the writes, most open violations are candidates: the page walks those
/// of its severity in id order. Without, only lifecycle writes are (of
/// which there may be none): `+` keeps the page on the index by kind of
/// write rather than every connector's open violations of that severity.
fn candidates_page_sql(violation_tasks: bool) -> String {
    let severity = if violation_tasks {
        "severity"
    } else {
        "+severity"
    };
    format!(
        "SELECT {VIOLATION_COLUMNS}, current, ledger_key, ledger_state,
             ledger_attempts, ledger_error, record_owner, owner_active, owner_name
         FROM ({CANDIDATES})
         WHERE class = ?6 AND {severity} = ?7 AND id > ?8
         ORDER BY id LIMIT ?9"
    )
}

/// Every resolved violation of `?1` whose task journeyd created (applied,
/// with its CRM id) and whose completion is neither applied nor parked,
/// with the completion's ledger entry and its `class` (`?2` the attempts
/// after which a failed write is parked). A completion in flight is
/// `known`.
const RESOLVED: &str = "
    SELECT v.*, t.action_key AS task_key, t.crm_id AS task_id,
        c.action_key AS ledger_key, c.state AS ledger_state,
        c.attempts AS ledger_attempts, c.error AS ledger_error,
        CASE
            WHEN c.state IN ('pending', 'sent') THEN 'known'
            WHEN c.state = 'failed' AND c.attempts >= ?2 THEN 'to_park'
            ELSE 'due'
        END AS class
    FROM violations v
    JOIN writeback_ledger t ON t.action_key = (
        SELECT x.action_key FROM writeback_ledger x
        WHERE x.fingerprint = v.fingerprint AND x.connector = v.connector
          AND x.state = 'applied' AND x.crm_id IS NOT NULL
          AND json_extract(x.request, '$.kind') = 'create_task'
        LIMIT 1)
    LEFT JOIN writeback_ledger c ON c.action_key = (
        SELECT y.action_key FROM writeback_ledger y
        WHERE y.fingerprint = v.fingerprint
          AND json_extract(y.request, '$.kind') = 'complete_task'
        LIMIT 1)
    WHERE v.connector = ?1 AND v.status = 'resolved'
      AND (c.state IS NULL OR c.state NOT IN ('applied', 'parked'))";

/// Reads the ledger columns from `first` on: the entry of a write that
/// failed, `None` for any other.
fn failed_write(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<FailedWrite>> {
    let state: Option<String> = row.get(first + 1)?;
    if state.as_deref() != Some("failed") {
        return Ok(None);
    }
    Ok(Some(FailedWrite {
        key: ActionKey::new(row.get::<_, String>(first)?),
        attempts: row.get(first + 2)?,
        error: row.get(first + 3)?,
    }))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// How many writes stand where: open violations of `connector` that
    /// call for one, and tasks of resolved violations still to complete.
    pub fn writeback_tally(
        &self,
        connector: &ConnectorName,
        filter: &WritebackFilter<'_>,
    ) -> Result<WritebackTally, StoreError> {
        let (objects, fields, kinds) = filter.bind();
        let mut tally = WritebackTally::default();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT class, count(*) FROM ({CANDIDATES}) GROUP BY class"
            ))
            .op("prepare counting violations to write back")?;
        let mut rows = stmt
            .query(params![
                connector.as_str(),
                objects,
                fields,
                filter.max_attempts,
                kinds
            ])
            .op("count violations to write back")?;
        while let Some(row) = rows.next().op("count violations to write back")? {
            let class: String = row.get(0).op("count violations to write back")?;
            tally.add(&class, row.get(1).op("count violations to write back")?);
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT class, count(*) FROM ({RESOLVED}) GROUP BY class"
            ))
            .op("prepare counting tasks of resolved violations")?;
        let mut rows = stmt
            .query(params![connector.as_str(), filter.max_attempts])
            .op("count tasks of resolved violations")?;
        while let Some(row) = rows.next().op("count tasks of resolved violations")? {
            let class: String = row.get(0).op("count tasks of resolved violations")?;
            tally.add(&class, row.get(1).op("count tasks of resolved violations")?);
        }
        Ok(tally)
    }

    /// Up to `limit` open violations of `connector` whose write is of
    /// `class`, most severe first, then by id, from just after `after`.
    pub fn writeback_candidates(
        &self,
        connector: &ConnectorName,
        filter: &WritebackFilter<'_>,
        class: WriteClass,
        after: Option<CandidateCursor>,
        limit: usize,
    ) -> Result<Vec<WriteCandidate>, StoreError> {
        let (objects, fields, kinds) = filter.bind();
        let today = self.today();
        let mut stmt = self
            .conn
            .prepare_cached(&candidates_page_sql(filter.violation_tasks))
            .op("prepare listing violations to write back")?;
        let columns = VIOLATION_COLUMNS.split(',').count();
        let mut page = Vec::new();
        // One severity at a time, so that each query walks an index range
        // in id order instead of sorting every candidate.
        let (top, mut after_id) = match after {
            Some(cursor) => (severity_rank(cursor.severity), cursor.id.0),
            None => (severity_rank(Severity::High), 0),
        };
        for rank in (severity_rank(Severity::Low)..=top).rev() {
            if page.len() >= limit {
                break;
            }
            let rows = stmt
                .query_map(
                    params![
                        connector.as_str(),
                        objects,
                        fields,
                        filter.max_attempts,
                        kinds,
                        class.as_str(),
                        rank,
                        after_id,
                        self::limit(limit - page.len())
                    ],
                    |row| {
                        Ok(WriteCandidate {
                            violation: violation_row(row, today)?,
                            current: row.get(columns)?,
                            failed: failed_write(row, columns + 1)?,
                            owner_id: row.get::<_, Option<String>>(columns + 5)?.map(OwnerId::new),
                            owner_active: row.get(columns + 6)?,
                            owner_name: row.get(columns + 7)?,
                        })
                    },
                )
                .op("list violations to write back")?;
            for row in rows {
                page.push(row.op("list violations to write back")?);
            }
            after_id = 0;
        }
        Ok(page)
    }

    /// Up to `limit` tasks journeyd created for violations of `connector`
    /// that are now resolved, whose completion is of `class`, by violation
    /// id from just after `after`.
    pub fn resolved_tasks(
        &self,
        connector: &ConnectorName,
        filter: &WritebackFilter<'_>,
        class: WriteClass,
        after: Option<ViolationId>,
        limit: usize,
    ) -> Result<Vec<ResolvedTask>, StoreError> {
        let today = self.today();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS}, task_key, task_id, ledger_key, ledger_state,
                     ledger_attempts, ledger_error
                 FROM ({RESOLVED})
                 WHERE class = ?3 AND id > ?4
                 ORDER BY id LIMIT ?5"
            ))
            .op("prepare listing tasks of resolved violations")?;
        let columns = VIOLATION_COLUMNS.split(',').count();
        let rows = stmt
            .query_map(
                params![
                    connector.as_str(),
                    filter.max_attempts,
                    class.as_str(),
                    after.map_or(0, |id| id.0),
                    self::limit(limit)
                ],
                |row| {
                    Ok(ResolvedTask {
                        violation: violation_row(row, today)?,
                        task_key: ActionKey::new(row.get::<_, String>(columns)?),
                        task_id: row.get(columns + 1)?,
                        failed: failed_write(row, columns + 2)?,
                    })
                },
            )
            .op("list tasks of resolved violations")?
            .collect::<Result<_, _>>()
            .op("list tasks of resolved violations")?;
        Ok(rows)
    }

    /// The stored snapshot of one record (without its stage history), if the
    /// store has it and it is not deleted.
    pub fn record_snapshot(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Option<CrmRecord>, StoreError> {
        let snapshot: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT snapshot FROM records
                 WHERE connector = ?1 AND object = ?2 AND id = ?3 AND deleted_at IS NULL",
            )
            .op("prepare reading a record")?
            .query_row(
                params![connector.as_str(), object.as_str(), id.as_str()],
                |row| row.get(0),
            )
            .optional()
            .op("read a record")?;
        snapshot
            .map(|text| {
                serde_json::from_str(&text).map_err(json_error(format!(
                    "the snapshot of {object} {id} of connector {connector}"
                )))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::super::{LedgerCursor, LedgerMark, LedgerState, RunKind, StagedWrite};
    use super::*;
    use crate::rules::{BuiltinRule, Fingerprint, PlannedAction, Violation};
    use journeyd_connector::{ActionRequest, Watermark};

    /// The parameters of [`CANDIDATES`] (`kinds` as JSON), then of a page.
    fn candidate_params(kinds: &str) -> Vec<rusqlite::types::Value> {
        let text = |s: &str| rusqlite::types::Value::Text(s.to_owned());
        vec![
            text("hubspot"),
            text("[\"deal\"]"),
            text("{}"),
            5.into(),
            text(kinds),
            text("due"),
            2.into(),
            0.into(),
            100.into(),
        ]
    }

    #[test]
    fn open_violations_to_write_are_found_by_their_kind_of_write() {
        let test = TestStore::new();
        let params = candidate_params("[\"set_lifecycle\"]");
        let tally = format!("SELECT class, count(*) FROM ({CANDIDATES}) GROUP BY class");
        for (sql, used) in [(tally, 5), (candidates_page_sql(false), 9)] {
            let plan = test.plan(&sql, rusqlite::params_from_iter(&params[..used]));
            assert!(
                plan.iter()
                    .any(|step| step.contains("violation_rows_connector")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[test]
    fn a_page_of_single_violations_tasks_walks_them_in_id_order_sorting_nothing() {
        let test = TestStore::new();
        let params = candidate_params("[\"task\", \"set_lifecycle\"]");
        let plan = test.plan(
            &candidates_page_sql(true),
            rusqlite::params_from_iter(&params),
        );
        assert!(
            plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    fn completion(fingerprint: &Fingerprint, key: &str) -> StagedWrite {
        StagedWrite::plain(
            ActionRequest::CompleteTask {
                key: ActionKey::new(key),
                task_id: "t1".into(),
            },
            fingerprint.clone(),
        )
    }

    fn create_task(key: &str) -> ActionRequest {
        ActionRequest::CreateTask {
            key: ActionKey::new(key),
            object: ObjectKind::Deal,
            record_id: RecordId::new("1"),
            owner_id: None,
            subject: "s".into(),
            body: "b".into(),
            due: day(3, 0).date_naive(),
            priority: journeyd_connector::Priority::Normal,
        }
    }

    fn set_field(key: &str, value: &str) -> ActionRequest {
        ActionRequest::SetField {
            key: ActionKey::new(key),
            object: ObjectKind::Deal,
            record_id: RecordId::new("1"),
            field: "lifecyclestage".into(),
            value: value.into(),
            current: None,
        }
    }

    /// A violation on deal `id` whose fix is a task, of `severity`.
    fn task_violation(id: &str, severity: Severity) -> Violation {
        let mut v = violation(id, BuiltinRule::Stalled, Some("decision"));
        v.severity = severity;
        v.action = PlannedAction::Task {
            subject: "s".into(),
            owner_id: None,
        };
        v
    }

    /// A violation on deal `id` whose fix is `lifecyclestage = value`.
    fn lifecycle_violation(id: &str, value: &str) -> Violation {
        let mut v = violation(id, BuiltinRule::LifecycleMismatch, Some("decision"));
        v.action = PlannedAction::SetLifecycle {
            field: "lifecyclestage".into(),
            value: value.into(),
        };
        v
    }

    struct Policy {
        task_objects: BTreeSet<ObjectKind>,
        fields: BTreeMap<ObjectKind, BTreeSet<String>>,
    }

    impl Policy {
        /// Tasks on deals, and deals' `lifecyclestage`.
        fn deals() -> Policy {
            Policy {
                task_objects: [ObjectKind::Deal].into(),
                fields: [(ObjectKind::Deal, ["lifecyclestage".to_owned()].into())].into(),
            }
        }

        fn filter(&self) -> WritebackFilter<'_> {
            WritebackFilter {
                task_objects: &self.task_objects,
                fields: &self.fields,
                max_attempts: 3,
                violation_tasks: true,
            }
        }
    }

    fn audit(test: &mut TestStore, violations: &[Violation], hour: u32) {
        let run = test
            .store
            .begin_run(RunKind::Audit, None, day(2, hour))
            .unwrap();
        let mut writer = test
            .store
            .begin_audit(run, &[hubspot()], day(2, hour), day(2, hour).date_naive())
            .unwrap();
        writer.record(violations).unwrap();
        writer.finish().unwrap();
    }

    /// Records `request` for `violation` in the ledger, sent `attempts`
    /// times, then in `state`.
    fn ledger(
        store: &mut Store,
        request: ActionRequest,
        violation: &Violation,
        state: LedgerState,
        attempts: u32,
    ) {
        let key = request.key().clone();
        store
            .ledger_insert_pending(&request, &violation.fingerprint, &hubspot(), day(2, 1))
            .unwrap();
        for _ in 0..attempts {
            store
                .ledger_mark_all(
                    &[LedgerMark::new(key.clone(), LedgerState::Sent)],
                    day(2, 1),
                )
                .unwrap();
        }
        store
            .ledger_mark_all(
                &[LedgerMark {
                    crm_id: Some(format!("crm-{key}")),
                    ..LedgerMark::new(key, state)
                }],
                day(2, 2),
            )
            .unwrap();
    }

    fn records(page: &[WriteCandidate]) -> Vec<&str> {
        page.iter()
            .map(|c| c.violation.violation.record_id.as_str())
            .collect()
    }

    #[test]
    fn candidates_come_most_severe_first_then_by_id_a_page_at_a_time() {
        let mut test = TestStore::new();
        let severities = [
            Severity::Low,
            Severity::High,
            Severity::Medium,
            Severity::High,
            Severity::Low,
        ];
        let violations: Vec<Violation> = severities
            .iter()
            .enumerate()
            .map(|(i, s)| task_violation(&(i + 1).to_string(), *s))
            .collect();
        audit(&mut test, &violations, 0);
        let policy = Policy::deals();
        let page = |after, limit| {
            test.store
                .writeback_candidates(&hubspot(), &policy.filter(), WriteClass::Due, after, limit)
                .unwrap()
        };

        let first = page(None, 2);
        assert_eq!(records(&first), ["2", "4"]);
        let second = page(first.last().map(WriteCandidate::cursor), 2);
        assert_eq!(records(&second), ["3", "1"]);
        let third = page(second.last().map(WriteCandidate::cursor), 2);
        assert_eq!(records(&third), ["5"]);
        assert!(page(third.last().map(WriteCandidate::cursor), 2).is_empty());
        assert_eq!(records(&page(None, 10)), ["2", "4", "3", "1", "5"]);
    }

    #[test]
    fn writes_the_ledger_holds_are_counted_and_never_fill_a_page() {
        let mut test = TestStore::new();
        let violations: Vec<Violation> = (1..=7)
            .map(|i| task_violation(&i.to_string(), Severity::High))
            .collect();
        audit(&mut test, &violations, 0);
        let states = [
            (LedgerState::Applied, 1),
            (LedgerState::Pending, 0),
            (LedgerState::Sent, 1),
            (LedgerState::Parked, 1),
            (LedgerState::Failed, 1),
            (LedgerState::Failed, 3),
        ];
        for (i, (state, attempts)) in states.into_iter().enumerate() {
            let v = &violations[i];
            ledger(
                &mut test.store,
                create_task(&format!("jd{}t", v.fingerprint)),
                v,
                state,
                attempts,
            );
        }
        let policy = Policy::deals();
        let filter = policy.filter();
        let store = &test.store;

        let due = store
            .writeback_candidates(&hubspot(), &filter, WriteClass::Due, None, 1)
            .unwrap();
        assert_eq!(records(&due), ["5"], "the first page skips what is known");
        assert_eq!(
            due[0].failed.as_ref().map(|f| f.attempts),
            Some(1),
            "a retry"
        );
        let due = store
            .writeback_candidates(&hubspot(), &filter, WriteClass::Due, None, 10)
            .unwrap();
        assert_eq!(records(&due), ["5", "7"]);
        assert_eq!(due[1].failed, None);
        let to_park = store
            .writeback_candidates(&hubspot(), &filter, WriteClass::ToPark, None, 10)
            .unwrap();
        assert_eq!(records(&to_park), ["6"]);
        let failed = to_park[0].failed.as_ref().unwrap();
        assert_eq!(
            (failed.key.as_str(), failed.attempts),
            (format!("jd{}t", violations[5].fingerprint).as_str(), 3)
        );
        assert_eq!(
            store.writeback_tally(&hubspot(), &filter).unwrap(),
            WritebackTally {
                due: 2,
                known: 4,
                to_park: 1,
                ..WritebackTally::default()
            }
        );
    }

    #[test]
    fn writes_the_policy_refuses_are_a_class_of_their_own_whatever_the_ledger_holds() {
        let mut test = TestStore::new();
        let mut on_contact = task_violation("1", Severity::High);
        on_contact.object = ObjectKind::Contact;
        let mut other_field = lifecycle_violation("2", "customer");
        other_field.action = PlannedAction::SetLifecycle {
            field: "hs_lead_status".into(),
            value: "OPEN".into(),
        };
        let allowed = lifecycle_violation("3", "customer");
        audit(
            &mut test,
            &[on_contact.clone(), other_field, allowed.clone()],
            0,
        );
        // Written before the policy changed: still refused, not known.
        ledger(
            &mut test.store,
            create_task(&format!("jd{}t", on_contact.fingerprint)),
            &on_contact,
            LedgerState::Applied,
            1,
        );
        let policy = Policy::deals();
        let filter = policy.filter();
        let store = &test.store;

        let refused = store
            .writeback_candidates(&hubspot(), &filter, WriteClass::NotAllowed, None, 10)
            .unwrap();
        assert_eq!(records(&refused), ["1", "2"]);
        let due = store
            .writeback_candidates(&hubspot(), &filter, WriteClass::Due, None, 10)
            .unwrap();
        assert_eq!(records(&due), ["3"]);
        let tally = store.writeback_tally(&hubspot(), &filter).unwrap();
        assert_eq!((tally.due, tally.not_allowed, tally.known), (1, 2, 0));

        let everything = Policy {
            task_objects: [ObjectKind::Contact, ObjectKind::Deal].into(),
            fields: [(
                ObjectKind::Deal,
                ["lifecyclestage".to_owned(), "hs_lead_status".to_owned()].into(),
            )]
            .into(),
        };
        let tally = store
            .writeback_tally(&hubspot(), &everything.filter())
            .unwrap();
        assert_eq!((tally.due, tally.not_allowed, tally.known), (2, 0, 1));
    }

    #[test]
    fn a_lifecycle_write_is_matched_to_the_ledger_by_its_value_and_skipped_when_the_crm_has_it() {
        let mut test = TestStore::new();
        let to_customer = lifecycle_violation("1", "customer");
        let held = lifecycle_violation("2", "customer");
        let mut deal_1 = record(ObjectKind::Deal, "1");
        deal_1.lifecycle_status = Some("opportunity".into());
        let mut deal_2 = record(ObjectKind::Deal, "2");
        deal_2.lifecycle_status = Some("customer".into());
        test.store
            .upsert_records(&hubspot(), &[deal_1, deal_2], day(1, 0))
            .unwrap();
        audit(&mut test, &[to_customer.clone(), held], 0);
        // An earlier target of the same violation: a different write.
        ledger(
            &mut test.store,
            set_field("k-evangelist", "evangelist"),
            &to_customer,
            LedgerState::Applied,
            1,
        );
        let policy = Policy::deals();
        let filter = policy.filter();

        let due = test
            .store
            .writeback_candidates(&hubspot(), &filter, WriteClass::Due, None, 10)
            .unwrap();
        assert_eq!(records(&due), ["1"]);
        assert_eq!(due[0].current.as_deref(), Some("opportunity"));
        let tally = test.store.writeback_tally(&hubspot(), &filter).unwrap();
        assert_eq!((tally.due, tally.in_crm, tally.known), (1, 1, 0));

        ledger(
            &mut test.store,
            set_field("k-customer", "customer"),
            &to_customer,
            LedgerState::Sent,
            1,
        );
        let tally = test.store.writeback_tally(&hubspot(), &filter).unwrap();
        assert_eq!((tally.due, tally.in_crm, tally.known), (0, 1, 1));
    }

    #[test]
    fn sending_records_new_and_failed_actions_as_sent_and_leaves_applied_ones_unsent() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let fp = Fingerprint::from_stored("ab".repeat(16));
        let sent = store
            .ledger_send(
                &hubspot(),
                &[completion(&fp, "a"), completion(&fp, "b")],
                day(1, 0),
            )
            .unwrap();
        assert_eq!(sent, [ActionKey::new("a"), ActionKey::new("b")]);
        store
            .ledger_mark_all(
                &[
                    LedgerMark::new(ActionKey::new("a"), LedgerState::Failed),
                    LedgerMark::new(ActionKey::new("b"), LedgerState::Applied),
                ],
                day(1, 1),
            )
            .unwrap();

        let again = store
            .ledger_send(
                &hubspot(),
                &[completion(&fp, "a"), completion(&fp, "b")],
                day(1, 2),
            )
            .unwrap();

        assert_eq!(
            again,
            [ActionKey::new("a")],
            "an applied action is never sent again"
        );
        let sent = store.ledger_by_state(LedgerState::Sent).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].key.as_str(), sent[0].attempts, sent[0].sent_at),
            ("a", 2, Some(day(1, 2)))
        );
        assert_eq!(
            store.ledger_by_state(LedgerState::Applied).unwrap().len(),
            1
        );
        assert_eq!(store.ledger_unconfirmed_count(&hubspot()).unwrap(), 1);
        assert_eq!(
            store
                .ledger_unconfirmed_count(&ConnectorName::new("eu"))
                .unwrap(),
            0
        );
    }

    #[test]
    fn unconfirmed_writes_are_listed_oldest_first_a_page_at_a_time() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let fp = Fingerprint::from_stored("ab".repeat(16));
        for (key, hour) in [("c", 0), ("a", 1), ("b", 1), ("d", 2), ("e", 3)] {
            store
                .ledger_send(&hubspot(), &[completion(&fp, key)], day(1, hour))
                .unwrap();
        }
        store
            .ledger_mark_all(
                &[
                    LedgerMark::new(ActionKey::new("a"), LedgerState::Sent),
                    LedgerMark::new(ActionKey::new("e"), LedgerState::Applied),
                ],
                day(1, 4),
            )
            .unwrap();

        let mut seen = Vec::new();
        let mut after: Option<LedgerCursor> = None;
        for _ in 0..5 {
            let page = store
                .ledger_unconfirmed(&hubspot(), after.as_ref(), 2)
                .unwrap();
            seen.push(
                page.iter()
                    .map(|e| e.key.as_str().to_owned())
                    .collect::<Vec<_>>(),
            );
            match page.last() {
                Some(last) => after = Some(last.cursor()),
                None => break,
            }
        }
        assert_eq!(seen, [vec!["c", "a"], vec!["b", "d"], vec![]]);
        assert_eq!(store.ledger_unconfirmed_count(&hubspot()).unwrap(), 4);
    }

    #[test]
    fn a_resolved_violations_applied_task_is_listed_until_its_completion_is_applied() {
        let mut test = TestStore::new();
        let v = task_violation("1", Severity::Medium);
        audit(&mut test, std::slice::from_ref(&v), 0);
        let policy = Policy::deals();
        let filter = policy.filter();
        let resolved = |store: &Store, class| {
            store
                .resolved_tasks(&hubspot(), &filter, class, None, 10)
                .unwrap()
        };
        ledger(
            &mut test.store,
            create_task("jdt"),
            &v,
            LedgerState::Applied,
            1,
        );
        assert!(
            resolved(&test.store, WriteClass::Due).is_empty(),
            "still open"
        );

        audit(&mut test, &[], 3);
        let listed = resolved(&test.store, WriteClass::Due);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].task_key.as_str(),
                listed[0].task_id.as_str(),
                &listed[0].failed
            ),
            ("jdt", "crm-jdt", &None)
        );

        let store = &mut test.store;
        store
            .ledger_send(&hubspot(), &[completion(&v.fingerprint, "jdc")], day(3, 0))
            .unwrap();
        assert!(
            resolved(store, WriteClass::Due).is_empty(),
            "a completion in flight is known"
        );
        assert_eq!(store.writeback_tally(&hubspot(), &filter).unwrap().known, 1);
        store
            .ledger_mark_all(
                &[LedgerMark::new(ActionKey::new("jdc"), LedgerState::Failed)],
                day(3, 1),
            )
            .unwrap();
        let retry = resolved(store, WriteClass::Due);
        assert_eq!(
            retry[0].failed.as_ref().map(|f| f.key.as_str()),
            Some("jdc")
        );
        store
            .ledger_mark_all(
                &[LedgerMark::new(ActionKey::new("jdc"), LedgerState::Applied)],
                day(3, 2),
            )
            .unwrap();
        assert!(resolved(store, WriteClass::Due).is_empty());
        assert_eq!(
            store.writeback_tally(&hubspot(), &filter).unwrap(),
            WritebackTally::default()
        );
    }

    #[test]
    fn resolved_tasks_come_by_violation_id_a_page_at_a_time() {
        let mut test = TestStore::new();
        let violations: Vec<Violation> = (1..=3)
            .map(|i| task_violation(&i.to_string(), Severity::Low))
            .collect();
        audit(&mut test, &violations, 0);
        for v in &violations {
            ledger(
                &mut test.store,
                create_task(&format!("jd{}t", v.fingerprint)),
                v,
                LedgerState::Applied,
                1,
            );
        }
        audit(&mut test, &[], 3);
        let policy = Policy::deals();
        let filter = policy.filter();
        let page = |after| {
            test.store
                .resolved_tasks(&hubspot(), &filter, WriteClass::Due, after, 2)
                .unwrap()
        };

        let first = page(None);
        let second = page(first.last().map(|t| t.violation.id));
        let ids: Vec<Vec<&str>> = [&first, &second]
            .iter()
            .map(|p| {
                p.iter()
                    .map(|t| t.violation.violation.record_id.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(ids, [vec!["1", "2"], vec!["3"]]);
    }

    #[test]
    fn a_page_with_no_watermark_yet_moves_only_an_existing_cursor() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        store
            .store_page(
                &hubspot(),
                ObjectKind::Deal,
                &[],
                None,
                Some("p2"),
                day(1, 0),
            )
            .unwrap();
        assert_eq!(store.watermark(&hubspot(), ObjectKind::Deal).unwrap(), None);

        let watermark = Watermark {
            modified_at: day(1, 0),
            id: RecordId::new("1"),
        };
        store
            .store_page(
                &hubspot(),
                ObjectKind::Deal,
                &[record(ObjectKind::Deal, "1")],
                Some(&watermark),
                Some("p2"),
                day(1, 1),
            )
            .unwrap();
        store
            .store_page(&hubspot(), ObjectKind::Deal, &[], None, None, day(1, 2))
            .unwrap();
        let stored = store
            .watermark(&hubspot(), ObjectKind::Deal)
            .unwrap()
            .unwrap();
        assert_eq!((stored.watermark, stored.cursor), (watermark, None));
        let snapshot = store
            .record_snapshot(&hubspot(), ObjectKind::Deal, &RecordId::new("1"))
            .unwrap();
        assert_eq!(snapshot.map(|r| r.id), Some(RecordId::new("1")));
    }
}
