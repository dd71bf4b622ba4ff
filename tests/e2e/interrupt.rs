//! SIGINT and SIGTERM while the real binary waits on a CRM: a sync in a
//! `Retry-After` or a backoff ends within a second with 130 or 143 and its
//! cursor saved; an interrupted `journeyd demo` stops where it is and runs
//! no further step. A `Retry-After` past `limits.max_retry_after_seconds`
//! ends the sync at once, "rate limited until" then.
//!
//! The one-second bound is the behaviour asked for (an operator's Ctrl-C
//! is answered at once), measured from the signal to the exit.

use crate::portal::{Auth, Portal};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the binary to reach the wait it interrupts.
const PATIENCE: Duration = Duration::from_secs(120);
/// How soon after the signal the binary must have exited.
const PROMPTLY: Duration = Duration::from_secs(1);

fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, signo: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: sends a signal to our own child, which has not been reaped.
    let sent = unsafe { libc::kill(pid, signo) };
    assert_eq!(sent, 0, "the signal was sent");
}

/// Signals `child` and waits for it to exit, at most [`PROMPTLY`].
fn stop(child: &mut Child, signo: libc::c_int) -> ExitStatus {
    signal(child, signo);
    let sent = Instant::now();
    let deadline = sent + PROMPTLY;
    loop {
        if let Some(status) = child.try_wait().expect("journeyd is waited for") {
            eprintln!("journeyd exited {:?} after signal {signo}", sent.elapsed());
            return status;
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("journeyd did not exit within {PROMPTLY:?} of signal {signo}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sync_json(child: &mut Child) -> serde_json::Value {
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut out)
        .expect("stdout is read");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}):\n{out}"))
}

