//! Soaks write-back's exactly-once promise: against each CRM's emulator,
//! `journeyd writeback --apply` is killed again and again at random points
//! (SIGKILL or SIGTERM, half each), each kill followed at once by the next
//! run while the CRM still finishes the writes it received; every so often
//! some records change so that their tasks must be updated or completed;
//! then the CRM finishes, write-back runs to the end, and the CRM must hold
//! every task the first dry run planned, each exactly once, each with an
//! owner, and each as the ledger last wrote it (subject, owner, open or
//! completed).
//!
//!     cargo bench --bench writeback_soak
//!     JOURNEYD_SOAK_KILLS=10 JOURNEYD_SOAK_TARGETS=dynamics cargo bench --bench writeback_soak
//!
//! - `JOURNEYD_SOAK_KILLS`: kills per target (default 200);
//! - `JOURNEYD_SOAK_TARGETS`: comma-separated, of `hubspot`,
//!   `salesforce` (recovery by lookup, the shipped config),
//!   `salesforce_external_id` (`task_external_id = "Journeyd_Key__c"`),
//!   `dynamics` (default: all four);
//! - `JOURNEYD_SOAK_RECORDS`: deals seeded per CRM (default: enough that
//!   the kills never run out of writes to interrupt);
//! - `JOURNEYD_SOAK_SEED`: the seed of the random choices (printed, so
//!   that a run's choices, though not its timing, can be repeated; each
//!   target draws from its own stream, the same whichever targets run);
//! - `JOURNEYD_BENCH_LOG`: the binary's `RUST_LOG` (default `info`); each
//!   target's runs log to `runs.log` in its directory, kept when it fails
//!   (or, with `JOURNEYD_SOAK_KEEP` set, always);
//! - `JOURNEYD_SOAK_THROTTLE=1`: the CRM also throttles: in half the runs,
//!   at a random moment, its next request is answered 429 with a
//!   `Retry-After` of 1 to 4 s (off by default);
//! - `JOURNEYD_SOAK_DELAYED_SENDS=N`: before the kills, N rounds in which a
//!   run's first write call reaches the CRM [`SEND_DELAY`] after the ledger
//!   recorded it sent (HubSpot: a 429 with that `Retry-After`; Salesforce
//!   and Dataverse: the token endpoint answers that late), the run is
//!   killed as soon as the CRM starts writing, and the next run starts at
//!   once (off by default). Connectors that recover by lookup settle from
//!   the time the ledger recorded, so this shows whether a late call can
//!   still be missed by the lookup and written twice.
//!
//! The e2e suite (`tests/e2e/writeback_crash.rs`) keeps this specification
//! with one kill of each kind; the soak is the same with hundreds. Exits
//! non-zero when any target ends with a task written twice, a planned task
//! missing, a task nobody planned, a task without an owner, a task not as
//! the ledger last wrote it, or write-back that does not settle.

use journeyd_dynamics_emulator::{DynamicsEmulator, Table};
use journeyd_hubspot_emulator::{HubspotEmulator, ObjectType};
use journeyd_salesforce_emulator::{SObject, SalesforceEmulator, TEST_JWT_PRIVATE_KEY_PEM};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::shipped_config;
use toml_edit::value;

#[expect(
    dead_code,
    reason = "the soak shares the shipped config, not the sync benchmarks' measuring"
)]
mod support;

/// Writes per batch call, so that each run makes many.
const BATCH: i64 = 10;
/// How long a paced CRM takes per row it writes: a batch takes
/// `BATCH * PACE` = 0.5 s on the server, going on after its client died.
const PACE: Duration = Duration::from_millis(50);
/// How far behind writes HubSpot's emulated search index runs.
const SEARCH_LAG: Duration = Duration::from_millis(300);
/// The recovery settle time of the connectors that recover by lookup
/// (HubSpot's `search_lag_seconds`, Salesforce's `settle_seconds`), as in
/// the e2e specifications. It must exceed the emulator's search lag plus
/// the time a paced batch takes on the server (0.3 s + 0.5 s here), or a
/// lookup could miss a task the server is still writing and send it again.
const SETTLE_SECONDS: i64 = 2;
/// How late a create may still be sent (`limits.send_window_seconds`):
/// longer than the delays the soak puts on a write call (a 429's
/// `Retry-After` up to [`MAX_RETRY_AFTER`], a late token), so that those
/// creates go out late and a rerun's lookup must wait for them; a lookup
/// waits this window plus [`SETTLE_SECONDS`].
const SEND_WINDOW_SECONDS: i64 = 5;
/// The longest a random delay before a kill lasts.
const MAX_DELAY: Duration = Duration::from_secs(3);
/// The most new tasks a kill waits to see land.
const MAX_LANDED: usize = 3 * BATCH as usize;
/// The longest any wait for a kill's moment lasts.
const TRIGGER_PATIENCE: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd run may take to exit before it is SIGKILLed and
/// recorded as hung.
const TERM_PATIENCE: Duration = Duration::from_secs(30);
/// How long the CRM may take to finish its in-flight writes at the end.
const DRAIN_PATIENCE: Duration = Duration::from_secs(120);
/// Records change every tenth of the kills (every 20 kills at most)...
const CHANGE_ROUNDS: usize = 10;
/// ...this many at a time: renamed, or (half the deals) closed as lost.
const CHANGES: usize = 8;
/// Runs to the end at most, after the kills.
const FINAL_RUNS: usize = 10;
/// How much later than the ledger says a delayed write call reaches the
/// CRM: more than [`SETTLE_SECONDS`], within [`SEND_WINDOW_SECONDS`].
const SEND_DELAY: Duration = Duration::from_secs(3);
/// The longest `Retry-After` a throttled request is told to wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(4);

