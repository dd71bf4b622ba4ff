//! Specifications of the Salesforce connector against the Salesforce
//! emulator: what it reads, what it writes, and where it stops.

use chrono::NaiveDate;
use journeyd_connector::connector::PullFrom;
use journeyd_connector::testkit::pull_all;
use journeyd_connector::{
    ActionKey, ActionRequest, ActionResult, Connector, ConnectorError, ConnectorName, ObjectKind,
    Priority, RecordId, Recovery,
};
use journeyd_salesforce::{
    SalesforceAuth, SalesforceConnector, SalesforceCredentials, SalesforceSettings,
};
use journeyd_salesforce_emulator::{EmulatorConfig, SObject, SalesforceEmulator, SeedSizes};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const QUERY: &str = "GET /services/data/{version}/query";
const MORE: &str = "GET /services/data/{version}/query/{locator}";

fn emulator() -> SalesforceEmulator {
    SalesforceEmulator::start(EmulatorConfig {
        sizes: SeedSizes::for_opportunities(12),
        ..EmulatorConfig::default()
    })
    .expect("the emulator starts")
}

fn settings(emulator: &SalesforceEmulator) -> SalesforceSettings {
    let mut settings = SalesforceSettings::defaults(
        emulator.base_url(),
        SalesforceAuth::JwtBearer {
            client_id: emulator.client_id(),
            username: emulator.username(),
        },
    );
    settings.jwt_audience = Some(emulator.jwt_audience().to_string());
    settings.account_stage_field = Some("Customer_Stage__c".into());
    // Lookups wait this as well as the settle time: short, for speed.
    settings.retry.send_window = std::time::Duration::from_secs(1);
    settings
}

fn connect(settings: SalesforceSettings) -> SalesforceConnector {
    SalesforceConnector::new(
        ConnectorName::new("salesforce"),
        settings,
        SalesforceCredentials::JwtBearer {
            private_key: journeyd_salesforce_emulator::TEST_JWT_PRIVATE_KEY_PEM.into(),
        },
    )
    .expect("the connector builds")
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

fn applied_ids(outcomes: &[journeyd_connector::ActionOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|outcome| match &outcome.result {
            ActionResult::Applied { crm_id } => crm_id.clone(),
            other => panic!("{}: {other:?}", outcome.key),
        })
        .collect()
}

#[tokio::test]
async fn owners_are_read_with_title_and_department_as_teams_inactive_ones_too() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let mut owners = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = connector.owners(cursor).await.expect("a page of owners");
        assert!(page.skipped.is_empty(), "{:?}", page.skipped);
        owners.extend(page.items);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(
        owners
            .iter()
            .any(|o| o.teams.iter().any(|t| t == "Sales Rep"))
    );
    assert!(owners.iter().any(|o| !o.active));
    assert!(owners.iter().any(|o| o.active));
}

#[tokio::test]
async fn every_object_is_read_whole_and_deals_carry_their_stage_history_and_tasks() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    for object in [ObjectKind::Lead, ObjectKind::Contact, ObjectKind::Account] {
        let (records, skipped, _) = pull_all(&connector, object, PullFrom::Start).await;
        assert!(skipped.is_empty(), "{object}: {skipped:?}");
        assert!(!records.is_empty(), "{object}");
    }
    let (accounts, _, _) = pull_all(&connector, ObjectKind::Account, PullFrom::Start).await;
    assert!(
        accounts
            .iter()
            .any(|a| a.stage.as_deref() == Some("Onboarding"))
    );
    let (deals, skipped, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(
        deals.iter().all(|d| !d.stage_history.is_empty()),
        "one row per stage reached"
    );
    assert!(
        deals
            .iter()
            .all(|d| d.stage_entered_at.is_some() && d.associations.account.is_some())
    );
    assert!(deals.iter().any(|d| !d.tasks.is_empty()));
    // The seeded stage whose literal needs escaping comes back as it is.
    assert!(
        deals
            .iter()
            .any(|d| d.stage.as_deref() == Some("Won't Close \\ Parked"))
    );
}

#[tokio::test]
async fn a_pull_sends_the_configured_batch_size_and_follows_next_records_url() {
    let emulator = emulator();
    emulator.update_knobs(|knobs| knobs.min_batch_size = 1);
    let mut settings = settings(&emulator);
    settings.query_batch = std::num::NonZeroU32::new(5).expect("five");
    let connector = connect(settings);
    let (deals, _, pages) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let distinct: BTreeSet<_> = deals.iter().map(|d| d.id.clone()).collect();
    assert_eq!(distinct.len(), deals.len());
    assert_eq!(deals.len(), 13, "twelve and the odd one");
    assert_eq!(pages as u64, predict(&emulator, 5, 200).pages);
    let queries = emulator.queries();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("FROM Opportunity ORDER BY SystemModstamp, Id")),
        "{queries:?}"
    );
}

/// An org whose clock is the real one: getDeleted's window is asked from
/// the connector's clock.
fn emulator_now() -> SalesforceEmulator {
    SalesforceEmulator::start(EmulatorConfig {
        sizes: SeedSizes::for_opportunities(12),
        now: chrono::Utc::now(),
        ..EmulatorConfig::default()
    })
    .expect("the emulator starts")
}

