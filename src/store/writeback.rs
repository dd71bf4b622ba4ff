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

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::super::{LedgerMark, LedgerState, RunKind};
    use crate::rules::{BuiltinRule, Fingerprint, PlannedAction, Violation};
    use journeyd_connector::{ActionKey, ActionRequest, ObjectKind, RecordId, Watermark};

    fn task(fingerprint: &Fingerprint, key: &str) -> (ActionRequest, Fingerprint) {
        (
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

    fn audit(test: &mut TestStore, violations: &[Violation], hour: u32) {
        let run = test
            .store
            .begin_run(RunKind::Audit, None, day(2, hour))
            .unwrap();
        let mut writer = test
            .store
            .begin_audit(run, &[hubspot()], day(2, hour))
            .unwrap();
        writer.record(violations).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn staging_records_new_actions_and_resets_failed_ones_but_leaves_the_rest() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let fp = Fingerprint::from_stored("ab".repeat(16));
        store
            .ledger_stage(&hubspot(), &[task(&fp, "a"), task(&fp, "b")], day(1, 0))
            .unwrap();
        store
            .ledger_mark_all(
                &[
                    LedgerMark::new(ActionKey::new("a"), LedgerState::Failed),
                    LedgerMark::new(ActionKey::new("b"), LedgerState::Applied),
                ],
                day(1, 1),
            )
            .unwrap();

        let written = store
            .ledger_stage(&hubspot(), &[task(&fp, "a"), task(&fp, "b")], day(1, 2))
            .unwrap();

        assert_eq!(written, 1);
        let pending = store.ledger_by_state(LedgerState::Pending).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].key.as_str(), "a");
        assert_eq!(
            store.ledger_by_state(LedgerState::Applied).unwrap().len(),
            1
        );
        assert_eq!(store.ledger_unconfirmed(&hubspot()).unwrap().len(), 1);
        assert!(
            store
                .ledger_unconfirmed(&journeyd_connector::ConnectorName::new("eu"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_resolved_violations_applied_task_is_listed_until_its_completion_is_applied() {
        let mut test = TestStore::new();
        let mut v = violation("1", BuiltinRule::Stalled, Some("decision"));
        v.action = PlannedAction::Task {
            subject: "s".into(),
            owner_id: None,
        };
        audit(&mut test, std::slice::from_ref(&v), 0);
        let store = &mut test.store;
        assert_eq!(store.writeback_candidates(&hubspot()).unwrap().len(), 1);
        store
            .ledger_stage(
                &hubspot(),
                &[(create_task("jdt"), v.fingerprint.clone())],
                day(2, 1),
            )
            .unwrap();
        store
            .ledger_mark_all(
                &[LedgerMark {
                    crm_id: Some("task-7".into()),
                    ..LedgerMark::new(ActionKey::new("jdt"), LedgerState::Applied)
                }],
                day(2, 2),
            )
            .unwrap();
        assert!(
            store.resolved_tasks(&hubspot()).unwrap().is_empty(),
            "still open"
        );

        audit(&mut test, &[], 3);
        let store = &mut test.store;
        assert!(store.writeback_candidates(&hubspot()).unwrap().is_empty());
        let resolved = store.resolved_tasks(&hubspot()).unwrap();
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            (resolved[0].task_key.as_str(), resolved[0].task_id.as_str()),
            ("jdt", "task-7")
        );

        store
            .ledger_stage(&hubspot(), &[task(&v.fingerprint, "jdc")], day(3, 0))
            .unwrap();
        assert_eq!(
            store.resolved_tasks(&hubspot()).unwrap().len(),
            1,
            "a completion in flight is still listed"
        );
        store
            .ledger_mark_all(
                &[LedgerMark::new(ActionKey::new("jdc"), LedgerState::Applied)],
                day(3, 1),
            )
            .unwrap();
        assert!(store.resolved_tasks(&hubspot()).unwrap().is_empty());
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
