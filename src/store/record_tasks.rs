//! The one task journeyd keeps per record (`[writeback] tasks =
//! "per_record"`): which task it is, what it last said, whether it is
//! open; and what the planner reads to keep it current.
//!
//! A row moves only with the ledger's writes of its task, in their
//! transactions: staging a create opens it (a new generation after a
//! completed one), staging an update notes the update's number and what it
//! says, and a confirmed write makes what was sent what the CRM holds. So
//! the row never claims more than the ledger can prove.

use super::columns::{get_object, get_severity, severity_rank, ts};
use super::violations::{VIOLATION_COLUMNS, violation_row};
use super::{SqlContext, Store, StoreError, ViolationRow};
use crate::journey::RoleId;
use crate::rules::Severity;
use chrono::{DateTime, Utc};
use journeyd_connector::{ActionKey, ActionRequest, ConnectorName, ObjectKind, OwnerId, RecordId};
use rusqlite::{Connection, params};
use std::collections::BTreeSet;

/// How a staged write moves its record's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTaskStage {
    pub object: ObjectKind,
    pub record_id: RecordId,
    /// The task's generation (a create opens it).
    pub generation: u32,
    /// The subject the write sends.
    pub subject: String,
    /// A digest of what the write makes the task say and whom it is for.
    pub digest: String,
    /// For an update, its number.
    pub update: Option<u32>,
}

/// A record's task, as its row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTask {
    pub generation: u32,
    /// The key of its create: the marker line of its text.
    pub task_key: ActionKey,
    /// The CRM's id, once the create is confirmed.
    pub task_id: Option<String>,
    /// Updates sent so far.
    pub updates: u32,
    pub subject: String,
    pub sent_digest: Option<String>,
    pub written_digest: Option<String>,
    pub open: bool,
}

/// One record whose task may need a write: it has open violations that
/// call for a task on an allowed object, or an open task, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordTaskCandidate {
    pub object: ObjectKind,
    pub record_id: RecordId,
    pub record_name: Option<String>,
    /// The most severe of its open violations calling for a task; `None`
    /// when none is left.
    pub severity: Option<Severity>,
    /// The fingerprints of those violations with their severities, sorted:
    /// what the task lists.
    pub items: String,
    /// How many there are.
    pub count: u32,
    /// The record's owner in the CRM, whether they are active (`None`: not
    /// among the connector's owners), and their name.
    pub owner_id: Option<OwnerId>,
    pub owner_active: Option<bool>,
    pub owner_name: Option<String>,
    /// The journey stage the last audit put the record in.
    pub stage: Option<String>,
    /// The role its most severe violation calling for a task holds
    /// accountable (the first with one, in the order its task lists them),
    /// for a record outside the journey's stages.
    pub violation_role: Option<RoleId>,
    pub task: Option<RecordTask>,
    /// The stored record's rowid; `None` for violations stored without
    /// their record.
    pub record_rowid: Option<i64>,
}

impl RecordTaskCandidate {
    /// The rank of its most severe violation calling for a task; -1 when
    /// none is left.
    pub fn rank(&self) -> i64 {
        self.severity.map_or(-1, severity_rank)
    }

    /// Where the next page starts.
    pub fn cursor(&self) -> RecordTaskCursor {
        RecordTaskCursor {
            rank: self.rank(),
            ord: self.record_rowid.unwrap_or(NOT_STORED),
            object: self.object,
            record_id: self.record_id.clone(),
        }
    }
}

/// A place in the candidates' order: most severe first (records with no
/// violation left last), then in the order the records were first stored
/// (records not stored last, by object and id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTaskCursor {
    rank: i64,
    ord: i64,
    object: ObjectKind,
    record_id: RecordId,
}

/// A task journeyd created for one violation (`tasks = "per_violation"`, or
/// before records had one task each) that is still open.
#[derive(Debug, Clone, PartialEq)]
pub struct ViolationTask {
    pub task_key: ActionKey,
    pub task_id: String,
    pub fingerprint: String,
    pub object: Option<ObjectKind>,
    pub record_id: Option<RecordId>,
    pub record_name: Option<String>,
    pub rule: Option<String>,
    /// Its completion's ledger state, attempts and error, if it has one.
    pub completion: Option<(String, u32, Option<String>)>,
}

