//! Specifications of the sync loop, against a connector backed by vectors.

use super::*;
use crate::config::{Connection, ConnectorConfig, RoleMap};
use crate::fake_connector::{FakeConnector, FakeCrm};
use crate::store::StoredWatermark;
use crate::store::testkit::{day, record};
use journeyd_connector::{Owner, OwnerId, System};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::watch;

fn config(objects: &[ObjectKind]) -> ConnectorConfig {
    ConnectorConfig {
        name: ConnectorName::new("hubspot"),
        system: System::Hubspot,
        secret: None,
        stages: BTreeMap::new(),
        outside: BTreeMap::new(),
        roles: RoleMap::default(),
        fallback_owners: BTreeMap::new(),
        fields: BTreeMap::new(),
        lifecycle: None,
        objects: objects.iter().copied().collect(),
        connection: Connection::unreached(),
    }
}

/// A deal modified on 2024-05-`modified` at midnight.
fn deal(id: &str, modified: u32) -> CrmRecord {
    let mut deal = record(ObjectKind::Deal, id);
    deal.modified_at = day(modified, 0);
    deal
}

fn deals(crm_order: &[(&str, u32)], page_size: usize) -> FakeConnector {
    let mut crm = FakeCrm {
        page_size,
        ..FakeCrm::default()
    };
    crm.records.insert(
        ObjectKind::Deal,
        crm_order.iter().map(|(id, at)| deal(id, *at)).collect(),
    );
    FakeConnector::new("hubspot", &[ObjectKind::Deal], crm)
}

struct Harness {
    _dir: tempfile::TempDir,
    store: StoreHandle,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(&dir.path().join("journeyd.db")).unwrap();
        Harness { _dir: dir, store }
    }

    async fn sync(&self, connector: &FakeConnector, full: bool) -> SyncSummary {
        let (_tx, shutdown) = watch::channel(false);
        self.sync_with(connector, full, &NoProgress, &shutdown)
            .await
    }

    async fn sync_with(
        &self,
        connector: &FakeConnector,
        full: bool,
        progress: &dyn SyncProgress,
        shutdown: &Shutdown,
    ) -> SyncSummary {
        let options = SyncOptions {
            full,
            ..SyncOptions::default()
        };
        self.sync_options(connector, &options, progress, shutdown)
            .await
    }

    async fn sync_options(
        &self,
        connector: &FakeConnector,
        options: &SyncOptions,
        progress: &dyn SyncProgress,
        shutdown: &Shutdown,
    ) -> SyncSummary {
        sync(
            &self.store,
            connector,
            &config(&ObjectKind::ALL),
            options,
            progress,
            shutdown,
        )
        .await
        .unwrap()
    }

    fn watermark(&self) -> Option<StoredWatermark> {
        self.store
            .call_blocking(|s| s.watermark(&ConnectorName::new("hubspot"), ObjectKind::Deal))
            .unwrap()
    }

    fn records(&self) -> u64 {
        self.store.call_blocking(|s| s.record_count()).unwrap()
    }
}

/// Sets the shutdown signal once `pages` record pages were stored.
struct StopAfter {
    pages: u64,
    seen: Mutex<u64>,
    stop: watch::Sender<bool>,
}

impl SyncProgress for StopAfter {
    fn page(&self, _: &ConnectorName, step: Step, _: u64) {
        if let Step::Records(_) = step {
            let mut seen = self.seen.lock().unwrap();
            *seen += 1;
            if *seen == self.pages {
                self.stop.send_replace(true);
            }
        }
    }
}

fn watermark(modified: u32, id: &str) -> Watermark {
    Watermark {
        modified_at: day(modified, 0),
        id: RecordId::new(id),
    }
}

