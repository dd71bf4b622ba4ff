//! The web console over the bench's state file: the real binary's
//! `journeyd console` serves it on loopback, and each page is fetched,
//! timed and weighed as a browser would get it (one request each, the
//! whole body read).
//!
//! The violations page is fetched many times: its first page under several
//! filters and the pages after it, through each page's own `Next page`
//! link, twice over; its p95 is held to 50 ms. The other pages are
//! fetched twice: the first fetch sums what the console then keeps until
//! the log moves. Every page is held to 150 KB.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The violations page's first pages: what an admin filters by.
const FILTERS: [&str; 11] = [
    "",
    "sort=newest",
    "sort=oldest&connector=dynamics",
    "severity=high",
    "connector=hubspot",
    "connector=salesforce",
    "connector=dynamics",
    "rule=stalled",
    "rule=exit_criteria_unmet",
    "stage=decision",
    "status=all",
];
/// Pages followed after each first page.
const DEPTH: usize = 4;

/// One page's figures.
pub struct Fetched {
    pub path: String,
    pub ms: f64,
    pub bytes: usize,
}

/// A page other than the violations page: fetched twice, since the first
/// fetch after the log moved sums the figures the console then keeps.
pub struct Twice {
    pub first_ms: f64,
    pub again: Fetched,
}

/// What the console step measured.
pub struct Figures {
    /// Every violations page fetched, in order.
    pub violations: Vec<Fetched>,
    /// The other pages.
    pub others: Vec<Twice>,
}

impl Figures {
    /// The 95th percentile (nearest rank) of the violations pages' times.
    pub fn p95_ms(&self) -> f64 {
        let mut ms: Vec<f64> = self.violations.iter().map(|f| f.ms).collect();
        ms.sort_by(f64::total_cmp);
        let rank = ((ms.len() as f64) * 0.95).ceil() as usize;
        ms.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
    }

    /// The heaviest page of all.
    pub fn heaviest(&self) -> Option<&Fetched> {
        self.violations
            .iter()
            .chain(self.others.iter().map(|twice| &twice.again))
            .max_by_key(|f| f.bytes)
    }
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `state` with `config` and measures its pages.
pub fn measure(journeyd: &Path, config: &Path, state: &Path) -> Result<Figures, String> {
    let mut child = Command::new(journeyd)
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .args(["console", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("journeyd console does not start: {e}"))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let served = Served(child);
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = said.send(line);
    });
    let line = heard
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the console said nothing within 60 s".to_owned())?;
    let port: u16 = line
        .trim()
        .strip_prefix("console: http://127.0.0.1:")
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| format!("no address in {line:?}"))?;

    // Warm: the first read of each index comes from disk once.
    get(port, "/violations")?;
    let mut violations = Vec::new();
    for _ in 0..2 {
        for filter in FILTERS {
            let mut path = format!("/violations?{filter}");
            for _ in 0..=DEPTH {
                let (fetched, body) = fetch(port, &path)?;
                violations.push(fetched);
                match next_link(&body) {
                    Some(next) => path = next,
                    None => break,
                }
            }
        }
    }
    let (_, first) = fetch(port, "/violations")?;
    let record = record_link(&first).ok_or("no record on the violations page")?;
    let mut others = Vec::new();
    for path in ["/", "/owners", "/journey", "/runs", record.as_str()] {
        let first_ms = fetch(port, path)?.0.ms;
        others.push(Twice {
            first_ms,
            again: fetch(port, path)?.0,
        });
    }
    drop(served);
    Ok(Figures { violations, others })
}

/// `GET path`, timed to the last byte of the body.
fn fetch(port: u16, path: &str) -> Result<(Fetched, String), String> {
    let started = Instant::now();
    let body = get(port, path)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((
        Fetched {
            path: path.to_owned(),
            ms,
            bytes: body.len(),
        },
        body,
    ))
}

/// `GET path` over HTTP/1.0; the body of a 200.
fn get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("the console does not answer: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("{path}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_owned())
}

/// The page's `Next page` link, if it has one.
fn next_link(body: &str) -> Option<String> {
    let before = body
        .split("rel=\"next\"")
        .next()
        .filter(|b| b.len() < body.len())?;
    let link = before.rsplit("href=\"").next()?.split('"').next()?;
    Some(link.replace("&amp;", "&"))
}

/// The first record page a violations page links to.
fn record_link(body: &str) -> Option<String> {
    let start = body.find("href=\"/records/")? + "href=\"".len();
    let end = start + body[start..].find(['"', '#'])?;
    Some(body[start..end].to_owned())
}
