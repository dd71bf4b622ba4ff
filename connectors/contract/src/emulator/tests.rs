//! Specifications of the harness, against a live loopback server.

use super::faults::Fault;
use super::*;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A tiny instrumented service: `GET /items/{id}` answers `{"id": ..}` and
/// counts how often the handler really ran.
struct Fixture {
    server: EmulatorServer,
    counts: RequestCounts,
    faults: Faults,
    handled: Arc<AtomicU64>,
    client: reqwest::Client,
}

impl Fixture {
    fn start() -> Self {
        let handled = Arc::new(AtomicU64::new(0));
        let router = Router::new()
            .route("/items/{id}", get(item).post(item))
            .route("/token", get(|| async { "token" }))
            .with_state(handled.clone());
        let counts = RequestCounts::new();
        let faults = Faults::new(7);
        let router = instrument(router, counts.clone(), faults.clone(), PlainReplies);
        Self {
            server: EmulatorServer::start(router).expect("the emulator starts"),
            counts,
            faults,
            handled,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.server.base_url().join(path).expect("a valid path")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the request is answered")
    }
}

async fn item(
    State(handled): State<Arc<AtomicU64>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> axum::Json<serde_json::Value> {
    handled.fetch_add(1, Ordering::SeqCst);
    axum::Json(serde_json::json!({ "id": id, "name": "an item with a long enough name" }))
}

#[tokio::test]
async fn requests_are_counted_by_method_and_route_template() {
    let fx = Fixture::start();
    fx.get("items/1").await;
    fx.get("items/2").await;
    fx.client.post(fx.url("items/3")).send().await.unwrap();
    let status = fx.get("nowhere").await.status();

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(fx.counts.get("GET /items/{id}"), 2);
    assert_eq!(fx.counts.get("POST /items/{id}"), 1);
    assert_eq!(fx.counts.get("GET <unmatched>"), 1);
    assert_eq!(fx.counts.total(), 4);
    assert_eq!(fx.counts.snapshot().len(), 3);
    fx.counts.reset();
    assert_eq!(fx.counts.total(), 0);
}

#[tokio::test]
async fn a_storm_answers_exactly_n_requests_with_429_then_lets_requests_through() {
    let fx = Fixture::start();
    fx.faults.storm(3, Some(Duration::from_millis(1500)));
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..5 {
        let response = fx.get("items/1").await;
        statuses.push(response.status().as_u16());
        retry_after.push(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
    }

    assert_eq!(statuses, [429, 429, 429, 200, 200]);
    assert_eq!(
        retry_after[0].as_deref(),
        Some("2"),
        "rounded up to whole seconds"
    );
    assert_eq!(retry_after[3], None);
    assert_eq!(fx.handled.load(Ordering::SeqCst), 2);
    assert_eq!(
        fx.counts.get("GET /items/{id}"),
        5,
        "faulted requests count too"
    );
    assert_eq!(fx.faults.injected().rate_limited, 3);
}

#[tokio::test]
async fn fail_next_answers_with_each_server_error_in_turn() {
    let fx = Fixture::start();
    fx.faults.fail_next(5);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(fx.get("items/1").await.status().as_u16());
    }
    assert_eq!(statuses, [500, 502, 503, 504, 500, 200]);
}

#[tokio::test]
async fn a_reset_is_an_error_the_client_sees_and_the_next_request_succeeds() {
    let fx = Fixture::start();
    fx.faults.reset_next(1);
    let outcome = match fx.client.get(fx.url("items/1")).send().await {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(err) => Err(err),
    };
    let err = outcome.expect_err("a cut connection is not a complete reply");
    assert!(
        err.is_body() || err.is_request() || err.is_decode(),
        "unexpected error kind: {err:?}"
    );
    assert_eq!(fx.handled.load(Ordering::SeqCst), 0);

    let body: serde_json::Value = fx.get("items/2").await.json().await.unwrap();
    assert_eq!(body["id"], "2");
}

#[tokio::test]
async fn a_malformed_reply_is_a_200_whose_body_is_not_json_after_the_handler_ran() {
    let fx = Fixture::start();
    fx.faults.malformed_next(1);
    let response = fx.get("items/1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.expect("the body arrives whole");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    assert!(body.starts_with(b"{\"id\":\"1\""));
    assert_eq!(fx.handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn exempt_paths_are_counted_but_never_faulted() {
    let fx = Fixture::start();
    fx.faults.exempt("/token");
    fx.faults.storm(2, None);
    assert_eq!(fx.get("token").await.status(), StatusCode::OK);
    assert_eq!(
        fx.get("items/1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(fx.get("token").await.status(), StatusCode::OK);
    assert_eq!(
        fx.get("items/1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(fx.counts.get("GET /token"), 2);
}

#[tokio::test]
async fn a_delay_holds_every_response() {
    let fx = Fixture::start();
    fx.faults.set_delay(Duration::from_millis(80));
    let started = Instant::now();
    assert_eq!(fx.get("items/1").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(80));

    fx.faults.clear();
    fx.faults.storm(1, None);
    fx.faults.clear();
    assert_eq!(fx.get("items/1").await.status(), StatusCode::OK);
}

#[test]
fn the_error_rate_is_deterministic_for_a_seed_and_split_between_three_kinds() {
    let draw = |seed| {
        let faults = Faults::new(seed);
        faults.set_error_rate(0.3);
        (0..3000)
            .map(|_| faults.decide(Some("/items/{id}"), "/items/1").0)
            .collect::<Vec<_>>()
    };
    let first = draw(42);
    assert_eq!(first, draw(42));
    assert_ne!(first, draw(43));

    let faulted = first.iter().flatten().count();
    assert!((800..1000).contains(&faulted), "{faulted} of 3000 at 30%");
    let limited = first
        .iter()
        .filter(|f| matches!(f, Some(Fault::RateLimited(_))))
        .count();
    let errors = first
        .iter()
        .filter(|f| matches!(f, Some(Fault::ServerError(_))))
        .count();
    let resets = first
        .iter()
        .filter(|f| matches!(f, Some(Fault::Reset)))
        .count();
    for kind in [limited, errors, resets] {
        assert!(
            (faulted / 4..faulted / 2).contains(&kind),
            "{limited}/{errors}/{resets}"
        );
    }
}

#[tokio::test]
async fn a_random_error_rate_reaches_the_client() {
    let fx = Fixture::start();
    fx.faults.set_error_rate(1.0);
    let mut failures = 0;
    for _ in 0..12 {
        let outcome = match fx.client.get(fx.url("items/1")).send().await {
            Ok(response) if response.status().is_success() => {
                response.bytes().await.map(|_| true).unwrap_or(false)
            }
            _ => false,
        };
        failures += usize::from(!outcome);
    }
    assert_eq!(failures, 12);
    assert_eq!(fx.faults.injected().total(), 12);
    assert_eq!(fx.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_stopped_server_refuses_connections() {
    let fx = Fixture::start();
    let addr = fx.server.addr();
    assert_eq!(fx.get("items/1").await.status(), StatusCode::OK);
    fx.server.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_dropped_server_stops_serving() {
    let fx = Fixture::start();
    let addr = fx.server.addr();
    drop(fx.server);
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    assert!(refused, "the listener closes after the server is dropped");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_server_on_the_callers_runtime_follows_its_paused_clock() {
    let counts = RequestCounts::new();
    let faults = Faults::new(1);
    faults.set_delay(Duration::from_secs(3600));
    let router = instrument(
        Router::new().route("/", get(|| async { "ok" })),
        counts.clone(),
        faults,
        PlainReplies,
    );
    let server = EmulatorServer::start_on(router, &tokio::runtime::Handle::current()).unwrap();
    let started = Instant::now();
    let body = reqwest::get(server.base_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "an hour passed on the paused clock only"
    );
    assert_eq!(counts.get("GET /"), 1);
    server.stop().await;
}