fn main() {
    let kills: usize = env_number("JOURNEYD_SOAK_KILLS").unwrap_or(200);
    let throttle = env_number::<u8>("JOURNEYD_SOAK_THROTTLE").unwrap_or(0) > 0;
    let delayed_sends: usize = env_number("JOURNEYD_SOAK_DELAYED_SENDS").unwrap_or(0);
    let seed = env_number("JOURNEYD_SOAK_SEED").unwrap_or_else(|| fastrand::u64(..));
    let targets = match std::env::var("JOURNEYD_SOAK_TARGETS") {
        Ok(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(Target::named)
            .collect(),
        Err(_) => Target::ALL.to_vec(),
    };
    println!(
        "write-back soak: {kills} kills per target, seed {seed} (JOURNEYD_SOAK_SEED), batches of {BATCH}, the CRM writing a row per {} ms{}",
        PACE.as_millis(),
        if throttle {
            ", and throttling (429 with Retry-After)"
        } else {
            ""
        }
    );
    let mut failed = Vec::new();
    let mut all = Vec::new();
    for target in targets {
        let records = env_number("JOURNEYD_SOAK_RECORDS").unwrap_or(target.default_records(kills));
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(target as u64));
        let options = Options {
            kills,
            records,
            throttle,
            delayed_sends,
        };
        let figures = soak(target, &options, &mut rng);
        figures.print();
        if !figures.clean() {
            failed.push(target.name());
        }
        all.push(figures);
    }
    println!();
    println!(
        "{:<24} {:>6} {:>8} {:>8} {:>9} {:>11} {:>5} {:>8} {:>10} {:>8} {:>8}",
        "target",
        "kills",
        "SIGKILL",
        "SIGTERM",
        "exit 143",
        "max exit s",
        "runs",
        "planned",
        "duplicates",
        "missing",
        "wall s"
    );
    for f in &all {
        println!(
            "{:<24} {:>6} {:>8} {:>8} {:>9} {:>11.2} {:>5} {:>8} {:>10} {:>8} {:>8.0}",
            f.target,
            f.sigkills + f.sigterms,
            f.sigkills,
            f.sigterms,
            f.term_143,
            f.term_max.as_secs_f64(),
            f.runs,
            f.planned,
            f.duplicated,
            f.missing.len(),
            f.wall.as_secs_f64()
        );
    }
    if !failed.is_empty() {
        println!("FAILED: {}", failed.join(", "));
        std::process::exit(1);
    }
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
    )
}

/// One CRM and the way journeyd is configured to write back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Hubspot,
    /// The shipped config: recovery by lookup after `settle_seconds`.
    Salesforce,
    /// Upserts by the Task external-id field `Journeyd_Key__c`.
    SalesforceExternalId,
    Dynamics,
}

impl Target {
    const ALL: [Target; 4] = [
        Target::Hubspot,
        Target::Salesforce,
        Target::SalesforceExternalId,
        Target::Dynamics,
    ];

    fn named(name: &str) -> Target {
        Target::ALL
            .into_iter()
            .find(|target| target.name() == name)
            .unwrap_or_else(|| {
                panic!(
                    "JOURNEYD_SOAK_TARGETS names {name}; the targets are {}",
                    Target::ALL.map(Target::name).join(", ")
                )
            })
    }

    fn name(self) -> &'static str {
        match self {
            Target::Hubspot => "hubspot",
            Target::Salesforce => "salesforce",
            Target::SalesforceExternalId => "salesforce_external_id",
            Target::Dynamics => "dynamics",
        }
    }

    /// The connector's name in the config.
    fn connector(self) -> &'static str {
        match self {
            Target::Hubspot => "hubspot",
            Target::Salesforce | Target::SalesforceExternalId => "salesforce",
            Target::Dynamics => "dynamics",
        }
    }

    /// Deals enough that `kills` kills never run out of writes: a run
    /// lands about 20 tasks before its kill (twice that is planned for),
    /// and each CRM's seed has its own share of records that need a task.
    fn default_records(self, kills: usize) -> usize {
        let per_kill = 40;
        let tasks_per_deal = match self {
            Target::Hubspot => 0.4,
            Target::Salesforce | Target::SalesforceExternalId => 1.8,
            Target::Dynamics => 1.7,
        };
        (((kills.max(10) * per_kill) as f64 / tasks_per_deal) as usize).max(100)
    }
}

/// A running emulator of the target's CRM.
enum Crm {
    Hubspot(HubspotEmulator),
    Salesforce(SalesforceEmulator),
    Dynamics(DynamicsEmulator),
}

/// One of journeyd's tasks as the CRM holds it.
struct HeldTask {
    id: String,
    key: String,
    subject: String,
    owner: String,
    open: bool,
}

