//! The HubSpot connector against the HubSpot emulator: paging to the end,
//! incremental pulls, the search window restart at the result cap (ties
//! included), association reads, partial batch failures, what an answer
//! that proves nothing makes of a create, finding written tasks across
//! the search index's lag, rewriting and completing tasks, and the
//! lifecycle stage's clear-then-set. The contract's conformance suite runs
//! in `tests/conformance.rs`.
//!
//! The emulator's search index lags behind its writes here by
//! [`INDEX_LAG`]; a test that writes and then searches waits for the index
//! to catch up, unless the lag is what it is about.

use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::Recovery;
use journeyd_connector::connector::{Connector, PullFrom};
use journeyd_connector::http::{RateLimits, RetryPolicy};
use journeyd_connector::secret::SecretString;
use journeyd_connector::testkit::pull_all;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorName, CrmRecord, ObjectKind,
    Priority, RecordId, TaskStatus, Watermark,
};
use journeyd_hubspot::{HubspotAuth, HubspotConnector, HubspotCredentials, HubspotSettings};
use journeyd_hubspot_emulator::{
    EmulatorConfig, HubspotEmulator, MissingInUpdate, ObjectType, RateLimitKnobs, TieOrder,
};
use std::collections::{BTreeMap, BTreeSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// Upper bound on pages any one pull reads here.
const MAX_PAGES: usize = 1000;
/// How far the emulator's search index lags behind its writes.
const INDEX_LAG: Duration = Duration::from_millis(300);
/// How long the connector lets the index catch up before a lookup.
const SEARCH_LAG: Duration = Duration::from_secs(1);

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a non-zero literal")
}

fn emulator(config: EmulatorConfig) -> HubspotEmulator {
    let mut config = config;
    config.knobs.limits = RateLimitKnobs::unlimited();
    config.knobs.search_lag = INDEX_LAG;
    HubspotEmulator::start(config).expect("the emulator starts")
}

/// Waits until every write made so far shows in the emulator's search.
async fn index_caught_up(emulator: &HubspotEmulator) {
    tokio::time::sleep(emulator.search_settles_in()).await;
}

/// Settings for `emulator`: fast limits and retries, small pages.
fn settings(emulator: &HubspotEmulator, auth: HubspotAuth) -> HubspotSettings {
    let mut settings = HubspotSettings::defaults(emulator.base_url(), auth);
    settings.limits = RateLimits {
        general: (nz(1000), Duration::from_secs(1)),
        search: Some((nz(1000), Duration::from_secs(1))),
    };
    settings.retry = RetryPolicy {
        max_attempts: nz(5),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        budget: 200,
        timeout: Duration::from_secs(10),
        // Lookups wait this as well as the search lag: short, for speed.
        send_window: Duration::from_secs(2),
        max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
        max_body: RetryPolicy::DEFAULT_MAX_BODY,
    };
    settings.portal_id = Some(emulator.portal_id().to_string());
    settings.properties = ["budget_approved", "pain_points", "weekly_active_users"]
        .map(String::from)
        .to_vec();
    settings.lifecycle_property = Some("lifecyclestage".into());
    settings.search_lag = SEARCH_LAG;
    settings
}

fn connector(settings: HubspotSettings, emulator: &HubspotEmulator) -> HubspotConnector {
    let credentials = HubspotCredentials::PrivateApp {
        token: SecretString::from(emulator.private_app_token()),
    };
    HubspotConnector::new(ConnectorName::new("hubspot"), settings, credentials)
        .expect("the connector is built")
}

fn ids(records: &[CrmRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.as_str().to_owned()).collect()
}

fn assert_each_once(records: &[CrmRecord], expected: &[String]) {
    let got = ids(records);
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "a record came twice");
    let expected: BTreeSet<&String> = expected.iter().collect();
    assert_eq!(distinct, expected);
}

fn requests(emulator: &HubspotEmulator, matching: impl Fn(&str) -> bool) -> u64 {
    emulator
        .counts()
        .snapshot()
        .iter()
        .filter(|(route, _)| matching(route))
        .map(|(_, n)| n)
        .sum()
}

fn is_search(route: &str) -> bool {
    route.starts_with("POST ") && route.ends_with("/search")
}

fn is_update(route: &str) -> bool {
    route.starts_with("POST ") && route.ends_with("/batch/update")
}

