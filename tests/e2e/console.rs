//! `journeyd console`: the real binary serving its pages over a real state
//! file, read over loopback HTTP.

use crate::support::{Install, deal_line, journeyd, owner_line, stderr, stdout};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A console the test started; stopped with SIGTERM when dropped.
pub(crate) struct Served {
    child: Child,
    port: u16,
}

impl Served {
    /// Starts `command` (a `journeyd console` on port 0) and reads the
    /// address it prints, within 30 s.
    pub(crate) fn start(mut command: Command) -> Served {
        command.args(["console", "--listen", "127.0.0.1:0"]);
        Served::watch(command, Duration::from_secs(30))
    }

    /// Starts `command` and reads its output until it says where its
    /// console listens, within `limit`.
    fn watch(mut command: Command, limit: Duration) -> Served {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("journeyd starts");
        let out = child.stdout.take().expect("its stdout");
        let (said, heard) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let port = BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| {
                    line.trim()
                        .strip_prefix("console: http://127.0.0.1:")
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|port| port.parse::<u16>().ok())
                });
            let _ = said.send(port);
        });
        let port = heard
            .recv_timeout(limit)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no console address within {limit:?}"));
        Served { child, port }
    }

    /// Sends SIGTERM and waits at most 30 s for the exit code.
    fn stop(mut self) -> Option<i32> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signals a child this test started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The address of `path` on this console.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path`: the status, the head and the body.
    fn get(&self, path: &str) -> Answer {
        self.get_with(path, "")
    }

    /// `GET path` with `headers` (each ending in CRLF).
    fn get_with(&self, path: &str, headers: &str) -> Answer {
        self.request(&format!(
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n"
        ))
    }

    /// `POST path` of a form whose fields are `form` (URL-encoded).
    fn post(&self, path: &str, form: &str) -> Answer {
        self.post_with(path, form, "")
    }

    /// `POST path` of `form` with `headers` (each ending in CRLF).
    fn post_with(&self, path: &str, form: &str, headers: &str) -> Answer {
        self.request(&format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{form}",
            form.len()
        ))
    }

    /// Sends `request` whole and reads the answer to its end.
    fn request(&self, request: &str) -> Answer {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the console answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        stream
            .write_all(request.as_bytes())
            .expect("the request goes");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("an answer");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Answer {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    /// `GET path`, which must answer 200.
    fn page(&self, path: &str) -> String {
        let answer = self.get(path);
        assert_eq!(answer.status, 200, "{path}:\n{}", answer.body);
        answer.body
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A child already reaped is not signalled: its pid may be another's.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signals a child this test started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// A HubSpot portal of two deals, one owned by Mara Quinn and one named
/// like a script, audited.
pub(crate) fn audited() -> Install {
    let install = Install::new();
    install.import_lines(
        "deals.jsonl",
        &[
            owner_line("101", "Mara Quinn"),
            deal_line("1", "Acme renewal", Some("101")),
            deal_line("2", "<script>alert(1)</script>", None),
        ],
    );
    install.run(&["audit"]);
    install
}

#[test]
fn every_page_renders_behind_headers_that_allow_no_script() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    for path in [
        "/",
        "/violations",
        "/violations?status=all&severity=medium&q=acme",
        "/owners",
        "/journey",
        "/runs",
        "/records/hubspot/deal/1",
    ] {
        let answer = served.get(path);
        assert_eq!(answer.status, 200, "{path}:\n{}", answer.body);
        assert!(answer.body.starts_with("<!DOCTYPE html>"), "{path}");
        for header in [
            "content-security-policy: default-src 'none'; style-src 'self';",
            "frame-ancestors 'none'",
            "x-content-type-options: nosniff",
        ] {
            assert!(
                answer.head.contains(header),
                "{path}: {header}\n{}",
                answer.head
            );
        }
        assert!(!answer.body.contains("<script"), "{path} holds a script");
    }
    let css = served.get("/static/console.css");
    assert_eq!(css.status, 200);
    assert!(css.head.contains("content-type: text/css"), "{}", css.head);
}

#[test]
fn owners_show_by_name_on_the_log_the_record_and_the_owners_page() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    for path in ["/violations", "/records/hubspot/deal/1", "/owners"] {
        let page = served.page(path);
        assert!(page.contains(">Mara Quinn<"), "{path}:\n{page}");
        assert!(
            !page.contains(">101<"),
            "{path} shows the owner's id:\n{page}"
        );
    }
}

#[test]
fn the_cli_names_owners_in_its_tables_and_its_json() {
    let install = audited();
    let listed = install.json(&["violations", "list"]);
    let rows = listed.as_array().expect("rows");
    let owned = rows
        .iter()
        .find(|row| row["record_id"] == "1")
        .expect("deal 1's violation");
    assert_eq!(owned["owner_id"], "101");
    assert_eq!(owned["owner_name"], "Mara Quinn");
    for args in [&["violations", "list"][..], &["report"][..]] {
        let printed = stdout(&install.run(args));
        assert!(printed.contains("Mara Quinn"), "{args:?}:\n{printed}");
    }
    let report = install.json(&["report"]);
    let hers = report["by_owner"]
        .as_array()
        .expect("owners")
        .iter()
        .find(|row| row["owner_id"] == "101")
        .expect("her row");
    assert_eq!(hers["owner_name"], "Mara Quinn");
}

#[test]
fn a_record_named_like_a_script_is_shown_as_text() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    for path in ["/violations", "/records/hubspot/deal/2"] {
        let page = served.page(path);
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}:\n{page}"
        );
        assert!(!page.contains("<script>alert"), "{path}");
    }
}

/// The form token a record page's forms carry, and the id of the first
/// violation it offers to change.
fn form_of(page: &str) -> (String, String) {
    let after = |marker: &str| -> String {
        let start = page
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in\n{page}"))
            + marker.len();
        page[start..]
            .split(['"', '/'])
            .next()
            .expect("a value")
            .to_owned()
    };
    (
        after("name=\"csrf\" value=\""),
        after("action=\"/violations/"),
    )
}

#[test]
fn an_admin_acknowledges_a_violation_on_its_record_page_and_its_history_says_who_and_why() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    let (token, id) = form_of(&served.page("/records/hubspot/deal/1"));

    let answer = served.post(
        &format!("/violations/{id}/acknowledge"),
        &format!("csrf={token}&reason=known+to+sales&until="),
    );

    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer
            .head
            .contains(&format!("location: /records/hubspot/deal/1#v{id}")),
        "{}",
        answer.head
    );
    let shown = install.json(&["violations", "show", &id]);
    assert_eq!(shown["violation"]["status"], "acknowledged");
    let events = shown["events"].as_array().expect("events");
    let last = events.last().expect("an event");
    assert_eq!(last["actor"], "dana (console)");
    assert_eq!(last["reason"], "known to sales");
    let page = served.page("/records/hubspot/deal/1");
    assert!(
        page.contains("acknowledged by dana (console) (known to sales)"),
        "{page}"
    );
}

/// The form token of a violations page, and the ticks it offers: an id,
/// or the ids of an entry that stands for several, spaced.
fn ticks_of(page: &str) -> (String, Vec<String>) {
    let token = token_of(page);
    let marker = "name=\"id\" value=\"";
    let ids = page
        .match_indices(marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            rest[..rest.find('"').expect("the id ends")].to_owned()
        })
        .collect();
    (token, ids)
}

/// The form token a page's forms carry.
fn token_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a token") + marker.len();
    page[start..start + page[start..].find('"').expect("its end")].to_owned()
}

#[test]
fn an_admin_acknowledges_the_violations_ticked_on_the_log_at_once() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    let (token, ticks) = ticks_of(&served.page("/violations"));
    let ids: Vec<&String> = ticks.iter().filter(|tick| !tick.contains(' ')).collect();
    assert!(ids.len() >= 3, "{ticks:?}");
    let form = format!(
        "csrf={token}&reason=triaged&back=%2Fviolations&id={}&id={}",
        ids[0], ids[1]
    );

    let answer = served.post("/violations/bulk/acknowledge", &form);

    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer.head.contains("location: /violations?done=2+changed"),
        "{}",
        answer.head
    );
    for (id, status) in [
        (ids[0], "acknowledged"),
        (ids[1], "acknowledged"),
        (ids[2], "open"),
    ] {
        let shown = install.json(&["violations", "show", id]);
        assert_eq!(shown["violation"]["status"], status, "{id}");
    }
    let again = served.post("/violations/bulk/acknowledge", &form);
    assert!(
        again.head.contains("done=0+changed%3b+2+left+as+they+were"),
        "{}",
        again.head
    );
}

#[test]
fn a_post_without_this_consoles_token_is_refused_with_403_and_changes_nothing() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    let (token, id) = form_of(&served.page("/records/hubspot/deal/1"));
    let before = install.json(&["violations", "show", &id]);
    let (made, signature) = token.split_once('.').expect("a token");
    let altered = format!("{}.{signature}", made.parse::<i64>().expect("a time") + 1);
    for form in [
        "reason=why".to_owned(),
        "csrf=&reason=why".to_owned(),
        format!("csrf={made}.{}&reason=why", "0".repeat(64)),
        format!("csrf={altered}&reason=why"),
    ] {
        let answer = served.post(&format!("/violations/{id}/suppress"), &form);
        assert_eq!(answer.status, 403, "{form}: {}", answer.body);
        assert!(
            answer.body.contains("Nothing was changed"),
            "{}",
            answer.body
        );
    }
    assert_eq!(install.json(&["violations", "show", &id]), before);
}

#[test]
fn report_html_writes_the_overview_as_one_self_contained_file() {
    let install = audited();
    let path = install.path("overview.html");
    let output = install.run(&["report", "--html", path.to_str().expect("a UTF-8 path")]);
    assert!(
        stderr(&output).contains("wrote the overview to"),
        "{}",
        stderr(&output)
    );
    let page = std::fs::read_to_string(&path).expect("the page is written");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("<style>") && page.contains("<svg"), "{page}");
    assert!(page.contains("Open by rule"), "{page}");
    for outside in ["<link", "<script", "src=", "href=\"/"] {
        assert!(!page.contains(outside), "{outside} in {page}");
    }
}

/// An installation whose config is the shipped one with `table` as its
/// `[console]` table.
fn with_console_table(table: &str) -> Install {
    let shipped = std::fs::read_to_string(crate::support::repo().join("config/journeyd.toml"))
        .expect("the shipped config");
    let journey = crate::support::repo().join("config/journey.toml");
    let config = format!(
        "{}\n[console]\n{table}\n",
        shipped.replace(
            "journey = \"journey.toml\"",
            &format!("journey = {journey:?}")
        )
    );
    Install::with_config(&config, Vec::new())
}

/// `install` with deal 1 of Mara Quinn's imported and audited.
fn seeded(install: Install) -> Install {
    install.import_lines(
        "deals.jsonl",
        &[
            owner_line("101", "Mara Quinn"),
            deal_line("1", "Acme renewal", Some("101")),
        ],
    );
    install.run(&["audit"]);
    install
}

/// A console behind a proxy at `proxy` that names users in
/// `X-Forwarded-User`, of whom dana is an admin.
fn behind_a_proxy(proxy: &str) -> Install {
    seeded(with_console_table(&format!(
        "auth = \"proxy\"\ntrusted_proxies = [\"{proxy}\"]\nadmins = [\"dana\"]"
    )))
}

const DANA: &str = "X-Forwarded-User: dana\r\n";
const VIC: &str = "X-Forwarded-User: vic\r\n";

#[test]
fn behind_a_proxy_an_admin_acts_under_the_name_the_proxy_gives() {
    let install = behind_a_proxy("127.0.0.1");
    let served = Served::start(install.command(&[]));
    let page = served.get_with("/records/hubspot/deal/1", DANA);
    assert_eq!(page.status, 200, "{}", page.body);
    let (token, id) = form_of(&page.body);
    let answer = served.post_with(
        &format!("/violations/{id}/acknowledge"),
        &format!("csrf={token}&reason=on+it"),
        DANA,
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    let shown = install.json(&["violations", "show", &id]);
    let events = shown["events"].as_array().expect("events");
    assert_eq!(events.last().expect("an event")["actor"], "dana");
}

#[test]
fn behind_a_proxy_a_viewer_sees_no_form_and_cannot_act() {
    let install = behind_a_proxy("127.0.0.1");
    let served = Served::start(install.command(&[]));
    let (token, id) = form_of(&served.get_with("/records/hubspot/deal/1", DANA).body);
    let before = install.json(&["violations", "show", &id]);

    let page = served.get_with("/records/hubspot/deal/1", VIC);
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<form"), "{}", page.body);
    let answer = served.post_with(
        &format!("/violations/{id}/acknowledge"),
        &format!("csrf={token}&reason=mine"),
        VIC,
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(install.json(&["violations", "show", &id]), before);
}

#[test]
fn behind_a_proxy_a_request_without_its_user_or_from_elsewhere_is_refused() {
    let install = behind_a_proxy("127.0.0.1");
    let served = Served::start(install.command(&[]));
    assert_eq!(served.get("/").status, 401);
    let elsewhere = behind_a_proxy("192.0.2.1");
    let served = Served::start(elsewhere.command(&[]));
    assert_eq!(served.get_with("/", DANA).status, 403);
}

/// A console with its own users: dana an admin, vic a viewer.
fn with_users() -> Install {
    let install = seeded(with_console_table(
        "auth = \"users\"\nusers_file = \"console-users\"",
    ));
    for (name, role, password) in [
        ("dana", "admin", "correct horse"),
        ("vic", "viewer", "battery"),
    ] {
        let mut add = install
            .command(&["console", "user", "add", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("journeyd runs");
        add.stdin
            .take()
            .expect("its stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("the password goes");
        let output = add.wait_with_output().expect("journeyd ends");
        assert!(output.status.success(), "{}", stderr(&output));
    }
    install
}

/// Signs `name` in with `password`: the answer to the sign-in.
fn sign_in(served: &Served, name: &str, password: &str) -> Answer {
    let token = token_of(&served.page("/login"));
    served.post(
        "/login",
        &format!(
            "csrf={token}&name={name}&password={}&next=%2F",
            password.replace(' ', "+")
        ),
    )
}

/// The session cookie an answer sets, as a `Cookie` header line.
fn session_cookie(answer: &Answer) -> String {
    let start = answer
        .head
        .find("set-cookie: journeyd_session=")
        .unwrap_or_else(|| panic!("no session cookie in {}", answer.head))
        + "set-cookie: ".len();
    let pair = answer.head[start..].split(';').next().expect("the cookie");
    format!("Cookie: {pair}\r\n")
}

#[test]
fn with_its_own_users_the_console_sends_strangers_to_sign_in_and_lets_admins_act() {
    let install = with_users();
    let served = Served::start(install.command(&[]));
    let stranger = served.get("/violations");
    assert_eq!(stranger.status, 303);
    assert!(
        stranger
            .head
            .contains("location: /login?next=%2fviolations"),
        "{}",
        stranger.head
    );
    assert_eq!(
        served.post("/violations/1/acknowledge", "reason=x").status,
        403
    );
    assert_eq!(sign_in(&served, "dana", "wrong").status, 401);

    let signed = sign_in(&served, "dana", "correct horse");
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert!(
        signed.head.contains("httponly") && signed.head.contains("samesite=strict"),
        "{}",
        signed.head
    );
    let cookie = session_cookie(&signed);
    let page = served.get_with("/records/hubspot/deal/1", &cookie);
    assert_eq!(page.status, 200, "{}", page.body);
    let (token, id) = form_of(&page.body);
    let acted = served.post_with(
        &format!("/violations/{id}/acknowledge"),
        &format!("csrf={token}&reason=on+it"),
        &cookie,
    );
    assert_eq!(acted.status, 303, "{}", acted.body);
    let shown = install.json(&["violations", "show", &id]);
    let events = shown["events"].as_array().expect("events");
    assert_eq!(events.last().expect("an event")["actor"], "dana");
}

#[test]
fn a_signed_in_user_is_named_on_every_page_and_can_sign_out() {
    let install = with_users();
    let served = Served::start(install.command(&[]));
    let cookie = session_cookie(&sign_in(&served, "vic", "battery"));
    for path in ["/", "/violations", "/owners", "/journey", "/runs"] {
        let page = served.get_with(path, &cookie);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains("vic (viewer)"), "{path}: {}", page.body);
        assert!(page.body.contains("action=\"/logout\""), "{path}");
    }
    let out = served.post_with("/logout", "", &cookie);
    assert_eq!(out.status, 303);
    assert!(out.head.contains("location: /login"), "{}", out.head);
    assert!(out.head.contains("max-age=0"), "{}", out.head);
    let after = served.get_with("/", &cookie);
    assert_eq!(after.status, 303, "the old session is gone");
}

#[test]
fn a_signed_in_viewer_sees_no_form_and_cannot_act() {
    let install = with_users();
    let served = Served::start(install.command(&[]));
    let admin = session_cookie(&sign_in(&served, "dana", "correct horse"));
    let (token, id) = form_of(&served.get_with("/records/hubspot/deal/1", &admin).body);
    let before = install.json(&["violations", "show", &id]);
    let viewer = session_cookie(&sign_in(&served, "vic", "battery"));

    let page = served.get_with("/records/hubspot/deal/1", &viewer);
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("name=\"reason\""), "{}", page.body);
    let answer = served.post_with(
        &format!("/violations/{id}/suppress"),
        &format!("csrf={token}&reason=mine"),
        &viewer,
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(install.json(&["violations", "show", &id]), before);
}

#[test]
fn sign_ins_from_one_address_are_limited_to_five_a_minute() {
    let install = with_users();
    let served = Served::start(install.command(&[]));
    for _ in 0..5 {
        assert_eq!(sign_in(&served, "dana", "guess").status, 401);
    }
    let limited = sign_in(&served, "dana", "correct horse");
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(!limited.head.contains("set-cookie"), "{}", limited.head);
}

/// `config check` of the shipped config with `console` as its
/// `[console]` table: its exit code and stderr.
fn check_console_table(console: &str) -> (Option<i32>, String) {
    let install = with_console_table(console);
    let output = install
        .command(&["config", "check"])
        .output()
        .expect("journeyd runs");
    (output.status.code(), stderr(&output))
}

#[test]
fn a_console_behind_a_proxy_may_listen_off_loopback_and_must_name_the_proxy() {
    let (code, err) = check_console_table(
        "listen = \"0.0.0.0:8788\"\nauth = \"proxy\"\ntrusted_proxies = [\"10.0.0.5\"]",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_console_table("listen = \"0.0.0.0:8788\"\nauth = \"proxy\"");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`auth = \"proxy\"` needs `trusted_proxies`"),
        "{err}"
    );
    let (code, err) = check_console_table("admins = [\"dana\"]");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`admins` applies only with `auth = \"proxy\"`"),
        "{err}"
    );
    let (code, err) = check_console_table("auth = \"users\"");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`auth = \"users\"` needs `users_file`"),
        "{err}"
    );
    let (code, err) = check_console_table("auth = \"everyone\"");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`auth` `everyone` is not `none`, `users` or `proxy`"),
        "{err}"
    );
}

