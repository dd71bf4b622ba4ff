//! `tasks = "per_record"`: one task per record, listing its violations,
//! kept current, completed when none is left; tasks of single violations
//! from before completed; owners and fallbacks.

use super::*;
use crate::writeback::keys::{record_fingerprint, record_task_key};

fn record_key(id: &str, generation: u32) -> ActionKey {
    record_task_key(
        &record_fingerprint(&hubspot(), ObjectKind::Deal, &RecordId::new(id)),
        generation,
    )
}

/// The text the fake CRM holds for the only open task of deal `id`.
fn task_of(connector: &FakeConnector, id: &str) -> crate::fake_connector::FakeTask {
    connector.with(|crm| {
        let open: Vec<_> = crm
            .open_tasks()
            .filter(|t| t.record_id.as_str() == id)
            .cloned()
            .collect();
        assert_eq!(open.len(), 1, "deal {id} has one open task: {open:?}");
        open[0].clone()
    })
}

#[test]
fn a_record_gets_one_task_listing_every_open_violation_most_severe_first() {
    let harness = Harness::new(TaskMode::PerRecord);
    let mut unmet = task_violation("1", BuiltinRule::ExitCriteriaUnmet);
    unmet.severity = Severity::High;
    harness.audit(
        vec![
            stalled("1"),
            unmet,
            task_violation("1", BuiltinRule::OwnerRoleMismatch),
            stalled("2"),
        ],
        day(2, 0),
    );

    let plan = harness.plan();

    assert_eq!(
        records(&plan.writes),
        ["1", "2"],
        "most severe record first"
    );
    let ActionRequest::CreateTask {
        key,
        subject,
        body,
        owner_id,
        priority,
        ..
    } = &plan.writes[0].request
    else {
        panic!("{:?}", plan.writes[0].request)
    };
    assert_eq!(key, &record_key("1", 1));
    assert_eq!(subject, "[journeyd] Deal 1: 3 journey checks to fix");
    assert_eq!(owner_id.as_ref().map(OwnerId::as_str), Some("101"));
    assert_eq!(*priority, journeyd_connector::Priority::High);
    let items: Vec<&str> = body.lines().filter(|l| l.starts_with("[ ]")).collect();
    assert_eq!(items.len(), 3, "{body}");
    assert!(
        items[0].starts_with("[ ] Exit criteria not met (high"),
        "{body}"
    );
    assert!(body.contains("What to do: "), "{body}");
    assert!(
        body.contains("Before it leaves stage Decision, the record needs:\n- budget confirmed\n- close date set"),
        "{body}"
    );
    assert!(
        body.ends_with(&format!("\n\n{TASK_MARKER} {key}")),
        "the text ends with its key, once: {body}"
    );
    assert_eq!(body.matches(TASK_MARKER).count(), 1, "{body}");
    assert_eq!(
        plan.writes[0].rules.len(),
        3,
        "the plan names every check the task lists"
    );
}

#[tokio::test]
async fn a_changed_checklist_updates_the_same_task_under_its_first_key() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    harness.apply(&connector).await;
    let before = task_of(&connector, "1");

    harness.audit(
        vec![
            stalled("1"),
            task_violation("1", BuiltinRule::ExitCriteriaUnmet),
        ],
        day(3, 0),
    );
    let report = harness.apply(&connector).await;

    assert_eq!((report.counts.sent, report.counts.applied), (1, 1));
    let ActionRequest::UpdateTask { key, task_key, .. } = &report.written[0].request else {
        panic!("{:?}", report.written[0].request)
    };
    assert_eq!(key.as_str(), format!("{}_u1", record_key("1", 1)));
    assert_eq!(task_key, &record_key("1", 1));
    let after = task_of(&connector, "1");
    assert_eq!(after.id, before.id, "the same task");
    assert_eq!(after.subject, "[journeyd] Deal 1: 2 journey checks to fix");
    assert_eq!(ActionKey::from_text(&after.body), Some(record_key("1", 1)));
    assert_eq!(after.body.matches(TASK_MARKER).count(), 1, "{}", after.body);
}

#[tokio::test]
async fn a_checklist_whose_messages_changed_but_not_its_violations_is_left_as_it_is() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    harness.apply(&connector).await;

    let mut later = stalled("1");
    later.message = "Deal 1 has been in stage decision for 41 days".into();
    harness.audit(vec![later], day(3, 0));
    let report = harness.apply(&connector).await;

    assert_eq!((report.counts.planned, report.counts.sent), (0, 0));
}

#[tokio::test]
async fn a_task_with_nothing_left_to_fix_is_completed_and_the_next_violation_gets_a_new_one() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    harness.apply(&connector).await;

    harness.audit(Vec::new(), day(3, 0));
    let closed = harness.apply(&connector).await;
    assert!(matches!(
        closed.written[0].request,
        ActionRequest::CompleteTask { .. }
    ));
    assert_eq!(connector.with(|c| c.open_tasks().count()), 0);
    assert_eq!(
        harness.apply(&connector).await.counts.sent,
        0,
        "closed once"
    );

    harness.audit(vec![stalled("1")], day(4, 0));
    let reopened = harness.apply(&connector).await;

    let ActionRequest::CreateTask { key, .. } = &reopened.written[0].request else {
        panic!("{:?}", reopened.written[0].request)
    };
    assert_eq!(key, &record_key("1", 2), "a new generation");
    assert_eq!(task_of(&connector, "1").key, record_key("1", 2));
}