/// Every deletions page of `object`, and how many there were.
async fn all_deletions(
    connector: &SalesforceConnector,
    object: ObjectKind,
) -> (BTreeSet<RecordId>, usize) {
    let mut ids = BTreeSet::new();
    let mut cursor = None;
    for pages in 1..=20 {
        let page = connector
            .deletions(object, cursor)
            .await
            .expect("a page of deletions");
        ids.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (ids, pages),
        }
    }
    panic!("deletions did not end within 20 pages");
}

#[tokio::test]
async fn recycled_records_are_reported_as_deletions() {
    let emulator = emulator_now();
    let connector = connect(settings(&emulator));
    let (leads, _, _) = pull_all(&connector, ObjectKind::Lead, PullFrom::Start).await;
    let gone = leads[0].id.clone();
    emulator
        .delete(SObject::Lead, gone.as_str())
        .expect("the lead exists");
    let (ids, pages) = all_deletions(&connector, ObjectKind::Lead).await;
    assert_eq!(ids, BTreeSet::from([gone]));
    assert_eq!(pages, 2, "the recycle bin, then the delete log");
    assert_eq!(
        emulator
            .counts()
            .get("GET /services/data/{version}/sobjects/{sobject}/deleted/"),
        1
    );
}

#[tokio::test]
async fn records_emptied_from_the_recycle_bin_are_reported_from_the_delete_log() {
    let emulator = emulator_now();
    let connector = connect(settings(&emulator));
    let (leads, _, _) = pull_all(&connector, ObjectKind::Lead, PullFrom::Start).await;
    let gone = leads[1].id.clone();
    emulator
        .delete(SObject::Lead, gone.as_str())
        .expect("the lead exists");
    emulator
        .empty_from_recycle_bin(SObject::Lead, gone.as_str())
        .expect("the lead is in the bin");
    let recycle_bin = connector
        .deletions(ObjectKind::Lead, None)
        .await
        .expect("the recycle bin");
    assert!(recycle_bin.items.is_empty());
    let (ids, _) = all_deletions(&connector, ObjectKind::Lead).await;
    assert_eq!(ids, BTreeSet::from([gone]));
}

/// The keys of `outcomes` reported applied.
fn applied_keys(outcomes: &[journeyd_connector::ActionOutcome]) -> BTreeSet<String> {
    outcomes
        .iter()
        .filter(|o| matches!(o.result, ActionResult::Applied { .. }))
        .map(|o| o.key.as_str().to_owned())
        .collect()
}

/// What the SOQL `q` filters and sorts on: its text after `WHERE`.
fn filter_of(soql: &str) -> &str {
    soql.split_once(" WHERE ").map_or("", |(_, filter)| filter)
}

#[tokio::test]
async fn recovery_looks_up_the_integration_users_tasks_created_since_and_never_filters_on_description()
 {
    let emulator = emulator();
    emulator.update_knobs(|knobs| knobs.min_batch_size = 1);
    let mut settings = settings(&emulator);
    // A few rows a page, so the lookup reads several.
    settings.query_batch = std::num::NonZeroU32::new(2).expect("two");
    let connector = connect(settings);
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;

    // Written a day before the batch in question: not one of its creates.
    let old = applied_ids(
        &connector
            .apply(&[task("jdold0t", ObjectKind::Deal, &deals[0].id)])
            .await
            .expect("an old task"),
    );
    emulator
        .set_field(
            SObject::Task,
            &old[0],
            "CreatedDate",
            json!(
                (emulator.now() - chrono::Duration::days(1))
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string()
            ),
        )
        .expect("the old task exists");
    let since = emulator.now();
    let written: Vec<_> = deals[1..6]
        .iter()
        .enumerate()
        .map(|(i, deal)| task(&format!("jdlost{i}t"), ObjectKind::Deal, &deal.id))
        .collect();
    connector.apply(&written).await.expect("the batch is sent");
    // Someone else's task carrying a key's marker (copied by hand, say).
    let someone = emulator.ids(SObject::User)[3].clone();
    let mut copied = serde_json::Map::new();
    copied.insert("Subject".into(), json!("copied"));
    copied.insert("WhatId".into(), json!(deals[7].id.as_str()));
    copied.insert(
        "Description".into(),
        json!(ActionKey::new("jdtheirs0t").in_text("copied by hand")),
    );
    emulator
        .create_as(SObject::Task, &someone, copied)
        .expect("a user of the org");

    let mut keys: Vec<ActionKey> = written.iter().map(|a| a.key().clone()).collect();
    keys.extend(["jdold0t", "jdtheirs0t", "jdnever0t"].map(ActionKey::new));
    let queries_before = emulator.queries().len();
    let pages_before = emulator.counts().get(MORE);
    let found = connector
        .find_applied(&keys, since)
        .await
        .expect("the lookup");
    let expected: BTreeSet<String> = written
        .iter()
        .map(|a| a.key().as_str().to_owned())
        .collect();
    assert_eq!(applied_keys(&found), expected);
    assert!(
        emulator.counts().get(MORE) > pages_before,
        "the lookup read past its first page"
    );
    let lookups = &emulator.queries()[queries_before..];
    assert_eq!(lookups.len(), 1, "one query: {lookups:?}");
    let filter = filter_of(&lookups[0]);
    assert!(
        filter.contains(&format!(
            "CreatedById = '{}'",
            emulator.integration_user_id()
        )),
        "{}",
        lookups[0]
    );
    assert!(filter.contains("CreatedDate >= "), "{}", lookups[0]);
    assert!(!filter.contains("Description"), "{}", lookups[0]);
}

