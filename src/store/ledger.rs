//! The write-back ledger: every corrective write, keyed by its deterministic
//! action key, recorded before it is sent and confirmed after, so that a
//! write is never made twice whatever crashes.

use super::columns::{get_opt_ts, get_ts, sql_enum, ts};
use super::record_tasks::{RecordTaskStage, settle_record_task, stage_record_task};
use super::{SqlContext, Store, StoreError, json_error};
use crate::rules::Fingerprint;
use chrono::{DateTime, Utc};
use journeyd_connector::{ActionKey, ActionRequest, ConnectorName};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

sql_enum!(
    /// Where one write-back action stands.
    LedgerState {
        /// Recorded, not yet sent.
        Pending => "pending",
        /// Sent; the CRM's answer is not yet recorded.
        Sent => "sent",
        Applied => "applied",
        /// Failed; a later run may retry.
        Failed => "failed",
        /// Failed in a way retrying cannot fix; waits for an admin.
        Parked => "parked",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    pub key: ActionKey,
    pub fingerprint: Fingerprint,
    pub connector: ConnectorName,
    pub request: ActionRequest,
    pub state: LedgerState,
    /// How many times the action was sent.
    pub attempts: u32,
    pub crm_id: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it was last sent; `None` if never, or by an earlier version.
    pub sent_at: Option<DateTime<Utc>>,
    /// The key of the task it creates, updates or completes.
    pub task_key: Option<ActionKey>,
}

/// A write about to be sent, as the ledger records it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedWrite {
    pub request: ActionRequest,
    /// The violation's fingerprint; for a record's task, the record's.
    pub fingerprint: Fingerprint,
    /// The key of the task it creates, updates or completes.
    pub task_key: Option<ActionKey>,
    /// For a write of a record's task: how its row moves with it.
    pub record_task: Option<RecordTaskStage>,
}

impl StagedWrite {
    /// A write that belongs to no record's task.
    pub fn plain(request: ActionRequest, fingerprint: Fingerprint) -> Self {
        let task_key = match &request {
            ActionRequest::CreateTask { key, .. } => Some(key.clone()),
            ActionRequest::UpdateTask { task_key, .. } => Some(task_key.clone()),
            ActionRequest::SetField { .. } | ActionRequest::CompleteTask { .. } => None,
        };
        StagedWrite {
            request,
            fingerprint,
            task_key,
            record_task: None,
        }
    }
}

impl LedgerEntry {
    /// Where the next page of a listing in creation order starts.
    pub fn cursor(&self) -> LedgerCursor {
        LedgerCursor {
            created_at: self.created_at,
            key: self.key.clone(),
        }
    }
}

/// A place in the ledger's creation order (ties broken by key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCursor {
    pub created_at: DateTime<Utc>,
    pub key: ActionKey,
}