impl Crm {
    /// Seeds `deals` deals (relative to the real now: the binary audits
    /// against the real clock) and serves them with the CRM's worst
    /// documented behaviour for write-back on.
    fn start(target: Target, deals: usize) -> Crm {
        let now = chrono::Utc::now();
        match target {
            Target::Hubspot => {
                use journeyd_hubspot_emulator::EmulatorConfig;
                let mut config = EmulatorConfig {
                    now,
                    ..EmulatorConfig::with_deals(deals)
                };
                config.knobs.search_lag = SEARCH_LAG;
                Crm::Hubspot(HubspotEmulator::start(config).expect("the emulator starts"))
            }
            Target::Salesforce | Target::SalesforceExternalId => {
                use journeyd_salesforce_emulator::EmulatorConfig;
                let config = EmulatorConfig {
                    now,
                    ..EmulatorConfig::with_opportunities(deals)
                };
                Crm::Salesforce(SalesforceEmulator::start(config).expect("the emulator starts"))
            }
            Target::Dynamics => {
                use journeyd_dynamics_emulator::EmulatorConfig;
                let config = EmulatorConfig {
                    now,
                    ..EmulatorConfig::with_opportunities(deals)
                };
                Crm::Dynamics(DynamicsEmulator::start(config).expect("the emulator starts"))
            }
        }
    }

    /// Points the shipped config at the emulator, as the e2e tests do, and
    /// returns the secret's variable and value.
    fn configure(&self, target: Target, config: &mut toml_edit::DocumentMut) -> (String, String) {
        config["writeback"]["mode"] = value("apply");
        config["writeback"]["max_writes_per_run"] = value(100_000);
        let connector = &mut config["connectors"][target.connector()];
        connector["paging"]["batch_limit"] = value(BATCH);
        connector["limits"]["send_window_seconds"] = value(SEND_WINDOW_SECONDS);
        let mut secret = toml_edit::InlineTable::new();
        let (var, key) = match self {
            Crm::Hubspot(portal) => {
                connector["api_url"] = value(portal.base_url().as_str().trim_end_matches('/'));
                connector["search_lag_seconds"] = value(SETTLE_SECONDS);
                ("JOURNEYD_HUBSPOT_TOKEN", portal.private_app_token())
            }
            Crm::Salesforce(org) => {
                connector["login_url"] = value(org.base_url().as_str().trim_end_matches('/'));
                connector["client_id"] = value(org.client_id());
                connector["username"] = value(org.username());
                connector["settle_seconds"] = value(SETTLE_SECONDS);
                if target == Target::SalesforceExternalId {
                    connector["task_external_id"] = value("Journeyd_Key__c");
                }
                (
                    "JOURNEYD_SALESFORCE_KEY",
                    TEST_JWT_PRIVATE_KEY_PEM.to_owned(),
                )
            }
            Crm::Dynamics(environment) => {
                let base = environment
                    .base_url()
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned();
                connector["api_url"] = value(base.as_str());
                connector["authority_url"] = value(base.as_str());
                connector["tenant"] = value(environment.tenant());
                connector["client_id"] = value(environment.client_id());
                ("JOURNEYD_DYNAMICS_SECRET", environment.client_secret())
            }
        };
        secret.insert("env", var.into());
        connector["secret"] = value(secret);
        (var.to_owned(), key)
    }

    /// From now on each write call is carried out a row at a time, `PACE`
    /// apart, in a task of its own that goes on when its client dies
    /// (`false`: at once).
    fn pace_writes(&self, on: bool) {
        let pace = on.then_some(PACE);
        match self {
            Crm::Hubspot(portal) => portal.update_knobs(|k| k.detached_batch_create = pace),
            Crm::Salesforce(org) => org.update_knobs(|k| k.detached_row_delay = pace),
            Crm::Dynamics(environment) => {
                environment.update_knobs(|k| k.batch_part_delay = pace.unwrap_or_default());
            }
        }
    }

    /// The CRM's next request (the token endpoint's aside) is answered 429
    /// with `Retry-After: wait`.
    fn throttle_next(&self, wait: Duration) {
        self.faults().storm(1, Some(wait));
    }

    /// No 429 is waiting for a request any more.
    fn stop_throttling(&self) {
        self.faults().clear();
    }

    /// Requests answered 429 so far.
    fn throttled(&self) -> u64 {
        self.faults().injected().rate_limited
    }

    /// The next run to start sends its first write call [`SEND_DELAY`]
    /// after recording it sent: HubSpot answers it 429 with that
    /// `Retry-After`; Salesforce and Dataverse answer that late, and the
    /// run's first request is its token, asked for once the write call is
    /// recorded, when the call is about to go.
    fn delay_next_write(&self) {
        match self {
            Crm::Hubspot(portal) => portal.faults().storm(1, Some(SEND_DELAY)),
            Crm::Salesforce(_) | Crm::Dynamics(_) => self.faults().set_delay(SEND_DELAY),
        }
    }

    fn faults(&self) -> journeyd_connector::emulator::Faults {
        match self {
            Crm::Hubspot(portal) => portal.faults(),
            Crm::Salesforce(org) => org.faults(),
            Crm::Dynamics(environment) => environment.faults(),
        }
    }

    /// Write calls the CRM is still carrying out, whether or not their
    /// client still waits.
    fn writes_running(&self) -> usize {
        match self {
            Crm::Hubspot(portal) => portal.creates_running(),
            Crm::Salesforce(org) => org.writes_in_flight(),
            Crm::Dynamics(environment) => environment.batches_running(),
        }
    }

    /// Every task the CRM holds, journeyd's or not: cheap enough to poll.
    fn task_count(&self) -> usize {
        match self {
            Crm::Hubspot(portal) => portal.records(ObjectType::Tasks),
            Crm::Salesforce(org) => org.ids(SObject::Task).len(),
            Crm::Dynamics(environment) => environment.ids(Table::Task).len(),
        }
    }

