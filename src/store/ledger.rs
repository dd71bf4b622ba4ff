//! The write-back ledger: every corrective write, keyed by its deterministic
//! action key, recorded before it is sent and confirmed after, so that a
//! write is never made twice whatever crashes.

use super::columns::{get_ts, sql_enum, ts};
use super::{SqlContext, Store, StoreError, json_error};
use crate::rules::Fingerprint;
use chrono::{DateTime, Utc};
use journeyd_connector::{ActionKey, ActionRequest, ConnectorName};
use rusqlite::{Connection, params};
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

    /// Records a batch about to be sent, in one transaction: new actions as
    /// `pending`; actions that `failed` before back to `pending`, with the
    /// request as planned now. An action in any other state is left as it
    /// is. Returns how many rows were written.
    pub fn ledger_stage(
        &mut self,
        connector: &ConnectorName,
        actions: &[(ActionRequest, Fingerprint)],
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction()
            .op("begin recording write-back actions")?;
        let mut written = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO writeback_ledger
                         (action_key, fingerprint, connector, request, state, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)
                     ON CONFLICT (action_key) DO UPDATE SET
                         state = 'pending', request = excluded.request,
                         updated_at = excluded.updated_at
                     WHERE state = 'failed'",
                )
                .op("prepare recording a write-back action")?;
            let at = ts(at);
            for (request, fingerprint) in actions {
                let key = request.key();
                let json = serde_json::to_string(request)
                    .map_err(json_error(format!("write-back action {key}")))?;
                written += stmt
                    .execute(params![
                        key.as_str(),
                        fingerprint.as_str(),
                        connector.as_str(),
                        json,
                        at
                    ])
                    .op("record a write-back action")?;
            }
        }
        tx.commit().op("commit recording write-back actions")?;
        Ok(written)
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

const LEDGER_COLUMNS: &str = "action_key, fingerprint, connector, request, state, attempts, \
     crm_id, error, created_at, updated_at";

fn mark_one(
    conn: &Connection,
    key: &ActionKey,
    state: LedgerState,
    crm_id: Option<&str>,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE writeback_ledger
             SET state = ?2, crm_id = coalesce(?3, crm_id), error = ?4, updated_at = ?5,
                 attempts = attempts + (?2 = 'sent')
             WHERE action_key = ?1",
        )
        .op("prepare updating a write-back action")?
        .execute(params![key.as_str(), state, crm_id, error, ts(at)])
        .op("update a write-back action")?;
    if changed == 0 {
        return Err(StoreError::LedgerKeyNotFound(key.clone()));
    }
    Ok(())
}

/// Reads a row of [`LEDGER_COLUMNS`].
fn ledger_row(row: &rusqlite::Row<'_>) -> Result<LedgerEntry, StoreError> {
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
