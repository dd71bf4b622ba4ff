//! The Salesforce slice end to end: the real binary syncs an emulated org
//! over loopback HTTP (JWT bearer auth, SOQL paging), audits it, and writes
//! corrective tasks back through sObject Collections, once.

use crate::org::Org;
use crate::support::{Install, assert_secrets_nowhere, run_slice_logged, stored_records};
use journeyd_salesforce_emulator::{SObject, TEST_JWT_PRIVATE_KEY_PEM};
use serde_json::Value;

const OPPORTUNITIES: usize = 60;

fn sync(install: &Install, extra: &[&str]) -> Value {
    let mut args = vec!["sync", "--connector", "salesforce"];
    args.extend_from_slice(extra);
    install.json(&args)["synced"][0].clone()
}

/// The org's stored records, with the org's own address (in each record's
/// link) written `ORG`: two orgs listen on two ports.
fn own_records(org: &Org) -> std::collections::BTreeSet<(String, String, String)> {
    let base = org
        .emulator
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    stored_records(&org.install)
        .into_iter()
        .map(|(object, id, snapshot)| (object, id, snapshot.replace(&base, "ORG")))
        .collect()
}

#[test]
fn salesforce_injected_faults_yield_the_same_records_as_a_clean_run() {
    let now = chrono::Utc::now();
    let clean = Org::at(now, OPPORTUNITIES, |_| {});
    sync(&clean.install, &[]);
    let troubled = Org::at(now, OPPORTUNITIES, |_| {});
    troubled.emulator.faults().set_error_rate(0.10);
    let synced = sync(&troubled.install, &[]);
    assert_eq!(synced["status"], "ok", "{synced}");
    let (clean, troubled) = (own_records(&clean), own_records(&troubled));
    let differ: Vec<_> = clean
        .symmetric_difference(&troubled)
        .map(|(object, id, _)| format!("{object} {id}"))
        .collect();
    assert!(differ.is_empty(), "records that differ: {differ:?}");
}

#[test]
fn salesforce_a_token_expiring_mid_sync_is_renewed() {
    let org = Org::new(OPPORTUNITIES);
    org.emulator.expire_after_requests(2);
    let synced = sync(&org.install, &[]);
    assert_eq!(synced["status"], "ok", "{synced}");
    let token_calls = org.emulator.counts().get("POST /services/oauth2/token");
    assert!(token_calls >= 2, "{token_calls} token requests");
}

#[test]
fn quotes_and_backslashes_in_stage_names_and_fields_round_trip_as_literals() {
    let org = Org::new(OPPORTUNITIES);
    let id = org.emulator.ids(SObject::Opportunity)[0].clone();
    let hostile = "Acme' OR Name != '\\' -- \"quoted\"";
    org.emulator
        .set_field(SObject::Opportunity, &id, "Name", Value::from(hostile))
        .expect("the opportunity is live");
    sync(&org.install, &[]);
    let stored = stored_records(&org.install);
    let record = stored
        .iter()
        .find(|(object, rid, _)| object == "deal" && rid.starts_with(&id[..15]))
        .expect("the opportunity was synced");
    let snapshot: Value = serde_json::from_str(&record.2).expect("a snapshot");
    assert_eq!(snapshot["name"], hostile);
    let odd = stored
        .iter()
        .filter_map(|(_, _, s)| serde_json::from_str::<Value>(s).ok())
        .any(|s| s["stage"] == "Won't Close \\ Parked");
    assert!(
        odd,
        "the stage with a quote and a backslash came through intact"
    );
}

#[test]
fn the_daily_allowance_stop_leaves_the_sync_resumable() {
    let org = Org::new(OPPORTUNITIES);
    // A first sync takes 7 queries; 80% of 5 stops it after 4.
    org.emulator.set_daily_limit(5);
    let stopped = sync(&org.install, &[]);
    assert_ne!(stopped["status"], "ok", "{stopped}");
    org.emulator.reset_usage();
    org.emulator.set_daily_limit(100_000);
    let resumed = sync(&org.install, &[]);
    assert_eq!(resumed["status"], "ok", "{resumed}");
    let deals = stored_records(&org.install)
        .iter()
        .filter(|(object, _, _)| object == "deal")
        .count();
    assert_eq!(deals, org.emulator.ids(SObject::Opportunity).len());
}