#[tokio::test]
async fn a_key_with_quotes_and_wildcards_is_found_again_and_a_look_alike_is_not() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let since = emulator.now();
    let tricky = "k'1\\_%x";
    let outcomes = connector
        .apply(&[task(tricky, ObjectKind::Deal, &deals[0].id)])
        .await
        .expect("the task is written");
    let ids = applied_ids(&outcomes);
    let keys = [ActionKey::new(tricky), ActionKey::new("k'1\\a1x")];
    let found = connector
        .find_applied(&keys, since)
        .await
        .expect("the lookup");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key.as_str(), tricky);
    assert_eq!(
        found[0].result,
        ActionResult::Applied {
            crm_id: ids[0].clone()
        }
    );
}

#[tokio::test]
async fn with_an_external_id_field_tasks_are_upserted_so_a_resend_writes_nothing_new() {
    let emulator = emulator();
    let mut settings = settings(&emulator);
    settings.task_external_id = Some("Journeyd_Key__c".into());
    let connector = connect(settings);
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let actions: Vec<_> = deals[..3]
        .iter()
        .enumerate()
        .map(|(i, deal)| task(&format!("up{i}"), ObjectKind::Deal, &deal.id))
        .collect();
    let before = emulator.tasks().len();
    let first = applied_ids(&connector.apply(&actions).await.expect("written"));
    let again = applied_ids(&connector.apply(&actions).await.expect("written again"));
    assert_eq!(first, again);
    assert_eq!(emulator.tasks().len(), before + 3);
    let keys: Vec<_> = actions.iter().map(|a| a.key().clone()).collect();
    let found = connector
        .find_applied(&keys, chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .await
        .expect("the lookup");
    assert_eq!(found.len(), 3);
}

#[test]
fn without_an_external_id_lost_creates_are_looked_up_after_settle_and_with_one_resent() {
    let emulator = emulator();
    let mut lookup = settings(&emulator);
    lookup.settle = Duration::from_secs(45);
    lookup.retry.send_window = Duration::from_secs(5);
    assert_eq!(
        connect(lookup.clone()).recovery(),
        Recovery::LookUp {
            settle: Duration::from_secs(50)
        },
        "the send window, then the settle time"
    );
    lookup.task_external_id = Some("Journeyd_Key__c".into());
    assert_eq!(connect(lookup).recovery(), Recovery::Resend);
    let defaults = SalesforceSettings::defaults(
        emulator.base_url(),
        SalesforceAuth::RefreshToken {
            client_id: "c".into(),
        },
    );
    assert_eq!(defaults.settle, Duration::from_secs(30));
}

/// Polls `done` every 10 ms until it holds, for at most `within`.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..within.as_millis() / 10 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Sends `actions` and gives up (as a process killed mid-call would) once
/// the server has written the first of `before + 1` tasks.
async fn die_mid_write(
    emulator: &SalesforceEmulator,
    connector: &SalesforceConnector,
    actions: &[ActionRequest],
    before: usize,
) {
    tokio::select! {
        outcomes = connector.apply(actions) => panic!("answered before the client died: {outcomes:?}"),
        started = eventually(Duration::from_secs(10), || emulator.tasks().len() > before) => {
            assert!(started, "the server began writing");
        }
    }
    assert!(
        emulator.tasks().len() < before + actions.len(),
        "the client died mid-way"
    );
}

#[tokio::test]
async fn an_orphaned_create_the_server_finished_after_the_client_died_is_found_by_a_lookup_after_settle()
 {
    let emulator = emulator();
    let per_row = Duration::from_millis(100);
    emulator.update_knobs(|knobs| knobs.detached_row_delay = Some(per_row));
    let mut settings = settings(&emulator);
    // Longer than the server takes to finish the five rows.
    settings.settle = per_row * 20;
    let connector = connect(settings.clone());
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let written: Vec<_> = deals[..5]
        .iter()
        .enumerate()
        .map(|(i, deal)| task(&format!("jdorphan{i}t"), ObjectKind::Deal, &deal.id))
        .collect();
    let before = emulator.tasks().len();
    let since = emulator.now();
    die_mid_write(&emulator, &connector, &written, before).await;

    // The next run, on a new connector, waits out the settle time first.
    let rerun = connect(settings);
    let Recovery::LookUp { settle } = rerun.recovery() else {
        panic!("no external id: creates are looked up");
    };
    tokio::time::sleep(settle).await;
    let keys: Vec<ActionKey> = written.iter().map(|a| a.key().clone()).collect();
    let found = rerun.find_applied(&keys, since).await.expect("the lookup");
    let expected: BTreeSet<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
    assert_eq!(
        applied_keys(&found),
        expected,
        "every orphaned create is found"
    );
    assert_eq!(
        emulator.tasks().len(),
        before + 5,
        "and each was written once"
    );
}

#[tokio::test]
async fn with_an_external_id_a_resend_racing_the_orphaned_write_writes_each_task_once() {
    let emulator = emulator();
    emulator.update_knobs(|knobs| knobs.detached_row_delay = Some(Duration::from_millis(100)));
    let mut settings = settings(&emulator);
    settings.task_external_id = Some("Journeyd_Key__c".into());
    let connector = connect(settings.clone());
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let written: Vec<_> = deals[..5]
        .iter()
        .enumerate()
        .map(|(i, deal)| task(&format!("jdrace{i}t"), ObjectKind::Deal, &deal.id))
        .collect();
    let before = emulator.tasks().len();
    die_mid_write(&emulator, &connector, &written, before).await;

    // Resent at once, while the server is still writing the orphan.
    let rerun = connect(settings);
    assert_eq!(rerun.recovery(), Recovery::Resend);
    let outcomes = rerun.apply(&written).await.expect("the resend");
    assert_eq!(applied_ids(&outcomes).len(), 5);
    assert!(
        eventually(Duration::from_secs(10), || emulator.writes_in_flight() == 0).await,
        "the orphan finished"
    );
    for action in &written {
        let carrying = emulator
            .tasks()
            .iter()
            .filter(|t| t.fields.get("Journeyd_Key__c") == Some(&json!(action.key().as_str())))
            .count();
        assert_eq!(carrying, 1, "{}", action.key());
    }
    assert_eq!(emulator.tasks().len(), before + 5);
}

#[tokio::test]
async fn updating_a_task_rewrites_it_in_place_with_one_marker_of_its_first_key() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let created = applied_ids(
        &connector
            .apply(&[task("jdfirst0t", ObjectKind::Deal, &deals[0].id)])
            .await
            .expect("the task is created"),
    );
    let before = emulator.tasks().len();
    let owner = emulator.ids(SObject::User)[2].clone();
    let update = ActionRequest::UpdateTask {
        key: ActionKey::new("jdupdate1u"),
        task_key: ActionKey::new("jdfirst0t"),
        task_id: created[0].clone(),
        owner_id: Some(journeyd_connector::OwnerId::new(owner.clone())),
        subject: "[journeyd] 2 journey checks to fix".into(),
        body: "- first\n- second".into(),
        priority: Priority::Low,
    };
    for _ in 0..2 {
        let outcomes = connector
            .apply(std::slice::from_ref(&update))
            .await
            .expect("the update is sent");
        assert_eq!(applied_ids(&outcomes), [created[0].clone()]);
    }
    assert_eq!(emulator.tasks().len(), before, "an update creates nothing");
    let task = emulator
        .record(SObject::Task, &created[0])
        .expect("the task");
    assert_eq!(task.fields["Subject"], "[journeyd] 2 journey checks to fix");
    assert_eq!(task.fields["Priority"], "Low");
    assert_eq!(task.fields["OwnerId"], owner.as_str());
    let description = task.fields["Description"].as_str().expect("a description");
    assert_eq!(
        description,
        "- first\n- second\n\njourneyd-action: jdfirst0t"
    );
}

