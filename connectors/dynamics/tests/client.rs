//! Specifications of the Dynamics 365 connector against the Dataverse
//! emulator: what it reads, what it writes, how many calls that takes, and
//! where it stops.

use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::testkit::pull_all;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, Connector, ConnectorError,
    ConnectorName, CrmRecord, ObjectKind, OwnerId, Page, Priority, RecordId, Recovery, Watermark,
};
use journeyd_dynamics::{DynamicsConnector, DynamicsCredentials, DynamicsSettings, task_id};
use journeyd_dynamics_emulator::{DynamicsEmulator, EmulatorConfig, Table};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

const BATCH: &str = "POST /api/data/v9.2/$batch";
const TOKEN: &str = "POST /{tenant}/oauth2/v2.0/token";
/// Pages a test pull may take before it is deemed endless.
const MAX_PAGES: usize = 50;

fn emulator() -> DynamicsEmulator {
    DynamicsEmulator::start(EmulatorConfig::with_opportunities(12)).expect("the emulator starts")
}

fn settings(emulator: &DynamicsEmulator) -> DynamicsSettings {
    let mut settings =
        DynamicsSettings::for_url(emulator.base_url(), emulator.tenant(), emulator.client_id());
    settings.authority = emulator.base_url();
    settings.account_stage_field = Some("new_customerstage".into());
    settings
}

fn connect(emulator: &DynamicsEmulator, settings: DynamicsSettings) -> DynamicsConnector {
    DynamicsConnector::new(
        ConnectorName::new("dynamics"),
        settings,
        DynamicsCredentials {
            client_secret: emulator.client_secret().into(),
        },
    )
    .expect("the connector builds")
}

fn paged(emulator: &DynamicsEmulator, page_size: u32) -> DynamicsConnector {
    let mut settings = settings(emulator);
    settings.page_size = NonZeroU32::new(page_size).expect("a page size");
    connect(emulator, settings)
}

fn task(key: &str, object: ObjectKind, record: &RecordId) -> ActionRequest {
    ActionRequest::CreateTask {
        key: ActionKey::new(key),
        object,
        record_id: record.clone(),
        owner_id: None,
        subject: format!("[journeyd] check {record}"),
        body: "Look at it.".into(),
        due: NaiveDate::from_ymd_opt(2026, 3, 5).expect("a valid date"),
        priority: Priority::High,
    }
}

fn applied_ids(outcomes: &[ActionOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|outcome| match &outcome.result {
            ActionResult::Applied { crm_id } => crm_id.clone(),
            ActionResult::Failed { reason, .. } | ActionResult::Unknown { reason } => {
                panic!("{}: {reason}", outcome.key)
            }
        })
        .collect()
}

/// Creates of tasks keyed `{prefix}-{i}` for the first `n` deals.
fn creates(emulator: &DynamicsEmulator, prefix: &str, n: usize) -> Vec<ActionRequest> {
    emulator.ids(Table::Opportunity)[..n]
        .iter()
        .enumerate()
        .map(|(i, deal)| {
            task(
                &format!("{prefix}-{i}"),
                ObjectKind::Deal,
                &RecordId::new(deal.clone()),
            )
        })
        .collect()
}

/// The tasks whose description ends with `key`'s marker line.
fn tasks_keyed(emulator: &DynamicsEmulator, key: &ActionKey) -> Vec<String> {
    emulator
        .tasks()
        .into_iter()
        .filter(|task| {
            task.fields
                .get("description")
                .and_then(Value::as_str)
                .and_then(ActionKey::from_text)
                .as_ref()
                == Some(key)
        })
        .map(|task| task.id)
        .collect()
}

/// Polls `done` every 10 ms for at most 5 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// What the next run does with writes it never saw confirmed, the
/// connector's own way: sends them again, or waits out the settle time,
/// looks the creates up, and sends those not found.
async fn settle_as_a_rerun(
    connector: &DynamicsConnector,
    actions: &[ActionRequest],
    sent_at: DateTime<Utc>,
) -> Vec<ActionOutcome> {
    match connector.recovery() {
        Recovery::Resend => connector.apply(actions).await.expect("sent again"),
        Recovery::LookUp { settle } => {
            assert!(settle <= Duration::from_secs(10), "{settle:?}");
            tokio::time::sleep(settle).await;
            let keys: Vec<ActionKey> = actions.iter().map(|a| a.key().clone()).collect();
            let mut outcomes = connector
                .find_applied(&keys, sent_at)
                .await
                .expect("the lookup succeeds");
            let found: BTreeSet<ActionKey> = outcomes.iter().map(|o| o.key.clone()).collect();
            let missing: Vec<ActionRequest> = actions
                .iter()
                .filter(|a| !found.contains(a.key()))
                .cloned()
                .collect();
            outcomes.extend(connector.apply(&missing).await.expect("sent"));
            outcomes
        }
    }
}