#[tokio::test]
async fn every_page_is_stored_with_the_watermark_so_far_and_the_next_cursor() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 5), ("3", 4)], 2);
    let (stop, shutdown) = watch::channel(false);
    let progress = StopAfter {
        pages: 1,
        seen: Mutex::new(0),
        stop,
    };
    let summary = harness
        .sync_with(&connector, false, &progress, &shutdown)
        .await;

    assert!(summary.stopped);
    assert_eq!(summary.status, RunStatus::Partial);
    assert_eq!((summary.pages, summary.records_new), (1, 2));
    assert_eq!(harness.records(), 2);
    let stored = harness.watermark().unwrap();
    assert_eq!(stored.watermark, watermark(5, "2"));
    assert_eq!(stored.cursor.as_deref(), Some("2|-"));
}

#[tokio::test]
async fn a_sync_stopped_between_pages_resumes_from_the_stored_cursor() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 5), ("3", 4), ("4", 2), ("5", 1)], 2);
    let (stop, shutdown) = watch::channel(false);
    let progress = StopAfter {
        pages: 1,
        seen: Mutex::new(0),
        stop,
    };
    harness
        .sync_with(&connector, false, &progress, &shutdown)
        .await;
    connector.with(|crm| crm.pulls.clear());

    let summary = harness.sync(&connector, false).await;

    assert_eq!(summary.status, RunStatus::Ok);
    let pulls = connector.with(|crm| crm.pulls.clone());
    assert_eq!(
        pulls.first(),
        Some(&(ObjectKind::Deal, PullFrom::Cursor("2|-".into())))
    );
    assert_eq!((summary.pages, summary.records_new), (2, 3));
    assert_eq!(harness.records(), 5);
    let stored = harness.watermark().unwrap();
    assert_eq!((stored.watermark, stored.cursor), (watermark(5, "2"), None));
}

#[tokio::test]
async fn the_watermark_never_moves_backwards() {
    let harness = Harness::new();
    // A full list is in id order: the newest change comes first.
    let connector = deals(&[("1", 9), ("2", 2), ("3", 3)], 1);
    harness.sync(&connector, true).await;
    assert_eq!(harness.watermark().unwrap().watermark, watermark(9, "1"));

    // A full resync that sees only older records keeps the watermark.
    connector.with(|crm| {
        crm.records
            .insert(ObjectKind::Deal, vec![deal("2", 2), deal("3", 3)]);
    });
    harness.sync(&connector, true).await;
    assert_eq!(harness.watermark().unwrap().watermark, watermark(9, "1"));
}

#[tokio::test]
async fn an_incremental_sync_reads_from_the_watermark_and_a_full_one_from_the_start() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records
            .get_mut(&ObjectKind::Deal)
            .unwrap()
            .push(deal("3", 6));
        crm.pulls.clear();
    });

    let summary = harness.sync(&connector, false).await;
    assert_eq!(summary.records_new, 1);
    assert_eq!(summary.records_unchanged, 0, "only what changed is read");
    harness.sync(&connector, true).await;

    let pulls = connector.with(|crm| crm.pulls.clone());
    assert_eq!(
        pulls,
        vec![
            (ObjectKind::Deal, PullFrom::Since(watermark(4, "2"))),
            (ObjectKind::Deal, PullFrom::Start),
        ]
    );
}

#[test]
fn a_watermark_never_passes_the_start_of_the_sync() {
    let ceiling = day(10, 0);
    let page = [deal("1", 4), deal("2", 12)];
    let advanced = advance(Some(watermark(2, "9")), &page, ceiling);
    assert_eq!(
        advanced,
        Some(Watermark {
            modified_at: ceiling,
            id: RecordId::new("")
        })
    );
    assert_eq!(
        advance(Some(watermark(11, "9")), &page, ceiling),
        Some(watermark(11, "9"))
    );
    assert_eq!(advance(None, &[], ceiling), None);
}

#[tokio::test]
async fn skipped_records_are_logged_and_counted_in_the_run_row() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3)], 10);
    connector.with(|crm| {
        crm.skipped.insert(
            ObjectKind::Deal,
            vec![Skipped {
                id: "77".into(),
                reason: "amount is not a number".into(),
            }],
        );
    });
    let summary = harness.sync(&connector, false).await;
    assert_eq!((summary.skipped, summary.records_new), (1, 1));
    assert_eq!(summary.status, RunStatus::Partial);
    let run = harness
        .store
        .call_blocking(move |s| s.run(crate::store::RunId(summary.run)))
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Partial);
    let counts = run.counts.unwrap();
    assert_eq!(counts["skipped"], 1);
    assert_eq!(counts["records_new"], 1);
}