fn is_create(route: &str) -> bool {
    route.starts_with("POST ") && route.ends_with("/batch/create")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pull_reads_every_deal_once_with_its_stages_links_and_tasks() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.list_limit = nz(7);
    let connector = connector(settings, &emulator);
    let (records, skipped, pages) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_each_once(&records, &emulator.ids(ObjectType::Deals));
    assert!(pages >= 60 / 7, "{pages} pages");
    let mut with_tasks = 0;
    for record in &records {
        let held = emulator
            .record(ObjectType::Deals, record.id.as_str())
            .expect("the emulator holds it");
        let prop = |name: &str| held.properties.get(name).cloned();
        assert_eq!(record.stage, prop("dealstage"), "deal {}", record.id);
        assert_eq!(
            record.owner_id.as_ref().map(|o| o.as_str().to_owned()),
            prop("hubspot_owner_id")
        );
        assert_eq!(record.name, prop("dealname"));
        let entered: BTreeSet<String> = held
            .properties
            .keys()
            .filter_map(|k| k.strip_prefix("hs_date_entered_"))
            .map(str::to_owned)
            .collect();
        let history: BTreeSet<String> = record
            .stage_history
            .iter()
            .map(|c| c.stage.clone())
            .collect();
        assert_eq!(history, entered, "deal {}", record.id);
        assert!(record.stage_history.windows(2).all(|w| w[0].at <= w[1].at));
        if let Some(stage) = &record.stage {
            let at = prop(&format!("hs_date_entered_{stage}")).map(|v| {
                DateTime::parse_from_rfc3339(&v)
                    .expect("an ISO date")
                    .with_timezone(&Utc)
            });
            assert_eq!(record.stage_entered_at, at, "deal {}", record.id);
        }
        let linked = |object| held.associations.get(&object).cloned().unwrap_or_default();
        let companies = linked(ObjectType::Companies);
        assert_eq!(
            record
                .associations
                .account
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            companies.first().cloned()
        );
        let contacts: BTreeSet<String> = record
            .associations
            .contacts
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(contacts, linked(ObjectType::Contacts).into_iter().collect());
        let tasks: BTreeSet<String> = record.tasks.iter().map(|t| t.id.clone()).collect();
        assert_eq!(tasks, linked(ObjectType::Tasks).into_iter().collect());
        with_tasks += usize::from(!record.tasks.is_empty());
        assert_eq!(
            record.url.as_deref(),
            Some(
                format!(
                    "https://app.hubspot.com/contacts/{}/record/0-3/{}",
                    emulator.portal_id(),
                    record.id
                )
                .as_str()
            )
        );
    }
    assert!(with_tasks > 0, "the seeded portal has deals with tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_companies_carry_their_lifecycle_stage_and_links() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let (contacts, skipped, _) = pull_all(&connector, ObjectKind::Contact, PullFrom::Start).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_each_once(&contacts, &emulator.ids(ObjectType::Contacts));
    for contact in &contacts {
        let held = emulator
            .record(ObjectType::Contacts, contact.id.as_str())
            .unwrap();
        assert_eq!(
            contact.lifecycle_status,
            held.properties.get("lifecyclestage").cloned()
        );
        assert_eq!(contact.email, held.properties.get("email").cloned());
        assert_eq!(contact.stage, None);
        let company = held
            .associations
            .get(&ObjectType::Companies)
            .and_then(|c| c.first().cloned());
        assert_eq!(
            contact
                .associations
                .account
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            company
        );
    }
    let (companies, skipped, _) = pull_all(&connector, ObjectKind::Account, PullFrom::Start).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_each_once(&companies, &emulator.ids(ObjectType::Companies));
    assert!(
        companies
            .iter()
            .all(|c| c.domain.is_some() && c.name.is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_come_active_first_then_archived_ones_inactive() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.list_limit = nz(5);
    let connector = connector(settings, &emulator);
    let mut owners = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = connector.owners(cursor).await.expect("a page of owners");
        assert!(page.skipped.is_empty());
        owners.extend(page.items);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "owners paging ended");
    let active = owners.iter().filter(|o| o.active).count();
    assert_eq!(active, 12);
    assert_eq!(owners.len() - active, 2);
    assert!(
        owners[..active].iter().all(|o| o.active),
        "active owners first"
    );
    let sales = owners
        .iter()
        .find(|o| o.id.as_str() == "102")
        .expect("owner 102");
    assert_eq!(sales.teams, ["Sales"]);
    assert!(!sales.name.is_empty());
}

fn newest(records: &[CrmRecord]) -> Watermark {
    records
        .iter()
        .map(|r| Watermark {
            modified_at: r.modified_at,
            id: r.id.clone(),
        })
        .max()
        .expect("records")
}

/// Asserts that `record` carries the emulator's links and tasks for it.
fn assert_linked_as_held(emulator: &HubspotEmulator, record: &CrmRecord) {
    let held = emulator
        .record(ObjectType::Deals, record.id.as_str())
        .unwrap();
    let linked = |object| held.associations.get(&object).cloned().unwrap_or_default();
    assert_eq!(
        record
            .associations
            .account
            .as_ref()
            .map(|a| a.as_str().to_owned()),
        linked(ObjectType::Companies).first().cloned(),
        "deal {}",
        record.id
    );
    let contacts: BTreeSet<String> = record
        .associations
        .contacts
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(contacts, linked(ObjectType::Contacts).into_iter().collect());
    let tasks: BTreeSet<String> = record.tasks.iter().map(|t| t.id.clone()).collect();
    assert_eq!(tasks, linked(ObjectType::Tasks).into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pull_reads_the_deals_touched_since_the_watermark_with_their_links() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.overlap = Duration::ZERO;
    let connector = connector(settings, &emulator);
    let (all, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let watermark = newest(&all);
    let touched = emulator.touch(ObjectType::Deals, 3);
    index_caught_up(&emulator).await;
    let (changed, skipped, _) = pull_all(
        &connector,
        ObjectKind::Deal,
        PullFrom::Since(watermark.clone()),
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let changed_ids: BTreeSet<String> = ids(&changed).into_iter().collect();
    for id in &touched {
        assert!(changed_ids.contains(id), "touched deal {id} was read");
    }
    assert!(changed.len() < all.len());
    assert!(
        changed
            .iter()
            .all(|r| r.modified_at >= watermark.modified_at)
    );
    assert!(
        changed
            .windows(2)
            .all(|w| w[0].modified_at <= w[1].modified_at),
        "oldest change first"
    );
    for record in &changed {
        assert_linked_as_held(&emulator, record);
    }
    let queries = emulator.search_queries();
    let body = &queries.last().expect("a search was sent").body;
    assert_eq!(
        body["filterGroups"][0]["filters"][0]["propertyName"],
        "hs_lastmodifieddate"
    );
    assert_eq!(body["filterGroups"][0]["filters"][0]["operator"], "GTE");
    assert_eq!(body["sorts"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_searched_by_their_own_modification_property() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let (all, _, _) = pull_all(&connector, ObjectKind::Contact, PullFrom::Start).await;
    let touched = emulator.touch(ObjectType::Contacts, 2);
    index_caught_up(&emulator).await;
    let (changed, _, _) = pull_all(
        &connector,
        ObjectKind::Contact,
        PullFrom::Since(newest(&all)),
    )
    .await;
    let changed_ids: BTreeSet<String> = ids(&changed).into_iter().collect();
    assert!(touched.iter().all(|id| changed_ids.contains(id)));
    let queries = emulator.search_queries();
    let body = &queries.last().expect("a search was sent").body;
    assert_eq!(
        body["filterGroups"][0]["filters"][0]["propertyName"],
        "lastmodifieddate"
    );
    assert_eq!(body["sorts"][0]["propertyName"], "lastmodifieddate");
}

/// Pulls every deal through search from the start of time, with `cap`
/// results per query and pages of `limit`; asserts each deal came exactly
/// once with its links, and returns the search bodies sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_modified_mid_pull_costs_no_other_deal_its_place() {
    let emulator = emulator(EmulatorConfig::with_deals(60));
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.search_limit = nz(10);
    // A pull page of one search page, so that the change falls between.
    settings.association_batch_limit = std::num::NonZeroUsize::new(10).unwrap();
    let connector = connector(settings, &emulator);
    let epoch = Watermark {
        modified_at: DateTime::UNIX_EPOCH + chrono::Duration::days(1),
        id: RecordId::new("0"),
    };
    let first = connector
        .pull(ObjectKind::Deal, PullFrom::Since(epoch))
        .await
        .expect("the first page");
    // The first deal read moves to the end of the modification order; had
    // the pull paged by offset, the deal behind it would slip onto the
    // page already read.
    emulator
        .set_property(
            ObjectType::Deals,
            first.items[0].id.as_str(),
            "description",
            "changed mid-pull",
        )
        .expect("the deal is live");
    index_caught_up(&emulator).await;
    let (rest, _, _) = pull_all(
        &connector,
        ObjectKind::Deal,
        PullFrom::Cursor(first.next.expect("more pages")),
    )
    .await;
    let read: BTreeSet<String> = first
        .items
        .iter()
        .chain(&rest)
        .map(|r| r.id.to_string())
        .collect();
    let all: BTreeSet<String> = emulator.ids(ObjectType::Deals).into_iter().collect();
    assert_eq!(read, all, "a deal was missed");
}

async fn search_every_deal(
    cap: u32,
    limit: u32,
    ties: TieOrder,
    ragged: bool,
) -> Vec<serde_json::Value> {
    let mut config = EmulatorConfig::with_deals(60);
    config.knobs.search.cap = cap as usize;
    config.knobs.search.ties = ties;
    config.knobs.search.ragged_pages = ragged;
    let emulator = emulator(config);
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.search_cap = nz(cap);
    settings.search_limit = nz(limit);
    let connector = connector(settings, &emulator);
    let epoch = Watermark {
        modified_at: DateTime::UNIX_EPOCH + chrono::Duration::days(1),
        id: RecordId::new("0"),
    };
    let (records, skipped, _) =
        pull_all(&connector, ObjectKind::Deal, PullFrom::Since(epoch)).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_each_once(&records, &emulator.ids(ObjectType::Deals));
    for record in &records {
        assert_linked_as_held(&emulator, record);
    }
    emulator
        .search_queries()
        .into_iter()
        .map(|q| q.body)
        .collect()
}

fn windows(queries: &[serde_json::Value]) -> BTreeSet<String> {
    queries
        .iter()
        .map(|q| q["filterGroups"].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_restarts_its_window_before_the_cap_and_misses_and_repeats_nothing() {
    let queries = search_every_deal(8, 4, TieOrder::IdAscending, false).await;
    assert!(
        windows(&queries).len() >= 60 / 8,
        "{} query windows",
        windows(&queries).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_restart_holds_with_ragged_pages_and_descending_ties() {
    let queries = search_every_deal(8, 4, TieOrder::IdDescending, true).await;
    assert!(windows(&queries).len() >= 60 / 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_deals_in_one_millisecond_than_a_query_may_page_are_paged_by_id_as_text() {
    // The seeded portal has deals sharing one modification millisecond,
    // and ids crossing a digit boundary; with a cap of 1 such a tie fills
    // a whole query window, and paging it by id restarts after each id.
    let shared = {
        let emulator = emulator(EmulatorConfig::with_deals(60));
        let mut at: BTreeMap<String, usize> = BTreeMap::new();
        for id in emulator.ids(ObjectType::Deals) {
            let held = emulator.record(ObjectType::Deals, &id).unwrap();
            *at.entry(held.properties["hs_lastmodifieddate"].clone())
                .or_default() += 1;
        }
        at.into_values().max().unwrap_or(0)
    };
    assert!(shared >= 2, "the seed has ties: {shared}");
    let queries = search_every_deal(1, 1, TieOrder::IdDescending, false).await;
    let by_id: Vec<&serde_json::Value> = queries
        .iter()
        .filter(|q| q["sorts"][0]["propertyName"] == "hs_object_id")
        .collect();
    assert!(!by_id.is_empty(), "a tie was paged by id");
    assert!(
        by_id
            .iter()
            .all(|q| q["filterGroups"][0]["filters"][0]["operator"] == "EQ")
    );
    assert!(
        by_id
            .iter()
            .any(|q| q["filterGroups"][0]["filters"][1]["operator"] == "GT"),
        "the tie restarted after the last id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_records_are_listed_as_deletions() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.list_limit = nz(1);
    let connector = connector(settings, &emulator);
    let gone: Vec<String> = emulator.ids(ObjectType::Companies)[3..5].to_vec();
    for id in &gone {
        emulator.archive(ObjectType::Companies, id).unwrap();
    }
    let mut deleted = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = connector
            .deletions(ObjectKind::Account, cursor)
            .await
            .expect("a page");
        deleted.extend(page.items.into_iter().map(|id| id.as_str().to_owned()));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(deleted, gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_deal_is_skipped_by_name_and_the_page_goes_on() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let bad = emulator.ids(ObjectType::Deals)[5].clone();
    emulator.corrupt(ObjectType::Deals, &bad).unwrap();
    let (records, skipped, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].id, bad);
    assert!(
        skipped[0].reason.contains("createdAt"),
        "{}",
        skipped[0].reason
    );
    assert_eq!(records.len(), emulator.ids(ObjectType::Deals).len() - 1);
}

fn task(key: &str, object: ObjectKind, record: &str) -> ActionRequest {
    ActionRequest::CreateTask {
        key: ActionKey::new(key),
        object,
        record_id: RecordId::new(record),
        owner_id: Some("102".into()),
        subject: format!("Fix {record}"),
        body: "Name the decision maker.".into(),
        due: NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
        priority: Priority::High,
    }
}

fn outcome_map(outcomes: &[ActionOutcome]) -> BTreeMap<String, ActionResult> {
    outcomes
        .iter()
        .map(|o| (o.key.to_string(), o.result.clone()))
        .collect()
}

/// The emulated task carrying `key` in its body.
fn task_with_key(emulator: &HubspotEmulator, key: &str) -> Vec<String> {
    emulator
        .tasks()
        .into_iter()
        .filter(|t| {
            t.properties
                .get("hs_task_body")
                .is_some_and(|b| b.ends_with(&format!("journeyd-action: {key}")))
        })
        .map(|t| t.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_tasks_are_matched_to_their_actions_by_marker_even_in_reverse_order() {
    let emulator = emulator(EmulatorConfig::default());
    emulator.update_knobs(|k| k.reverse_batch_results = true);
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deals = emulator.ids(ObjectType::Deals);
    let actions: Vec<_> = (0..4)
        .map(|i| task(&format!("jdorder{i}t"), ObjectKind::Deal, &deals[i]))
        .collect();
    let outcomes = connector.apply(&actions).await.expect("the batch is sent");
    assert_eq!(
        outcomes.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        actions.iter().map(|a| a.key().clone()).collect::<Vec<_>>()
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        let ActionResult::Applied { crm_id } = &outcome.result else {
            panic!("{outcome:?}");
        };
        assert_eq!(
            task_with_key(&emulator, outcome.key.as_str()),
            std::slice::from_ref(crm_id)
        );
        let held = emulator.record(ObjectType::Tasks, crm_id).unwrap();
        assert_eq!(
            held.associations.get(&ObjectType::Deals),
            Some(&vec![deals[i].clone()])
        );
        assert_eq!(
            held.properties.get("hs_task_priority").map(String::as_str),
            Some("HIGH")
        );
        assert_eq!(
            held.properties.get("hubspot_owner_id").map(String::as_str),
            Some("102")
        );
        assert_eq!(
            held.properties.get("hs_task_status").map(String::as_str),
            Some("NOT_STARTED")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_reply_times_out_is_unknown_and_not_sent_again() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.retry.timeout = Duration::from_millis(300);
    let connector = connector(settings, &emulator);
    let deal = emulator.ids(ObjectType::Deals)[0].clone();
    emulator.hold_batch_create(Duration::from_secs(2));
    let creates = requests(&emulator, is_create);
    let action = task("jdtimeout0t", ObjectKind::Deal, &deal);
    let outcomes = connector
        .apply(std::slice::from_ref(&action))
        .await
        .expect("an outcome per action");
    assert!(
        matches!(outcomes[0].result, ActionResult::Unknown { .. }),
        "{outcomes:?}"
    );
    assert_eq!(requests(&emulator, is_create) - creates, 1, "sent once");
    assert_eq!(task_with_key(&emulator, "jdtimeout0t").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_207_fails_only_the_refused_inputs_and_retrying_them_writes_each_once() {
    let emulator = emulator(EmulatorConfig::default());
    emulator.update_knobs(|k| k.reverse_batch_results = true);
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let contacts = emulator.ids(ObjectType::Contacts);
    let actions: Vec<_> = (0..5)
        .map(|i| task(&format!("jdpart{i}t"), ObjectKind::Contact, &contacts[i]))
        .collect();
    let before = emulator.tasks().len();
    emulator.fail_batch_inputs(2);
    let outcomes = connector.apply(&actions).await.expect("the batch is sent");
    let failed: Vec<&ActionOutcome> = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o.result,
                ActionResult::Failed {
                    retryable: true,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{outcomes:?}");
    assert_eq!(emulator.tasks().len(), before + 3);
    for outcome in &outcomes {
        let written = task_with_key(&emulator, outcome.key.as_str());
        match &outcome.result {
            ActionResult::Applied { crm_id } => assert_eq!(written, std::slice::from_ref(crm_id)),
            ActionResult::Failed { .. } => {
                assert!(written.is_empty(), "{} was written", outcome.key)
            }
            ActionResult::Unknown { .. } => panic!("every row named its input: {outcome:?}"),
        }
    }
    let retry: Vec<_> = actions
        .iter()
        .filter(|a| failed.iter().any(|o| &o.key == a.key()))
        .cloned()
        .collect();
    let again = connector.apply(&retry).await.expect("the retry is sent");
    assert!(
        again
            .iter()
            .all(|o| matches!(o.result, ActionResult::Applied { .. })),
        "{again:?}"
    );
    assert_eq!(emulator.tasks().len(), before + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_applied_finds_exactly_the_tasks_written_across_several_searches() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let companies = emulator.ids(ObjectType::Companies);
    let written: Vec<_> = (0..7)
        .map(|i| task(&format!("jdfound{i}t"), ObjectKind::Account, &companies[i]))
        .collect();
    let sent_at = Utc::now();
    let outcomes = connector.apply(&written).await.expect("written");
    let applied = outcome_map(&outcomes);
    index_caught_up(&emulator).await;
    let searches = requests(&emulator, is_search);
    let mut keys: Vec<ActionKey> = written.iter().map(|a| a.key().clone()).collect();
    keys.push(ActionKey::new("jdnever0t"));
    keys.push(ActionKey::new("jd-not-a-token"));
    let found = connector
        .find_applied(&keys, sent_at)
        .await
        .expect("looked up");
    assert_eq!(
        outcome_map(&found),
        applied,
        "exactly the written keys, with their task ids"
    );
    // Three keys per search: 9 keys, two of them unsearchable or absent.
    assert_eq!(requests(&emulator, is_search) - searches, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_completed_by_its_id() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deal = emulator.ids(ObjectType::Deals)[0].clone();
    let created = connector
        .apply(&[task("jddone0t", ObjectKind::Deal, &deal)])
        .await
        .unwrap();
    let ActionResult::Applied { crm_id } = &created[0].result else {
        panic!("{created:?}");
    };
    let done = connector
        .apply(&[ActionRequest::CompleteTask {
            key: ActionKey::new("jddone0c"),
            task_id: crm_id.clone(),
        }])
        .await
        .unwrap();
    assert_eq!(
        done[0].result,
        ActionResult::Applied {
            crm_id: crm_id.clone()
        }
    );
    let held = emulator.record(ObjectType::Tasks, crm_id).unwrap();
    assert_eq!(
        held.properties.get("hs_task_status").map(String::as_str),
        Some("COMPLETED")
    );
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let read = deals.iter().find(|d| d.id.as_str() == deal).unwrap();
    let task = read
        .tasks
        .iter()
        .find(|t| &t.id == crm_id)
        .expect("the task is read with its deal");
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.subject, format!("Fix {deal}"));
    assert_eq!(task.due, NaiveDate::from_ymd_opt(2026, 3, 9));
}

fn set_lifecycle(key: &str, contact: &str, value: &str, current: &str) -> ActionRequest {
    ActionRequest::SetField {
        key: ActionKey::new(key),
        object: ObjectKind::Contact,
        record_id: RecordId::new(contact),
        field: "lifecyclestage".into(),
        value: value.into(),
        current: Some(current.into()),
    }
}

fn lifecycle_of(emulator: &HubspotEmulator, contact: &str) -> Option<String> {
    emulator
        .record(ObjectType::Contacts, contact)
        .and_then(|r| r.properties.get("lifecyclestage").cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backward_lifecycle_move_clears_the_stage_then_sets_it_in_two_requests() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let contact = emulator.ids(ObjectType::Contacts)[0].clone();
    emulator
        .set_property(ObjectType::Contacts, &contact, "lifecyclestage", "customer")
        .unwrap();
    let updates = requests(&emulator, is_update);
    let outcomes = connector
        .apply(&[set_lifecycle("jdback0l", &contact, "lead", "customer")])
        .await
        .unwrap();
    assert_eq!(
        outcomes[0].result,
        ActionResult::Applied {
            crm_id: contact.clone()
        }
    );
    assert_eq!(lifecycle_of(&emulator, &contact).as_deref(), Some("lead"));
    assert_eq!(
        requests(&emulator, is_update) - updates,
        2,
        "clear, then set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_lifecycle_move_is_one_update() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let contact = emulator.ids(ObjectType::Contacts)[1].clone();
    emulator
        .set_property(ObjectType::Contacts, &contact, "lifecyclestage", "lead")
        .unwrap();
    let updates = requests(&emulator, is_update);
    let outcomes = connector
        .apply(&[set_lifecycle("jdfwd0l", &contact, "opportunity", "lead")])
        .await
        .unwrap();
    assert_eq!(
        outcomes[0].result,
        ActionResult::Applied {
            crm_id: contact.clone()
        }
    );
    assert_eq!(
        lifecycle_of(&emulator, &contact).as_deref(),
        Some("opportunity")
    );
    assert_eq!(requests(&emulator, is_update) - updates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_clear_then_set_a_backward_move_is_silently_lost() {
    // Why the knob exists: the emulator, like HubSpot, ignores the move.
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.lifecycle_forward_only = false;
    let connector = connector(settings, &emulator);
    let contact = emulator.ids(ObjectType::Contacts)[2].clone();
    emulator
        .set_property(ObjectType::Contacts, &contact, "lifecyclestage", "customer")
        .unwrap();
    connector
        .apply(&[set_lifecycle("jdlost0l", &contact, "lead", "customer")])
        .await
        .unwrap();
    assert_eq!(
        lifecycle_of(&emulator, &contact).as_deref(),
        Some("customer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_batch_limit_is_split() {
    let emulator = emulator(EmulatorConfig::default());
    emulator.update_knobs(|k| k.batch_max = 3);
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.batch_limit = NonZeroUsize::new(3).unwrap();
    let connector = connector(settings, &emulator);
    let deals = emulator.ids(ObjectType::Deals);
    let actions: Vec<_> = (0..8)
        .map(|i| task(&format!("jdsplit{i}t"), ObjectKind::Deal, &deals[i]))
        .collect();
    let outcomes = connector.apply(&actions).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.result, ActionResult::Applied { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_is_not_json_fails_the_pull_naming_its_route() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    emulator.faults().malformed_next(1);
    let error = connector
        .pull(ObjectKind::Account, PullFrom::Start)
        .await
        .expect_err("an unreadable page");
    match error {
        journeyd_connector::ConnectorError::Malformed { route, .. } => {
            assert_eq!(route, "/crm/v3/objects/{object}");
        }
        other => panic!("{other}"),
    }
}

/// Settings whose client sends each call once: what the connector does
/// with a lost or failed create, not the client's retries, is under test.
fn single_attempt(emulator: &HubspotEmulator) -> HubspotConnector {
    let mut settings = settings(emulator, HubspotAuth::PrivateApp);
    settings.retry.max_attempts = nz(1);
    settings.retry.timeout = Duration::from_millis(300);
    connector(settings, emulator)
}

/// What the daemon does with creates whose outcome was unknown, sent at
/// `sent_at`: waits out the connector's settle time, then looks them up.
async fn settle(
    connector: &HubspotConnector,
    actions: &[ActionRequest],
    sent_at: DateTime<Utc>,
) -> BTreeMap<String, ActionResult> {
    let Recovery::LookUp { settle } = connector.recovery() else {
        panic!("hubspot creates are looked up");
    };
    let waited = (Utc::now() - sent_at).to_std().unwrap_or_default();
    tokio::time::sleep(settle.saturating_sub(waited)).await;
    let keys: Vec<ActionKey> = actions.iter().map(|a| a.key().clone()).collect();
    outcome_map(
        &connector
            .find_applied(&keys, sent_at)
            .await
            .expect("the lookup succeeds"),
    )
}

fn is_unknown(outcome: &ActionOutcome) -> bool {
    matches!(outcome.result, ActionResult::Unknown { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_waits_the_send_window_and_the_configured_search_lag_before_a_lookup() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.search_lag = Duration::from_millis(2500);
    settings.retry.send_window = Duration::from_secs(3);
    assert_eq!(
        connector(settings, &emulator).recovery(),
        Recovery::LookUp {
            settle: Duration::from_millis(5500)
        }
    );
    let defaults = HubspotSettings::defaults(emulator.base_url(), HubspotAuth::PrivateApp);
    assert_eq!(defaults.search_lag, Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_inside_the_search_lag_misses_a_created_task_and_one_after_it_finds_it() {
    let emulator = emulator(EmulatorConfig::default());
    emulator.update_knobs(|k| k.search_lag = Duration::from_millis(600));
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deal = emulator.ids(ObjectType::Deals)[0].clone();
    let action = task("jdlagged0t", ObjectKind::Deal, &deal);
    let sent_at = Utc::now();
    let created = connector
        .apply(std::slice::from_ref(&action))
        .await
        .expect("the create is sent");
    let ActionResult::Applied { crm_id } = created[0].result.clone() else {
        panic!("{created:?}");
    };
    let early = connector
        .find_applied(std::slice::from_ref(action.key()), sent_at)
        .await
        .expect("the lookup succeeds");
    assert!(
        early.is_empty(),
        "the index shows a task it cannot have yet: {early:?}"
    );
    let found = settle(&connector, std::slice::from_ref(&action), sent_at).await;
    assert_eq!(
        found,
        BTreeMap::from([(action.key().to_string(), ActionResult::Applied { crm_id })])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_create_the_server_finished_after_the_client_died_is_found_after_the_lag() {
    let emulator = emulator(EmulatorConfig::default());
    // One input every 200 ms: the client gives up after 300 ms, with most
    // of the batch still to be written.
    emulator.update_knobs(|k| k.detached_batch_create = Some(Duration::from_millis(200)));
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.retry.timeout = Duration::from_millis(300);
    settings.search_lag = Duration::from_secs(2);
    let connector = connector(settings, &emulator);
    let deals = emulator.ids(ObjectType::Deals);
    let actions: Vec<_> = (0..5)
        .map(|i| task(&format!("jdorphan{i}t"), ObjectKind::Deal, &deals[i]))
        .collect();
    let before = emulator.tasks().len();
    let sent_at = Utc::now();
    let outcomes = connector
        .apply(&actions)
        .await
        .expect("an outcome per action");
    assert!(outcomes.iter().all(is_unknown), "{outcomes:?}");
    assert!(
        emulator.tasks().len() < before + actions.len(),
        "the server was still writing when the client gave up"
    );
    let early = connector
        .find_applied(
            &actions.iter().map(|a| a.key().clone()).collect::<Vec<_>>(),
            sent_at,
        )
        .await
        .expect("the lookup succeeds");
    assert!(
        early.len() < actions.len(),
        "a lookup right away cannot see the whole batch: {early:?}"
    );
    let found = settle(&connector, &actions, sent_at).await;
    assert_eq!(emulator.tasks().len(), before + actions.len());
    for action in &actions {
        let written = task_with_key(&emulator, action.key().as_str());
        assert_eq!(
            found.get(action.key().as_str()),
            Some(&ActionResult::Applied {
                crm_id: written[0].clone()
            }),
            "{} was written once and found",
            action.key()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_2xx_with_an_unreadable_body_is_unknown_never_failed() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deals = emulator.ids(ObjectType::Deals);
    let actions: Vec<_> = (0..3)
        .map(|i| task(&format!("jdgarbled{i}t"), ObjectKind::Deal, &deals[i]))
        .collect();
    let creates = requests(&emulator, is_create);
    emulator.malform_next_write();
    let outcomes = connector
        .apply(&actions)
        .await
        .expect("an outcome per action");
    assert!(outcomes.iter().all(is_unknown), "{outcomes:?}");
    assert_eq!(requests(&emulator, is_create) - creates, 1, "sent once");
    for action in &actions {
        assert_eq!(task_with_key(&emulator, action.key().as_str()).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_row_that_names_no_input_leaves_the_unanswered_inputs_unknown() {
    let emulator = emulator(EmulatorConfig::default());
    emulator.update_knobs(|k| k.trace_ids_in_errors = false);
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deals = emulator.ids(ObjectType::Deals);
    let actions: Vec<_> = (0..3)
        .map(|i| task(&format!("jduntied{i}t"), ObjectKind::Deal, &deals[i]))
        .collect();
    emulator.fail_batch_inputs(1);
    let outcomes = connector.apply(&actions).await.expect("the batch is sent");
    assert!(is_unknown(&outcomes[0]), "{outcomes:?}");
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o.result, ActionResult::Applied { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_5xx_is_unknown_and_sent_again_only_once_a_lookup_missed_it() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = single_attempt(&emulator);
    emulator.faults().fail_next(1);
    let deal = emulator.ids(ObjectType::Deals)[0].clone();
    let action = task("jdlost0t", ObjectKind::Deal, &deal);
    let sent_at = Utc::now();
    let outcomes = connector
        .apply(std::slice::from_ref(&action))
        .await
        .expect("an outcome per action");
    assert!(is_unknown(&outcomes[0]), "{outcomes:?}");
    assert!(task_with_key(&emulator, "jdlost0t").is_empty());
    // The daemon's recovery: wait out the lag, look up, then send what was
    // not found.
    assert!(
        settle(&connector, std::slice::from_ref(&action), sent_at)
            .await
            .is_empty()
    );
    let outcomes = connector.apply(&[action]).await.unwrap();
    assert!(matches!(outcomes[0].result, ActionResult::Applied { .. }));
    assert_eq!(task_with_key(&emulator, "jdlost0t").len(), 1);
}

fn rewrite(key: &str, task_key: &ActionKey, task_id: &str, owner: Option<&str>) -> ActionRequest {
    ActionRequest::UpdateTask {
        key: ActionKey::new(key),
        task_key: task_key.clone(),
        task_id: task_id.to_owned(),
        owner_id: owner.map(Into::into),
        subject: "[journeyd] 2 journey checks to fix".into(),
        body: "- Name the decision maker.\n- Add the close date.".into(),
        priority: Priority::Low,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_a_task_keeps_one_task_with_one_marker_line_of_its_first_key() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deal = emulator.ids(ObjectType::Deals)[0].clone();
    let create = task("jdkept0t", ObjectKind::Deal, &deal);
    let created = connector
        .apply(std::slice::from_ref(&create))
        .await
        .unwrap();
    let ActionResult::Applied { crm_id } = created[0].result.clone() else {
        panic!("{created:?}");
    };
    let before = emulator.tasks().len();
    let update = rewrite("jdkept0u", create.key(), &crm_id, Some("103"));
    for _ in 0..2 {
        let outcomes = connector
            .apply(std::slice::from_ref(&update))
            .await
            .unwrap();
        assert_eq!(
            outcomes[0].result,
            ActionResult::Applied {
                crm_id: crm_id.clone()
            }
        );
    }
    assert_eq!(emulator.tasks().len(), before, "an update creates nothing");
    let held = emulator.record(ObjectType::Tasks, &crm_id).unwrap();
    let prop = |name: &str| held.properties.get(name).cloned().unwrap_or_default();
    assert_eq!(
        prop("hs_task_subject"),
        "[journeyd] 2 journey checks to fix"
    );
    assert_eq!(
        prop("hs_task_body"),
        "- Name the decision maker.\n- Add the close date.\n\njourneyd-action: jdkept0t"
    );
    assert_eq!(prop("hs_task_priority"), "LOW");
    assert_eq!(prop("hubspot_owner_id"), "103");
    assert_eq!(prop("hs_task_status"), "NOT_STARTED");
    // Without an owner, the update leaves the owner alone.
    connector
        .apply(&[rewrite("jdkept1u", create.key(), &crm_id, None)])
        .await
        .unwrap();
    let held = emulator.record(ObjectType::Tasks, &crm_id).unwrap();
    assert_eq!(
        held.properties.get("hubspot_owner_id").map(String::as_str),
        Some("103")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deals_tasks_are_read_with_journeyds_own_told_apart() {
    let emulator = emulator(EmulatorConfig::default());
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deal = emulator
        .ids(ObjectType::Deals)
        .into_iter()
        .find(|id| {
            emulator
                .record(ObjectType::Deals, id)
                .is_some_and(|d| d.associations.contains_key(&ObjectType::Tasks))
        })
        .expect("a seeded deal with a task");
    let created = connector
        .apply(&[task("jdmine0t", ObjectKind::Deal, &deal)])
        .await
        .unwrap();
    let ActionResult::Applied { crm_id } = created[0].result.clone() else {
        panic!("{created:?}");
    };
    let (deals, _, _) = pull_all(&connector, ObjectKind::Deal, PullFrom::Start).await;
    let read = deals.iter().find(|d| d.id.as_str() == deal).unwrap();
    assert!(read.tasks.len() >= 2, "{:?}", read.tasks);
    for task in &read.tasks {
        assert_eq!(task.by_journeyd, task.id == crm_id, "{task:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_someone_deleted_is_applied_when_hubspot_answers_an_error_row() {
    completing_a_deleted_task_is_applied(MissingInUpdate::ErrorRow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_someone_deleted_is_applied_when_hubspot_refuses_the_whole_batch() {
    completing_a_deleted_task_is_applied(MissingInUpdate::WholeBatch).await;
}

/// Completes two tasks, one of them deleted in HubSpot first: both count
/// as closed, and the one that exists is completed.
async fn completing_a_deleted_task_is_applied(missing: MissingInUpdate) {
    let emulator = emulator(EmulatorConfig::default());
    emulator.update_knobs(|k| k.missing_in_batch_update = missing);
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let deals = emulator.ids(ObjectType::Deals);
    let created = connector
        .apply(&[
            task("jdgone0t", ObjectKind::Deal, &deals[0]),
            task("jdgone1t", ObjectKind::Deal, &deals[1]),
        ])
        .await
        .unwrap();
    let ids: Vec<String> = created
        .iter()
        .map(|o| match &o.result {
            ActionResult::Applied { crm_id } => crm_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    emulator.delete_task(&ids[0]).unwrap();
    let completions: Vec<ActionRequest> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ActionRequest::CompleteTask {
            key: ActionKey::new(format!("jdgone{i}c")),
            task_id: id.clone(),
        })
        .collect();
    let outcomes = connector.apply(&completions).await.unwrap();
    for (outcome, id) in outcomes.iter().zip(&ids) {
        assert_eq!(outcome.result, ActionResult::Applied { crm_id: id.clone() });
    }
    let left = emulator.record(ObjectType::Tasks, &ids[1]).unwrap();
    assert_eq!(
        left.properties.get("hs_task_status").map(String::as_str),
        Some("COMPLETED")
    );
    // A deleted task cannot be rewritten: that fails, and says why.
    let outcomes = connector
        .apply(&[rewrite(
            "jdgone0u",
            &ActionKey::new("jdgone0t"),
            &ids[0],
            None,
        )])
        .await
        .unwrap();
    assert!(
        matches!(
            &outcomes[0].result,
            ActionResult::Failed { retryable: false, reason } if reason.contains("OBJECT_NOT_FOUND")
        ),
        "{outcomes:?}"
    );
}

fn is_association_read(route: &str) -> bool {
    route.starts_with("POST /crm/v4/associations/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_deals_are_searched_page_by_page_until_they_fill_one_association_read() {
    let emulator = emulator(EmulatorConfig::with_deals(60));
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.search_limit = nz(10);
    settings.association_batch_limit = std::num::NonZeroUsize::new(30).unwrap();
    let connector = connector(settings, &emulator);
    let epoch = Watermark {
        modified_at: DateTime::UNIX_EPOCH + chrono::Duration::days(1),
        id: RecordId::new("0"),
    };
    let (searches, reads) = (
        requests(&emulator, is_search),
        requests(&emulator, is_association_read),
    );

    let (records, _, pages) = pull_all(&connector, ObjectKind::Deal, PullFrom::Since(epoch)).await;

    assert_eq!(records.len(), 60);
    let searched = requests(&emulator, is_search) - searches;
    assert!(searched >= 6, "search pages of 10: {searched}");
    assert_eq!(
        pages, 2,
        "pull pages of 30 deals, from {searched} search pages"
    );
    assert_eq!(
        requests(&emulator, is_association_read) - reads,
        3 * pages as u64,
        "per pull page, one read per association type"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_page_of_200_deals_reads_each_association_type_in_one_call() {
    let emulator = emulator(EmulatorConfig::with_deals(200));
    let connector = connector(settings(&emulator, HubspotAuth::PrivateApp), &emulator);
    let epoch = Watermark {
        modified_at: DateTime::UNIX_EPOCH + chrono::Duration::days(1),
        id: RecordId::new("0"),
    };
    let reads = requests(&emulator, is_association_read);
    let page = connector
        .pull(ObjectKind::Deal, PullFrom::Since(epoch))
        .await
        .expect("a page");
    assert_eq!(page.items.len(), 200);
    assert_eq!(
        requests(&emulator, is_association_read) - reads,
        3,
        "companies, contacts and tasks: one call each"
    );
    for record in &page.items {
        assert_linked_as_held(&emulator, record);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_refused_by_its_after_is_a_refused_cursor() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.list_limit = nz(7);
    let connector = connector(settings, &emulator);
    let first = connector
        .pull(ObjectKind::Deal, PullFrom::Start)
        .await
        .expect("the first page");
    let saved = first.next.expect("more than one page");
    emulator.update_knobs(|knobs| {
        knobs.list.refuse_after.insert(ObjectType::Deals);
    });

    let refused = connector
        .pull(ObjectKind::Deal, PullFrom::Cursor(saved))
        .await
        .expect_err("the after is refused");

    assert!(
        matches!(&refused, journeyd_connector::ConnectorError::CursorRefused { object, .. } if object == "deal"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_naming_its_own_after_as_next_is_handed_on_as_it_came() {
    let emulator = emulator(EmulatorConfig::default());
    let mut settings = settings(&emulator, HubspotAuth::PrivateApp);
    settings.list_limit = nz(7);
    let connector = connector(settings, &emulator);
    emulator.update_knobs(|knobs| {
        knobs.list.repeat_after.insert(ObjectType::Deals);
    });
    let first = connector
        .pull(ObjectKind::Deal, PullFrom::Start)
        .await
        .expect("the first page");
    let saved = first.next.expect("more than one page");

    let second = connector
        .pull(ObjectKind::Deal, PullFrom::Cursor(saved.clone()))
        .await
        .expect("the second page");

    assert_eq!(second.next, Some(saved), "the sync loop's guard stops this");
}
