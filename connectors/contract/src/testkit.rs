//! The conformance suite every connector and its emulator must pass.
//!
//! A connector crate implements [`Target`] for its (connector, emulator)
//! pair and invokes [`conformance_suite!`](crate::conformance_suite) in a
//! test file; each check becomes one `#[tokio::test]` named after the
//! behaviour it shows. The checks speak only the [`Connector`] trait and the
//! emulator controls below, so the same suite holds every CRM to the same
//! contract: paging to the end, resuming from a watermark, waiting out a 429
//! storm, surviving a token that expires mid-run, skipping a malformed record
//! by name, reporting a partial batch failure row by row, settling a write
//! whose answer was lost without writing it twice, calling an unreadable
//! answer unknown rather than failed, updating a task in place, and counting
//! a task someone deleted as closed.

use crate::action::{ActionKey, ActionOutcome, ActionRequest, ActionResult, Priority};
use crate::connector::{Connector, PullFrom, Recovery};
use crate::ids::RecordId;
use crate::page::{Page, Watermark};
use crate::record::{CrmRecord, ObjectKind};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

/// Upper bound on pages any one check reads, so a connector that never
/// stops paging fails the check instead of hanging it.
const MAX_PAGES: usize = 500;

/// Upper bound on how long a check waits for a connector's
/// [`Recovery::LookUp`] settle time: a target configures its emulator's lag
/// and its connector's settle time small, so checks stay fast.
const MAX_SETTLE: Duration = Duration::from_secs(10);

/// A task as the emulator holds it, for checks to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTask {
    pub id: String,
    pub subject: String,
    /// The task's text (description, body) as stored.
    pub body: String,
    pub completed: bool,
}

/// What a check needs its emulator to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Live records of [`Target::object`] to seed.
    pub records: usize,
    /// Records per page the connector should ask for, small enough that
    /// `records` spans several pages.
    pub page_size: u32,
    /// Authenticate with refreshable (OAuth2) tokens rather than a fixed one.
    pub refreshable_auth: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            records: 45,
            page_size: 10,
            refreshable_auth: false,
        }
    }
}

/// A connector and a running emulator of its CRM, with the controls the
/// checks use to inject trouble.
pub trait Target: Sized + Send + Sync {
    type Connector: Connector;

    /// Starts an emulator seeded for `scenario`.
    fn start(scenario: Scenario) -> impl Future<Output = Self> + Send;

    /// A new connector against the emulator, as after a restart: nothing
    /// cached, nothing remembered from an earlier instance.
    fn connector(&self) -> Self::Connector;

    /// The object kind the checks pull and attach tasks to.
    fn object(&self) -> ObjectKind;

    /// Changes `n` live records so that their modification time moves past
    /// every earlier one; returns their ids.
    fn touch(&self, n: usize) -> Vec<RecordId>;

    /// From now on, the record `id` is served in a shape the connector
    /// cannot read, while the rest of its page stays valid.
    fn corrupt(&self, id: &RecordId);

    /// The next `n` API requests are answered 429, each telling the client
    /// to wait `retry_after`.
    fn storm(&self, n: u32, retry_after: Duration);

    /// Every access token issued so far stops working now.
    fn expire_tokens(&self);

    /// Requests the emulator's token endpoint has answered.
    fn token_requests(&self) -> u64;

    /// Requests the emulator has answered on any route, faults included.
    fn requests(&self) -> u64;

    /// The next batch write fails its first `n` inputs, row by row.
    fn fail_batch_inputs(&self, n: usize);

    /// Corrective tasks the emulator holds.
    fn tasks(&self) -> usize;

    /// Every task the emulator holds.
    fn task_list(&self) -> Vec<SeenTask>;

    /// Someone deletes the task `id` in the CRM.
    fn delete_task(&self, id: &str);

    /// The next write call is carried out, then answered 2xx with a body
    /// that cannot be read.
    fn malform_next_write(&self);

