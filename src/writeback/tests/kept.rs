//! A plan judges again only the records whose inputs changed since the
//! last one and reads the rest from what it kept: whatever changed, that
//! plan is the plan a whole one would make.

use super::*;
use crate::store::PlanClass;

impl Harness {
    /// The plan made from every record, as if none had been planned before.
    fn plan_whole(&self) -> Plan {
        self.store
            .call_blocking(|s| s.forget_plan(&hubspot()))
            .unwrap();
        self.plan()
    }

    /// The digest of the config a plan judges under now.
    fn basis_digest(&self) -> String {
        plan::basis_digest(&Planning {
            connector: &self.config,
            policy: &self.policy,
            stages: &task_text::Stages::of(&self.journey),
            today: today(),
            room: 0,
        })
    }

    /// Whether the next plan would judge every record, and the records it
    /// would judge otherwise. Begins that plan's scope: where it is whole,
    /// its basis is marked as under way, and the next plan is whole too.
    fn next_scope(&self) -> (bool, Vec<i64>) {
        let digest = self.basis_digest();
        self.store
            .call_blocking(move |s| {
                let noted = s.plan_noted()?;
                let scope = s.begin_plan(&hubspot(), &digest)?;
                Ok::<_, StoreError>((scope.whole, noted))
            })
            .unwrap()
    }

    /// Plans from what the last plan kept, and checks it made the plan a
    /// whole one makes (the tests check what it judged with
    /// [`Harness::next_scope`]).
    fn assert_kept_plan_is_the_whole_plan(&self) -> Plan {
        let kept = self.plan();
        let whole = self.plan_whole();
        assert_eq!(kept, whole, "the kept plan is the whole plan");
        kept
    }

    fn acknowledge(&self, violation: &Violation) {
        let fingerprint = violation.fingerprint.to_string();
        self.store
            .call_blocking(move |s| {
                let row = s.violation(&fingerprint)?.expect("the violation is stored");
                s.acknowledge(row.id, "admin", "known", day(3, 0))
            })
            .unwrap();
    }
}

#[test]
fn a_plan_with_nothing_changed_since_the_last_judges_no_record_again() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1"), stalled("2")], day(2, 0));
    let first = harness.plan();

    assert_eq!(harness.next_scope(), (false, vec![]));
    assert_eq!(harness.plan(), first);
}

#[test]
fn the_first_plan_and_a_plan_after_the_config_changed_judge_every_record() {
    let mut harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    assert!(harness.next_scope().0, "no plan yet");
    harness.plan();
    assert!(!harness.next_scope().0);

    harness
        .config
        .fallback_owners
        .insert(RoleId::new("sales"), "102".into());

    assert!(harness.next_scope().0, "the fallback owners changed");
    harness.assert_kept_plan_is_the_whole_plan();
}

#[test]
fn a_plan_after_an_owner_changed_judges_every_record() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    harness.plan();

    harness.owners(vec![owner("101", "Dana Deal", false)]);

    assert!(harness.next_scope().0);
    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert_eq!(plan.unassigned_count, 1, "{plan:?}");
}

#[test]
fn a_violation_found_or_resolved_is_judged_again_on_its_record_alone() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1"), stalled("2"), stalled("3")], day(2, 0));
    harness.plan();

    harness.audit(
        vec![
            stalled("1"),
            task_violation("1", BuiltinRule::ExitCriteriaUnmet),
            stalled("3"),
        ],
        day(3, 0),
    );

    let (whole, noted) = harness.next_scope();
    assert!(!whole);
    assert_eq!(noted.len(), 2, "deals 1 and 2: {noted:?}");
    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert_eq!(records(&plan.writes), ["1", "3"]);
}

#[tokio::test]
async fn a_task_written_and_then_changed_is_planned_from_its_ledger_as_it_is() {
    let harness = Harness::new(TaskMode::PerRecord);
    let crm = crm();
    harness.audit(vec![stalled("1"), stalled("2")], day(2, 0));
    harness.apply(&crm).await;

    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert!(plan.writes.is_empty(), "both tasks say what they should");

    harness.audit(
        vec![
            stalled("1"),
            task_violation("1", BuiltinRule::ExitCriteriaUnmet),
        ],
        day(3, 0),
    );
    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert!(
        matches!(
            plan.writes.iter().map(|w| &w.request).collect::<Vec<_>>()[..],
            [
                ActionRequest::UpdateTask { .. },
                ActionRequest::CompleteTask { .. }
            ]
        ),
        "deal 1's task is updated, deal 2's completed: {plan:?}"
    );
}