#[test]
fn an_unknown_record_or_page_is_a_404_that_says_so() {
    let install = audited();
    let served = Served::start(install.command(&[]));
    let record = served.get("/records/hubspot/deal/999");
    assert_eq!(record.status, 404);
    assert!(
        record.body.contains("connector hubspot holds no deal 999"),
        "{}",
        record.body
    );
    assert_eq!(served.get("/records/hubspot/widget/1").status, 404);
    assert_eq!(served.get("/nothing-here").status, 404);
}

#[test]
fn a_listen_address_off_loopback_is_refused_on_the_command_line_and_in_the_config() {
    let install = audited();
    let output = install.run_expecting(1, &["console", "--listen", "0.0.0.0:8788"]);
    assert!(
        stderr(&output).contains("`0.0.0.0:8788` is not a loopback address"),
        "{}",
        stderr(&output)
    );
    let public = with_console_table("listen = \"192.0.2.7:8788\"");
    let output = public.run_expecting(2, &["config", "check"]);
    assert!(
        stderr(&output).contains("`192.0.2.7:8788` is not a loopback address"),
        "{}",
        stderr(&output)
    );
}

/// The demo's files: the three emulated CRMs synced and audited.
struct Demo {
    dir: PathBuf,
}

impl Demo {
    fn run() -> Demo {
        let output = journeyd()
            .args(["demo", "--keep"])
            .output()
            .expect("the demo runs");
        assert!(output.status.success(), "{}", stderr(&output));
        let out = stdout(&output) + &stderr(&output);
        let dir = out
            .lines()
            .find_map(|line| line.strip_prefix("demo files kept in "))
            .unwrap_or_else(|| panic!("the demo names its directory:\n{out}"));
        Demo {
            dir: PathBuf::from(dir.trim()),
        }
    }

