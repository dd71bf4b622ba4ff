//! The service: scheduled work, one run at a time per connector, and the
//! signals systemd sends.
//!
//! Jobs, on `tokio-cron-scheduler` in the config's time zone:
//! - each connector's incremental sync on `schedule.sync`; a slot that comes
//!   while the connector's previous run is still going is skipped, and the
//!   skip is logged;
//! - the audit on `schedule.audit`: a full sync of each connector (which
//!   reconciles deletions), then one audit of every record, then, with
//!   `writeback.mode = "apply"`, each connector's write-back; it waits for
//!   a connector's sync in progress rather than skipping;
//! - the watchdog: `WATCHDOG=1` at half of `WatchdogSec=`, sent from a job
//!   of the scheduler itself, so that a scheduler that stops running jobs
//!   stops the pings and systemd restarts the service.
//!
//! The audit runs on a thread of its own with its own two connections to
//! the state file (one reads, one writes chunk by chunk), so that the
//! store's thread stays free for `/healthz` and syncs while it runs.
//!
//! SIGTERM and SIGINT stop new work; a sync in progress stops at its next
//! page boundary with its cursor saved, a write-back before its next batch
//! (the batch in hand is confirmed and recorded), an audit after the chunk
//! in hand (the run is recorded `interrupted`, nothing resolved), and the
//! service exits once they have, or after [`STOP_GRACE`].
//! SIGHUP loads the config again: a config with problems is refused, each
//! problem logged, and the running one kept; a good one replaces it, its
//! connectors, its schedule, the connectors `/healthz` lists and the
//! journey the web console shows.

use super::health::{self, HealthState};
use super::metrics::Metrics;
use super::notify;
use crate::audit;
use crate::config::{Config, ConnectorConfig, WritebackMode, load};
use crate::connectors::{AnyConnector, BuildError};
use crate::secrets::{RefreshTokenFile, SecretResolver};
use crate::store::{RunStatus, StoreHandle};
use crate::sync::{NoProgress, Shutdown, SyncOptions};
use crate::telemetry::ErrorChain;
use crate::writeback::WritebackOptions;
use chrono::Utc;
use journeyd_connector::ConnectorName;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

/// How long a stop waits for runs in progress to reach a safe point: under
/// the 30 s systemd allows before it kills.
pub const STOP_GRACE: Duration = Duration::from_secs(25);

/// The share of a daily API allowance the nightly full sync leaves to
/// incremental syncs: it does not start once usage is within this of the
/// share at which the connector stops all work.
const AUDIT_RESERVE: f64 = 0.1;

