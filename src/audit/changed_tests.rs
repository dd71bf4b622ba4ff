//! Audits of what changed: which records a nightly audit judges, and that
//! what it leaves alone is what a whole audit would have found.

use super::tests::{at, sample, violation_rows};
use super::*;
use rusqlite::Connection;

fn audit(path: &Path, config: &Config, depth: Depth, now: DateTime<Utc>) -> AuditSummary {
    run_at(path, config, depth, now, &|| false).unwrap()
}

/// Stores the JSONL `lines` as a sync of the sample portal would, on `at`.
fn import(path: &Path, config: &Config, lines: &str, at: DateTime<Utc>) {
    let mut store = Store::open(path).unwrap();
    crate::import::import(
        &mut store,
        &config.connectors,
        Some("hubspot"),
        lines.as_bytes(),
        at,
    )
    .unwrap();
}

fn query<T: rusqlite::types::FromSql>(path: &Path, sql: &str) -> T {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

/// Records whose outcome may change with the date by `day`.
fn due_by(path: &Path, day: &str) -> u64 {
    query(
        path,
        &format!("SELECT count(*) FROM record_state WHERE recheck_on <= '{day}'"),
    )
}

/// Every connector of `config`: an audit that judges all of them whole.
fn all(config: &Config) -> Vec<ConnectorName> {
    config.connectors.iter().map(|c| c.name.clone()).collect()
}

fn live_records(path: &Path) -> u64 {
    query(
        path,
        "SELECT count(*) FROM records WHERE deleted_at IS NULL",
    )
}

/// The status and reason of the violation of `rule` on deal `id`.
fn violation(path: &Path, id: &str, rule: &str) -> Option<(String, Option<String>)> {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT status, status_reason FROM violations WHERE record_id = ?1 AND rule = ?2",
            [id, rule],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ok()
}

#[test]
fn the_first_audit_judges_every_record_whole() {
    let (_dir, path, config) = sample(at(20));
    let first = audit(&path, &config, Depth::Changed, at(21));
    assert_eq!(first.records, live_records(&path));
    assert_eq!(first.whole, all(&config));
    assert_eq!(query::<u64>(&path, "SELECT count(*) FROM audit_queue"), 0);
}

#[test]
fn a_nightly_audit_with_nothing_changed_judges_only_records_due_a_recheck_and_writes_nothing() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    let before = violation_rows(&path);
    let due = due_by(&path, "2026-11-22");
    let nightly = audit(&path, &config, Depth::Changed, at(22));
    assert!(nightly.whole.is_empty());
    assert_eq!(nightly.records, due);
    assert!(nightly.records < live_records(&path));
    assert_eq!(
        (nightly.chunks.new, nightly.chunks.reopened),
        (0, 0),
        "nothing new"
    );
    assert_eq!(nightly.finish.resolved, 0);
    assert_eq!(violation_rows(&path), before, "no violation row written");
}

#[test]
fn a_record_changed_by_a_sync_is_judged_again_and_its_fixed_violation_resolves() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    assert_eq!(
        violation(&path, "9002", "missing_owner").map(|v| v.0),
        Some("open".to_owned())
    );
    // The records due a recheck that night, and deal 9002 (a deal has no
    // duplicate peers).
    let expected: u64 = query(
        &path,
        "SELECT count(*) FROM record_state
         WHERE recheck_on <= '2026-11-22' OR record_id = '9002'",
    );
    // Deal 9002 gets an owner.
    import(
        &path,
        &config,
        r#"{"type":"record","system":"hubspot","object":"deal","id":"9002","name":"Globex pilot","owner_id":"102","stage":"qualifiedtobuy","amount":12000,"email":"it@globex.example","domain":"globex.example","created_at":"2026-10-20T10:00:00Z","modified_at":"2026-11-21T10:00:00Z","fields":{"hs_analytics_source":"PAID_SOCIAL"}}"#,
        at(21) + chrono::Duration::hours(8),
    );
    let nightly = audit(&path, &config, Depth::Changed, at(22));
    assert_eq!(nightly.records, expected);
    assert_eq!(
        violation(&path, "9002", "missing_owner"),
        Some((
            "resolved".to_owned(),
            Some("no longer found by the audit".to_owned())
        ))
    );
}

#[test]
fn a_record_deleted_in_the_crm_has_its_violations_resolved_by_a_nightly_audit() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    Store::open(&path)
        .unwrap()
        .mark_deleted(
            &ConnectorName::new("hubspot"),
            journeyd_connector::ObjectKind::Deal,
            &[journeyd_connector::RecordId::new("9002")],
            at(21) + chrono::Duration::hours(8),
        )
        .unwrap();
    let nightly = audit(&path, &config, Depth::Changed, at(22));
    assert!(nightly.finish.resolved > 0);
    assert_eq!(
        violation(&path, "9002", "missing_owner"),
        Some((
            "resolved".to_owned(),
            Some("record deleted in the crm".to_owned())
        ))
    );
}

