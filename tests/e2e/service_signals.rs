//! `journeyd run` under an audit of tens of thousands of records: health
//! checks, admins' acknowledgements and SIGTERM do not wait for it; a run
//! killed mid-way is marked `interrupted` by the next command; SIGHUP
//! refreshes what `/healthz` lists; logged errors carry their causes.

use crate::environment::Environment;
use crate::service::{Daemon, eventually, free_port, get, runs, seconds_schedule};
use crate::support::Install;
use std::io::Write;
use std::time::{Duration, Instant};
use toml_edit::{DocumentMut, value};

/// Enough leads that the daemon's audit (a debug build) runs for seconds.
const LEADS: usize = 80_000;

/// A Dataverse environment of a few deals, synced every second, audited
/// every other second, with a health listener on `port`. Only deals are
/// pulled, so that imported leads stay as imported.
fn environment(port: u16) -> Environment {
    Environment::at(chrono::Utc::now(), 5, |config: &mut DocumentMut| {
        seconds_schedule(config, "*/2 * * * * *");
        config["connectors"]["dynamics"]["objects"] = value(toml_edit::Array::from_iter(["deal"]));
        config["service"]["health_listen"] = value(format!("127.0.0.1:{port}"));
        config["writeback"]["mode"] = value("dry-run");
    })
}