/// How often the scheduler's own job marks it alive when systemd runs no
/// watchdog.
const TICK: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("could not set up the scheduler")]
    Scheduler(#[source] JobSchedulerError),
    #[error("could not listen for signals")]
    Signals(#[source] std::io::Error),
    #[error("could not listen for health checks on {address}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
}

/// What the service runs with: the config file (read again on SIGHUP), the
/// open store, and where secrets come from.
pub struct Service {
    pub config_path: PathBuf,
    pub config: Config,
    pub store: StoreHandle,
    /// The state file, beside which rotated refresh tokens are kept.
    pub state_path: PathBuf,
    pub secrets: SecretResolver,
}

/// What a reload replaces at once.
struct Live {
    config: Arc<Config>,
    /// In the order of `config.connectors`.
    connectors: Vec<Arc<AnyConnector>>,
    jobs: Vec<Uuid>,
}

impl Live {
    fn connector(&self, name: &ConnectorName) -> Option<(&ConnectorConfig, Arc<AnyConnector>)> {
        let index = self
            .config
            .connectors
            .iter()
            .position(|c| &c.name == name)?;
        Some((
            &self.config.connectors[index],
            self.connectors.get(index)?.clone(),
        ))
    }
}

struct Shared {
    store: StoreHandle,
    tokens: Arc<RefreshTokenFile>,
    secrets: SecretResolver,
    live: RwLock<Arc<Live>>,
    /// One lock per connector: held by whatever runs against it.
    locks: Mutex<BTreeMap<ConnectorName, Arc<tokio::sync::Mutex<()>>>>,
    stop: watch::Sender<bool>,
    shutdown: Shutdown,
    /// The jobs running now (`sync hubspot`, `audit`), and how each job
    /// last ended: the `STATUS=` line.
    doing: Mutex<BTreeSet<String>>,
    last: Mutex<BTreeMap<String, String>>,
    metrics: Metrics,
    /// When the scheduler's own job last ran (epoch seconds): what
    /// `/healthz` judges the scheduler alive by.
    tick: Arc<AtomicU64>,
    /// The state file, which the audit opens connections of its own to.
    state_path: PathBuf,
    /// Held by the audit in progress: one at a time, and a stop waits.
    audit: Arc<tokio::sync::Mutex<()>>,
    /// The connectors `/healthz` lists: the live config's.
    health_connectors: watch::Sender<Arc<[ConnectorName]>>,
    /// The web console, when the config serves one: a reload hands it the
    /// new config.
    console: std::sync::OnceLock<Arc<crate::console::Console>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn lock_of(&self, name: &ConnectorName) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks).entry(name.clone()).or_default().clone()
    }

    fn begin(&self, job: &str) {
        lock(&self.doing).insert(job.to_owned());
        self.report();
    }

    /// `job` ended with `result`, shown under `last` (a full sync's result
    /// is its connector's last sync result).
    fn end(&self, job: &str, last: String, result: String) {
        lock(&self.doing).remove(job);
        lock(&self.last).insert(last, result);
        self.report();
    }

    /// The `STATUS=` line: what runs now, then each job's last result.
    fn report(&self) {
        let doing: Vec<String> = lock(&self.doing).iter().cloned().collect();
        let last: Vec<String> = lock(&self.last)
            .iter()
            .map(|(job, result)| format!("{job}: {result}"))
            .collect();
        let now = if doing.is_empty() {
            "idle".to_owned()
        } else {
            format!("running {}", doing.join(", "))
        };
        notify::status(&if last.is_empty() {
            now
        } else {
            format!("{now}; last {}", last.join(", "))
        });
    }
}

/// Builds every connector of `config` (reading its secrets): all or none,
/// so that a reload never runs half a config.
/// Builds every connector `config` names; their waits (backoff, rate
/// limit, `Retry-After`) end when `shutdown` is set.
fn build(
    config: &Config,
    secrets: &SecretResolver,
    tokens: &Arc<RefreshTokenFile>,
    shutdown: &Shutdown,
) -> Result<Vec<Arc<AnyConnector>>, BuildError> {
    config
        .connectors
        .iter()
        .map(|connector| {
            let mut built = AnyConnector::build(connector, secrets, tokens)?;
            built.stop_waits_on(shutdown);
            Ok(Arc::new(built))
        })
        .collect()
}