#[tokio::test]
async fn owners_are_stored_before_records() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3)], 10);
    connector.with(|crm| {
        crm.owners = vec![Owner {
            id: OwnerId::new("101"),
            name: "Ann".into(),
            email: None,
            active: true,
            teams: vec!["Sales".into()],
        }];
    });
    let summary = harness.sync(&connector, false).await;
    assert_eq!(summary.owners, 1);
    let owners = harness
        .store
        .call_blocking(|s| s.owners(&ConnectorName::new("hubspot")))
        .unwrap();
    assert_eq!(owners.len(), 1);
}

#[tokio::test]
async fn a_full_sync_marks_the_records_the_crm_deleted() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records.insert(ObjectKind::Deal, vec![deal("1", 3)]);
        crm.deleted.insert(
            ObjectKind::Deal,
            vec![RecordId::new("2"), RecordId::new("x")],
        );
    });

    let incremental = harness.sync(&connector, false).await;
    assert_eq!(
        incremental.deleted, 0,
        "only a full sync reconciles deletions"
    );
    let full = harness.sync(&connector, true).await;
    assert_eq!(full.deleted, 1);
    assert_eq!(harness.records(), 1);
}

#[tokio::test]
async fn a_full_sync_marks_deleted_the_records_the_crm_no_longer_returns() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4), ("3", 5)], 2);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records
            .insert(ObjectKind::Deal, vec![deal("1", 3), deal("3", 5)]);
    });

    let full = harness.sync(&connector, true).await;

    assert_eq!((full.status, full.deleted), (RunStatus::Ok, 1));
    assert_eq!(harness.records(), 2);
}

#[tokio::test]
async fn a_full_sync_that_could_not_read_every_record_marks_none_deleted() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records.insert(ObjectKind::Deal, vec![deal("1", 3)]);
        crm.skipped.insert(
            ObjectKind::Deal,
            vec![Skipped {
                id: "2".into(),
                reason: "amount is not a number".into(),
            }],
        );
    });

    let full = harness.sync(&connector, true).await;

    assert_eq!((full.status, full.deleted), (RunStatus::Partial, 0));
    assert!(full.error.unwrap().contains("1 records could not be read"));
    assert_eq!(harness.records(), 2);
}

#[tokio::test]
async fn a_full_sync_missing_most_records_marks_them_deleted_only_when_told_to() {
    let harness = Harness::new();
    let ids: Vec<String> = (1..=12).map(|n| n.to_string()).collect();
    let all: Vec<(&str, u32)> = ids.iter().map(|id| (id.as_str(), 3)).collect();
    let connector = deals(&all, 100);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records.insert(ObjectKind::Deal, vec![deal("1", 3)]);
    });

    let refused = harness.sync(&connector, true).await;
    assert_eq!((refused.status, refused.deleted), (RunStatus::Partial, 0));
    assert!(refused.error.unwrap().contains("11 of 12"));
    assert_eq!(harness.records(), 12);

    let (_tx, shutdown) = watch::channel(false);
    let options = SyncOptions {
        full: true,
        accept_mass_deletion: true,
        ..SyncOptions::default()
    };
    let accepted = harness
        .sync_options(&connector, &options, &NoProgress, &shutdown)
        .await;
    assert_eq!((accepted.status, accepted.deleted), (RunStatus::Ok, 11));
    assert_eq!(harness.records(), 1);
}

