//! The scale benchmark: a synthetic CRM of a million records over the three
//! connectors of the shipped config, audited once, re-audited the next night
//! with 1% of its records changed, and then read by the real `journeyd`
//! commands an admin runs in the morning. One table at the end puts every
//! figure beside its target, with a pass or MISS mark.
//!
//!     cargo bench --bench audit                                   # 1,000,000 records
//!     JOURNEYD_BENCH_RECORDS=200000 cargo bench --bench audit     # the quick size: run it on every change
//!     JOURNEYD_BENCH_BASELINE_MB=1450 cargo bench --bench audit   # the state file beside a baseline size
//!     JOURNEYD_BENCH_COMMANDS=0 cargo bench --bench audit         # the audits only, not the commands
//!     JOURNEYD_BENCH_KEEP=/some/dir cargo bench --bench audit     # state file and config kept there
//!     JOURNEYD_BENCH_CONSOLE_STATE=/some/dir cargo bench --bench audit  # only the console, over a kept state file
//!
//! The records are split 40/35/25 between the config's HubSpot, Salesforce
//! and Dynamics 365 connectors, each shaped the way that connector stores
//! them: its object kinds, its stage values and field names from the
//! shipped config, its ids, links,
//! owners and field values. They are
//! deterministic (seeded `fastrand`, one seed per record), and their dates
//! are relative to the bench's start, since the commands read the real
//! clock. With the shipped journey they give about 2.7 violations per record.
//!
//! What it measures, in order:
//! - load: owners and records stored through `Store::upsert_records` in
//!   batches of 5,000 (timed apart; no target);
//! - first audit and nightly re-audit (`audit::run_at`, in this process, the
//!   re-audit a day later after 1% of the records, spread over the set,
//!   changed in ways the rules see: stages moved, owners set or cleared,
//!   fields filled): wall time and the audit's own peak RSS (what the bench
//!   freed is trimmed and the peak reset with Linux `clear_refs` just
//!   before each), with the audit's counts of new, reopened, still failing
//!   and resolved violations;
//! - a check of the nightly audit, which judges only what changed: a full
//!   audit at the same time, which must find nothing new, reopened or
//!   resolved;
//! - the commands, each the real binary run as a child process against the
//!   state file: a third `journeyd audit` (nothing changed since the
//!   nightly one, so held to its target), `violations list` (table and
//!   `--json`), `report`, `violations export` as CSV and as JSON, and the
//!   write-back dry run (table and `--json`), which judges only the records
//!   changed since the plan a dry run made after the first audit (timed
//!   too, with no target): wall time and the child's
//!   peak RSS from `wait4`, through a small spawner (see [`spawner`]).
//!   Their output goes to files in the temporary directory. A command that
//!   fails is reported with its stderr, and the others still run;
//! - the web console (see [`console_pages`]): the violations page's p95
//!   over its first pages under several filters and the pages after them,
//!   and every page's weight;
//! - the state file's size, beside `JOURNEYD_BENCH_BASELINE_MB` when set.
//!
//! Time targets are the audit's targets for 1,000,000 records, scaled linearly
//! to the size run; every peak RSS target stays 150 MB.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use journeyd::audit::Depth;
use journeyd::config::{self, Config, Connection, ConnectorConfig};
use journeyd::store::{Store, ViolationFilter};
use journeyd_connector::{
    Associations, CrmRecord, ObjectKind, Owner, OwnerId, RecordId, StageChange, System, TaskRef,
    TaskStatus,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::Instant;
use support::{count_from_env, shipped_config};

#[allow(
    dead_code,
    reason = "this bench measures its commands itself: it needs only the size and config helpers"
)]
mod support;

mod console_pages;

/// The violations page's p95 target, and every page's weight target.
const PAGE_P95_MS: f64 = 50.0;
const PAGE_KB: f64 = 150.0;

/// Records per `upsert_records` call.
const BATCH: usize = 5000;
/// Owners per connector.
const OWNERS: usize = 60;
/// Of every 20 records, how many each CRM gets: 40/35/25.
const SHARES: [(System, usize); 3] = [
    (System::Hubspot, 8),
    (System::Salesforce, 7),
    (System::Dynamics, 5),
];
const _: () = assert!(SHARES[0].1 + SHARES[1].1 + SHARES[2].1 == 20);
/// One record in this many changes before the nightly re-audit.
const CHANGED_EVERY: usize = 100;

/// The size the targets are for.
const TARGET_RECORDS: usize = 1_000_000;
const FIRST_AUDIT_SECONDS: f64 = 20.0;
const NIGHTLY_AUDIT_SECONDS: f64 = 10.0;
const WRITEBACK_PLAN_SECONDS: f64 = 1.0;
const PEAK_RSS_MB: f64 = 150.0;