/// Runs the service until SIGTERM or SIGINT, then stops cleanly.
pub async fn run(service: Service) -> Result<(), ServiceError> {
    let Service {
        config_path,
        config,
        store,
        state_path,
        secrets,
    } = service;
    let tokens = Arc::new(RefreshTokenFile::beside(&state_path));
    let (stop, shutdown) = watch::channel(false);
    let connectors = build(&config, &secrets, &tokens, &shutdown)?;
    let (health_connectors, _) = watch::channel(connector_names(&config));
    let shared = Arc::new(Shared {
        store,
        tokens,
        secrets,
        live: RwLock::new(Arc::new(Live {
            config: Arc::new(config),
            connectors,
            jobs: Vec::new(),
        })),
        locks: Mutex::default(),
        stop,
        shutdown,
        doing: Mutex::default(),
        last: Mutex::default(),
        metrics: Metrics::new(),
        tick: Arc::new(AtomicU64::new(0)),
        state_path,
        audit: Arc::default(),
        health_connectors,
        console: std::sync::OnceLock::new(),
    });
    if let Err(error) = shared.metrics.refresh_open_violations(&shared.store).await {
        tracing::warn!(error = %ErrorChain(&error), "could not read the open violations for the metrics");
    }
    {
        let live = shared.live();
        for (config, connector) in live.config.connectors.iter().zip(&live.connectors) {
            record_connector(&shared, config, connector);
        }
    }
    let mut signals = Signals::new().map_err(ServiceError::Signals)?;
    let scheduler = JobScheduler::new().await.map_err(ServiceError::Scheduler)?;
    // The scheduler repeats jobs in whole seconds.
    let pulse = notify::watchdog_interval().map(|p| Duration::from_secs(p.as_secs().max(1)));
    let every = pulse.unwrap_or(TICK);
    scheduler
        .add(pulse_job(every, pulse.is_some(), shared.tick.clone())?)
        .await
        .map_err(ServiceError::Scheduler)?;
    health::record_tick(&shared.tick, Utc::now());
    let listener = listen(&shared, every).await?;
    let console = serve_console(&shared).await?;
    let jobs = schedule(&scheduler, &shared).await?;
    swap_jobs(&shared, jobs);
    scheduler.start().await.map_err(ServiceError::Scheduler)?;
    let live = shared.live();
    tracing::info!(
        connectors = live.config.connectors.len(),
        sync = live.config.schedule.sync.as_str(),
        audit = live.config.schedule.audit.as_str(),
        timezone = %live.config.schedule.timezone,
        watchdog_ms = pulse.map(|p| p.as_millis() as u64),
        "journeyd is running"
    );
    notify::ready("idle");

    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload => reload(&scheduler, &shared, &config_path).await,
        }
    }

    notify::stopping();
    tracing::info!("stopping: no new work; runs in progress stop at their next safe point");
    shared.stop.send_replace(true);
    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;
    let started = Instant::now();
    let mut locks: Vec<_> = lock(&shared.locks).values().cloned().collect();
    locks.push(shared.audit.clone());
    for connector_lock in locks {
        let left = STOP_GRACE.saturating_sub(started.elapsed());
        if tokio::time::timeout(left, connector_lock.lock())
            .await
            .is_err()
        {
            tracing::warn!(
                "a run did not reach a safe point in time; its next start resumes from the saved cursor or ledger"
            );
            break;
        }
    }
    for listener in [listener, console].into_iter().flatten() {
        let _ = listener.await;
    }
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "journeyd stopped"
    );
    Ok(())
}

