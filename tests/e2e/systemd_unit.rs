//! The shipped `systemd/journeyd.service`: it passes `systemd-analyze
//! verify` without a word, its sandbox scores an exposure of 2.0 or lower in
//! `systemd-analyze security`, it keeps every directive the service contract
//! names, and it loads every credential the shipped config reads.
//!
//! The unit is checked as installed: copied into a temporary directory that
//! stands in for /etc/journeyd (the shipped config, its journey and the
//! credential files), with its commands pointing at the built binary, since
//! `verify` refuses a command that does not exist.

use crate::support::{journeyd, repo, stderr, stdout};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT_NAME: &str = "journeyd.service";
const INSTALLED_BINARY: &str = "/usr/local/bin/journeyd";
const CONFIG_DIR: &str = "/etc/journeyd/";
/// The worst exposure `systemd-analyze security` may give the unit.
const MAX_EXPOSURE: f64 = 2.0;

fn shipped_unit() -> String {
    std::fs::read_to_string(repo().join("systemd").join(UNIT_NAME)).expect("the shipped unit reads")
}

/// Every `Key=value` line of `unit`, in order, comments left out.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("a unit line is Key=value: {line}"));
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// The values `key` is given in the shipped unit, in order.
fn values<'u>(directives: &'u [(String, String)], key: &str) -> Vec<&'u str> {
    directives
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The credential names the shipped config reads, from every connector's
/// `secret` and `refresh_token`; panics on a secret read any other way.
fn shipped_credentials() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("config/journeyd.toml"))
        .expect("the shipped config reads");
    let config: toml::Table = text.parse().expect("the shipped config is TOML");
    let connectors = config["connectors"]
        .as_table()
        .expect("the shipped config has connectors");
    let mut names = BTreeSet::new();
    for (connector, table) in connectors {
        for key in ["secret", "refresh_token"] {
            let Some(source) = table.get(key) else {
                continue;
            };
            let name = source
                .get("credential")
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| {
                    panic!("connector {connector}: `{key}` is not a systemd credential: {source}")
                });
            names.insert(name.to_owned());
        }
    }
    names
}

/// The unit as installed into `dir`, which stands in for /etc/journeyd:
/// the shipped config and journey, a credential file (mode 0600) for each
/// `LoadCredential=`, and the unit in `dir/journeyd.service`, its commands
/// pointing at the built binary. Returns the unit's path.
fn install(dir: &Path) -> PathBuf {
    let binary = env!("CARGO_BIN_EXE_journeyd");
    let config_dir = format!("{}/", dir.display());
    assert!(
        !binary.contains(char::is_whitespace) && !config_dir.contains(char::is_whitespace),
        "a unit's command line splits at whitespace: {binary}, {config_dir}"
    );
    for name in ["journeyd.toml", "journey.toml"] {
        std::fs::copy(repo().join("config").join(name), dir.join(name))
            .expect("the shipped config is copied");
    }
    let unit = shipped_unit();
    assert!(unit.contains(INSTALLED_BINARY) && unit.contains(CONFIG_DIR));
    let unit = unit
        .replace(INSTALLED_BINARY, binary)
        .replace(CONFIG_DIR, &config_dir);
    for source in values(&directives(&unit), "LoadCredential") {
        let (_, path) = source
            .split_once(':')
            .unwrap_or_else(|| panic!("LoadCredential=NAME:PATH, not {source}"));
        let path = Path::new(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_owner_only(path, "not-a-real-secret");
    }
    let path = dir.join(UNIT_NAME);
    std::fs::write(&path, unit).expect("the unit is written");
    path
}

fn write_owner_only(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// `systemd-analyze ARGS`; fails the test, saying how to get it, when the
/// tool is missing: a unit nobody checked must not pass for a checked one.
fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .current_dir(unit.parent().unwrap())
        .env_remove("SYSTEMD_LOG_LEVEL")
        .env("SYSTEMD_PAGER", "")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run systemd-analyze ({error}): install the Debian package `systemd`, as .ci/run does"
            )
        })
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let unit = install(dir.path());
    let output = systemd_analyze(&["verify"], &unit);
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify {}: {}\nstdout:\n{}\nstderr:\n{}",
        unit.display(),
        output.status,
        stdout(&output),
        stderr(&output)
    );
}