/// Pulls `object` from `from` to its last page; returns every page.
async fn pages(
    connector: &DynamicsConnector,
    object: ObjectKind,
    from: PullFrom,
) -> Vec<Page<CrmRecord>> {
    let mut pages = Vec::new();
    let mut from = from;
    for _ in 0..MAX_PAGES {
        let page = connector
            .pull(object, from)
            .await
            .unwrap_or_else(|err| panic!("pulling {object} failed: {err}"));
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(cursor) => from = PullFrom::Cursor(cursor),
            None => return pages,
        }
    }
    panic!("pulling {object} did not end within {MAX_PAGES} pages")
}

fn ids(records: &[CrmRecord]) -> BTreeSet<RecordId> {
    records.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test]
async fn a_full_pull_pages_to_the_end_with_one_read_and_one_task_batch_per_page() {
    let emulator = emulator();
    let connector = paged(&emulator, 5);
    let before = emulator.counts().total();
    let pages = pages(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let deals: Vec<CrmRecord> = pages.iter().flat_map(|p| p.items.clone()).collect();
    let expected = emulator.ids(Table::Opportunity).len();
    assert_eq!(deals.len(), expected);
    assert_eq!(ids(&deals).len(), expected, "a deal came twice");
    let floor = expected.div_ceil(5) as u64;
    assert_eq!(pages.len() as u64, floor);
    let counts = emulator.counts();
    assert_eq!(counts.get("GET /api/data/v9.2/opportunities"), floor);
    assert_eq!(counts.get(BATCH), floor, "one task batch per page");
    assert_eq!(counts.get(TOKEN), 1);
    assert_eq!(counts.total() - before, 2 * floor + 1);
    assert!(
        deals.iter().any(|d| !d.tasks.is_empty()),
        "tasks came along"
    );
    let with_tasks: usize = emulator
        .tasks()
        .iter()
        .filter(|t| {
            t.fields
                .get("_regardingobjectid_value")
                .and_then(|v| v.as_str())
                .is_some_and(|id| deals.iter().any(|d| d.id.as_str() == id))
        })
        .count();
    assert_eq!(
        deals.iter().map(|d| d.tasks.len()).sum::<usize>(),
        with_tasks,
        "every task of a deal, and only those"
    );
}

#[tokio::test]
async fn a_change_tracked_pull_ends_with_a_delta_link_that_brings_changes_and_deletions() {
    let emulator = emulator();
    let connector = paged(&emulator, 4);
    let first = pages(&connector, ObjectKind::Account, PullFrom::Start).await;
    let last = first.last().expect("a page");
    assert!(
        first[..first.len() - 1].iter().all(|p| p.delta.is_none()),
        "only the last page hands out the delta link"
    );
    let delta = last.delta.clone().expect("a delta link on the last page");
    let touched = emulator.touch(Table::Account, 2);
    let gone = emulator
        .ids(Table::Account)
        .into_iter()
        .find(|id| !touched.contains(id))
        .expect("an untouched account");
    emulator
        .delete(Table::Account, &gone)
        .expect("the account exists");
    let changes = pages(&connector, ObjectKind::Account, PullFrom::Delta(delta)).await;
    let changed: BTreeSet<String> = changes
        .iter()
        .flat_map(|p| p.items.iter().map(|r| r.id.to_string()))
        .collect();
    assert_eq!(changed, touched.iter().cloned().collect());
    let removed: Vec<RecordId> = changes.iter().flat_map(|p| p.removed.clone()).collect();
    assert_eq!(removed, [RecordId::new(gone)]);
    assert!(changes.last().and_then(|p| p.delta.clone()).is_some());
}

#[tokio::test]
async fn an_expired_delta_link_is_reported_as_changes_expired() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let full = pages(&connector, ObjectKind::Contact, PullFrom::Start).await;
    let delta = full
        .last()
        .and_then(|p| p.delta.clone())
        .expect("a delta link");
    emulator.expire_delta_tokens();
    let refused = connector
        .pull(ObjectKind::Contact, PullFrom::Delta(delta))
        .await
        .expect_err("an expired delta link is refused");
    assert!(
        matches!(&refused, ConnectorError::ChangesExpired { object: ObjectKind::Contact, reason, .. }
            if reason.contains("0x80044352")),
        "{refused}"
    );
}

