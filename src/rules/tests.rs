//! Specifications of every rule: each fires on the record built to break it
//! and stays quiet on the one built to pass. One `check` helper runs the
//! whole rule set, so each test also shows no other rule fires by accident.

use crate::config::{
    Checks, Connection, ConnectorConfig, CustomRule, LifecycleMap, OnboardingCheck, RoleMap,
};
use crate::journey::record::{OwnerInfo, StageRef, Step};
use crate::journey::{Criterion, Expr, Journey, JourneyRecord, RoleId, Stage, StageId};
use crate::rules::{
    ActionKind, MessageTemplate, Peer, PlannedAction, RuleId, RuleSet, Severity, render_days,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use journeyd_connector::{
    ConnectorName, ObjectKind, OwnerId, RecordId, System, TaskRef, TaskStatus,
};
use std::collections::{BTreeMap, BTreeSet};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn stage(
    id: &str,
    role: &str,
    criteria: &[(&str, &str)],
    handoff: &[&str],
    max_days: u32,
) -> Stage {
    Stage {
        id: StageId::new(id),
        name: id.to_uppercase(),
        owner_role: RoleId::new(role),
        exit_criteria: criteria
            .iter()
            .map(|(name, expr)| Criterion {
                name: (*name).to_owned(),
                expr: Expr::compile(expr).unwrap(),
            })
            .collect(),
        handoff_fields: handoff.iter().map(|f| (*f).to_owned()).collect(),
        max_days: Some(max_days),
    }
}

/// A four-stage journey: sales owns the first two, onboarding the third.
fn journey() -> Journey {
    Journey {
        timezone: chrono_tz::UTC,
        name: "test".into(),
        roles: ["marketing", "sales", "onboarding"]
            .map(RoleId::new)
            .to_vec(),
        stages: vec![
            stage(
                "awareness",
                "sales",
                &[("email_known", "has(record.email)")],
                &[],
                30,
            ),
            stage(
                "decision",
                "sales",
                &[
                    (
                        "budget_confirmed",
                        "has(record.fields.budget) && record.fields.budget == true",
                    ),
                    ("close_date_set", "has(record.close_date)"),
                ],
                &["success_criteria"],
                20,
            ),
            stage("onboarding", "onboarding", &[], &[], 40),
            stage("adoption", "onboarding", &[], &[], 90),
        ],
    }
}

fn checks() -> Checks {
    Checks {
        disabled: BTreeSet::new(),
        severity: BTreeMap::new(),
        onboarding: Some(OnboardingCheck {
            stage: StageId::new("onboarding"),
            after_days: 7,
            subject_contains: "onboarding".into(),
        }),
    }
}

fn connector() -> ConnectorConfig {
    ConnectorConfig {
        name: ConnectorName::new("crm"),
        system: System::Hubspot,
        secret: None,
        stages: BTreeMap::new(),
        outside: BTreeMap::new(),
        roles: RoleMap::default(),
        fallback_owners: BTreeMap::new(),
        fields: BTreeMap::new(),
        lifecycle: Some(LifecycleMap {
            field: "lifecyclestage".into(),
            values: [("opportunity", "decision"), ("customer", "onboarding")]
                .map(|(v, s)| (v.to_owned(), StageId::new(s)))
                .into(),
        }),
        objects: ObjectKind::ALL.into_iter().collect(),
        connection: Connection::unreached(),
    }
}

fn mapped(id: &str) -> StageRef {
    let index = journey().index_of(&StageId::new(id)).unwrap();
    StageRef::Mapped {
        id: StageId::new(id),
        index,
    }
}

fn owner(role: &str) -> Option<OwnerInfo> {
    Some(OwnerInfo {
        id: OwnerId::new("u1"),
        name: Some("Dana".into()),
        active: Some(true),
        role: Some(RoleId::new(role)),
    })
}

/// A deal in `decision` that passes every rule.
fn healthy_deal() -> JourneyRecord {
    JourneyRecord {
        connector: ConnectorName::new("crm"),
        system: System::Hubspot,
        object: ObjectKind::Deal,
        id: RecordId::new("d1"),
        name: Some("Acme renewal".into()),
        url: None,
        in_journey: true,
        stage: mapped("decision"),
        owner: owner("sales"),
        entered_stage_at: Some(now() - Duration::days(3)),
        lifecycle: Some(("opportunity".into(), Some(StageId::new("decision")))),
        amount: Some(5000.0),
        currency: Some("EUR".into()),
        email: Some("buyer@acme.example".into()),
        domain: None,
        created_at: now() - Duration::days(40),
        modified_at: now() - Duration::days(1),
        close_date: None,
        contract_start: None,
        contract_end: None,
        fields: BTreeMap::new(),
        account: None,
        contacts: Vec::new(),
        tasks: Vec::new(),
        history: vec![step("awareness", 40), step("decision", 3)],
    }
}

fn step(stage: &str, days_ago: i64) -> Step {
    Step {
        native: stage.to_owned(),
        stage: mapped(stage),
        at: now() - Duration::days(days_ago),
    }
}

/// Runs the whole rule set and returns the rules that fired, sorted.
fn fired_with(
    record: &JourneyRecord,
    peers: &[Peer],
    custom: &[CustomRule],
    checks: &Checks,
) -> Vec<String> {
    let journey = journey();
    let actions = BTreeMap::new();
    let rules = RuleSet::new(&journey, checks, custom, &actions);
    rule_ids(rules.evaluate(&connector(), record, peers, now()))
}

/// The rules an evaluation found broken, sorted.
fn rule_ids(evaluation: crate::rules::Evaluation) -> Vec<String> {
    let mut fired: Vec<String> = evaluation
        .violations
        .into_iter()
        .map(|v| v.rule.to_string())
        .collect();
    fired.sort();
    fired
}

/// The whole rule set on one record, without duplicate peers.
fn evaluate(
    record: &JourneyRecord,
    custom: &[CustomRule],
    actions: BTreeMap<RuleId, ActionKind>,
    when: DateTime<Utc>,
) -> crate::rules::Evaluation {
    let journey = journey();
    let checks = checks();
    let rules = RuleSet::new(&journey, &checks, custom, &actions);
    rules.evaluate(&connector(), record, &[], when)
}

fn fired(record: &JourneyRecord) -> Vec<String> {
    fired_with(record, &[], &[], &checks())
}

fn check(record: JourneyRecord, expected: &[&str]) {
    assert_eq!(fired(&record), expected, "record: {record:#?}");
}

#[test]
fn a_healthy_record_breaks_no_rule() {
    check(healthy_deal(), &[]);
}

#[test]
fn missing_owner_fires_without_an_owner() {
    check(
        JourneyRecord {
            owner: None,
            ..healthy_deal()
        },
        &["missing_owner"],
    );
}

#[test]
fn missing_owner_fires_for_an_inactive_owner() {
    let mut record = healthy_deal();
    record.owner.as_mut().unwrap().active = Some(false);
    check(record, &["missing_owner"]);
}

#[test]
fn missing_owner_stays_quiet_for_an_owner_not_in_the_owner_list() {
    let mut record = healthy_deal();
    record.owner.as_mut().unwrap().active = None;
    check(record, &[]);
}

#[test]
fn owner_role_mismatch_fires_when_the_owner_has_another_role() {
    check(
        JourneyRecord {
            owner: owner("marketing"),
            ..healthy_deal()
        },
        &["owner_role_mismatch"],
    );
}

#[test]
fn owner_role_mismatch_fires_when_the_owner_has_no_role() {
    let mut record = healthy_deal();
    record.owner.as_mut().unwrap().role = None;
    check(record, &["owner_role_mismatch"]);
}

#[test]
fn exit_criteria_unmet_fires_for_an_earlier_stage_and_names_the_criterion() {
    let record = JourneyRecord {
        email: None,
        ..healthy_deal()
    };
    assert_eq!(fired(&record), ["exit_criteria_unmet"]);
    let violation = &evaluate(&record, &[], BTreeMap::new(), now()).violations[0];
    assert_eq!(violation.stage, Some(StageId::new("awareness")));
    assert!(
        violation.message.contains("email_known"),
        "{}",
        violation.message
    );
    assert!(
        violation.message.contains("\"Acme renewal\""),
        "{}",
        violation.message
    );
}

#[test]
fn exit_criteria_of_the_current_stage_are_work_in_progress_not_violations() {
    // decision's criteria (budget, close date) are unmet, but the deal is still in decision.
    check(healthy_deal(), &[]);
}

#[test]
fn exit_criteria_that_cannot_be_evaluated_count_as_unmet_and_are_reported() {
    let mut journey = journey();
    journey.stages[0].exit_criteria[0].expr = Expr::compile("record.fields.score > 10").unwrap();
    let checks = checks();
    let actions = BTreeMap::new();
    let rules = RuleSet::new(&journey, &checks, &[], &actions);
    let evaluation = rules.evaluate(&connector(), &healthy_deal(), &[], now());
    assert_eq!(evaluation.violations.len(), 1);
    assert!(
        evaluation.violations[0]
            .message
            .contains("could not be evaluated")
    );
    assert_eq!(evaluation.expression_errors.len(), 1);
}

#[test]
fn stage_skipped_fires_when_history_jumps_over_a_stage() {
    let record = JourneyRecord {
        stage: mapped("onboarding"),
        owner: owner("onboarding"),
        fields: [("success_criteria".to_owned(), "99% uptime".into())].into(),
        lifecycle: None,
        history: vec![step("awareness", 30), step("onboarding", 3)],
        ..healthy_deal()
    };
    // Skipping decision also skips its exit criteria.
    check(record, &["exit_criteria_unmet", "stage_skipped"]);
}

#[test]
fn stage_skipped_stays_quiet_for_backward_moves_and_creation_in_a_later_stage() {
    let record = JourneyRecord {
        history: vec![
            step("decision", 10),
            step("awareness", 5),
            step("decision", 3),
        ],
        ..healthy_deal()
    };
    check(record, &[]);
}

#[test]
fn days_in_stage_are_calendar_days_of_the_orgs_time_zone() {
    // 22:00 on 1 March in Los Angeles, then 01:00 on 2 March there: three
    // hours, one day in the org's calendar, none in UTC's.
    let entered = DateTime::parse_from_rfc3339("2026-03-02T06:00:00Z")
        .unwrap()
        .to_utc();
    let later = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .to_utc();
    let record = JourneyRecord {
        entered_stage_at: Some(entered),
        ..healthy_deal()
    };
    assert_eq!(
        record.days_in_stage(later, chrono_tz::America::Los_Angeles),
        Some(1)
    );
    assert_eq!(record.days_in_stage(later, chrono_tz::UTC), Some(0));
}

#[test]
fn stalled_fires_past_max_days() {
    check(
        JourneyRecord {
            entered_stage_at: Some(now() - Duration::days(21)),
            ..healthy_deal()
        },
        &["stalled"],
    );
}

#[test]
fn stalled_stays_quiet_on_the_last_allowed_day() {
    check(
        JourneyRecord {
            entered_stage_at: Some(now() - Duration::days(20)),
            ..healthy_deal()
        },
        &[],
    );
}

fn onboarding_deal() -> JourneyRecord {
    JourneyRecord {
        stage: mapped("onboarding"),
        owner: owner("onboarding"),
        lifecycle: Some(("customer".into(), Some(StageId::new("onboarding")))),
        fields: [
            (
                "success_criteria".to_owned(),
                serde_json::json!("go-live by Q3"),
            ),
            ("budget".to_owned(), serde_json::json!(true)),
        ]
        .into(),
        close_date: Some(now().date_naive()),
        history: vec![
            step("awareness", 40),
            step("decision", 20),
            step("onboarding", 3),
        ],
        ..healthy_deal()
    }
}

#[test]
fn handoff_incomplete_fires_when_a_role_change_lacks_handoff_fields() {
    let mut record = onboarding_deal();
    record.fields.remove("success_criteria");
    check(record, &["handoff_incomplete"]);
}

#[test]
fn handoff_incomplete_stays_quiet_when_the_fields_are_there() {
    check(onboarding_deal(), &[]);
}

#[test]
fn lifecycle_mismatch_fires_and_plans_the_value_of_the_journey_stage() {
    let record = JourneyRecord {
        lifecycle: Some(("customer".into(), Some(StageId::new("onboarding")))),
        ..healthy_deal()
    };
    assert_eq!(fired(&record), ["lifecycle_mismatch"]);
    let violation = &evaluate(&record, &[], BTreeMap::new(), now()).violations[0];
    assert_eq!(
        violation.action,
        PlannedAction::SetLifecycle {
            field: "lifecyclestage".into(),
            value: "opportunity".into()
        }
    );
}

#[test]
fn lifecycle_mismatch_ignores_values_the_map_does_not_name() {
    check(
        JourneyRecord {
            lifecycle: Some(("evangelist".into(), None)),
            ..healthy_deal()
        },
        &[],
    );
}

#[test]
fn unmapped_stage_fires_for_a_native_stage_without_mapping() {
    let record = JourneyRecord {
        stage: StageRef::Unmapped("negotiation_v2".into()),
        lifecycle: None,
        ..healthy_deal()
    };
    check(record, &["unmapped_stage"]);
}

#[test]
fn records_outside_the_journey_are_only_checked_for_duplicates_and_custom_rules() {
    check(
        JourneyRecord {
            in_journey: false,
            owner: None,
            stage: StageRef::None,
            ..healthy_deal()
        },
        &[],
    );
}

fn peer(id: &str, days_ago: i64) -> Peer {
    Peer {
        id: RecordId::new(id),
        name: Some("Other".into()),
        created_at: now() - Duration::days(days_ago),
        key: "buyer@acme.example".into(),
    }
}

#[test]
fn duplicate_record_fires_on_the_younger_of_two_records() {
    let record = healthy_deal(); // created 40 days ago
    assert_eq!(
        fired_with(&record, &[peer("d0", 50)], &[], &checks()),
        ["duplicate_record"]
    );
}

#[test]
fn duplicate_record_leaves_the_original_alone() {
    let record = healthy_deal();
    assert!(fired_with(&record, &[peer("d9", 10)], &[], &checks()).is_empty());
}

fn task(subject: &str) -> TaskRef {
    TaskRef {
        id: "t1".into(),
        subject: subject.into(),
        status: TaskStatus::Open,
        owner_id: None,
        due: None,
        by_journeyd: false,
    }
}

#[test]
fn missing_onboarding_task_fires_after_the_grace_days() {
    let record = JourneyRecord {
        entered_stage_at: Some(now() - Duration::days(8)),
        ..onboarding_deal()
    };
    check(record, &["missing_onboarding_task"]);
}

#[test]
fn missing_onboarding_task_stays_quiet_with_a_matching_task() {
    let record = JourneyRecord {
        entered_stage_at: Some(now() - Duration::days(8)),
        tasks: vec![task("Kick-off: Onboarding call")],
        ..onboarding_deal()
    };
    check(record, &[]);
}

#[test]
fn missing_onboarding_task_fires_when_the_only_onboarding_task_is_journeyds_own() {
    let record = JourneyRecord {
        entered_stage_at: Some(now() - Duration::days(8)),
        tasks: vec![TaskRef {
            by_journeyd: true,
            ..task("[journeyd] Deal 1: 1 journey check to fix (No onboarding task)")
        }],
        ..onboarding_deal()
    };
    check(record, &["missing_onboarding_task"]);
}

#[test]
fn journeyds_own_tasks_never_reach_the_record_the_rules_judge() {
    let mut crm = journeyd_connector::CrmRecord {
        system: System::Hubspot,
        object: ObjectKind::Deal,
        id: RecordId::new("1"),
        name: None,
        url: None,
        owner_id: None,
        stage: None,
        lifecycle_status: None,
        stage_entered_at: None,
        amount: None,
        currency: None,
        email: None,
        domain: None,
        created_at: now(),
        modified_at: now(),
        close_date: None,
        contract_start: None,
        contract_end: None,
        fields: BTreeMap::new(),
        associations: Default::default(),
        tasks: vec![
            task("Onboarding kickoff"),
            TaskRef {
                id: "t2".into(),
                by_journeyd: true,
                ..task("[journeyd] Onboarding")
            },
        ],
        stage_history: Vec::new(),
    };
    crm.tasks[0].id = "t1".into();
    let record =
        crate::journey::normalize::normalize(&journey(), &connector(), &Default::default(), crm);
    let ids: Vec<&str> = record.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t1"]);
}

#[test]
fn disabled_rules_do_not_fire() {
    let mut checks = checks();
    checks
        .disabled
        .insert(crate::rules::BuiltinRule::MissingOwner);
    assert!(
        fired_with(
            &JourneyRecord {
                owner: None,
                ..healthy_deal()
            },
            &[],
            &[],
            &checks
        )
        .is_empty()
    );
}

fn custom(condition: &str, objects: &[ObjectKind], stages: &[&str]) -> CustomRule {
    CustomRule {
        id: RuleId::new("big_deal_no_sponsor"),
        condition: Expr::compile(condition).unwrap(),
        severity: Severity::High,
        message: MessageTemplate::parse("{record} needs a sponsor ({amount})").unwrap(),
        action: ActionKind::Task,
        objects: objects.iter().copied().collect(),
        stages: stages.iter().map(|s| StageId::new(*s)).collect(),
    }
}

#[test]
fn custom_rules_fire_when_their_condition_holds_and_render_their_message() {
    let rule = custom(
        "record.amount > 1000.0 && !has(record.fields.sponsor)",
        &[],
        &[],
    );
    let evaluation = evaluate(&healthy_deal(), &[rule], BTreeMap::new(), now());
    let violation = &evaluation.violations[0];
    assert_eq!(violation.rule.as_str(), "big_deal_no_sponsor");
    assert_eq!(violation.severity, Severity::High);
    assert_eq!(
        violation.message,
        "deal \"Acme renewal\" (d1) needs a sponsor (5000.00 EUR)"
    );
}

#[test]
fn custom_rules_stay_quiet_when_their_condition_is_false() {
    let rule = custom("record.amount > 100000.0", &[], &[]);
    assert!(fired_with(&healthy_deal(), &[], &[rule], &checks()).is_empty());
}

#[test]
fn custom_rules_apply_only_to_their_objects_and_stages() {
    let contact_only = custom("true", &[ObjectKind::Contact], &[]);
    let onboarding_only = custom("true", &[], &["onboarding"]);
    assert!(
        fired_with(
            &healthy_deal(),
            &[],
            &[contact_only, onboarding_only],
            &checks()
        )
        .is_empty()
    );
}

#[test]
fn a_custom_condition_that_errors_is_reported_not_fired() {
    let rule = custom("record.fields.sponsor == 'x'", &[], &[]);
    let evaluation = evaluate(&healthy_deal(), &[rule], BTreeMap::new(), now());
    assert!(evaluation.violations.is_empty());
    assert_eq!(evaluation.expression_errors.len(), 1);
}

#[test]
fn fingerprints_are_stable_across_runs_and_ignore_the_message() {
    let record = JourneyRecord {
        entered_stage_at: Some(now() - Duration::days(25)),
        ..healthy_deal()
    };
    let first = evaluate(&record, &[], BTreeMap::new(), now()).violations;
    let later = evaluate(&record, &[], BTreeMap::new(), now() + Duration::days(3)).violations;
    assert_ne!(
        render_days(&first[0].message, first[0].stage_since, now().date_naive()),
        render_days(
            &later[0].message,
            later[0].stage_since,
            (now() + Duration::days(3)).date_naive()
        ),
        "days in stage moved on"
    );
    assert_eq!(
        first[0].message, later[0].message,
        "the message as stored counts no days: it reads the same every night"
    );
    assert_eq!(first[0].fingerprint, later[0].fingerprint);
    // Pinned: a change of fingerprint format would duplicate every row of
    // an existing violations log on upgrade.
    assert_eq!(
        first[0].fingerprint.as_str(),
        "671d174be4f1c6f2a7b9a554a66769b7"
    );
}

#[test]
fn the_action_policy_overrides_a_rules_default_action() {
    let record = JourneyRecord {
        owner: None,
        ..healthy_deal()
    };
    let violation = &evaluate(
        &record,
        &[],
        [(RuleId::new("missing_owner"), ActionKind::None)].into(),
        now(),
    )
    .violations[0];
    assert_eq!(violation.action, PlannedAction::None);
}

/// What fires on `record` at `when`, by rule id.
fn fired_at(record: &JourneyRecord, when: DateTime<Utc>) -> Vec<String> {
    rule_ids(evaluate(record, &[], BTreeMap::new(), when))
}

/// `when` moved to the org date `on`, at the same time of day.
fn on_day(when: DateTime<Utc>, on: chrono::NaiveDate) -> DateTime<Utc> {
    on.and_time(when.time()).and_utc()
}

#[test]
fn a_record_not_yet_stalled_is_rechecked_on_the_day_it_stalls() {
    let record = healthy_deal();
    let recheck = evaluate(&record, &[], BTreeMap::new(), now())
        .recheck_on
        .expect("a recheck date");
    let before = on_day(now(), recheck - Duration::days(1));
    assert!(!fired_at(&record, before).contains(&"stalled".to_owned()));
    assert!(fired_at(&record, on_day(now(), recheck)).contains(&"stalled".to_owned()));
}

#[test]
fn a_won_deal_is_rechecked_on_the_day_its_onboarding_task_falls_due() {
    let record = JourneyRecord {
        entered_stage_at: Some(now() - Duration::days(3)),
        ..onboarding_deal()
    };
    let recheck = evaluate(&record, &[], BTreeMap::new(), now())
        .recheck_on
        .expect("a recheck date");
    let rule = "missing_onboarding_task".to_owned();
    assert!(!fired_at(&record, on_day(now(), recheck - Duration::days(1))).contains(&rule));
    assert!(fired_at(&record, on_day(now(), recheck)).contains(&rule));
}

#[test]
fn a_stalled_record_whose_rules_read_no_clock_needs_no_recheck() {
    let record = JourneyRecord {
        entered_stage_at: Some(now() - Duration::days(60)),
        ..healthy_deal()
    };
    let evaluation = evaluate(&record, &[], BTreeMap::new(), now());
    assert!(
        evaluation
            .violations
            .iter()
            .any(|v| v.rule.as_str() == "stalled")
    );
    assert_eq!(evaluation.recheck_on, None);
}
