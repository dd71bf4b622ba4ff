//! What the sync benchmarks share: running the real binary while reading
//! its peak RSS, and counting the emulator's API calls by route.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How many records a benchmark seeds: the number in `var`, else 100,000.
pub fn size_from_env(var: &str) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

/// The real binary, run with the benchmark's config and the one secret its
/// connector needs. `JOURNEYD_BENCH_LOG` (a `RUST_LOG` value, default
/// `warn`) shows the binary's own log lines and span timings.
pub struct Journeyd {
    config: PathBuf,
    secret: (String, String),
    log: String,
}

impl Journeyd {
    pub fn new(config: PathBuf, secret_var: &str, secret: impl Into<String>) -> Self {
        Journeyd {
            config,
            secret: (secret_var.to_owned(), secret.into()),
            log: std::env::var("JOURNEYD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        }
    }

    /// Runs `journeyd --json <args>` to its end, measured.
    pub fn run(&self, args: &[&str]) -> Measured {
        let mut command = Command::new(env!("CARGO_BIN_EXE_journeyd"));
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--json")
            .args(args)
            .env(&self.secret.0, &self.secret.1)
            .env("RUST_LOG", &self.log)
            .stdout(std::process::Stdio::null());
        measure(command)
    }
}

pub struct Measured {
    elapsed: Duration,
    max_rss_kib: u64,
}

/// Runs `command` to its end, reading its peak RSS (`VmHWM`) as it runs.
/// The kernel's `ru_maxrss` would not do: it keeps the high-water mark
/// across `exec`, so a child forked from this process (which holds the
/// emulated portal) would report this process's size.
pub fn measure(mut command: Command) -> Measured {
    let started = Instant::now();
    let mut child = command.spawn().expect("journeyd starts");
    let status_file = format!("/proc/{}/status", child.id());
    let mut max_rss_kib = 0;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| vm_hwm_kib(&status))
        {
            max_rss_kib = max_rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("journeyd can be waited on") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "journeyd failed: {status}");
    Measured {
        elapsed: started.elapsed(),
        max_rss_kib,
    }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn report(step: &str, records: u64, run: &Measured) {
    let seconds = run.elapsed.as_secs_f64();
    println!(
        "{step}: {records} records in {seconds:.1} s = {:.0} records/s, peak RSS {:.0} MB",
        records as f64 / seconds,
        run.max_rss_kib as f64 / 1024.0
    );
}

pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(route, n)| (route.clone(), n - before.get(route).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

pub fn print_calls(calls: &BTreeMap<String, u64>, paged_route: &str, floor: u64) {
    let total: u64 = calls.values().sum();
    let paged = calls.get(paged_route).copied().unwrap_or(0);
    println!("  API calls: {total} in all; {paged} on {paged_route} (floor {floor})");
    for (route, n) in calls {
        println!("    {n:>7}  {route}");
    }
}

/// The shipped daemon config, with its journey named by absolute path and
/// its state file in `dir`.
pub fn shipped_config(dir: &Path) -> toml_edit::DocumentMut {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config: toml_edit::DocumentMut =
        std::fs::read_to_string(repo.join("config/journeyd.toml"))
            .expect("the shipped config reads")
            .parse()
            .expect("the shipped config is TOML");
    config["journey"] = toml_edit::value(repo.join("config/journey.toml").display().to_string());
    config["state_path"] = toml_edit::value(dir.join("bench.sqlite").display().to_string());
    config
}
