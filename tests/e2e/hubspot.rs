//! The HubSpot slice end to end: the real binary syncs an emulated portal
//! over loopback HTTP, audits it, and writes corrective tasks back, once.

use crate::portal::{Auth, Portal};
use crate::support::{assert_secrets_nowhere, run_slice_logged, stored_records};
use journeyd_hubspot_emulator::{Credentials, ObjectType};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const DEALS: usize = 60;

fn sync(portal: &Portal, extra: &[&str]) -> Value {
    let mut args = vec!["sync", "--connector", "hubspot"];
    args.extend_from_slice(extra);
    portal.install.json(&args)["synced"].clone()
}

fn writeback(portal: &Portal) -> Value {
    let reports = portal
        .install
        .json(&["writeback", "--apply", "--connector", "hubspot"]);
    reports[0].clone()
}

fn applied(report: &Value) -> u64 {
    report["counts"]["applied"]
        .as_u64()
        .expect("an applied count")
}

#[test]
fn injected_429s_5xx_and_resets_yield_the_same_records_as_a_clean_run() {
    let now = chrono::Utc::now();
    let clean = Portal::at(now, DEALS, Auth::PrivateApp, |_| {});
    sync(&clean, &[]);
    let troubled = Portal::at(now, DEALS, Auth::PrivateApp, |_| {});
    troubled.emulator.faults().set_error_rate(0.10);
    let synced = sync(&troubled, &[]);
    assert_eq!(synced[0]["status"], "ok", "{synced}");
    let faulted = troubled.emulator.counts().total();
    assert!(faulted > 0);
    let (clean, troubled) = (
        stored_records(&clean.install),
        stored_records(&troubled.install),
    );
    let differ: Vec<_> = clean
        .symmetric_difference(&troubled)
        .map(|(object, id, _)| format!("{object} {id}"))
        .collect();
    assert!(differ.is_empty(), "records that differ: {differ:?}");
    assert_eq!(clean.len(), troubled.len());
}

#[test]
fn a_token_expiring_mid_sync_is_refreshed() {
    let portal = Portal::new(DEALS, Auth::OAuth);
    portal.emulator.expire_after_requests(3);
    let synced = sync(&portal, &[]);
    assert_eq!(synced[0]["status"], "ok", "{synced}");
    let token_calls = portal.emulator.counts().get("POST /oauth/v3/token");
    assert!(token_calls >= 2, "{token_calls} token requests");
    assert_eq!(
        stored_records(&portal.install)
            .iter()
            .filter(|(object, _, _)| object == "deal")
            .count(),
        DEALS
    );
}

#[test]
fn the_search_window_restart_at_the_result_cap_misses_and_repeats_nothing() {
    const CAP: i64 = 20;
    let portal = Portal::configured(DEALS, Auth::PrivateApp, |config| {
        let paging = &mut config["connectors"]["hubspot"]["paging"];
        paging["search_cap"] = toml_edit::value(CAP);
        paging["search_limit"] = toml_edit::value(7);
        paging["overlap_seconds"] = toml_edit::value(0);
    });
    // The changes below are read at once: this is about the cap, not the
    // index's lag.
    portal.emulator.update_knobs(|knobs| {
        knobs.search.cap = CAP as usize;
        knobs.search_lag = Duration::ZERO;
    });
    sync(&portal, &[]);
    let touched: BTreeSet<String> = portal
        .emulator
        .touch(ObjectType::Deals, 45)
        .into_iter()
        .collect();
    let synced = sync(&portal, &[]);
    let read = synced[0]["records_new"].as_u64().unwrap_or(0)
        + synced[0]["records_changed"].as_u64().unwrap_or(0)
        + synced[0]["records_unchanged"].as_u64().unwrap_or(0);
    let changed = synced[0]["records_changed"].as_u64().unwrap_or(0);
    assert_eq!(changed, touched.len() as u64, "{synced}");
    assert!(
        read <= touched.len() as u64 + 5,
        "{read} records read for {} changed: repeats",
        touched.len()
    );
    let windows = portal
        .emulator
        .search_queries()
        .iter()
        .filter(|query| query.object == ObjectType::Deals && query.body.get("after").is_none())
        .count();
    assert!(windows >= 3, "the cap forced window restarts: {windows}");
    for (object, id, snapshot) in stored_records(&portal.install) {
        if object == "deal" && touched.contains(&id) {
            let stored: Value = serde_json::from_str(&snapshot).expect("a snapshot");
            let stored = chrono::DateTime::parse_from_rfc3339(
                stored["modified_at"].as_str().expect("a modification time"),
            )
            .expect("an RFC 3339 time");
            let live = portal.deal(&id)["hs_lastmodifieddate"].clone();
            let live = chrono::DateTime::parse_from_rfc3339(&live).expect("an ISO time");
            assert_eq!(stored, live, "deal {id}'s change was missed");
        }
    }
}