impl Store {
    /// Records `request` as pending under its action key. Returns false, and
    /// changes nothing, when the key is already in the ledger.
    pub fn ledger_insert_pending(
        &mut self,
        request: &ActionRequest,
        fingerprint: &Fingerprint,
        connector: &ConnectorName,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = request.key();
        let json = serde_json::to_string(request)
            .map_err(json_error(format!("write-back action {key}")))?;
        let at = ts(at);
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO writeback_ledger
                     (action_key, fingerprint, connector, request, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)
                 ON CONFLICT (action_key) DO NOTHING",
            )
            .op("prepare recording a write-back action")?
            .execute(params![
                key.as_str(),
                fingerprint.as_str(),
                connector.as_str(),
                json,
                at
            ])
            .op("record a write-back action")?;
        Ok(inserted == 1)
    }

    /// Moves the action `key` to `state`. Moving to `sent` counts an attempt;
    /// `crm_id` and `error` replace what was recorded.
    pub fn ledger_mark(
        &mut self,
        key: &ActionKey,
        state: LedgerState,
        crm_id: Option<&str>,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        mark_one(&self.conn, key, state, crm_id, error, at)
    }

    /// Every action in `state`, oldest first.
    pub fn ledger_by_state(&self, state: LedgerState) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {LEDGER_COLUMNS} FROM writeback_ledger WHERE state = ?1
                 ORDER BY created_at, action_key"
            ))
            .op("prepare listing write-back actions")?;
        let mut rows = stmt.query([state]).op("list write-back actions")?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().op("list write-back actions")? {
            entries.push(ledger_row(row)?);
        }
        Ok(entries)
    }

    /// Up to `limit` actions of `connector` that were recorded or sent but
    /// whose outcome was never recorded (a crash, or a run ended
    /// mid-batch), oldest first, from just after `after`.
    pub fn ledger_unconfirmed(
        &self,
        connector: &ConnectorName,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {LEDGER_COLUMNS} FROM writeback_ledger
                 WHERE state IN ('pending', 'sent') AND connector = ?1
                   AND (created_at, action_key) > (?2, ?3)
                 ORDER BY created_at, action_key LIMIT ?4"
            ))
            .op("prepare listing unconfirmed write-back actions")?;
        let (created_at, key) = match after {
            Some(cursor) => (ts(cursor.created_at), cursor.key.as_str()),
            // Every timestamp and key sorts after the empty text.
            None => (String::new(), ""),
        };
        let mut rows = stmt
            .query(params![
                connector.as_str(),
                created_at,
                key,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])
            .op("list unconfirmed write-back actions")?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().op("list unconfirmed write-back actions")? {
            entries.push(ledger_row(row)?);
        }
        Ok(entries)
    }

    /// How many actions of `connector` are unconfirmed; see
    /// [`Store::ledger_unconfirmed`].
    pub fn ledger_unconfirmed_count(&self, connector: &ConnectorName) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM writeback_ledger
                 WHERE state IN ('pending', 'sent') AND connector = ?1",
            )
            .op("prepare counting unconfirmed write-back actions")?
            .query_row([connector.as_str()], |row| row.get(0))
            .op("count unconfirmed write-back actions")
    }

    /// Up to `limit` actions of `connector` that failed `max_attempts`
    /// times or more and wait to be parked, oldest first, and how many
    /// there are.
    pub fn ledger_exhausted(
        &self,
        connector: &ConnectorName,
        max_attempts: u32,
        limit: usize,
    ) -> Result<(Vec<LedgerEntry>, u64), StoreError> {
        let count = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM writeback_ledger
                 WHERE state = 'failed' AND connector = ?1 AND attempts >= ?2",
            )
            .op("prepare counting write-back actions to park")?
            .query_row(params![connector.as_str(), max_attempts], |row| row.get(0))
            .op("count write-back actions to park")?;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {LEDGER_COLUMNS} FROM writeback_ledger
                 WHERE state = 'failed' AND connector = ?1 AND attempts >= ?2
                 ORDER BY created_at, action_key LIMIT ?3"
            ))
            .op("prepare listing write-back actions to park")?;
        let mut rows = stmt
            .query(params![
                connector.as_str(),
                max_attempts,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])
            .op("list write-back actions to park")?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().op("list write-back actions to park")? {
            entries.push(ledger_row(row)?);
        }
        Ok((entries, count))
    }

    /// Parks every action of `connector` that failed `max_attempts` times
    /// or more, saying so in its error. Returns how many it parked.
    pub fn ledger_park_exhausted(
        &mut self,
        connector: &ConnectorName,
        max_attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let parked = self
            .conn
            .prepare_cached(
                "UPDATE writeback_ledger
                 SET state = 'parked', updated_at = ?3,
                     error = 'failed ' || attempts || ' times; last: '
                         || coalesce(error, 'no reason given')
                 WHERE state = 'failed' AND connector = ?1 AND attempts >= ?2",
            )
            .op("prepare parking write-back actions")?
            .execute(params![connector.as_str(), max_attempts, ts(at)])
            .op("park write-back actions")?;
        Ok(parked as u64)
    }

    /// Records a batch as sent, in one transaction, before it is sent:
    /// new actions, and actions that failed or were left unconfirmed
    /// before (with the request as planned now), move to `sent` with the
    /// time and one more attempt; a record's task moves with its write. An
    /// action already applied or parked is left as it is and not returned.
    /// Returns the keys recorded, in order: those, and only those, may be
    /// sent now.
    pub fn ledger_send(
        &mut self,
        connector: &ConnectorName,
        writes: &[StagedWrite],
        at: DateTime<Utc>,
    ) -> Result<Vec<ActionKey>, StoreError> {
        let tx = self
            .conn
            .transaction()
            .op("begin recording write-back actions")?;
        let mut staged = Vec::with_capacity(writes.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO writeback_ledger
                         (action_key, fingerprint, connector, request, state, attempts,
                          sent_at, task_key, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'sent', 1, ?5, ?6, ?5, ?5)
                     ON CONFLICT (action_key) DO UPDATE SET
                         state = 'sent', request = excluded.request,
                         attempts = attempts + 1, sent_at = excluded.sent_at,
                         task_key = coalesce(task_key, excluded.task_key),
                         error = NULL, updated_at = excluded.updated_at
                     WHERE state IN ('pending', 'sent', 'failed')",
                )
                .op("prepare recording a write-back action")?;
            let at_text = ts(at);
            for write in writes {
                let key = write.request.key();
                let json = serde_json::to_string(&write.request)
                    .map_err(json_error(format!("write-back action {key}")))?;
                let changed = stmt
                    .execute(params![
                        key.as_str(),
                        write.fingerprint.as_str(),
                        connector.as_str(),
                        json,
                        at_text,
                        write.task_key.as_ref().map(ActionKey::as_str),
                    ])
                    .op("record a write-back action")?;
                if changed == 0 {
                    continue;
                }
                if let (Some(task), Some(task_key)) = (&write.record_task, &write.task_key) {
                    stage_record_task(&tx, connector, task, task_key, &write.request, at)?;
                }
                staged.push(key.clone());
            }
        }
        tx.commit().op("commit recording write-back actions")?;
        Ok(staged)
    }

    /// Applies every mark in one transaction; see [`Store::ledger_mark`].
    pub fn ledger_mark_all(
        &mut self,
        marks: &[LedgerMark],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .op("begin updating write-back actions")?;
        for mark in marks {
            mark_one(
                &tx,
                &mark.key,
                mark.state,
                mark.crm_id.as_deref(),
                mark.error.as_deref(),
                at,
            )?;
        }
        tx.commit().op("commit updating write-back actions")
    }
}