#[tokio::test]
async fn a_full_pull_finished_by_a_later_sync_still_marks_what_it_did_not_see() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4), ("3", 5), ("4", 6)], 2);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records.insert(
            ObjectKind::Deal,
            vec![deal("1", 3), deal("2", 4), deal("4", 6)],
        );
    });
    let (stop, shutdown) = watch::channel(false);
    let progress = StopAfter {
        pages: 1,
        seen: Mutex::new(0),
        stop,
    };
    let stopped = harness
        .sync_with(&connector, true, &progress, &shutdown)
        .await;
    assert_eq!((stopped.stopped, stopped.deleted), (true, 0));

    let resumed = harness.sync(&connector, false).await;

    assert_eq!(resumed.deleted, 1, "deal 3 is gone; 1 and 2 were seen");
    assert_eq!(harness.records(), 3);
}

#[tokio::test]
async fn an_incremental_sync_marks_nothing_deleted_by_absence() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records.insert(ObjectKind::Deal, vec![deal("1", 3)]);
    });

    let incremental = harness.sync(&connector, false).await;

    assert_eq!(incremental.deleted, 0);
    assert_eq!(harness.records(), 2);
}

#[tokio::test]
async fn a_connector_error_fails_the_sync_and_an_exhausted_allowance_leaves_it_partial() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3)], 10);
    connector.with(|crm| {
        crm.fail_next_pull = Some(ConnectorError::Auth {
            connector: "hubspot".into(),
            reason: "token refused".into(),
        });
    });
    let failed = harness.sync(&connector, false).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("authentication with hubspot failed: token refused")
    );

    connector.with(|crm| {
        crm.fail_next_pull = Some(ConnectorError::AllowanceExhausted {
            connector: "hubspot".into(),
        });
    });
    let partial = harness.sync(&connector, false).await;
    assert_eq!(partial.status, RunStatus::Partial);
    assert!(
        partial
            .error
            .as_deref()
            .is_some_and(|e| e.contains("resumes from the saved cursor at the next run")),
        "{:?}",
        partial.error
    );
    let ok = harness.sync(&connector, false).await;
    assert_eq!((ok.status, ok.records_new), (RunStatus::Ok, 1));
}

#[tokio::test]
async fn only_the_objects_both_the_config_and_the_connector_have_are_pulled() {
    let harness = Harness::new();
    let connector = FakeConnector::new(
        "hubspot",
        &[ObjectKind::Contact, ObjectKind::Deal],
        FakeCrm {
            page_size: 10,
            ..FakeCrm::default()
        },
    );
    let (_tx, shutdown) = watch::channel(false);
    sync(
        &harness.store,
        &connector,
        &config(&[ObjectKind::Deal, ObjectKind::Lead]),
        &SyncOptions::default(),
        &NoProgress,
        &shutdown,
    )
    .await
    .unwrap();
    let pulled: Vec<ObjectKind> = connector.with(|crm| crm.pulls.iter().map(|p| p.0).collect());
    assert_eq!(pulled, [ObjectKind::Deal]);
}

fn delta_deals(crm_order: &[(&str, u32)], page_size: usize) -> FakeConnector {
    let connector = deals(crm_order, page_size);
    connector.with(|crm| crm.delta_links = true);
    connector
}

fn delta_link(harness: &Harness) -> Option<String> {
    harness
        .store
        .call_blocking(|s| s.delta_link(&ConnectorName::new("hubspot"), ObjectKind::Deal))
        .unwrap()
}

fn deal_pulls(connector: &FakeConnector) -> Vec<PullFrom> {
    connector.with(|crm| {
        crm.pulls
            .iter()
            .filter(|(object, _)| *object == ObjectKind::Deal)
            .map(|(_, from)| from.clone())
            .collect()
    })
}

#[tokio::test]
async fn the_delta_link_a_pull_ends_with_is_where_the_next_incremental_pull_starts() {
    let harness = Harness::new();
    let connector = delta_deals(&[("1", 3), ("2", 4), ("3", 5)], 2);

    harness.sync(&connector, false).await;
    let link = delta_link(&harness).expect("the last page's delta link is kept");
    connector.with(|crm| crm.pulls.clear());
    harness.sync(&connector, false).await;

    assert_eq!(deal_pulls(&connector), [PullFrom::Delta(link)]);
}