#[tokio::test]
async fn completing_a_task_someone_deleted_or_purged_is_applied() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let ids = applied_ids(
        &connector
            .apply(
                &(0..3)
                    .map(|i| task(&format!("jdgone{i}t"), ObjectKind::Deal, &deals[i].id))
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("the tasks are created"),
    );
    emulator
        .delete(SObject::Task, &ids[0])
        .expect("a live task");
    emulator
        .delete(SObject::Task, &ids[1])
        .expect("a live task");
    emulator
        .empty_from_recycle_bin(SObject::Task, &ids[1])
        .expect("a recycled task");
    let completions: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ActionRequest::CompleteTask {
            key: ActionKey::new(format!("jdgone{i}c")),
            task_id: id.clone(),
        })
        .collect();
    let outcomes = connector.apply(&completions).await.expect("sent");
    assert_eq!(applied_ids(&outcomes), ids, "each as good as closed");
    let open = emulator.record(SObject::Task, &ids[2]).expect("the task");
    assert_eq!(open.fields["Status"], "Completed");
}

fn unknown(outcomes: &[journeyd_connector::ActionOutcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o.result, ActionResult::Unknown { .. }))
        .count()
}

const CREATE: &str = "POST /services/data/{version}/composite/sobjects";
const UPDATE: &str = "PATCH /services/data/{version}/composite/sobjects";

#[tokio::test]
async fn a_create_answered_2xx_with_an_unreadable_body_is_unknown_though_written() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let before = emulator.tasks().len();
    emulator.malform_next_write();
    let outcomes = connector
        .apply(&[
            task("jdgarbled0t", ObjectKind::Deal, &deals[0].id),
            task("jdgarbled1t", ObjectKind::Deal, &deals[1].id),
        ])
        .await
        .expect("an outcome per action");
    assert_eq!(unknown(&outcomes), 2, "{outcomes:?}");
    assert_eq!(emulator.tasks().len(), before + 2, "Salesforce wrote them");
    assert_eq!(emulator.counts().get(CREATE), 1, "sent once");
}

