//! Entries built from what the shipped journey's rules say about records,
//! so that the messages read are the rules' own.

use super::*;
use crate::config::Config;
use crate::journey::record::{OwnerInfo, StageRef};
use crate::journey::{JourneyRecord, RoleId, StageId};
use crate::rules::RuleSet;
use crate::store::ViolationId;
use chrono::{DateTime, Duration, TimeZone, Utc};
use journeyd_connector::{ConnectorName, ObjectKind, OwnerId, RecordId, System};
use std::collections::BTreeMap;
use std::path::Path;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn shipped() -> Config {
    crate::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/journeyd.toml"))
        .expect("the shipped config loads")
}

/// A won deal `id` in onboarding, owned by onboarding, with every fact the
/// journey asks for up to its stage but those `without`.
fn onboarding_deal(config: &Config, id: &str, without: &[&str]) -> JourneyRecord {
    let stage = StageId::new("onboarding");
    let mut fields: BTreeMap<String, serde_json::Value> = [
        ("lead_source", serde_json::json!("web")),
        ("pain_points", serde_json::json!("manual billing")),
        ("discovery_call_date", serde_json::json!("2026-03-01")),
        ("decision_maker", serde_json::json!("Ada")),
        ("budget_confirmed", serde_json::json!(true)),
        (
            "success_criteria",
            serde_json::json!("one invoice run a month"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    fields.retain(|name, _| !without.contains(&name.as_str()));
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 5, d);
    JourneyRecord {
        connector: ConnectorName::new("hubspot"),
        system: System::Hubspot,
        object: ObjectKind::Deal,
        id: RecordId::new(id),
        name: Some(format!("Deal {id}")),
        url: None,
        in_journey: true,
        stage: StageRef::Mapped {
            index: config.journey.index_of(&stage).unwrap(),
            id: stage,
        },
        owner: Some(OwnerInfo {
            id: OwnerId::new("u1"),
            name: Some("Dana".into()),
            active: Some(true),
            role: Some(RoleId::new("onboarding")),
        }),
        entered_stage_at: Some(now() - Duration::days(2)),
        lifecycle: None,
        amount: (!without.contains(&"amount")).then_some(5000.0),
        currency: Some("EUR".into()),
        email: Some("ada@acme.example".into()),
        domain: Some("acme.example".into()),
        created_at: now() - Duration::days(40),
        modified_at: now() - Duration::days(1),
        close_date: (!without.contains(&"close_date")).then(|| day(20).unwrap()),
        contract_start: None,
        contract_end: None,
        fields,
        account: Some(RecordId::new("a1")),
        contacts: Vec::new(),
        tasks: Vec::new(),
        history: Vec::new(),
    }
}

/// The stored rows of what the shipped rules find on `records`, in order.
fn rows(config: &Config, records: &[JourneyRecord]) -> Vec<ViolationRow> {
    let rules = RuleSet::from_config(config);
    let connector = config
        .connectors
        .iter()
        .find(|c| c.name.as_str() == "hubspot")
        .expect("the shipped config has a hubspot connector");
    let mut out = Vec::new();
    for record in records {
        for violation in rules.evaluate(connector, record, &[], now()).violations {
            out.push(ViolationRow {
                id: ViolationId(out.len() as i64 + 1),
                violation,
                status: ViolationStatus::Open,
                status_reason: None,
                suppressed_until: None,
                first_seen: now(),
                last_seen: now(),
                last_run: None,
                resolved_at: None,
            });
        }
    }
    out
}

fn rules_of(entries: &[Entry<'_>]) -> Vec<String> {
    entries.iter().map(Entry::rules).collect()
}

#[test]
fn a_handoff_missing_what_an_unmet_criterion_reads_is_one_entry_naming_both_rules() {
    let config = shipped();
    let rows = rows(
        &config,
        &[onboarding_deal(&config, "1", &["decision_maker"])],
    );
    let entries = entries(&config.journey, &rows);

    assert_eq!(
        rules_of(&entries),
        ["exit_criteria_unmet+handoff_incomplete"]
    );
    let message = entries[0].message();
    assert!(
        message.contains("are unmet: decision_maker_named"),
        "{message}"
    );
    assert!(
        message.contains("; it was handed from sales to onboarding at the exit of stage decision without: decision_maker"),
        "{message}"
    );
    assert_eq!(entries[0].ids().len(), 2);
    assert!(
        entries[0]
            .message_under_record()
            .starts_with("is in stage onboarding but exit criteria of stage decision"),
        "{}",
        entries[0].message_under_record()
    );
}

#[test]
fn a_handoff_missing_a_fact_no_unmet_criterion_reads_stays_its_own_entry() {
    let config = shipped();
    // Amount is a decision handoff field, but only a consideration
    // criterion reads it; the decision criterion left unmet is the budget.
    let rows = rows(
        &config,
        &[onboarding_deal(
            &config,
            "1",
            &["amount", "budget_confirmed"],
        )],
    );
    let entries = entries(&config.journey, &rows);

    let mut rules = rules_of(&entries);
    rules.sort();
    assert_eq!(
        rules,
        [
            "exit_criteria_unmet",
            "exit_criteria_unmet",
            "handoff_incomplete"
        ]
    );
}

#[test]
fn violations_of_different_statuses_stay_apart() {
    let config = shipped();
    let mut rows = rows(
        &config,
        &[onboarding_deal(&config, "1", &["decision_maker"])],
    );
    rows[0].status = ViolationStatus::Acknowledged;

    assert_eq!(entries(&config.journey, &rows).len(), 2);
}

#[test]
fn only_a_records_own_violations_join() {
    let config = shipped();
    let mut all = rows(
        &config,
        &[
            onboarding_deal(&config, "1", &["decision_maker"]),
            onboarding_deal(&config, "2", &["decision_maker"]),
        ],
    );
    // Record 2's handoff now follows record 1's unmet criteria first.
    all.swap(1, 3);
    let entries = entries(&config.journey, &all);

    assert_eq!(entries.len(), 2);
    for entry in &entries {
        let records: Vec<&str> = entry
            .rows
            .iter()
            .map(|row| row.violation.record_id.as_str())
            .collect();
        assert_eq!(records[0], records[1], "{records:?}");
    }
}

#[test]
fn an_entry_is_as_severe_as_its_most_severe_violation() {
    let config = shipped();
    let mut rows = rows(
        &config,
        &[onboarding_deal(&config, "1", &["decision_maker"])],
    );
    rows[1].violation.severity = Severity::High;
    let entries = entries(&config.journey, &rows);

    assert_eq!(entries[0].severity(), Severity::High);
    assert_eq!(
        entries[0].first().violation.rule.as_str(),
        "exit_criteria_unmet"
    );
}

#[test]
fn write_backs_summary_of_the_journey_joins_what_the_journey_joins() {
    let config = shipped();
    let stages = crate::writeback::task_text::Stages::of(&config.journey);
    for without in [
        &["decision_maker"][..],
        &["amount", "budget_confirmed"],
        &["success_criteria", "close_date"],
    ] {
        let rows = rows(&config, &[onboarding_deal(&config, "1", without)]);
        assert_eq!(
            rules_of(&entries(&stages, &rows)),
            rules_of(&entries(&config.journey, &rows)),
            "{without:?}"
        );
    }
}

#[test]
fn a_records_task_lists_one_missing_fact_as_one_item() {
    let config = shipped();
    let stages = crate::writeback::task_text::Stages::of(&config.journey);
    let rows = rows(
        &config,
        &[onboarding_deal(&config, "1", &["decision_maker"])],
    );
    let body = crate::writeback::task_text::record_body(
        "Deal 1",
        ObjectKind::Deal,
        &rows,
        &stages,
        Some(&StageId::new("onboarding")),
    );

    let items: Vec<&str> = body.lines().filter(|l| l.starts_with("[ ]")).collect();
    assert_eq!(items.len(), 1, "{body}");
    assert!(
        items[0].starts_with(
            "[ ] Exit criteria not met, and handoff without the data the next owner needs (medium, stage Decision)"
        ),
        "{body}"
    );
    assert!(
        body.starts_with("Deal 1 (deal) fails 2 journey checks."),
        "{body}"
    );
}
