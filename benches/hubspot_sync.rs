//! Syncs and audits an emulated HubSpot portal of 100,000 deals with the
//! real `journeyd` binary, then changes 1% of the deals and syncs again.
//! Prints records/s, the binary's peak RSS and CPU time, and the API calls
//! of each run by route against the floor HubSpot's page and batch sizes
//! allow.
//!
//!     cargo bench --bench hubspot_sync
//!     JOURNEYD_BENCH_DEALS=20000 cargo bench --bench hubspot_sync
//!
//! The emulator runs in this process with its rate limits lifted (and the
//! client's raised to match), so the figures are journeyd's and the
//! emulator's own speed, not HubSpot's 100 requests per 10 s.

use journeyd_hubspot_emulator::{
    EmulatorConfig, HubspotEmulator, ObjectType, RateLimitKnobs, SeedSizes,
};
use std::path::Path;
use std::time::Instant;
use support::{Journeyd, delta, print_calls, report, shipped_config, size_from_env};

mod support;

const LIST_PAGE: u64 = 100;
const SEARCH_PAGE: u64 = 200;
const ASSOCIATIONS_ROUTE: &str =
    "POST /crm/v4/associations/{from_object_type}/{to_object_type}/batch/read";
/// Deals' associations read through v4: companies, contacts, tasks.
const ASSOCIATION_TYPES: u64 = 3;
/// Inputs per v4 association batch read (fact 6.14).
const ASSOCIATION_BATCH: u64 = 1000;

fn main() {
    let deals = size_from_env("JOURNEYD_BENCH_DEALS");
    let started = Instant::now();
    let mut config = EmulatorConfig {
        now: chrono::Utc::now(),
        sizes: SeedSizes {
            contacts: deals / 10,
            companies: deals / 20,
            ..SeedSizes::for_deals(deals)
        },
        ..EmulatorConfig::default()
    };
    config.knobs.limits = RateLimitKnobs::unlimited();
    // Search shows each change at once: with the index's lag (1 s by
    // default) the incremental sync, run right after the changes, would
    // find none of them and measure nothing.
    config.knobs.search_lag = std::time::Duration::ZERO;
    let emulator = HubspotEmulator::start(config).expect("the emulator starts");
    println!(
        "emulated portal: {deals} deals seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &emulator);
    let journeyd = Journeyd::new(
        config,
        "JOURNEYD_HUBSPOT_TOKEN",
        emulator.private_app_token(),
    );

    let before = emulator.counts().snapshot();
    let full = journeyd.run(&["sync", "--connector", "hubspot", "--full"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    report("full sync", deals as u64, &full);
    let list_floor = (deals as u64).div_ceil(LIST_PAGE);
    print_calls(&calls, "GET /crm/v3/objects/{object_type}", list_floor);

    let audit = journeyd.run(&["audit"]);
    report("audit", deals as u64, &audit);

    let changes = deals / 100;
    emulator.touch(ObjectType::Deals, changes);
    let before = emulator.counts().snapshot();
    let (incremental, synced) = journeyd.run_json(&["sync", "--connector", "hubspot"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    report("incremental sync", changes as u64, &incremental);
    // The changed deals, and those the overlap window re-reads.
    let read: u64 = ["records_new", "records_changed", "records_unchanged"]
        .iter()
        .map(|key| synced["synced"][0][key].as_u64().unwrap_or(0))
        .sum();
    let search_floor = (changes as u64).div_ceil(SEARCH_PAGE);
    print_calls(
        &calls,
        "POST /crm/v3/objects/{object_type}/search",
        search_floor,
    );
    // Search results carry no associations: each changed deal's are read
    // through v4, up to 1,000 deals per call and association type.
    println!(
        "  v4 association reads: {} (floor {}: one per association type per {ASSOCIATION_BATCH} of the {read} deals read: {changes} changed, the rest re-read in the overlap window)",
        calls.get(ASSOCIATIONS_ROUTE).copied().unwrap_or(0),
        ASSOCIATION_TYPES * read.div_ceil(ASSOCIATION_BATCH)
    );
}

fn write_config(dir: &Path, emulator: &HubspotEmulator) -> std::path::PathBuf {
    let mut config = shipped_config(dir);
    let hubspot = &mut config["connectors"]["hubspot"];
    hubspot["api_url"] = toml_edit::value(emulator.base_url().as_str().trim_end_matches('/'));
    // The shipped config reads the token from a systemd credential.
    let mut secret = toml_edit::InlineTable::new();
    secret.insert("env", "JOURNEYD_HUBSPOT_TOKEN".into());
    hubspot["secret"] = toml_edit::value(secret);
    hubspot["objects"] = toml_edit::value(toml_edit::Array::from_iter(["deal"]));
    hubspot["limits"]["requests"] = toml_edit::value(1_000_000);
    hubspot["limits"]["search_per_second"] = toml_edit::value(100_000);
    let path = dir.join("journeyd.toml");
    std::fs::write(&path, config.to_string()).expect("the bench config is written");
    path
}