/// The first argument that makes this binary the spawner of one command
/// (see [`spawner`]) instead of the benchmark.
const SPAWNER: &str = "--spawn-measured";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|arg| arg == SPAWNER) {
        return spawner(&args[2..]);
    }
    if let Some(kept) = std::env::var_os("JOURNEYD_BENCH_CONSOLE_STATE") {
        let kept = PathBuf::from(kept);
        let mut table = Table::new(TARGET_RECORDS);
        console_step(
            &kept.join("journeyd.toml"),
            &kept.join("bench.sqlite"),
            &mut table,
        );
        table.print(std::thread::available_parallelism().map_or(0, usize::from));
        return ExitCode::SUCCESS;
    }
    let records = count_from_env("JOURNEYD_BENCH_RECORDS", TARGET_RECORDS);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        config::load(&repo.join("config/journeyd.toml")).expect("the shipped config loads");
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Kept for a profiler's second look at the commands.
    let dir_path = match std::env::var_os("JOURNEYD_BENCH_KEEP") {
        Some(keep) => PathBuf::from(keep),
        None => dir.path().to_owned(),
    };
    // The config the commands run with: the shipped one, its state file the
    // bench's (`support::shipped_config` names it `bench.sqlite`).
    std::fs::create_dir_all(&dir_path).expect("the bench's directory is made");
    let config_path = dir_path.join("journeyd.toml");
    std::fs::write(&config_path, shipped_config(&dir_path).to_string())
        .expect("the bench's config is written");
    let path = dir_path.join("bench.sqlite");
    // The first audit runs "yesterday" and the nightly one now, so that the
    // commands, which read the clock, come right after the nightly audit.
    let now = (Utc::now() - Duration::days(1)).trunc_subsecs(0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut table = Table::new(records);

    let synths: Vec<Synth<'_>> = SHARES
        .iter()
        .map(|(system, share)| Synth::new(&config, *system, *share, now))
        .collect();
    let split: Vec<String> = synths
        .iter()
        .enumerate()
        .map(|(k, synth)| format!("{} {}", synth.connector.name, per_crm(records, k)))
        .collect();
    println!(
        "journeyd scale benchmark: {records} records ({}) on {cores} cores",
        split.join(", ")
    );

    let mut batches = Batches::new(&synths);
    let load = load(&path, &synths, &mut batches, records, now);
    table.row("load (upsert_records)", seconds(load), None);

    let first = audit(&path, &config, Depth::Changed, now, "first audit");
    table.audit("first audit", &first, FIRST_AUDIT_SECONDS);
    print_violations_per_record(&path, &synths, records, &first);

    let runner = Runner {
        config: config_path,
        dir: dir_path.clone(),
    };
    let commands = std::env::var("JOURNEYD_BENCH_COMMANDS").as_deref() != Ok("0");
    if commands {
        // The plan an admin's first dry run makes: every record judged. The
        // planner keeps what it found, and the dry runs after the nightly
        // audit judge only the records changed since.
        let args = ["writeback".to_owned()];
        run_step(
            &runner,
            &mut table,
            "first write-back plan (every record)",
            &args,
            None,
        );
    }

    change_a_day(
        &path,
        &synths,
        &mut batches,
        records,
        now + Duration::hours(12),
    );
    let nightly = audit(
        &path,
        &config,
        Depth::Changed,
        now + Duration::days(1),
        "nightly audit",
    );
    table.audit(
        "nightly re-audit (1% changed)",
        &nightly,
        NIGHTLY_AUDIT_SECONDS,
    );
    // The nightly audit judged only what changed: a full one at the same
    // time must find nothing it missed.
    let check = audit(
        &path,
        &config,
        Depth::Full,
        now + Duration::days(1),
        "full audit at the nightly's time (a check)",
    );
    let c = &check.summary;
    table.row(
        "full audit after it: new/reopened/resolved",
        format!(
            "{}/{}/{}",
            c.chunks.new, c.chunks.reopened, c.finish.resolved
        ),
        Some((
            "0/0/0: the nightly missed nothing".to_owned(),
            Some(c.chunks.new == 0 && c.chunks.reopened == 0 && c.finish.resolved == 0),
        )),
    );
    match Store::open_read_only(&path)
        .and_then(|store| store.count_violations(&ViolationFilter::default()))
    {
        Ok(rows) => println!("  violation rows in the log: {rows}"),
        Err(error) => println!("  violation rows in the log: could not count: {error}"),
    }

    if commands {
        run_commands(&runner, &mut table);
        console_step(&runner.config, &path, &mut table);
    } else {
        println!("commands skipped (JOURNEYD_BENCH_COMMANDS=0)");
    }

    let size_mb = std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6);
    let baseline = std::env::var("JOURNEYD_BENCH_BASELINE_MB")
        .ok()
        .and_then(|mb| mb.trim().parse::<f64>().ok());
    table.row(
        "state file size",
        format!("{size_mb:.0} MB"),
        Some((
            baseline.map_or_else(
                || "no baseline (JOURNEYD_BENCH_BASELINE_MB)".to_owned(),
                |mb| {
                    format!(
                        "baseline {mb:.0} MB ({:+.0}%)",
                        (size_mb / mb - 1.0) * 100.0
                    )
                },
            ),
            None,
        )),
    );
    table.print(cores);
    ExitCode::SUCCESS
}