/// The records of `?1` to look at: those with open violations calling for
/// a task on an object in `?2` (JSON; when `?3` is true), and those with an
/// open task, each with what its task would list, its owner and stage, and
/// its task row. With `scoped`, only the stored records `temp.plan_scope`
/// lists. Gathered into a temporary table, so that each page is an index
/// range rather than a new grouping of every open violation.
fn gather_sql(scoped: bool) -> String {
    let (violations, tasks) = if scoped {
        (
            "v.record_rowid IN (SELECT record_rowid FROM temp.plan_scope)",
            "FROM temp.plan_scope ps JOIN records pr ON pr.rowid = ps.record_rowid
             JOIN record_tasks t ON t.connector = pr.connector AND t.object = pr.object
                AND t.record_id = pr.id",
        )
    } else {
        ("1", "FROM record_tasks t")
    };
    format!(
        "CREATE TEMP TABLE record_task_candidates AS
    WITH wanted AS (
        SELECT v.object, v.record_id, max(v.severity) AS severity, count(*) AS n,
            group_concat(v.fingerprint || ':' || v.severity, ',' ORDER BY v.fingerprint) AS items,
            max(v.record_name) AS record_name,
            -- NULLs are left out: the first is the role of the first
            -- violation with one, of a stored record
            group_concat(CASE WHEN v.record_rowid IS NOT NULL THEN v.owner_role END, char(31)
                         ORDER BY v.severity DESC, v.rule, v.stage, v.id) AS roles
        FROM violation_rows v
        WHERE ?3 AND {violations} AND v.connector = ?1 AND v.status = 'open'
          AND json_extract(v.action, '$.kind') = 'task'
          AND v.object IN (SELECT value FROM json_each(?2))
        GROUP BY v.object, v.record_id
    ),
    candidates AS (
        SELECT object, record_id, severity, n, items, record_name, roles FROM wanted
        UNION ALL
        SELECT t.object, t.record_id, -1, 0, '', NULL, NULL {tasks}
        WHERE t.connector = ?1 AND t.state = 'open'
          AND NOT EXISTS (SELECT 1 FROM wanted w
                          WHERE w.object = t.object AND w.record_id = t.record_id)
    )
    SELECT c.object, c.record_id,
        coalesce(c.record_name, json_extract(r.snapshot, '$.name')) AS record_name,
        c.severity, c.items, c.n, r.owner_id, o.active, o.name AS owner_name, s.stage,
        t.generation, t.task_key, t.task_id, t.updates, t.subject,
        t.sent_digest, t.written_digest, t.state, c.roles,
        -- the stored record's rowid orders records of one severity; one
        -- not stored comes after them
        coalesce(sr.rowid, {NOT_STORED}) AS ord, sr.rowid AS record_rowid
    FROM candidates c
    LEFT JOIN records sr ON sr.connector = ?1 AND sr.object = c.object AND sr.id = c.record_id
    LEFT JOIN records r ON r.rowid = sr.rowid AND r.deleted_at IS NULL
    LEFT JOIN owners o ON o.connector = ?1 AND o.id = r.owner_id
    LEFT JOIN record_state s
        ON s.connector = ?1 AND s.object = c.object AND s.record_id = c.record_id
    LEFT JOIN record_tasks t
        ON t.connector = ?1 AND t.object = c.object AND t.record_id = c.record_id"
    )
}

/// Where a record that is not stored sorts among records of its severity:
/// after every stored one.
const NOT_STORED: i64 = i64::MAX;

/// The open violations of the record `?1` connector, `?2` object, `?3`
/// id that call for a task, in the order its task lists them.
fn record_violations_sql() -> String {
    format!(
        "SELECT {VIOLATION_COLUMNS} FROM violations
         WHERE record_rowid = (SELECT rowid FROM records
                               WHERE connector = ?1 AND object = ?2 AND id = ?3)
           -- `+`: by the record's rowid, never by status (every open
           -- violation of the log)
           AND +status = 'open' AND json_extract(action, '$.kind') = 'task'
         ORDER BY severity DESC, rule, stage, id"
    )
}

/// A page of the gathered candidates, from just after (`?1` severity, `?2`
/// order, `?3` object, `?4` id), most severe first.
const PAGE: &str = "
    SELECT * FROM temp.record_task_candidates
    WHERE severity < ?1 OR (severity = ?1 AND (ord, object, record_id) > (?2, ?3, ?4))
    ORDER BY severity DESC, ord, object, record_id
    LIMIT ?5";