#[tokio::test]
async fn a_next_link_refused_by_its_skiptoken_is_a_refused_cursor() {
    let emulator = emulator();
    let connector = paged(&emulator, 5);
    let first = connector
        .pull(ObjectKind::Contact, PullFrom::Start)
        .await
        .expect("the first page");
    let saved = first.next.expect("more than one page");
    emulator.update_knobs(|knobs| knobs.refuse_skiptokens = true);

    let refused = connector
        .pull(ObjectKind::Contact, PullFrom::Cursor(saved))
        .await
        .expect_err("the paging cookie is refused");

    assert!(
        matches!(&refused, ConnectorError::CursorRefused { object, reason, .. }
            if object == "contact" && reason.contains("$skiptoken")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_delta_link_of_another_table_is_not_followed() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let full = pages(&connector, ObjectKind::Contact, PullFrom::Start).await;
    let delta = full
        .last()
        .and_then(|p| p.delta.clone())
        .expect("a delta link");
    let before = emulator.counts().total();
    let refused = connector
        .pull(ObjectKind::Lead, PullFrom::Delta(delta))
        .await
        .expect_err("a contacts link is no leads link");
    assert!(
        matches!(refused, ConnectorError::ChangesExpired { .. }),
        "{refused}"
    );
    assert_eq!(emulator.counts().total(), before, "nothing was sent");
}

#[tokio::test]
async fn a_watermark_pull_of_an_untracked_object_filters_by_modifiedon() {
    let emulator = emulator();
    let mut settings = settings(&emulator);
    settings.change_tracking.remove(&ObjectKind::Lead);
    let connector = connect(&emulator, settings);
    let (leads, _, _) = pull_all(&connector, ObjectKind::Lead, PullFrom::Start).await;
    let newest = leads
        .iter()
        .map(|r| Watermark {
            modified_at: r.modified_at,
            id: r.id.clone(),
        })
        .max()
        .expect("leads");
    let touched = emulator.touch(Table::Lead, 3);
    let (changed, skipped, _) = pull_all(
        &connector,
        ObjectKind::Lead,
        PullFrom::Since(newest.clone()),
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let changed_ids: BTreeSet<String> = changed.iter().map(|r| r.id.to_string()).collect();
    for id in &touched {
        assert!(changed_ids.contains(id), "touched lead {id} was not read");
    }
    assert!(changed.len() < leads.len());
    let since = newest.modified_at - chrono::Duration::seconds(60);
    let expected = format!("modifiedon ge {}", since.format("%Y-%m-%dT%H:%M:%SZ"));
    assert!(
        emulator.filters().iter().any(|f| f == &expected),
        "{:?}",
        emulator.filters()
    );
}

#[tokio::test]
async fn a_stage_label_with_a_quote_round_trips_through_its_option_value() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let odd = deals
        .iter()
        .find(|d| d.stage.as_deref() == Some("Won't Close"))
        .expect("the seeded deal in the quoted stage");
    let other = deals.iter().find(|d| d.id != odd.id).expect("another deal");
    let outcomes = connector
        .apply(&[ActionRequest::SetField {
            key: ActionKey::new("stage-1"),
            object: ObjectKind::Deal,
            record_id: other.id.clone(),
            field: "salesstage".into(),
            value: "Won't Close".into(),
            current: other.stage.clone(),
        }])
        .await
        .expect("the write is sent");
    assert_eq!(applied_ids(&outcomes), [other.id.to_string()]);
    let row = emulator
        .record(Table::Opportunity, other.id.as_str())
        .expect("the deal");
    assert_eq!(row.fields.get("salesstage"), Some(&json!(100000000)));
    let (again, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let read = again.iter().find(|d| d.id == other.id).expect("the deal");
    assert_eq!(read.stage.as_deref(), Some("Won't Close"));
}

#[tokio::test]
async fn setting_a_choice_by_its_label_writes_its_option_value_and_reads_the_options_once() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let accounts = emulator.ids(Table::Account);
    let set = |key: &str, id: &str, label: &str| ActionRequest::SetField {
        key: ActionKey::new(key),
        object: ObjectKind::Account,
        record_id: RecordId::new(id),
        field: "new_customerstage".into(),
        value: label.into(),
        current: None,
    };
    let outcomes = connector
        .apply(&[
            set("s1", &accounts[0], "Renewal"),
            set("s2", &accounts[1], "Expansion"),
            set("s3", &accounts[2], "Churned"),
        ])
        .await
        .expect("the writes are sent");
    assert!(matches!(outcomes[0].result, ActionResult::Applied { .. }));
    assert!(matches!(outcomes[1].result, ActionResult::Applied { .. }));
    assert!(
        matches!(&outcomes[2].result, ActionResult::Failed { retryable: false, reason } if reason.contains("Churned")),
        "{outcomes:?}"
    );
    let stage = |id: &str| {
        emulator
            .record(Table::Account, id)
            .and_then(|r| r.fields.get("new_customerstage").cloned())
    };
    assert_eq!(stage(&accounts[0]), Some(json!(100000002)));
    assert_eq!(stage(&accounts[1]), Some(json!(100000003)));
    let metadata: u64 = emulator
        .counts()
        .snapshot()
        .iter()
        .filter(|(route, _)| route.contains("{attribute}"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(metadata, 1, "{:?}", emulator.counts().snapshot());
    assert_eq!(emulator.counts().get(BATCH), 1);
}

#[tokio::test]
async fn an_injection_attempt_in_a_key_is_sent_as_a_literal() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let deal = RecordId::new(emulator.ids(Table::Opportunity)[0].clone());
    let written = connector
        .apply(&[task("jd-plain-1", ObjectKind::Deal, &deal)])
        .await
        .expect("the task is written");
    applied_ids(&written);
    let attack = "' or 1 eq 1 or name eq '";
    let found = connector
        .find_applied(&[ActionKey::new(attack)], Utc::now())
        .await
        .expect("the lookup succeeds");
    assert!(found.is_empty(), "{found:?}");
    let expected = format!(
        "activityid eq {} or contains(description,'journeyd-action: '' or 1 eq 1 or name eq ''')",
        task_id(&ActionKey::new(attack))
    );
    assert!(
        emulator.filters().iter().any(|f| f == &expected),
        "{:?}",
        emulator.filters()
    );
}

#[tokio::test]
async fn a_refused_part_fails_retryably_an_erroring_one_is_unknown_and_the_rest_are_written_once() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let actions = creates(&emulator, "jd-part", 3);
    let before = emulator.tasks().len();
    emulator.fail_batch_parts(1);
    emulator.error_batch_parts(1);
    let outcomes = connector.apply(&actions).await.expect("the batch is sent");
    assert_eq!(outcomes.len(), 3);
    assert!(
        matches!(&outcomes[0].result, ActionResult::Failed { retryable: true, reason } if reason.contains("0x80072321")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1].result, ActionResult::Unknown { reason } if reason.contains("0x80044150")),
        "a 500 after the part was sent proves nothing: {outcomes:?}"
    );
    assert!(
        matches!(outcomes[2].result, ActionResult::Applied { .. }),
        "{outcomes:?}"
    );
    assert_eq!(emulator.tasks().len(), before + 2);
    assert_eq!(emulator.counts().get(BATCH), 1);
}

#[tokio::test]
async fn find_applied_finds_tasks_of_earlier_versions_by_their_marker_and_new_ones_by_id() {
    let emulator = emulator();
    // A task an earlier version created with a POST: an id of the
    // server's choosing, the key on the description's last line.
    let legacy = emulator.insert(
        Table::Task,
        BTreeMap::from([
            ("subject".to_owned(), json!("[journeyd] old")),
            (
                "description".to_owned(),
                json!("Look at it.\n\njourneyd-action: jd-lost-old"),
            ),
        ]),
    );
    let actions = creates(&emulator, "jd-lost", 2);
    let written = applied_ids(
        &connect(&emulator, settings(&emulator))
            .apply(&actions)
            .await
            .expect("the batch is sent"),
    );
    let mut keys: Vec<ActionKey> = actions.iter().map(|a| a.key().clone()).collect();
    keys.push(ActionKey::new("jd-lost-old"));
    // A longer key sharing a prefix must not pass for a shorter one.
    keys.push(ActionKey::new("jd-lost-"));
    keys.push(ActionKey::new("jd-never-sent"));
    let found = connect(&emulator, settings(&emulator))
        .find_applied(&keys, Utc::now())
        .await
        .expect("the lookup succeeds");
    assert_eq!(
        found.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        keys[..3]
    );
    assert_eq!(applied_ids(&found), [&written[..], &[legacy]].concat());
}

#[tokio::test]
async fn with_an_alternate_key_a_task_is_created_by_its_v5_id_and_carries_its_key_there_too() {
    let emulator = emulator();
    emulator.update_knobs(|knobs| knobs.task_alternate_key = Some("new_journeydkey".into()));
    let mut settings = settings(&emulator);
    settings.task_alternate_key = Some("new_journeydkey".into());
    let connector = connect(&emulator, settings.clone());
    let action = creates(&emulator, "jd-alt", 1);
    let before = emulator.tasks().len();
    let first = applied_ids(&connector.apply(&action).await.expect("sent"));
    let second = applied_ids(&connector.apply(&action).await.expect("sent again"));
    assert_eq!(first, [task_id(action[0].key())]);
    assert_eq!(second, first);
    assert_eq!(emulator.tasks().len(), before + 1);
    let written = emulator.record(Table::Task, &first[0]).expect("the task");
    assert_eq!(
        written.fields.get("new_journeydkey"),
        Some(&json!("jd-alt-0"))
    );
    let found = connect(&emulator, settings)
        .find_applied(
            &[ActionKey::new("jd-alt-0"), ActionKey::new("jd-alt-1")],
            Utc::now(),
        )
        .await
        .expect("the lookup succeeds");
    assert_eq!(applied_ids(&found), first);
    assert!(
        emulator
            .filters()
            .iter()
            .any(|f| f.contains("new_journeydkey eq 'jd-alt-0'")),
        "{:?}",
        emulator.filters()
    );
}

#[tokio::test]
async fn a_task_an_earlier_version_upserted_by_its_alternate_key_is_applied_under_its_own_id() {
    // Whatever status Dataverse refuses the taken key value with.
    for status in [412, 400] {
        let emulator = emulator();
        emulator.update_knobs(|knobs| {
            knobs.task_alternate_key = Some("new_journeydkey".into());
            knobs.alt_key_duplicate_status = status;
        });
        let legacy = emulator.insert(
            Table::Task,
            BTreeMap::from([
                ("subject".to_owned(), json!("[journeyd] upserted by key")),
                ("new_journeydkey".to_owned(), json!("jd-old-0")),
            ]),
        );
        let mut settings = settings(&emulator);
        settings.task_alternate_key = Some("new_journeydkey".into());
        let connector = connect(&emulator, settings);
        let action = creates(&emulator, "jd-old", 1);
        let before = emulator.tasks().len();
        let outcomes = connector.apply(&action).await.expect("sent");
        assert_eq!(applied_ids(&outcomes), [legacy], "status {status}");
        assert_eq!(emulator.tasks().len(), before, "status {status}");
        assert!(
            emulator
                .record(Table::Task, &task_id(action[0].key()))
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_create_sent_twice_makes_one_task_under_the_id_its_key_names() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let actions = creates(&emulator, "jd-twice", 3);
    let before = emulator.tasks().len();
    let first = applied_ids(&connector.apply(&actions).await.expect("sent"));
    let second = applied_ids(&connector.apply(&actions).await.expect("sent again"));
    let expected: Vec<String> = actions.iter().map(|a| task_id(a.key())).collect();
    assert_eq!(first, expected);
    assert_eq!(second, expected);
    assert_eq!(emulator.tasks().len(), before + 3);
    for action in &actions {
        assert_eq!(
            tasks_keyed(&emulator, action.key()),
            [task_id(action.key())]
        );
    }
}

#[tokio::test]
async fn a_batch_the_server_finds_too_large_is_sent_again_in_halves_and_each_write_lands_once() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let actions = creates(&emulator, "jd-large", 8);
    emulator.update_knobs(|knobs| knobs.max_request_bytes = 3_000);
    let before = emulator.tasks().len();

    let outcomes = connector
        .apply(&actions)
        .await
        .expect("sent in smaller batches");

    let expected: Vec<String> = actions.iter().map(|a| task_id(a.key())).collect();
    assert_eq!(applied_ids(&outcomes), expected);
    assert_eq!(emulator.tasks().len(), before + 8);
    assert!(
        emulator.counts().get(BATCH) > 2,
        "refused whole, then sent in parts"
    );
}

#[tokio::test]
async fn a_create_of_a_task_the_crm_already_has_is_applied_with_its_v5_id_and_changes_nothing() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let action = creates(&emulator, "jd-there", 1);
    let id = task_id(action[0].key());
    // Made by a run whose answer never came back.
    emulator.insert(
        Table::Task,
        BTreeMap::from([
            ("activityid".to_owned(), json!(id)),
            ("subject".to_owned(), json!("as the first run wrote it")),
        ]),
    );
    let before = emulator.tasks().len();
    let outcomes = connector.apply(&action).await.expect("sent");
    assert_eq!(applied_ids(&outcomes), std::slice::from_ref(&id));
    assert_eq!(emulator.tasks().len(), before);
    let task = emulator.record(Table::Task, &id).expect("the task");
    assert_eq!(task.fields["subject"], "as the first run wrote it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_while_the_server_still_runs_the_orphaned_batch_makes_one_task_per_key() {
    let emulator = emulator();
    emulator.update_knobs(|knobs| knobs.batch_part_delay = Duration::from_millis(40));
    let actions = creates(&emulator, "jd-orphan", 8);
    let before = emulator.tasks().len();
    let sent_at = Utc::now() - chrono::Duration::seconds(1);
    let dying = connect(&emulator, settings(&emulator));
    let sent = actions.clone();
    let run = tokio::spawn(async move { dying.apply(&sent).await });
    // The run dies once the server has committed the first of its writes.
    assert!(
        eventually(|| emulator.tasks().len() > before).await,
        "the batch started"
    );
    run.abort();
    assert!(run.await.is_err_and(|err| err.is_cancelled()));
    assert!(emulator.tasks().len() < before + actions.len());
    assert_eq!(
        emulator.batches_running(),
        1,
        "the server goes on without it"
    );
    let rerun = connect(&emulator, settings(&emulator));
    let outcomes = settle_as_a_rerun(&rerun, &actions, sent_at).await;
    assert!(
        eventually(|| emulator.batches_running() == 0).await,
        "the orphaned batch ends"
    );
    for action in &actions {
        assert_eq!(
            tasks_keyed(&emulator, action.key()).len(),
            1,
            "{}",
            action.key()
        );
    }
    assert_eq!(emulator.tasks().len(), before + actions.len());
    let ids: BTreeMap<ActionKey, String> = outcomes
        .iter()
        .map(|o| match &o.result {
            ActionResult::Applied { crm_id } => (o.key.clone(), crm_id.clone()),
            other => panic!("{}: {other:?}", o.key),
        })
        .collect();
    for action in &actions {
        assert_eq!(ids.get(action.key()), Some(&task_id(action.key())));
    }
}

#[tokio::test]
async fn an_unreadable_batch_answer_leaves_every_write_unknown_and_a_resend_writes_none_twice() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let actions = creates(&emulator, "jd-garbled", 3);
    let before = emulator.tasks().len();
    emulator.malform_next_write();
    let outcomes = connector
        .apply(&actions)
        .await
        .expect("an outcome per write");
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.result, ActionResult::Unknown { .. })),
        "{outcomes:?}"
    );
    assert_eq!(emulator.tasks().len(), before + 3, "the CRM wrote them");
    let again = connector.apply(&actions).await.expect("sent again");
    let expected: Vec<String> = actions.iter().map(|a| task_id(a.key())).collect();
    assert_eq!(applied_ids(&again), expected);
    assert_eq!(emulator.tasks().len(), before + 3);
}

