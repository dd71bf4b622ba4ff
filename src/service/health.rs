//! The health listener: `/healthz` for whoever checks that the daemon is
//! alive (systemd, a load balancer, an admin with curl) and `/metrics` for
//! Prometheus. Anything else is a 404.
//!
//! `/healthz` answers 200 while the scheduler ticks, 503 once its last tick
//! is older than the allowed age (or it never ticked, or the store cannot be
//! read), with a JSON body either way: each configured connector's last
//! finished sync (status, when, how long ago), the last finished audit, and
//! the scheduler's last tick. Runs that failed do not make the answer 503:
//! the process is alive and will try again; the body says what failed.
//!
//! The store is read through [`StoreHandle::call`], never on the runtime's
//! threads. The listener is bound by the caller, which decides where (the
//! config's `[service] health_listen`) and owns the shutdown signal.

use super::metrics::{CONTENT_TYPE, Metrics};
use crate::store::{RunId, RunKind, RunRow, RunStatus, StoreError, StoreHandle};
use crate::telemetry::ErrorChain;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use journeyd_connector::ConnectorName;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the health listener reads. Cheap to clone.
#[derive(Clone)]
pub struct HealthState {
    store: StoreHandle,
    connectors: watch::Receiver<Arc<[ConnectorName]>>,
    tick: Arc<AtomicU64>,
    max_tick_age: Duration,
    metrics: Metrics,
    clock: fn() -> DateTime<Utc>,
}

impl HealthState {
    /// `connectors` are the configured ones, in the order `/healthz` lists
    /// them; the service sends the new set when it reloads its config. `tick` is the scheduler's last tick in seconds since the Unix
    /// epoch, which the scheduler stores on each tick (0: not yet);
    /// `/healthz` answers 503 once it is older than `max_tick_age`.
    pub fn new(
        store: StoreHandle,
        connectors: watch::Receiver<Arc<[ConnectorName]>>,
        tick: Arc<AtomicU64>,
        max_tick_age: Duration,
        metrics: Metrics,
    ) -> HealthState {
        HealthState {
            store,
            connectors,
            tick,
            max_tick_age,
            metrics,
            clock: Utc::now,
        }
    }
}

