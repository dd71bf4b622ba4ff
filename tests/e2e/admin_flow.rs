//! An admin's morning, through the real binary: import -> audit -> list ->
//! ack -> audit -> export, and the lifecycle of a violation across audits.

use crate::support::{Install, repo, stderr, stdout};
use serde_json::Value;

fn fixture() -> String {
    repo()
        .join("tests/fixtures/hubspot-sample.jsonl")
        .display()
        .to_string()
}

fn violations(install: &Install, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["violations", "list"];
    all.extend_from_slice(args);
    install.json(&all).as_array().cloned().unwrap()
}

fn find<'v>(list: &'v [Value], rule: &str, record: &str) -> &'v Value {
    list.iter()
        .find(|v| v["rule"] == rule && v["record_id"] == record)
        .unwrap_or_else(|| panic!("no {rule} on {record} in {list:#?}"))
}

#[test]
fn import_keeps_the_good_lines_names_each_bad_one_and_exits_1() {
    let install = Install::new();
    let output = install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);
    let err = stderr(&output);
    assert!(
        err.contains("hubspot-sample.jsonl:11: skipped: expected ident"),
        "{err}"
    );
    assert!(
        err.contains("hubspot-sample.jsonl:12: skipped: record 006A is from salesforce, but connector `hubspot` is a hubspot connector"),
        "{err}"
    );
    assert!(err.contains("hubspot-sample.jsonl:13: skipped:"), "{err}");
    assert!(
        stdout(&output).contains("7 records (7 new"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn logs_are_json_lines_with_structured_fields_when_not_on_a_terminal() {
    let install = Install::new();
    let output = install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);
    let logs: Vec<Value> = stderr(&output)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let skipped = logs
        .iter()
        .find(|l| l["fields"]["message"] == "import line skipped")
        .unwrap_or_else(|| panic!("no JSON log line for a skipped line in {logs:#?}"));
    assert_eq!(skipped["level"], "WARN");
    assert_eq!(skipped["fields"]["line"], 11);
    assert_eq!(skipped["span"]["connector"], "hubspot");
    let finished = logs
        .iter()
        .find(|l| l["fields"]["message"] == "import finished")
        .unwrap();
    assert_eq!(finished["fields"]["records"], 7);
    assert!(finished["fields"]["ms"].is_u64());
}

#[test]
fn import_audit_list_ack_audit_export() {
    let install = Install::new();
    install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);

    let first = install.json(&["audit"]);
    assert_eq!(first["summary"]["records"], 7);
    assert_eq!(first["summary"]["new"], first["summary"]["violations"]);
    let open = violations(&install, &[]);
    assert_eq!(open.len() as u64, first["summary"]["new"].as_u64().unwrap());
    let ownerless = find(&open, "missing_owner", "9002");
    assert!(
        ownerless["message"]
            .as_str()
            .unwrap()
            .contains("\"Globex pilot\" (9002) has no owner")
    );
    find(&open, "missing_owner", "9003");
    find(&open, "unmapped_stage", "9006");
    find(&open, "stalled", "9005");
    assert!(
        open.iter().all(|v| v["record_id"] != "9008"),
        "a closed-lost deal (mapped to \"-\") has left the journey: no owner needed"
    );

    let id = ownerless["id"].to_string();
    install.run(&[
        "violations",
        "ack",
        &id,
        "--reason",
        "new rep starts Monday",
    ]);

    let second = install.json(&["audit"]);
    assert_eq!(
        second["summary"]["new"], 0,
        "nothing changed, nothing is new"
    );
    assert_eq!(second["summary"]["resolved"], 0);
    let shown = install.json(&["violations", "show", &id]);
    assert_eq!(
        shown["violation"]["status"], "acknowledged",
        "an ack survives audits"
    );
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[1]["actor"], "dana");
    assert_eq!(events[1]["reason"], "new rep starts Monday");

    let csv_path = install.path("violations.csv");
    install.run(&[
        "violations",
        "export",
        "--format",
        "csv",
        "--status",
        "all",
        "-o",
        csv_path.to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), open.len());
    let status = headers.iter().position(|h| h == "status").unwrap();
    let ids = headers.iter().position(|h| h == "id").unwrap();
    let acked = rows.iter().find(|r| r[ids] == id).unwrap();
    assert_eq!(&acked[status], "acknowledged");

    let json = install.run(&[
        "violations",
        "export",
        "--format",
        "json",
        "--status",
        "all",
    ]);
    let parsed: Vec<Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed.len(), open.len());
    let jsonl = install.run(&[
        "violations",
        "export",
        "--format",
        "jsonl",
        "--status",
        "all",
    ]);
    let lines: Vec<Value> = stdout(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, parsed);
}