/// A task journeyd made for the first deal, and its create.
async fn made_task(
    emulator: &DynamicsEmulator,
    connector: &DynamicsConnector,
) -> (ActionRequest, String) {
    let create = creates(emulator, "jd-made", 1).remove(0);
    let outcomes = connector
        .apply(std::slice::from_ref(&create))
        .await
        .expect("sent");
    (create, applied_ids(&outcomes).remove(0))
}

#[tokio::test]
async fn an_update_rewrites_the_task_in_place_with_one_marker_line_and_its_new_owner() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let (create, id) = made_task(&emulator, &connector).await;
    let team = emulator.ids(Table::Team)[0].clone();
    let before = emulator.tasks().len();
    let update = ActionRequest::UpdateTask {
        key: ActionKey::new("jd-made-0-u1"),
        task_key: create.key().clone(),
        task_id: id.clone(),
        owner_id: Some(OwnerId::new(team.clone())),
        subject: format!("[journeyd] {}", "2 checks to fix ".repeat(20)),
        body: "- owner\n- amount".into(),
        priority: Priority::Low,
    };
    for _ in 0..2 {
        let outcomes = connector
            .apply(std::slice::from_ref(&update))
            .await
            .expect("sent");
        assert_eq!(applied_ids(&outcomes), std::slice::from_ref(&id));
    }
    assert_eq!(emulator.tasks().len(), before, "an update creates nothing");
    let task = emulator.record(Table::Task, &id).expect("the task");
    assert_eq!(
        task.fields["description"],
        format!("- owner\n- amount\n\njourneyd-action: {}", create.key())
    );
    let subject = task.fields["subject"].as_str().expect("a subject");
    assert_eq!(subject.chars().count(), 200);
    assert_eq!(task.fields["prioritycode"], 0);
    assert_eq!(task.fields["_ownerid_value"], json!(team));
}

