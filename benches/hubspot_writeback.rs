//! What writing about 1,000 corrective tasks into HubSpot costs journeyd:
//! an emulated portal is synced and audited with the real binary, then
//! `writeback --apply` alone is measured: its CPU time (user + system), its
//! peak RSS, its wall time, and its API calls by route. Each figure is
//! printed beside the reference, a plain script creating the same tasks
//! with HubSpot's SDK, and every planned task must land exactly once.
//!
//!     cargo bench --bench hubspot_writeback
//!     JOURNEYD_BENCH_TASKS=5000 cargo bench --bench hubspot_writeback
//!
//! The portal's size follows from the tasks wanted: about
//! [`TASKS_PER_DEAL`] of the seeded deals need a task after an audit
//! (`JOURNEYD_BENCH_DEALS` sets the deals instead). The emulator runs in
//! this process with its rate limits lifted (and the client's raised to
//! match), and its search index lags writes by a moment only: this is
//! about cost, not about HubSpot's 100 requests per 10 s or recovery.

use journeyd_hubspot_emulator::{EmulatorConfig, HubspotEmulator, ObjectType, RateLimitKnobs};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Journeyd, count_from_env, delta, print_calls, shipped_config};

mod support;

/// Deals of the seeded portal needing a task after an audit of the shipped
/// journey (819 of 2,000 when measured): 1,000 tasks want about 2,440 deals.
const TASKS_PER_DEAL: f64 = 0.41;
/// Actions per batch create (the connector's default `batch_limit`).
const BATCH: u64 = 100;
const CREATE_ROUTE: &str = "POST /crm/v3/objects/{object_type}/batch/create";
const TOKEN_VAR: &str = "JOURNEYD_HUBSPOT_TOKEN";

/// 1,000 tasks written by a plain script with HubSpot's SDK, on this
/// machine.
const REFERENCE_TASKS: usize = 1_000;
const REFERENCE: &str = "a plain script using the vendor's SDK";
const REFERENCE_CPU_S: (f64, f64) = (0.35, 0.55);
const REFERENCE_RSS_MB: (f64, f64) = (31.0, 47.0);