    fn console(&self) -> Command {
        let mut command = journeyd();
        command
            .arg("--config")
            .arg(self.dir.join("journeyd.toml"))
            .arg("--state")
            .arg(self.dir.join("state.sqlite"));
        command
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first record page the log links to for `connector`.
fn first_record(served: &Served, connector: &str) -> String {
    let page = served.page(&format!("/violations?connector={connector}"));
    let start = page
        .find(&format!("href=\"/records/{connector}/"))
        .unwrap_or_else(|| panic!("no {connector} record on the log"))
        + "href=\"".len();
    let end = start + page[start..].find(['"', '#']).expect("the link ends");
    page[start..end].to_owned()
}

/// The link into the CRM on a record page.
fn crm_link(page: &str) -> String {
    let start = page
        .find("<a href=\"http")
        .unwrap_or_else(|| panic!("no CRM link:\n{page}"))
        + "<a href=\"".len();
    let end = start + page[start..].find('"').expect("the link ends");
    page[start..end].replace("&amp;", "&")
}

fn id_of(path: &str) -> &str {
    path.rsplit('/').next().expect("an id")
}

fn demo_config(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("journeyd.toml")).expect("the demo's config")
}

#[test]
fn each_record_page_links_to_the_record_in_its_own_crm() {
    let demo = Demo::run();
    let served = Served::start(demo.console());
    let config = demo_config(&demo.dir);

    let hubspot = first_record(&served, "hubspot");
    let portal = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("portal_id = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("the demo's portal id");
    let kind = match hubspot.split('/').nth(3) {
        Some("deal") => "0-3",
        Some("contact") => "0-1",
        Some("account") => "0-2",
        other => panic!("a HubSpot object: {other:?}"),
    };
    assert_eq!(
        crm_link(&served.page(&hubspot)),
        format!(
            "https://app.hubspot.com/contacts/{portal}/record/{kind}/{}",
            id_of(&hubspot)
        )
    );

    let salesforce = first_record(&served, "salesforce");
    let sobject = match salesforce.split('/').nth(3) {
        Some("deal") => "Opportunity",
        Some("lead") => "Lead",
        Some("contact") => "Contact",
        Some("account") => "Account",
        other => panic!("a Salesforce object: {other:?}"),
    };
    let link = crm_link(&served.page(&salesforce));
    assert!(
        link.starts_with("http://127.0.0.1:")
            && link.ends_with(&format!(
                "/lightning/r/{sobject}/{}/view",
                id_of(&salesforce)
            )),
        "{link}"
    );

    let dynamics = first_record(&served, "dynamics");
    let table = match dynamics.split('/').nth(3) {
        Some("deal") => "opportunity",
        Some(other) => other,
        None => panic!("a Dynamics object"),
    };
    let link = crm_link(&served.page(&dynamics));
    assert!(
        link.starts_with("http://127.0.0.1:")
            && link.ends_with(&format!(
                "/main.aspx?etn={table}&id={}&pagetype=entityrecord",
                id_of(&dynamics)
            )),
        "{link}"
    );
}

/// The records a violations page lists, by their pages' paths, in order.
fn records_on(page: &str) -> Vec<String> {
    let marker = "scope=\"rowgroup\"><a href=\"";
    page.match_indices(marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            rest[..rest.find('"').expect("the link ends")].to_owned()
        })
        .collect()
}

/// The first ids of a violations page's records, in order.
fn record_firsts(page: &str) -> Vec<i64> {
    let marker = "<tbody class=\"record\" id=\"r";
    page.match_indices(marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            rest[..rest.find('"').expect("the id ends")]
                .parse()
                .expect("an id")
        })
        .collect()
}

