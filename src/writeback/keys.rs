//! The deterministic key of every write: recorded in the ledger before the
//! write is sent, and carried into the CRM on a task's last line
//! (`journeyd-action: KEY`), so that the same write is never made twice
//! whatever crashes.
//!
//! A key is letters, digits and underscores. The key a task carries (its
//! create's) is letters and digits only: HubSpot finds it as one search
//! token. Keys of writes that never travel into the CRM (updates,
//! completions of a record's task) add `_` and a suffix to their task's.

use crate::rules::Fingerprint;
use journeyd_connector::{ActionKey, ConnectorName, ObjectKind, RecordId};
use sha2::{Digest, Sha256};

/// The key of the one task a violation gets (`tasks = "per_violation"`):
/// `jd` + fingerprint + `t`.
pub fn task_key(fingerprint: &Fingerprint) -> ActionKey {
    ActionKey::new(format!("jd{fingerprint}t"))
}

/// The key of completing that task: `jd` + fingerprint + `c`.
pub fn completion_key(fingerprint: &Fingerprint) -> ActionKey {
    ActionKey::new(format!("jd{fingerprint}c"))
}

/// The key of setting `field` to `value` for a violation: a new target value
/// is a new action. `jd` + 32 hex digits of SHA-256 over the three parts
/// + `l`.
pub fn lifecycle_key(fingerprint: &Fingerprint, field: &str, value: &str) -> ActionKey {
    ActionKey::new(format!(
        "jd{}l",
        digest(&[fingerprint.as_str(), field, value])
    ))
}

/// A record's identity as the ledger's `fingerprint` column holds it for
/// the writes of its task: 32 hex digits of SHA-256 over connector, object
/// and id.
pub fn record_fingerprint(
    connector: &ConnectorName,
    object: ObjectKind,
    record_id: &RecordId,
) -> Fingerprint {
    Fingerprint::from_stored(digest(&[
        connector.as_str(),
        object.as_str(),
        record_id.as_str(),
    ]))
}

/// The key of a record's task of `generation` (1 for its first, one more
/// each time a completed task is followed by a new one): `jd` + the
/// record's fingerprint + `r` + generation. It is the task's marker.
pub fn record_task_key(record: &Fingerprint, generation: u32) -> ActionKey {
    ActionKey::new(format!("jd{record}r{generation}"))
}

/// The key of the `number`th update of the task `task_key`.
pub fn record_update_key(task_key: &ActionKey, number: u32) -> ActionKey {
    ActionKey::new(format!("{task_key}_u{number}"))
}

/// The key of completing the task `task_key`.
pub fn record_close_key(task_key: &ActionKey) -> ActionKey {
    ActionKey::new(format!("{task_key}_c"))
}

/// 32 hex digits of SHA-256 over `parts`, each length-prefixed so that no
/// two lists of parts collide.
pub(super) fn digest(parts: &[&str]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let mut out = String::with_capacity(32);
    for byte in &hash.finalize()[..16] {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_token(key: &ActionKey) -> bool {
        key.as_str().bytes().all(|b| b.is_ascii_alphanumeric())
    }

    fn is_key(key: &ActionKey) -> bool {
        key.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    #[test]
    fn a_records_task_key_is_one_search_token_and_its_other_writes_extend_it() {
        let record = record_fingerprint(
            &ConnectorName::new("hubspot"),
            ObjectKind::Deal,
            &RecordId::new("42"),
        );
        let task = record_task_key(&record, 1);
        assert!(is_token(&task), "{task}");
        assert_eq!(task.as_str(), format!("jd{record}r1"));
        let update = record_update_key(&task, 3);
        let close = record_close_key(&task);
        assert!(is_key(&update) && is_key(&close));
        assert_eq!(update.as_str(), format!("{task}_u3"));
        assert_eq!(close.as_str(), format!("{task}_c"));
        assert_ne!(record_task_key(&record, 2), task, "a new generation");
    }

    #[test]
    fn record_fingerprints_differ_by_connector_object_and_id() {
        let of = |c: &str, o, id: &str| record_fingerprint(&ConnectorName::new(c), o, &id.into());
        let one = of("hubspot", ObjectKind::Deal, "1");
        assert_eq!(one.as_str().len(), 32);
        assert_eq!(one, of("hubspot", ObjectKind::Deal, "1"));
        assert_ne!(one, of("salesforce", ObjectKind::Deal, "1"));
        assert_ne!(one, of("hubspot", ObjectKind::Contact, "1"));
        assert_ne!(one, of("hubspot", ObjectKind::Deal, "11"));
    }
}