#[test]
fn deleted_opportunities_are_resolved_out_of_the_violations_log_from_the_bin_or_by_absence() {
    let org = Org::new(OPPORTUNITIES);
    sync(&org.install, &[]);
    org.install.run(&["audit"]);
    let rows = org.install.json(&[
        "violations",
        "list",
        "--connector",
        "salesforce",
        "--limit",
        "1000",
    ]);
    let mut deals: Vec<(String, String)> = Vec::new();
    for row in rows.as_array().expect("a list").iter() {
        let id = row["record_id"].as_str().expect("a record id").to_owned();
        if row["object"] == "deal" && !deals.iter().any(|(_, seen)| *seen == id) {
            deals.push((row["id"].to_string(), id));
        }
    }
    let [recycled, emptied, erased] = [&deals[0], &deals[1], &deals[2]];
    for (_, id) in [recycled, emptied, erased] {
        org.emulator
            .delete(SObject::Opportunity, id)
            .expect("the opportunity is deleted");
    }
    // Emptied from the bin, and erased as if deleted longer ago than
    // getDeleted's window: only the full pull's sweep can tell they are gone.
    org.emulator
        .empty_from_recycle_bin(SObject::Opportunity, &emptied.1)
        .expect("in the bin");
    org.emulator
        .erase(SObject::Opportunity, &erased.1)
        .expect("known");

    let synced = sync(&org.install, &["--full"]);
    assert_eq!(synced["status"], "ok", "{synced}");
    assert_eq!(synced["deleted"], 3, "{synced}");
    org.install.run(&["audit"]);
    for (violation, _) in [recycled, emptied, erased] {
        let shown = org.install.json(&["violations", "show", violation]);
        assert_eq!(shown["violation"]["status"], "resolved", "{shown}");
    }
}

#[test]
fn no_salesforce_secret_reaches_a_log_line_or_the_state_file() {
    let org = Org::new(OPPORTUNITIES);
    org.emulator.expire_after_requests(2);
    let logs = run_slice_logged(&org.install, "salesforce");
    assert!(
        logs.contains("token refreshed"),
        "a token renewal was logged"
    );
    let key_body: String = TEST_JWT_PRIVATE_KEY_PEM
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .take(2)
        .collect();
    assert_secrets_nowhere(
        &org.install,
        &logs,
        &[&key_body, &org.emulator.client_secret()],
    );
}

/// An org of 500 opportunities (and as many leads) read 200 rows a page.
fn paged_org() -> Org {
    Org::at(chrono::Utc::now(), 500, |config| {
        config["connectors"]["salesforce"]["paging"]["query_batch"] = toml_edit::value(200);
    })
}

/// Lets a sync of `org` read the owners and two pages of leads, then stops
/// it at the daily allowance with the third page's locator saved, and
/// expires every locator.
fn stop_with_a_saved_locator_then_expire_it(org: &Org) {
    org.emulator.reset_usage();
    org.emulator.set_daily_limit(3);
    let stopped = sync(&org.install, &[]);
    assert_eq!(stopped["status"], "partial", "{stopped}");
    org.emulator.reset_usage();
    org.emulator.set_daily_limit(100_000);
    assert!(org.emulator.expire_query_locators() > 0);
}

/// Syncs `org`; expects it to finish `ok` with every lead stored, and
/// returns the WARN line that says how the pull was restarted.
fn sync_restarting(org: &Org, restart: &str) -> String {
    let output = org
        .install
        .command(&["--json", "sync", "--connector", "salesforce"])
        .output()
        .expect("journeyd runs");
    let logs = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_slice(&output.stdout).expect("a json summary");
    assert!(output.status.success(), "{summary}\n{logs}");
    assert_eq!(summary["synced"][0]["status"], "ok", "{summary}");
    let leads = stored_records(&org.install)
        .iter()
        .filter(|(object, _, _)| object == "lead")
        .count();
    assert_eq!(leads, org.emulator.ids(SObject::Lead).len());
    logs.lines()
        .find(|line| line.contains(restart))
        .unwrap_or_else(|| panic!("no {restart:?} in the log:\n{logs}"))
        .to_owned()
}

#[test]
fn a_saved_query_locator_salesforce_expired_restarts_the_pull_from_the_watermark() {
    let org = paged_org();
    sync(&org.install, &[]);
    org.emulator.touch(SObject::Lead, 500);
    stop_with_a_saved_locator_then_expire_it(&org);

    let restarted = sync_restarting(&org, "restarting the pull from its watermark");

    assert!(
        restarted.contains("INVALID_QUERY_LOCATOR") && restarted.contains("lead"),
        "{restarted}"
    );
}

#[test]
fn an_expired_query_locator_of_a_first_full_pull_restarts_it_from_the_start() {
    let org = paged_org();
    stop_with_a_saved_locator_then_expire_it(&org);

    let restarted = sync_restarting(&org, "restarting the full pull from the start");

    assert!(
        restarted.contains("INVALID_QUERY_LOCATOR") && restarted.contains("lead"),
        "{restarted}"
    );
}