/// The link to a violations page's next page.
fn next_page(page: &str) -> String {
    page.split("rel=\"next\"")
        .next()
        .filter(|before| before.len() < page.len())
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|rest| rest.split('"').next())
        .expect("a next page")
        .replace("&amp;", "&")
}

#[test]
fn the_violations_page_lists_records_and_continues_after_its_last_record() {
    let demo = Demo::run();
    let served = Served::start(demo.console());
    let first = served.page("/violations");
    let on_first = records_on(&first);
    assert_eq!(on_first.len(), 25);
    let next = next_page(&first);
    assert!(next.contains("after="), "{next}");
    let on_second = records_on(&served.page(&next));
    assert_eq!(on_second.len(), 25);
    for page in [&on_first, &on_second] {
        let unique: std::collections::BTreeSet<&String> = page.iter().collect();
        assert_eq!(unique.len(), page.len(), "a record listed twice: {page:?}");
    }
    assert!(on_second.iter().all(|record| !on_first.contains(record)));
    assert!(first.contains("violations match"), "{first}");
    let counted = served.page("/violations?count=all");
    assert!(counted.contains(" records match"), "{counted}");
}

#[test]
fn a_handoff_that_missed_an_unmet_criterions_field_is_one_entry_naming_both_rules() {
    let demo = Demo::run();
    let served = Served::start(demo.console());
    let page = served.page("/violations?rule=&stage=awareness");
    let merged = page
        .split("<tr id=\"v")
        .skip(1)
        .find(|row| row.contains(">exit_criteria_unmet</a><br><a"))
        .unwrap_or_else(|| panic!("no merged entry:\n{page}"));
    assert!(merged.contains(">handoff_incomplete</a>"), "{merged}");
    assert!(
        merged.contains(
            "; it was handed from marketing to sales at the exit of stage awareness without: "
        ),
        "{merged}"
    );
    // The record's page shows the two side by side, as one entry.
    let link = merged
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split(['#', '"']).next())
        .expect("a link to the record");
    let record = served.page(link);
    assert!(
        record.contains(
            "One missing fact, 2 rules: </strong>exit_criteria_unmet and handoff_incomplete"
        ),
        "{record}"
    );
}