#[tokio::test]
async fn a_create_answered_with_a_server_error_is_unknown_and_the_rest_of_the_batch_held_back() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    emulator.faults().fail_next(1);
    let outcomes = connector
        .apply(&[
            task("jd5xx0t", ObjectKind::Deal, &deals[0].id),
            ActionRequest::SetField {
                key: ActionKey::new("jd5xx1f"),
                object: ObjectKind::Deal,
                record_id: deals[1].id.clone(),
                field: "LeadSource".into(),
                value: "Web".into(),
                current: None,
            },
        ])
        .await
        .expect("an outcome per action");
    assert!(
        matches!(outcomes[0].result, ActionResult::Unknown { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1].result, ActionResult::Failed { reason, retryable: true } if reason.starts_with("not sent")),
        "{outcomes:?}"
    );
    assert_eq!(emulator.counts().get(CREATE), 1, "a create is not resent");
    assert_eq!(emulator.counts().get(UPDATE), 0);
}

#[tokio::test]
async fn a_create_whose_answer_never_comes_is_unknown() {
    let emulator = emulator();
    let mut settings = settings(&emulator);
    settings.retry.timeout = Duration::from_millis(500);
    let connector = connect(settings);
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    emulator.hold_collections_create(Duration::from_secs(30));
    let outcomes = connector
        .apply(&[task("jdslow0t", ObjectKind::Deal, &deals[0].id)])
        .await
        .expect("an outcome per action");
    assert_eq!(unknown(&outcomes), 1, "{outcomes:?}");
    assert_eq!(emulator.counts().get(CREATE), 1, "a create is not resent");
}

/// An instance whose collections create answers one result whatever it
/// was sent.
fn instance_answering_one_result() -> axum::Router {
    use axum::routing::post;
    axum::Router::new().route(
        "/services/data/{version}/composite/sobjects",
        post(|| async {
            axum::Json(json!([{"id": "00TDn0000ZZZZZ1AAA", "success": true, "errors": []}]))
        }),
    )
}

#[tokio::test]
async fn creates_answered_with_a_result_list_of_the_wrong_length_are_unknown() {
    let emulator = emulator();
    let instance =
        journeyd_connector::emulator::EmulatorServer::start(instance_answering_one_result())
            .expect("the instance starts");
    let instance_url = instance
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    emulator.update_knobs(|knobs| knobs.instance_url = Some(instance_url));
    let connector = connect(settings(&emulator));
    let deal = RecordId::new("006Dn0000ZZZZZ1AAA");
    let outcomes = connector
        .apply(&[
            task("jdshort0t", ObjectKind::Deal, &deal),
            task("jdshort1t", ObjectKind::Deal, &deal),
        ])
        .await
        .expect("an outcome per action");
    assert_eq!(unknown(&outcomes), 2, "{outcomes:?}");
}

/// A login host whose token response names the instance but no identity.
fn login_without_identity(instance: String) -> axum::Router {
    use axum::routing::post;
    axum::Router::new().route(
        "/services/oauth2/token",
        post(move || {
            let instance = instance.clone();
            async move {
                axum::Json(json!({
                    "access_token": "00D!AQ.no.identity",
                    "instance_url": instance,
                    "token_type": "Bearer",
                    "issued_at": "1278448101416",
                }))
            }
        }),
    )
}

#[tokio::test]
async fn a_lookup_without_the_integration_users_identity_fails_naming_what_is_missing() {
    let emulator = emulator();
    let login = journeyd_connector::emulator::EmulatorServer::start(login_without_identity(
        emulator
            .base_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
    ))
    .expect("the login host starts");
    let mut settings = settings(&emulator);
    settings.login_url = login.base_url();
    let connector = connect(settings);
    let err = connector
        .find_applied(&[ActionKey::new("jdk0t")], emulator.now())
        .await
        .expect_err("no user to look up");
    let text = err.to_string();
    assert!(text.starts_with("salesforce "), "{text}");
    assert!(text.contains("identity url"), "{text}");
    assert!(emulator.queries().is_empty(), "nothing was guessed");
}

#[tokio::test]
async fn a_field_is_set_and_a_task_completed_through_collections() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (accounts, _, _) = pull_all(&connector, ObjectKind::Account, PullFrom::Start).await;
    let (contacts, _, _) = pull_all(&connector, ObjectKind::Contact, PullFrom::Start).await;
    let created = applied_ids(
        &connector
            .apply(&[task("c1", ObjectKind::Contact, &contacts[0].id)])
            .await
            .expect("a task on a contact"),
    );
    let outcomes = connector
        .apply(&[
            ActionRequest::SetField {
                key: ActionKey::new("f1"),
                object: ObjectKind::Account,
                record_id: accounts[0].id.clone(),
                field: "Customer_Stage__c".into(),
                value: "Renewal".into(),
                current: None,
            },
            ActionRequest::CompleteTask {
                key: ActionKey::new("t1"),
                task_id: created[0].clone(),
            },
        ])
        .await
        .expect("the updates are sent");
    assert_eq!(
        applied_ids(&outcomes),
        [accounts[0].id.as_str().to_owned(), created[0].clone()]
    );
    let (accounts, _, _) = pull_all(&connector, ObjectKind::Account, PullFrom::Start).await;
    let changed = accounts
        .iter()
        .find(|a| a.id == outcomes_id(&outcomes[0]))
        .expect("the account");
    assert_eq!(changed.stage.as_deref(), Some("Renewal"));
    let task = emulator
        .record(SObject::Task, &created[0])
        .expect("the task");
    assert_eq!(task.fields["Status"], "Completed");
    assert_eq!(
        task.fields["WhoId"],
        contacts[0].id.as_str(),
        "a contact is a who"
    );
}