fn start_sync(portal: &Portal) -> Child {
    portal
        .install
        .command(&["--json", "sync", "--connector", "hubspot"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("journeyd starts")
}

/// A sync that HubSpot tells to come back in two minutes, stopped by
/// `signo` while it waits.
fn sync_stopped_in_a_retry_after_wait(signo: libc::c_int) {
    let portal = Portal::new(30, Auth::PrivateApp);
    let faults = portal.emulator.faults();
    faults.storm(1_000, Some(Duration::from_secs(120)));
    let mut child = start_sync(&portal);
    wait_for(|| faults.injected().rate_limited >= 1, "a 429 was served");
    let status = stop(&mut child, signo);
    assert_eq!(status.code(), Some(128 + signo), "{status:?}");
    let synced = sync_json(&mut child);
    assert_eq!(synced["synced"][0]["stopped"], true, "{synced}");
    assert_eq!(faults.injected().rate_limited, 1, "nothing more was sent");
}

#[test]
fn a_sync_in_a_retry_after_wait_stops_within_a_second_of_sigint_with_130() {
    sync_stopped_in_a_retry_after_wait(libc::SIGINT);
}

#[test]
fn a_sync_in_a_retry_after_wait_stops_within_a_second_of_sigterm_with_143() {
    sync_stopped_in_a_retry_after_wait(libc::SIGTERM);
}

/// A sync meeting server errors, stopped by `signo` in its backoff.
fn sync_stopped_in_a_backoff(signo: libc::c_int) {
    let portal = Portal::new(30, Auth::PrivateApp);
    let faults = portal.emulator.faults();
    // From the third failure on the backoff is seconds long.
    faults.fail_next(1_000);
    let mut child = start_sync(&portal);
    wait_for(
        || faults.injected().server_errors >= 3,
        "three 5xx were served",
    );
    let status = stop(&mut child, signo);
    assert_eq!(status.code(), Some(128 + signo), "{status:?}");
    let synced = sync_json(&mut child);
    assert_eq!(synced["synced"][0]["stopped"], true, "{synced}");
}

#[test]
fn a_sync_in_a_backoff_stops_within_a_second_of_sigint_with_130() {
    sync_stopped_in_a_backoff(libc::SIGINT);
}

#[test]
fn a_sync_in_a_backoff_stops_within_a_second_of_sigterm_with_143() {
    sync_stopped_in_a_backoff(libc::SIGTERM);
}

#[test]
fn a_retry_after_past_the_cap_ends_the_sync_rate_limited_until_then() {
    let portal = Portal::configured(30, Auth::PrivateApp, |config| {
        config["connectors"]["hubspot"]["limits"]["max_retry_after_seconds"] = toml_edit::value(60);
    });
    let faults = portal.emulator.faults();
    faults.storm(1_000, Some(Duration::from_secs(7_200)));
    let started = chrono::Utc::now();
    let output = portal
        .install
        .command(&["--json", "sync", "--connector", "hubspot"])
        .output()
        .expect("journeyd runs");
    assert_eq!(output.status.code(), Some(1), "a failed sync");
    let synced: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the sync's JSON");
    let error = synced["synced"][0]["error"].as_str().unwrap_or_default();
    let until = error
        .split_once("rate limited until ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no \"rate limited until\": {synced}"));
    let until = chrono::NaiveDateTime::parse_from_str(&until[..19], "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("no time after it ({e}): {error}"))
        .and_utc();
    let ahead = (until - started).num_seconds();
    assert!((7_190..=7_300).contains(&ahead), "{until}: {ahead} s ahead");
    assert_eq!(faults.injected().rate_limited, 1, "one 429, no retry");
}

/// `journeyd demo`, stopped by `signo` once its sync has begun.
fn demo_stopped_mid_sync(signo: libc::c_int) {
    let mut child = crate::support::journeyd()
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("journeyd starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no sync began:\n{}",
            seen.join("\n")
        );
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the demo ended first:\n{}", seen.join("\n")))
            .expect("a line");
        let syncing = line.starts_with("== sync every CRM");
        seen.push(line);
        if syncing {
            break;
        }
    }
    let status = stop(&mut child, signo);
    assert_eq!(status.code(), Some(128 + signo), "{status:?}");
    seen.extend(lines.map_while(Result::ok));
    let shown = seen.join("\n");
    for step in [
        "== audit every record",
        "== the violations log",
        "== write-back",
    ] {
        assert!(
            !shown.contains(step),
            "the demo went on to {step:?}:\n{shown}"
        );
    }
}

#[test]
fn the_demo_interrupted_by_sigint_stops_with_130_and_runs_no_further_step() {
    demo_stopped_mid_sync(libc::SIGINT);
}

#[test]
fn the_demo_stopped_by_sigterm_stops_with_143_and_runs_no_further_step() {
    demo_stopped_mid_sync(libc::SIGTERM);
}

/// A write-back whose create HubSpot answers "come back in 10 s" (inside
/// the send window, so the client waits), stopped by SIGINT in that wait:
/// the batch in hand is recorded (certainly not written), the command
/// exits 130 within a second, and the next run writes every task once.
#[test]
fn a_writeback_in_a_retry_after_wait_stops_within_a_second_of_sigint_with_130_and_records_its_batch()
 {
    use crate::writeback_crash::{Crm, apply, assert_exactly_once, prepare};
    let portal = Portal::configured(80, Auth::PrivateApp, |config| {
        let hubspot = &mut config["connectors"]["hubspot"];
        hubspot["search_lag_seconds"] = toml_edit::value(1);
        hubspot["paging"]["batch_limit"] = toml_edit::value(5);
    });
    let expected = prepare(&portal);
    let faults = portal.emulator.faults();
    faults.storm(1_000, Some(Duration::from_secs(10)));
    let mut child = portal
        .install()
        .command(&["writeback", "--apply", "--connector", "hubspot"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("journeyd starts");
    wait_for(|| faults.injected().rate_limited >= 1, "a 429 was served");
    let status = stop(&mut child, libc::SIGINT);
    faults.storm(0, None);
    assert_eq!(status.code(), Some(130), "{status:?}");
    let db = rusqlite::Connection::open(portal.install().path("state.sqlite"))
        .expect("the state file opens");
    let unconfirmed: i64 = db
        .query_row(
            "SELECT count(*) FROM writeback_ledger WHERE state IN ('pending', 'sent')",
            [],
            |row| row.get(0),
        )
        .expect("the ledger is readable");
    assert_eq!(unconfirmed, 0, "the batch in hand was recorded");
    assert!(portal.tasks_by_key().is_empty(), "nothing was written");
    apply(&portal);
    assert_exactly_once(&portal, &expected);
}