    /// A corrective task for `record` (of [`Target::object`]), keyed `key`.
    fn task_action(&self, key: ActionKey, record: &RecordId) -> ActionRequest {
        ActionRequest::CreateTask {
            key,
            object: self.object(),
            record_id: record.clone(),
            owner_id: None,
            subject: format!("[journeyd] check {} {record}", self.object()),
            body: "The record needs an owner.".into(),
            due: chrono::NaiveDate::from_ymd_opt(2026, 3, 5).expect("a valid date"),
            priority: crate::action::Priority::Normal,
        }
    }
}

/// A [`TokenStore`](crate::http::TokenStore) that keeps rotated refresh
/// tokens in memory, for targets whose emulator rotates them.
#[derive(Debug, Default)]
pub struct MemoryTokenStore(std::sync::Mutex<Vec<String>>);

impl MemoryTokenStore {
    /// The refresh token saved last, if any.
    pub fn latest(&self) -> Option<String> {
        self.0.lock().expect("the token list").last().cloned()
    }
}

impl crate::http::TokenStore for MemoryTokenStore {
    fn save_refresh_token(
        &self,
        _connector: &crate::ids::ConnectorName,
        token: &crate::secret::SecretString,
    ) -> Result<(), crate::http::TokenStoreError> {
        use crate::secret::ExposeSecret;
        self.0
            .lock()
            .expect("the token list")
            .push(token.expose_secret().to_owned());
        Ok(())
    }
}

/// Runs one check per test; `$target` implements [`Target`].
#[macro_export]
macro_rules! conformance_suite {
    ($target:ty) => {
        $crate::conformance_suite!(@checks $target;
            paging_reaches_the_last_page_without_repeating_a_record,
            a_pull_from_a_watermark_reads_what_changed_since,
            a_429_storm_is_waited_out_as_retry_after_says,
            a_token_expiring_mid_run_is_refreshed,
            a_malformed_record_is_skipped_and_named,
            a_partial_batch_failure_fails_exactly_the_failed_rows,
            a_create_whose_answer_was_lost_is_settled_without_writing_it_twice,
            an_unreadable_answer_to_a_create_is_unknown_never_failed,
            updating_a_task_rewrites_it_in_place_under_its_first_key,
            completing_a_task_someone_deleted_counts_as_closed,
        );
    };
    (@checks $target:ty; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::testkit::$check::<$target>().await;
            }
        )+
    };
}

/// Pulls `object` from `from` to the last page: the records, what was
/// skipped, and how many pages it took. Panics past [`MAX_PAGES`] pages.
pub async fn pull_all<C: Connector>(
    connector: &C,
    object: ObjectKind,
    from: PullFrom,
) -> (Vec<CrmRecord>, Vec<crate::page::Skipped>, usize) {
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut from = from;
    for pages in 1..=MAX_PAGES {
        let Page {
            items,
            skipped: bad,
            next,
            ..
        } = connector
            .pull(object, from)
            .await
            .unwrap_or_else(|err| panic!("pulling {object} failed: {err}"));
        records.extend(items);
        skipped.extend(bad);
        match next {
            Some(cursor) => from = PullFrom::Cursor(cursor),
            None => return (records, skipped, pages),
        }
    }
    panic!("pulling {object} did not end within {MAX_PAGES} pages")
}

fn ids(records: &[CrmRecord]) -> Vec<RecordId> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn distinct(ids: &[RecordId]) -> BTreeSet<RecordId> {
    ids.iter().cloned().collect()
}

fn newest(records: &[CrmRecord]) -> Watermark {
    records
        .iter()
        .map(|r| Watermark {
            modified_at: r.modified_at,
            id: r.id.clone(),
        })
        .max()
        .expect("at least one record")
}

pub async fn paging_reaches_the_last_page_without_repeating_a_record<T: Target>() {
    let scenario = Scenario::default();
    let target = T::start(scenario).await;
    let (records, skipped, pages) =
        pull_all(&target.connector(), target.object(), PullFrom::Start).await;
    let ids = ids(&records);
    assert!(skipped.is_empty(), "nothing was malformed: {skipped:?}");
    assert_eq!(distinct(&ids).len(), ids.len(), "a record came twice");
    assert_eq!(ids.len(), scenario.records);
    let least = scenario.records.div_ceil(scenario.page_size as usize);
    assert!(
        pages >= least,
        "{pages} pages for {} records",
        scenario.records
    );
}