fn outcomes_id(outcome: &journeyd_connector::ActionOutcome) -> RecordId {
    match &outcome.result {
        ActionResult::Applied { crm_id } => RecordId::new(crm_id.clone()),
        other => panic!("{other:?}"),
    }
}

/// Reads owners until the connector refuses for the daily allowance, which
/// it must within `calls` reads.
async fn assert_allowance_stops_within(connector: &SalesforceConnector, calls: usize) {
    let mut stopped = None;
    for _ in 0..calls {
        if let Err(err) = connector.owners(None).await {
            stopped = Some(err);
            break;
        }
    }
    assert!(
        matches!(stopped, Some(ConnectorError::AllowanceExhausted { .. })),
        "{stopped:?}"
    );
}

#[tokio::test]
async fn no_call_is_started_once_the_daily_share_is_reached() {
    let emulator = emulator();
    emulator.set_daily_limit(20);
    let mut settings = settings(&emulator);
    settings.daily_stop_share = 0.5;
    let connector = connect(settings);
    assert_allowance_stops_within(&connector, 20).await;
    let (used, max) = emulator.api_usage();
    assert_eq!(max, Some(20));
    assert_eq!(used, 10, "stopped at half the allowance, not past it");
}

#[tokio::test]
async fn a_spent_allocation_ends_the_run_without_retrying() {
    let emulator = emulator();
    emulator.set_daily_limit(3);
    let mut settings = settings(&emulator);
    settings.daily_stop_share = 2.0;
    let connector = connect(settings);
    assert_allowance_stops_within(&connector, 5).await;
    let before = emulator.counts().total();
    let again = connector.owners(None).await.unwrap_err();
    assert!(matches!(again, ConnectorError::AllowanceExhausted { .. }));
    assert_eq!(
        emulator.counts().total(),
        before + 1,
        "one refused call, no retries"
    );
}