#[test]
fn a_changed_config_judges_every_record_of_its_connectors_again() {
    let (_dir, path, mut config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    config.journey.stages[1].max_days = Some(5);
    let nightly = audit(&path, &config, Depth::Changed, at(22));
    assert_eq!(nightly.whole, all(&config));
    assert_eq!(nightly.records, live_records(&path));
    let after = audit(&path, &config, Depth::Changed, at(22));
    assert!(after.whole.is_empty(), "the new config is the basis now");
}

#[test]
fn a_changed_owner_judges_every_record_of_its_connector_again() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    // The same owners again change nothing.
    import(
        &path,
        &config,
        r#"{"type":"owner","id":"102","name":"Sam Ortiz","email":"sam@example.com","active":true,"teams":["Sales"]}"#,
        at(21) + chrono::Duration::hours(8),
    );
    assert!(
        audit(&path, &config, Depth::Changed, at(22))
            .whole
            .is_empty()
    );
    import(
        &path,
        &config,
        r#"{"type":"owner","id":"102","name":"Sam Ortiz","email":"sam@example.com","active":false,"teams":["Sales"]}"#,
        at(22) + chrono::Duration::hours(8),
    );
    let nightly = audit(&path, &config, Depth::Changed, at(23));
    assert_eq!(nightly.whole, vec![ConnectorName::new("hubspot")]);
    assert_eq!(nightly.records, live_records(&path));
}

#[test]
fn a_record_is_judged_again_on_the_day_it_stalls_without_any_change() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    // A record that has not stalled yet, and the day it will.
    let (id, on): (String, String) = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT record_id, recheck_on FROM record_state
             WHERE recheck_on > '2026-11-21' ORDER BY recheck_on LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a sample record stalls later");
    let day: chrono::NaiveDate = on.parse().unwrap();
    let stalls = day.and_hms_opt(2, 0, 0).unwrap().and_utc();
    assert_eq!(violation(&path, &id, "stalled"), None);
    audit(
        &path,
        &config,
        Depth::Changed,
        stalls - chrono::Duration::days(1),
    );
    assert_eq!(violation(&path, &id, "stalled"), None, "not the day before");
    let that_day = audit(&path, &config, Depth::Changed, stalls);
    assert!(that_day.records >= 1 && that_day.chunks.new >= 1);
    assert_eq!(
        violation(&path, &id, "stalled").map(|v| v.0),
        Some("open".to_owned())
    );
}

#[test]
fn a_rule_that_reads_the_clock_is_evaluated_again_at_every_audit() {
    let (_dir, path, mut config) = sample(at(20));
    config.custom_rules.push(crate::config::CustomRule {
        id: crate::rules::RuleId::new("close_date_passed"),
        condition: crate::journey::expr::Expr::compile(
            "has(record.close_date) && record.close_date < now",
        )
        .unwrap(),
        severity: crate::rules::Severity::Low,
        message: crate::rules::MessageTemplate::parse("{record} is past its close date").unwrap(),
        action: crate::rules::ActionKind::None,
        objects: Default::default(),
        stages: Default::default(),
    });
    import(
        &path,
        &config,
        r#"{"type":"record","system":"hubspot","object":"deal","id":"9100","name":"Soylent deal","owner_id":"102","stage":"qualifiedtobuy","amount":1000,"close_date":"2026-11-25","created_at":"2026-11-20T10:00:00Z","modified_at":"2026-11-20T10:00:00Z"}"#,
        at(20),
    );
    audit(&path, &config, Depth::Changed, at(21));
    assert_eq!(violation(&path, "9100", "close_date_passed"), None);
    let later = audit(&path, &config, Depth::Changed, at(26));
    assert!(later.whole.is_empty());
    assert_eq!(
        violation(&path, "9100", "close_date_passed").map(|v| v.0),
        Some("open".to_owned()),
        "found with no change to the record"
    );
}

#[test]
fn an_audit_stopped_before_its_first_chunk_leaves_every_record_queued_and_judges_whole_next() {
    let (_dir, path, config) = sample(at(20));
    let stopped = run_at(&path, &config, Depth::Changed, at(21), &|| true).unwrap();
    assert!(stopped.interrupted);
    assert_eq!(
        query::<u64>(&path, "SELECT count(*) FROM audit_queue"),
        live_records(&path)
    );
    let next = audit(&path, &config, Depth::Changed, at(21));
    assert_eq!(next.whole, all(&config));
    assert_eq!(next.records, live_records(&path));
}

#[test]
fn a_full_audit_judges_every_record_whatever_changed() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    let full = audit(&path, &config, Depth::Full, at(22));
    assert_eq!(full.records, live_records(&path));
    assert_eq!(full.whole, all(&config));
}

#[test]
fn a_nightly_audit_of_what_changed_finds_what_a_full_audit_finds() {
    let (_dir, path, config) = sample(at(20));
    audit(&path, &config, Depth::Changed, at(21));
    import(
        &path,
        &config,
        r#"{"type":"record","system":"hubspot","object":"deal","id":"9003","name":"Initech renewal","owner_id":"102","stage":"presentationscheduled","amount":9000,"created_at":"2026-10-20T10:00:00Z","modified_at":"2026-11-22T10:00:00Z"}"#,
        at(22) + chrono::Duration::hours(8),
    );
    audit(&path, &config, Depth::Changed, at(23));
    let changed = violation_rows(&path);
    let full = audit(&path, &config, Depth::Full, at(23));
    assert_eq!(
        (full.chunks.new, full.chunks.reopened, full.finish.resolved),
        (0, 0, 0)
    );
    assert_eq!(violation_rows(&path), changed);
}