pub async fn a_pull_from_a_watermark_reads_what_changed_since<T: Target>() {
    let scenario = Scenario::default();
    let target = T::start(scenario).await;
    let connector = target.connector();
    let (records, _, _) = pull_all(&connector, target.object(), PullFrom::Start).await;
    let watermark = newest(&records);
    let touched = target.touch(3);
    let (changed, skipped, _) = pull_all(
        &target.connector(),
        target.object(),
        PullFrom::Since(watermark.clone()),
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let changed_ids = distinct(&ids(&changed));
    for id in &touched {
        assert!(changed_ids.contains(id), "touched record {id} was not read");
    }
    assert!(
        changed.len() < scenario.records,
        "an incremental pull read all {} records",
        changed.len()
    );
    for record in &changed {
        assert!(
            record.modified_at + chrono::Duration::minutes(10) >= watermark.modified_at,
            "record {} changed long before the watermark",
            record.id
        );
    }
}

pub async fn a_429_storm_is_waited_out_as_retry_after_says<T: Target>() {
    let target = T::start(Scenario::default()).await;
    let connector = target.connector();
    let before = target.requests();
    let wait = Duration::from_secs(1);
    target.storm(2, wait);
    let started = Instant::now();
    let page = connector
        .pull(target.object(), PullFrom::Start)
        .await
        .expect("the storm passes and the page arrives");
    assert!(!page.items.is_empty());
    assert!(
        started.elapsed() >= wait * 2,
        "two 429s asking for {wait:?} each were retried after {:?}",
        started.elapsed()
    );
    assert!(
        target.requests() - before >= 3,
        "two refused requests and one answered"
    );
}

pub async fn a_token_expiring_mid_run_is_refreshed<T: Target>() {
    let scenario = Scenario {
        refreshable_auth: true,
        ..Scenario::default()
    };
    let target = T::start(scenario).await;
    let connector = target.connector();
    let first = connector
        .pull(target.object(), PullFrom::Start)
        .await
        .expect("the first page");
    let cursor = first.next.expect("more than one page");
    let refreshes = target.token_requests();
    target.expire_tokens();
    let second = connector
        .pull(target.object(), PullFrom::Cursor(cursor))
        .await
        .expect("the page after the token expired");
    assert!(!second.items.is_empty());
    assert!(
        target.token_requests() > refreshes,
        "no new token was asked for"
    );
}

pub async fn a_malformed_record_is_skipped_and_named<T: Target>() {
    let scenario = Scenario::default();
    let target = T::start(scenario).await;
    let (records, _, _) = pull_all(&target.connector(), target.object(), PullFrom::Start).await;
    let bad = records[records.len() / 2].id.clone();
    target.corrupt(&bad);
    let (records, skipped, _) =
        pull_all(&target.connector(), target.object(), PullFrom::Start).await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].id, bad.as_str());
    assert!(!skipped[0].reason.is_empty());
    assert_eq!(records.len(), scenario.records - 1);
    assert!(!ids(&records).contains(&bad));
}

fn task_actions<T: Target>(target: &T, records: &[CrmRecord], tag: &str) -> Vec<ActionRequest> {
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            target.task_action(ActionKey::new(format!("jd{tag}{i:04}t")), &record.id)
        })
        .collect()
}

/// The first page of the target's records, from a new connector.
async fn first_page<T: Target>(target: &T) -> Page<CrmRecord> {
    target
        .connector()
        .pull(target.object(), PullFrom::Start)
        .await
        .expect("a page of records")
}

fn applied(outcomes: &[ActionOutcome]) -> BTreeSet<ActionKey> {
    outcomes
        .iter()
        .filter(|o| matches!(o.result, ActionResult::Applied { .. }))
        .map(|o| o.key.clone())
        .collect()
}