#[test]
fn a_failed_write_is_planned_again_from_the_ledger_as_it_is() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let create = harness.plan().writes[0].clone();
    harness
        .store
        .call_blocking(move |s| s.ledger_send(&hubspot(), &[create.staged()], day(2, 1)))
        .unwrap();
    assert_eq!(harness.assert_kept_plan_is_the_whole_plan().known, 1);

    let key = harness.ledger(LedgerState::Sent)[0].key.clone();
    harness
        .store
        .call_blocking(move |s| {
            s.ledger_mark_all(
                &[LedgerMark {
                    error: Some("http 503".into()),
                    ..LedgerMark::new(key, LedgerState::Failed)
                }],
                day(2, 2),
            )
        })
        .unwrap();

    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert_eq!(plan.writes.len(), 1, "{plan:?}");
    assert_eq!(plan.known, 0);
}

#[test]
fn an_acknowledged_violation_leaves_its_records_task_in_the_next_plan() {
    let harness = Harness::new(TaskMode::PerRecord);
    let (one, two) = (stalled("1"), stalled("2"));
    harness.audit(vec![one.clone(), two], day(2, 0));
    harness.plan();

    harness.acknowledge(&one);

    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert_eq!(records(&plan.writes), ["2"]);
}

#[test]
fn a_record_given_to_an_inactive_owner_in_the_crm_is_judged_again() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.owners(vec![
        owner("101", "Dana Deal", true),
        owner("102", "Gone Owner", false),
    ]);
    harness.audit(vec![stalled("1"), stalled("2")], day(2, 0));
    harness.plan();

    harness.deal("2", "102");

    let (whole, noted) = harness.next_scope();
    assert!(!whole, "the owners did not change");
    assert_eq!(noted.len(), 1, "deal 2: {noted:?}");
    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert_eq!(records(&plan.writes), ["1"]);
    assert_eq!(plan.unassigned_count, 1);
}

#[test]
fn writes_over_the_cap_are_counted_from_what_the_plan_kept() {
    let mut harness = Harness::new(TaskMode::PerRecord);
    harness.policy.max_writes_per_run = NonZeroU32::new(2).unwrap();
    let violations = (1..=9).map(|id| stalled(&id.to_string())).collect();
    harness.audit(violations, day(2, 0));
    harness.plan();
    harness.audit(
        (1..=8).map(|id| stalled(&id.to_string())).collect(),
        day(3, 0),
    );

    let plan = harness.assert_kept_plan_is_the_whole_plan();
    assert_eq!(plan.writes.len(), 2);
    assert_eq!(plan.deferred, 6);
}

#[test]
fn a_record_changed_after_the_plan_read_it_stays_noted_for_the_next() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    harness.plan();
    harness.audit(vec![stalled("1"), stalled("2")], day(3, 0));
    let digest = harness.basis_digest();

    let noted = harness
        .store
        .call_blocking(move |s| {
            let scope = s.begin_plan(&hubspot(), &digest)?;
            let noted = s.plan_noted()?;
            // Deal 2's owner changes after the plan read what changed.
            let mut deal = crate::store::testkit::record(ObjectKind::Deal, "2");
            deal.owner_id = Some(OwnerId::new("102"));
            s.upsert_records(&hubspot(), &[deal], day(3, 1))?;
            s.note_plan_classes(&[(noted[0], PlanClass::Write, 3)])?;
            s.keep_plan(&hubspot(), &scope, true)?;
            s.plan_noted()
        })
        .unwrap();

    assert_eq!(noted.len(), 1, "deal 2 waits for the next plan: {noted:?}");
}

#[test]
fn a_violation_stored_without_its_record_makes_every_plan_whole() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1"), stalled("77")], day(2, 0));

    let plan = harness.plan();

    assert_eq!(records(&plan.writes), ["1"]);
    assert_eq!(
        plan.unassigned
            .iter()
            .map(|u| u.record_id.as_str())
            .collect::<Vec<_>>(),
        ["77"],
        "nobody owns a record that is not stored"
    );
    assert!(
        harness.next_scope().0,
        "deal 77 cannot be noted when it changes"
    );
    assert_eq!(harness.plan(), plan);
}

#[test]
fn a_record_an_audit_moved_to_another_stage_is_judged_again() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1"), stalled("2")], day(2, 0));
    harness.plan();

    let state = RecordState {
        connector: hubspot(),
        object: ObjectKind::Deal,
        record_id: RecordId::new("2"),
        stage: Some(StageId::new("onboarding")),
        stage_index: Some(1),
        max_stage_index: Some(1),
        record_rowid: None,
        stage_entered_on: None,
        stalled: false,
        owner_id: Some(OwnerId::new("101")),
        owner_role: Some(RoleId::new("onboarding")),
        recheck_on: None,
    };
    harness
        .store
        .call_blocking(move |s| {
            let run = s.begin_run(RunKind::Audit, None, day(3, 0))?;
            let mut writer = s.begin_audit(run, &[hubspot()], day(3, 0), today())?;
            writer.record_chunk(&[stalled("1"), stalled("2")], &[state])?;
            writer.finish()?;
            Ok::<_, StoreError>(())
        })
        .unwrap();

    let (whole, noted) = harness.next_scope();
    assert!(!whole);
    assert_eq!(noted.len(), 1, "deal 2: {noted:?}");
    harness.assert_kept_plan_is_the_whole_plan();
}
