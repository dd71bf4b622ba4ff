//! Specifications of write-back: the planner (pure) and the run loop
//! against a connector backed by vectors.

use super::*;
use crate::config::{Connection, RoleMap, WritebackMode};
use crate::fake_connector::{FakeConnector, FakeCrm};
use crate::rules::Violation;
use crate::store::testkit::{day, hubspot, record, violation};
use crate::store::{ViolationId, ViolationStatus};
use chrono::DateTime;
use journeyd_connector::System;
use std::collections::BTreeMap;
use std::num::NonZeroU32;

fn policy() -> WritebackPolicy {
    WritebackPolicy {
        mode: WritebackMode::Apply,
        max_writes_per_run: NonZeroU32::new(100).unwrap(),
        task_objects: [ObjectKind::Deal].into(),
        fields: [(ObjectKind::Deal, ["lifecyclestage".to_owned()].into())].into(),
        task_due_days: 3,
        actions: BTreeMap::new(),
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 5, 10).unwrap()
}

/// A stalled deal `id`, whose fix is a task for owner 101.
fn stalled(id: &str) -> Violation {
    let mut v = violation(id, BuiltinRule::Stalled, Some("decision"));
    v.owner_id = Some(OwnerId::new("101"));
    v.action = PlannedAction::Task {
        subject: format!("Journey check: stalled on Deal {id}"),
        owner_id: Some(OwnerId::new("101")),
    };
    v
}

/// A lifecycle mismatch on deal `id` whose fix is `lifecyclestage = value`.
fn mismatch(id: &str, value: &str) -> Violation {
    let mut v = violation(id, BuiltinRule::LifecycleMismatch, Some("decision"));
    v.action = PlannedAction::SetLifecycle {
        field: "lifecyclestage".into(),
        value: value.into(),
    };
    v
}

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

fn candidate(violation: Violation) -> Candidate {
    Candidate {
        violation: row(violation),
        current: None,
    }
}

fn entry(request: ActionRequest, state: LedgerState, attempts: u32) -> LedgerEntry {
    LedgerEntry {
        key: request.key().clone(),
        fingerprint: Fingerprint::from_stored("f".repeat(32)),
        connector: hubspot(),
        request,
        state,
        attempts,
        crm_id: None,
        error: Some("http 503".into()),
        created_at: day(1, 0),
        updated_at: day(1, 0),
    }
}

fn plan_of(candidates: &[Candidate], ledger: &[LedgerEntry], policy: &WritebackPolicy) -> Plan {
    plan(&PlanInput {
        policy,
        candidates,
        resolved: &[],
        ledger,
        today: today(),
    })
}

fn keys(writes: &[PlannedWrite]) -> Vec<String> {
    writes.iter().map(|w| w.request.key().to_string()).collect()
}

#[test]
fn a_violation_gets_one_task_for_its_accountable_owner_keyed_by_its_fingerprint() {
    let v = stalled("7");
    let fingerprint = v.fingerprint.clone();
    let plan = plan_of(&[candidate(v.clone()), candidate(v)], &[], &policy());

    assert_eq!(plan.writes.len(), 1, "one task per violation");
    let ActionRequest::CreateTask {
        key,
        object,
        record_id,
        owner_id,
        subject,
        body,
        due,
        priority,
    } = &plan.writes[0].request
    else {
        panic!("{:?}", plan.writes[0].request)
    };
    assert_eq!(key.as_str(), format!("jd{fingerprint}t"));
    assert_eq!((*object, record_id.as_str()), (ObjectKind::Deal, "7"));
    assert_eq!(owner_id.as_ref().map(OwnerId::as_str), Some("101"));
    assert_eq!(subject, "[journeyd] stalled: Deal 7");
    assert!(
        body.starts_with("deal 7 breaks stalled\n\nWhat to do: "),
        "{body}"
    );
    assert!(
        body.ends_with(&format!("\njourneyd-action: {key}")),
        "{body}"
    );
    assert_eq!(*due, NaiveDate::from_ymd_opt(2024, 5, 13).unwrap());
    assert_eq!(*priority, Priority::Normal, "stalled is of medium severity");
}

