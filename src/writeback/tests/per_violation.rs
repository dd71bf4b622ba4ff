//! `tasks = "per_violation"`: one task per violation, and field writes.

use super::*;
use crate::store::{ViolationId, ViolationRow, ViolationStatus, WriteCandidate};
use crate::writeback::owners::Fallbacks;

fn row(violation: Violation) -> ViolationRow {
    ViolationRow {
        id: ViolationId(1),
        violation,
        status: ViolationStatus::Open,
        status_reason: None,
        suppressed_until: None,
        first_seen: day(1, 0),
        last_seen: day(1, 0),
        last_run: None,
        resolved_at: None,
    }
}

fn candidate(violation: Violation) -> WriteCandidate {
    WriteCandidate {
        violation: row(violation),
        current: None,
        failed: None,
        owner_id: Some(OwnerId::new("101")),
        owner_active: Some(true),
        owner_name: Some("Dana Deal".into()),
    }
}

fn judged(candidate: &WriteCandidate, policy: &WritebackPolicy) -> Verdict {
    let due = NaiveDate::from_ymd_opt(2024, 5, 13).unwrap();
    judge(candidate, policy, &Fallbacks::default(), due)
}

#[test]
fn a_violation_gets_a_task_for_its_owner_keyed_by_its_fingerprint_and_carrying_the_key() {
    let v = stalled("7");
    let Verdict::Write(write) = judged(&candidate(v.clone()), &policy(TaskMode::PerViolation))
    else {
        panic!("no write")
    };
    let ActionRequest::CreateTask {
        key,
        owner_id,
        subject,
        body,
        priority,
        ..
    } = &write.request
    else {
        panic!("{:?}", write.request)
    };
    assert_eq!(key.as_str(), format!("jd{}t", v.fingerprint));
    assert_eq!(owner_id.as_ref().map(OwnerId::as_str), Some("101"));
    assert_eq!(write.owner.as_deref(), Some("Dana Deal"));
    assert_eq!(subject, "[journeyd] stalled: Deal 7");
    assert!(
        body.starts_with("deal 7 breaks stalled\n\nWhat to do: "),
        "{body}"
    );
    assert!(body.ends_with(&format!("\n{TASK_MARKER} {key}")), "{body}");
    assert_eq!(*priority, journeyd_connector::Priority::Normal);
}

#[test]
fn a_task_whose_owner_is_inactive_and_has_no_fallback_is_unassigned_never_created_without_owner() {
    let mut inactive = candidate(stalled("7"));
    inactive.owner_active = Some(false);
    let Verdict::Unassigned(entry) = judged(&inactive, &policy(TaskMode::PerViolation)) else {
        panic!("a task was planned for nobody")
    };
    assert_eq!(entry.record, "Deal 7");
    assert!(
        entry
            .reason
            .starts_with("its owner Dana Deal (101) is inactive"),
        "{}",
        entry.reason
    );
}

#[test]
fn tasks_go_only_on_allowed_objects_and_fields_only_on_the_allow_list() {
    let mut on_contact = stalled("1");
    on_contact.object = ObjectKind::Contact;
    let mut other_field = mismatch("2", "customer");
    other_field.action = PlannedAction::SetLifecycle {
        field: "hs_lead_status".into(),
        value: "OPEN".into(),
    };
    for v in [on_contact, other_field] {
        assert!(
            matches!(
                judged(&candidate(v), &policy(TaskMode::PerViolation)),
                Verdict::NotAllowed(_)
            ),
            "refused"
        );
    }
}

#[test]
fn the_cap_keeps_the_most_severe_writes_and_defers_the_rest() {
    let mut harness = Harness::new(TaskMode::PerViolation);
    harness.policy.max_writes_per_run = NonZeroU32::new(2).unwrap();
    let mut high = stalled("3");
    high.severity = Severity::High;
    harness.audit(vec![stalled("1"), stalled("2"), high], day(2, 0));

    let plan = harness.plan();

    assert_eq!(records(&plan.writes), ["3", "1"]);
    assert_eq!(plan.deferred, 1);
}

#[test]
fn the_paged_plan_is_the_plan_read_at_once() {
    let harness = Harness::new(TaskMode::PerViolation);
    let violations: Vec<Violation> = (1..=9)
        .map(|i| {
            if i % 3 == 0 {
                mismatch(&i.to_string(), "customer")
            } else {
                stalled(&i.to_string())
            }
        })
        .collect();
    harness.audit(violations, day(2, 0));
    let whole = harness.plan();
    for page in [1, 2, 4] {
        assert_eq!(harness.plan_paged(page), whole, "pages of {page}");
    }
    assert_eq!(whole.writes.len(), 9);
}

#[tokio::test]
async fn applying_writes_each_planned_action_once_and_a_second_run_plans_nothing() {
    let harness = Harness::new(TaskMode::PerViolation);
    harness.audit(
        vec![stalled("1"), stalled("2"), mismatch("3", "customer")],
        day(2, 0),
    );
    let connector = crm();

    let report = harness.apply(&connector).await;
    let again = harness.apply(&connector).await;

    assert_eq!(report.status, RunStatus::Ok);
    assert_eq!((report.counts.sent, report.counts.applied), (3, 3));
    assert_eq!(connector.with(|c| c.batches.len()), 2, "batches of 2");
    assert!(
        report.plan.writes.is_empty(),
        "an applied run lists writes once"
    );
    assert_eq!(
        (again.counts.planned, again.counts.sent, again.counts.known),
        (0, 0, 3)
    );
    assert!(tasks_by_key(&connector).values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_failed_write_is_retried_until_it_failed_three_times_then_parked() {
    let harness = Harness::new(TaskMode::PerViolation);
    let v = stalled("1");
    harness.audit(vec![v.clone()], day(2, 0));
    let connector = crm();
    connector.with(|c| {
        c.refuse
            .insert(task_key(&v.fingerprint), ("http 503".into(), true))
    });

    for _ in 0..3 {
        let report = harness.apply(&connector).await;
        assert_eq!((report.counts.sent, report.counts.failed), (1, 1));
    }
    let fourth = harness.apply(&connector).await;

    assert_eq!((fourth.counts.sent, fourth.counts.parked), (0, 1));
    let parked = harness.ledger(LedgerState::Parked);
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("failed 3 times"),
        "{:?}",
        parked[0].error
    );
}

#[tokio::test]
async fn the_task_of_a_resolved_violation_is_completed_once() {
    let harness = Harness::new(TaskMode::PerViolation);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    harness.apply(&connector).await;
    harness.audit(Vec::new(), day(3, 0));

    let report = harness.apply(&connector).await;
    let again = harness.apply(&connector).await;

    assert_eq!(report.counts.applied, 1);
    assert!(matches!(
        report.written[0].request,
        ActionRequest::CompleteTask { .. }
    ));
    assert_eq!(again.counts.sent, 0);
    assert_eq!(connector.with(|c| c.open_tasks().count()), 0);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_to_the_crm_or_the_store() {
    let harness = Harness::new(TaskMode::PerViolation);
    harness.audit(vec![stalled("1"), mismatch("2", "customer")], day(2, 0));

    let report = harness.dry_run().await;

    assert_eq!((report.applied, report.counts.planned), (false, 2));
    assert!(harness.ledger(LedgerState::Sent).is_empty());
    assert!(harness.ledger(LedgerState::Pending).is_empty());
}
