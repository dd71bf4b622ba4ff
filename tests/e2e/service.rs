//! `journeyd run` as systemd runs it: the real binary as a daemon against
//! an emulated Dataverse environment, on a seconds-level schedule, talking
//! to a notify socket of the test's own, stopped and reloaded by signals.

use crate::environment::Environment;
use journeyd_dynamics_emulator::Table;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toml_edit::{DocumentMut, value};

/// A service schedule that fires within seconds: a sync every second and
/// the audit every `audit_every` seconds.
pub(crate) fn seconds_schedule(config: &mut DocumentMut, audit: &str) {
    config["schedule"]["sync"] = value("* * * * * *");
    config["schedule"]["audit"] = value(audit);
    // The service builds every configured connector; this one runs only
    // the emulated Dynamics environment.
    let connectors = config["connectors"].as_table_mut().expect("connectors");
    connectors.remove("hubspot");
    connectors.remove("salesforce");
}

/// The running daemon, and what it told the notify socket. The socket is
/// read all the time, as systemd does: a datagram socket whose reader
/// dawdles fills up, and the sender's next messages are lost.
pub(crate) struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    messages: Arc<Mutex<Vec<String>>>,
    /// How many messages `wait_for` has looked at.
    seen: usize,
}

impl Daemon {
    pub(crate) fn start(env: &Environment, watchdog: Option<Duration>) -> Daemon {
        Self::launch(env, watchdog, &[])
    }

    /// As [`Daemon::start`], with `vars` added to its environment.
    pub(crate) fn start_with(env: &Environment, vars: &[(&str, &str)]) -> Daemon {
        Self::launch(env, None, vars)
    }