/// Imports `count` ownerless leads of the Dataverse connector, ids from
/// `first` on: each breaks rules, so an audit has work to write.
fn import_leads(install: &Install, first: usize, count: usize) {
    let path = install.path(&format!("leads-{first}.jsonl"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("a lead file"));
    for i in first..first + count {
        writeln!(
            file,
            r#"{{"type":"record","system":"dynamics","object":"lead","id":"L{i}","name":"Lead {i}","created_at":"2026-01-05T10:00:00Z","modified_at":"2026-11-01T10:00:00Z","email":"lead{i}@example.com"}}"#
        )
        .expect("a lead line");
    }
    file.flush().expect("the lead file is written");
    drop(file);
    install.run(&[
        "import",
        path.to_str().expect("a UTF-8 path"),
        "--connector",
        "dynamics",
    ]);
}

/// A few leads audited, so that there is a violation to acknowledge, then
/// many more the next audit will find new.
fn seed(env: &Environment) -> String {
    import_leads(&env.install, 0, 10);
    env.install.run(&["audit"]);
    let open = env.install.json(&["violations", "list"]);
    let id = open[0]["id"].to_string();
    import_leads(&env.install, 10, LEADS);
    id
}

/// The audit runs in the state file: `(id, status)`, oldest first.
fn audits(env: &Environment) -> Vec<(i64, String)> {
    let db = rusqlite::Connection::open(env.install.path("state.sqlite")).expect("the state opens");
    let mut stmt = db
        .prepare("SELECT id, status FROM runs WHERE kind = 'audit' ORDER BY id")
        .expect("runs are readable");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("runs are readable")
        .collect::<Result<_, _>>()
        .expect("runs are readable")
}

/// Waits for the daemon's audit to be under way: its run row `running`
/// (the `STATUS=` line comes before the row is written).
fn wait_for_running_audit(env: &Environment, daemon: &mut Daemon) {
    daemon.wait_for(Duration::from_secs(60), |line| {
        line.starts_with("STATUS=") && line.contains("running audit")
    });
    eventually(Duration::from_secs(30), "the audit's run row", || {
        audits(env)
            .last()
            .is_some_and(|(_, status)| status == "running")
    });
}

#[test]
fn during_an_audit_healthz_answers_an_ack_succeeds_and_sigterm_stops_it_as_interrupted() {
    let port = free_port();
    let env = environment(port);
    let id = seed(&env);
    let mut daemon = Daemon::start(&env, None);
    wait_for_running_audit(&env, &mut daemon);

    // The issue asks for answers under 200 ms (benches/healthz_audit.rs
    // measures them); this bound is generous, for a loaded test machine,
    // and still far below the length of the audit it must not wait for.
    for _ in 0..10 {
        let asked = Instant::now();
        let (status, body) = get(port, "/healthz");
        assert!(status.contains(" 200 "), "{status}: {body}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "/healthz took {:?} during the audit",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ack = env
        .install
        .command(&["violations", "ack", &id, "--reason", "known gap"])
        .output()
        .expect("journeyd runs");
    assert!(
        ack.status.success(),
        "the ack failed during the audit: {}",
        String::from_utf8_lossy(&ack.stderr)
    );

    let running = audits(&env);
    assert_eq!(
        running.last().map(|(_, status)| status.as_str()),
        Some("running"),
        "the audit was still going when SIGTERM came: {running:?}"
    );
    let stopped = Instant::now();
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    // The issue asks for 2 s; the bench prints the figure. Generous here.
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "SIGTERM took {:?}",
        stopped.elapsed()
    );

    let (run, status) = audits(&env).pop().expect("the daemon's audit run");
    assert_eq!(status, "interrupted");
    let db = rusqlite::Connection::open(env.install.path("state.sqlite")).expect("the state opens");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("an integrity check");
    assert_eq!(check, "ok");
    let resolved: i64 = db
        .query_row(
            "SELECT count(*) FROM violation_events WHERE run_id = ?1 AND kind = 'resolved'",
            [run],
            |row| row.get(0),
        )
        .expect("events are readable");
    assert_eq!(resolved, 0, "an audit that did not finish resolves nothing");
    let acked: String = db
        .query_row(
            "SELECT status FROM violations WHERE id = ?1",
            [id.parse::<i64>().expect("a numeric id")],
            |row| row.get(0),
        )
        .expect("the acknowledged violation");
    assert_eq!(acked, "acknowledged");
}

#[test]
fn a_run_left_running_by_a_killed_daemon_is_marked_interrupted_by_the_next_command() {
    let env = environment(free_port());
    seed(&env);
    let mut daemon = Daemon::start(&env, None);
    wait_for_running_audit(&env, &mut daemon);
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    let (killed, status) = audits(&env).pop().expect("the daemon's audit run");
    assert_eq!(status, "running", "killed mid-way, the row says running");

    // A read-only command writes nothing, this mark included.
    env.install.run(&["violations", "list", "--status", "open"]);
    assert_eq!(audits(&env).pop(), Some((killed, "running".to_owned())));

    env.install.run(&["sync"]);

    let after = audits(&env);
    assert!(
        after.contains(&(killed, "interrupted".to_owned())),
        "{after:?}"
    );
    assert!(
        runs(&env).iter().all(|(_, status)| status != "running"),
        "no process is left to finish any run: {:?}",
        runs(&env)
    );
}

#[test]
fn sighup_with_another_connector_set_changes_what_healthz_lists() {
    let port = free_port();
    let env = Environment::at(chrono::Utc::now(), 5, |config| {
        seconds_schedule(config, "0 0 3 1 1 *");
        config["service"]["health_listen"] = value(format!("127.0.0.1:{port}"));
    });
    let mut daemon = Daemon::start(&env, None);
    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    let (_, before) = get(port, "/healthz");
    assert!(before.contains(r#""connector":"dynamics""#), "{before}");

    let config_path = env.install.config_path();
    let old = std::fs::read_to_string(config_path).expect("the config reads");
    let renamed = old.replace("connectors.dynamics", "connectors.dataverse");
    assert_ne!(renamed, old);
    std::fs::write(config_path, renamed).expect("written");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("STATUS=") && line.contains("config reloaded")
    });

    let (status, after) = get(port, "/healthz");
    assert!(status.contains(" 200 "), "{status}: {after}");
    assert!(after.contains(r#""connector":"dataverse""#), "{after}");
    assert!(!after.contains(r#""connector":"dynamics""#), "{after}");
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn a_refused_reload_is_logged_with_every_cause_of_its_error() {
    let env = Environment::at(chrono::Utc::now(), 5, |config| {
        seconds_schedule(config, "0 0 3 1 1 *");
    });
    let credentials = tempfile::tempdir().expect("an empty credentials directory");
    let mut daemon = Daemon::start_with(
        &env,
        &[(
            "CREDENTIALS_DIRECTORY",
            credentials.path().to_str().expect("a UTF-8 path"),
        )],
    );
    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    let config_path = env.install.config_path();
    let old = std::fs::read_to_string(config_path).expect("the config reads");
    let mut config: DocumentMut = old.parse().expect("TOML");
    let mut secret = toml_edit::InlineTable::new();
    secret.insert("credential", "dynamics-secret".into());
    config["connectors"]["dynamics"]["secret"] = value(secret);
    std::fs::write(config_path, config.to_string()).expect("written");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("STATUS=") && line.contains("reload refused")
    });

    let log = daemon.log();
    let line = log
        .lines()
        .find(|line| {
            line.contains("could not be built") || line.contains("\"config reload refused\"")
        })
        .unwrap_or_else(|| panic!("no refused reload in\n{log}"));
    let logged: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    let error = logged["fields"]["error"].as_str().expect("an error field");
    // The credential file's absence is the lowest cause, from the OS.
    assert!(
        error.contains("No such file or directory"),
        "the cause is missing from {error:?}"
    );
}

#[test]
fn sigterm_stops_journeyd_audit_after_the_chunk_in_hand_as_interrupted() {
    let env = environment(free_port());
    seed(&env);
    let mut audit = env
        .install
        .command(&["audit"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("journeyd audit starts");
    eventually(Duration::from_secs(30), "the audit's run row", || {
        audits(&env).len() == 2 && audits(&env)[1].1 == "running"
    });
    // SAFETY: kill(2) on the pid of a child this test spawned and has not
    // reaped; no memory is shared.
    assert_eq!(
        unsafe { libc::kill(audit.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = audit.try_wait().expect("the audit can be waited on") {
            break status;
        }
        assert!(Instant::now() < deadline, "journeyd audit did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(143));
    assert_eq!(audits(&env)[1].1, "interrupted");
}

/// A sync the CRM told to come back in two minutes is waiting when SIGTERM
/// comes: the wait ends, and the service exits well inside its 25 s grace.
#[test]
fn sigterm_ends_a_services_sync_waiting_out_a_retry_after() {
    let env = Environment::at(chrono::Utc::now(), 5, |config: &mut DocumentMut| {
        seconds_schedule(config, "0 0 3 1 1 *");
    });
    let faults = env.emulator.faults();
    faults.storm(1_000, Some(Duration::from_secs(120)));
    let mut daemon = Daemon::start(&env, None);
    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    eventually(Duration::from_secs(30), "a 429 was served", || {
        faults.injected().rate_limited >= 1
    });

    daemon.signal(libc::SIGTERM);
    let signalled = Instant::now();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    // Without the stop reaching the wait, the service waits its grace out.
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    assert_eq!(faults.injected().rate_limited, 1, "nothing more was sent");
}