#[test]
fn the_units_sandbox_has_an_exposure_of_at_most_2_0() {
    let dir = tempfile::tempdir().unwrap();
    let unit = install(dir.path());
    let output = systemd_analyze(&["security", "--offline=true", "--no-pager"], &unit);
    let report = stdout(&output);
    assert!(
        output.status.success(),
        "systemd-analyze security: {}\n{report}\n{}",
        output.status,
        stderr(&output)
    );
    let prefix = format!("Overall exposure level for {UNIT_NAME}: ");
    let exposure: f64 = report
        .lines()
        .find_map(|line| line.split_once(&prefix))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}X.Y` line in:\n{report}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is above {MAX_EXPOSURE:.1}:\n{report}"
    );
}

#[test]
fn the_unit_keeps_every_directive_of_the_service_contract() {
    let unit = directives(&shipped_unit());
    let required = [
        ("Type", "notify"),
        (
            "ExecStartPre",
            "/usr/local/bin/journeyd --config /etc/journeyd/journeyd.toml config check",
        ),
        (
            "ExecStart",
            "/usr/local/bin/journeyd --config /etc/journeyd/journeyd.toml run",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "journeyd"),
        ("ConfigurationDirectory", "journeyd"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("UMask", "0077"),
        ("Restart", "on-failure"),
        ("WatchdogSec", "60s"),
    ];
    let missing: Vec<String> = required
        .iter()
        .filter(|(key, value)| !values(&unit, key).contains(value))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    assert!(missing.is_empty(), "the unit lacks {}", missing.join(", "));
    let stop: Vec<&str> = values(&unit, "TimeoutStopSec");
    let seconds = stop
        .last()
        .and_then(|value| value.trim_end_matches('s').parse::<u32>().ok())
        .unwrap_or_else(|| panic!("TimeoutStopSec=Ns is set, not {stop:?}"));
    assert!(
        (30..=60).contains(&seconds),
        "TimeoutStopSec={seconds}s: the daemon stops within 30 s of SIGTERM"
    );
}

#[test]
fn the_unit_loads_every_credential_the_shipped_config_reads_and_no_other() {
    let unit = directives(&shipped_unit());
    let loaded: BTreeSet<String> = values(&unit, "LoadCredential")
        .iter()
        .map(|source| source.split_once(':').map_or(*source, |(name, _)| name))
        .map(str::to_owned)
        .collect();
    let read = shipped_credentials();
    assert!(!read.is_empty());
    assert_eq!(loaded, read);
}

#[test]
fn the_unit_leaves_the_daemon_its_network_to_reach_the_crms() {
    let unit = directives(&shipped_unit());
    for key in ["PrivateNetwork", "IPAddressDeny", "IPAddressAllow"] {
        assert!(
            values(&unit, key).is_empty(),
            "{key}= would cut the daemon off from CRMs at addresses no one knows ahead"
        );
    }
    let families = values(&unit, "RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families
                .iter()
                .all(|value| value.split_whitespace().any(|f| f == family)),
            "{family} is allowed: {families:?}"
        );
    }
}

#[test]
fn the_units_config_check_passes_on_the_shipped_config_as_installed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(install(dir.path())).unwrap();
    let unit = directives(&unit);
    let check = values(&unit, "ExecStartPre");
    let [check] = check.as_slice() else {
        panic!("one ExecStartPre=, not {check:?}");
    };
    let mut words = check.split_whitespace();
    assert_eq!(words.next(), Some(env!("CARGO_BIN_EXE_journeyd")));
    let output = journeyd().args(words).output().expect("journeyd runs");
    assert!(output.status.success(), "{check}\n{}", stderr(&output));
}