fn candidate(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordTaskCandidate> {
    let rank: i64 = row.get(3)?;
    let task = match row.get::<_, Option<String>>(11)? {
        Some(task_key) => Some(RecordTask {
            generation: row.get(10)?,
            task_key: ActionKey::new(task_key),
            task_id: row.get(12)?,
            updates: row.get(13)?,
            subject: row.get(14)?,
            sent_digest: row.get(15)?,
            written_digest: row.get(16)?,
            open: row.get::<_, String>(17)? == "open",
        }),
        None => None,
    };
    Ok(RecordTaskCandidate {
        object: get_object(row, 0)?,
        record_id: RecordId::new(row.get::<_, String>(1)?),
        record_name: row.get(2)?,
        severity: if rank < 0 {
            None
        } else {
            Some(get_severity(row, 3)?)
        },
        items: row.get(4)?,
        count: row.get(5)?,
        owner_id: row.get::<_, Option<String>>(6)?.map(OwnerId::new),
        owner_active: row.get::<_, Option<bool>>(7)?,
        owner_name: row.get(8)?,
        stage: row.get(9)?,
        violation_role: row
            .get::<_, Option<String>>(18)?
            .and_then(|roles| roles.split('\u{1f}').next().map(RoleId::new)),
        task,
        record_rowid: row.get(20)?,
    })
}

impl Store {
    /// Gathers the records of `connector` whose task may need a write:
    /// with open violations calling for a task on one of `objects` (unless
    /// `wanted` is false: then only records with an open task, all to
    /// complete). With `scoped`, only the stored records
    /// [`Store::begin_plan`] or [`Store::pick_plan_records`] put in scope.
    /// [`Store::record_task_candidates`] pages through them. The temporary
    /// table lives with the connection, never in the file.
    pub fn gather_record_task_candidates(
        &self,
        connector: &ConnectorName,
        objects: &BTreeSet<ObjectKind>,
        wanted: bool,
        scoped: bool,
    ) -> Result<(), StoreError> {
        let objects: Vec<&str> = objects.iter().map(|o| o.as_str()).collect();
        self.conn
            .execute("DROP TABLE IF EXISTS temp.record_task_candidates", [])
            .op("drop the gathered records whose task to write")?;
        self.conn
            .execute(
                &gather_sql(scoped),
                params![
                    connector.as_str(),
                    serde_json::Value::from(objects).to_string(),
                    wanted
                ],
            )
            .op("gather records whose task to write")?;
        self.conn
            .execute(
                "CREATE INDEX temp.record_task_candidates_order
                 ON record_task_candidates (severity DESC, ord, object, record_id)",
                [],
            )
            .op("index records whose task to write")?;
        Ok(())
    }

    /// Up to `limit` of the records [`Store::gather_record_task_candidates`]
    /// gathered, in [`RecordTaskCursor`] order from just after `after`.
    pub fn record_task_candidates(
        &self,
        after: Option<&RecordTaskCursor>,
        limit: usize,
    ) -> Result<Vec<RecordTaskCandidate>, StoreError> {
        let (rank, ord, object, id) = match after {
            Some(cursor) => (
                cursor.rank,
                cursor.ord,
                cursor.object.as_str(),
                cursor.record_id.as_str(),
            ),
            // Above every severity: the first page starts at the top.
            None => (i64::MAX, i64::MIN, "", ""),
        };
        // Not cached: the temporary table is made anew for every plan.
        let mut stmt = self
            .conn
            .prepare(PAGE)
            .op("prepare listing records whose task to write")?;
        let rows = stmt
            .query_map(
                params![
                    rank,
                    ord,
                    object,
                    id,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                candidate,
            )
            .op("list records whose task to write")?;
        rows.collect::<Result<_, _>>()
            .op("list records whose task to write")
    }

    /// The open violations of one record that call for a task, most severe
    /// first, then by rule and stage: what its task lists.
    pub fn record_task_violations(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
        record_id: &RecordId,
    ) -> Result<Vec<ViolationRow>, StoreError> {
        let today = self.today();
        let mut stmt = self
            .conn
            .prepare_cached(&record_violations_sql())
            .op("prepare listing a record's violations")?;
        let rows = stmt
            .query_map(
                params![connector.as_str(), object.as_str(), record_id.as_str()],
                |row| violation_row(row, today),
            )
            .op("list a record's violations")?;
        rows.collect::<Result<_, _>>()
            .op("list a record's violations")
    }

    /// Whether another record's open task of `connector` has `subject`.
    pub fn record_task_subject_taken(
        &self,
        connector: &ConnectorName,
        subject: &str,
        object: ObjectKind,
        record_id: &RecordId,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM record_tasks
                 WHERE connector = ?1 AND subject = ?2 AND state = 'open'
                   AND NOT (object = ?3 AND record_id = ?4))",
            )
            .op("prepare checking a task's subject")?
            .query_row(
                params![
                    connector.as_str(),
                    subject,
                    object.as_str(),
                    record_id.as_str()
                ],
                |row| row.get(0),
            )
            .op("check a task's subject")
    }

    /// Every write the ledger holds of the tasks `task_keys`.
    pub fn task_writes(
        &self,
        task_keys: &[ActionKey],
    ) -> Result<Vec<super::LedgerEntry>, StoreError> {
        if task_keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = task_keys.iter().map(ActionKey::as_str).collect();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM writeback_ledger
                 WHERE task_key IN (SELECT value FROM json_each(?1))
                 ORDER BY created_at, action_key",
                super::ledger::LEDGER_COLUMNS
            ))
            .op("prepare listing a task's writes")?;
        let mut rows = stmt
            .query([serde_json::Value::from(keys).to_string()])
            .op("list a task's writes")?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().op("list a task's writes")? {
            entries.push(super::ledger::ledger_row(row)?);
        }
        Ok(entries)
    }

    /// Up to `limit` tasks of `connector` created for one violation each,
    /// confirmed and not yet completed (or whose completion is neither
    /// applied nor parked), by key from just after `after`.
    pub fn open_violation_tasks(
        &self,
        connector: &ConnectorName,
        after: Option<&ActionKey>,
        limit: usize,
    ) -> Result<Vec<ViolationTask>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT t.action_key, t.crm_id, t.fingerprint,
                     json_extract(t.request, '$.object'), json_extract(t.request, '$.record_id'),
                     v.record_name, v.rule, c.state, c.attempts, c.error
                 FROM writeback_ledger t
                 LEFT JOIN writeback_ledger c ON c.action_key = 'jd' || t.fingerprint || 'c'
                 LEFT JOIN violation_rows v
                     ON substr(v.fingerprint, 1, 12) = substr(t.fingerprint, 1, 12)
                     AND v.fingerprint = t.fingerprint
                 WHERE t.connector = ?1 AND t.state = 'applied' AND t.crm_id IS NOT NULL
                   AND t.action_key = 'jd' || t.fingerprint || 't'
                   AND json_extract(t.request, '$.kind') = 'create_task'
                   AND (c.state IS NULL OR c.state NOT IN ('applied', 'parked'))
                   AND t.action_key > ?2
                 ORDER BY t.action_key LIMIT ?3",
            )
            .op("prepare listing tasks of single violations")?;
        let rows = stmt
            .query_map(
                params![
                    connector.as_str(),
                    after.map_or("", ActionKey::as_str),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| {
                    let state: Option<String> = row.get(7)?;
                    Ok(ViolationTask {
                        task_key: ActionKey::new(row.get::<_, String>(0)?),
                        task_id: row.get(1)?,
                        fingerprint: row.get(2)?,
                        object: row
                            .get::<_, Option<String>>(3)?
                            .and_then(|o| ObjectKind::parse(&o)),
                        record_id: row.get::<_, Option<String>>(4)?.map(RecordId::new),
                        record_name: row.get(5)?,
                        rule: row.get(6)?,
                        completion: match state {
                            Some(state) => Some((state, row.get(8)?, row.get(9)?)),
                            None => None,
                        },
                    })
                },
            )
            .op("list tasks of single violations")?;
        rows.collect::<Result<_, _>>()
            .op("list tasks of single violations")
    }

    /// Every record task of `connector`, for tests and admins' tools.
    pub fn record_tasks(
        &self,
        connector: &ConnectorName,
    ) -> Result<Vec<(ObjectKind, RecordId, RecordTask)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT object, record_id, generation, task_key, task_id, updates, subject,
                     sent_digest, written_digest, state
                 FROM record_tasks WHERE connector = ?1 ORDER BY object, record_id",
            )
            .op("prepare listing record tasks")?;
        let rows = stmt
            .query_map([connector.as_str()], |row| {
                Ok((
                    get_object(row, 0)?,
                    RecordId::new(row.get::<_, String>(1)?),
                    RecordTask {
                        generation: row.get(2)?,
                        task_key: ActionKey::new(row.get::<_, String>(3)?),
                        task_id: row.get(4)?,
                        updates: row.get(5)?,
                        subject: row.get(6)?,
                        sent_digest: row.get(7)?,
                        written_digest: row.get(8)?,
                        open: row.get::<_, String>(9)? == "open",
                    },
                ))
            })
            .op("list record tasks")?;
        rows.collect::<Result<_, _>>().op("list record tasks")
    }
}

