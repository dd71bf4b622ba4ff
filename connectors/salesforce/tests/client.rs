//! Specifications of the Salesforce connector against the Salesforce
//! emulator: what it reads, what it writes, and where it stops.

use chrono::NaiveDate;
use journeyd_connector::connector::PullFrom;
use journeyd_connector::testkit::pull_all;
use journeyd_connector::{
    ActionKey, ActionRequest, ActionResult, Connector, ConnectorError, ConnectorName, ObjectKind,
    Priority, RecordId,
};
use journeyd_salesforce::emulator::{EmulatorConfig, SObject, SalesforceEmulator, SeedSizes};
use journeyd_salesforce::{
    SalesforceAuth, SalesforceConnector, SalesforceCredentials, SalesforceSettings,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

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
    settings
}

fn connect(settings: SalesforceSettings) -> SalesforceConnector {
    SalesforceConnector::new(
        ConnectorName::new("salesforce"),
        settings,
        SalesforceCredentials::JwtBearer {
            private_key: journeyd_salesforce::emulator::TEST_JWT_PRIVATE_KEY_PEM.into(),
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
            ActionResult::Failed { reason, .. } => panic!("{}: {reason}", outcome.key),
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

#[tokio::test]
async fn a_key_with_quotes_and_wildcards_is_written_and_found_again() {
    let emulator = emulator();
    let connector = connect(settings(&emulator));
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let tricky = "k'1\\_%x";
    let outcomes = connector
        .apply(&[task(tricky, ObjectKind::Deal, &deals[0].id)])
        .await
        .expect("the task is written");
    let ids = applied_ids(&outcomes);
    // A key that only matches as a wildcard would must not be found.
    let keys = [ActionKey::new(tricky), ActionKey::new("k'1\\a1x")];
    let found = connector.find_applied(&keys).await.expect("the lookup");
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
    settings.task_external_id = Some("Journey_Key__c".into());
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
    let found = connector.find_applied(&keys).await.expect("the lookup");
    assert_eq!(found.len(), 3);
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
        ActionResult::Failed { reason, .. } => panic!("{reason}"),
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
            private_key: journeyd_salesforce::emulator::TEST_JWT_PRIVATE_KEY_PEM.into(),
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
    let mut deals = emulator.records(SObject::Opportunity);
    deals.sort_by(|a, b| {
        let stamp = |r: &journeyd_salesforce::emulator::EmulatedRecord| {
            r.fields["SystemModstamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        (stamp(a), &a.id).cmp(&(stamp(b), &b.id))
    });
    let (mut pages, mut child_pages, mut taken) = (0u64, 0u64, 0usize);
    for deal in &deals {
        let children = [&history, &tasks].map(|c| c.get(&deal.id).copied().unwrap_or(0));
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
