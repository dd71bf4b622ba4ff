//! `journeyd writeback` and `journeyd sync` through the real binary, where
//! no CRM is needed: the dry-run plan, and the refusals that protect an
//! admin from writing or syncing by mistake.

use crate::support::{Install, repo, stderr, stdout};

fn audited() -> Install {
    let install = Install::new();
    let sample = repo().join("tests/fixtures/hubspot-sample.jsonl");
    // The sample's three bad lines are skipped: exit 1.
    install.run_expecting(
        1,
        &[
            "import",
            &sample.display().to_string(),
            "--connector",
            "hubspot",
        ],
    );
    install.run(&["audit"]);
    install
}

#[test]
fn a_dry_run_plans_one_task_per_record_and_writes_nothing() {
    let install = audited();
    let plan = install.json(&["writeback", "--connector", "hubspot"]);
    let report = &plan[0];
    assert_eq!(report["applied"], false);
    assert_eq!(report["run"], serde_json::Value::Null);
    let writes = report["plan"]["writes"].as_array().unwrap();
    let tasks: Vec<_> = writes
        .iter()
        .filter(|w| w["request"]["kind"] == "create_task")
        .collect();
    assert!(!tasks.is_empty(), "{plan:#}");
    let mut records = std::collections::BTreeSet::new();
    for write in &tasks {
        let key = write["request"]["key"].as_str().unwrap();
        assert!(
            key.starts_with("jd")
                && key.ends_with("r1")
                && key.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{key}"
        );
        let body = write["request"]["body"].as_str().unwrap();
        assert!(
            body.ends_with(&format!("\n\njourneyd-action: {key}")),
            "{body}"
        );
        assert_eq!(body.matches("journeyd-action:").count(), 1, "{body}");
        let record = format!("{} {}", write["object"], write["record_id"]);
        assert!(records.insert(record), "one task per record: {write}");
    }
    let again = install.json(&["writeback", "--connector", "hubspot"]);
    assert_eq!(
        again[0]["plan"], report["plan"],
        "a dry run leaves no trace"
    );

    let table = stdout(&install.run(&["writeback", "--connector", "hubspot"]));
    assert!(table.contains("[journeyd] Hooli platform: "), "{table}");
    assert!(table.contains("nothing was written"), "{table}");
}

#[test]
fn apply_is_refused_with_exit_2_while_the_config_says_dry_run() {
    let install = audited();
    let output = install.run_expecting(2, &["writeback", "--apply"]);
    assert!(
        stderr(&output).contains("writeback.mode = \"dry-run\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sync_names_the_missing_secret_and_never_starts() {
    let install = Install::new();
    let output = install.run_expecting(1, &["sync", "--connector", "hubspot"]);
    let err = stderr(&output);
    assert!(
        err.contains("connector hubspot: credential hubspot-token needs $CREDENTIALS_DIRECTORY"),
        "{err}"
    );
    let output = install.run_expecting(1, &["sync", "--connector", "salesforce"]);
    assert!(
        stderr(&output).contains(
            "connector salesforce: credential salesforce-private-key needs $CREDENTIALS_DIRECTORY"
        ),
        "{}",
        stderr(&output)
    );
    let output = install.run_expecting(1, &["sync", "--connector", "dynamics"]);
    assert!(
        stderr(&output).contains(
            "connector dynamics: credential dynamics-client-secret needs $CREDENTIALS_DIRECTORY"
        ),
        "{}",
        stderr(&output)
    );
}