    /// journeyd's tasks: those carrying a `journeyd-action: KEY` line.
    fn tasks(&self) -> Vec<HeldTask> {
        fn text(fields: &BTreeMap<String, Value>, name: &str) -> String {
            match fields.get(name) {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            }
        }
        // (id, text, subject, owner, open)
        let rows: Vec<(String, String, String, String, bool)> = match self {
            Crm::Hubspot(portal) => portal
                .tasks()
                .into_iter()
                .map(|task| {
                    let property =
                        |name: &str| task.properties.get(name).cloned().unwrap_or_default();
                    let open = property("hs_task_status") != "COMPLETED";
                    (
                        task.id.clone(),
                        property("hs_task_body"),
                        property("hs_task_subject"),
                        property("hubspot_owner_id"),
                        open,
                    )
                })
                .collect(),
            Crm::Salesforce(org) => org
                .tasks()
                .into_iter()
                .map(|task| {
                    let open = text(&task.fields, "Status") != "Completed";
                    (
                        task.id,
                        text(&task.fields, "Description"),
                        text(&task.fields, "Subject"),
                        text(&task.fields, "OwnerId"),
                        open,
                    )
                })
                .collect(),
            Crm::Dynamics(environment) => environment
                .tasks()
                .into_iter()
                .map(|task| {
                    let open = task.fields.get("statecode").and_then(Value::as_i64) == Some(0);
                    (
                        task.id,
                        text(&task.fields, "description"),
                        text(&task.fields, "subject"),
                        text(&task.fields, "_ownerid_value"),
                        open,
                    )
                })
                .collect(),
        };
        rows.into_iter()
            .filter_map(|(id, text, subject, owner, open)| {
                let key = text
                    .lines()
                    .find_map(|line| line.strip_prefix("journeyd-action: "))?
                    .trim()
                    .to_owned();
                Some(HeldTask {
                    id,
                    key,
                    subject,
                    owner,
                    open,
                })
            })
            .collect()
    }

    /// Someone renames record `id` of `object` (a journey object kind:
    /// `deal`, `account`, `contact` or `lead`): its task's subject and
    /// body must follow.
    fn rename(&self, object: &str, id: &str, name: &str) {
        match self {
            Crm::Hubspot(portal) => {
                let (object, property) = match object {
                    "deal" => (ObjectType::Deals, "dealname"),
                    "account" => (ObjectType::Companies, "name"),
                    "contact" => (ObjectType::Contacts, "lastname"),
                    other => panic!("HubSpot has no {other}s"),
                };
                portal.set_property(object, id, property, name)
            }
            .expect("the record is renamed"),
            Crm::Salesforce(org) => {
                let object = match object {
                    "deal" => SObject::Opportunity,
                    "account" => SObject::Account,
                    "contact" => SObject::Contact,
                    "lead" => SObject::Lead,
                    other => panic!("Salesforce has no {other}s"),
                };
                org.set_field(object, id, "Name", json!(name))
                    .expect("the record is renamed");
            }
            Crm::Dynamics(environment) => {
                let (table, column) = match object {
                    "deal" => (Table::Opportunity, "name"),
                    "account" => (Table::Account, "name"),
                    "contact" => (Table::Contact, "fullname"),
                    "lead" => (Table::Lead, "fullname"),
                    other => panic!("Dataverse has no {other}s"),
                };
                environment
                    .set_field(table, id, column, json!(name))
                    .expect("the record is renamed");
            }
        }
    }

    /// Someone closes deal `id` as lost: it leaves the journey, most of its
    /// checks with it, and its task is updated or completed.
    fn lose_deal(&self, id: &str) {
        match self {
            Crm::Hubspot(portal) => portal
                .set_property(ObjectType::Deals, id, "dealstage", "closedlost")
                .expect("the deal is lost"),
            Crm::Salesforce(org) => org
                .set_field(SObject::Opportunity, id, "StageName", json!("Closed Lost"))
                .expect("the deal is lost"),
            Crm::Dynamics(environment) => environment
                .set_field(Table::Opportunity, id, "statecode", json!(2))
                .expect("the deal is lost"),
        }
    }
}

/// The real binary with the target's config, state file and secret.
struct Install {
    dir: tempfile::TempDir,
    config: PathBuf,
    secret: (String, String),
    log: String,
    runs_log: File,
}

impl Install {
    fn new(crm: &Crm, target: Target) -> Install {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = shipped_config(dir.path());
        let secret = crm.configure(target, &mut config);
        let path = dir.path().join("journeyd.toml");
        std::fs::write(&path, config.to_string()).expect("the soak's config is written");
        let runs_log = File::create(dir.path().join("runs.log")).expect("the run log opens");
        Install {
            dir,
            config: path,
            secret,
            log: std::env::var("JOURNEYD_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            runs_log,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_journeyd"));
        command
            .env_remove("JOURNEYD_CONFIG")
            .env_remove("JOURNEYD_STATE")
            .env_remove("CREDENTIALS_DIRECTORY")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env(&self.secret.0, &self.secret.1)
            .env("RUST_LOG", &self.log);
        command
    }

