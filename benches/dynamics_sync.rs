//! Syncs, audits and writes back to an emulated Dataverse environment of
//! 100,000 opportunities with the real `journeyd` binary, then changes 1%
//! of them and syncs again by change tracking. Prints records/s, the
//! binary's peak RSS, and the API calls of each run by route against the
//! floor Dataverse's page and batch sizes allow: ceil(N/5000) reads (plus
//! one `$batch` of task lookups per page of deals), ceil(M/1000) `$batch`
//! writes.
//!
//!     cargo bench --bench dynamics_sync
//!     JOURNEYD_BENCH_OPPORTUNITIES=20000 cargo bench --bench dynamics_sync
//!
//! The emulator runs in this process with no service protection limit, so
//! the figures are journeyd's and the emulator's own speed.

use journeyd_dynamics_emulator::{DynamicsEmulator, EmulatorConfig, SeedSizes, Table};
use std::path::Path;
use std::time::Instant;
use support::{Journeyd, delta, print_calls, report, shipped_config, size_from_env};

mod support;

const PAGE: u64 = 5000;
const BATCH: u64 = 1000;
const READ_ROUTE: &str = "GET /api/data/v9.2/opportunities";
const BATCH_ROUTE: &str = "POST /api/data/v9.2/$batch";
const SECRET_VAR: &str = "JOURNEYD_DYNAMICS_SECRET";

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
    config.knobs.requests_per_window = None;
    config.knobs.execution_ms_per_window = None;
    let emulator = DynamicsEmulator::start(config).expect("the emulator starts");
    println!(
        "emulated environment: {opportunities} opportunities seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &emulator);
    let journeyd = Journeyd::new(config, SECRET_VAR, emulator.client_secret());
    let reads = |calls: &std::collections::BTreeMap<String, u64>| {
        calls.get(READ_ROUTE).copied().unwrap_or(0)
    };

    // The seeded environment holds one opportunity more than asked: the
    // one in the custom stage whose label has a quote.
    let served = emulator.ids(Table::Opportunity).len() as u64;
    let before = emulator.counts().snapshot();
    let full = journeyd.run(&["sync", "--connector", "dynamics", "--full"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    report("full sync", served, &full);
    let pages = served.div_ceil(PAGE);
    println!(
        "  opportunity reads: {} (floor {pages}); $batch task lookups: {} (one per page: {pages})",
        reads(&calls),
        calls.get(BATCH_ROUTE).copied().unwrap_or(0)
    );
    print_calls(&calls, READ_ROUTE, pages);

    let audit = journeyd.run(&["audit"]);
    report("audit", served, &audit);

    let tasks_before = emulator.tasks().len();
    let before = emulator.counts().snapshot();
    let writeback = journeyd.run(&["writeback", "--apply", "--connector", "dynamics"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    let written = (emulator.tasks().len() - tasks_before) as u64;
    report("write-back", written, &writeback);
    print_calls(&calls, BATCH_ROUTE, written.div_ceil(BATCH));

    let changes = opportunities / 100;
    emulator.touch(Table::Opportunity, changes);
    let before = emulator.counts().snapshot();
    let incremental = journeyd.run(&["sync", "--connector", "dynamics"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    report("incremental sync", changes as u64, &incremental);
    let pages = (changes as u64).div_ceil(PAGE).max(1);
    println!(
        "  opportunity reads: {} (floor {pages}, the delta link's pages)",
        reads(&calls)
    );
    print_calls(&calls, READ_ROUTE, pages);
}

fn write_config(dir: &Path, emulator: &DynamicsEmulator) -> std::path::PathBuf {
    let mut config = shipped_config(dir);
    let base = emulator
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let dynamics = &mut config["connectors"]["dynamics"];
    dynamics["api_url"] = toml_edit::value(base.as_str());
    dynamics["authority_url"] = toml_edit::value(base.as_str());
    dynamics["tenant"] = toml_edit::value(emulator.tenant());
    dynamics["client_id"] = toml_edit::value(emulator.client_id());
    let mut secret = toml_edit::InlineTable::new();
    secret.insert("env", SECRET_VAR.into());
    dynamics["secret"] = toml_edit::value(secret);
    dynamics["objects"] = toml_edit::value(toml_edit::Array::from_iter(["deal"]));
    dynamics["limits"]["requests"] = toml_edit::value(1_000_000);
    config["writeback"]["mode"] = toml_edit::value("apply");
    config["writeback"]["max_writes_per_run"] = toml_edit::value(1_000_000);
    let path = dir.join("journeyd.toml");
    std::fs::write(&path, config.to_string()).expect("the bench config is written");
    path
}
