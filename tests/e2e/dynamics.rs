//! The Dynamics 365 slice end to end: the real binary syncs an emulated
//! Dataverse environment over loopback HTTP (Entra client credentials,
//! change tracking, `$batch`), audits it, and writes corrective tasks back,
//! once.

use crate::environment::Environment;
use crate::support::{Install, assert_secrets_nowhere, run_slice_logged, stored_records};
use crate::writeback_crash;
use journeyd_dynamics_emulator::Table;
use serde_json::Value;
use std::time::Duration;

const OPPORTUNITIES: usize = 60;

fn sync(install: &Install, extra: &[&str]) -> Value {
    let mut args = vec!["sync", "--connector", "dynamics"];
    args.extend_from_slice(extra);
    install.json(&args)["synced"][0].clone()
}

fn writeback(install: &Install) -> Value {
    install.json(&["writeback", "--apply", "--connector", "dynamics"])[0].clone()
}

fn count(report: &Value, what: &str) -> u64 {
    report["counts"][what].as_u64().expect("a count")
}

fn stored_deals(install: &Install) -> usize {
    stored_records(install)
        .iter()
        .filter(|(object, _, _)| object == "deal")
        .count()
}

#[test]
fn a_batch_with_one_failing_part_writes_the_others_exactly_once() {
    let env = Environment::new(OPPORTUNITIES);
    let expected = writeback_crash::prepare(&env);
    env.emulator.fail_batch_parts(1);

    let first = writeback(&env.install);

    assert_eq!(
        (count(&first, "applied"), count(&first, "failed")),
        (expected.len() as u64 - 1, 1),
        "{first}"
    );
    let tasks = env.tasks_by_key();
    assert_eq!(tasks.len(), expected.len() - 1);
    writeback(&env.install);
    writeback_crash::assert_exactly_once(&env, &expected);
    for (key, ids) in &tasks {
        assert_eq!(
            env.tasks_by_key().get(key),
            Some(ids),
            "task {key} stays as it was"
        );
    }
}

#[test]
fn dynamics_injected_faults_yield_the_same_records_as_a_clean_run() {
    let now = chrono::Utc::now();
    let clean = Environment::at(now, OPPORTUNITIES, |_| {});
    sync(&clean.install, &[]);
    let troubled = Environment::at(now, OPPORTUNITIES, |_| {});
    troubled.emulator.faults().set_error_rate(0.10);
    let synced = sync(&troubled.install, &[]);
    assert_eq!(synced["status"], "ok", "{synced}");
    // Each environment serves on its own port, which record links name.
    let without_links =
        |install: &Install| -> std::collections::BTreeSet<(String, String, String)> {
            stored_records(install)
                .into_iter()
                .map(|(object, id, snapshot)| {
                    let mut snapshot: Value = serde_json::from_str(&snapshot).expect("a snapshot");
                    snapshot.as_object_mut().expect("an object").remove("url");
                    (object, id, snapshot.to_string())
                })
                .collect()
        };
    let (clean, troubled) = (
        without_links(&clean.install),
        without_links(&troubled.install),
    );
    assert!(clean.len() > OPPORTUNITIES, "{} records", clean.len());
    let differ: Vec<_> = clean
        .symmetric_difference(&troubled)
        .map(|(object, id, _)| format!("{object} {id}"))
        .collect();
    assert!(differ.is_empty(), "records that differ: {differ:?}");
}

#[test]
fn dynamics_a_token_expiring_mid_sync_is_renewed() {
    let env = Environment::new(OPPORTUNITIES);
    env.emulator.expire_after_requests(2);
    let synced = sync(&env.install, &[]);
    assert_eq!(synced["status"], "ok", "{synced}");
    let token_calls: u64 = env
        .emulator
        .counts()
        .snapshot()
        .iter()
        .filter(|(route, _)| route.contains("oauth2/v2.0/token"))
        .map(|(_, n)| n)
        .sum();
    assert!(token_calls >= 2, "{token_calls} token requests");
}