#[test]
fn action_keys_are_single_alphanumeric_tokens() {
    let v = stalled("7");
    for key in [
        task_key(&v.fingerprint),
        completion_key(&v.fingerprint),
        lifecycle_key(&v.fingerprint, "lifecyclestage", "sales qualified lead"),
    ] {
        assert!(
            key.as_str().chars().all(|c| c.is_ascii_alphanumeric()),
            "{key}"
        );
        assert_eq!(key.as_str().len(), 35, "{key}");
        assert!(key.as_str().starts_with("jd"));
    }
}

#[test]
fn writes_the_ledger_already_holds_are_not_planned_again() {
    let candidates: Vec<Candidate> = ["1", "2", "3", "4"]
        .iter()
        .map(|id| candidate(stalled(id)))
        .collect();
    let first = plan_of(&candidates, &[], &policy());
    let ledger: Vec<LedgerEntry> = first
        .writes
        .iter()
        .zip([
            LedgerState::Applied,
            LedgerState::Pending,
            LedgerState::Sent,
            LedgerState::Parked,
        ])
        .map(|(w, state)| entry(w.request.clone(), state, 1))
        .collect();

    let again = plan_of(&candidates, &ledger, &policy());
    assert!(again.writes.is_empty(), "{:?}", keys(&again.writes));
    assert_eq!(again.known, 4);
}

#[test]
fn a_failed_write_is_retried_until_it_failed_three_times_then_parked() {
    let v = candidate(stalled("1"));
    let request = plan_of(std::slice::from_ref(&v), &[], &policy()).writes[0]
        .request
        .clone();

    for attempts in [1, 2] {
        let plan = plan_of(
            std::slice::from_ref(&v),
            &[entry(request.clone(), LedgerState::Failed, attempts)],
            &policy(),
        );
        assert_eq!(plan.writes.len(), 1, "retried after {attempts} attempt(s)");
        assert_eq!(plan.writes[0].attempts, attempts);
    }
    let plan = plan_of(
        std::slice::from_ref(&v),
        &[entry(request.clone(), LedgerState::Failed, 3)],
        &policy(),
    );
    assert!(plan.writes.is_empty());
    assert_eq!(
        plan.to_park,
        vec![ToPark {
            key: request.key().clone(),
            attempts: 3,
            error: Some("http 503".into())
        }]
    );
}

#[test]
fn the_per_run_cap_keeps_the_first_writes_and_defers_the_rest() {
    let candidates: Vec<Candidate> = ["1", "2", "3", "4", "5"]
        .iter()
        .map(|id| candidate(stalled(id)))
        .collect();
    let capped = WritebackPolicy {
        max_writes_per_run: NonZeroU32::new(2).unwrap(),
        ..policy()
    };
    let plan = plan_of(&candidates, &[], &capped);
    let records: Vec<&str> = plan.writes.iter().map(|w| w.record_id.as_str()).collect();
    assert_eq!(records, ["1", "2"]);
    assert_eq!(plan.deferred.len(), 3);
}

#[test]
fn known_writes_do_not_count_against_the_cap() {
    let candidates: Vec<Candidate> = ["1", "2", "3"]
        .iter()
        .map(|id| candidate(stalled(id)))
        .collect();
    let capped = WritebackPolicy {
        max_writes_per_run: NonZeroU32::new(2).unwrap(),
        ..policy()
    };
    let first = plan_of(&candidates, &[], &capped);
    let ledger: Vec<LedgerEntry> = first
        .writes
        .iter()
        .map(|w| entry(w.request.clone(), LedgerState::Applied, 1))
        .collect();
    let second = plan_of(&candidates, &ledger, &capped);
    let records: Vec<&str> = second.writes.iter().map(|w| w.record_id.as_str()).collect();
    assert_eq!(records, ["3"]);
    assert!(second.deferred.is_empty());
}