#[tokio::test]
async fn a_token_response_naming_a_foreign_instance_is_refused() {
    let emulator = emulator();
    emulator.update_knobs(|knobs| {
        knobs.instance_url = Some("https://evil.example.com".parse().expect("a url"));
    });
    let connector = connect(settings(&emulator));
    let err = connector.owners(None).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Auth { reason, .. } if reason.contains("instance_url host not allowed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_incremental_pull_starts_the_overlap_before_the_watermark() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let newest = deals.iter().map(|d| d.modified_at).max().expect("deals");
    let mark = journeyd_connector::Watermark {
        modified_at: newest,
        id: RecordId::new("006zzzzzzzzzzzzzzz"),
    };
    let touched = emulator.touch(SObject::Opportunity, 2);
    let (changed, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Since(mark)).await;
    for id in &touched {
        assert!(
            changed.iter().any(|d| d.id.as_str() == id),
            "{id} was not read"
        );
    }
    let since =
        (newest - chrono::Duration::seconds(60)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expected = format!("WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id");
    assert!(
        emulator.queries().iter().any(|q| q.contains(&expected)),
        "{expected}"
    );
}

#[test]
fn a_configured_field_that_is_not_an_api_name_is_refused() {
    let emulator = emulator();
    let mut settings = settings(&emulator);
    settings
        .properties
        .insert(ObjectKind::Deal, vec!["Name FROM User --".into()]);
    let refused = SalesforceConnector::new(
        ConnectorName::new("salesforce"),
        settings,
        SalesforceCredentials::JwtBearer {
            private_key: journeyd_salesforce_emulator::TEST_JWT_PRIVATE_KEY_PEM.into(),
        },
    );
    assert!(refused.is_err());
}

/// What the page arithmetic of the facts predicts for a full pull of the
/// deals: child rows count toward the batch, and a page holds deals until
/// the next one would not fit (at least one); a child result longer than
/// the child batch is cut there and its rest read in pages of `batch`.
#[derive(Debug, PartialEq, Eq)]
struct Predicted {
    pages: u64,
    child_pages: u64,
}

fn predict(emulator: &SalesforceEmulator, batch: usize, child_batch: usize) -> Predicted {
    let count_by = |object: SObject, field: &str| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for record in emulator.records(object) {
            if let Some(parent) = record.fields.get(field).and_then(Value::as_str) {
                *counts.entry(parent.to_owned()).or_default() += 1;
            }
        }
        counts
    };
    let history = count_by(SObject::OpportunityHistory, "OpportunityId");
    let tasks = count_by(SObject::Task, "WhatId");
    let roles = count_by(SObject::OpportunityContactRole, "OpportunityId");
    let mut deals = emulator.records(SObject::Opportunity);
    deals.sort_by(|a, b| {
        let stamp = |r: &journeyd_salesforce_emulator::EmulatedRecord| {
            r.fields["SystemModstamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        (stamp(a), &a.id).cmp(&(stamp(b), &b.id))
    });
    let (mut pages, mut child_pages, mut taken) = (0u64, 0u64, 0usize);
    for deal in &deals {
        let children = [&history, &tasks, &roles].map(|c| c.get(&deal.id).copied().unwrap_or(0));
        let weight = 1 + children
            .iter()
            .map(|n| (*n).min(child_batch))
            .sum::<usize>();
        child_pages += children
            .iter()
            .map(|n| n.saturating_sub(child_batch).div_ceil(batch) as u64)
            .sum::<u64>();
        if pages == 0 || taken + weight > batch {
            pages += 1;
            taken = 0;
        }
        taken += weight;
    }
    Predicted { pages, child_pages }
}

#[tokio::test]
async fn a_full_pull_of_deals_takes_the_calls_the_page_arithmetic_predicts_and_no_side_query() {
    let emulator = SalesforceEmulator::start(EmulatorConfig {
        sizes: SeedSizes::for_opportunities(30),
        ..EmulatorConfig::default()
    })
    .expect("the emulator starts");
    let (batch, child_batch) = (25, 3);
    emulator.update_knobs(|knobs| {
        knobs.min_batch_size = 1;
        knobs.child_batch_size = child_batch;
    });
    let mut settings = settings(&emulator);
    settings.query_batch = std::num::NonZeroU32::new(25).expect("twenty-five");
    let connector = connect(settings);
    let predicted = predict(&emulator, batch, child_batch);
    assert!(
        predicted.pages > 1 && predicted.child_pages > 0,
        "{predicted:?}"
    );

    let (deals, skipped, pages) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(deals.len(), 31, "thirty and the odd one");
    assert_eq!(pages as u64, predicted.pages);
    let counts = emulator.counts();
    assert_eq!(counts.get(QUERY), 1, "one query");
    assert_eq!(
        counts.get(MORE),
        predicted.pages - 1 + predicted.child_pages,
        "its next pages and the rest of each cut child result"
    );
    let queries = emulator.queries();
    assert_eq!(queries.len(), 1, "no side query: {queries:?}");
    assert!(
        queries[0].contains("FROM OpportunityHistories"),
        "{queries:?}"
    );

    // Every deal carries all its stage history (one row per stage it
    // reached, each a change) and all its tasks.
    for deal in &deals {
        let id = deal.id.as_str();
        let history = emulator
            .records(SObject::OpportunityHistory)
            .iter()
            .filter(|r| r.fields["OpportunityId"] == id)
            .count();
        assert_eq!(deal.stage_history.len(), history, "{id}");
        assert!(deal.stage_entered_at.is_some(), "{id}");
        let tasks = emulator
            .tasks()
            .iter()
            .filter(|t| t.fields["WhatId"] == id)
            .count();
        assert_eq!(deal.tasks.len(), tasks, "{id}");
    }
}

#[tokio::test]
async fn a_deal_carries_its_contacts_primary_first_and_their_roles_from_the_same_query() {
    let emulator = SalesforceEmulator::start(EmulatorConfig {
        sizes: SeedSizes::for_opportunities(30),
        ..EmulatorConfig::default()
    })
    .expect("the emulator starts");
    let (batch, child_batch) = (10, 1);
    // Cut after one child row: a deal's second and third roles come
    // through its result's own link.
    emulator.update_knobs(|knobs| {
        knobs.min_batch_size = 1;
        knobs.child_batch_size = child_batch;
    });
    let mut settings = settings(&emulator);
    settings.query_batch = std::num::NonZeroU32::new(10).expect("ten");
    let connector = connect(settings);
    let predicted = predict(&emulator, batch, child_batch);

    let (deals, skipped, pages) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(pages as u64, predicted.pages);
    assert_eq!(emulator.counts().get(QUERY), 1, "one query");
    assert_eq!(
        emulator.counts().get(MORE),
        predicted.pages - 1 + predicted.child_pages,
        "its pages and the rest of each cut child result, nothing per deal"
    );
    let queries = emulator.queries();
    assert_eq!(queries.len(), 1, "no side query: {queries:?}");
    assert!(
        queries[0].contains("(SELECT ContactId, Role, IsPrimary FROM OpportunityContactRoles)"),
        "{}",
        queries[0]
    );

    let roles = emulator.records(SObject::OpportunityContactRole);
    let mut with_contacts = 0;
    for deal in &deals {
        let own: Vec<_> = roles
            .iter()
            .filter(|r| r.fields["OpportunityId"] == deal.id.as_str())
            .collect();
        let contacts: BTreeSet<&str> = own
            .iter()
            .map(|r| r.fields["ContactId"].as_str().unwrap())
            .collect();
        let got: Vec<&str> = deal
            .associations
            .contacts
            .iter()
            .map(RecordId::as_str)
            .collect();
        assert_eq!(got.len(), contacts.len(), "{}: no contact twice", deal.id);
        assert_eq!(
            got.iter().copied().collect::<BTreeSet<_>>(),
            contacts,
            "{}",
            deal.id
        );
        let names: BTreeSet<&str> = own
            .iter()
            .filter_map(|r| r.fields.get("Role")?.as_str())
            .collect();
        let read: BTreeSet<&str> = deal.fields["contact_roles"]
            .as_array()
            .expect("a list, empty for a deal without contacts")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(read, names, "{}", deal.id);
        if let Some(primary) = own.iter().find(|r| r.fields["IsPrimary"] == true) {
            with_contacts += 1;
            assert_eq!(
                got[0], primary.fields["ContactId"],
                "{}: primary first",
                deal.id
            );
        }
    }
    assert!(
        with_contacts * 4 >= deals.len() * 3,
        "{with_contacts} of {} deals have contacts",
        deals.len()
    );
}

#[tokio::test]
async fn a_deals_tasks_tell_journeyds_own_from_the_rest_by_their_description() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let deal = deals
        .iter()
        .find(|d| !d.tasks.is_empty())
        .expect("a deal with a seeded task");
    assert!(
        deal.tasks.iter().all(|t| !t.by_journeyd),
        "{:?}",
        deal.tasks
    );
    let ours = applied_ids(
        &connector
            .apply(&[task("jdown0t", ObjectKind::Deal, &deal.id)])
            .await
            .expect("written"),
    );
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let deal = deals.iter().find(|d| d.id == deal.id).expect("the deal");
    for task in &deal.tasks {
        assert_eq!(task.by_journeyd, task.id == ours[0], "{task:?}");
    }
}

#[tokio::test]
async fn an_incremental_pull_reads_history_and_tasks_with_the_same_sub_queries() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let mark = journeyd_connector::Watermark {
        modified_at: deals.iter().map(|d| d.modified_at).max().expect("deals"),
        id: RecordId::new("006zzzzzzzzzzzzzzz"),
    };
    let touched = emulator.touch(SObject::Opportunity, 1);
    let (changed, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Since(mark)).await;
    let deal = changed
        .iter()
        .find(|d| d.id.as_str() == touched[0])
        .expect("the touched deal");
    assert!(!deal.stage_history.is_empty());
    let queries = emulator.queries();
    let full = &queries[0];
    let since = queries.last().expect("the incremental query");
    let selected = |q: &str| {
        q.split(" FROM Opportunity")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(selected(since), selected(full));
    assert!(since.contains("WHERE SystemModstamp >= "), "{since}");
    assert_eq!(queries.len(), 2, "no side query: {queries:?}");
}

/// An instance that cuts the stage history of its one deal, then answers
/// the link to the rest with a page that cannot be read.
fn instance_with_a_broken_child_page(deal: &'static str) -> axum::Router {
    use axum::routing::get;
    let first = move || async move {
        axum::Json(json!({
            "totalSize": 1,
            "done": true,
            "records": [{
                "attributes": {"type": "Opportunity"},
                "Id": deal, "Name": "Cut", "StageName": "Prospecting",
                "CreatedDate": "2026-01-02T10:00:00.000+0000",
                "SystemModstamp": "2026-01-02T10:00:00.000+0000",
                "OpportunityHistories": {
                    "totalSize": 3, "done": false,
                    "nextRecordsUrl": "/services/data/v62.0/query/01gDn0000CUT000AAA-1",
                    "records": [{"StageName": "Prospecting", "CreatedDate": "2026-01-02T10:00:00.000+0000"}]
                },
                "Tasks": null
            }]
        }))
    };
    axum::Router::new()
        .route("/services/data/{version}/query", get(first))
        .route(
            "/services/data/{version}/query/{locator}",
            get(|| async { r#"{"totalSize": 3, "records": "#.to_owned() }),
        )
}

#[tokio::test]
async fn a_malformed_child_page_is_an_error_naming_the_opportunity() {
    let deal = "006Dn0000CUTDEALAA";
    let emulator = emulator();
    let instance = journeyd_connector::emulator::EmulatorServer::start(
        instance_with_a_broken_child_page(deal),
    )
    .expect("the instance starts");
    let instance_url = instance
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    emulator.update_knobs(|knobs| knobs.instance_url = Some(instance_url));
    let connector = connect(settings(&emulator));
    let err = connector
        .pull(ObjectKind::Deal, PullFrom::Start)
        .await
        .expect_err("the child page cannot be read");
    match &err {
        ConnectorError::Malformed { reason, .. } => {
            assert!(reason.contains(deal), "{reason}");
            assert!(reason.contains("OpportunityHistories"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_query_locator_is_a_refused_cursor_and_the_page_reports_the_query_total() {
    let emulator = emulator();
    emulator.update_knobs(|knobs| knobs.min_batch_size = 1);
    let mut settings = settings(&emulator);
    settings.query_batch = std::num::NonZeroU32::new(5).expect("five");
    let connector = connect(settings);
    let first = connector
        .pull(ObjectKind::Deal, PullFrom::Start)
        .await
        .expect("the first page");
    assert_eq!(first.total, Some(13), "twelve and the odd one");
    let saved = first.next.expect("more than one page");
    assert!(emulator.expire_query_locators() > 0);

    let refused = connector
        .pull(ObjectKind::Deal, PullFrom::Cursor(saved))
        .await
        .expect_err("the locator is gone");

    assert!(
        matches!(&refused, ConnectorError::CursorRefused { object, reason, .. }
            if object == "deal" && reason.starts_with("INVALID_QUERY_LOCATOR")),
        "{refused:?}"
    );
}