    /// Runs `journeyd --json <args>` to its end and parses what it
    /// printed; panics unless it succeeded.
    fn json(&self, args: &[&str]) -> Value {
        let output = self
            .command(&[&["--json"][..], args].concat())
            .output()
            .expect("journeyd runs");
        assert!(
            output.status.success(),
            "journeyd {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "journeyd {args:?} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Notes `line` in the run log, between the runs' own lines.
    fn note(&mut self, line: &str) {
        writeln!(self.runs_log, "=== {line}").expect("the run log is written");
    }

    /// Starts `writeback --apply`, its log lines going to the run log.
    fn start_apply(&self, connector: &str) -> Child {
        let log = self.runs_log.try_clone().expect("the run log is shared");
        self.command(&["writeback", "--apply", "--connector", connector])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("journeyd starts")
    }

    /// `writeback --apply --json` to its end, its log lines going to the
    /// run log; its report, if it printed one.
    fn apply_to_end(&self, connector: &str) -> (ExitStatus, Option<Value>) {
        let log = self.runs_log.try_clone().expect("the run log is shared");
        let output = self
            .command(&["--json", "writeback", "--apply", "--connector", connector])
            .stderr(log)
            .output()
            .expect("journeyd runs");
        let report = serde_json::from_slice::<Value>(&output.stdout)
            .ok()
            .map(|reports| reports[0].clone());
        (output.status, report)
    }

    /// Every ledger row of `connector`: its state and request by action
    /// key.
    fn ledger(&self, connector: &str) -> BTreeMap<String, (String, Value)> {
        let db = rusqlite::Connection::open(self.dir.path().join("bench.sqlite"))
            .expect("the state file opens");
        let mut rows = db
            .prepare("SELECT action_key, state, request FROM writeback_ledger WHERE connector = ?1")
            .expect("the ledger is readable");
        rows.query_map([connector], |row| {
            let request: String = row.get(2)?;
            let request = serde_json::from_str(&request).unwrap_or(Value::Null);
            Ok((row.get(0)?, (row.get(1)?, request)))
        })
        .expect("the ledger is readable")
        .collect::<Result<_, _>>()
        .expect("the ledger is readable")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A task the first dry run planned: its record.
struct Planned {
    object: String,
    record_id: String,
}

/// What a target's soak did and found.
#[derive(Default)]
struct Figures {
    target: &'static str,
    planned: usize,
    records: usize,
    sigkills: usize,
    sigterms: usize,
    /// Runs started, the final ones included.
    runs: usize,
    /// Runs that ended before their kill came, by exit code.
    ended_early: BTreeMap<String, usize>,
    term_143: usize,
    /// The longest a SIGTERM'd run took to exit 143.
    term_max: Duration,
    /// SIGTERM'd runs that ended otherwise: how, and how many.
    term_other: BTreeMap<String, usize>,
    /// Planned tasks the CRM did not hold yet at the last kill.
    unwritten_at_last_kill: usize,
    /// The tasks of the records changed, and what each record became.
    changed: BTreeMap<String, Change>,
    /// Of those, the ones that did not follow: a renamed record's task
    /// without the new name, a lost deal's task neither completed nor
    /// rewritten.
    unfollowed: Vec<String>,
    renamed: usize,
    lost: usize,
    updates_applied: usize,
    closes_applied: usize,
    recovered: u64,
    resent: u64,
    /// Requests the CRM answered 429.
    throttled: u64,
    /// Rounds of a write call reaching the CRM late, then a kill.
    delayed_sends: usize,
    final_runs: usize,
    /// Whether the last run sent nothing and the plan is empty with
    /// nothing unconfirmed.
    settled: bool,
    held: usize,
    /// Tasks beyond the first of a key.
    duplicated: usize,
    twice: Vec<(String, Vec<String>)>,
    missing: Vec<String>,
    unplanned: Vec<String>,
    ownerless: Vec<String>,
    /// Tasks that are not as the ledger last wrote them: open though it
    /// completed them or completed though it did not, or with another
    /// subject or owner than its latest confirmed write.
    wrong_state: Vec<String>,
    wall: Duration,
    dir: Option<PathBuf>,
}

impl Figures {
    fn clean(&self) -> bool {
        self.duplicated == 0
            && self.missing.is_empty()
            && self.unplanned.is_empty()
            && self.ownerless.is_empty()
            && self.wrong_state.is_empty()
            && self.unfollowed.is_empty()
            && self.settled
    }

    fn print(&self) {
        let name = self.target;
        let term_other: Vec<String> = self
            .term_other
            .iter()
            .map(|(how, n)| format!("{n} {how}"))
            .collect();
        let ended: Vec<String> = self
            .ended_early
            .iter()
            .map(|(how, n)| format!("{n} {how}"))
            .collect();
        println!("{name}:");
        println!(
            "  {} deals seeded, {} tasks planned; {} kills ({} SIGKILL, {} SIGTERM) over {} runs ({} final); {} runs ended before their kill ({}); {} planned tasks not yet written at the last kill",
            self.records,
            self.planned,
            self.sigkills + self.sigterms,
            self.sigkills,
            self.sigterms,
            self.runs,
            self.final_runs,
            self.ended_early.values().sum::<usize>(),
            if ended.is_empty() {
                "-".to_owned()
            } else {
                ended.join(", ")
            },
            self.unwritten_at_last_kill
        );
        println!(
            "  SIGTERM: {} of {} exited 143, the slowest in {:.2} s; otherwise: {}",
            self.term_143,
            self.sigterms,
            self.term_max.as_secs_f64(),
            if term_other.is_empty() {
                "none".to_owned()
            } else {
                term_other.join(", ")
            }
        );
        println!(
            "  changes: {} records renamed, {} deals closed as lost ({} never followed by a task write); {} task updates and {} completions applied; {} writes recovered by lookup, {} sent again; {} requests throttled; {} delayed sends",
            self.renamed,
            self.lost,
            self.unfollowed.len(),
            self.updates_applied,
            self.closes_applied,
            self.recovered,
            self.resent,
            self.throttled,
            self.delayed_sends
        );
        println!(
            "  end: {} runs to the end, settled: {}; the CRM holds {} of journeyd's tasks: {} duplicates, {} missing, {} unplanned, {} without an owner, {} not as the ledger last wrote them; wall time {:.0} s",
            self.final_runs,
            if self.settled { "yes" } else { "NO" },
            self.held,
            self.duplicated,
            self.missing.len(),
            self.unplanned.len(),
            self.ownerless.len(),
            self.wrong_state.len(),
            self.wall.as_secs_f64()
        );
        let show = |what: &str, items: &[String]| {
            if !items.is_empty() {
                println!(
                    "  {what}: {}{}",
                    items
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    if items.len() > 10 { ", ..." } else { "" }
                );
            }
        };
        let twice: Vec<String> = self
            .twice
            .iter()
            .map(|(key, ids)| format!("{key} ({})", ids.join(" ")))
            .collect();
        show("written twice", &twice);
        show("missing", &self.missing);
        show("unplanned", &self.unplanned);
        show("without an owner", &self.ownerless);
        show("not as the ledger last wrote them", &self.wrong_state);
        show(
            "of a changed record, never updated or completed",
            &self.unfollowed,
        );
        if let Some(dir) = &self.dir {
            println!("  kept for a look: {}", dir.display());
        }
    }
}

/// What a changed record became.
#[derive(Debug)]
enum Change {
    /// Renamed to this.
    Renamed(String),
    /// A deal closed as lost.
    Lost,
}

/// How a kill's moment is chosen.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This long after the run started.
    After(Duration),
    /// Once this many more tasks landed in the CRM than at the start.
    Landed(usize),
}

/// How one target is soaked.
struct Options {
    kills: usize,
    records: usize,
    throttle: bool,
    delayed_sends: usize,
}

fn soak(target: Target, options: &Options, rng: &mut fastrand::Rng) -> Figures {
    let Options {
        kills,
        records,
        throttle,
        delayed_sends,
    } = *options;
    let started = Instant::now();
    let connector = target.connector();
    let crm = Crm::start(target, records);
    let mut install = Install::new(&crm, target);
    let mut figures = Figures {
        target: target.name(),
        records,
        ..Figures::default()
    };

    // What the CRM must hold at the end, each once.
    install.json(&["sync", "--connector", connector]);
    install.json(&["audit"]);
    let plan = install.json(&["writeback", "--connector", connector]);
    let planned: BTreeMap<String, Planned> = plan[0]["plan"]["writes"]
        .as_array()
        .expect("planned writes")
        .iter()
        .filter(|w| w["request"]["kind"] == "create_task")
        .map(|w| {
            let text = |v: &Value| v.as_str().expect("a string").to_owned();
            (
                text(&w["request"]["key"]),
                Planned {
                    object: text(&w["object"]),
                    record_id: text(&w["record_id"]),
                },
            )
        })
        .collect();
    figures.planned = planned.len();
    println!(
        "{}: {records} deals seeded, {} tasks planned, in {:.0} s",
        target.name(),
        planned.len(),
        started.elapsed().as_secs_f64()
    );

    crm.pace_writes(true);
    for round in 1..=delayed_sends {
        install.note(&format!("delayed send {round}"));
        delayed_send(&crm, &install, connector);
        figures.delayed_sends += 1;
        figures.runs += 2;
    }
    let mut run = 0;
    let mut changed_at = 0;
    while figures.sigkills + figures.sigterms < kills && run < 3 * kills {
        let done = figures.sigkills + figures.sigterms;
        if done >= changed_at + (kills / CHANGE_ROUNDS).clamp(1, 20) {
            changed_at = done;
            let edit = Edit {
                crm: &crm,
                connector,
                planned: &planned,
            };
            edit.change_records(&mut install, rng, &mut figures);
        }
        run += 1;
        figures.runs += 1;
        let moment = if rng.bool() {
            Moment::After(MAX_DELAY.mul_f64(rng.f64()))
        } else {
            Moment::Landed(rng.usize(1..=MAX_LANDED))
        };
        let term = rng.bool();
        // When, and how long the 429 it gets asks to wait.
        let throttled = (throttle && rng.bool()).then(|| {
            (
                MAX_DELAY.mul_f64(rng.f64()),
                Duration::from_secs(rng.u64(1..=MAX_RETRY_AFTER.as_secs())),
            )
        });
        install.note(&format!(
            "run {run}: {} at {moment:?}{}",
            if term { "SIGTERM" } else { "SIGKILL" },
            throttled.map_or(String::new(), |(at, wait)| format!(
                ", a 429 (Retry-After {wait:?}) from {at:?}"
            ))
        ));
        let before = crm.task_count();
        let mut child = install.start_apply(connector);
        let began = Instant::now();
        let mut armed = false;
        let ended = loop {
            if let Some(status) = child.try_wait().expect("journeyd is waited for") {
                break Some(status);
            }
            let now = began.elapsed();
            if let Some((at, wait)) = throttled
                && !armed
                && now >= at
            {
                crm.throttle_next(wait);
                armed = true;
            }
            let reached = match moment {
                Moment::After(delay) => now >= delay,
                Moment::Landed(n) => crm.task_count() >= before + n,
            };
            if reached || now >= TRIGGER_PATIENCE {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        crm.stop_throttling();
        if let Some(status) = ended {
            let how = describe(status);
            install.note(&format!("run {run} ended before its kill: {how}"));
            *figures.ended_early.entry(how).or_default() += 1;
            continue;
        }
        if term {
            figures.sigterms += 1;
            signal(&child, libc::SIGTERM);
            let signalled = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().expect("journeyd is waited for") {
                    break Some(status);
                }
                if signalled.elapsed() >= TERM_PATIENCE {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            let took = signalled.elapsed();
            match status {
                Some(status) if status.code() == Some(143) => {
                    figures.term_143 += 1;
                    figures.term_max = figures.term_max.max(took);
                }
                Some(status) => {
                    let how = describe(status);
                    install.note(&format!("run {run} SIGTERM'd: {how}"));
                    *figures.term_other.entry(how).or_default() += 1;
                }
                None => {
                    child.kill().ok();
                    child.wait().ok();
                    install.note(&format!("run {run} SIGTERM'd: hung"));
                    *figures
                        .term_other
                        .entry(format!(
                            "still running {} s after it",
                            TERM_PATIENCE.as_secs()
                        ))
                        .or_default() += 1;
                }
            }
        } else {
            figures.sigkills += 1;
            child.kill().expect("journeyd is killed");
            child.wait().expect("journeyd is reaped");
        }
    }
    figures.throttled = crm.throttled();
    let held: BTreeSet<String> = crm.tasks().into_iter().map(|t| t.key).collect();
    figures.unwritten_at_last_kill = planned.keys().filter(|k| !held.contains(*k)).count();

    // The CRM finishes what it received; then write-back runs to its end.
    let drain = Instant::now();
    while crm.writes_running() > 0 {
        assert!(
            drain.elapsed() < DRAIN_PATIENCE,
            "the CRM still writes after {DRAIN_PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    crm.pace_writes(false);
    install.note("to the end");
    for _ in 0..FINAL_RUNS {
        figures.runs += 1;
        figures.final_runs += 1;
        let (status, report) = install.apply_to_end(connector);
        let Some(report) = report else {
            install.note(&format!("a run to the end printed no report: {status}"));
            continue;
        };
        let count = |name: &str| report["counts"][name].as_u64().unwrap_or(0);
        if count("sent") == 0 && count("recovered") == 0 && status.success() {
            figures.settled = true;
            break;
        }
    }
    let dry = install.json(&["writeback", "--connector", connector]);
    let left = dry[0]["plan"]["writes"].as_array().map_or(0, Vec::len);
    let unconfirmed = dry[0]["counts"]["unconfirmed"].as_u64().unwrap_or(0);
    if left > 0 || unconfirmed > 0 {
        install.note(&format!(
            "not settled: {left} writes planned, {unconfirmed} unconfirmed"
        ));
        figures.settled = false;
    }

    check(&crm, &install, target, &planned, &mut figures);
    figures.wall = started.elapsed();
    if !figures.clean() || std::env::var_os("JOURNEYD_SOAK_KEEP").is_some() {
        figures.dir = Some(install.dir.keep());
    }
    figures
}

/// What changing records works on.
struct Edit<'a> {
    crm: &'a Crm,
    connector: &'a str,
    planned: &'a BTreeMap<String, Planned>,
}

impl Edit<'_> {
    /// Renames [`CHANGES`] planned records whose task the CRM already
    /// holds (so that the task is due whatever the change does to the
    /// record's checks), or closes them as lost (half the deals among
    /// them), each record once; then syncs and audits: the next runs must
    /// update or complete their tasks.
    fn change_records(
        &self,
        install: &mut Install,
        rng: &mut fastrand::Rng,
        figures: &mut Figures,
    ) {
        let held: BTreeSet<String> = self.crm.tasks().into_iter().map(|t| t.key).collect();
        let mut candidates: Vec<(&String, &Planned)> = self
            .planned
            .iter()
            .filter(|(key, _)| held.contains(*key) && !figures.changed.contains_key(*key))
            .collect();
        rng.shuffle(&mut candidates);
        let mut names = Vec::new();
        for (key, record) in candidates.into_iter().take(CHANGES) {
            let id = &record.record_id;
            let change = if record.object == "deal" && rng.bool() {
                self.crm.lose_deal(id);
                figures.lost += 1;
                names.push(format!("lost deal {id}"));
                Change::Lost
            } else {
                let name = format!("Renamed {} {id}", record.object);
                self.crm.rename(&record.object, id, &name);
                figures.renamed += 1;
                names.push(format!("renamed {} {id}", record.object));
                Change::Renamed(name)
            };
            figures.changed.insert(key.clone(), change);
        }
        install.note(&format!("changes: {}", names.join(", ")));
        // HubSpot's search shows a change only after its lag.
        std::thread::sleep(SEARCH_LAG * 2);
        install.json(&["sync", "--connector", self.connector]);
        install.json(&["audit"]);
    }
}

/// One round of a write call that reaches the CRM later than the ledger
/// says it was sent: a run that starts with nothing unconfirmed has its
/// first write call delayed ([`Crm::delay_next_write`]) and is SIGKILLed
/// as soon as the CRM starts writing; the next run starts at once and is
/// asked to stop (SIGTERM) a few seconds later, leaving nothing
/// unconfirmed for the next round.
fn delayed_send(crm: &Crm, install: &Install, connector: &str) {
    let drain = Instant::now();
    while crm.writes_running() > 0 && drain.elapsed() < DRAIN_PATIENCE {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = crm.task_count();
    crm.delay_next_write();
    let mut late = install.start_apply(connector);
    let started = Instant::now();
    while crm.task_count() == before && started.elapsed() < TRIGGER_PATIENCE {
        std::thread::sleep(Duration::from_millis(2));
    }
    late.kill().ok();
    late.wait().ok();
    crm.faults().clear();
    let mut next = install.start_apply(connector);
    std::thread::sleep(SEND_DELAY + Duration::from_secs(1));
    signal(&next, libc::SIGTERM);
    let stopped = Instant::now();
    while next.try_wait().ok().flatten().is_none() && stopped.elapsed() < TERM_PATIENCE {
        std::thread::sleep(Duration::from_millis(10));
    }
    next.kill().ok();
    next.wait().ok();
}

/// Compares what the CRM holds with the plan and the ledger.
fn check(
    crm: &Crm,
    install: &Install,
    target: Target,
    planned: &BTreeMap<String, Planned>,
    figures: &mut Figures,
) {
    let tasks = crm.tasks();
    let ledger = install.ledger(target.connector());
    let applied = |key: &str| {
        ledger
            .get(key)
            .filter(|(state, _)| state == "applied")
            .map(|(_, request)| request)
    };
    figures.updates_applied = ledger
        .iter()
        .filter(|(key, (state, _))| key.contains("_u") && state == "applied")
        .count();
    figures.closes_applied = ledger
        .iter()
        .filter(|(key, (state, _))| key.ends_with("_c") && state == "applied")
        .count();
    let mut by_key: BTreeMap<&str, Vec<&HeldTask>> = BTreeMap::new();
    for task in &tasks {
        by_key.entry(task.key.as_str()).or_default().push(task);
        if task.owner.is_empty() {
            figures
                .ownerless
                .push(format!("{} ({})", task.key, task.id));
        }
    }
    figures.held = by_key.len();
    for (key, held) in &by_key {
        if held.len() > 1 {
            figures.duplicated += held.len() - 1;
            figures.twice.push((
                (*key).to_owned(),
                held.iter().map(|t| t.id.clone()).collect(),
            ));
        }
        if !planned.contains_key(*key) {
            figures.unplanned.push((*key).to_owned());
        }
        // The task as the ledger last wrote it: its create, or the latest
        // update the CRM confirmed; completed once its close is confirmed.
        let completed = applied(&format!("{key}_c")).is_some();
        let latest = (1..)
            .map(|n| applied(&format!("{key}_u{n}")))
            .take_while(Option::is_some)
            .last()
            .flatten()
            .or_else(|| applied(key));
        for task in held {
            let mut wrong = Vec::new();
            if task.open == completed {
                wrong.push(if task.open { "open" } else { "completed" }.to_owned());
            }
            if let Some(request) = latest {
                if request["subject"].as_str() != Some(task.subject.as_str()) {
                    wrong.push(format!("subject {:?}", task.subject));
                }
                if let Some(owner) = request["owner_id"].as_str()
                    && owner != task.owner
                {
                    wrong.push(format!("owner {:?} rather than {owner:?}", task.owner));
                }
            }
            if !wrong.is_empty() {
                figures
                    .wrong_state
                    .push(format!("{key} ({}: {})", task.id, wrong.join(", ")));
            }
        }
    }
    // A create sent again after the change carries the new text itself,
    // so what counts is the task, not which write made it so.
    figures.unfollowed = figures
        .changed
        .iter()
        .filter(|(key, change)| {
            let Some(held) = by_key.get(key.as_str()) else {
                return false;
            };
            held.iter().any(|task| match change {
                Change::Renamed(name) => !task.subject.contains(name.as_str()),
                Change::Lost => task.open && applied(&format!("{key}_u1")).is_none(),
            })
        })
        .map(|(key, change)| format!("{key} ({change:?})"))
        .collect();
    figures.missing = planned
        .keys()
        .filter(|key| !by_key.contains_key(key.as_str()))
        .cloned()
        .collect();
    let runs = install.path().join("runs.log");
    let text = std::fs::read_to_string(&runs).unwrap_or_default();
    (figures.recovered, figures.resent) = settled_counts(&text);
}

/// The sums of `recovered` and `resent` over the log lines (JSON) in
/// which runs report what they settled of what earlier runs left.
fn settled_counts(log: &str) -> (u64, u64) {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("settled write-back actions"))
        })
        .fold((0, 0), |(recovered, resent), line| {
            let field = |name: &str| line["fields"][name].as_u64().unwrap_or(0);
            (recovered + field("recovered"), resent + field("resent"))
        })
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signo)) => format!("killed by signal {signo}"),
        (None, None) => status.to_string(),
    }
}

fn signal(child: &Child, signo: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: sends a signal to our own child, which has not been reaped.
    let sent = unsafe { libc::kill(pid, signo) };
    assert_eq!(sent, 0, "the signal was sent");
}
