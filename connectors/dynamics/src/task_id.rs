//! The primary key journeyd gives every task it creates: a name-based
//! UUID (version 5, RFC 9562) of the action key, in journeyd's own
//! namespace [`TASK_NAMESPACE`].
//!
//! Dataverse lets a client choose a row's primary key (facts 13): the
//! create is `PATCH tasks(<this id>)` with `If-None-Match: *`, which makes
//! the row or answers 412 when it exists. The id follows from the key
//! alone, so a create sent again after a crash, or while the server still
//! finishes an orphaned batch, names the same row and cannot make a second
//! one; no lookup has to race the server.

use journeyd_connector::ActionKey;
use uuid::Uuid;

/// journeyd's namespace for task ids. Fixed for good: changing it would
/// give every action a new task id, and a resent create a second task.
pub const TASK_NAMESPACE: Uuid = Uuid::from_u128(0x7f74d8de_d975_4dde_b9fa_6a9d6750d89e);

/// The `activityid` of the task created for `key`: lowercase `8-4-4-4-12`,
/// as Dataverse writes GUIDs.
pub fn task_id(key: &ActionKey) -> String {
    Uuid::new_v5(&TASK_NAMESPACE, key.as_str().as_bytes())
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_id_is_the_v5_uuid_of_its_key_in_journeyds_namespace() {
        // Values computed independently (Python's `uuid.uuid5`).
        assert_eq!(
            task_id(&ActionKey::new("jd-1")),
            "f8141189-ed04-5872-9d65-7b2f223c0f19"
        );
        assert_eq!(
            task_id(&ActionKey::new("4f1c2a9e0b7d3e55:deal:0061x:missing_owner")),
            "25799457-3408-5a0e-9f6f-a692d0fc0d03"
        );
    }

    #[test]
    fn different_keys_name_different_tasks_and_the_same_key_the_same() {
        let a = task_id(&ActionKey::new("jd-a"));
        assert_eq!(a, task_id(&ActionKey::new("jd-a")));
        assert_ne!(a, task_id(&ActionKey::new("jd-b")));
        assert!(crate::odata::is_guid(&a), "{a}");
    }
}