#[tokio::test]
async fn records_a_change_feed_reports_deleted_are_marked_deleted_with_its_page() {
    let harness = Harness::new();
    let connector = delta_deals(&[("1", 3), ("2", 4)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.records.insert(ObjectKind::Deal, vec![deal("1", 3)]);
        crm.deleted
            .insert(ObjectKind::Deal, vec![RecordId::new("2")]);
    });

    let incremental = harness.sync(&connector, false).await;

    assert_eq!(
        (incremental.status, incremental.deleted),
        (RunStatus::Ok, 1)
    );
    assert_eq!(harness.records(), 1);
}

#[tokio::test]
async fn an_expired_delta_link_falls_back_to_a_full_pull_that_reconciles() {
    let harness = Harness::new();
    let connector = delta_deals(&[("1", 3), ("2", 4), ("3", 5)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| {
        crm.pulls.clear();
        crm.deltas_expired = true;
        // Deleted while the changes were kept too briefly to tell.
        crm.records
            .insert(ObjectKind::Deal, vec![deal("1", 3), deal("3", 5)]);
    });

    let incremental = harness.sync(&connector, false).await;

    assert_eq!(
        (incremental.status, incremental.deleted),
        (RunStatus::Ok, 1)
    );
    assert!(matches!(
        deal_pulls(&connector).as_slice(),
        [PullFrom::Delta(_), PullFrom::Start]
    ));
    assert_eq!(harness.records(), 2);
    assert!(delta_link(&harness).is_some(), "the full pull's new link");
}

#[tokio::test]
async fn a_full_sync_pulls_from_the_start_even_with_a_delta_link() {
    let harness = Harness::new();
    let connector = delta_deals(&[("1", 3)], 10);
    harness.sync(&connector, false).await;
    connector.with(|crm| crm.pulls.clear());

    harness.sync(&connector, true).await;

    assert_eq!(deal_pulls(&connector), [PullFrom::Start]);
}

/// A store that has every deal of `first`, then a sync of the deals added
/// since (`later`, two a page) stopped after its first page: its cursor is
/// saved. Returns the watermark the stopped sync reached.
async fn interrupted_incremental(
    harness: &Harness,
    connector: &FakeConnector,
    later: &[(&str, u32)],
) -> Watermark {
    harness.sync(connector, false).await;
    connector.with(|crm| {
        let deals = crm.records.get_mut(&ObjectKind::Deal).unwrap();
        deals.extend(later.iter().map(|(id, at)| deal(id, *at)));
        crm.pulls.clear();
    });
    let (stop, shutdown) = watch::channel(false);
    let progress = StopAfter {
        pages: 1,
        seen: Mutex::new(0),
        stop,
    };
    let stopped = harness
        .sync_with(connector, false, &progress, &shutdown)
        .await;
    assert!(stopped.stopped);
    let stored = harness.watermark().unwrap();
    assert!(stored.cursor.is_some(), "the stopped sync saved its cursor");
    connector.with(|crm| crm.pulls.clear());
    stored.watermark
}

fn run_counts(harness: &Harness, summary: &SyncSummary) -> serde_json::Value {
    let run = crate::store::RunId(summary.run);
    harness
        .store
        .call_blocking(move |s| s.run(run))
        .unwrap()
        .unwrap()
        .counts
        .unwrap()
}

#[tokio::test]
async fn a_refused_cursor_restarts_the_pull_from_the_watermark() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4)], 2);
    let reached =
        interrupted_incremental(&harness, &connector, &[("3", 5), ("4", 6), ("5", 7)]).await;
    connector.with(|crm| crm.refuse_cursors = 1);

    let resumed = harness.sync(&connector, false).await;

    assert_eq!(resumed.status, RunStatus::Ok, "{:?}", resumed.error);
    let pulls = deal_pulls(&connector);
    assert!(matches!(pulls[0], PullFrom::Cursor(_)), "{pulls:?}");
    assert_eq!(pulls[1], PullFrom::Since(reached));
    assert_eq!(harness.records(), 5);
    assert_eq!(harness.watermark().unwrap().cursor, None);
}