/// Moves a record's task with a write recorded as sent (in the caller's
/// transaction): a create opens the row, a new generation replacing a
/// completed one; an update notes its number, subject and digest.
pub(super) fn stage_record_task(
    conn: &Connection,
    connector: &ConnectorName,
    stage: &RecordTaskStage,
    task_key: &ActionKey,
    request: &ActionRequest,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    match request {
        ActionRequest::CreateTask { .. } => {
            conn.prepare_cached(
                "INSERT INTO record_tasks
                     (connector, object, record_id, generation, task_key, task_id, updates,
                      subject, sent_digest, written_digest, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, 0, ?6, ?7, NULL, 'open', ?8)
                 ON CONFLICT (connector, object, record_id) DO UPDATE SET
                     task_id = CASE WHEN task_key = excluded.task_key THEN task_id END,
                     updates = CASE WHEN task_key = excluded.task_key THEN updates ELSE 0 END,
                     written_digest = CASE WHEN task_key = excluded.task_key
                                      THEN written_digest END,
                     generation = excluded.generation, task_key = excluded.task_key,
                     subject = excluded.subject, sent_digest = excluded.sent_digest,
                     state = 'open', updated_at = excluded.updated_at",
            )
            .op("prepare opening a record's task")?
            .execute(params![
                connector.as_str(),
                stage.object.as_str(),
                stage.record_id.as_str(),
                stage.generation,
                task_key.as_str(),
                stage.subject,
                stage.digest,
                ts(at)
            ])
            .op("open a record's task")?;
        }
        ActionRequest::UpdateTask { .. } => {
            conn.prepare_cached(
                "UPDATE record_tasks
                 SET updates = max(updates, ?2), subject = ?3, sent_digest = ?4, updated_at = ?5
                 WHERE task_key = ?1",
            )
            .op("prepare noting a task's update")?
            .execute(params![
                task_key.as_str(),
                stage.update.unwrap_or(0),
                stage.subject,
                stage.digest,
                ts(at)
            ])
            .op("note a task's update")?;
        }
        ActionRequest::SetField { .. } | ActionRequest::CompleteTask { .. } => {}
    }
    Ok(())
}