#[test]
fn tasks_go_only_on_allowed_objects_and_fields_only_on_the_allow_list() {
    let mut contact = stalled("1");
    contact.object = ObjectKind::Contact;
    let mut other_field = mismatch("2", "customer");
    other_field.action = PlannedAction::SetLifecycle {
        field: "hs_lead_status".into(),
        value: "OPEN".into(),
    };
    let plan = plan_of(
        &[
            candidate(contact),
            candidate(other_field),
            candidate(mismatch("3", "customer")),
        ],
        &[],
        &policy(),
    );
    let reasons: Vec<&str> = plan.not_allowed.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "tasks may not be attached to contact records (writeback.task_objects)",
            "field hs_lead_status of deal records is not in writeback.fields",
        ]
    );
    let records: Vec<&str> = plan.writes.iter().map(|w| w.record_id.as_str()).collect();
    assert_eq!(records, ["3"]);
}

#[test]
fn a_lifecycle_change_carries_the_current_value_and_a_new_target_is_a_new_action() {
    let mut to_customer = candidate(mismatch("1", "customer"));
    to_customer.current = Some("opportunity".into());
    let plan = plan_of(std::slice::from_ref(&to_customer), &[], &policy());
    let ActionRequest::SetField {
        key,
        field,
        value,
        current,
        ..
    } = &plan.writes[0].request
    else {
        panic!("{:?}", plan.writes[0].request)
    };
    assert_eq!(
        (field.as_str(), value.as_str(), current.as_deref()),
        ("lifecyclestage", "customer", Some("opportunity"))
    );
    assert!(key.as_str().ends_with('l'));

    let ledger = [entry(
        plan.writes[0].request.clone(),
        LedgerState::Applied,
        1,
    )];
    let to_evangelist = candidate(mismatch("1", "evangelist"));
    let next = plan_of(std::slice::from_ref(&to_evangelist), &ledger, &policy());
    assert_eq!(next.writes.len(), 1);
    assert_ne!(next.writes[0].request.key(), key);

    let mut already = candidate(mismatch("1", "customer"));
    already.current = Some("customer".into());
    assert!(plan_of(&[already], &[], &policy()).writes.is_empty());
}

#[test]
fn the_task_of_a_resolved_violation_is_completed_once() {
    let v = stalled("1");
    let resolved = ResolvedTask {
        task_key: task_key(&v.fingerprint),
        task_id: "task-9".into(),
        violation: ViolationRow {
            status: ViolationStatus::Resolved,
            ..row(v.clone())
        },
    };
    let input = |ledger: &[LedgerEntry]| {
        plan(&PlanInput {
            policy: &policy(),
            candidates: &[],
            resolved: std::slice::from_ref(&resolved),
            ledger,
            today: today(),
        })
    };
    let first = input(&[]);
    assert_eq!(
        first.writes[0].request,
        ActionRequest::CompleteTask {
            key: completion_key(&v.fingerprint),
            task_id: "task-9".into()
        }
    );
    let ledger = [entry(first.writes[0].request.clone(), LedgerState::Sent, 1)];
    assert!(input(&ledger).writes.is_empty());
}

// The run loop, against the store and a vector-backed connector.