#[tokio::test]
async fn a_refused_cursor_of_a_full_pull_restarts_it_from_the_start() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4), ("3", 5), ("4", 6)], 2);
    harness.sync(&connector, false).await;
    let (stop, shutdown) = watch::channel(false);
    let progress = StopAfter {
        pages: 1,
        seen: Mutex::new(0),
        stop,
    };
    harness
        .sync_with(&connector, true, &progress, &shutdown)
        .await;
    connector.with(|crm| {
        crm.pulls.clear();
        crm.refuse_cursors = 1;
        // Gone from the CRM while the full pull was away.
        crm.records.insert(
            ObjectKind::Deal,
            vec![deal("1", 3), deal("2", 4), deal("4", 6)],
        );
    });

    let resumed = harness.sync(&connector, false).await;

    assert_eq!(resumed.status, RunStatus::Ok, "{:?}", resumed.error);
    let pulls = deal_pulls(&connector);
    assert!(matches!(pulls[0], PullFrom::Cursor(_)), "{pulls:?}");
    assert_eq!(pulls[1], PullFrom::Start);
    assert_eq!(
        resumed.deleted, 1,
        "the restarted full pull still reconciles"
    );
    assert_eq!(harness.records(), 3);
}

#[tokio::test]
async fn a_cursor_refused_after_every_restart_fails_only_that_object() {
    let harness = Harness::new();
    let connector = FakeConnector::new(
        "hubspot",
        &[ObjectKind::Deal, ObjectKind::Contact],
        FakeCrm {
            page_size: 2,
            ..FakeCrm::default()
        },
    );
    connector.with(|crm| {
        crm.records.insert(
            ObjectKind::Deal,
            (1..=5).map(|n| deal(&n.to_string(), n)).collect(),
        );
        crm.records
            .insert(ObjectKind::Contact, vec![record(ObjectKind::Contact, "c1")]);
        crm.refuse_cursors = usize::MAX;
    });

    let summary = harness.sync(&connector, false).await;

    assert_eq!(summary.status, RunStatus::Failed);
    let restarts = deal_pulls(&connector).len();
    assert_eq!(
        restarts,
        2 * (CURSOR_RESTARTS as usize + 1),
        "each pull: a first page, then its refused cursor"
    );
    assert_eq!(summary.failed.len(), 1, "{:?}", summary.failed);
    assert_eq!(
        (summary.failed[0].object.as_str(), summary.failed[0].step),
        ("deal", "records")
    );
    let error = summary.error.clone().unwrap();
    assert!(
        error.contains(
            "hubspot deal records: the cursor was refused again after 3 restarts of the pull"
        ),
        "{error}"
    );
    let counts = run_counts(&harness, &summary);
    assert_eq!(counts["failed"][0]["object"], "deal");
    let contacts = harness
        .store
        .call_blocking(|s| s.watermark(&ConnectorName::new("hubspot"), ObjectKind::Contact))
        .unwrap();
    assert!(contacts.is_some(), "the contacts were synced all the same");
}

#[tokio::test]
async fn a_full_sync_after_an_interrupted_incremental_one_pulls_from_the_start() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4)], 2);
    interrupted_incremental(&harness, &connector, &[("3", 5), ("4", 6), ("5", 7)]).await;

    let full = harness.sync(&connector, true).await;

    assert_eq!(full.status, RunStatus::Ok, "{:?}", full.error);
    assert_eq!(deal_pulls(&connector).first(), Some(&PullFrom::Start));
    assert_eq!(
        full.records_new + full.records_unchanged + full.records_changed,
        5
    );
}