pub async fn a_partial_batch_failure_fails_exactly_the_failed_rows<T: Target>() {
    let target = T::start(Scenario::default()).await;
    let connector = target.connector();
    let page = first_page(&target).await;
    let actions = task_actions(&target, &page.items[..5], "partial");
    let before = target.tasks();
    target.fail_batch_inputs(2);
    let outcomes = connector.apply(&actions).await.expect("the batch is sent");
    assert_eq!(outcomes.len(), actions.len(), "one outcome per action");
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            ActionResult::Failed { retryable, .. } => Some((o.key.clone(), *retryable)),
            ActionResult::Applied { .. } | ActionResult::Unknown { .. } => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{outcomes:?}");
    assert!(failed.iter().all(|(_, retryable)| *retryable));
    assert_eq!(target.tasks(), before + 3);
    let retry: Vec<_> = actions
        .iter()
        .filter(|a| failed.iter().any(|(key, _)| key == a.key()))
        .cloned()
        .collect();
    let outcomes = connector.apply(&retry).await.expect("the retry is sent");
    assert_eq!(applied(&outcomes).len(), 2, "{outcomes:?}");
    assert_eq!(target.tasks(), before + 5);
}

/// Settles `written`, whose answers were lost, the connector's own way,
/// as the next run would: sends them again where every write is idempotent,
/// else waits out the settle time and looks them up. Returns the keys it
/// found applied; `extra` keys (never sent) are asked for too on a lookup.
async fn settle<T: Target>(
    target: &T,
    written: &[ActionRequest],
    sent_at: chrono::DateTime<chrono::Utc>,
    extra: &[ActionKey],
) -> BTreeSet<ActionKey> {
    let connector = target.connector();
    match connector.recovery() {
        Recovery::Resend => {
            let outcomes = connector
                .apply(written)
                .await
                .expect("the batch is sent again");
            assert_eq!(outcomes.len(), written.len(), "one outcome per action");
            applied(&outcomes)
        }
        Recovery::LookUp { settle } => {
            assert!(
                settle <= MAX_SETTLE,
                "the target's settle time {settle:?} keeps checks waiting"
            );
            tokio::time::sleep(settle).await;
            let mut keys: Vec<_> = written.iter().map(|a| a.key().clone()).collect();
            keys.extend_from_slice(extra);
            let found = connector
                .find_applied(&keys, sent_at)
                .await
                .expect("the lookup succeeds");
            let found = applied(&found);
            for key in extra {
                assert!(!found.contains(key), "{key} was never sent but was found");
            }
            found
        }
    }
}

fn sent_at() -> chrono::DateTime<chrono::Utc> {
    // A second of slack for a clock the emulator reads separately.
    chrono::Utc::now() - chrono::Duration::seconds(1)
}

pub async fn a_create_whose_answer_was_lost_is_settled_without_writing_it_twice<T: Target>() {
    let target = T::start(Scenario::default()).await;
    let page = first_page(&target).await;
    let written = task_actions(&target, &page.items[..4], "crash");
    let before = target.tasks();
    let sent_at = sent_at();
    // The outcomes of this call are lost: the process "crashed" before
    // recording them.
    target
        .connector()
        .apply(&written)
        .await
        .expect("the batch is sent");
    assert_eq!(target.tasks(), before + written.len());
    let never_sent = ActionKey::new("jdneversent0000t");
    let found = settle(&target, &written, sent_at, &[never_sent]).await;
    let expected: BTreeSet<_> = written.iter().map(|a| a.key().clone()).collect();
    assert_eq!(found, expected, "every lost write is known to be written");
    assert_eq!(
        target.tasks(),
        before + written.len(),
        "settling wrote nothing twice"
    );
}

