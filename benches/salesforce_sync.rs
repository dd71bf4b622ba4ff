//! Syncs, audits and writes back to an emulated Salesforce org of 100,000
//! opportunities with the real `journeyd` binary, then changes 1% of them
//! and syncs again. Prints records/s, the binary's peak RSS, and the API
//! calls of each run by route against the floor Salesforce's page and
//! batch sizes allow: ceil(N/2000) query pages (ceil((N + C)/2000) with
//! the C stage-history and task rows nested in the deals, since child rows
//! count toward a page), ceil(M/200) collection writes.
//!
//!     cargo bench --bench salesforce_sync
//!     JOURNEYD_BENCH_OPPORTUNITIES=20000 cargo bench --bench salesforce_sync
//!
//! The emulator runs in this process with no daily allowance, so the
//! figures are journeyd's and the emulator's own speed.

use journeyd_salesforce_emulator::{
    EmulatorConfig, SObject, SalesforceEmulator, SeedSizes, TEST_JWT_PRIVATE_KEY_PEM,
};
use std::path::Path;
use std::time::Instant;
use support::{Journeyd, delta, print_calls, report, shipped_config, size_from_env};

mod support;

const QUERY_PAGE: u64 = 2000;
const COLLECTION: u64 = 200;
const QUERY_ROUTE: &str = "GET /services/data/{version}/query";
const MORE_ROUTE: &str = "GET /services/data/{version}/query/{locator}";
const WRITE_ROUTE: &str = "POST /services/data/{version}/composite/sobjects";

fn main() {
    let opportunities = size_from_env("JOURNEYD_BENCH_OPPORTUNITIES");
    let started = Instant::now();
    let mut config = EmulatorConfig {
        now: chrono::Utc::now(),
        sizes: SeedSizes {
            contacts: opportunities / 10,
            leads: opportunities / 10,
            ..SeedSizes::for_opportunities(opportunities)
        },
        ..EmulatorConfig::default()
    };
    config.knobs.daily_limit = None;
    let emulator = SalesforceEmulator::start(config).expect("the emulator starts");
    println!(
        "emulated org: {opportunities} opportunities seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &emulator);
    let journeyd = Journeyd::new(config, "JOURNEYD_SALESFORCE_KEY", TEST_JWT_PRIVATE_KEY_PEM);
    let pages = |calls: &std::collections::BTreeMap<String, u64>| {
        calls.get(QUERY_ROUTE).copied().unwrap_or(0) + calls.get(MORE_ROUTE).copied().unwrap_or(0)
    };

    // A deal's stage history and tasks come nested in its row, and child
    // rows count toward a page's 2,000 (facts 1.3).
    let child_rows = emulator.ids(SObject::OpportunityHistory).len()
        + emulator
            .tasks()
            .iter()
            .filter(|task| {
                task.fields
                    .get("WhatId")
                    .and_then(|id| id.as_str())
                    .is_some_and(|id| id.starts_with("006"))
            })
            .count();
    let before = emulator.counts().snapshot();
    let full = journeyd.run(&["sync", "--connector", "salesforce", "--full"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    report("full sync", opportunities as u64, &full);
    println!(
        "  query pages: {} (floor for the opportunities alone {}, with their {child_rows} child rows {})",
        pages(&calls),
        (opportunities as u64).div_ceil(QUERY_PAGE),
        ((opportunities + child_rows) as u64).div_ceil(QUERY_PAGE)
    );
    print_calls(&calls, MORE_ROUTE, 0);

    let audit = journeyd.run(&["audit"]);
    report("audit", opportunities as u64, &audit);

    let tasks_before = emulator.tasks().len();
    let before = emulator.counts().snapshot();
    let writeback = journeyd.run(&["writeback", "--apply", "--connector", "salesforce"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    let written = (emulator.tasks().len() - tasks_before) as u64;
    report("write-back", written, &writeback);
    print_calls(&calls, WRITE_ROUTE, written.div_ceil(COLLECTION));

    let changes = opportunities / 100;
    emulator.touch(SObject::Opportunity, changes);
    let before = emulator.counts().snapshot();
    let incremental = journeyd.run(&["sync", "--connector", "salesforce"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    report("incremental sync", changes as u64, &incremental);
    println!(
        "  query pages: {} (floor {})",
        pages(&calls),
        (changes as u64).div_ceil(QUERY_PAGE)
    );
    print_calls(&calls, MORE_ROUTE, 0);
}

fn write_config(dir: &Path, emulator: &SalesforceEmulator) -> std::path::PathBuf {
    let mut config = shipped_config(dir);
    let salesforce = &mut config["connectors"]["salesforce"];
    salesforce["login_url"] = toml_edit::value(emulator.base_url().as_str().trim_end_matches('/'));
    salesforce["client_id"] = toml_edit::value(emulator.client_id());
    salesforce["username"] = toml_edit::value(emulator.username());
    let mut secret = toml_edit::InlineTable::new();
    secret.insert("env", "JOURNEYD_SALESFORCE_KEY".into());
    salesforce["secret"] = toml_edit::value(secret);
    salesforce["objects"] = toml_edit::value(toml_edit::Array::from_iter(["deal"]));
    salesforce["limits"]["requests"] = toml_edit::value(100_000);
    config["writeback"]["mode"] = toml_edit::value("apply");
    config["writeback"]["max_writes_per_run"] = toml_edit::value(1_000_000);
    let path = dir.join("journeyd.toml");
    std::fs::write(&path, config.to_string()).expect("the bench config is written");
    path
}