#[tokio::test]
async fn an_update_of_a_task_not_there_yet_fails_retryably_and_creates_nothing() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let create = creates(&emulator, "jd-later", 1).remove(0);
    let id = task_id(create.key());
    let before = emulator.tasks().len();
    let outcomes = connector
        .apply(&[ActionRequest::UpdateTask {
            key: ActionKey::new("jd-later-0-u1"),
            task_key: create.key().clone(),
            task_id: id.clone(),
            owner_id: None,
            subject: "[journeyd] 1 check to fix".into(),
            body: "- owner".into(),
            priority: Priority::Normal,
        }])
        .await
        .expect("sent");
    assert!(
        matches!(&outcomes[0].result, ActionResult::Failed { retryable: true, reason } if reason.contains("404")),
        "{outcomes:?}"
    );
    assert_eq!(emulator.tasks().len(), before);
    assert!(emulator.record(Table::Task, &id).is_none());
}

#[tokio::test]
async fn completing_a_task_someone_deleted_is_applied() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let (_, id) = made_task(&emulator, &connector).await;
    emulator.delete(Table::Task, &id).expect("the task exists");
    let outcomes = connector
        .apply(&[ActionRequest::CompleteTask {
            key: ActionKey::new("jd-made-0-close"),
            task_id: id.clone(),
        }])
        .await
        .expect("sent");
    assert_eq!(applied_ids(&outcomes), [id]);
}

