//! Fault injection knobs, settable at runtime from the test or benchmark
//! that owns the emulator.
//!
//! Queued faults (`storm`, `fail_next`, `reset_next`, `malformed_next`) are
//! served first, in that order, one per request; then the random error rate
//! applies. The random draws come from a seeded generator, so the same
//! sequence of requests meets the same faults.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How a CRM emulator words the trouble the harness injects: the 429 and
/// 5xx bodies and headers its real API sends.
pub trait FaultReplies: Send + Sync + 'static {
    /// A rate-limit reply; `retry_after` is what a storm asked to advertise.
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response;
    /// A server error with this 5xx status.
    fn server_error(&self, status: StatusCode) -> Response;
}

/// CRM-neutral replies: a small JSON body, and `Retry-After` in whole seconds
/// when asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainReplies;

impl FaultReplies for PlainReplies {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({"error": "rate limited"})),
        )
            .into_response();
        if let Some(wait) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(wait));
        }
        response
    }

    fn server_error(&self, status: StatusCode) -> Response {
        (status, Json(serde_json::json!({"error": "server error"}))).into_response()
    }
}

/// A `Retry-After` header value in whole seconds, rounded up so that a
/// client honouring it never comes back early.
pub fn retry_after_value(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs)
}

/// How many faults of each kind were injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    pub rate_limited: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub malformed: u64,
}

impl InjectedFaults {
    pub fn total(&self) -> u64 {
        self.rate_limited + self.server_errors + self.resets + self.malformed
    }
}

/// The fault knobs. Clones share them.
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug)]
struct FaultState {
    rng: fastrand::Rng,
    error_rate: f64,
    storm: u64,
    storm_retry_after: Option<Duration>,
    fail_next: u64,
    reset_next: u64,
    malformed_next: u64,
    delay: Duration,
    exempt: BTreeSet<String>,
    injected: InjectedFaults,
}

/// What the harness does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    RateLimited(Option<Duration>),
    ServerError(StatusCode),
    /// Cut the connection mid-response.
    Reset,
    /// Run the handler, then garble its body.
    Malformed,
}

const SERVER_ERRORS: [StatusCode; 4] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

impl Default for Faults {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Faults {
    /// No faults, no delay; `seed` drives the random error rate.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(FaultState {
                rng: fastrand::Rng::with_seed(seed),
                error_rate: 0.0,
                storm: 0,
                storm_retry_after: None,
                fail_next: 0,
                reset_next: 0,
                malformed_next: 0,
                delay: Duration::ZERO,
                exempt: BTreeSet::new(),
                injected: InjectedFaults::default(),
            })),
        }
    }

    /// Restarts the random sequence from `seed`.
    pub fn reseed(&self, seed: u64) {
        self.lock().rng = fastrand::Rng::with_seed(seed);
    }

    /// The share of requests (0.0 to 1.0) answered with random trouble,
    /// split evenly between 429, a 5xx (500, 502, 503 or 504) and a cut
    /// connection. Out-of-range values are clamped; NaN turns it off.
    pub fn set_error_rate(&self, rate: f64) {
        self.lock().error_rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
    }

    /// The next `n` requests get a 429, advertising `retry_after` if given.
    pub fn storm(&self, n: u64, retry_after: Option<Duration>) {
        let mut state = self.lock();
        state.storm = n;
        state.storm_retry_after = retry_after;
    }

    /// The next `n` requests get a 5xx (500, 502, 503, 504 in turn).
    pub fn fail_next(&self, n: u64) {
        self.lock().fail_next = n;
    }

    /// The next `n` requests have their connection cut mid-response.
    pub fn reset_next(&self, n: u64) {
        self.lock().reset_next = n;
    }

    /// The next `n` requests are served by the real handler, then answered
    /// 200 with its body truncated and garbled.
    pub fn malformed_next(&self, n: u64) {
        self.lock().malformed_next = n;
    }

    /// Every response, faulty or not, is held this long after it is ready.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Requests to this path (a concrete path such as `/oauth/v3/token`, or
    /// a route template) are never faulted; they are still counted and delayed.
    pub fn exempt(&self, path: impl Into<String>) {
        self.lock().exempt.insert(path.into());
    }

    /// Faults every path again.
    pub fn clear_exempt(&self) {
        self.lock().exempt.clear();
    }

    /// Turns every fault and the delay off; exempt paths, the random
    /// sequence and the injected counts stay.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.error_rate = 0.0;
        state.storm = 0;
        state.storm_retry_after = None;
        state.fail_next = 0;
        state.reset_next = 0;
        state.malformed_next = 0;
        state.delay = Duration::ZERO;
    }

    pub fn injected(&self) -> InjectedFaults {
        self.lock().injected
    }

    /// Decides the fate of one request; `route` is its template, if a route
    /// matched. Returns the fault, if any, and the delay to add.
    pub(crate) fn decide(&self, route: Option<&str>, path: &str) -> (Option<Fault>, Duration) {
        let mut state = self.lock();
        let delay = state.delay;
        let exempt = state.exempt.contains(path) || route.is_some_and(|r| state.exempt.contains(r));
        if exempt {
            return (None, delay);
        }
        let fault = state.next_fault();
        match fault {
            Some(Fault::RateLimited(_)) => state.injected.rate_limited += 1,
            Some(Fault::ServerError(_)) => state.injected.server_errors += 1,
            Some(Fault::Reset) => state.injected.resets += 1,
            Some(Fault::Malformed) => state.injected.malformed += 1,
            None => {}
        }
        (fault, delay)
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FaultState {
    fn next_fault(&mut self) -> Option<Fault> {
        if self.storm > 0 {
            self.storm -= 1;
            return Some(Fault::RateLimited(self.storm_retry_after));
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            let status = SERVER_ERRORS[(self.injected.server_errors % 4) as usize];
            return Some(Fault::ServerError(status));
        }
        if self.reset_next > 0 {
            self.reset_next -= 1;
            return Some(Fault::Reset);
        }
        if self.malformed_next > 0 {
            self.malformed_next -= 1;
            return Some(Fault::Malformed);
        }
        // No draw at all while the rate is off, so that turning it on later
        // starts the seeded sequence from its beginning.
        if self.error_rate <= 0.0 || self.rng.f64() >= self.error_rate {
            return None;
        }
        Some(match self.rng.u8(0..3) {
            0 => Fault::RateLimited(None),
            1 => Fault::ServerError(SERVER_ERRORS[self.rng.usize(0..SERVER_ERRORS.len())]),
            _ => Fault::Reset,
        })
    }
}