#[test]
fn a_record_with_nothing_left_to_fix_has_its_task_completed() {
    let portal = Portal::configured(DEALS, Auth::PrivateApp, |config| {
        config["connectors"]["hubspot"]["search_lag_seconds"] = toml_edit::value(1);
    });
    sync(&portal, &[]);
    portal.install.run(&["audit"]);
    writeback(&portal);
    let rows = portal.install.json(&[
        "violations",
        "list",
        "--status",
        "open",
        "--connector",
        "hubspot",
        "--limit",
        "1000",
    ]);
    let rows = rows.as_array().expect("violations");
    let only_missing_owner = rows
        .iter()
        .filter(|r| r["object"] == "deal" && r["rule"] == "missing_owner")
        // The first stored, whatever the list's order: owner 102 (below)
        // need not hold the role another such deal's stage wants, and that
        // deal would then break another rule once 102 owns it.
        .filter(|row| {
            rows.iter()
                .filter(|r| r["record_id"] == row["record_id"] && r["object"] == "deal")
                .count()
                == 1
        })
        .min_by_key(|row| row["id"].as_i64())
        .expect("a deal whose only problem is its missing owner")
        .clone();
    let deal = only_missing_owner["record_id"]
        .as_str()
        .expect("a record id");
    let db = rusqlite::Connection::open(portal.install.path("state.sqlite"))
        .expect("the state file opens");
    let task: String = db
        .query_row(
            "SELECT task_id FROM record_tasks WHERE object = 'deal' AND record_id = ?1",
            [deal],
            |row| row.get(0),
        )
        .expect("the deal's task is in record_tasks");

    portal
        .emulator
        .set_property(ObjectType::Deals, deal, "hubspot_owner_id", "102")
        .expect("the deal gets an owner");
    // An incremental sync finds changes by search, which lags writes.
    std::thread::sleep(portal.emulator.search_settles_in());
    sync(&portal, &[]);
    portal.install.run(&["audit"]);
    let report = writeback(&portal);

    assert!(applied(&report) >= 1, "{report}");
    let status = portal
        .emulator
        .record(ObjectType::Tasks, &task)
        .expect("the task is there")
        .properties["hs_task_status"]
        .clone();
    assert_eq!(status, "COMPLETED");
    assert_eq!(applied(&writeback(&portal)), 0, "completed once");
}

#[test]
fn no_seeded_secret_reaches_a_log_line_or_the_state_file() {
    let portal = Portal::configured(DEALS, Auth::OAuth, |_| {});
    portal
        .emulator
        .update_knobs(|knobs| knobs.rotate_refresh_tokens = true);
    portal.emulator.expire_after_requests(2);
    let logs = run_slice_logged(&portal.install, "hubspot");
    assert!(logs.contains("token refreshed"), "a refresh was logged");
    let rotated = std::fs::read_to_string(portal.install.path("credentials/hubspot.refresh-token"))
        .expect("the rotated refresh token was saved");
    let seeded = Credentials::default();
    assert_ne!(
        rotated.trim(),
        seeded.refresh_token,
        "the refresh token rotated"
    );
    assert_secrets_nowhere(
        &portal.install,
        &logs,
        &[
            &seeded.client_secret,
            &seeded.refresh_token,
            &seeded.private_app_token,
            rotated.trim(),
        ],
    );
}

