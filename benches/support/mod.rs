//! What the benchmarks share: running the real binary while reading its
//! peak RSS and CPU time, and counting the emulator's API calls by route.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many records a benchmark seeds: the number in `var`, else 100,000.
#[allow(dead_code, reason = "not every benchmark seeds by this default")]
pub fn size_from_env(var: &str) -> usize {
    count_from_env(var, 100_000)
}

/// The number in `var`, else `default`.
pub fn count_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
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
        let mut command = self.command(args);
        command.stdout(Stdio::null());
        measure(command)
    }

    /// As [`Journeyd::run`], also returning the JSON the binary printed
    /// (written to a file beside its config while it runs, so that reading
    /// it costs the binary nothing).
    #[allow(dead_code, reason = "not every benchmark reads the binary's answer")]
    pub fn run_json(&self, args: &[&str]) -> (Measured, serde_json::Value) {
        self.run_json_as(args, Command::new(env!("CARGO_BIN_EXE_journeyd")))
    }

    /// As [`Journeyd::run_json`], under the profiler named by
    /// `JOURNEYD_BENCH_PROFILE` (a command line the binary's own is appended
    /// to, e.g. `heaptrack -o /tmp/writeback`) when it is set: the figures
    /// measured are then the profiler's and the binary's together.
    #[allow(dead_code, reason = "not every benchmark profiles a step")]
    pub fn run_json_profiled(&self, args: &[&str]) -> (Measured, serde_json::Value) {
        match std::env::var("JOURNEYD_BENCH_PROFILE") {
            Ok(profiler) if !profiler.trim().is_empty() => {
                println!("  (under `{profiler}`: the figures include the profiler's)");
                let mut words = profiler.split_whitespace();
                let mut command =
                    Command::new(words.next().expect("the profiler's command is not empty"));
                command.args(words).arg(env!("CARGO_BIN_EXE_journeyd"));
                self.run_json_as(args, command)
            }
            _ => self.run_json(args),
        }
    }

    fn run_json_as(&self, args: &[&str], command: Command) -> (Measured, serde_json::Value) {
        let out = self.config.with_extension("out.json");
        let file = std::fs::File::create(&out).expect("the output file is created");
        let mut command = self.arguments(command, args);
        command.stdout(file);
        let measured = measure(command);
        let text = std::fs::read_to_string(&out).expect("the output file reads");
        (measured, first_json(&text))
    }

    fn command(&self, args: &[&str]) -> Command {
        self.arguments(Command::new(env!("CARGO_BIN_EXE_journeyd")), args)
    }

    fn arguments(&self, mut command: Command, args: &[&str]) -> Command {
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--json")
            .args(args)
            .env(&self.secret.0, &self.secret.1)
            .env("RUST_LOG", &self.log);
        command
    }
}

/// The JSON value journeyd printed: the first line opening an array or an
/// object starts it (a profiler may print lines of its own around it).
fn first_json(text: &str) -> serde_json::Value {
    let start = text
        .lines()
        .find(|line| line.starts_with(['[', '{']))
        .map_or(0, |line| line.as_ptr() as usize - text.as_ptr() as usize);
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("journeyd printed no JSON: {text}"))
}

pub struct Measured {
    pub elapsed: Duration,
    pub max_rss_kib: u64,
    /// User and system CPU time of the binary (its threads included).
    pub cpu: Cpu,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

/// Runs `command` to its end, reading its peak RSS (`VmHWM`) as it runs,
/// and its CPU time from the kernel when it ends (`wait4`'s rusage: the
/// child's own, since it has no children of its own). The kernel's
/// `ru_maxrss` would not do for memory: it keeps the high-water mark across
/// `exec`, so a child forked from this process (which holds the emulated
/// portal) would report this process's size.
pub fn measure(mut command: Command) -> Measured {
    let started = Instant::now();
    let child = command.spawn().expect("journeyd starts");
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    let status_file = format!("/proc/{pid}/status");
    let mut max_rss_kib = 0;
    let (status, usage) = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| vm_hwm_kib(&status))
        {
            max_rss_kib = max_rss_kib.max(kib);
        }
        if let Some(ended) = reap(pid) {
            break ended;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Reaped here, not by `child`: dropping it waits for nothing.
    drop(child);
    let elapsed = started.elapsed();
    let status = std::process::ExitStatus::from_raw(status);
    assert!(status.success(), "journeyd failed: {status}");
    Measured {
        elapsed,
        max_rss_kib,
        cpu: Cpu {
            user: duration(usage.ru_utime),
            system: duration(usage.ru_stime),
        },
    }
}

/// The child's wait status and resource usage once it has ended; `None`
/// while it runs.
fn reap(pid: libc::pid_t) -> Option<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is this process's own unreaped child, and both
    // pointers are to live locals of the types wait4 writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
    match reaped {
        0 => None,
        r if r == pid => Some((status, usage)),
        _ => panic!(
            "journeyd cannot be waited on: {}",
            std::io::Error::last_os_error()
        ),
    }
}

fn duration(time: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(time.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(time.tv_usec).unwrap_or(0))
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[allow(dead_code, reason = "not every benchmark reports records/s")]
pub fn report(step: &str, records: u64, run: &Measured) {
    let seconds = run.elapsed.as_secs_f64();
    println!(
        "{step}: {records} records in {seconds:.1} s = {:.0} records/s, peak RSS {:.0} MB, CPU {:.2} s",
        records as f64 / seconds,
        run.max_rss_kib as f64 / 1024.0,
        run.cpu.total().as_secs_f64()
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
