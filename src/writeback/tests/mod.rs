//! Specifications of write-back: what one violation's write is (pure), the
//! plans the store's pages give, one task per record kept current, and
//! recovery, against a real store and a connector backed by vectors whose
//! CRM duplicates a create sent twice, lags, and loses answers.

mod kept;
mod per_record;
mod per_violation;
mod recovery;

use super::*;
use crate::config::{Connection, RoleMap, TaskMode, WritebackMode};
use crate::fake_connector::{FakeConnector, FakeCrm};
use crate::journey::{Criterion, Expr, RoleId, Stage, StageId};
use crate::rules::{BuiltinRule, Fingerprint, PlannedAction, Severity, Violation};
use crate::store::testkit::{day, hubspot, record, violation};
use crate::store::{LedgerEntry, LedgerMark, LedgerState, RecordState, RunKind, StagedWrite};
use chrono::DateTime;
use journeyd_connector::{ActionResult, ObjectKind, Owner, OwnerId, RecordId, System};
use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};

fn policy(tasks: TaskMode) -> WritebackPolicy {
    WritebackPolicy {
        mode: WritebackMode::Apply,
        max_writes_per_run: NonZeroU32::new(100).unwrap(),
        task_objects: [ObjectKind::Deal].into(),
        fields: [(ObjectKind::Deal, ["lifecyclestage".to_owned()].into())].into(),
        task_due_days: 3,
        tasks,
        actions: BTreeMap::new(),
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 5, 10).unwrap()
}

/// Two stages: `decision`, owned by sales, with two exit criteria, and
/// `onboarding`, owned by onboarding.
fn journey() -> Journey {
    let stage = |id: &str, role: &str, criteria: &[&str]| Stage {
        id: StageId::new(id),
        name: format!("{}{}", id[..1].to_uppercase(), &id[1..]),
        owner_role: RoleId::new(role),
        exit_criteria: criteria
            .iter()
            .map(|name| Criterion {
                name: (*name).to_owned(),
                expr: Expr::compile("true").unwrap(),
            })
            .collect(),
        handoff_fields: Vec::new(),
        max_days: Some(30),
    };
    Journey {
        timezone: chrono_tz::UTC,
        name: "test".into(),
        roles: ["sales", "onboarding"].map(RoleId::new).to_vec(),
        stages: vec![
            stage("decision", "sales", &["budget_confirmed", "close_date_set"]),
            stage("onboarding", "onboarding", &[]),
        ],
    }
}

/// A violation of `rule` on deal `id` at stage decision, whose fix is a
/// task for owner 101.
fn task_violation(id: &str, rule: BuiltinRule) -> Violation {
    let mut v = violation(id, rule, Some("decision"));
    v.owner_id = Some(OwnerId::new("101"));
    v.owner_role = Some(RoleId::new("sales"));
    v.action = PlannedAction::Task {
        subject: format!("Journey check: {rule} on Deal {id}"),
        owner_id: Some(OwnerId::new("101")),
    };
    v
}