#[test]
fn odata_filter_injection_attempts_round_trip_as_literals() {
    let env = Environment::new(OPPORTUNITIES);
    let id = env.emulator.ids(Table::Opportunity)[0].clone();
    let hostile = "Acme' or name ne 'x' or contains(name,'";
    env.emulator
        .set_field(Table::Opportunity, &id, "name", Value::from(hostile))
        .expect("the opportunity is live");
    sync(&env.install, &[]);
    env.install.run(&["audit"]);
    writeback(&env.install);
    let stored = stored_records(&env.install);
    let record = stored
        .iter()
        .find(|(object, rid, _)| object == "deal" && *rid == id)
        .expect("the opportunity was synced");
    let snapshot: Value = serde_json::from_str(&record.2).expect("a snapshot");
    assert_eq!(snapshot["name"], hostile);
    let odd = stored
        .iter()
        .filter_map(|(_, _, s)| serde_json::from_str::<Value>(s).ok())
        .any(|s| s["stage"] == "Won't Close");
    assert!(odd, "the stage label with a quote came through intact");
    for filter in env.emulator.filters() {
        assert!(
            !filter.contains(hostile),
            "a record's text reached a $filter unescaped: {filter}"
        );
    }
}

#[test]
fn a_deletion_the_change_feed_reports_resolves_its_violations() {
    let env = Environment::new(OPPORTUNITIES);
    sync(&env.install, &[]);
    env.install.run(&["audit"]);
    let (violation, deal) = first_deal_violation(&env.install);
    env.emulator
        .delete(Table::Opportunity, &deal)
        .expect("the opportunity is deleted");

    let synced = sync(&env.install, &[]);

    assert_eq!(
        (&synced["status"], &synced["deleted"]),
        (&"ok".into(), &1.into()),
        "{synced}"
    );
    env.install.run(&["audit"]);
    let shown = env.install.json(&["violations", "show", &violation]);
    assert_eq!(shown["violation"]["status"], "resolved", "{shown}");
}

#[test]
fn an_expired_delta_link_is_followed_by_a_full_pull_that_reconciles_deletions() {
    let env = Environment::new(OPPORTUNITIES);
    sync(&env.install, &[]);
    env.install.run(&["audit"]);
    let (violation, deal) = first_deal_violation(&env.install);
    let live = env.emulator.ids(Table::Opportunity).len();
    env.emulator
        .delete(Table::Opportunity, &deal)
        .expect("the opportunity is deleted");
    env.emulator.expire_delta_tokens();

    let synced = sync(&env.install, &[]);

    assert_eq!(synced["status"], "ok", "{synced}");
    assert!(synced["deleted"].as_u64() >= Some(1), "{synced}");
    assert_eq!(stored_deals(&env.install), live - 1);
    env.install.run(&["audit"]);
    let shown = env.install.json(&["violations", "show", &violation]);
    assert_eq!(shown["violation"]["status"], "resolved", "{shown}");
}

#[test]
fn the_service_protection_limit_is_waited_out() {
    let env = Environment::new(OPPORTUNITIES);
    env.emulator.update_knobs(|knobs| {
        knobs.requests_per_window = Some(3);
        knobs.window = Duration::from_secs(2);
    });
    let synced = sync(&env.install, &[]);
    assert_eq!(synced["status"], "ok", "{synced}");
    assert_eq!(
        stored_deals(&env.install),
        env.emulator.ids(Table::Opportunity).len()
    );
}

#[test]
fn no_dynamics_secret_reaches_a_log_line_or_the_state_file() {
    let env = Environment::new(OPPORTUNITIES);
    env.emulator.expire_after_requests(2);
    let logs = run_slice_logged(&env.install, "dynamics");
    assert!(
        logs.contains("token refreshed"),
        "a token renewal was logged"
    );
    assert_secrets_nowhere(&env.install, &logs, &[&env.emulator.client_secret()]);
}

/// The first open violation of a deal, and the deal's id.
fn first_deal_violation(install: &Install) -> (String, String) {
    let rows = install.json(&[
        "violations",
        "list",
        "--connector",
        "dynamics",
        "--limit",
        "1000",
    ]);
    rows.as_array()
        .expect("a list")
        .iter()
        .find(|row| row["object"] == "deal")
        .map(|row| {
            (
                row["id"].to_string(),
                row["record_id"].as_str().expect("a record id").to_owned(),
            )
        })
        .expect("a deal violation")
}