/// Stores every connector's owners and `records` records; returns the
/// seconds it took.
fn load(
    path: &Path,
    synths: &[Synth<'_>],
    batches: &mut Batches<'_>,
    records: usize,
    now: DateTime<Utc>,
) -> f64 {
    let mut store = Store::open(path).expect("the store opens");
    let started = Instant::now();
    for synth in synths {
        store
            .upsert_owners(&synth.connector.name, &synth.owners(), now)
            .expect("owners stored");
    }
    for i in 0..records {
        let (k, j) = slot(i);
        batches.push(&mut store, k, synths[k].record(j), now);
    }
    batches.flush(&mut store, now);
    let load = started.elapsed().as_secs_f64();
    println!(
        "load: {records} records in {load:.1} s ({:.0} records/s)",
        records as f64 / load
    );
    load
}

/// The first audit's violations per record, in all and per CRM (counted in
/// the log: it holds only this audit's so far).
fn print_violations_per_record(path: &Path, synths: &[Synth<'_>], records: usize, first: &Audited) {
    let per_crm: Vec<String> = synths
        .iter()
        .enumerate()
        .map(|(k, synth)| {
            let filter = ViolationFilter {
                connector: Some(synth.connector.name.clone()),
                ..ViolationFilter::default()
            };
            let found = Store::open_read_only(path)
                .and_then(|store| store.count_violations(&filter))
                .map_or_else(
                    |error| format!("could not count: {error}"),
                    |n| format!("{:.2}", n as f64 / per_crm(records, k).max(1) as f64),
                );
            format!("{} {found}", synth.connector.name)
        })
        .collect();
    println!(
        "  {:.2} violations per record ({})",
        first.summary.violations as f64 / records.max(1) as f64,
        per_crm.join(", ")
    );
}

/// Changes one record in [`CHANGED_EVERY`], spread over the set, as a day
/// in the CRMs does, and stores them as modified at `at`.
fn change_a_day(
    path: &Path,
    synths: &[Synth<'_>],
    batches: &mut Batches<'_>,
    records: usize,
    at: DateTime<Utc>,
) {
    let mut store = Store::open(path).expect("the store opens");
    let started = Instant::now();
    let mut changes: BTreeMap<&str, u64> = BTreeMap::new();
    for i in (CHANGED_EVERY / 2..records).step_by(CHANGED_EVERY) {
        let (k, j) = slot(i);
        let mut record = synths[k].record(j);
        let change = synths[k].change(&mut record, i / CHANGED_EVERY, at);
        *changes.entry(change).or_default() += 1;
        batches.push(&mut store, k, record, at);
    }
    batches.flush(&mut store, at);
    let changed: u64 = changes.values().sum();
    let kinds: Vec<String> = changes.iter().map(|(c, n)| format!("{n} {c}")).collect();
    println!(
        "changed: {changed} records in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        kinds.join(", ")
    );
}

/// Runs each command an admin runs in the morning, measured, into `table`.
fn run_commands(runner: &Runner, table: &mut Table) {
    match runner.run("floor", &["--version".to_owned()]) {
        Ok(floor) => println!(
            "commands (floor: `journeyd --version` peaks at {:.0} MB, {:.2} s):",
            floor.rss_mb, floor.seconds
        ),
        Err(error) => println!("commands (`journeyd --version` failed: {error}):"),
    }
    let words = |args: &[&str]| -> Vec<String> { args.iter().map(|a| (*a).to_owned()).collect() };
    let export = |format: &str| -> Vec<String> {
        let to = runner.dir.join(format!("violations.{format}"));
        let to = to.display().to_string();
        words(&["violations", "export", "--format", format, "--output", &to])
    };
    // A third audit, with nothing changed since the nightly one: held to
    // the nightly audit's target.
    let steps: [(&str, Vec<String>, Option<f64>); 8] = [
        (
            "journeyd audit",
            words(&["audit"]),
            Some(NIGHTLY_AUDIT_SECONDS),
        ),
        ("violations list", words(&["violations", "list"]), None),
        (
            "violations list --json",
            words(&["--json", "violations", "list"]),
            None,
        ),
        ("report", words(&["report"]), None),
        ("export --format csv", export("csv"), None),
        ("export --format json", export("json"), None),
        (
            "writeback (dry run)",
            words(&["writeback"]),
            Some(WRITEBACK_PLAN_SECONDS),
        ),
        (
            "writeback --json (dry run)",
            words(&["--json", "writeback"]),
            Some(WRITEBACK_PLAN_SECONDS),
        ),
    ];
    for (label, args, target) in &steps {
        run_step(runner, table, label, args, *target);
    }
}

/// Runs one command, prints what it took and said, and puts it in the
/// table beside `target` (seconds at the full size); a failure is printed
/// and marked, and the bench goes on.
/// Measures the console's pages over `state` and puts the figures in the
/// table.
fn console_step(config: &Path, state: &Path, table: &mut Table) {
    let figures =
        match console_pages::measure(Path::new(env!("CARGO_BIN_EXE_journeyd")), config, state) {
            Ok(figures) => figures,
            Err(error) => {
                println!("  console: FAILED: {error}");
                table.row(
                    "console",
                    "failed".into(),
                    Some(("served its pages".into(), Some(false))),
                );
                return;
            }
        };
    println!("console pages:");
    for page in &figures.others {
        println!(
            "  {}: {:.0} ms, then {:.1} ms while the log stays; {:.1} KB",
            page.again.path,
            page.first_ms,
            page.again.ms,
            page.again.bytes as f64 / 1024.0
        );
    }
    // The violations pages: each first page, and any page past the target.
    for page in &figures.violations {
        if !page.path.contains("after=") || page.ms > PAGE_P95_MS {
            println!(
                "  {}: {:.1} ms, {:.1} KB",
                page.path,
                page.ms,
                page.bytes as f64 / 1024.0
            );
        }
    }
    let p95 = figures.p95_ms();
    table.row(
        &format!("console /violations: p95 of {}", figures.violations.len()),
        format!("{p95:.1} ms"),
        Some((format!("<= {PAGE_P95_MS:.0} ms"), Some(p95 <= PAGE_P95_MS))),
    );
    if let Some(heaviest) = figures.heaviest() {
        let kb = heaviest.bytes as f64 / 1024.0;
        table.row(
            &format!("console heaviest page ({})", short(&heaviest.path)),
            format!("{kb:.0} KB"),
            Some((format!("<= {PAGE_KB:.0} KB"), Some(kb <= PAGE_KB))),
        );
    }
}

/// A path cut to fit the table.
fn short(path: &str) -> String {
    if path.chars().count() <= 24 {
        return path.to_owned();
    }
    let cut: String = path.chars().take(23).collect();
    format!("{cut}…")
}

fn run_step(runner: &Runner, table: &mut Table, label: &str, args: &[String], target: Option<f64>) {
    match runner.run(label, args) {
        Ok(run) => {
            println!(
                "  {label}: {:.1} s, peak RSS {:.0} MB; {}",
                run.seconds, run.rss_mb, run.said
            );
            table.command(label, Some(&run), target);
        }
        Err(error) => {
            println!("  {label}: FAILED: {error}");
            table.command(label, None, target);
        }
    }
}

/// How many of `records` CRM `k` gets.
fn per_crm(records: usize, k: usize) -> usize {
    let share = SHARES[k].1;
    let start: usize = SHARES[..k].iter().map(|(_, share)| share).sum();
    records / 20 * share + (records % 20).saturating_sub(start).min(share)
}

/// Which CRM record `i` belongs to, and its index among that CRM's records.
fn slot(i: usize) -> (usize, usize) {
    let (round, mut at) = (i / 20, i % 20);
    for (k, (_, share)) in SHARES.iter().enumerate() {
        if at < *share {
            return (k, round * share + at);
        }
        at -= share;
    }
    unreachable!("the shares add up to 20")
}

/// One batch of records in the making per CRM.
struct Batches<'s> {
    synths: &'s [Synth<'s>],
    batches: Vec<Vec<CrmRecord>>,
}

impl<'s> Batches<'s> {
    fn new(synths: &'s [Synth<'s>]) -> Self {
        Batches {
            synths,
            batches: synths.iter().map(|_| Vec::with_capacity(BATCH)).collect(),
        }
    }

    fn push(&mut self, store: &mut Store, k: usize, record: CrmRecord, seen_at: DateTime<Utc>) {
        self.batches[k].push(record);
        if self.batches[k].len() == BATCH {
            self.store(store, k, seen_at);
        }
    }

    fn flush(&mut self, store: &mut Store, seen_at: DateTime<Utc>) {
        for k in 0..self.batches.len() {
            self.store(store, k, seen_at);
        }
    }

    fn store(&mut self, store: &mut Store, k: usize, seen_at: DateTime<Utc>) {
        store
            .upsert_records(&self.synths[k].connector.name, &self.batches[k], seen_at)
            .expect("records stored");
        self.batches[k].clear();
    }
}

struct Audited {
    summary: journeyd::audit::AuditSummary,
    seconds: f64,
    rss_mb: f64,
}

/// One audit in this process, its peak RSS its own.
fn audit(path: &Path, config: &Config, depth: Depth, now: DateTime<Utc>, label: &str) -> Audited {
    reset_peak_rss();
    let before = rss_kb("VmRSS:");
    let started = Instant::now();
    let summary =
        journeyd::audit::run_at(path, config, depth, now, &|| false).expect("the audit runs");
    let seconds = started.elapsed().as_secs_f64();
    let rss_mb = rss_kb("VmHWM:") as f64 / 1024.0;
    let s = &summary;
    println!(
        "{label}: {} records in {seconds:.1} s = {:.0} records/s; {} violations: {} new, {} reopened, {} still failing, {} resolved; peak RSS {rss_mb:.0} MB ({:.0} MB before it began)",
        s.records,
        s.records as f64 / seconds,
        s.violations,
        s.chunks.new,
        s.chunks.reopened,
        s.chunks.still_failing,
        s.finish.resolved,
        before as f64 / 1024.0
    );
    if s.expression_errors > 0 {
        println!(
            "  {} expression errors, e.g. {:?}",
            s.expression_errors,
            s.expression_error_samples.first()
        );
    }
    Audited {
        summary,
        seconds,
        rss_mb,
    }
}

