//! Exactly once, whatever happens to `journeyd writeback --apply`: one
//! specification run against each CRM's emulator with its worst documented
//! behaviour on. The real binary is killed after the CRM wrote a batch and
//! before the answer came back, killed while the CRM still writes a batch
//! it goes on with after its client died, and asked to stop with SIGTERM or
//! SIGINT mid-batch; each time it is rerun at once, then run to the end.
//! The CRM then holds exactly the tasks a dry run planned, each once.

use crate::environment::Environment;
use crate::org::Org;
use crate::portal::{Auth, Portal};
use crate::support::Install;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use toml_edit::value;

/// Records per CRM: enough for several batches of [`BATCH`].
const RECORDS: usize = 40;
/// Writes per batch call, so that a run makes several.
const BATCH: i64 = 5;
/// How long a paced CRM takes per row it writes.
const PACE: Duration = Duration::from_millis(100);
/// The longest any wait of these specifications lasts.
const PATIENCE: Duration = Duration::from_secs(30);

/// A CRM emulator and an installation writing back to it.
pub trait Crm {
    /// The connector's name in the installation's config.
    fn name(&self) -> &'static str;
    fn install(&self) -> &Install;
    /// journeyd's tasks in the CRM, by the key they carry.
    fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>>;
    /// From now on each write call is made, then its answer held back for
    /// `hold` (zero: answered at once).
    fn hold_answers(&self, hold: Duration);
    /// From now on each write call commits its rows one at a time, `pace`
    /// apart, in a task of its own that goes on when its client dies
    /// (`None`: at once).
    fn pace_writes(&self, pace: Option<Duration>);
    /// Write calls the CRM is still carrying out.
    fn writes_running(&self) -> usize;
}

impl Crm for Portal {
    fn name(&self) -> &'static str {
        "hubspot"
    }
    fn install(&self) -> &Install {
        &self.install
    }
    fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>> {
        Portal::tasks_by_key(self)
    }
    fn hold_answers(&self, hold: Duration) {
        self.emulator.hold_batch_create(hold);
    }
    fn pace_writes(&self, pace: Option<Duration>) {
        self.emulator
            .update_knobs(|knobs| knobs.detached_batch_create = pace);
    }
    fn writes_running(&self) -> usize {
        self.emulator.creates_running()
    }
}

impl Crm for Org {
    fn name(&self) -> &'static str {
        "salesforce"
    }
    fn install(&self) -> &Install {
        &self.install
    }
    fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>> {
        Org::tasks_by_key(self)
    }
    fn hold_answers(&self, hold: Duration) {
        self.emulator.hold_collections_create(hold);
    }
    fn pace_writes(&self, pace: Option<Duration>) {
        self.emulator
            .update_knobs(|knobs| knobs.detached_row_delay = pace);
    }
    fn writes_running(&self) -> usize {
        self.emulator.writes_in_flight()
    }
}

impl Crm for Environment {
    fn name(&self) -> &'static str {
        "dynamics"
    }
    fn install(&self) -> &Install {
        &self.install
    }
    fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>> {
        Environment::tasks_by_key(self)
    }
    fn hold_answers(&self, hold: Duration) {
        self.emulator.hold_batch(hold);
    }
    fn pace_writes(&self, pace: Option<Duration>) {
        self.emulator
            .update_knobs(|knobs| knobs.batch_part_delay = pace.unwrap_or_default());
    }
    fn writes_running(&self) -> usize {
        self.emulator.batches_running()
    }
}

/// A HubSpot portal whose search lags writes by a fraction of a second,
/// and an installation whose recovery waits longer than that plus a paced
/// batch: search_lag_seconds must cover both.
pub fn portal() -> Portal {
    // HubSpot's seed has fewer broken deals: more deals, as many tasks.
    let portal = Portal::configured(2 * RECORDS, Auth::PrivateApp, |config| {
        config["connectors"]["hubspot"]["search_lag_seconds"] = value(2);
        config["connectors"]["hubspot"]["limits"]["send_window_seconds"] = value(2);
        config["connectors"]["hubspot"]["paging"]["batch_limit"] = value(BATCH);
    });
    portal
        .emulator
        .update_knobs(|knobs| knobs.search_lag = Duration::from_millis(300));
    portal
}

