//! The HubSpot slice end to end: the real binary syncs an emulated portal
//! over loopback HTTP, audits it, and writes corrective tasks back, once.

use crate::portal::{Auth, Portal};
use crate::support::{assert_secrets_nowhere, run_slice_logged, stored_records, task_violations};
use journeyd_hubspot::emulator::{Credentials, ObjectType};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

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
fn sync_audit_and_apply_create_one_task_per_violation_and_a_second_run_none() {
    let portal = Portal::new(DEALS, Auth::PrivateApp);
    let synced = sync(&portal, &[]);
    assert_eq!(synced[0]["status"], "ok", "{synced}");
    portal.install.run(&["audit"]);
    let expected = task_violations(&portal.install, "hubspot");
    assert!(
        expected.len() >= 10,
        "the seeded portal has journey problems"
    );

    let first = writeback(&portal);
    let tasks = portal.tasks_by_key();
    let keys: BTreeSet<_> = expected.iter().map(|fp| format!("jd{fp}t")).collect();
    assert_eq!(applied(&first), keys.len() as u64, "{first}");
    for key in &keys {
        assert_eq!(
            tasks.get(key).map(Vec::len),
            Some(1),
            "task for action {key}"
        );
    }

    let second = writeback(&portal);
    assert_eq!(applied(&second), 0, "{second}");
    assert_eq!(portal.tasks_by_key(), tasks, "the second run wrote nothing");
}

#[test]
fn a_writeback_killed_between_ledger_and_confirmation_writes_no_duplicate_after_restart() {
    let portal = Portal::new(DEALS, Auth::PrivateApp);
    sync(&portal, &[]);
    portal.install.run(&["audit"]);
    let expected = task_violations(&portal.install, "hubspot").len();
    let created_before = portal.emulator.tasks().len();

    // The portal commits the first batch and then holds its answer: the
    // ledger says `sent`, the CRM has the tasks, journeyd has no reply.
    portal.emulator.hold_batch_create(Duration::from_secs(60));
    let mut child = portal
        .install
        .command(&["writeback", "--apply", "--connector", "hubspot"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("journeyd starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while portal.emulator.tasks().len() == created_before {
        assert!(Instant::now() < deadline, "no batch reached the portal");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("journeyd is killed");
    child.wait().expect("journeyd is reaped");
    let written_before_crash = portal.emulator.tasks().len() - created_before;
    assert!(written_before_crash > 0 && written_before_crash < expected + 1);

    portal.emulator.hold_batch_create(Duration::ZERO);
    let after = writeback(&portal);
    assert!(
        after["counts"]["recovered"].as_u64() >= Some(written_before_crash as u64),
        "{after}"
    );
    let tasks = portal.tasks_by_key();
    assert_eq!(tasks.len(), expected);
    assert!(
        tasks.values().all(|ids| ids.len() == 1),
        "a task was written twice"
    );
    assert_eq!(applied(&writeback(&portal)), 0);
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
    portal
        .emulator
        .update_knobs(|knobs| knobs.search.cap = CAP as usize);
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
fn resolving_a_violation_completes_its_task() {
    let portal = Portal::new(DEALS, Auth::PrivateApp);
    sync(&portal, &[]);
    portal.install.run(&["audit"]);
    writeback(&portal);
    let rows = portal.install.json(&[
        "violations",
        "list",
        "--rule",
        "missing_owner",
        "--connector",
        "hubspot",
        "--limit",
        "1000",
    ]);
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["object"] == "deal"))
        .expect("a deal without an owner")
        .clone();
    let deal = row["record_id"].as_str().expect("a record id");
    let key = format!("jd{}t", row["fingerprint"].as_str().expect("a fingerprint"));
    let task = portal.tasks_by_key()[&key][0].clone();

    portal
        .emulator
        .set_property(ObjectType::Deals, deal, "hubspot_owner_id", "102")
        .expect("the deal gets an owner");
    sync(&portal, &[]);
    portal.install.run(&["audit"]);
    let shown = portal
        .install
        .json(&["violations", "show", &row["id"].to_string()]);
    assert_eq!(shown["violation"]["status"], "resolved", "{shown}");

    let report = writeback(&portal);
    assert!(applied(&report) >= 1, "{report}");
    let status = portal
        .emulator
        .record(ObjectType::Tasks, &task)
        .expect("the task is there")
        .properties["hs_task_status"]
        .clone();
    assert_eq!(status, "COMPLETED");
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