/// One change of an action's state, for [`Store::ledger_mark_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerMark {
    pub key: ActionKey,
    pub state: LedgerState,
    pub crm_id: Option<String>,
    pub error: Option<String>,
}

impl LedgerMark {
    pub fn new(key: ActionKey, state: LedgerState) -> Self {
        LedgerMark {
            key,
            state,
            crm_id: None,
            error: None,
        }
    }
}

pub(super) const LEDGER_COLUMNS: &str = "action_key, fingerprint, connector, request, state, attempts, \
     crm_id, error, created_at, updated_at, sent_at, task_key";

fn mark_one(
    conn: &Connection,
    key: &ActionKey,
    state: LedgerState,
    crm_id: Option<&str>,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let moved: Option<(Option<String>, String, Option<String>)> = conn
        .prepare_cached(
            "UPDATE writeback_ledger
             SET state = ?2, crm_id = coalesce(?3, crm_id), error = ?4, updated_at = ?5,
                 attempts = attempts + (?2 = 'sent')
             WHERE action_key = ?1
             RETURNING task_key, json_extract(request, '$.kind'), crm_id",
        )
        .op("prepare updating a write-back action")?
        .query_row(params![key.as_str(), state, crm_id, error, ts(at)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .op("update a write-back action")?;
    let Some((task_key, kind, crm_id)) = moved else {
        return Err(StoreError::LedgerKeyNotFound(key.clone()));
    };
    if state == LedgerState::Applied
        && let Some(task_key) = task_key
    {
        settle_record_task(
            conn,
            &ActionKey::new(task_key),
            &kind,
            crm_id.as_deref(),
            at,
        )?;
    }
    Ok(())
}

/// Reads a row of [`LEDGER_COLUMNS`].
pub(super) fn ledger_row(row: &rusqlite::Row<'_>) -> Result<LedgerEntry, StoreError> {
    let key = ActionKey::new(row.get::<_, String>(0).op("read a write-back action")?);
    let request: String = row.get(3).op("read a write-back action")?;
    let request =
        serde_json::from_str(&request).map_err(json_error(format!("write-back action {key}")))?;
    let read = || -> rusqlite::Result<LedgerEntry> {
        Ok(LedgerEntry {
            fingerprint: Fingerprint::from_stored(row.get(1)?),
            connector: ConnectorName::new(row.get::<_, String>(2)?),
            request,
            state: row.get(4)?,
            attempts: row.get(5)?,
            crm_id: row.get(6)?,
            error: row.get(7)?,
            created_at: get_ts(row, 8)?,
            updated_at: get_ts(row, 9)?,
            sent_at: get_opt_ts(row, 10)?,
            task_key: row.get::<_, Option<String>>(11)?.map(ActionKey::new),
            key,
        })
    };
    read().op("read a write-back action")
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot};
    use super::*;
    use journeyd_connector::{ObjectKind, RecordId};

    fn request(key: &str) -> ActionRequest {
        ActionRequest::SetField {
            key: ActionKey::new(key),
            object: ObjectKind::Deal,
            record_id: RecordId::new("1"),
            field: "lifecycle".into(),
            value: "decision".into(),
            current: None,
        }
    }

    #[test]
    fn inserting_the_same_action_key_twice_changes_nothing() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let fp = Fingerprint::from_stored("ab".repeat(16));
        assert!(
            store
                .ledger_insert_pending(&request("k1"), &fp, &hubspot(), day(1, 0))
                .unwrap()
        );
        store
            .ledger_mark(
                &ActionKey::new("k1"),
                LedgerState::Sent,
                None,
                None,
                day(1, 1),
            )
            .unwrap();
        assert!(
            !store
                .ledger_insert_pending(&request("k1"), &fp, &hubspot(), day(2, 0))
                .unwrap()
        );
        assert!(
            store
                .ledger_by_state(LedgerState::Pending)
                .unwrap()
                .is_empty()
        );
        let sent = store.ledger_by_state(LedgerState::Sent).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].attempts, sent[0].created_at), (1, day(1, 0)));
        assert_eq!(sent[0].request, request("k1"));
    }

    #[test]
    fn marking_records_the_crm_id_error_and_attempts() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let fp = Fingerprint::from_stored("cd".repeat(16));
        let key = ActionKey::new("k2");
        store
            .ledger_insert_pending(&request("k2"), &fp, &hubspot(), day(1, 0))
            .unwrap();
        store
            .ledger_mark(&key, LedgerState::Sent, None, None, day(1, 1))
            .unwrap();
        store
            .ledger_mark(&key, LedgerState::Failed, None, Some("http 503"), day(1, 2))
            .unwrap();
        store
            .ledger_mark(&key, LedgerState::Sent, None, None, day(2, 1))
            .unwrap();
        store
            .ledger_mark(&key, LedgerState::Applied, Some("task-9"), None, day(2, 2))
            .unwrap();
        let applied = store.ledger_by_state(LedgerState::Applied).unwrap();
        let entry = &applied[0];
        assert_eq!(
            (
                entry.attempts,
                entry.crm_id.as_deref(),
                entry.error.as_deref()
            ),
            (2, Some("task-9"), None)
        );
        assert_eq!(entry.updated_at, day(2, 2));
        let err = store.ledger_mark(
            &ActionKey::new("nope"),
            LedgerState::Sent,
            None,
            None,
            day(3, 0),
        );
        assert!(matches!(err, Err(StoreError::LedgerKeyNotFound(_))));
    }
}