/// A Salesforce org, written to by the shipped config (recovery by lookup,
/// `settle_seconds` covering a paced batch) or, with `external_id`, by
/// upserts on a Task external-id field.
pub fn org(external_id: bool) -> Org {
    Org::at(chrono::Utc::now(), RECORDS, |config| {
        let salesforce = &mut config["connectors"]["salesforce"];
        salesforce["settle_seconds"] = value(2);
        salesforce["limits"]["send_window_seconds"] = value(2);
        salesforce["paging"]["batch_limit"] = value(BATCH);
        if external_id {
            salesforce["task_external_id"] = value("Journeyd_Key__c");
        }
    })
}

/// A Dataverse environment, written to by the shipped config.
pub fn environment() -> Environment {
    Environment::at(chrono::Utc::now(), RECORDS, |config| {
        config["connectors"]["dynamics"]["paging"]["batch_limit"] = value(BATCH);
    })
}

/// Syncs and audits, and returns the keys of the tasks a dry run plans:
/// what the CRM must hold, each once, when write-back is done.
pub fn prepare(crm: &impl Crm) -> BTreeSet<String> {
    let install = crm.install();
    install.json(&["sync", "--connector", crm.name()]);
    install.run(&["audit"]);
    let plan = install.json(&["writeback", "--connector", crm.name()]);
    let keys: BTreeSet<String> = plan[0]["plan"]["writes"]
        .as_array()
        .expect("planned writes")
        .iter()
        .filter(|w| w["request"]["kind"] == "create_task")
        .map(|w| w["request"]["key"].as_str().expect("a key").to_owned())
        .collect();
    assert!(
        keys.len() > 2 * BATCH as usize,
        "{} tasks planned",
        keys.len()
    );
    keys
}

/// `writeback --apply` run to its end; its report.
pub fn apply(crm: &impl Crm) -> serde_json::Value {
    crm.install()
        .json(&["writeback", "--apply", "--connector", crm.name()])[0]
        .clone()
}

/// Asserts that the CRM holds exactly the `expected` tasks, each once.
pub fn assert_exactly_once(crm: &impl Crm, expected: &BTreeSet<String>) {
    let tasks = crm.tasks_by_key();
    let twice: Vec<_> = tasks.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    let held: BTreeSet<String> = tasks.into_keys().collect();
    let missing: Vec<_> = expected.difference(&held).collect();
    let unplanned: Vec<_> = held.difference(expected).collect();
    assert!(missing.is_empty(), "never written: {missing:?}");
    assert!(
        unplanned.is_empty(),
        "written but not planned: {unplanned:?}"
    );
}