/// A stalled deal `id`, whose fix is a task for owner 101.
fn stalled(id: &str) -> Violation {
    task_violation(id, BuiltinRule::Stalled)
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

fn owner(id: &str, name: &str, active: bool) -> Owner {
    Owner {
        id: OwnerId::new(id),
        name: name.into(),
        email: Some(format!(
            "{}@example.com",
            name.to_lowercase().replace(' ', ".")
        )),
        active,
        teams: Vec::new(),
    }
}

/// A store, a connector config and a policy, as one write-back run sees
/// them.
struct Harness {
    _dir: tempfile::TempDir,
    store: StoreHandle,
    config: ConnectorConfig,
    policy: WritebackPolicy,
    journey: Journey,
}

impl Harness {
    /// Owner 101 (active) and deals 1 to 9 owned by them, in stage
    /// decision.
    fn new(tasks: TaskMode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(&dir.path().join("journeyd.db")).unwrap();
        let harness = Harness {
            _dir: dir,
            store,
            config: ConnectorConfig {
                name: hubspot(),
                system: System::Hubspot,
                secret: None,
                stages: BTreeMap::new(),
                outside: BTreeMap::new(),
                roles: RoleMap::default(),
                fallback_owners: BTreeMap::new(),
                fields: BTreeMap::new(),
                lifecycle: None,
                objects: ObjectKind::ALL.into_iter().collect(),
                connection: Connection::unreached(),
            },
            policy: policy(tasks),
            journey: journey(),
        };
        harness.owners(vec![owner("101", "Dana Deal", true)]);
        for id in 1..=9 {
            harness.deal(&id.to_string(), "101");
        }
        harness
    }

    fn owners(&self, owners: Vec<Owner>) {
        self.store
            .call_blocking(move |s| s.upsert_owners(&hubspot(), &owners, day(1, 0)))
            .unwrap();
    }

    /// Deal `id` owned by `owner`, in journey stage decision.
    fn deal(&self, id: &str, owner: &str) {
        let mut deal = record(ObjectKind::Deal, id);
        deal.name = Some(format!("Deal {id}"));
        deal.owner_id = Some(OwnerId::new(owner));
        let state = RecordState {
            connector: hubspot(),
            object: ObjectKind::Deal,
            record_id: RecordId::new(id),
            stage: Some(StageId::new("decision")),
            stage_index: Some(0),
            max_stage_index: Some(0),
            record_rowid: None,
            stage_entered_on: None,
            stalled: false,
            owner_id: Some(OwnerId::new(owner)),
            owner_role: Some(RoleId::new("sales")),
            recheck_on: None,
        };
        self.store
            .call_blocking(move |s| {
                s.upsert_records(&hubspot(), &[deal], day(1, 0))?;
                let run = s.begin_run(RunKind::Audit, None, day(1, 0))?;
                let mut writer = s.begin_audit(
                    run,
                    &[ConnectorName::new("-")],
                    day(1, 0),
                    day(1, 0).date_naive(),
                )?;
                writer.record_states(&[state])?;
                writer.finish()?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    /// An audit that finds exactly `violations` (the others resolve).
    fn audit(&self, violations: Vec<Violation>, at: DateTime<Utc>) {
        self.store
            .call_blocking(move |s| {
                let run = s.begin_run(RunKind::Audit, None, at)?;
                let mut writer = s.begin_audit(run, &[hubspot()], at, at.date_naive())?;
                writer.record(&violations)?;
                writer.finish()?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    /// Puts `request` of `fingerprint` in the ledger, sent `attempts` times
    /// by an earlier run, then in `state` (an applied write gets a CRM id).
    fn ledger_at(
        &self,
        request: ActionRequest,
        fingerprint: &Fingerprint,
        state: LedgerState,
        attempts: u32,
    ) {
        let fingerprint = fingerprint.clone();
        self.store
            .call_blocking(move |s| {
                let key = request.key().clone();
                s.ledger_insert_pending(&request, &fingerprint, &hubspot(), day(2, 1))?;
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

    fn options<'a>(&'a self, shutdown: Option<&'a crate::sync::Shutdown>) -> WritebackOptions<'a> {
        WritebackOptions {
            connector: &self.config,
            policy: &self.policy,
            journey: &self.journey,
            today: today(),
            batch: NonZeroUsize::new(2).unwrap(),
            shutdown,
        }
    }

    fn plan(&self) -> Plan {
        self.plan_paged(plan::PAGE)
    }

    fn plan_paged(&self, page: usize) -> Plan {
        let (config, policy) = (self.config.clone(), self.policy.clone());
        let stages = task_text::Stages::of(&self.journey);
        let room = u64::from(policy.max_writes_per_run.get());
        self.store
            .call_blocking(move |s| {
                let input = Planning {
                    connector: &config,
                    policy: &policy,
                    stages: &stages,
                    today: today(),
                    room,
                };
                plan::plan_paged(s, &input, page)
            })
            .unwrap()
    }

    async fn apply(&self, connector: &FakeConnector) -> WritebackReport {
        run(&self.store, connector, &self.options(None))
            .await
            .unwrap()
    }

    async fn dry_run(&self) -> WritebackReport {
        dry_run(&self.store, &self.options(None)).await.unwrap()
    }

    fn ledger(&self, state: LedgerState) -> Vec<LedgerEntry> {
        self.store
            .call_blocking(move |s| s.ledger_by_state(state))
            .unwrap()
    }
}

/// A fake CRM whose creates are duplicated when sent twice, and looked up
/// at once after a crash.
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

/// Open tasks by the key they carry: a key with two is a duplicate.
fn tasks_by_key(connector: &FakeConnector) -> BTreeMap<String, usize> {
    connector.with(|crm| {
        let mut by_key = BTreeMap::new();
        for task in crm.open_tasks() {
            *by_key.entry(task.key.to_string()).or_insert(0) += 1;
        }
        by_key
    })
}

fn records(writes: &[PlannedWrite]) -> Vec<&str> {
    writes.iter().map(|w| w.record_id.as_str()).collect()
}
