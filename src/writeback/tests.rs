//! Specifications of write-back: what one violation's write is (pure), the
//! plan the store's pages give (against a real store), and the run loop
//! against a connector backed by vectors.

use super::*;
use crate::config::{Connection, RoleMap, WritebackMode};
use crate::fake_connector::{FakeConnector, FakeCrm};
use crate::rules::Violation;
use crate::store::testkit::{day, hubspot, record, violation};
use crate::store::{ViolationFilter, ViolationId, ViolationStatus};
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

fn capped(cap: u32) -> WritebackPolicy {
    WritebackPolicy {
        max_writes_per_run: NonZeroU32::new(cap).unwrap(),
        ..policy()
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

/// [`stalled`], of `severity`.
fn stalled_at(id: &str, severity: Severity) -> Violation {
    Violation {
        severity,
        ..stalled(id)
    }
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

fn candidate(violation: Violation) -> WriteCandidate {
    WriteCandidate {
        violation: row(violation),
        current: None,
        failed: None,
    }
}

/// The write `violation` calls for under the test policy.
fn write_of(violation: &Violation) -> PlannedWrite {
    match judge(&candidate(violation.clone()), &policy(), today()) {
        Verdict::Write(write) => write,
        other => panic!("{other:?}"),
    }
}

fn records(writes: &[PlannedWrite]) -> Vec<&str> {
    writes.iter().map(|w| w.record_id.as_str()).collect()
}

// One violation's write: pure.

#[test]
fn a_violation_gets_a_task_for_its_accountable_owner_keyed_by_its_fingerprint() {
    let v = stalled("7");
    let fingerprint = v.fingerprint.clone();
    let write = write_of(&v);

    let ActionRequest::CreateTask {
        key,
        object,
        record_id,
        owner_id,
        subject,
        body,
        due,
        priority,
    } = &write.request
    else {
        panic!("{:?}", write.request)
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
fn tasks_go_only_on_allowed_objects_and_fields_only_on_the_allow_list() {
    let mut contact = stalled("1");
    contact.object = ObjectKind::Contact;
    let mut other_field = mismatch("2", "customer");
    other_field.action = PlannedAction::SetLifecycle {
        field: "hs_lead_status".into(),
        value: "OPEN".into(),
    };
    let verdicts: Vec<Verdict> = [contact, other_field, mismatch("3", "customer")]
        .into_iter()
        .map(|v| judge(&candidate(v), &policy(), today()))
        .collect();
    let reasons: Vec<&str> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::NotAllowed(n) => Some(n.reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "tasks may not be attached to contact records (writeback.task_objects)",
            "field hs_lead_status of deal records is not in writeback.fields",
        ]
    );
    assert!(matches!(&verdicts[2], Verdict::Write(w) if w.record_id.as_str() == "3"));
}

#[test]
fn a_lifecycle_change_carries_the_current_value_unless_the_crm_has_the_target_already() {
    let mut to_customer = candidate(mismatch("1", "customer"));
    to_customer.current = Some("opportunity".into());
    let Verdict::Write(write) = judge(&to_customer, &policy(), today()) else {
        panic!("no write")
    };
    let ActionRequest::SetField {
        key,
        field,
        value,
        current,
        ..
    } = &write.request
    else {
        panic!("{:?}", write.request)
    };
    assert_eq!(
        (field.as_str(), value.as_str(), current.as_deref()),
        ("lifecyclestage", "customer", Some("opportunity"))
    );
    assert!(key.as_str().ends_with('l'));
    let to_evangelist = write_of(&mismatch("1", "evangelist"));
    assert_ne!(
        to_evangelist.request.key(),
        key,
        "a new target, a new action"
    );

    let mut already = candidate(mismatch("1", "customer"));
    already.current = Some("customer".into());
    assert_eq!(judge(&already, &policy(), today()), Verdict::Nothing);
}

#[test]
fn a_retry_carries_the_attempts_the_ledger_counted() {
    let v = stalled("1");
    let mut retry = candidate(v.clone());
    retry.failed = Some(FailedWrite {
        key: task_key(&v.fingerprint),
        attempts: 2,
        error: Some("http 503".into()),
    });
    let Verdict::Write(write) = judge(&retry, &policy(), today()) else {
        panic!("no write")
    };
    assert_eq!(write.attempts, 2);
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
                connection: Connection::unreached(),
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

    fn upsert(&self, record: journeyd_connector::CrmRecord) {
        self.store
            .call_blocking(move |s| s.upsert_records(&hubspot(), &[record], day(1, 0)))
            .unwrap();
    }

    /// Puts `request` of `violation` in the ledger, sent `attempts` times,
    /// then in `state` (an applied write gets a CRM id).
    fn ledger_at(
        &self,
        request: ActionRequest,
        violation: &Violation,
        state: LedgerState,
        attempts: u32,
    ) {
        let fingerprint = violation.fingerprint.clone();
        self.store
            .call_blocking(move |s| {
                let key = request.key().clone();
                s.ledger_stage(&hubspot(), &[(request, fingerprint)], day(2, 1))?;
                for _ in 0..attempts {
                    s.ledger_mark_all(
                        &[LedgerMark::new(key.clone(), LedgerState::Sent)],
                        day(2, 1),
                    )?;
                }
                let mark = LedgerMark {
                    crm_id: (state == LedgerState::Applied).then(|| format!("crm-{key}")),
                    error: (state == LedgerState::Failed).then(|| "http 503".to_owned()),
                    ..LedgerMark::new(key, state)
                };
                s.ledger_mark_all(&[mark], day(2, 2))
            })
            .unwrap();
    }

    /// [`Harness::ledger_at`], or nothing for `None`.
    fn ledger_at_maybe(
        &self,
        request: ActionRequest,
        violation: &Violation,
        state: Option<(LedgerState, u32)>,
    ) {
        if let Some((state, attempts)) = state {
            self.ledger_at(request, violation, state, attempts);
        }
    }

    fn plan(&self, policy: &WritebackPolicy) -> Plan {
        self.plan_paged(
            policy,
            Paging {
                page: PAGE,
                listed: LISTED,
            },
        )
    }

    fn plan_paged(&self, policy: &WritebackPolicy, paging: Paging) -> Plan {
        let policy = policy.clone();
        self.store
            .call_blocking(move |s| plan_paged(s, &hubspot(), &policy, today(), paging))
            .unwrap()
    }

    async fn run(&self, connector: &FakeConnector, apply: bool) -> WritebackReport {
        let options = WritebackOptions {
            connector: &self.config,
            policy: &self.policy,
            today: today(),
            batch: NonZeroUsize::new(2).unwrap(),
            shutdown: None,
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

// The plan, from the store's pages.

#[test]
fn the_cap_keeps_the_most_severe_writes_and_defers_the_rest() {
    let harness = Harness::new();
    harness.audit(
        vec![
            stalled_at("1", Severity::Low),
            stalled_at("2", Severity::Medium),
            stalled_at("3", Severity::High),
            stalled_at("4", Severity::Low),
            stalled_at("5", Severity::High),
        ],
        day(2, 0),
    );

    let plan = harness.plan(&capped(2));

    assert_eq!(records(&plan.writes), ["3", "5"]);
    assert_eq!((plan.deferred, plan.known), (3, 0));
    let all = harness.plan(&capped(100));
    assert_eq!(records(&all.writes), ["3", "5", "2", "1", "4"]);
    assert_eq!(all.deferred, 0);
}

#[test]
fn writes_the_ledger_already_holds_are_not_planned_again() {
    let harness = Harness::new();
    let violations: Vec<Violation> = ["1", "2", "3", "4"].iter().map(|id| stalled(id)).collect();
    harness.audit(violations.clone(), day(2, 0));
    for (v, state) in violations.iter().zip([
        LedgerState::Applied,
        LedgerState::Pending,
        LedgerState::Sent,
        LedgerState::Parked,
    ]) {
        harness.ledger_at(write_of(v).request, v, state, 1);
    }

    let again = harness.plan(&policy());

    assert!(again.writes.is_empty(), "{:?}", records(&again.writes));
    assert_eq!((again.known, again.deferred), (4, 0));
}

#[test]
fn applied_writes_take_no_place_under_the_cap() {
    let harness = Harness::new();
    let violations = vec![
        stalled_at("1", Severity::High),
        stalled_at("2", Severity::High),
        stalled_at("3", Severity::Medium),
        stalled_at("4", Severity::Low),
        stalled_at("5", Severity::Low),
    ];
    harness.audit(violations.clone(), day(2, 0));
    for v in &violations[..2] {
        harness.ledger_at(write_of(v).request, v, LedgerState::Applied, 1);
    }

    let plan = harness.plan(&capped(2));

    assert_eq!(records(&plan.writes), ["3", "4"]);
    assert_eq!((plan.known, plan.deferred), (2, 1));
}

#[test]
fn a_failed_write_is_retried_until_it_failed_three_times_then_parked() {
    for attempts in [1, 2] {
        let harness = Harness::new();
        let v = stalled("1");
        harness.audit(vec![v.clone()], day(2, 0));
        harness.ledger_at(write_of(&v).request, &v, LedgerState::Failed, attempts);
        let plan = harness.plan(&policy());
        assert_eq!(records(&plan.writes), ["1"], "retried after {attempts}");
        assert_eq!(plan.writes[0].attempts, attempts);
    }
    let harness = Harness::new();
    let v = stalled("1");
    harness.audit(vec![v.clone()], day(2, 0));
    harness.ledger_at(write_of(&v).request, &v, LedgerState::Failed, 3);

    let plan = harness.plan(&capped(1));

    assert!(plan.writes.is_empty());
    assert_eq!((plan.to_park_count, plan.deferred), (1, 0));
    assert_eq!(
        plan.to_park,
        vec![ToPark {
            key: task_key(&v.fingerprint),
            attempts: 3,
            error: Some("http 503".into())
        }]
    );
}

#[test]
fn refused_writes_are_counted_all_and_named_up_to_a_limit() {
    let harness = Harness::new();
    let violations: Vec<Violation> = (1..=5)
        .map(|i| {
            let mut v = stalled(&i.to_string());
            v.object = ObjectKind::Contact;
            v
        })
        .chain([stalled("6")])
        .collect();
    harness.audit(violations, day(2, 0));

    let plan = harness.plan_paged(&policy(), Paging { page: 2, listed: 3 });

    assert_eq!(records(&plan.writes), ["6"]);
    assert_eq!(plan.not_allowed_count, 5);
    let named: Vec<&str> = plan.not_allowed.iter().map(|n| n.record.as_str()).collect();
    assert_eq!(named, ["Deal 1", "Deal 2", "Deal 3"]);
}

#[test]
fn a_lifecycle_write_reads_the_current_value_and_a_new_target_is_planned_again() {
    let harness = Harness::new();
    let mut deal = record(ObjectKind::Deal, "2");
    deal.lifecycle_status = Some("opportunity".into());
    harness.upsert(deal);
    let mut held = record(ObjectKind::Deal, "3");
    held.lifecycle_status = Some("customer".into());
    harness.upsert(held);
    harness.audit(
        vec![mismatch("2", "customer"), mismatch("3", "customer")],
        day(2, 0),
    );

    let plan = harness.plan(&policy());
    assert_eq!(records(&plan.writes), ["2"], "deal 3 has its value");
    let ActionRequest::SetField { current, .. } = &plan.writes[0].request else {
        panic!("{:?}", plan.writes[0].request)
    };
    assert_eq!(current.as_deref(), Some("opportunity"));

    let v = mismatch("2", "customer");
    harness.ledger_at(plan.writes[0].request.clone(), &v, LedgerState::Applied, 1);
    harness.audit(
        vec![mismatch("2", "evangelist"), mismatch("3", "customer")],
        day(3, 0),
    );
    let next = harness.plan(&policy());
    assert_eq!(records(&next.writes), ["2"]);
    assert_eq!(
        next.writes[0].request.key(),
        &lifecycle_key(&v.fingerprint, "lifecyclestage", "evangelist")
    );
    assert_eq!(next.known, 0);
}

#[test]
fn the_task_of_a_resolved_violation_is_completed_once_after_the_open_writes() {
    let harness = Harness::new();
    let (done, open) = (
        stalled_at("1", Severity::High),
        stalled_at("2", Severity::Low),
    );
    harness.audit(vec![done.clone(), open.clone()], day(2, 0));
    harness.ledger_at(write_of(&done).request, &done, LedgerState::Applied, 1);
    harness.audit(vec![open.clone()], day(3, 0));

    let plan = harness.plan(&policy());
    let keys: Vec<&ActionKey> = plan.writes.iter().map(|w| w.request.key()).collect();
    assert_eq!(
        keys,
        [
            &task_key(&open.fingerprint),
            &completion_key(&done.fingerprint)
        ]
    );
    assert_eq!(
        plan.writes[1].request,
        ActionRequest::CompleteTask {
            key: completion_key(&done.fingerprint),
            task_id: format!("crm-{}", task_key(&done.fingerprint)),
        }
    );
    let capped = harness.plan(&capped(1));
    assert_eq!((capped.writes.len(), capped.deferred), (1, 1));

    harness.ledger_at(plan.writes[1].request.clone(), &done, LedgerState::Sent, 1);
    let in_flight = harness.plan(&policy());
    assert_eq!(records(&in_flight.writes), ["2"]);
    assert_eq!(in_flight.known, 1);
}

/// The planner before it read the store in pages: every candidate, every
/// resolved violation and the whole ledger in memory, then one pass. What
/// the paged plan must equal.
fn whole_store_plan(store: &Store, policy: &WritebackPolicy) -> Plan {
    let mut open = Vec::new();
    let mut resolved = Vec::new();
    let filter = ViolationFilter {
        connector: Some(hubspot()),
        ..ViolationFilter::default()
    };
    store
        .list_violations(&filter, |row| {
            match row.status {
                ViolationStatus::Open => open.push(row),
                ViolationStatus::Resolved => resolved.push(row),
                _ => {}
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    resolved.sort_by_key(|row| row.id);
    let mut ledger = HashMap::new();
    for state in [
        LedgerState::Pending,
        LedgerState::Sent,
        LedgerState::Applied,
        LedgerState::Failed,
        LedgerState::Parked,
    ] {
        for entry in store.ledger_by_state(state).unwrap() {
            ledger.insert(entry.key.clone(), entry);
        }
    }

    let mut out = Plan::default();
    let mut wanted = Vec::new();
    for row in open {
        let current = match &row.violation.action {
            PlannedAction::SetLifecycle { .. } => store
                .record_snapshot(&hubspot(), row.violation.object, &row.violation.record_id)
                .unwrap()
                .and_then(|record| record.lifecycle_status),
            _ => None,
        };
        let candidate = WriteCandidate {
            violation: row,
            current,
            failed: None,
        };
        match judge(&candidate, policy, today()) {
            Verdict::Write(write) => wanted.push(write),
            Verdict::NotAllowed(refused) => out.not_allowed.push(refused),
            Verdict::Nothing => {}
        }
    }
    for row in resolved {
        let fingerprint = &row.violation.fingerprint;
        let Some(task) = ledger.get(&task_key(fingerprint)) else {
            continue;
        };
        let Some(task_id) = task
            .crm_id
            .clone()
            .filter(|_| task.state == LedgerState::Applied)
        else {
            continue;
        };
        let completed = ledger
            .get(&completion_key(fingerprint))
            .is_some_and(|c| matches!(c.state, LedgerState::Applied | LedgerState::Parked));
        if !completed {
            wanted.push(completion(&ResolvedTask {
                task_key: task.key.clone(),
                task_id,
                violation: row,
                failed: None,
            }));
        }
    }
    let cap = policy.max_writes_per_run.get() as usize;
    for mut write in wanted {
        let key = write.request.key().clone();
        if let Some(entry) = ledger.get(&key) {
            match entry.state {
                LedgerState::Failed if entry.attempts < MAX_ATTEMPTS => {
                    write.attempts = entry.attempts;
                }
                LedgerState::Failed => {
                    out.to_park.push(ToPark {
                        key,
                        attempts: entry.attempts,
                        error: entry.error.clone(),
                    });
                    continue;
                }
                _ => {
                    out.known += 1;
                    continue;
                }
            }
        }
        if out.writes.len() < cap {
            out.writes.push(write);
        } else {
            out.deferred += 1;
        }
    }
    out.not_allowed_count = out.not_allowed.len() as u64;
    out.to_park_count = out.to_park.len() as u64;
    out
}

fn create_task(v: &Violation) -> ActionRequest {
    ActionRequest::CreateTask {
        key: task_key(&v.fingerprint),
        object: v.object,
        record_id: v.record_id.clone(),
        owner_id: None,
        subject: "s".into(),
        body: "b".into(),
        due: today(),
        priority: Priority::Normal,
    }
}

fn set_field(v: &Violation, field: &str, value: &str) -> ActionRequest {
    ActionRequest::SetField {
        key: lifecycle_key(&v.fingerprint, field, value),
        object: v.object,
        record_id: v.record_id.clone(),
        field: field.into(),
        value: value.into(),
        current: None,
    }
}

/// A store with a bit of everything, drawn from a seeded generator: every
/// severity, tasks and lifecycle writes, refused ones, values the CRM
/// holds, earlier targets, every ledger state, and resolved violations
/// with and without tasks and completions.
fn mixed_store(seed: u64) -> Harness {
    let harness = Harness::new();
    let mut rng = fastrand::Rng::with_seed(seed);
    let severities = [Severity::High, Severity::Medium, Severity::Low];
    let states = [
        None,
        Some((LedgerState::Applied, 1)),
        Some((LedgerState::Pending, 0)),
        Some((LedgerState::Sent, 1)),
        Some((LedgerState::Failed, 1)),
        Some((LedgerState::Failed, 2)),
        Some((LedgerState::Failed, 3)),
        Some((LedgerState::Parked, 1)),
    ];
    let violations: Vec<Violation> = (1..=60)
        .map(|i: usize| {
            let id = i.to_string();
            let mut v = match rng.u8(0..5) {
                0 | 1 => stalled(&id),
                2 => mismatch(&id, "customer"),
                3 => mismatch(&id, "evangelist"),
                _ => {
                    let mut v = mismatch(&id, "OPEN");
                    v.action = PlannedAction::SetLifecycle {
                        field: "hs_lead_status".into(),
                        value: "OPEN".into(),
                    };
                    v
                }
            };
            if rng.u8(0..6) == 0 {
                v.object = ObjectKind::Contact;
            }
            v.severity = severities[rng.usize(0..3)];
            v
        })
        .collect();
    for v in &violations {
        let PlannedAction::SetLifecycle { field, value } = &v.action else {
            harness.ledger_at_maybe(create_task(v), v, states[rng.usize(0..states.len())]);
            continue;
        };
        let mut deal = record(v.object, v.record_id.as_str());
        deal.lifecycle_status = match rng.u8(0..3) {
            0 => Some(value.clone()),
            1 => Some("lead".into()),
            _ => None,
        };
        harness.upsert(deal);
        if rng.bool() {
            // An earlier target of the violation: another write.
            harness.ledger_at(set_field(v, field, "lead"), v, LedgerState::Applied, 1);
        }
        harness.ledger_at_maybe(
            set_field(v, field, value),
            v,
            states[rng.usize(0..states.len())],
        );
    }
    harness.audit(violations.clone(), day(2, 0));

    let resolved: Vec<&Violation> = violations.iter().filter(|_| rng.bool()).collect();
    let still = violations
        .iter()
        .filter(|v| !resolved.iter().any(|r| r.fingerprint == v.fingerprint))
        .cloned()
        .collect();
    harness.audit(still, day(3, 0));
    let tasks = resolved
        .into_iter()
        .filter(|v| matches!(v.action, PlannedAction::Task { .. }));
    // In turn, so that every state of a completion meets an applied task.
    for (n, v) in tasks.enumerate() {
        let task = if n % 5 == 4 {
            LedgerState::Sent
        } else {
            LedgerState::Applied
        };
        harness.ledger_at(create_task(v), v, task, 1);
        let completion = ActionRequest::CompleteTask {
            key: completion_key(&v.fingerprint),
            task_id: "t".into(),
        };
        harness.ledger_at_maybe(completion, v, states[n % states.len()]);
    }
    harness
}

#[test]
fn the_paged_plan_is_the_whole_store_plan_for_every_cap_and_page_size() {
    for seed in [1, 2, 3] {
        same_plans(&mixed_store(seed));
    }
}

fn same_plans(harness: &Harness) {
    for cap in [1, 2, 3, 5, 8, 13, 100] {
        let policy = capped(cap);
        let whole = {
            let policy = policy.clone();
            harness
                .store
                .call_blocking(move |s| Ok::<_, StoreError>(whole_store_plan(s, &policy)))
                .unwrap()
        };
        assert!(whole.known > 0 && whole.to_park_count > 0 && whole.not_allowed_count > 0);
        for (page, listed) in [(1, 1), (2, 3), (3, 100), (PAGE, LISTED)] {
            let paged = harness.plan_paged(&policy, Paging { page, listed });
            let expected = Plan {
                not_allowed: whole.not_allowed.iter().take(listed).cloned().collect(),
                to_park: whole.to_park.iter().take(listed).cloned().collect(),
                ..whole.clone()
            };
            assert_eq!(paged, expected, "cap {cap}, page {page}, listed {listed}");
        }
    }
    let everything = harness.plan(&capped(100));
    assert!(
        everything
            .writes
            .iter()
            .any(|w| matches!(w.request, ActionRequest::CompleteTask { .. }))
            && everything.writes.iter().any(|w| w.attempts > 0),
        "the store holds completions and retries"
    );
}

#[tokio::test]
async fn a_dry_run_reports_the_counts_of_the_plan_and_the_unconfirmed_writes() {
    let mut harness = mixed_store(1);
    harness.policy = capped(3);
    let plan = harness.plan(&capped(3));
    let unconfirmed =
        harness.ledger(LedgerState::Pending).len() + harness.ledger(LedgerState::Sent).len();

    let report = harness.run(&crm(), false).await;

    assert_eq!(report.plan, plan);
    assert_eq!(
        report.counts,
        WritebackCounts {
            planned: 3,
            skipped_by_cap: plan.deferred,
            not_allowed: plan.not_allowed_count,
            known: plan.known,
            unconfirmed: unconfirmed as u64,
            ..WritebackCounts::default()
        }
    );
    assert!(plan.deferred > 0 && unconfirmed > 0);
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
async fn an_applied_run_reports_each_write_once_as_written_not_also_as_planned() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1"), stalled("2"), stalled("3")], day(2, 0));
    let connector = crm();

    let report = harness.run(&connector, true).await;

    assert_eq!(report.counts.planned, 3);
    assert!(report.plan.writes.is_empty(), "{:?}", report.plan.writes);
    let mut written: Vec<&str> = report.written.iter().map(|w| w.key.as_str()).collect();
    written.sort_unstable();
    written.dedup();
    assert_eq!(written.len(), 3);
}

#[tokio::test]
async fn a_shutdown_stops_the_run_before_its_next_batch_and_the_next_run_sends_the_rest() {
    let harness = Harness::new();
    harness.audit(vec![stalled("1"), stalled("2"), stalled("3")], day(2, 0));
    let connector = crm();
    let (_stop, stopped) = tokio::sync::watch::channel(true);
    let options = WritebackOptions {
        connector: &harness.config,
        policy: &harness.policy,
        today: today(),
        batch: NonZeroUsize::new(2).unwrap(),
        shutdown: Some(&stopped),
    };

    let report = run(&harness.store, &connector, &options).await.unwrap();

    assert_eq!((report.status, report.counts.sent), (RunStatus::Partial, 0));
    assert!(report.error.unwrap().contains("stopped by shutdown"));
    assert_eq!(connector.with(|c| c.batches.len()), 0);
    let next = harness.run(&connector, true).await;
    assert_eq!((next.status, next.counts.applied), (RunStatus::Ok, 3));
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
    let request = write_of(&v).request;
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

#[tokio::test]
async fn recovery_looks_keys_up_a_batch_at_a_time_and_sends_what_the_crm_lacks_once() {
    let harness = Harness::new();
    let violations: Vec<Violation> = (1..=5).map(|i| stalled(&i.to_string())).collect();
    harness.audit(violations.clone(), day(2, 0));
    let connector = crm();
    for (i, v) in violations.iter().enumerate() {
        let request = write_of(v).request;
        if i % 2 == 0 {
            // Written, but the answer was lost.
            connector.with(|c| {
                c.written
                    .insert(request.key().clone(), (request.clone(), format!("crm-{i}")))
            });
        }
        harness.ledger_at(request, v, LedgerState::Sent, 1);
    }

    let report = harness.run(&connector, true).await;

    assert_eq!(report.status, RunStatus::Ok);
    let lookups: Vec<usize> = connector.with(|c| c.lookups.iter().map(Vec::len).collect());
    assert_eq!(lookups, [2, 2, 1], "batches of 2");
    let batches: Vec<usize> = connector.with(|c| c.batches.iter().map(Vec::len).collect());
    assert_eq!(batches, [2], "the two the CRM lacks, sent together");
    assert_eq!(
        (
            report.counts.recovered,
            report.counts.sent,
            report.counts.applied
        ),
        (3, 2, 2)
    );
    assert_eq!((report.counts.planned, report.counts.known), (0, 5));
    assert_eq!(connector.with(|c| c.written.len()), 5);
    assert_eq!(harness.ledger(LedgerState::Applied).len(), 5);
}

#[tokio::test]
async fn writes_sent_again_after_a_crash_share_batches_with_the_plan() {
    let harness = Harness::new();
    let violations: Vec<Violation> = (1..=4).map(|i| stalled(&i.to_string())).collect();
    harness.audit(violations.clone(), day(2, 0));
    let lost = &violations[0];
    harness.ledger_at(write_of(lost).request, lost, LedgerState::Pending, 0);
    let connector = crm();

    let report = harness.run(&connector, true).await;

    let batches = connector.with(|c| c.batches.clone());
    let first: Vec<&ActionKey> = batches[0].iter().collect();
    assert_eq!(
        first[0],
        &task_key(&lost.fingerprint),
        "the lost write first"
    );
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2]);
    assert_eq!(
        (
            report.counts.planned,
            report.counts.sent,
            report.counts.known
        ),
        (3, 4, 1)
    );
}