struct Harness {
    _dir: tempfile::TempDir,
    store: StoreHandle,
    config: ConnectorConfig,
    policy: WritebackPolicy,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(&dir.path().join("journeyd.db")).unwrap();
        Harness {
            _dir: dir,
            store,
            config: ConnectorConfig {
                name: hubspot(),
                system: System::Hubspot,
                secret: None,
                stages: BTreeMap::new(),
                outside: BTreeMap::new(),
                roles: RoleMap::default(),
                fields: BTreeMap::new(),
                lifecycle: None,
                objects: ObjectKind::ALL.into_iter().collect(),
                connection: Connection::Other,
            },
            policy: policy(),
        }
    }

    /// An audit that finds exactly `violations` (the others resolve).
    fn audit(&self, violations: Vec<Violation>, at: DateTime<Utc>) {
        self.store
            .call_blocking(move |s| {
                let run = s.begin_run(RunKind::Audit, None, at)?;
                let mut writer = s.begin_audit(run, &[hubspot()], at)?;
                writer.record(&violations)?;
                writer.finish()?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    async fn run(&self, connector: &FakeConnector, apply: bool) -> WritebackReport {
        let options = WritebackOptions {
            connector: &self.config,
            policy: &self.policy,
            today: today(),
            batch: NonZeroUsize::new(2).unwrap(),
        };
        if apply {
            run(&self.store, connector, &options).await.unwrap()
        } else {
            dry_run(&self.store, &options).await.unwrap()
        }
    }

    fn ledger(&self, state: LedgerState) -> Vec<LedgerEntry> {
        self.store
            .call_blocking(move |s| s.ledger_by_state(state))
            .unwrap()
    }
}

fn crm() -> FakeConnector {
    FakeConnector::new(
        "hubspot",
        &[ObjectKind::Deal],
        FakeCrm {
            page_size: 10,
            ..FakeCrm::default()
        },
    )
}

#[tokio::test]
async fn applying_writes_each_planned_action_once_in_batches_and_records_its_crm_id() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1"), stalled("2"), stalled("3")], day(2, 0));
    let connector = crm();

    let report = harness.run(&connector, true).await;

    assert_eq!(report.status, RunStatus::Ok);
    assert_eq!(
        (
            report.counts.planned,
            report.counts.sent,
            report.counts.applied
        ),
        (3, 3, 3)
    );
    assert_eq!(connector.with(|c| c.batches.len()), 2, "batches of 2");
    let applied = harness.ledger(LedgerState::Applied);
    assert_eq!(applied.len(), 3);
    assert!(
        applied
            .iter()
            .all(|e| e.crm_id.is_some() && e.attempts == 1)
    );
    let run = report.run.unwrap();
    let row = harness
        .store
        .call_blocking(move |s| s.run(crate::store::RunId(run)))
        .unwrap()
        .unwrap();
    assert_eq!(row.kind, RunKind::Writeback);
    assert_eq!(row.counts.unwrap()["applied"], 3);
}

#[tokio::test]
async fn a_second_run_plans_nothing() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1"), mismatch("2", "customer")], day(2, 0));
    let connector = crm();
    harness.run(&connector, true).await;

    let dry = harness.run(&connector, false).await;
    let again = harness.run(&connector, true).await;

    assert_eq!((dry.counts.planned, dry.counts.known), (0, 2));
    assert_eq!((again.counts.planned, again.counts.sent), (0, 0));
    assert_eq!(connector.with(|c| c.written.len()), 2);
}

#[tokio::test]
async fn a_write_left_sent_by_a_crash_is_found_in_the_crm_and_not_sent_again() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    connector.with(|c| c.lose_next_answer = true);

    let crashed = harness.run(&connector, true).await;
    assert_eq!(crashed.status, RunStatus::Failed);
    assert_eq!(harness.ledger(LedgerState::Sent).len(), 1);

    let recovered = harness.run(&connector, true).await;

    assert_eq!(recovered.status, RunStatus::Ok);
    assert_eq!(recovered.counts.recovered, 1);
    assert_eq!((recovered.counts.sent, recovered.counts.planned), (0, 0));
    assert_eq!(connector.with(|c| c.batches.len()), 1, "sent once, ever");
    assert_eq!(connector.with(|c| c.lookups.len()), 1);
    let applied = harness.ledger(LedgerState::Applied);
    assert_eq!(applied[0].crm_id.as_deref(), Some("crm-1"));
    assert!(recovered.written[0].recovered);
}

#[tokio::test]
async fn a_write_left_pending_that_the_crm_lacks_is_sent_by_the_next_run() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1")], day(2, 0));
    let v = stalled("1");
    let request = plan_of(&[candidate(v.clone())], &[], &harness.policy).writes[0]
        .request
        .clone();
    // A crash right after recording the action, before sending it.
    harness
        .store
        .call_blocking(move |s| s.ledger_stage(&hubspot(), &[(request, v.fingerprint)], day(2, 1)))
        .unwrap();
    let connector = crm();

    let report = harness.run(&connector, true).await;

    assert_eq!((report.counts.recovered, report.counts.sent), (0, 1));
    assert_eq!(report.counts.planned, 0, "not planned twice");
    assert_eq!(connector.with(|c| c.written.len()), 1);
    assert_eq!(harness.ledger(LedgerState::Applied).len(), 1);
}