#[test]
fn a_fixed_record_resolves_and_a_relapse_reopens_the_same_violation() {
    let install = Install::new();
    install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);
    install.run(&["audit"]);
    let before = find(&violations(&install, &[]), "unmapped_stage", "9006").clone();

    let fixed = install.path("fixed.jsonl");
    let line = |stage: &str| {
        format!(
            r#"{{"type":"record","system":"hubspot","object":"deal","id":"9006","name":"Stark upgrade","owner_id":"102","stage":"{stage}","created_at":"2026-11-01T10:00:00Z","modified_at":"2026-11-02T10:00:00Z"}}"#
        )
    };
    std::fs::write(&fixed, line("appointmentscheduled")).unwrap();
    install.run(&["import", fixed.to_str().unwrap(), "--connector", "hubspot"]);
    let second = install.json(&["audit"]);
    assert!(second["summary"]["resolved"].as_u64().unwrap() >= 1);
    let resolved = violations(&install, &["--status", "resolved"]);
    assert_eq!(
        find(&resolved, "unmapped_stage", "9006")["id"],
        before["id"]
    );

    std::fs::write(&fixed, line("negotiation_v2")).unwrap();
    install.run(&["import", fixed.to_str().unwrap(), "--connector", "hubspot"]);
    let third = install.json(&["audit"]);
    assert_eq!(third["summary"]["reopened"], 1);
    let again = find(&violations(&install, &[]), "unmapped_stage", "9006").clone();
    assert_eq!(
        again["id"], before["id"],
        "the same problem is the same row"
    );
    assert_eq!(again["fingerprint"], before["fingerprint"]);
    let shown = install.json(&["violations", "show", &before["id"].to_string()]);
    let kinds: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "resolved", "reopened"]);
}

#[test]
fn a_suppressed_violation_stays_out_of_the_list_until_its_date() {
    let install = Install::new();
    install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);
    install.run(&["audit"]);
    let stalled = find(&violations(&install, &[]), "stalled", "9005").clone();
    let id = stalled["id"].to_string();
    install.run(&[
        "violations",
        "suppress",
        &id,
        "--reason",
        "customer paused rollout",
        "--until",
        "2099-01-01",
    ]);
    install.run(&["audit"]);
    assert!(
        violations(&install, &[])
            .iter()
            .all(|v| v["id"] != stalled["id"])
    );
    let suppressed = violations(&install, &["--status", "suppressed"]);
    assert_eq!(
        find(&suppressed, "stalled", "9005")["suppressed_until"],
        "2099-01-01"
    );

    install.run(&[
        "violations",
        "suppress",
        &id,
        "--reason",
        "short pause",
        "--until",
        "2020-01-01",
    ]);
    install.run(&["audit"]);
    assert_eq!(
        find(&violations(&install, &[]), "stalled", "9005")["status"],
        "open"
    );
}

#[test]
fn report_shows_every_stage_with_its_figures() {
    let install = Install::new();
    install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);
    install.run(&["audit"]);
    let report = install.json(&["report"]);
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 7);
    let onboarding = stages.iter().find(|s| s["stage"] == "onboarding").unwrap();
    assert_eq!(onboarding["records"], 1);
    assert_eq!(onboarding["stalled"], 1);
    let consideration = stages
        .iter()
        .find(|s| s["stage"] == "consideration")
        .unwrap();
    assert_eq!(consideration["records"], 3);
    assert!(
        report["by_rule"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == "missing_owner" && r[1] == 2)
    );
}

#[test]
fn acting_on_an_unknown_violation_fails_with_exit_1() {
    let install = Install::new();
    let output = install.run_expecting(1, &["violations", "ack", "424242", "--reason", "x"]);
    assert!(
        stderr(&output).contains("no violation `424242`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_second_audit_judges_only_what_changed_and_audit_full_judges_every_record() {
    let install = Install::new();
    install.run_expecting(1, &["import", &fixture(), "--connector", "hubspot"]);
    let first = install.json(&["audit"]);
    assert_eq!(first["summary"]["records"], 7);
    assert!(
        first["summary"]["whole"]
            .as_array()
            .unwrap()
            .contains(&Value::from("hubspot"))
    );

    let fixed = install.path("fixed.jsonl");
    std::fs::write(
        &fixed,
        r#"{"type":"record","system":"hubspot","object":"deal","id":"9006","name":"Stark upgrade","owner_id":"102","stage":"appointmentscheduled","created_at":"2026-11-01T10:00:00Z","modified_at":"2026-11-02T10:00:00Z"}"#,
    )
    .unwrap();
    install.run(&["import", fixed.to_str().unwrap(), "--connector", "hubspot"]);
    let second = install.run(&["audit"]);
    let text = stdout(&second);
    assert!(
        text.contains("(those changed since the last audit)"),
        "{text}"
    );
    let judged: u64 = text
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of records judged in {text}"));
    assert!((1..7).contains(&judged), "{text}");

    let full = install.json(&["audit", "--full"]);
    assert_eq!(full["summary"]["records"], 7);
    assert_eq!(full["summary"]["new"], 0);
    assert_eq!(full["summary"]["resolved"], 0);
}