/// Moves the task `task_key` with a write of `kind` the CRM confirmed (in
/// the caller's transaction): a create gives the task its id, a create or
/// an update makes what was sent what the CRM holds, a completion closes
/// it. A task of a single violation has no row, and nothing moves.
pub(super) fn settle_record_task(
    conn: &Connection,
    task_key: &ActionKey,
    kind: &str,
    crm_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = match kind {
        "create_task" => {
            "UPDATE record_tasks SET task_id = coalesce(?2, task_id),
                 written_digest = sent_digest, updated_at = ?3
             WHERE task_key = ?1"
        }
        "update_task" => {
            "UPDATE record_tasks SET written_digest = sent_digest, updated_at = ?3
             WHERE task_key = ?1"
        }
        "complete_task" => {
            "UPDATE record_tasks SET state = 'closed', updated_at = ?3
             WHERE task_key = ?1"
        }
        _ => return Ok(()),
    };
    conn.prepare_cached(sql)
        .op("prepare settling a record's task")?
        .execute(params![task_key.as_str(), crm_id, ts(at)])
        .op("settle a record's task")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::TestStore;
    use super::*;

    #[test]
    fn a_records_violations_are_read_through_its_rowid_not_every_open_one() {
        let test = TestStore::new();
        let plan = test.plan(&record_violations_sql(), params!["hubspot", "deal", "1"]);
        assert!(
            plan.iter()
                .any(|step| step.contains("violation_rows_record_rowid")),
            "{plan:?}"
        );
    }
}