/// Stores `at` as the scheduler's last tick, as [`HealthState`] reads it.
pub fn record_tick(tick: &AtomicU64, at: DateTime<Utc>) {
    tick.store(
        u64::try_from(at.timestamp()).unwrap_or(0),
        Ordering::Relaxed,
    );
}

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown`
/// completes, then lets the requests in hand finish.
pub async fn serve(
    listener: TcpListener,
    state: HealthState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "health listener up");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// The `/healthz` body.
#[derive(Debug, Serialize)]
struct Health {
    /// `ok`, `stale` (the scheduler stopped ticking) or `unavailable` (the
    /// store could not be read).
    status: &'static str,
    scheduler: Scheduler,
    connectors: Vec<ConnectorHealth>,
    /// The last finished audit.
    audit: Option<LastRun>,
    /// Why the store could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Scheduler {
    last_tick: Option<DateTime<Utc>>,
    age_seconds: Option<i64>,
    max_age_seconds: u64,
}

#[derive(Debug, Serialize)]
struct ConnectorHealth {
    connector: ConnectorName,
    /// The last finished sync.
    last_sync: Option<LastRun>,
}

#[derive(Debug, Serialize)]
struct LastRun {
    run: RunId,
    status: RunStatus,
    finished_at: DateTime<Utc>,
    age_seconds: i64,
}

impl LastRun {
    fn of(row: RunRow, now: DateTime<Utc>) -> Option<LastRun> {
        let finished_at = row.finished_at?;
        Some(LastRun {
            run: row.id,
            status: row.status,
            finished_at,
            age_seconds: age(finished_at, now),
        })
    }
}

/// Seconds from `then` to `now`; never negative (a clock set back).
fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - then).num_seconds().max(0)
}

async fn healthz(State(state): State<HealthState>) -> Response {
    let now = (state.clock)();
    let tick = state.tick.load(Ordering::Relaxed);
    let last_tick = i64::try_from(tick)
        .ok()
        .filter(|&seconds| seconds > 0)
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0));
    let tick_age = last_tick.map(|at| age(at, now));
    let max_age = state.max_tick_age.as_secs();
    let alive = tick_age.is_some_and(|age| age.unsigned_abs() <= max_age);
    let scheduler = Scheduler {
        last_tick,
        age_seconds: tick_age,
        max_age_seconds: max_age,
    };
    let connectors = Arc::clone(&state.connectors.borrow());
    let runs = state
        .store
        .call(move |store| {
            let syncs = connectors
                .iter()
                .map(|c| Ok((c.clone(), store.last_finished_run(RunKind::Sync, Some(c))?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let audit = store.last_finished_run(RunKind::Audit, None)?;
            Ok::<_, StoreError>((syncs, audit))
        })
        .await;
    let (status, health) = match runs {
        Ok((syncs, audit)) => {
            let connectors = syncs
                .into_iter()
                .map(|(connector, last)| ConnectorHealth {
                    connector,
                    last_sync: last.and_then(|row| LastRun::of(row, now)),
                })
                .collect();
            let health = Health {
                status: if alive { "ok" } else { "stale" },
                scheduler,
                connectors,
                audit: audit.and_then(|row| LastRun::of(row, now)),
                error: None,
            };
            (health_status(alive), health)
        }
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "health check could not read the store");
            let health = Health {
                status: "unavailable",
                scheduler,
                connectors: Vec::new(),
                audit: None,
                error: Some(error.to_string()),
            };
            (StatusCode::SERVICE_UNAVAILABLE, health)
        }
    };
    (status, Json(health)).into_response()
}

fn health_status(alive: bool) -> StatusCode {
    if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn metrics(State(state): State<HealthState>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit::{day, hubspot};
    use crate::sync::SyncSummary;
    use serde_json::Value;
    use std::net::SocketAddr;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// The health listener's "now" in these specifications.
    fn noon() -> DateTime<Utc> {
        day(2, 12)
    }

    fn salesforce() -> ConnectorName {
        ConnectorName::new("salesforce")
    }

    /// A store where hubspot synced twice (the second one failed, an hour
    /// before noon) and started a third, salesforce never synced, and an
    /// audit finished at 02:00.
    async fn store(dir: &tempfile::TempDir) -> StoreHandle {
        let handle = StoreHandle::open(&dir.path().join("journeyd.sqlite")).unwrap();
        handle
            .call(|store| {
                let counts = serde_json::json!({});
                let first = store.begin_run(RunKind::Sync, Some(&hubspot()), day(1, 0))?;
                store.finish_run(first, RunStatus::Ok, &counts, None, day(1, 1))?;
                let second = store.begin_run(RunKind::Sync, Some(&hubspot()), day(2, 10))?;
                store.fail_run(second, "refused", day(2, 11))?;
                store.begin_run(RunKind::Sync, Some(&hubspot()), day(2, 11))?;
                let audit = store.begin_run(RunKind::Audit, None, day(2, 1))?;
                store.finish_run(audit, RunStatus::Ok, &counts, None, day(2, 2))
            })
            .await
            .unwrap();
        handle
    }

    fn state(store: StoreHandle, ticked_ago: Option<i64>, metrics: Metrics) -> HealthState {
        let tick = Arc::new(AtomicU64::new(0));
        if let Some(seconds) = ticked_ago {
            record_tick(&tick, noon() - chrono::Duration::seconds(seconds));
        }
        HealthState {
            clock: noon,
            ..HealthState::new(
                store,
                watch::channel(Arc::from([hubspot(), salesforce()])).1,
                tick,
                Duration::from_secs(120),
                metrics,
            )
        }
    }

    struct Running {
        address: SocketAddr,
        stop: oneshot::Sender<()>,
        server: JoinHandle<io::Result<()>>,
    }

    async fn start(state: HealthState) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop,
            server,
        }
    }

    impl Running {
        async fn get(&self, path: &str) -> reqwest::Response {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap()
                .get(format!("http://{}{path}", self.address))
                .send()
                .await
                .unwrap()
        }

        async fn stop(self) {
            self.stop.send(()).unwrap();
            let ended = tokio::time::timeout(Duration::from_secs(5), self.server)
                .await
                .expect("the listener stops once told to");
            ended.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn healthz_shows_each_connectors_last_finished_sync_and_the_last_audit_with_their_ages() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(state(store(&dir).await, Some(10), Metrics::new())).await;
        let response = running.get("/healthz").await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "status": "ok",
                "scheduler": {
                    "last_tick": "2024-05-02T11:59:50Z",
                    "age_seconds": 10,
                    "max_age_seconds": 120,
                },
                "connectors": [
                    {
                        "connector": "hubspot",
                        "last_sync": {
                            "run": 2,
                            "status": "failed",
                            "finished_at": "2024-05-02T11:00:00Z",
                            "age_seconds": 3600,
                        },
                    },
                    { "connector": "salesforce", "last_sync": null },
                ],
                "audit": {
                    "run": 4,
                    "status": "ok",
                    "finished_at": "2024-05-02T02:00:00Z",
                    "age_seconds": 36000,
                },
            })
        );
        running.stop().await;
    }

    #[tokio::test]
    async fn a_scheduler_tick_older_than_the_allowed_age_answers_503() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(state(store(&dir).await, Some(121), Metrics::new())).await;
        let response = running.get("/healthz").await;
        assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "stale");
        assert_eq!(body["scheduler"]["age_seconds"], 121);
        assert_eq!(body["connectors"][0]["last_sync"]["run"], 2, "{body}");
        running.stop().await;
    }

    #[tokio::test]
    async fn a_scheduler_that_never_ticked_answers_503() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(state(store(&dir).await, None, Metrics::new())).await;
        let response = running.get("/healthz").await;
        assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scheduler"]["last_tick"], Value::Null);
        running.stop().await;
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text_with_what_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let running = start(state(store(&dir).await, Some(0), metrics.clone())).await;
        metrics.record_sync(&SyncSummary {
            connector: hubspot(),
            run: 3,
            status: RunStatus::Ok,
            pages: 1,
            records_new: 7,
            records_changed: 0,
            records_unchanged: 0,
            skipped: 0,
            deleted: 0,
            owners: 0,
            ms: 20,
            stopped: false,
            error: None,
            failed: Vec::new(),
        });
        let response = running.get("/metrics").await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            CONTENT_TYPE
        );
        let text = response.text().await.unwrap();
        assert!(
            text.lines()
                .any(|line| line
                    == r#"journeyd_sync_records_total{connector="hubspot",kind="new"} 7"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        running.stop().await;
    }

    #[tokio::test]
    async fn healthz_lists_the_connectors_of_the_config_last_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (connectors, listed) = watch::channel(Arc::from([hubspot(), salesforce()]));
        let running = start(HealthState {
            connectors: listed,
            ..state(store(&dir).await, Some(0), Metrics::new())
        })
        .await;
        connectors.send_replace(Arc::from([salesforce()]));
        let body: Value = running.get("/healthz").await.json().await.unwrap();
        let names: Vec<&Value> = body["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["connector"])
            .collect();
        assert_eq!(names, ["salesforce"]);
        running.stop().await;
    }

    #[tokio::test]
    async fn any_other_path_is_a_404() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(state(store(&dir).await, Some(0), Metrics::new())).await;
        for path in ["/", "/health", "/metrics/x", "/healthz/"] {
            assert_eq!(
                running.get(path).await.status(),
                reqwest::StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        running.stop().await;
    }
}
