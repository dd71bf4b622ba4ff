//! Running the built `journeyd` against the shipped config and a state file
//! of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn journeyd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_journeyd"));
    command
        .env_remove("JOURNEYD_CONFIG")
        .env_remove("JOURNEYD_STATE")
        .env_remove("RUST_LOG")
        // Secrets of the machine running the tests are none of theirs.
        .env_remove("JOURNEYD_HUBSPOT_TOKEN")
        .env_remove("CREDENTIALS_DIRECTORY");
    command
}

/// One journeyd installation: the shipped config, a fresh state file.
pub struct Install {
    dir: tempfile::TempDir,
}

impl Install {
    pub fn new() -> Self {
        Install {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `journeyd <args>` as the admin `dana`; panics with its output
    /// unless it exits with `code`.
    pub fn run_expecting(&self, code: i32, args: &[&str]) -> Output {
        let output = journeyd()
            .arg("--config")
            .arg(repo().join("config/journeyd.toml"))
            .arg("--state")
            .arg(self.path("state.sqlite"))
            .args(args)
            .env("USER", "dana")
            .output()
            .expect("journeyd runs");
        assert_eq!(
            output.status.code(),
            Some(code),
            "journeyd {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_expecting(0, args)
    }

    /// Runs a command with `--json` and parses what it printed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "journeyd {args:?} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
