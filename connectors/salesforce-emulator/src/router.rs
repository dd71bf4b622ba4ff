//! The emulator's routes, the state they share, and the guard in front of
//! every `/services/data` route: the session first (401), then the API
//! version (404), then the daily allocation (403), then the handler; every
//! data reply carries `Sforce-Limit-Info` (facts 1.5).

use super::auth::{Exchange, Tokens};
use super::config::Knobs;
use super::query::Cursors;
use super::reply::ApiError;
use super::store::Store;
use super::{collections, query, sobjects};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Duration;

pub(crate) const TOKEN_PATH: &str = "/services/oauth2/token";
const LIMIT_INFO: HeaderName = HeaderName::from_static("sforce-limit-info");
/// What `Max` reads when the daily allocation is lifted.
pub(crate) const UNLIMITED_MAX: u64 = 2_147_483_647;
const QUERY_LOG: usize = 10_000;

/// Trouble queued for the next sObject Collections call.
#[derive(Debug, Default)]
pub(crate) struct CollectionFaults {
    pub fail_rows: usize,
    pub hold_create: Duration,
    /// The next call is carried out, then answered with a garbled body.
    pub malform_next: bool,
}

pub(crate) struct Shared {
    pub store: RwLock<Store>,
    pub knobs: RwLock<Knobs>,
    pub tokens: Mutex<Tokens>,
    /// Metered calls so far today.
    pub used: Mutex<u64>,
    pub collections: Mutex<CollectionFaults>,
    /// Detached collection writes still committing their rows.
    pub in_flight: AtomicUsize,
    pub cursors: Mutex<Cursors>,
    pub queries: Mutex<VecDeque<String>>,
    /// `http://127.0.0.1:<port>`, known once the server is bound.
    pub base: OnceLock<String>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn knobs(&self) -> Knobs {
        self.knobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.tokens)
    }

    pub(crate) fn base(&self) -> String {
        self.base.get().cloned().unwrap_or_default()
    }

    pub(crate) fn log_query(&self, soql: &str) {
        let mut log = lock(&self.queries);
        if log.len() == QUERY_LOG {
            log.pop_front();
        }
        log.push_back(soql.to_owned());
    }

    fn limit_info(&self, used: u64) -> HeaderValue {
        let max = self.knobs().daily_limit.unwrap_or(UNLIMITED_MAX);
        HeaderValue::from_str(&format!("api-usage={used}/{max}"))
            .unwrap_or_else(|_| HeaderValue::from_static("api-usage=0/0"))
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let data = Router::new()
        .route("/services/data/{version}/limits", get(sobjects::limits))
        .route("/services/data/{version}/query", get(query::query))
        .route("/services/data/{version}/queryAll", get(query::query_all))
        .route("/services/data/{version}/query/{locator}", get(query::more))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query::more_all),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}",
            post(sobjects::create),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/deleted",
            get(sobjects::deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/deleted/",
            get(sobjects::deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{id}",
            get(sobjects::read).patch(sobjects::update),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
            patch(sobjects::upsert),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::create).patch(collections::update),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}/{field}",
            patch(collections::upsert),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route(TOKEN_PATH, post(token))
        .merge(data)
        .fallback(not_found)
        .with_state(shared)
}

async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if let Err(err) = shared.tokens().authenticate(authorization) {
        return err.into_response();
    }
    let version = request
        .uri()
        .path()
        .split('/')
        .nth(3)
        .unwrap_or_default()
        .to_owned();
    let knobs = shared.knobs();
    if !knobs.api_versions.contains(&version) {
        return ApiError::not_found().into_response();
    }
    let admitted = {
        let mut used = lock(&shared.used);
        match knobs.daily_limit {
            Some(max) if *used >= max => Err(*used),
            _ => {
                *used += 1;
                Ok(*used)
            }
        }
    };
    let mut response = match admitted {
        Ok(_) => next.run(request).await,
        Err(_) => ApiError::limit_exceeded().into_response(),
    };
    let used = *lock(&shared.used);
    response
        .headers_mut()
        .insert(LIMIT_INFO, shared.limit_info(used));
    response
}

/// `POST /services/oauth2/token`: form-encoded.
async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let knobs = shared.knobs();
    let base = shared.base();
    let now_ms = shared.store_mut().clock.tick();
    let instance_url = knobs.instance_url.clone().unwrap_or_else(|| base.clone());
    let audience = knobs.jwt_audience.clone().unwrap_or_else(|| base.clone());
    shared.tokens().exchange(&Exchange {
        form: &form,
        login_url: &base,
        instance_url: &instance_url,
        audience: &audience,
        ttl: knobs.token_ttl,
        rotate: knobs.rotate_refresh_tokens,
        now_ms,
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Parses a JSON request body; a bad one is Salesforce's 400.
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request("JSON_PARSER_ERROR", format!("Unexpected character: {err}"))
    })
}