    fn launch(env: &Environment, watchdog: Option<Duration>, vars: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path: PathBuf = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("the notify socket binds");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let heard = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends when the test drops its end: the list's last owner.
            while Arc::strong_count(&heard) > 1 {
                if let Ok(n) = socket.recv(&mut buffer) {
                    let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    heard.lock().expect("the message list").push(message);
                }
            }
        });
        let mut command = env.install.command(&["run"]);
        command
            .env("NOTIFY_SOCKET", &path)
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("journeyd.log")).expect("a log file"));
        if let Some(limit) = watchdog {
            command.env("WATCHDOG_USEC", limit.as_micros().to_string());
        }
        let child = command.spawn().expect("journeyd run starts");
        Daemon {
            child,
            _dir: dir,
            messages,
            seen: 0,
        }
    }

    /// What the daemon logged so far (JSON lines: its stderr is no terminal).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("journeyd.log")).unwrap_or_default()
    }

    /// Waits at most `limit` for a message, after those already looked at,
    /// with a line `wanted` says yes to; returns that line.
    pub(crate) fn wait_for(&mut self, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let messages = self.messages.lock().expect("the message list").clone();
            for message in &messages[self.seen..] {
                self.seen += 1;
                if let Some(line) = message.lines().find(|line| wanted(line)) {
                    return line.to_owned();
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("journeyd run exited early: {status}; said {messages:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let messages = self.messages.lock().expect("the message list").clone();
        panic!("no such notify message within {limit:?}; got {messages:?}");
    }

    pub(crate) fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child this test spawned and has
        // not reaped; no memory is shared.
        let done = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(done, 0, "the signal was sent");
    }

    /// Waits at most `limit` for the daemon to exit; its exit code.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("journeyd run did not exit within {limit:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finished runs in the state file: `(kind, status)`.
pub(crate) fn runs(env: &Environment) -> Vec<(String, String)> {
    let Ok(db) = rusqlite::Connection::open(env.install.path("state.sqlite")) else {
        return Vec::new();
    };
    let Ok(mut stmt) = db.prepare("SELECT kind, status FROM runs ORDER BY id") else {
        return Vec::new();
    };
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn count(env: &Environment, kind: &str, status: &str) -> usize {
    runs(env)
        .iter()
        .filter(|(k, s)| k == kind && s == status)
        .count()
}

/// Polls `done` every 100 ms for at most `limit`.
pub(crate) fn eventually(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` on 127.0.0.1:`port`: the status line and the body.
pub(crate) fn get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the health listener answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("the request goes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn the_service_is_ready_syncs_and_audits_on_schedule_pings_the_watchdog_and_stops_on_sigterm() {
    let port = free_port();
    let env = Environment::at(chrono::Utc::now(), 20, |config| {
        seconds_schedule(config, "*/4 * * * * *");
        config["service"]["health_listen"] = value(format!("127.0.0.1:{port}"));
    });
    let mut daemon = Daemon::start(&env, Some(Duration::from_secs(4)));

    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    eventually(Duration::from_secs(60), "two syncs and an audit", || {
        count(&env, "sync", "ok") >= 2 && count(&env, "audit", "ok") >= 1
    });
    daemon.wait_for(Duration::from_secs(5), |line| line == "WATCHDOG=1");
    daemon.wait_for(Duration::from_secs(5), |line| line == "WATCHDOG=1");
    daemon.wait_for(Duration::from_secs(5), |line| {
        line.starts_with("STATUS=") && line.contains("last ")
    });
    let (status, health) = get(port, "/healthz");
    assert!(status.contains(" 200 "), "{status}: {health}");
    assert!(health.contains("\"dynamics\""), "{health}");
    let (status, metrics) = get(port, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    for series in [
        r#"journeyd_sync_records_total{connector="dynamics",kind="new"}"#,
        r#"journeyd_api_limit_requests{connector="dynamics"} 6000"#,
        r#"journeyd_runs_total{kind="audit",status="ok"}"#,
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }
    let started = Instant::now();
    daemon.signal(libc::SIGTERM);

    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(30));
    let db = rusqlite::Connection::open(env.install.path("state.sqlite")).expect("the state opens");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("an integrity check");
    assert_eq!(check, "ok");
    assert_every_deal_stored(&env, &db);
}

#[test]
fn after_sigkill_mid_sync_a_restart_resumes_from_the_saved_cursor() {
    let env = Environment::at(chrono::Utc::now(), 60, |config| {
        seconds_schedule(config, "0 0 3 1 1 *");
        let dynamics = &mut config["connectors"]["dynamics"];
        dynamics["objects"] = value(toml_edit::Array::from_iter(["deal"]));
        dynamics["paging"]["page_size"] = value(5);
    });
    env.emulator.faults().set_delay(Duration::from_millis(150));
    let mut daemon = Daemon::start(&env, None);
    let cursor = || -> Option<String> {
        let db = rusqlite::Connection::open(env.install.path("state.sqlite")).ok()?;
        db.query_row(
            "SELECT cursor FROM watermarks WHERE connector = 'dynamics' AND object = 'deal'",
            [],
            |row| row.get(0),
        )
        .ok()
        .flatten()
    };
    eventually(Duration::from_secs(60), "a page stored mid-pull", || {
        cursor().is_some()
    });
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    let reads_before = env.emulator.counts().snapshot();
    let resumed_from = cursor().expect("the cursor survived the kill");

    let _restarted = Daemon::start(&env, None);
    eventually(
        Duration::from_secs(60),
        "a sync that reads every deal",
        || count(&env, "sync", "ok") >= 1,
    );

    let pages_after: u64 = env
        .emulator
        .counts()
        .snapshot()
        .iter()
        .filter(|(route, _)| route.starts_with("GET /api/data/v9.2/opportunities"))
        .map(|(route, n)| n - reads_before.get(route).copied().unwrap_or(0))
        .sum();
    let pages = (env.emulator.ids(Table::Opportunity).len() as u64).div_ceil(5);
    assert!(
        pages_after < pages,
        "the restart read {pages_after} pages of {pages}: it began again instead of at {resumed_from}"
    );
    let db = rusqlite::Connection::open(env.install.path("state.sqlite")).expect("the state opens");
    assert_every_deal_stored(&env, &db);
}

/// Every opportunity the environment serves is a live deal in the store.
fn assert_every_deal_stored(env: &Environment, db: &rusqlite::Connection) {
    let deals: usize = db
        .query_row(
            "SELECT count(*) FROM records WHERE object = 'deal' AND deleted_at IS NULL",
            [],
            |row| row.get(0),
        )
        .expect("records are readable");
    assert_eq!(deals, env.emulator.ids(Table::Opportunity).len());
}

#[test]
fn sighup_keeps_the_running_config_when_the_new_one_is_broken_and_takes_a_good_one() {
    let env = Environment::at(chrono::Utc::now(), 20, |config| {
        seconds_schedule(config, "0 0 3 1 1 *");
    });
    let mut daemon = Daemon::start(&env, None);
    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    let config_path = env.install.config_path();
    let good = std::fs::read_to_string(config_path).expect("the config reads");

    std::fs::write(
        config_path,
        good.replace("[schedule]", "[schedule]\nsnyc = 5"),
    )
    .expect("written");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("STATUS=") && line.contains("reload refused")
    });
    let before = count(&env, "sync", "ok");
    eventually(Duration::from_secs(30), "syncs on the old schedule", || {
        count(&env, "sync", "ok") >= before + 2
    });

    // The good config differs from the running one (audits every second
    // instead of once a year), so that taking it shows.
    assert_eq!(count(&env, "audit", "ok"), 0);
    let mut taken: DocumentMut = good.parse().expect("the config parses");
    taken["schedule"]["audit"] = value("* * * * * *");
    std::fs::write(config_path, taken.to_string()).expect("written");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("STATUS=") && line.contains("config reloaded")
    });
    eventually(
        Duration::from_secs(30),
        "audits on the new schedule",
        || count(&env, "audit", "ok") >= 1,
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn the_service_refuses_to_start_with_the_problems_config_check_names() {
    let env = Environment::at(chrono::Utc::now(), 5, |config| {
        seconds_schedule(config, "0 0 3 1 1 *");
        config["schedule"]["sync"] = value("every minute");
    });
    let output = env.install.run_expecting(2, &["run"]);
    let check = env.install.run_expecting(2, &["config", "check"]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("every minute"), "{said}");
    assert_eq!(
        said.lines().next(),
        String::from_utf8_lossy(&check.stderr).lines().next()
    );
}