#[tokio::test]
async fn a_full_sync_resumes_the_full_pull_it_interrupted() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4), ("3", 5)], 2);
    let (stop, shutdown) = watch::channel(false);
    let progress = StopAfter {
        pages: 1,
        seen: Mutex::new(0),
        stop,
    };
    harness
        .sync_with(&connector, true, &progress, &shutdown)
        .await;
    connector.with(|crm| crm.pulls.clear());

    harness.sync(&connector, true).await;

    assert!(matches!(
        deal_pulls(&connector).first(),
        Some(PullFrom::Cursor(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_page_is_asked_for_again() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4), ("3", 5)], 2);
    connector.with(|crm| {
        crm.unreadable.insert(ObjectKind::Deal, 2);
    });

    let summary = harness.sync(&connector, false).await;

    assert_eq!(summary.status, RunStatus::Ok, "{:?}", summary.error);
    assert_eq!(deal_pulls(&connector).len(), 2 + 2);
    assert_eq!(harness.records(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_the_wait_before_an_unreadable_page_is_asked_for_again() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3)], 2);
    connector.with(|crm| {
        crm.unreadable.insert(ObjectKind::Deal, usize::MAX);
    });
    let (stop, shutdown) = watch::channel(false);
    // Spinning, not sleeping, keeps the paused clock still until the stop:
    // only the sync's own wait could move it.
    let stopper = async {
        while deal_pulls(&connector).is_empty() {
            tokio::task::yield_now().await;
        }
        stop.send_replace(true);
    };
    let started = tokio::time::Instant::now();

    let (summary, ()) = tokio::join!(
        harness.sync_with(&connector, false, &NoProgress, &shutdown),
        stopper
    );

    assert!(summary.stopped, "{:?}", summary.error);
    assert_eq!(deal_pulls(&connector).len(), 1);
    let base = config(&[]).connection.retry().base_delay;
    assert!(started.elapsed() < base, "waited {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_page_unreadable_at_every_attempt_fails_that_object_and_the_others_sync() {
    let harness = Harness::new();
    let connector = FakeConnector::new(
        "hubspot",
        &[ObjectKind::Deal, ObjectKind::Contact],
        FakeCrm {
            page_size: 10,
            ..FakeCrm::default()
        },
    );
    connector.with(|crm| {
        crm.records.insert(ObjectKind::Deal, vec![deal("1", 3)]);
        crm.records
            .insert(ObjectKind::Contact, vec![record(ObjectKind::Contact, "c1")]);
        crm.unreadable.insert(ObjectKind::Deal, usize::MAX);
    });
    let attempts = config(&[]).connection.retry().max_attempts.get() as usize;

    let summary = harness.sync(&connector, false).await;

    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(deal_pulls(&connector).len(), attempts);
    let error = summary.error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "hubspot deal records page 1 could not be read in {attempts} attempts: "
        )),
        "{error}"
    );
    let counts = run_counts(&harness, &summary);
    assert_eq!(counts["failed"][0]["object"], "deal");
    assert_eq!(counts["failed"][0]["error"], error);
    assert_eq!(harness.records(), 1, "the contact");
}

#[tokio::test]
async fn a_cursor_handed_back_again_stops_that_objects_paging() {
    let harness = Harness::new();
    let connector = deals(&[("1", 3), ("2", 4), ("3", 5), ("4", 6), ("5", 7)], 2);
    connector.with(|crm| {
        crm.repeat_cursor.insert(ObjectKind::Deal);
    });

    let summary = harness.sync(&connector, false).await;

    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(deal_pulls(&connector).len(), 2);
    let error = summary.error.unwrap();
    assert!(
        error.contains(
            "hubspot deal records: paging stopped: page 2 handed back the cursor already followed after page 1"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn paging_past_the_reported_total_stops_that_objects_paging() {
    let harness = Harness::new();
    let many: Vec<String> = (1..=30).map(|n| n.to_string()).collect();
    let all: Vec<(&str, u32)> = many.iter().map(|id| (id.as_str(), 3)).collect();
    let connector = deals(&all, 1);
    connector.with(|crm| crm.report_total = Some(2));

    let summary = harness.sync(&connector, false).await;

    assert_eq!(summary.status, RunStatus::Failed);
    let limit = 2 + paging::PAGE_SLACK;
    assert_eq!(deal_pulls(&connector).len() as u64, limit + 1);
    let error = summary.error.unwrap();
    assert!(
        error.contains(&format!(
            "page {} still names a next page, past the {limit} pages 2 reported items allow",
            limit + 1
        )),
        "{error}"
    );
}
