//! `journeyd violations list` and `show` say what they found: the page and
//! the total, filter values no violation can have, and names that could be
//! an id or a fingerprint.

use crate::support::{Install, deal_line, repo, stderr, stdout};
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
fn a_list_shows_its_records_and_their_violations_beside_the_total() {
    let install = audited();
    let listed = install.json(&["violations", "list"]);
    let total = listed.as_array().unwrap().len();
    assert!(total > 2);
    let output = install.run(&["violations", "list", "--limit", "2"]);
    let err = stderr(&output);
    let shown: usize = err
        .split(&format!(" of {total} violation(s), on 2 record(s)"))
        .next()
        .and_then(|before| before.rsplit(char::is_whitespace).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of {total} on 2 records: {err}"));
    assert!((2..total).contains(&shown), "{err}");
}

#[test]
fn the_table_lists_each_record_once_with_every_violation_of_it() {
    let install = audited();
    let listed = install.json(&["violations", "list", "--limit", "1000"]);
    let record_of: std::collections::BTreeMap<String, String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["id"].to_string(),
                row["record_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let table = stdout(&install.run(&["violations", "list", "--limit", "1000"]));

    let mut shown = Vec::new();
    let mut records: Vec<String> = Vec::new();
    for line in table.lines().skip(1) {
        let ids: Vec<String> = line
            .split_whitespace()
            .next()
            .expect("an id")
            .split('+')
            .map(str::to_owned)
            .collect();
        let record = &record_of[&ids[0]];
        assert!(ids.iter().all(|id| &record_of[id] == record), "{line}");
        if records.last() != Some(record) {
            assert!(!records.contains(record), "{record} shown twice:\n{table}");
            records.push(record.clone());
        }
        shown.extend(ids);
    }
    shown.sort();
    let mut every: Vec<String> = record_of.keys().cloned().collect();
    every.sort();
    assert_eq!(shown, every);
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