#[tokio::test]
async fn refused_writes_are_failed_or_parked_by_their_retry_hint_and_parked_after_three_tries() {
    let harness = Harness::new();
    let (a, b) = (stalled("1"), stalled("2"));
    harness.audit(vec![a.clone(), b.clone()], day(2, 0));
    let connector = crm();
    connector.with(|c| {
        c.refuse
            .insert(task_key(&a.fingerprint), ("http 503".into(), true));
        c.refuse.insert(
            task_key(&b.fingerprint),
            ("owner does not exist".into(), false),
        );
    });

    let first = harness.run(&connector, true).await;
    assert_eq!(first.status, RunStatus::Partial);
    assert_eq!((first.counts.failed, first.counts.parked), (1, 1));
    harness.run(&connector, true).await;
    harness.run(&connector, true).await;
    let fourth = harness.run(&connector, true).await;

    assert_eq!((fourth.counts.sent, fourth.counts.parked), (0, 1));
    let parked = harness.ledger(LedgerState::Parked);
    assert_eq!(parked.len(), 2);
    let retried = parked
        .iter()
        .find(|e| e.key == task_key(&a.fingerprint))
        .unwrap();
    assert_eq!(retried.attempts, 3);
    assert_eq!(
        retried.error.as_deref(),
        Some("failed 3 times; last: http 503")
    );
}

#[tokio::test]
async fn a_dry_run_writes_nothing_to_the_crm_or_the_store() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();

    let report = harness.run(&connector, false).await;

    assert_eq!((report.run, report.counts.planned), (None, 1));
    assert!(connector.with(|c| c.batches.is_empty() && c.lookups.is_empty()));
    for state in [
        LedgerState::Pending,
        LedgerState::Sent,
        LedgerState::Applied,
    ] {
        assert!(harness.ledger(state).is_empty());
    }
    let runs = harness.store.call_blocking(|s| s.runs(10)).unwrap();
    assert!(runs.iter().all(|r| r.kind != RunKind::Writeback));
}

#[tokio::test]
async fn the_task_of_a_violation_an_audit_resolved_is_completed() {
    let harness = Harness::new();
    let v = stalled("1");
    harness.audit(vec![v.clone()], day(2, 0));
    let connector = crm();
    harness.run(&connector, true).await;
    harness.audit(Vec::new(), day(3, 0));

    let report = harness.run(&connector, true).await;

    assert_eq!(report.counts.applied, 1);
    let completion = connector.with(|c| c.written.get(&completion_key(&v.fingerprint)).cloned());
    let (request, _) = completion.expect("the completion was written");
    assert_eq!(
        request,
        ActionRequest::CompleteTask {
            key: completion_key(&v.fingerprint),
            task_id: "crm-1".into()
        }
    );
    let last = harness.run(&connector, true).await;
    assert_eq!(last.counts.planned, 0);
}

#[tokio::test]
async fn a_lifecycle_write_reads_the_current_value_from_the_stored_record() {
    let harness = Harness::new();
    let mut deal = record(ObjectKind::Deal, "2");
    deal.lifecycle_status = Some("opportunity".into());
    harness
        .store
        .call_blocking(move |s| s.upsert_records(&hubspot(), &[deal], day(1, 0)))
        .unwrap();
    harness.audit(vec![mismatch("2", "customer")], day(2, 0));

    let report = harness.run(&crm(), false).await;

    let ActionRequest::SetField { current, .. } = &report.plan.writes[0].request else {
        panic!("{:?}", report.plan.writes[0].request)
    };
    assert_eq!(current.as_deref(), Some("opportunity"));
}
