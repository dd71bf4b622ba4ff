//! `/healthz` latency while `journeyd run` audits 100,000 records, and how
//! long SIGTERM takes to stop the daemon in the middle of an audit.
//!
//!     cargo bench --bench healthz_audit
//!     JOURNEYD_BENCH_RECORDS=20000 cargo bench --bench healthz_audit
//!
//! The records are imported with `journeyd import` (ownerless deals of the
//! HubSpot connector across its pipeline, each breaking several rules, so
//! that the audit writes); the daemon's only connector points at an
//! emulated portal of a few contacts and pulls only those, so its nightly
//! full sync before the audit is short and leaves the deals alone. `/healthz` is polled every
//! 20 ms from the moment the audit's run row says `running` until it says
//! otherwise; then a second audit is stopped one second in with SIGTERM.

use journeyd_hubspot_emulator::{EmulatorConfig, HubspotEmulator, RateLimitKnobs, SeedSizes};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{shipped_config, size_from_env};

#[allow(
    dead_code,
    reason = "this bench runs the daemon itself: it needs only the config and size helpers"
)]
mod support;

/// Every wait of the bench is bounded by this.
const LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(20);

fn main() {
    let records = size_from_env("JOURNEYD_BENCH_RECORDS");
    let mut seed = EmulatorConfig {
        now: chrono::Utc::now(),
        sizes: SeedSizes::for_deals(10),
        ..EmulatorConfig::default()
    };
    seed.knobs.limits = RateLimitKnobs::unlimited();
    let emulator = HubspotEmulator::start(seed).expect("the emulator starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let config = write_config(dir.path(), &emulator, port);
    let journeyd = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_journeyd"));
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("JOURNEYD_HUBSPOT_TOKEN", emulator.private_app_token())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        command
    };

    let started = Instant::now();
    let deals = dir.path().join("deals.jsonl");
    write_deals(&deals, records);
    let imported = journeyd(&["import", deals.to_str().expect("a UTF-8 path")])
        .status()
        .expect("journeyd import runs");
    assert!(imported.success(), "the import failed");
    println!(
        "seeded: {records} deals imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let state = dir.path().join("bench.sqlite");
    let mut daemon = journeyd(&["run"]).spawn().expect("journeyd run starts");
    let first = wait_for_audit(&state, 0, &mut daemon);
    let audit_started = Instant::now();
    let mut latencies = Vec::new();
    let mut failures = 0;
    while audit_status(&state, first).as_deref() == Some("running") {
        assert!(audit_started.elapsed() < LIMIT, "the audit did not end");
        let asked = Instant::now();
        match healthz(port) {
            Some(200) => latencies.push(asked.elapsed()),
            _ => failures += 1,
        }
        std::thread::sleep(POLL);
    }
    let took = audit_started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "audit of {records} records: {:.1} s, {}",
        took.as_secs_f64(),
        audit_status(&state, first).unwrap_or_default()
    );
    if latencies.is_empty() {
        println!("/healthz during the audit: no answer ({failures} failed)");
    } else {
        println!(
            "/healthz during the audit: {} answers, {failures} failed; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(*latencies.last().expect("not empty"))
        );
    }

    let second = wait_for_audit(&state, first, &mut daemon);
    std::thread::sleep(Duration::from_secs(1));
    let signalled = Instant::now();
    // SAFETY: kill(2) on the pid of a child this bench spawned and has not
    // reaped; no memory is shared.
    unsafe {
        libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM);
    }
    let exit = loop {
        if let Some(status) = daemon.try_wait().expect("the daemon can be waited on") {
            break status;
        }
        assert!(signalled.elapsed() < LIMIT, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(5));
    };
    println!(
        "SIGTERM one second into the next audit: exited ({exit}) after {:.0} ms; the audit run is {}",
        ms(signalled.elapsed()),
        audit_status(&state, second).unwrap_or_default()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The shipped config with only its HubSpot connector, pointed at the
/// emulator; an audit every ten seconds, no incremental syncs; a health
/// listener on `port`.
fn write_config(dir: &Path, emulator: &HubspotEmulator, port: u16) -> std::path::PathBuf {
    let mut config = shipped_config(dir);
    let connectors = config["connectors"].as_table_mut().expect("connectors");
    connectors.remove("salesforce");
    connectors.remove("dynamics");
    let hubspot = &mut config["connectors"]["hubspot"];
    hubspot["api_url"] = toml_edit::value(emulator.base_url().as_str().trim_end_matches('/'));
    let mut secret = toml_edit::InlineTable::new();
    secret.insert("env", "JOURNEYD_HUBSPOT_TOKEN".into());
    hubspot["secret"] = toml_edit::value(secret);
    // Deals are not pulled: the imported ones stay as imported.
    hubspot["objects"] = toml_edit::value(toml_edit::Array::from_iter(["contact"]));
    hubspot["limits"]["requests"] = toml_edit::value(1_000_000);
    hubspot["limits"]["search_per_second"] = toml_edit::value(100_000);
    config["schedule"]["sync"] = toml_edit::value("0 0 3 1 1 *");
    config["schedule"]["audit"] = toml_edit::value("*/10 * * * * *");
    config["service"]["health_listen"] = toml_edit::value(format!("127.0.0.1:{port}"));
    let path = dir.join("journeyd.toml");
    std::fs::write(&path, config.to_string()).expect("the bench config is written");
    path
}

/// `count` ownerless deals spread over the pipeline, in their stage since
/// January (so the ones with a time limit are stalled), missing the
/// fields the exit criteria ask for.
fn write_deals(path: &Path, count: usize) {
    const STAGES: [&str; 6] = [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
    ];
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("a deal file"));
    for i in 0..count {
        writeln!(
            file,
            r#"{{"type":"record","system":"hubspot","object":"deal","id":"D{i}","name":"Deal {i}","stage":"{}","amount":{},"currency":"EUR","created_at":"2026-01-05T10:00:00Z","modified_at":"2026-11-01T10:00:00Z","stage_entered_at":"2026-01-06T10:00:00Z","stage_history":[{{"stage":"appointmentscheduled","at":"2026-01-05T10:00:00Z"}}]}}"#,
            STAGES[i % STAGES.len()],
            1000 + i % 50_000,
        )
        .expect("a deal line");
    }
    file.flush().expect("the deal file is written");
}

/// Waits for an audit run newer than `after` to be `running`; its id.
fn wait_for_audit(state: &Path, after: i64, daemon: &mut Child) -> i64 {
    let started = Instant::now();
    loop {
        if let Some(status) = daemon.try_wait().expect("the daemon can be waited on") {
            panic!("journeyd run exited: {status}");
        }
        if let Some(run) = read(state, |db| {
            db.query_row(
                "SELECT id FROM runs WHERE kind = 'audit' AND id > ?1 AND status = 'running'",
                [after],
                |row| row.get(0),
            )
        }) {
            return run;
        }
        assert!(started.elapsed() < LIMIT, "no audit started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn audit_status(state: &Path, run: i64) -> Option<String> {
    read(state, |db| {
        db.query_row("SELECT status FROM runs WHERE id = ?1", [run], |row| {
            row.get(0)
        })
    })
}

/// Reads the state file on a connection of the bench's own (WAL: it waits
/// for no writer).
fn read<T>(
    state: &Path,
    query: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
) -> Option<T> {
    let db =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    query(&db).ok()
}

/// `GET /healthz`: the status code, or `None` when no answer came within
/// five seconds.
fn healthz(port: u16) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