/// Serves the web console, if the config's `[console] listen` asks for
/// it; a reload hands it the new journey, connectors and rules (its
/// `[console]` settings stay as they started). It stops with the service.
async fn serve_console(
    shared: &Arc<Shared>,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServiceError> {
    let config = shared.live().config.clone();
    let Some(address) = config.console.listen else {
        return Ok(None);
    };
    let listener = crate::console::bind(address, &config.console.auth).await?;
    let console = crate::console::Console::new(config, shared.state_path.clone())?;
    let _ = shared.console.set(console.clone());
    let mut stopped = shared.shutdown.clone();
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    Ok(Some(tokio::spawn(async move {
        if let Err(error) = crate::console::serve(listener, console, stop).await {
            tracing::error!(error = %ErrorChain(&error), "the console stopped");
        }
    })))
}

/// Starts the health and metrics listener, if the config asks for one; it
/// stops with the service.
async fn listen(
    shared: &Arc<Shared>,
    pulse: Duration,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServiceError> {
    let live = shared.live();
    let Some(address) = live.config.service.health_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServiceError::Listen { address, source })?;
    let names = shared.health_connectors.subscribe();
    // A scheduler that has missed three of its own pulses is not alive.
    let state = HealthState::new(
        shared.store.clone(),
        names,
        shared.tick.clone(),
        (pulse * 3).max(Duration::from_secs(30)),
        shared.metrics.clone(),
    );
    let mut stopped = shared.shutdown.clone();
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    Ok(Some(tokio::spawn(async move {
        if let Err(error) = health::serve(listener, state, stop).await {
            tracing::error!(error = %ErrorChain(&error), "the health listener stopped");
        }
    })))
}

/// A connector's API calls, rate limit and daily allowance, into the
/// metrics: after each of its runs, and once at the start.
fn record_connector(shared: &Shared, config: &ConnectorConfig, connector: &AnyConnector) {
    let (requests, period) = config.connection.rate_limit();
    shared.metrics.record_budget(
        &config.name,
        requests.get(),
        period,
        connector.daily_usage(),
    );
    shared.metrics.record_api(&config.name, &connector.stats());
}

/// The job that proves the scheduler alive: a watchdog ping, or (with no
/// watchdog) a trace line.
fn pulse_job(every: Duration, watchdog: bool, tick: Arc<AtomicU64>) -> Result<Job, ServiceError> {
    Job::new_repeated(every, move |_, _| {
        if watchdog {
            notify::watchdog();
        }
        health::record_tick(&tick, Utc::now());
        tracing::trace!("scheduler alive");
    })
    .map_err(ServiceError::Scheduler)
}

/// Adds the jobs of the live config; returns their ids.
async fn schedule(
    scheduler: &JobScheduler,
    shared: &Arc<Shared>,
) -> Result<Vec<Uuid>, ServiceError> {
    let live = shared.live();
    let schedule = &live.config.schedule;
    let mut jobs = Vec::new();
    for connector in &live.config.connectors {
        let (shared, name) = (shared.clone(), connector.name.clone());
        let job = Job::new_async_tz(
            schedule.sync.with_seconds(),
            schedule.timezone,
            move |_, _| {
                let (shared, name) = (shared.clone(), name.clone());
                Box::pin(async move { sync_job(&shared, &name).await })
            },
        )
        .map_err(ServiceError::Scheduler)?;
        jobs.push(scheduler.add(job).await.map_err(ServiceError::Scheduler)?);
    }
    let audit_shared = shared.clone();
    let job = Job::new_async_tz(
        schedule.audit.with_seconds(),
        schedule.timezone,
        move |_, _| {
            let shared = audit_shared.clone();
            Box::pin(async move { audit_job(&shared).await })
        },
    )
    .map_err(ServiceError::Scheduler)?;
    jobs.push(scheduler.add(job).await.map_err(ServiceError::Scheduler)?);
    Ok(jobs)
}

fn swap_jobs(shared: &Shared, jobs: Vec<Uuid>) {
    let mut live = shared.live.write().unwrap_or_else(PoisonError::into_inner);
    *live = Arc::new(Live {
        config: live.config.clone(),
        connectors: live.connectors.clone(),
        jobs,
    });
}

/// One incremental sync of `name`, unless its previous run still goes.
async fn sync_job(shared: &Shared, name: &ConnectorName) {
    if shared.stopping() {
        return;
    }
    let connector_lock = shared.lock_of(name);
    let Ok(_held) = connector_lock.try_lock() else {
        tracing::warn!(connector = %name, "sync slot skipped: the connector's previous run is still going");
        lock(&shared.last).insert(
            format!("sync {name}"),
            "skipped (previous run still going)".into(),
        );
        return;
    };
    sync_one(shared, name, false).await;
}

/// Syncs `name` (its lock held by the caller).
async fn sync_one(shared: &Shared, name: &ConnectorName, full: bool) {
    let live = shared.live();
    let Some((config, connector)) = live.connector(name) else {
        return;
    };
    let what = if full { "full sync" } else { "sync" };
    let job = format!("{what} {name}");
    shared.begin(&job);
    let options = SyncOptions {
        full,
        ..SyncOptions::default()
    };
    let result = connector
        .sync(
            &shared.store,
            config,
            &options,
            &NoProgress,
            &shared.shutdown,
        )
        .await;
    let outcome = match result {
        Ok(summary) => {
            shared.metrics.record_sync(&summary);
            tracing::info!(
                connector = %name,
                kind = what,
                status = %summary.status,
                records = summary.records_new + summary.records_changed + summary.records_unchanged,
                new = summary.records_new,
                changed = summary.records_changed,
                skipped = summary.skipped,
                deleted = summary.deleted,
                pages = summary.pages,
                ms = summary.ms,
                "run finished"
            );
            format!("{}", summary.status)
        }
        Err(error) => {
            tracing::error!(connector = %name, kind = what, error = %ErrorChain(&error), "run failed");
            "failed".into()
        }
    };
    shared.end(&job, format!("sync {name}"), outcome);
    record_connector(shared, config, &connector);
}

/// A full sync of each connector, the audit, then write-back if the config
/// says `apply`.
async fn audit_job(shared: &Shared) {
    let live = shared.live();
    for (connector, any) in live.config.connectors.iter().zip(&live.connectors) {
        if shared.stopping() {
            return;
        }
        if let Some(why) = yields(connector, any) {
            tracing::warn!(connector = %connector.name, reason = %why, "nightly full sync yields to incremental syncs");
            lock(&shared.last).insert(
                format!("full sync {}", connector.name),
                format!("yielded ({why})"),
            );
            continue;
        }
        let connector_lock = shared.lock_of(&connector.name);
        let _held = connector_lock.lock().await;
        sync_one(shared, &connector.name, true).await;
    }
    if shared.stopping() {
        return;
    }
    let Ok(_auditing) = shared.audit.clone().try_lock_owned() else {
        tracing::warn!("audit slot skipped: the previous audit is still going");
        return;
    };
    shared.begin("audit");
    let audited = run_audit(shared, live.config.clone()).await;
    let result = match audited {
        Ok(Ok(summary)) if summary.interrupted => {
            tracing::warn!(
                kind = "audit",
                records = summary.records,
                ms = summary.ms,
                "run interrupted"
            );
            RunStatus::Interrupted.to_string()
        }
        Ok(Ok(summary)) => {
            if let Err(error) = shared.metrics.record_audit(&summary, &shared.store).await {
                tracing::warn!(error = %ErrorChain(&error), "could not read the open violations for the metrics");
            }
            tracing::info!(
                kind = "audit",
                records = summary.records,
                violations = summary.violations,
                new = summary.chunks.new,
                resolved = summary.finish.resolved,
                ms = summary.ms,
                "run finished"
            );
            "ok".to_owned()
        }
        Ok(Err(error)) => {
            tracing::error!(kind = "audit", error = %ErrorChain(&error), "run failed");
            "failed".to_owned()
        }
        Err(error) => {
            tracing::error!(kind = "audit", error = %ErrorChain(&error), "run failed");
            "failed".to_owned()
        }
    };
    shared.end("audit", "audit".into(), result);
    if live.config.writeback.mode != WritebackMode::Apply {
        return;
    }
    for (config, connector) in live.config.connectors.iter().zip(&live.connectors) {
        if shared.stopping() {
            return;
        }
        let connector_lock = shared.lock_of(&config.name);
        let _held = connector_lock.lock().await;
        writeback_one(shared, &live.config, config, connector).await;
    }
}

/// Runs one audit on a thread of its own, on connections of its own,
/// stopping between two chunks once the service stops.
async fn run_audit(
    shared: &Shared,
    config: Arc<Config>,
) -> Result<Result<audit::AuditSummary, audit::AuditError>, std::io::Error> {
    let path = shared.state_path.clone();
    let shutdown = shared.shutdown.clone();
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("journeyd-audit".into())
        .spawn(move || {
            let stop = || *shutdown.borrow();
            let _ = reply.send(audit::run_at(
                &path,
                &config,
                audit::Depth::Changed,
                Utc::now(),
                &stop,
            ));
        })?;
    answer
        .await
        .map_err(|_| std::io::Error::other("the audit thread ended without an answer"))
}

/// The names of `config`'s connectors, in its order.
fn connector_names(config: &Config) -> Arc<[ConnectorName]> {
    config.connectors.iter().map(|c| c.name.clone()).collect()
}

/// Why the nightly full sync of `config` should not start: its CRM's daily
/// allowance is nearly at the share where the connector stops all work,
/// and what is left belongs to the day's incremental syncs.
fn yields(config: &ConnectorConfig, connector: &AnyConnector) -> Option<String> {
    let stop_share = match &config.connection {
        crate::config::Connection::Salesforce(salesforce) => salesforce.settings.daily_stop_share,
        _ => return None,
    };
    let (used, allowed) = connector.daily_usage()?;
    near_the_stop(used, allowed, stop_share).then(|| {
        format!("daily API allowance {used} of {allowed} used, near its stop share {stop_share}")
    })
}

fn near_the_stop(used: u64, allowed: u64, stop_share: f64) -> bool {
    // Compared in thousandths: 0.8 - 0.1 is not 0.7 in floating point.
    let threshold = ((stop_share - AUDIT_RESERVE) * 1000.0).round() as u64;
    allowed > 0 && used * 1000 >= allowed * threshold
}

async fn writeback_one(
    shared: &Shared,
    whole: &Config,
    config: &ConnectorConfig,
    connector: &AnyConnector,
) {
    let job = format!("write-back {}", config.name);
    shared.begin(&job);
    let options = WritebackOptions {
        connector: config,
        policy: &whole.writeback,
        journey: &whole.journey,
        today: whole.schedule.today(Utc::now()),
        batch: config.connection.batch_limit(),
        shutdown: Some(&shared.shutdown),
    };
    let written = connector.writeback(&shared.store, &options).await;
    record_connector(shared, config, connector);
    let outcome = match written {
        Ok(report) => {
            shared.metrics.record_writeback(&report);
            tracing::info!(
                connector = %config.name,
                kind = "write-back",
                status = %report.status,
                planned = report.counts.planned,
                applied = report.counts.applied,
                failed = report.counts.failed,
                ms = report.ms,
                "run finished"
            );
            format!("{}", report.status)
        }
        Err(error) => {
            tracing::error!(connector = %config.name, kind = "write-back", error = %ErrorChain(&error), "run failed");
            RunStatus::Failed.to_string()
        }
    };
    shared.end(&job, job.clone(), outcome);
}

/// Loads the config again; keeps the running one if the new one has a
/// problem, or its connectors cannot be built.
async fn reload(scheduler: &JobScheduler, shared: &Arc<Shared>, path: &std::path::Path) {
    notify::reloading();
    let outcome = match load(path) {
        Err(errors) => {
            for diagnostic in &errors.diagnostics {
                tracing::error!(problem = %diagnostic, "config reload refused");
            }
            Err(format!(
                "{} problem(s) in the new config",
                errors.diagnostics.len()
            ))
        }
        Ok(config) => match build(&config, &shared.secrets, &shared.tokens, &shared.shutdown) {
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "config reload refused");
                Err(crate::telemetry::chain(&error))
            }
            Ok(connectors) => {
                let old = shared.live();
                for job in &old.jobs {
                    let _ = scheduler.remove(job).await;
                }
                shared
                    .health_connectors
                    .send_replace(connector_names(&config));
                let config = Arc::new(config);
                if let Some(console) = shared.console.get() {
                    console.reload(config.clone());
                }
                *shared.live.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Live {
                    config,
                    connectors,
                    jobs: Vec::new(),
                });
                match schedule(scheduler, shared).await {
                    Ok(jobs) => {
                        swap_jobs(shared, jobs);
                        Ok(())
                    }
                    Err(error) => Err(crate::telemetry::chain(&error)),
                }
            }
        },
    };
    match outcome {
        Ok(()) => {
            tracing::info!("config reloaded");
            notify::reloaded("idle; config reloaded");
        }
        Err(why) => {
            tracing::error!(reason = %why, "config reload refused; the running config stays");
            notify::reloaded(&format!("idle; reload refused: {why}"));
        }
    }
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM and SIGINT (stop), SIGHUP (reload).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nightly_full_sync_yields_once_usage_nears_the_stop_share() {
        assert!(!near_the_stop(6_900, 10_000, 0.8));
        assert!(near_the_stop(7_000, 10_000, 0.8));
        assert!(near_the_stop(9_999, 10_000, 0.8));
        assert!(!near_the_stop(0, 0, 0.8), "nothing reported yet");
    }
}