#[tokio::test]
async fn an_unconfirmed_write_is_simply_sent_again() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    assert_eq!(connector.recovery(), Recovery::Resend);
}

#[tokio::test]
async fn a_deals_task_from_journeyd_is_marked_as_its_own_and_the_others_are_not() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let (_, id) = made_task(&emulator, &connector).await;
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let tasks: Vec<_> = deals.iter().flat_map(|d| d.tasks.iter()).collect();
    let ours: Vec<_> = tasks.iter().filter(|t| t.by_journeyd).collect();
    assert_eq!(ours.len(), 1, "{tasks:?}");
    assert_eq!(ours[0].id, id);
    assert!(tasks.len() > 1, "the seeded tasks came too");
}

#[tokio::test]
async fn a_429_storm_is_waited_out_as_retry_after_says() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let wait = Duration::from_secs(1);
    emulator.faults().storm(1, Some(wait));
    let started = Instant::now();
    let page = connector
        .pull(ObjectKind::Account, PullFrom::Start)
        .await
        .expect("the storm passes");
    assert!(!page.items.is_empty());
    assert!(
        started.elapsed() >= wait,
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(connector.stats().retries, 1);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    let emulator = emulator();
    let connector = paged(&emulator, 5);
    let first = connector
        .pull(ObjectKind::Account, PullFrom::Start)
        .await
        .expect("the first page");
    emulator.expire_tokens();
    let second = connector
        .pull(
            ObjectKind::Account,
            PullFrom::Cursor(first.next.expect("more than one page")),
        )
        .await
        .expect("the page after the token expired");
    assert!(!second.items.is_empty());
    assert_eq!(connector.stats().token_refreshes, 2);
    assert_eq!(emulator.counts().get(TOKEN), 2);
}

