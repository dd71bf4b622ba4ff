//! `journeyd violations list` and `show` say what they found: the page and
//! the total, filter values no violation can have, and names that could be
//! an id or a fingerprint.

use crate::support::{Install, deal_line, repo, stderr};
use serde_json::Value;

/// The sample's good lines, imported and audited.
fn audited() -> Install {
    let install = Install::new();
    let sample =
        std::fs::read_to_string(repo().join("tests/fixtures/hubspot-sample.jsonl")).unwrap();
    let good: Vec<String> = sample
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|v| v["system"] != "salesforce")
                && !line.contains("yesterday")
        })
        .map(str::to_owned)
        .collect();
    install.import_lines("sample.jsonl", &good);
    install.run(&["audit"]);
    install
}

#[test]
fn a_list_shows_its_page_beside_the_total() {
    let install = audited();
    let total = install
        .json(&["violations", "list"])
        .as_array()
        .unwrap()
        .len();
    assert!(total > 2);
    let output = install.run(&["violations", "list", "--limit", "2"]);
    assert!(
        stderr(&output).contains(&format!("2 of {total} violation(s)")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unknown_filter_value_is_an_error_naming_the_valid_ones() {
    let install = audited();
    for (flag, value, named) in [
        ("--rule", "missing_ownr", "the rules are "),
        ("--stage", "decison", "the stages are "),
        ("--owner", "999", "the owners are "),
        ("--connector", "hubspot-eu", "the connectors are "),
    ] {
        for command in [&["violations", "list"][..], &["violations", "export"]] {
            let mut args = command.to_vec();
            args.extend([flag, value]);
            let output = install.run_expecting(2, &args);
            let err = stderr(&output);
            assert!(
                err.contains(&format!("unknown {flag} `{value}`: {named}")),
                "{args:?}: {err}"
            );
        }
    }
    let err = stderr(&install.run_expecting(2, &["violations", "list", "--rule", "x"]));
    assert!(
        err.contains("missing_owner") && err.contains("stalled"),
        "{err}"
    );
    let err = stderr(&install.run_expecting(2, &["violations", "list", "--stage", "x"]));
    assert!(
        err.contains("decision") && err.contains("onboarding"),
        "{err}"
    );
    let err = stderr(&install.run_expecting(2, &["violations", "list", "--owner", "x"]));
    assert!(err.contains("102 (Sam Ortiz)"), "{err}");
}

#[test]
fn a_valid_filter_value_without_violations_lists_none() {
    let install = audited();
    for (flag, value) in [("--rule", "lifecycle_mismatch"), ("--owner", "101")] {
        let list = install.json(&["violations", "list", flag, value]);
        assert!(list.as_array().is_some(), "{flag} {value}: {list}");
    }
}

#[test]
fn digits_that_are_an_id_and_a_fingerprint_prefix_show_neither_and_name_both() {
    let install = Install::new();
    // Ownerless deals: one `missing_owner` violation each, with
    // fingerprints fixed by their ids.
    let lines: Vec<String> = (0..200)
        .map(|i| deal_line(&format!("d{i}"), "Acme", None))
        .collect();
    install.import_lines("deals.jsonl", &lines);
    install.run(&["audit"]);
    let listed = install.json(&[
        "violations",
        "list",
        "--rule",
        "missing_owner",
        "--limit",
        "1000",
    ]);
    let digits: &Value = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["fingerprint"].as_str().unwrap()[..6]
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .expect("one fingerprint in 200 starts with six digits");
    let fingerprint = digits["fingerprint"].as_str().unwrap().to_owned();
    let prefix = &fingerprint[..6];
    // The next violation gets the id those digits spell, as the 100,000th
    // violation of a long-lived log would.
    let number: i64 = prefix.parse().unwrap();
    {
        let db = rusqlite::Connection::open(install.path("state.sqlite")).unwrap();
        db.execute(
            "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'violation_rows'",
            [number - 1],
        )
        .unwrap();
    }
    install.import_lines("one-more.jsonl", &[deal_line("late", "Late", None)]);
    install.run(&["audit"]);

    let output = install.run_expecting(1, &["violations", "show", prefix]);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "`{prefix}` could be violation {number} (by its id;"
        )) && err.contains(&format!(
            "or violation {} (fingerprint {fingerprint})",
            digits["id"]
        )),
        "{err}"
    );
    let shown = install.json(&["violations", "show", &fingerprint]);
    assert_eq!(shown["violation"]["id"], digits["id"]);
    let late = install.json(&[
        "violations",
        "list",
        "--rule",
        "missing_owner",
        "--limit",
        "1000",
    ]);
    let late = late
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["record_id"] == "late")
        .unwrap();
    assert_eq!(late["id"], number);
}
