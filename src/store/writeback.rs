//! What the write-back planner reads: the open violations that call for a
//! write, the tasks of resolved violations still to complete, and a record's
//! current snapshot (for the value a lifecycle change moves from).

use super::violations::{VIOLATION_COLUMNS, violation_row};
use super::{SqlContext, Store, StoreError, ViolationRow, json_error};
use journeyd_connector::{ActionKey, ConnectorName, CrmRecord, ObjectKind, RecordId};
use rusqlite::{OptionalExtension, params};

/// A task journeyd created for a violation that has since been resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTask {
    /// The ledger key of the task's creation.
    pub task_key: ActionKey,
    /// The task's id in the CRM.
    pub task_id: String,
    pub violation: ViolationRow,
}

impl Store {
    /// Open violations of `connector` whose planned action is a write (a
    /// task or a lifecycle change), most severe first.
    pub fn writeback_candidates(
        &self,
        connector: &ConnectorName,
    ) -> Result<Vec<ViolationRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS} FROM violations
                 WHERE connector = ?1 AND status = 'open'
                   AND json_extract(action, '$.kind') IN ('task', 'set_lifecycle')
                 ORDER BY severity DESC, id"
            ))
            .op("prepare listing violations to write back")?;
        let rows = stmt
            .query_map([connector.as_str()], violation_row)
            .op("list violations to write back")?
            .collect::<Result<_, _>>()
            .op("list violations to write back")?;
        Ok(rows)
    }

    /// Tasks journeyd created (applied, with their CRM id) for violations of
    /// `connector` that are now resolved, and whose completion is not yet
    /// applied or parked. A completion in flight or failed is listed too:
    /// the planner decides from its ledger entry.
    pub fn resolved_tasks(
        &self,
        connector: &ConnectorName,
    ) -> Result<Vec<ResolvedTask>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VIOLATION_COLUMNS}, task_key, task_id FROM (
                     SELECT v.*, l.action_key AS task_key, l.crm_id AS task_id
                     FROM writeback_ledger l
                     JOIN violations v ON v.fingerprint = l.fingerprint
                     WHERE l.connector = ?1 AND l.state = 'applied' AND l.crm_id IS NOT NULL
                       AND json_extract(l.request, '$.kind') = 'create_task'
                       AND v.status = 'resolved'
                       AND NOT EXISTS (
                           SELECT 1 FROM writeback_ledger c
                           WHERE c.fingerprint = l.fingerprint
                             AND json_extract(c.request, '$.kind') = 'complete_task'
                             AND c.state IN ('applied', 'parked'))
                 ) ORDER BY id"
            ))
            .op("prepare listing tasks of resolved violations")?;
        let columns = VIOLATION_COLUMNS.split(',').count();
        let rows = stmt
            .query_map([connector.as_str()], |row| {
                Ok(ResolvedTask {
                    violation: violation_row(row)?,
                    task_key: ActionKey::new(row.get::<_, String>(columns)?),
                    task_id: row.get(columns + 1)?,
                })
            })
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