#[tokio::test]
async fn owners_are_users_named_by_their_teams_and_the_teams_themselves() {
    let emulator = emulator();
    let connector = paged(&emulator, 4);
    let mut owners = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = connector.owners(cursor).await.expect("a page of owners");
        assert!(page.skipped.is_empty(), "{:?}", page.skipped);
        owners.extend(page.items);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let users = emulator.ids(Table::SystemUser);
    let teams = emulator.ids(Table::Team);
    assert_eq!(owners.len(), users.len() + teams.len());
    assert!(owners.iter().any(|o| !o.active), "the disabled user");
    let team_names: BTreeSet<String> = emulator
        .records(Table::Team)
        .iter()
        .filter_map(|t| {
            t.fields
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(
        owners
            .iter()
            .filter(|o| users.contains(&o.id.to_string()))
            .any(|o| o.teams.iter().any(|t| team_names.contains(t))),
        "some user is named by its team"
    );
    for team in &teams {
        let owner = owners
            .iter()
            .find(|o| o.id.as_str() == team)
            .expect("the team owns");
        assert_eq!(owner.teams, std::slice::from_ref(&owner.name));
    }
}

#[tokio::test]
async fn a_task_for_a_team_owner_is_bound_to_the_team() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let team = emulator.ids(Table::Team)[0].clone();
    let deal = RecordId::new(emulator.ids(Table::Opportunity)[0].clone());
    let mut action = task("jd-team-1", ObjectKind::Deal, &deal);
    if let ActionRequest::CreateTask { owner_id, .. } = &mut action {
        *owner_id = Some(team.as_str().into());
    }
    let id = applied_ids(&connector.apply(&[action]).await.expect("sent")).remove(0);
    let written = emulator.record(Table::Task, &id).expect("the task");
    assert_eq!(written.fields.get("_ownerid_value"), Some(&json!(team)));
    assert_eq!(
        written.fields.get("_regardingobjectid_value"),
        Some(&json!(deal.as_str()))
    );
}

#[tokio::test]
async fn completing_a_task_closes_it() {
    let emulator = emulator();
    let connector = connect(&emulator, settings(&emulator));
    let deal = RecordId::new(emulator.ids(Table::Opportunity)[0].clone());
    let id = applied_ids(
        &connector
            .apply(&[task("jd-done-1", ObjectKind::Deal, &deal)])
            .await
            .expect("sent"),
    )
    .remove(0);
    let outcomes = connector
        .apply(&[ActionRequest::CompleteTask {
            key: ActionKey::new("jd-done-1-close"),
            task_id: id.clone(),
        }])
        .await
        .expect("sent");
    assert_eq!(applied_ids(&outcomes), std::slice::from_ref(&id));
    let closed = emulator.record(Table::Task, &id).expect("the task");
    assert_eq!(closed.fields.get("statecode"), Some(&json!(1)));
    assert_eq!(closed.fields.get("statuscode"), Some(&json!(5)));
}

#[tokio::test]
async fn no_secret_reaches_an_error() {
    let emulator = emulator();
    let connector = DynamicsConnector::new(
        ConnectorName::new("dynamics"),
        settings(&emulator),
        DynamicsCredentials {
            client_secret: "wrong~secret~value".into(),
        },
    )
    .expect("the connector builds");
    let refused = connector
        .pull(ObjectKind::Account, PullFrom::Start)
        .await
        .expect_err("a wrong secret is refused");
    let text = format!("{refused} {refused:?}");
    assert!(matches!(refused, ConnectorError::Auth { .. }), "{text}");
    assert!(!text.contains("wrong~secret~value"), "{text}");
    assert!(!text.contains(&emulator.client_secret()), "{text}");
}