#[test]
fn ticking_an_entry_that_names_two_rules_acknowledges_both_violations() {
    let demo = Demo::run();
    let served = Served::start(demo.console());
    let (token, ticks) = ticks_of(&served.page("/violations?stage=awareness"));
    let pair = ticks
        .iter()
        .find(|tick| tick.contains(' '))
        .unwrap_or_else(|| panic!("no entry of two: {ticks:?}"));
    let form = format!(
        "csrf={token}&reason=triaged&back=%2Fviolations&id={}",
        pair.replace(' ', "+")
    );

    let answer = served.post("/violations/bulk/acknowledge", &form);

    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.head.contains("done=2+changed"), "{}", answer.head);
    for id in pair.split(' ') {
        let mut show = demo.console();
        show.args(["--json", "violations", "show", id]);
        let output = show.output().expect("journeyd runs");
        let shown: serde_json::Value = serde_json::from_slice(&output.stdout).expect("show --json");
        assert_eq!(shown["violation"]["status"], "acknowledged", "{id}");
    }
}

#[test]
fn an_admin_reads_the_log_oldest_or_newest_first_a_page_at_a_time() {
    let demo = Demo::run();
    let served = Served::start(demo.console());
    for (sort, ascending) in [("oldest", true), ("newest", false)] {
        let first = served.page(&format!("/violations?sort={sort}"));
        let next = next_page(&first);
        assert!(next.contains(&format!("sort={sort}")), "{next}");
        let mut firsts = record_firsts(&first);
        firsts.extend(record_firsts(&served.page(&next)));
        assert_eq!(firsts.len(), 50, "{sort}");
        let mut ordered = firsts.clone();
        ordered.sort();
        if !ascending {
            ordered.reverse();
        }
        assert_eq!(firsts, ordered, "{sort}");
        assert!(
            first.contains(&format!("<option value=\"{sort}\" selected>")),
            "the form keeps the order"
        );
    }
}