#[tokio::test]
async fn two_open_tasks_never_share_a_subject() {
    let harness = Harness::new(TaskMode::PerRecord);
    let mut twin = stalled("2");
    twin.record_name = Some("Deal 1".into());
    harness.audit(vec![stalled("1"), twin], day(2, 0));
    let connector = crm();

    harness.apply(&connector).await;

    let subjects: std::collections::BTreeSet<String> =
        connector.with(|c| c.open_tasks().map(|t| t.subject.clone()).collect());
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.contains("[journeyd] Deal 1: 1 journey check to fix (deal 2)"));
}

#[tokio::test]
async fn tasks_made_for_single_violations_before_are_completed_once_the_record_has_its_own() {
    let harness = Harness::new(TaskMode::PerRecord);
    let (a, b) = (
        stalled("1"),
        task_violation("1", BuiltinRule::ExitCriteriaUnmet),
    );
    harness.audit(vec![a.clone(), b.clone()], day(2, 0));
    let connector = crm();
    // What `tasks = "per_violation"` left: two tasks on deal 1.
    let mut old = harness.policy.clone();
    old.tasks = TaskMode::PerViolation;
    run(
        &harness.store,
        &connector,
        &WritebackOptions {
            policy: &old,
            ..harness.options(None)
        },
    )
    .await
    .unwrap();
    assert_eq!(connector.with(|c| c.open_tasks().count()), 2);

    let report = harness.apply(&connector).await;

    let kinds: Vec<&str> = report
        .written
        .iter()
        .map(|w| match w.request {
            ActionRequest::CreateTask { .. } => "create",
            ActionRequest::CompleteTask { .. } => "complete",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["create", "complete", "complete"]);
    assert_eq!(task_of(&connector, "1").key, record_key("1", 1));
    assert_eq!(harness.apply(&connector).await.counts.sent, 0);
}

#[tokio::test]
async fn the_task_of_an_inactive_owners_record_goes_to_the_fallback_owner_of_the_stages_role() {
    let mut harness = Harness::new(TaskMode::PerRecord);
    harness.owners(vec![
        owner("102", "Gone Away", false),
        owner("103", "Sam Sales", true),
    ]);
    harness.deal("1", "102");
    harness.deal("2", "102");
    harness
        .config
        .fallback_owners
        .insert(RoleId::new("sales"), "sam.sales@example.com".into());
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();

    let report = harness.apply(&connector).await;

    assert_eq!(report.counts.applied, 1);
    assert_eq!(task_of(&connector, "1").owner_id, Some(OwnerId::new("103")));
    harness.config.fallback_owners.clear();
    harness.audit(vec![stalled("1"), stalled("2")], day(3, 0));
    let plan = harness.plan();
    assert_eq!(plan.unassigned_count, 1, "{plan:?}");
    assert_eq!(plan.unassigned[0].record_id.as_str(), "2");
    assert!(
        plan.unassigned[0]
            .reason
            .contains("no fallback owner is set for role sales"),
        "{}",
        plan.unassigned[0].reason
    );
    assert_eq!(plan.deferred, 0, "an unassigned task is not deferred");
}

#[test]
fn outside_the_journeys_stages_a_task_goes_to_the_fallback_of_the_role_its_worst_violation_names() {
    let mut harness = Harness::new(TaskMode::PerRecord);
    harness.owners(vec![
        owner("102", "Gone Away", false),
        owner("103", "Sam Sales", true),
    ]);
    harness.deal("1", "102");
    harness
        .config
        .fallback_owners
        .insert(RoleId::new("sales"), "sam.sales@example.com".into());
    // The deal left the journey (a closed stage): its stage names no role.
    harness
        .store
        .call_blocking(|s| {
            let run = s.begin_run(RunKind::Audit, None, day(2, 0))?;
            let mut writer = s.begin_audit(run, &[hubspot()], day(2, 0), day(2, 0).date_naive())?;
            writer.record_chunk(
                &[stalled("1")],
                &[RecordState {
                    connector: hubspot(),
                    object: ObjectKind::Deal,
                    record_id: RecordId::new("1"),
                    stage: None,
                    stage_index: None,
                    max_stage_index: None,
                    record_rowid: None,
                    stage_entered_on: None,
                    stalled: false,
                    owner_id: Some(OwnerId::new("102")),
                    owner_role: None,
                    recheck_on: None,
                }],
            )?;
            writer.finish()?;
            Ok::<_, StoreError>(())
        })
        .unwrap();

    let plan = harness.plan();

    assert_eq!(plan.unassigned_count, 0, "{plan:?}");
    let ActionRequest::CreateTask { owner_id, .. } = &plan.writes[0].request else {
        panic!("{:?}", plan.writes[0].request)
    };
    assert_eq!(owner_id.as_ref().map(OwnerId::as_str), Some("103"));
}

#[test]
fn the_paged_plan_is_the_plan_read_at_once() {
    let harness = Harness::new(TaskMode::PerRecord);
    let mut violations = Vec::new();
    for id in 1..=7 {
        violations.push(stalled(&id.to_string()));
        if id % 2 == 0 {
            violations.push(task_violation(
                &id.to_string(),
                BuiltinRule::ExitCriteriaUnmet,
            ));
        }
    }
    violations.push(mismatch("8", "customer"));
    harness.audit(violations, day(2, 0));
    let whole = harness.plan();
    assert_eq!(whole.writes.len(), 8);
    for page in [1, 2, 3] {
        assert_eq!(harness.plan_paged(page), whole, "pages of {page}");
    }
}