fn main() {
    let wanted = count_from_env("JOURNEYD_BENCH_TASKS", 1_000);
    let deals = count_from_env(
        "JOURNEYD_BENCH_DEALS",
        (wanted as f64 / TASKS_PER_DEAL).round() as usize,
    );
    let started = Instant::now();
    let mut config = EmulatorConfig {
        now: chrono::Utc::now(),
        ..EmulatorConfig::with_deals(deals)
    };
    config.knobs.limits = RateLimitKnobs::unlimited();
    config.knobs.search_lag = Duration::from_millis(200);
    let emulator = HubspotEmulator::start(config).expect("the emulator starts");
    println!(
        "emulated portal: {deals} deals seeded in {:.1} s; {} cores",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let journeyd = Journeyd::new(
        write_config(dir.path(), &emulator),
        TOKEN_VAR,
        emulator.private_app_token(),
    );
    journeyd.run(&["sync", "--connector", "hubspot", "--full"]);
    journeyd.run(&["audit"]);

    let (dry, plan) = journeyd.run_json(&["writeback", "--connector", "hubspot"]);
    let planned = planned_tasks(&plan[0]);
    assert!(!planned.is_empty(), "the audit calls for tasks: {plan:#}");
    println!(
        "audit of {deals} deals: {} tasks planned ({wanted} wanted)",
        planned.len()
    );
    println!(
        "  the dry run (planning alone, no CRM call): CPU {:.2} s, peak RSS {:.1} MB, wall {:.2} s",
        dry.cpu.total().as_secs_f64(),
        dry.max_rss_kib as f64 / 1024.0,
        dry.elapsed.as_secs_f64()
    );

    let before = emulator.counts().snapshot();
    let (run, report) =
        journeyd.run_json_profiled(&["writeback", "--apply", "--connector", "hubspot"]);
    let calls = delta(&before, &emulator.counts().snapshot());
    let counts = &report[0]["counts"];
    assert_eq!(report[0]["status"], "ok", "{:#}", report[0]["counts"]);
    assert_eq!(count(counts, "applied"), planned.len() as u64, "{counts:#}");
    for unwanted in ["failed", "parked", "unknown", "skipped_by_cap", "resent"] {
        assert_eq!(count(counts, unwanted), 0, "{unwanted}: {counts:#}");
    }
    let landed = landed_once(&emulator, &planned);

    let cpu = run.cpu.total().as_secs_f64();
    let rss = run.max_rss_kib as f64 / 1024.0;
    // Within a tenth of the reference's size the figures compare.
    let comparable = landed.abs_diff(REFERENCE_TASKS) <= REFERENCE_TASKS / 10;
    let verdict = |figure: f64, top: f64| match (comparable, figure > top) {
        (false, _) => "  (the reference is for 1,000 tasks)",
        (true, true) => "  (over)",
        (true, false) => "",
    };
    println!("write-back --apply: {landed} tasks, each landed once on its deal");
    println!("  {:<10} {:>10}   {REFERENCE}", "", "journeyd");
    println!(
        "  {:<10} {:>8.2} s   {:.2}–{:.2} s CPU{}",
        "CPU",
        cpu,
        REFERENCE_CPU_S.0,
        REFERENCE_CPU_S.1,
        verdict(cpu, REFERENCE_CPU_S.1)
    );
    println!(
        "  {:<10} {:>7.1} MB   {:.0}–{:.0} MB RSS{}",
        "peak RSS",
        rss,
        REFERENCE_RSS_MB.0,
        REFERENCE_RSS_MB.1,
        verdict(rss, REFERENCE_RSS_MB.1)
    );
    println!(
        "  {:<10} {:>8.2} s   (CPU: user {:.2} s, system {:.2} s; journeyd's own timing {} ms)",
        "wall",
        run.elapsed.as_secs_f64(),
        run.cpu.user.as_secs_f64(),
        run.cpu.system.as_secs_f64(),
        report[0]["ms"]
    );
    print_calls(&calls, CREATE_ROUTE, (landed as u64).div_ceil(BATCH));
}

fn count(counts: &Value, name: &str) -> u64 {
    counts[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {name}: {counts:#}"))
}

/// The dry run's task creates: action key -> the deal it is for. Asserts
/// the plan holds nothing else, so that the run measured writes tasks only.
fn planned_tasks(report: &Value) -> BTreeMap<String, String> {
    let writes = report["plan"]["writes"]
        .as_array()
        .expect("a plan with writes");
    let mut tasks = BTreeMap::new();
    for write in writes {
        let request = &write["request"];
        assert_eq!(request["kind"], "create_task", "{write:#}");
        assert_eq!(request["object"], "deal", "{write:#}");
        let key = request["key"].as_str().expect("a key").to_owned();
        let deal = request["record_id"].as_str().expect("a record").to_owned();
        assert!(tasks.insert(key, deal).is_none(), "one write per key");
    }
    assert_eq!(count(&report["counts"], "skipped_by_cap"), 0);
    tasks
}

/// Asserts that the portal holds exactly one task for each planned key,
/// associated with its deal, and no other task of journeyd's; returns how
/// many there are.
fn landed_once(emulator: &HubspotEmulator, planned: &BTreeMap<String, String>) -> usize {
    let mut by_key: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for task in emulator.tasks() {
        let body = task
            .properties
            .get("hs_task_body")
            .map_or("", String::as_str);
        if let Some(key) = body
            .lines()
            .find_map(|line| line.strip_prefix("journeyd-action: "))
        {
            let deals = task
                .associations
                .get(&ObjectType::Deals)
                .cloned()
                .unwrap_or_default();
            by_key
                .entry(key.trim().to_owned())
                .or_default()
                .push((task.id, deals));
        }
    }
    let keys: BTreeSet<&String> = by_key.keys().collect();
    let wanted: BTreeSet<&String> = planned.keys().collect();
    assert_eq!(keys, wanted, "the portal's journeyd tasks are the plan's");
    for (key, tasks) in &by_key {
        assert_eq!(tasks.len(), 1, "task {key} landed {} times", tasks.len());
        let (id, deals) = &tasks[0];
        assert_eq!(
            deals,
            &vec![planned[key].clone()],
            "task {id} ({key}) is on its deal"
        );
    }
    by_key.len()
}

fn write_config(dir: &Path, emulator: &HubspotEmulator) -> std::path::PathBuf {
    let mut config = shipped_config(dir);
    let hubspot = &mut config["connectors"]["hubspot"];
    hubspot["api_url"] = toml_edit::value(emulator.base_url().as_str().trim_end_matches('/'));
    // The shipped config reads the token from a systemd credential.
    let mut secret = toml_edit::InlineTable::new();
    secret.insert("env", TOKEN_VAR.into());
    hubspot["secret"] = toml_edit::value(secret);
    hubspot["objects"] = toml_edit::value(toml_edit::Array::from_iter(["deal"]));
    hubspot["limits"]["requests"] = toml_edit::value(1_000_000);
    hubspot["limits"]["search_per_second"] = toml_edit::value(100_000);
    // At least the emulator's lag, as it must be; small, as cost is the point.
    hubspot["search_lag_seconds"] = toml_edit::value(1);
    config["writeback"]["mode"] = toml_edit::value("apply");
    config["writeback"]["max_writes_per_run"] = toml_edit::value(1_000_000);
    let path = dir.join("journeyd.toml");
    std::fs::write(&path, config.to_string()).expect("the bench config is written");
    path
}