#[test]
fn the_demo_with_console_serves_its_files_until_sigterm() {
    let mut command = journeyd();
    command.args(["demo", "--console"]);
    let served = Served::watch(command, Duration::from_secs(180));
    let overview = served.page("/");
    assert!(overview.contains("<h1>Overview</h1>"), "{overview}");
    assert!(overview.contains(">salesforce<"), "{overview}");
    assert_eq!(served.stop(), Some(0));
}

#[test]
fn after_sighup_the_services_console_shows_the_new_config_and_keeps_its_address() {
    use crate::environment::Environment;
    use crate::service::{Daemon, free_port, get, seconds_schedule};
    let port = free_port();
    let env = Environment::at(chrono::Utc::now(), 5, |config| {
        seconds_schedule(config, "0 0 3 1 1 *");
        config["console"]["listen"] = toml_edit::value(format!("127.0.0.1:{port}"));
    });
    let mut daemon = Daemon::start(&env, None);
    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    let (_, before) = get(port, "/violations");
    assert!(before.contains("<option value=\"dynamics\""), "{before}");

    let config_path = env.install.config_path();
    let old = std::fs::read_to_string(config_path).expect("the config reads");
    let renamed = old
        .replace("connectors.dynamics", "connectors.dataverse")
        .replace(&format!("127.0.0.1:{port}"), "127.0.0.1:1");
    assert_ne!(renamed, old);
    std::fs::write(config_path, renamed).expect("written");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("STATUS=") && line.contains("config reloaded")
    });

    let (status, after) = get(port, "/violations");
    assert!(status.contains(" 200 "), "{status}: {after}");
    assert!(after.contains("<option value=\"dataverse\""), "{after}");
    assert!(!after.contains("<option value=\"dynamics\""), "{after}");
    assert!(
        daemon
            .log()
            .contains("the console keeps the [console] settings it started with"),
        "{}",
        daemon.log()
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn the_service_serves_the_console_its_config_asks_for_until_sigterm() {
    use crate::environment::Environment;
    use crate::service::{Daemon, eventually, free_port, get, runs, seconds_schedule};
    let port = free_port();
    let env = Environment::at(chrono::Utc::now(), 5, |config| {
        seconds_schedule(config, "*/2 * * * * *");
        config["console"]["listen"] = toml_edit::value(format!("127.0.0.1:{port}"));
    });
    let mut daemon = Daemon::start(&env, None);
    daemon.wait_for(Duration::from_secs(20), |line| line == "READY=1");
    eventually(Duration::from_secs(60), "an audit", || {
        runs(&env)
            .iter()
            .any(|(kind, status)| kind == "audit" && status == "ok")
    });

    let (status, overview) = get(port, "/");
    assert!(status.contains(" 200 "), "{status}");
    assert!(overview.contains("<h1>Overview</h1>"), "{overview}");
    assert!(overview.contains(">dynamics<"), "{overview}");
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}