/// Starts `writeback --apply` and waits (at most [`PATIENCE`]) until the
/// CRM holds more of journeyd's tasks than `before`.
fn start_until_written(crm: &impl Crm, before: usize) -> Child {
    let child = crm
        .install()
        .command(&["writeback", "--apply", "--connector", crm.name()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("journeyd starts");
    wait_for(
        || crm.tasks_by_key().len() > before,
        "a batch reached the CRM",
    );
    child
}

fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn exit_within(mut child: Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("journeyd is waited for") {
            return status;
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            panic!("journeyd did not exit within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, signo: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: sends a signal to our own child, which has not been reaped.
    let sent = unsafe { libc::kill(pid, signo) };
    assert_eq!(sent, 0, "the signal was sent");
}

/// Every task written once, and a second run writes nothing.
pub fn applying_twice_writes_each_planned_task_once(crm: impl Crm) {
    let expected = prepare(&crm);
    let first = apply(&crm);
    assert_eq!(first["counts"]["applied"], expected.len() as u64, "{first}");
    assert_exactly_once(&crm, &expected);
    let second = apply(&crm);
    assert_eq!(second["counts"]["sent"], 0, "{second}");
    assert_exactly_once(&crm, &expected);
}

/// Killed after the CRM wrote a batch, before its answer arrived; rerun at
/// once, then to the end.
pub fn a_kill_after_the_crm_wrote_a_batch_and_an_immediate_rerun_write_nothing_twice(
    crm: impl Crm,
) {
    let expected = prepare(&crm);
    crm.hold_answers(Duration::from_secs(60));
    let mut child = start_until_written(&crm, 0);
    child.kill().expect("journeyd is killed");
    child.wait().expect("journeyd is reaped");
    crm.hold_answers(Duration::ZERO);

    let rerun = apply(&crm);
    apply(&crm);

    assert!(
        rerun["counts"]["recovered"].as_u64() > Some(0)
            || rerun["counts"]["resent"].as_u64() > Some(0),
        "the rerun settled what the kill left: {rerun}"
    );
    assert_exactly_once(&crm, &expected);
}

/// Killed while the CRM still writes a batch it finishes after its client
/// died; rerun at once, while it still writes, then to the end.
pub fn a_kill_while_the_crm_still_writes_and_an_immediate_rerun_write_nothing_twice(crm: impl Crm) {
    let expected = prepare(&crm);
    crm.pace_writes(Some(PACE));
    let mut child = start_until_written(&crm, 0);
    child.kill().expect("journeyd is killed");
    child.wait().expect("journeyd is reaped");
    assert!(
        crm.writes_running() > 0,
        "the CRM goes on after its client died"
    );

    let rerun = apply(&crm);
    crm.pace_writes(None);
    wait_for(|| crm.writes_running() == 0, "the CRM to finish its writes");
    apply(&crm);

    assert_ne!(rerun["status"], "failed", "{rerun}");
    assert_exactly_once(&crm, &expected);
}

/// Asked to stop mid-batch: the batch in hand is finished and recorded,
/// nothing new starts, and the command exits 128 + the signal's number
/// within seconds; what is left is written by the next run, once.
pub fn a_signal_mid_batch_finishes_the_batch_records_it_and_exits_with_its_code(
    crm: impl Crm,
    signo: libc::c_int,
) {
    let expected = prepare(&crm);
    crm.hold_answers(Duration::from_secs(1));
    let child = start_until_written(&crm, 0);
    signal(&child, signo);
    let status = exit_within(child, Duration::from_secs(10));
    crm.hold_answers(Duration::ZERO);

    assert_eq!(status.code(), Some(128 + signo), "{status:?}");
    let written = crm.tasks_by_key().len();
    assert!(written < expected.len(), "it stopped before the end");
    let db = rusqlite::Connection::open(crm.install().path("state.sqlite"))
        .expect("the state file opens");
    let unconfirmed: i64 = db
        .query_row(
            "SELECT count(*) FROM writeback_ledger WHERE state IN ('pending', 'sent')",
            [],
            |row| row.get(0),
        )
        .expect("the ledger is readable");
    assert_eq!(unconfirmed, 0, "the batch in hand was recorded");
    let next = apply(&crm);
    assert_eq!(next["counts"]["recovered"], 0, "{next}");
    assert_exactly_once(&crm, &expected);
}

macro_rules! crash_specs {
    ($module:ident, $crm:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn applying_twice_writes_each_planned_task_once() {
                super::applying_twice_writes_each_planned_task_once($crm);
            }

            #[test]
            fn a_kill_after_the_crm_wrote_a_batch_and_an_immediate_rerun_write_nothing_twice() {
                super::a_kill_after_the_crm_wrote_a_batch_and_an_immediate_rerun_write_nothing_twice($crm);
            }

            #[test]
            fn a_kill_while_the_crm_still_writes_and_an_immediate_rerun_write_nothing_twice() {
                super::a_kill_while_the_crm_still_writes_and_an_immediate_rerun_write_nothing_twice($crm);
            }

            #[test]
            fn sigterm_mid_batch_finishes_the_batch_records_it_and_exits_143() {
                super::a_signal_mid_batch_finishes_the_batch_records_it_and_exits_with_its_code(
                    $crm,
                    libc::SIGTERM,
                );
            }
        }
    };
}

crash_specs!(hubspot, portal());
crash_specs!(salesforce, org(false));
crash_specs!(salesforce_external_id, org(true));
crash_specs!(dynamics, environment());

/// A create the CRM throttled is sent again later than it was recorded:
/// the rerun's lookup must wait for that too, not only for the search lag.
#[test]
fn hubspot_a_kill_after_a_throttled_create_landed_and_an_immediate_rerun_write_nothing_twice() {
    let crm = Portal::configured(2 * RECORDS, Auth::PrivateApp, |config| {
        let hubspot = &mut config["connectors"]["hubspot"];
        hubspot["search_lag_seconds"] = value(4);
        hubspot["limits"]["send_window_seconds"] = value(4);
        hubspot["paging"]["batch_limit"] = value(BATCH);
    });
    crm.emulator
        .update_knobs(|knobs| knobs.search_lag = Duration::from_secs(3));
    let expected = prepare(&crm);
    // The first create is answered 429 and sent again 3 s later; then the
    // CRM writes it and holds its answer. Search shows it 3 s after that,
    // after the 4 s of lag counted from when it was recorded as sent.
    crm.emulator.faults().storm(1, Some(Duration::from_secs(3)));
    crm.hold_answers(Duration::from_secs(60));
    let mut child = start_until_written(&crm, 0);
    child.kill().expect("journeyd is killed");
    child.wait().expect("journeyd is reaped");
    crm.hold_answers(Duration::ZERO);

    let rerun = apply(&crm);
    apply(&crm);

    assert!(rerun["counts"]["recovered"].as_u64() > Some(0), "{rerun}");
    assert_exactly_once(&crm, &expected);
}

#[test]
fn sigint_mid_batch_finishes_the_batch_records_it_and_exits_130() {
    a_signal_mid_batch_finishes_the_batch_records_it_and_exits_with_its_code(
        environment(),
        libc::SIGINT,
    );
}

#[test]
fn switching_from_a_task_per_violation_to_one_per_record_leaves_one_open_task_per_record() {
    let env = Environment::at(chrono::Utc::now(), RECORDS, |config| {
        config["writeback"]["tasks"] = value("per_violation");
    });
    prepare(&env);
    let first = apply(&env);
    let per_violation = first["counts"]["applied"].as_u64().expect("applied");
    let config = std::fs::read_to_string(env.install.config_path()).expect("the config");
    std::fs::write(
        env.install.config_path(),
        config.replace("tasks = \"per_violation\"", "tasks = \"per_record\""),
    )
    .expect("the config is rewritten");

    let switched = apply(&env);
    let again = apply(&env);

    let open_by_record = |env: &Environment| {
        let mut open: BTreeMap<String, usize> = BTreeMap::new();
        for task in env.emulator.tasks() {
            let field = |name: &str| task.fields.get(name).cloned().unwrap_or_default();
            let ours = field("description")
                .as_str()
                .is_some_and(|text| text.contains("journeyd-action: "));
            // Open unless completed (1) or canceled (2).
            if ours && field("statecode").as_i64().unwrap_or(0) == 0 {
                *open
                    .entry(field("_regardingobjectid_value").to_string())
                    .or_default() += 1;
            }
        }
        open
    };
    let open = open_by_record(&env);
    assert!(!open.is_empty(), "records keep their tasks");
    assert!(
        open.values().all(|n| *n == 1),
        "one open task per record: {open:?}"
    );
    let completed = switched["written"]
        .as_array()
        .expect("writes")
        .iter()
        .filter(|w| w["request"]["kind"] == "complete_task")
        .count() as u64;
    assert_eq!(
        completed, per_violation,
        "every earlier task completed, once"
    );
    assert_eq!(again["counts"]["sent"], 0, "{again}");
}
