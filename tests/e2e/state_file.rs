//! Commands that only read the state file leave it as they found it: a
//! missing one is not created, an older one not migrated.

use crate::support::{Install, deal_line, stderr};

const READ_ONLY: [&[&str]; 5] = [
    &["violations", "list"],
    &["violations", "show", "1"],
    &["violations", "export"],
    &["violations", "export", "--format", "json"],
    &["report"],
];

#[test]
fn a_read_only_command_without_a_state_file_says_to_sync_first_and_creates_none() {
    let install = Install::new();
    let state = install.path("state.sqlite");
    for args in READ_ONLY {
        let output = install.run_expecting(1, args);
        let err = stderr(&output);
        assert!(
            err.contains(&format!("no state file at {}", state.display()))
                && err.contains("run `journeyd sync`"),
            "{args:?}: {err}"
        );
        assert!(!state.exists(), "{args:?} created the state file");
    }
}

#[test]
fn a_read_only_command_on_an_older_state_file_names_the_command_that_migrates_it() {
    let install = Install::new();
    install.import_lines("deals.jsonl", &[deal_line("1", "Acme", None)]);
    let state = install.path("state.sqlite");
    let set_version = |version: i64| {
        let db = rusqlite::Connection::open(&state).unwrap();
        db.pragma_update(None, "user_version", version).unwrap();
        db.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let current = {
        let db = rusqlite::Connection::open(&state).unwrap();
        db.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .unwrap()
    };
    set_version(current - 1);
    for args in READ_ONLY {
        let output = install.run_expecting(1, args);
        let err = stderr(&output);
        assert!(
            err.contains(&format!(
                "the state file {} has schema version {}, older than this journeyd's {current}",
                state.display(),
                current - 1
            )) && err.contains("`journeyd sync` (or `journeyd audit`) migrates it"),
            "{args:?}: {err}"
        );
    }
    let db = rusqlite::Connection::open(&state).unwrap();
    let version: i64 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, current - 1, "a read-only command migrated nothing");
}