pub async fn an_unreadable_answer_to_a_create_is_unknown_never_failed<T: Target>() {
    let target = T::start(Scenario::default()).await;
    let connector = target.connector();
    let page = first_page(&target).await;
    let written = task_actions(&target, &page.items[..3], "garbled");
    let before = target.tasks();
    let sent_at = sent_at();
    target.malform_next_write();
    // No outcome at all (`Err`) is as good as unknown for every action.
    let outcomes = connector.apply(&written).await.unwrap_or_default();
    for outcome in &outcomes {
        assert!(
            !matches!(outcome.result, ActionResult::Failed { .. }),
            "an answer that proves nothing was called a failure: {outcome:?}"
        );
    }
    assert_eq!(target.tasks(), before + written.len(), "the CRM wrote them");
    let found = settle(&target, &written, sent_at, &[]).await;
    assert_eq!(found.len(), written.len(), "{found:?}");
    assert_eq!(
        target.tasks(),
        before + written.len(),
        "none was written twice"
    );
}

fn markers(body: &str) -> usize {
    body.lines()
        .filter(|line| line.contains(crate::action::KEY_LINE.trim_end()))
        .count()
}

pub async fn updating_a_task_rewrites_it_in_place_under_its_first_key<T: Target>() {
    let target = T::start(Scenario::default()).await;
    let connector = target.connector();
    let page = first_page(&target).await;
    let create = task_actions(&target, &page.items[..1], "update");
    let outcomes = connector.apply(&create).await.expect("the create is sent");
    let Some(ActionResult::Applied { crm_id }) = outcomes.first().map(|o| o.result.clone()) else {
        panic!("the task was not created: {outcomes:?}");
    };
    let before = target.tasks();
    let update = ActionRequest::UpdateTask {
        key: ActionKey::new("jdupdate0000u1"),
        task_key: create[0].key().clone(),
        task_id: crm_id.clone(),
        owner_id: None,
        subject: "[journeyd] 2 journey checks to fix".into(),
        body: "- first\n- second".into(),
        priority: Priority::High,
    };
    for _ in 0..2 {
        let outcomes = connector
            .apply(std::slice::from_ref(&update))
            .await
            .expect("the update is sent");
        assert!(
            matches!(outcomes[0].result, ActionResult::Applied { .. }),
            "{outcomes:?}"
        );
    }
    assert_eq!(target.tasks(), before, "an update creates nothing");
    let task = target
        .task_list()
        .into_iter()
        .find(|t| t.id.eq_ignore_ascii_case(&crm_id))
        .expect("the task is still there");
    assert_eq!(task.subject, "[journeyd] 2 journey checks to fix");
    assert!(task.body.contains("second"), "{}", task.body);
    assert_eq!(markers(&task.body), 1, "one marker line: {}", task.body);
    assert_eq!(
        ActionKey::from_text(&task.body.replace("&nbsp;", " ")),
        Some(create[0].key().clone()),
        "the body still ends with the key it was created under: {}",
        task.body
    );
}

pub async fn completing_a_task_someone_deleted_counts_as_closed<T: Target>() {
    let target = T::start(Scenario::default()).await;
    let connector = target.connector();
    let page = first_page(&target).await;
    let create = task_actions(&target, &page.items[..2], "gone");
    let outcomes = connector
        .apply(&create)
        .await
        .expect("the creates are sent");
    let ids: Vec<String> = outcomes
        .iter()
        .map(|o| match &o.result {
            ActionResult::Applied { crm_id } => crm_id.clone(),
            other => panic!("a task was not created: {other:?}"),
        })
        .collect();
    target.delete_task(&ids[0]);
    let completions: Vec<ActionRequest> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ActionRequest::CompleteTask {
            key: ActionKey::new(format!("jdgone{i}c")),
            task_id: id.clone(),
        })
        .collect();
    let outcomes = connector
        .apply(&completions)
        .await
        .expect("the completions are sent");
    assert_eq!(applied(&outcomes).len(), 2, "{outcomes:?}");
    let left = target
        .task_list()
        .into_iter()
        .find(|t| t.id.eq_ignore_ascii_case(&ids[1]))
        .expect("the other task is there");
    assert!(left.completed, "the task that exists is completed");
}
