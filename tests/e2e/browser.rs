//! The console in a real browser: Debian's headless Chromium, driven over
//! the DevTools protocol on a pipe, loads each page while the test collects
//! every console message, uncaught exception, script dialog and logged
//! error (a refused resource, a Content-Security-Policy violation).
//!
//! `.ci/run` installs Chromium (`apt-get install chromium`) when missing.

use crate::console::{Served, audited};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// How long one answer or page load may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// Every event a page's session sent that says something went wrong.
const TROUBLE: [&str; 4] = [
    "Runtime.exceptionThrown",
    "Runtime.consoleAPICalled",
    "Page.javascriptDialogOpening",
    "Log.entryAdded",
];

struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    /// Events read while waiting for an answer, oldest first.
    events: Vec<Value>,
    next: u64,
    _profile: tempfile::TempDir,
}

/// What a page showed and what went wrong on it.
struct Visit {
    html: String,
    trouble: Vec<Value>,
    scripts: u64,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(made, 0, "a pipe");
    // SAFETY: pipe2 succeeded, so both are open descriptors we now own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        // Chromium reads commands on fd 3 and writes answers on fd 4.
        let (their_in, our_out) = pipe();
        let (our_in, their_out) = pipe();
        let (input, output) = (their_in.as_raw_fd(), their_out.as_raw_fd());
        let mut command = Command::new("chromium");
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only fcntl and dup2 run, which are
        // async-signal-safe. The ends are first copied above 10, so that
        // neither is already 3 or 4 (dup2 onto itself would leave it
        // close-on-exec); the copies onto 3 and 4 stay open across exec.
        unsafe {
            command.pre_exec(move || {
                let input = libc::fcntl(input, libc::F_DUPFD, 10);
                let output = libc::fcntl(output, libc::F_DUPFD, 10);
                if input < 0 || output < 0 || libc::dup2(input, 3) < 0 || libc::dup2(output, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("chromium does not start ({error}): install it with `apt-get install chromium`")
        });
        drop((their_in, their_out));
        let (sent, messages) = channel();
        let mut reader = BufReader::new(File::from(our_in));
        std::thread::spawn(move || {
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop();
                if let Ok(value) = serde_json::from_slice(&message)
                    && sent.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Browser {
            child,
            commands: File::from(our_out),
            messages,
            events: Vec::new(),
            next: 0,
            _profile: profile,
        }
    }

    /// Sends `method` (to the page `session`, if given) and waits for its
    /// answer, keeping the events that come meanwhile.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .expect("chromium takes the command");
        let answer = self.wait(|message| message["id"] == id, method);
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The first message `wanted` takes, within [`PATIENCE`].
    fn wait(&mut self, wanted: impl Fn(&Value) -> bool, what: &str) -> Value {
        if let Some(at) = self.events.iter().position(&wanted) {
            return self.events.remove(at);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {what} within {PATIENCE:?}"));
            if wanted(&message) {
                return message;
            }
            self.events.push(message);
        }
    }

    /// Opens `url` in a new tab, waits for it to load, and reads it.
    fn visit(&mut self, url: &str) -> Visit {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().expect("a target id").to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        let session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(Some(&session), domain, json!({}));
        }
        self.call(Some(&session), "Page.navigate", json!({ "url": url }));
        self.wait(
            |m| m["method"] == "Page.loadEventFired" && m["sessionId"] == session.as_str(),
            url,
        );
        let read = |browser: &mut Browser, expression: &str| {
            browser.call(
                Some(&session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )["result"]["value"]
                .clone()
        };
        let html = read(self, "document.documentElement.outerHTML");
        let scripts = read(self, "document.scripts.length");
        let trouble = self
            .events
            .iter()
            .filter(|m| {
                m["sessionId"] == session.as_str()
                    && TROUBLE.contains(&m["method"].as_str().unwrap_or(""))
            })
            .cloned()
            .collect();
        self.call(None, "Target.closeTarget", json!({ "targetId": target }));
        self.events.retain(|m| m["sessionId"] != session.as_str());
        Visit {
            html: html.as_str().unwrap_or_default().to_owned(),
            trouble,
            scripts: scripts.as_u64().unwrap_or(u64::MAX),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_browser_harness_reports_a_page_that_errs() {
    let mut browser = Browser::launch();
    let visit =
        browser.visit("data:text/html,<p>x</p><script>console.error('boom'); missing();</script>");
    assert!(visit.trouble.len() >= 2, "{:?}", visit.trouble);
    assert_eq!(visit.scripts, 1);
}

#[test]
fn every_page_loads_in_chromium_with_no_console_error_and_owner_names() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    let mut browser = Browser::launch();
    for path in [
        "/",
        "/violations",
        "/violations?status=all&q=acme",
        "/owners",
        "/journey",
        "/runs",
        "/records/hubspot/deal/1",
    ] {
        let visit = browser.visit(&served.url(path));
        assert!(visit.trouble.is_empty(), "{path}: {:?}", visit.trouble);
        assert_eq!(visit.scripts, 0, "{path}");
        assert!(visit.html.contains("</main>"), "{path}: {}", visit.html);
    }
    let log = browser.visit(&served.url("/violations"));
    assert!(log.html.contains(">Mara Quinn<"), "{}", log.html);
}

#[test]
fn a_record_named_like_a_script_runs_nothing_in_chromium() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    let mut browser = Browser::launch();
    for path in ["/violations", "/records/hubspot/deal/2"] {
        let visit = browser.visit(&served.url(path));
        assert!(visit.trouble.is_empty(), "{path}: {:?}", visit.trouble);
        assert_eq!(visit.scripts, 0, "{path}");
        assert!(
            visit.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {}",
            visit.html
        );
    }
}