fn reset_peak_rss() {
    // What the load and an earlier audit freed goes back to the system
    // first, so that the peak starts from what the bench holds: SQLite's
    // allocations are the C library's, Rust's are mimalloc's.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    // SAFETY: mi_collect only frees memory mimalloc holds unused.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    // Linux: writing 5 resets the peak resident set size of the process.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A size line of this process's `/proc/self/status`, in KiB.
fn rss_kb(line: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(line))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The commands, each measured.

/// Runs the real binary with the bench's config.
struct Runner {
    config: PathBuf,
    dir: PathBuf,
}

/// One command's run.
struct Ran {
    seconds: f64,
    rss_mb: f64,
    /// What the command said worth repeating: the first line of its output
    /// or of its stderr.
    said: String,
}

impl Runner {
    /// Runs `journeyd --config <config> <args>` through [`spawner`], its
    /// stdout and stderr in files named after `label`.
    fn run(&self, label: &str, args: &[String]) -> Result<Ran, String> {
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let stdout = self.dir.join(format!("{name}.out"));
        let stderr = self.dir.join(format!("{name}.err"));
        let report = self.dir.join(format!("{name}.rusage"));
        let file = |path: &Path| std::fs::File::create(path).map_err(|e| e.to_string());
        let status = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .arg(SPAWNER)
            .arg(&report)
            .arg(env!("CARGO_BIN_EXE_journeyd"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("JOURNEYD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(file(&stdout)?)
            .stderr(file(&stderr)?)
            .status()
            .map_err(|e| format!("the spawner did not start: {e}"))?;
        let errors = std::fs::read_to_string(&stderr).unwrap_or_default();
        if !status.success() {
            return Err(format!("the spawner failed ({status}): {}", errors.trim()));
        }
        let measured = std::fs::read_to_string(&report)
            .ok()
            .and_then(|text| Measured::parse(&text))
            .ok_or("the spawner left no measurement")?;
        if !measured.status.success() {
            return Err(format!(
                "journeyd {} ended with {}; stderr:\n{}",
                args.join(" "),
                measured.status,
                errors.trim_end()
            ));
        }
        let output = std::fs::read_to_string(&stdout).unwrap_or_default();
        let said = output
            .lines()
            .chain(errors.lines())
            .find(|line| !line.trim().is_empty())
            .map_or_else(String::new, |line| {
                let line = line.trim();
                match line.char_indices().nth(200) {
                    Some((at, _)) => format!("{}...", &line[..at]),
                    None => line.to_owned(),
                }
            });
        Ok(Ran {
            seconds: measured.seconds,
            rss_mb: measured.max_rss_kib as f64 / 1024.0,
            said,
        })
    }
}

/// What [`spawner`] reports of its child.
struct Measured {
    status: ExitStatus,
    max_rss_kib: u64,
    seconds: f64,
}

impl Measured {
    fn parse(text: &str) -> Option<Measured> {
        let mut words = text.split_whitespace();
        Some(Measured {
            status: ExitStatus::from_raw(words.next()?.parse().ok()?),
            max_rss_kib: words.next()?.parse().ok()?,
            seconds: words.next()?.parse().ok()?,
        })
    }
}

/// `<this binary> --spawn-measured REPORT PROGRAM ARGS..`: runs PROGRAM with
/// ARGS (its stdio this process's), waits for it with `wait4`, and writes
/// its wait status, peak RSS in KiB (`ru_maxrss`) and wall seconds to
/// REPORT.
///
/// The benchmark does not spawn the commands itself because the kernel's
/// `ru_maxrss` of a child starts from the memory of the process it was
/// spawned from (the high-water mark is kept across `exec`), and the
/// benchmark has just audited a large store. This process is freshly
/// started and small: what it adds is the floor the `--version` run shows.
fn spawner(args: &[OsString]) -> ExitCode {
    let [report, program, args @ ..] = args else {
        eprintln!("usage: {SPAWNER} REPORT PROGRAM [ARGS..]");
        return ExitCode::FAILURE;
    };
    let started = Instant::now();
    let child = match Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("could not start {}: {error}", program.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        eprintln!("a pid that does not fit pid_t");
        return ExitCode::FAILURE;
    };
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is this process's own unreaped child, and both pointers
    // are to live locals of the types wait4 writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    // Reaped here, not by `child`: dropping it waits for nothing.
    drop(child);
    if reaped != pid {
        eprintln!(
            "could not wait for {}: {}",
            program.to_string_lossy(),
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    // Linux gives `ru_maxrss` in KiB.
    let line = format!("{status} {} {seconds}\n", usage.ru_maxrss);
    match std::fs::write(report, line) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("could not write {}: {error}", Path::new(report).display());
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// The table.

/// The figures, each beside its target.
struct Table {
    records: usize,
    /// What the time targets (for 1,000,000 records) are multiplied by.
    scale: f64,
    rows: Vec<[String; 4]>,
}

impl Table {
    fn new(records: usize) -> Self {
        Table {
            records,
            scale: records as f64 / TARGET_RECORDS as f64,
            rows: Vec::new(),
        }
    }

    /// A row; `target` is its text and whether the figure meets it (`None`:
    /// nothing to meet).
    fn row(&mut self, figure: &str, value: String, target: Option<(String, Option<bool>)>) {
        let (target, mark) = match target {
            Some((text, Some(true))) => (text, "pass"),
            Some((text, Some(false))) => (text, "MISS"),
            Some((text, None)) => (text, ""),
            None => ("-".to_owned(), ""),
        };
        self.rows
            .push([figure.to_owned(), value, target, mark.to_owned()]);
    }

    /// A time figure against `full_size_seconds` scaled to the size run.
    fn time(&mut self, figure: &str, seconds_taken: f64, full_size_seconds: f64) {
        let target = full_size_seconds * self.scale;
        let text = if self.records == TARGET_RECORDS {
            format!("<= {}", seconds(target))
        } else {
            format!("<= {} (scaled)", seconds(target))
        };
        self.row(
            figure,
            seconds(seconds_taken),
            Some((text, Some(seconds_taken <= target))),
        );
    }

    fn rss(&mut self, figure: &str, mb: f64) {
        self.row(
            figure,
            format!("{mb:.0} MB"),
            Some((format!("<= {PEAK_RSS_MB:.0} MB"), Some(mb <= PEAK_RSS_MB))),
        );
    }

    fn audit(&mut self, label: &str, audited: &Audited, full_size_seconds: f64) {
        self.time(
            &format!("{label}: wall"),
            audited.seconds,
            full_size_seconds,
        );
        self.rss(&format!("{label}: peak RSS"), audited.rss_mb);
    }

    fn command(&mut self, label: &str, ran: Option<&Ran>, full_size_seconds: Option<f64>) {
        let Some(ran) = ran else {
            self.row(
                &format!("{label}: wall"),
                "failed".into(),
                Some(("ran to its end".into(), Some(false))),
            );
            return;
        };
        match full_size_seconds {
            Some(target) => self.time(&format!("{label}: wall"), ran.seconds, target),
            None => self.row(&format!("{label}: wall"), seconds(ran.seconds), None),
        }
        self.rss(&format!("{label}: peak RSS"), ran.rss_mb);
    }

    fn print(&self, cores: usize) {
        println!();
        println!(
            "N = {} records, {cores} cores (std::thread::available_parallelism)",
            self.records
        );
        if self.records != TARGET_RECORDS {
            println!(
                "time targets are for {TARGET_RECORDS} records, scaled to N (x{:.3}); RSS targets stay {PEAK_RSS_MB:.0} MB",
                self.scale
            );
        }
        let header = [
            "figure".to_owned(),
            "value".to_owned(),
            "target".to_owned(),
            String::new(),
        ];
        let widths: Vec<usize> = (0..4)
            .map(|c| {
                std::iter::once(&header)
                    .chain(&self.rows)
                    .map(|row| row[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let line = format!(
                "{:<w0$}  {:>w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            println!("{}", line.trim_end());
        }
        let missed = self.rows.iter().filter(|row| row[3] == "MISS").count();
        println!("{missed} target(s) missed");
    }
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

// ---------------------------------------------------------------------------
// The synthetic CRMs.

/// Stage values no config maps: config drift, one deal in a hundred.
fn unmapped_stage(system: System) -> &'static str {
    match system {
        System::Hubspot => "negotiation_v2",
        System::Salesforce => "Verbal Commit",
        System::Dynamics => "Negotiate",
    }
}

/// Of every 20 records of a CRM, how many are of each kind. HubSpot has no
/// leads the journey uses.
fn object_mix(system: System) -> &'static [(ObjectKind, usize)] {
    match system {
        System::Hubspot => &[
            (ObjectKind::Deal, 16),
            (ObjectKind::Contact, 3),
            (ObjectKind::Account, 1),
        ],
        System::Salesforce | System::Dynamics => &[
            (ObjectKind::Deal, 9),
            (ObjectKind::Lead, 6),
            (ObjectKind::Contact, 3),
            (ObjectKind::Account, 2),
        ],
    }
}

/// The teams an owner is in, as the CRM names them (the config's role map
/// matches on these): HubSpot and Dynamics teams; a Salesforce user's title
/// and department.
fn teams(system: System, i: usize) -> Vec<String> {
    const TEAMS: [&str; 5] = [
        "Marketing",
        "Sales",
        "Onboarding",
        "Customer Success",
        "Account Management",
    ];
    const TITLES: [&str; 5] = [
        "Marketing User",
        "Sales Rep",
        "Onboarding Specialist",
        "Customer Success Manager",
        "Account Manager",
    ];
    let k = i % TEAMS.len();
    match system {
        System::Hubspot | System::Dynamics => vec![TEAMS[k].to_owned()],
        System::Salesforce => vec![TITLES[k].to_owned(), TEAMS[k].to_owned()],
    }
}

const FIRST_NAMES: [&str; 12] = [
    "Ann", "Raj", "Mia", "Tom", "Lena", "Omar", "Sofia", "Jun", "Priya", "Lucas", "Eva", "Noah",
];
const LAST_NAMES: [&str; 10] = [
    "Lee", "Patel", "Schmidt", "Novak", "Okafor", "Garcia", "Tanaka", "Berg", "Rossi", "Kowalski",
];

/// A deterministic synthetic CRM of one connector of the shipped config,
/// with a realistic mix of journey problems: missing and inactive owners,
/// owners of the wrong role, stalled records, unmet criteria, skipped and
/// unmapped stages, duplicates. Record `j` is a pure function of `j`, so a
/// changed version of it can be made later.
struct Synth<'c> {
    connector: &'c ConnectorConfig,
    system: System,
    seed: u64,
    /// Native stage values per object kind, in journey order, those that
    /// leave the journey (closed-lost) last.
    stages: BTreeMap<ObjectKind, Vec<&'c str>>,
    /// The CRM fields each object kind carries, with their canonical names.
    fields: BTreeMap<ObjectKind, Vec<(&'c str, &'c str)>>,
    owner_ids: Vec<OwnerId>,
    /// The owners of each journey role, by the connector's role map.
    owners_by_role: BTreeMap<String, Vec<OwnerId>>,
    /// The role accountable for each native stage value, per object kind.
    stage_roles: BTreeMap<(ObjectKind, &'c str), &'c str>,
    now: DateTime<Utc>,
}

impl<'c> Synth<'c> {
    fn new(config: &'c Config, system: System, share: usize, now: DateTime<Utc>) -> Self {
        let connector = config
            .connectors
            .iter()
            .find(|c| c.system == system)
            .unwrap_or_else(|| panic!("the shipped config has a {system} connector"));
        let journey = &config.journey;
        let stages = connector
            .stages
            .iter()
            .map(|(object, map)| {
                let mut values: Vec<(usize, &str)> = map
                    .iter()
                    .map(|(native, stage)| {
                        (
                            journey.index_of(stage).unwrap_or(usize::MAX),
                            native.as_str(),
                        )
                    })
                    .chain(
                        connector
                            .outside
                            .get(object)
                            .into_iter()
                            .flatten()
                            .map(|native| (usize::MAX, native.as_str())),
                    )
                    .collect();
                values.sort();
                (*object, values.into_iter().map(|(_, v)| v).collect())
            })
            .collect();
        // HubSpot asks for every mapped property on every object; Salesforce
        // and Dynamics read each object's own.
        let per_object = match &connector.connection {
            Connection::Hubspot(_) => None,
            Connection::Salesforce(salesforce) => Some(&salesforce.settings.properties),
            Connection::Dynamics(dynamics) => Some(&dynamics.settings.properties),
        };
        let fields = object_mix(system)
            .iter()
            .map(|(object, _)| {
                let names: Vec<(&str, &str)> = connector
                    .fields
                    .iter()
                    .filter(|(crm, _)| {
                        per_object.is_none_or(|properties| {
                            properties
                                .get(object)
                                .is_some_and(|names| names.contains(*crm))
                        })
                    })
                    .map(|(crm, canonical)| (crm.as_str(), canonical.as_str()))
                    .collect();
                (*object, names)
            })
            .collect();
        let mut synth = Synth {
            connector,
            system,
            seed: 0x5EED_0000 + share as u64 * 7919 + system as u64,
            stages,
            fields,
            owner_ids: Vec::new(),
            owners_by_role: BTreeMap::new(),
            stage_roles: connector
                .stages
                .iter()
                .flat_map(|(object, map)| {
                    map.iter().filter_map(|(native, id)| {
                        let stage = journey.stages.iter().find(|s| &s.id == id)?;
                        Some(((*object, native.as_str()), stage.owner_role.as_str()))
                    })
                })
                .collect(),
            now,
        };
        let roles = &connector.roles;
        for owner in synth.owners() {
            let role = roles
                .users
                .get(owner.id.as_str())
                .or_else(|| roles.users.get(&owner.email.as_deref()?.to_lowercase()))
                .or_else(|| owner.teams.iter().find_map(|team| roles.teams.get(team)));
            if let Some(role) = role {
                synth
                    .owners_by_role
                    .entry(role.to_string())
                    .or_default()
                    .push(owner.id.clone());
            }
            synth.owner_ids.push(owner.id);
        }
        synth
    }

    /// The connector's users: those its config names (role map, fallback
    /// owners) first, by id or by email, then others. One in 15 is
    /// inactive, none of those the config names.
    fn owners(&self) -> Vec<Owner> {
        let named: Vec<&str> = self
            .connector
            .fallback_owners
            .values()
            .map(String::as_str)
            .chain(self.connector.roles.users.keys().map(String::as_str))
            .fold(Vec::new(), |mut named, n| {
                if !named.contains(&n) {
                    named.push(n);
                }
                named
            });
        (0..OWNERS)
            .map(|i| {
                let first = FIRST_NAMES[i % FIRST_NAMES.len()];
                let last = LAST_NAMES[(i / FIRST_NAMES.len() + i) % LAST_NAMES.len()];
                let (id, email) = match named.get(i) {
                    Some(email) if email.contains('@') => {
                        (self.owner_id(i), Some((*email).to_owned()))
                    }
                    Some(id) => (OwnerId::new(*id), None),
                    None => (self.owner_id(i), None),
                };
                Owner {
                    id,
                    name: format!("{first} {last}"),
                    email: email.or_else(|| {
                        Some(format!(
                            "{}.{}{i}@example.com",
                            first.to_lowercase(),
                            last.to_lowercase()
                        ))
                    }),
                    active: i % 15 != 14,
                    teams: teams(self.system, i),
                }
            })
            .collect()
    }

    fn owner_id(&self, i: usize) -> OwnerId {
        OwnerId::new(match self.system {
            System::Hubspot => (48_213_000 + 37 * i).to_string(),
            System::Salesforce => salesforce_id("005", i as u64),
            System::Dynamics => guid(0xE, i as u64),
        })
    }

    fn object(&self, j: usize) -> ObjectKind {
        let mut at = j % 20;
        for (object, share) in object_mix(self.system) {
            if at < *share {
                return *object;
            }
            at -= share;
        }
        unreachable!("each object mix adds up to 20")
    }

    fn rng(&self, j: usize) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.seed ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The id of the `n`th record of `object`, in the CRM's style.
    fn id(&self, object: ObjectKind, n: usize) -> String {
        match self.system {
            System::Hubspot => {
                let base: u64 = match object {
                    ObjectKind::Deal => 21_000_000_000,
                    ObjectKind::Contact => 95_000_000_000,
                    ObjectKind::Account => 18_000_000_000,
                    ObjectKind::Lead => 30_000_000_000,
                };
                (base + n as u64).to_string()
            }
            System::Salesforce => salesforce_id(
                match object {
                    ObjectKind::Deal => "006",
                    ObjectKind::Lead => "00Q",
                    ObjectKind::Contact => "003",
                    ObjectKind::Account => "001",
                },
                n as u64,
            ),
            System::Dynamics => guid(object as u64, n as u64),
        }
    }

    /// A link to the record in the CRM's UI, as the connector stores it.
    fn url(&self, object: ObjectKind, id: &str) -> Option<String> {
        match &self.connector.connection {
            Connection::Hubspot(hubspot) => {
                let settings = &hubspot.settings;
                let kind = match object {
                    ObjectKind::Contact => "0-1",
                    ObjectKind::Account => "0-2",
                    ObjectKind::Deal => "0-3",
                    ObjectKind::Lead => "0-136",
                };
                // The shipped config leaves `portal_id` out (no links); a
                // real portal sets it.
                let portal = settings.portal_id.as_deref().unwrap_or("1234567");
                Some(format!(
                    "{}/contacts/{portal}/record/{kind}/{id}",
                    settings.app_url.as_str().trim_end_matches('/')
                ))
            }
            // The Lightning page on the instance a token names.
            Connection::Salesforce(_) => {
                let sobject = match object {
                    ObjectKind::Deal => "Opportunity",
                    ObjectKind::Lead => "Lead",
                    ObjectKind::Contact => "Contact",
                    ObjectKind::Account => "Account",
                };
                Some(format!(
                    "https://acme.my.salesforce.com/lightning/r/{sobject}/{id}/view"
                ))
            }
            Connection::Dynamics(dynamics) => {
                let table = match object {
                    ObjectKind::Deal => "opportunity",
                    ObjectKind::Lead => "lead",
                    ObjectKind::Contact => "contact",
                    ObjectKind::Account => "account",
                };
                Some(format!(
                    "{}/main.aspx?etn={table}&id={id}&pagetype=entityrecord",
                    dynamics.settings.url.as_str().trim_end_matches('/')
                ))
            }
        }
    }

    /// Whether the connector reads a stage history for `object`: HubSpot's
    /// and Salesforce's deals (Dynamics keeps none it can read).
    fn keeps_history(&self, object: ObjectKind) -> bool {
        object == ObjectKind::Deal && self.system != System::Dynamics
    }

    fn record(&self, j: usize) -> CrmRecord {
        let mut rng = self.rng(j);
        let rng = &mut rng;
        let object = self.object(j);
        let created =
            self.now - Duration::days(rng.i64(1..700)) - Duration::minutes(rng.i64(0..1440));
        let id = self.id(object, j);
        let mut fields = BTreeMap::new();
        for (crm, canonical) in &self.fields[&object] {
            if let Some(value) = self.value(canonical, rng, created, false) {
                fields.insert((*crm).to_owned(), value);
            }
        }
        let (stage, stage_history) = match self.stages.get(&object) {
            Some(values) if !values.is_empty() => {
                let stage = if object == ObjectKind::Deal && rng.u16(0..100) == 0 {
                    unmapped_stage(self.system)
                } else {
                    values[rng.usize(..values.len())]
                };
                let mut history = Vec::new();
                if self.keeps_history(object) {
                    let mut at = created;
                    for _ in 0..rng.usize(0..4) {
                        at += Duration::days(rng.i64(1..30));
                        history.push(StageChange {
                            stage: values[rng.usize(..values.len())].to_owned(),
                            at,
                            owner_id: None,
                        });
                    }
                    history.push(StageChange {
                        stage: stage.to_owned(),
                        at: at + Duration::days(1),
                        owner_id: None,
                    });
                }
                (Some(stage.to_owned()), history)
            }
            _ => (None, Vec::new()),
        };
        // One in 33 is a younger copy of an earlier record of its kind.
        let n = match rng.u8(0..100) < 3 {
            true if j >= 20 => j - 20 * rng.usize(1..=(j / 20).min(50)),
            _ => j,
        };
        let person = matches!(object, ObjectKind::Contact | ObjectKind::Lead);
        // Most records are owned by someone of the stage's role.
        let rightful = stage
            .as_deref()
            .and_then(|native| self.stage_roles.get(&(object, native)))
            .and_then(|role| self.owners_by_role.get(*role));
        let owner_id = (rng.u8(0..100) >= 4).then(|| match rightful {
            Some(owners) if rng.u8(0..10) < 6 => owners[rng.usize(..owners.len())].clone(),
            _ => self.owner_ids[rng.usize(..self.owner_ids.len())].clone(),
        });
        let contacts: Vec<RecordId> = if object == ObjectKind::Deal {
            let count = match (self.system, rng.u8(0..10)) {
                (_, 0..=3) => 0,
                // A Dynamics opportunity names one parent contact.
                (System::Dynamics, _) | (_, 4..=7) => 1,
                _ => 2,
            };
            (0..count)
                .map(|_| RecordId::new(self.id(ObjectKind::Contact, rng.usize(..1_000_000))))
                .collect()
        } else {
            Vec::new()
        };
        if object == ObjectKind::Deal && self.system == System::Salesforce {
            // Its contact roles, as the Salesforce connector adds them.
            const ROLES: [&str; 4] = [
                "Decision Maker",
                "Economic Buyer",
                "Technical Buyer",
                "Influencer",
            ];
            let roles: Vec<&str> = contacts
                .iter()
                .map(|_| ROLES[rng.usize(..ROLES.len())])
                .collect();
            fields.insert("contact_roles".to_owned(), json!(roles));
        }
        let lifecycle_status = match (self.system, object) {
            (System::Hubspot, ObjectKind::Contact | ObjectKind::Account) => {
                const VALUES: [&str; 5] = [
                    "lead",
                    "marketingqualifiedlead",
                    "salesqualifiedlead",
                    "opportunity",
                    "customer",
                ];
                Some(VALUES[rng.usize(..VALUES.len())].to_owned())
            }
            _ => None,
        };
        let tasks = if object == ObjectKind::Deal && rng.u8(0..10) < 3 {
            let onboarding = stage.as_deref().is_some_and(|native| {
                self.connector
                    .stages
                    .get(&object)
                    .and_then(|map| map.get(native))
                    .is_some_and(|id| id.as_str() == "onboarding")
            });
            let subject = if onboarding {
                "Onboarding kickoff call"
            } else {
                "Follow-up call"
            };
            vec![TaskRef {
                id: self.task_id(j),
                subject: subject.to_owned(),
                status: if rng.bool() {
                    TaskStatus::Open
                } else {
                    TaskStatus::Completed
                },
                owner_id: owner_id.clone(),
                due: Some((created + Duration::days(rng.i64(1..60))).date_naive()),
                by_journeyd: false,
            }]
        } else {
            Vec::new()
        };
        CrmRecord {
            system: self.system,
            object,
            url: self.url(object, &id),
            id: RecordId::new(id),
            name: Some(match object {
                ObjectKind::Contact | ObjectKind::Lead => format!(
                    "{} {}",
                    FIRST_NAMES[j % FIRST_NAMES.len()],
                    LAST_NAMES[(j / 7) % LAST_NAMES.len()]
                ),
                ObjectKind::Account => format!("Customer {n} GmbH"),
                ObjectKind::Deal => {
                    format!("Customer {} - {} seats", j % 50_000, 5 * rng.u32(1..200))
                }
            }),
            owner_id,
            stage_entered_at: match self.system {
                // Salesforce dates the current stage by its last history row.
                System::Salesforce => stage_history.last().map(|last| last.at),
                System::Hubspot | System::Dynamics => None,
            },
            stage,
            lifecycle_status,
            amount: (object == ObjectKind::Deal && rng.u8(0..10) < 8)
                .then(|| f64::from(rng.u32(1_000..200_000))),
            currency: (self.system == System::Hubspot && object == ObjectKind::Deal)
                .then(|| "EUR".to_owned()),
            email: person.then(|| format!("buyer{n}@customer{}.example", n % 50_000)),
            domain: match object {
                ObjectKind::Account => Some(format!("customer{n}.example")),
                ObjectKind::Lead => Some(format!("customer{}.example", n % 50_000)),
                ObjectKind::Contact | ObjectKind::Deal => None,
            },
            created_at: created,
            modified_at: created + Duration::days(1),
            close_date: (object == ObjectKind::Deal && rng.bool())
                .then(|| (self.now + Duration::days(rng.i64(-200..200))).date_naive()),
            contract_start: None,
            contract_end: None,
            fields,
            associations: Associations {
                account: (object != ObjectKind::Account && rng.bool())
                    .then(|| RecordId::new(self.id(ObjectKind::Account, rng.usize(..50_000)))),
                contacts,
            },
            tasks,
            stage_history,
        }
    }

    fn task_id(&self, j: usize) -> String {
        match self.system {
            System::Hubspot => (61_000_000_000 + j as u64).to_string(),
            System::Salesforce => salesforce_id("00T", j as u64),
            System::Dynamics => guid(0xA, j as u64),
        }
    }

    /// A value of the canonical field `canonical` as this CRM gives it, or
    /// `None` when it is not set (three times in ten, unless `set`).
    fn value(
        &self,
        canonical: &str,
        rng: &mut fastrand::Rng,
        created: DateTime<Utc>,
        set: bool,
    ) -> Option<Value> {
        let filled = set || rng.u8(0..10) < 7;
        // A Salesforce checkbox or a Dataverse two-option column is never
        // empty: unset, it is false. A HubSpot one is.
        let checkbox = matches!(canonical, "budget_confirmed" | "success_criteria_met")
            || (self.system == System::Dynamics && canonical == "decision_maker");
        if checkbox {
            return match self.system {
                System::Hubspot => filled.then_some(Value::Bool(true)),
                System::Salesforce | System::Dynamics => Some(json!(filled)),
            };
        }
        if !filled {
            return None;
        }
        let pick =
            |rng: &mut fastrand::Rng, values: &[&str]| json!(values[rng.usize(..values.len())]);
        Some(match canonical {
            "discovery_call_date"
            | "kickoff_date"
            | "go_live_date"
            | "renewal_quote_date"
            | "renewal_signed_date" => json!(
                (created + Duration::days(rng.i64(1..120)))
                    .format("%Y-%m-%d")
                    .to_string()
            ),
            "active_users" => json!(rng.u32(0..500)),
            "health_score" => json!(rng.u32(20..100)),
            "lead_source" => match self.system {
                System::Hubspot => pick(
                    rng,
                    &[
                        "ORGANIC_SEARCH",
                        "PAID_SEARCH",
                        "EMAIL_MARKETING",
                        "SOCIAL_MEDIA",
                        "REFERRALS",
                        "DIRECT_TRAFFIC",
                        "OFFLINE",
                    ],
                ),
                System::Salesforce => pick(
                    rng,
                    &[
                        "Web",
                        "Phone Inquiry",
                        "Partner Referral",
                        "Purchased List",
                        "Other",
                    ],
                ),
                // A choice column's option value.
                System::Dynamics => json!(rng.u8(1..=10)),
            },
            "decision_maker" | "champion" => match self.system {
                // A contact's id: HubSpot's numbers come as numbers.
                System::Hubspot => json!(95_000_000_000u64 + rng.u64(..1_000_000)),
                System::Salesforce => json!(salesforce_id("003", rng.u64(..1_000_000))),
                System::Dynamics => json!(format!(
                    "{} {}",
                    FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
                    LAST_NAMES[rng.usize(..LAST_NAMES.len())]
                )),
            },
            "executive_sponsor" => json!(format!(
                "{} {}, {}",
                FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
                LAST_NAMES[rng.usize(..LAST_NAMES.len())],
                ["CFO", "COO", "VP Sales", "Head of Operations"][rng.usize(..4)]
            )),
            "pain_points" => pick(
                rng,
                &[
                    "Month-end reporting takes two days of spreadsheet work",
                    "No single view of the customer across regions",
                    "Renewals slip through because nobody owns them",
                    "Forecasts are off by more than 20% every quarter",
                    "Onboarding new customers takes three months",
                ],
            ),
            "success_criteria" => pick(
                rng,
                &[
                    "Forecast accuracy within 5% by Q3",
                    "Customers live within 30 days of signing",
                    "Reporting done in one hour instead of two days",
                    "All renewals owned 120 days before the end date",
                ],
            ),
            "expansion_opportunity" => pick(
                rng,
                &[
                    "Add 50 seats for the EMEA team",
                    "Upgrade to the Enterprise tier",
                    "Roll out to the service organisation",
                ],
            ),
            other => json!(format!("{other} {}", rng.u32(..100_000))),
        })
    }

    /// Changes `record` the way a day in the CRM does, in one of three ways
    /// by `turn`: its stage moves on (a record without a stage gets an owner
    /// instead), its owner is set or cleared, or an empty field of it is
    /// filled (its owner changes when none is empty). Returns what changed.
    fn change(&self, record: &mut CrmRecord, turn: usize, at: DateTime<Utc>) -> &'static str {
        let mut rng = fastrand::Rng::with_seed(self.seed.wrapping_add(turn as u64));
        record.modified_at = at;
        let values = self.stages.get(&record.object);
        if turn.is_multiple_of(3)
            && let (Some(values), Some(stage)) = (values, record.stage.as_mut())
        {
            let next = values
                .iter()
                .position(|v| v == stage)
                .map_or(0, |p| (p + 1) % values.len());
            *stage = values[next].to_owned();
            if self.keeps_history(record.object) {
                record.stage_history.push(StageChange {
                    stage: stage.clone(),
                    at,
                    owner_id: record.owner_id.clone(),
                });
                if self.system == System::Salesforce {
                    record.stage_entered_at = Some(at);
                }
            }
            return "stage moved";
        }
        if turn % 3 == 2 {
            let empty = self.fields[&record.object].iter().find(|(crm, _)| {
                // Unset, or a checkbox left unticked.
                record
                    .fields
                    .get(*crm)
                    .is_none_or(|value| value == &Value::Bool(false))
            });
            if let Some((crm, canonical)) = empty
                && let Some(value) = self.value(canonical, &mut rng, record.created_at, true)
            {
                record.fields.insert((*crm).to_owned(), value);
                return "field filled";
            }
        }
        if turn.is_multiple_of(2) && record.owner_id.take().is_some() {
            return "owner cleared";
        }
        record.owner_id = Some(self.owner_ids[rng.usize(..self.owner_ids.len())].clone());
        "owner set"
    }
}

/// An 18-character Salesforce id: the object's key prefix, then `n`, then
/// the case-safe suffix (one character per five, saying which are capitals).
fn salesforce_id(prefix: &str, n: u64) -> String {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut id = format!("{prefix}Dn0000");
    let mut digits = [b'0'; 6];
    let mut rest = n;
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    id.extend(digits.iter().map(|d| char::from(*d)));
    let suffix: String = id
        .as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk.iter().enumerate().fold(0, |bits, (k, c)| {
                bits | (usize::from(c.is_ascii_uppercase()) << k)
            });
            char::from(SUFFIX[bits])
        })
        .collect();
    id + &suffix
}

/// A lowercase version-4 GUID, as Dataverse gives ids: random-looking, and
/// unique per (`tag`, `n`), which its last group holds.
fn guid(tag: u64, n: u64) -> String {
    let mut h = (tag << 48 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        0x8000 | ((h >> 48) & 0x3fff),
        (tag << 40) | n
    )
}