#[test]
fn journeyds_own_task_never_counts_as_the_onboarding_task_a_deal_lacks() {
    // One task per violation: its subject names the rule, and so mentions
    // "onboarding", which the check looks for in a task's subject.
    let portal = Portal::configured(DEALS, Auth::PrivateApp, |config| {
        config["connectors"]["hubspot"]["search_lag_seconds"] = toml_edit::value(1);
        config["writeback"]["tasks"] = toml_edit::value("per_violation");
    });
    sync(&portal, &[]);
    portal.install.run(&["audit"]);
    let lacking = |portal: &Portal| -> BTreeSet<String> {
        portal
            .install
            .json(&[
                "violations",
                "list",
                "--status",
                "open",
                "--rule",
                "missing_onboarding_task",
                "--limit",
                "1000",
            ])
            .as_array()
            .expect("violations")
            .iter()
            .map(|row| {
                row["fingerprint"]
                    .as_str()
                    .expect("a fingerprint")
                    .to_owned()
            })
            .collect()
    };
    let before = lacking(&portal);
    assert!(!before.is_empty(), "the seed has deals without onboarding");

    let report = writeback(&portal);
    let onboarding_tasks = report["written"]
        .as_array()
        .expect("writes")
        .iter()
        .filter(|w| {
            w["request"]["subject"]
                .as_str()
                .is_some_and(|s| s.to_lowercase().contains("onboarding"))
        })
        .count();
    assert_eq!(onboarding_tasks, before.len(), "{report}");
    std::thread::sleep(portal.emulator.search_settles_in());
    sync(&portal, &["--full"]);
    portal.install.run(&["audit"]);

    assert_eq!(
        lacking(&portal),
        before,
        "no violation resolved by journeyd's own task"
    );
}

/// A portal listed ten records a page.
fn paged_portal() -> Portal {
    Portal::configured(DEALS, Auth::PrivateApp, |config| {
        config["connectors"]["hubspot"]["paging"]["list_limit"] = toml_edit::value(10);
    })
}

fn stored(portal: &Portal, object: &str) -> usize {
    stored_records(&portal.install)
        .iter()
        .filter(|(kind, _, _)| kind == object)
        .count()
}

#[test]
fn a_list_that_hands_back_its_own_after_stops_paging_that_object_and_the_others_sync() {
    let portal = paged_portal();
    portal.emulator.update_knobs(|knobs| {
        knobs.list.repeat_after.insert(ObjectType::Deals);
    });

    let output = portal
        .install
        .run_expecting(1, &["--json", "sync", "--connector", "hubspot"]);

    let summary: Value = serde_json::from_slice(&output.stdout).expect("a json summary");
    let synced = &summary["synced"][0];
    assert_eq!(synced["status"], "failed", "{synced}");
    assert_eq!(
        synced["failed"].as_array().map(Vec::len),
        Some(1),
        "{synced}"
    );
    assert_eq!(synced["failed"][0]["object"], "deal");
    let error = synced["failed"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("hubspot deal records: paging stopped: page 2 handed back the cursor already followed after page 1"),
        "{error}"
    );
    assert_eq!(stored(&portal, "deal"), 10, "the first page only");
    assert_eq!(
        stored(&portal, "contact"),
        portal.emulator.ids(ObjectType::Contacts).len()
    );
}

#[test]
fn a_page_answered_with_an_unreadable_body_is_asked_for_again() {
    let portal = paged_portal();
    portal.emulator.faults().malformed_next(2);

    let synced = sync(&portal, &[]);

    assert_eq!(synced[0]["status"], "ok", "{synced}");
    assert_eq!(portal.emulator.faults().injected().malformed, 2);
    assert_eq!(
        stored(&portal, "deal"),
        portal.emulator.ids(ObjectType::Deals).len()
    );
}
