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
    config: PathBuf,
    env: Vec<(String, String)>,
}

impl Install {
    pub fn new() -> Self {
        Install {
            dir: tempfile::tempdir().expect("a temporary directory"),
            config: repo().join("config/journeyd.toml"),
            env: Vec::new(),
        }
    }

    /// An installation whose daemon config is `config` (written into the
    /// installation's directory) and whose environment adds `env`.
    pub fn with_config(config: &str, env: Vec<(String, String)>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("journeyd.toml");
        std::fs::write(&path, config).expect("the config is written");
        Install {
            dir,
            config: path,
            env,
        }
    }

    /// `journeyd` with this installation's config, state file and
    /// environment, as the admin `dana`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = journeyd();
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--state")
            .arg(self.path("state.sqlite"))
            .args(args)
            .env("USER", "dana")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// The daemon config file this installation runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `journeyd <args>` as the admin `dana`; panics with its output
    /// unless it exits with `code`.
    pub fn run_expecting(&self, code: i32, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("journeyd runs");
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

/// Every live stored record as `(object, id, snapshot)`.
pub fn stored_records(install: &Install) -> std::collections::BTreeSet<(String, String, String)> {
    let db =
        rusqlite::Connection::open(install.path("state.sqlite")).expect("the state file opens");
    let mut stmt = db
        .prepare("SELECT object, id, snapshot FROM records WHERE deleted_at IS NULL")
        .expect("records are readable");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("records are readable")
        .collect::<Result<_, _>>()
        .expect("records are readable")
}

/// Runs sync, audit and `writeback --apply` of `connector` with every log
/// line on (`RUST_LOG=trace`); returns all they printed, stdout and stderr.
pub fn run_slice_logged(install: &Install, connector: &str) -> String {
    let mut logs = String::new();
    for args in [
        &["sync", "--connector", connector][..],
        &["audit"],
        &["writeback", "--apply", "--connector", connector],
    ] {
        let output = install
            .command(args)
            .env("RUST_LOG", "trace")
            .output()
            .expect("journeyd runs");
        assert!(output.status.success(), "{}", stderr(&output));
        logs.push_str(&stdout(&output));
        logs.push_str(&stderr(&output));
    }
    logs
}

/// Asserts that none of `secrets` is in `logs` or in the state file (and
/// its write-ahead log), and that no authorization header was logged.
pub fn assert_secrets_nowhere(install: &Install, logs: &str, secrets: &[&str]) {
    let mut state = Vec::new();
    for name in ["state.sqlite", "state.sqlite-wal"] {
        if let Ok(bytes) = std::fs::read(install.path(name)) {
            state.extend(bytes);
        }
    }
    let state = String::from_utf8_lossy(&state);
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!logs.contains(secret), "a secret reached the logs");
        assert!(!state.contains(secret), "a secret reached the store");
    }
    assert!(
        !logs.contains("Bearer "),
        "an authorization header was logged"
    );
}

/// Groups task ids by the write-back action key their text carries on its
/// `journeyd-action: KEY` line.
pub fn tasks_by_key<'t>(
    tasks: impl IntoIterator<Item = (String, &'t str)>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (id, text) in tasks {
        if let Some(key) = text
            .lines()
            .find_map(|line| line.strip_prefix("journeyd-action: "))
        {
            by_key.entry(key.trim().to_owned()).or_default().push(id);
        }
    }
    by_key
}

/// An import line: a HubSpot deal `id` named `name`, owned by `owner` (or
/// by no one), in the shipped config's stage `presentationscheduled`.
pub fn deal_line(id: &str, name: &str, owner: Option<&str>) -> String {
    let mut deal = serde_json::json!({
        "type": "record",
        "system": "hubspot",
        "object": "deal",
        "id": id,
        "name": name,
        "stage": "presentationscheduled",
        "created_at": "2026-01-05T10:00:00Z",
        "modified_at": "2026-11-01T10:00:00Z",
    });
    if let Some(owner) = owner {
        deal["owner_id"] = owner.into();
    }
    deal.to_string()
}

/// An import line: a HubSpot owner.
pub fn owner_line(id: &str, name: &str) -> String {
    serde_json::json!({
        "type": "owner", "id": id, "name": name, "active": true, "teams": ["Sales"],
    })
    .to_string()
}

impl Install {
    /// Writes `lines` (one a line) to `name` in the installation's
    /// directory and imports it into the `hubspot` connector.
    pub fn import_lines(&self, name: &str, lines: &[String]) -> Output {
        let path = self.path(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("the import file is written");
        self.run(&[
            "import",
            path.to_str().expect("a UTF-8 path"),
            "--connector",
            "hubspot",
        ])
    }
}
