//! The emulator's routes, the state they share, and the guard in front of
//! every `/api/data/v9.2` route: the bearer token first (401), then the
//! concurrency limit and the sliding request and execution-time windows
//! (429), then the OData headers (400, when a knob asks), then the handler.
//!
//! A data request becomes an [`ApiRequest`] and [`dispatch`] answers it
//! with a [`Reply`]; a `$batch` sends each of its parts through the same
//! functions.

use super::auth::Tokens;
use super::batch;
use super::config::{Credentials, Knobs};
use super::limits::Window;
use super::reply::{ApiError, Reply, concurrency_exceeded, garbled};
use super::store::Store;
use super::table::Table;
use super::write::{self, Undo};
use super::{metadata, query};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

pub(crate) const API_ROOT: &str = "/api/data/v9.2/";
pub(crate) const TOKEN_ROUTE: &str = "/{tenant}/oauth2/v2.0/token";
/// `$filter`s kept for tests to read; older ones are dropped.
const FILTER_LOG: usize = 10_000;

pub(crate) struct Shared {
    pub store: RwLock<Store>,
    pub knobs: RwLock<Knobs>,
    pub tokens: Mutex<Tokens>,
    pub window: Mutex<Window>,
    pub in_flight: AtomicUsize,
    pub filters: Mutex<Vec<String>>,
    /// Write parts the next `$batch` refuses with a 429, unrun.
    pub fail_batch_parts: Mutex<usize>,
    /// Write parts the next `$batch` carries out, then answers with a 500.
    pub error_batch_parts: Mutex<usize>,
    /// The next write is carried out, then answered 200 with a body that
    /// cannot be read.
    pub malform_next_write: AtomicBool,
    /// `$batch`es running in a task of their own (`batch_part_delay`),
    /// whether or not their client is still there.
    pub batches_running: AtomicUsize,
    /// How long a `$batch` answer is held back after its writes were made.
    pub hold_batch: Mutex<std::time::Duration>,
    /// Authenticated data requests left before every token expires.
    pub expire_after: Mutex<Option<u64>>,
    pub credentials: Credentials,
    pub application_user: String,
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

    pub(crate) fn base(&self) -> String {
        self.base.get().cloned().unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>/api/data/v9.2/`.
    pub(crate) fn root(&self) -> String {
        format!("{}{API_ROOT}", self.base())
    }

    /// Whether this write is the one `malform_next_write` asked for.
    fn take_malformed_write(&self) -> bool {
        self.malform_next_write.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn log_filter(&self, filter: &str) {
        let mut log = lock(&self.filters);
        if log.len() == FILTER_LOG {
            log.remove(0);
        }
        log.push(filter.to_owned());
    }
}

/// One data request, from the wire or from a `$batch` part.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub method: Method,
    /// The path after the API root, still percent-encoded (`tasks(<guid>)`).
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    /// The decoded query options, in order.
    pub(crate) fn options(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    pub(crate) fn prefer(&self) -> Prefer {
        Prefer::from_headers(&self.headers)
    }
}

/// What the `Prefer` headers ask for (values comma-separated, possibly
/// over several headers; a quoted value may hold commas).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefer {
    pub max_page_size: Option<usize>,
    pub track_changes: bool,
    pub annotations: Option<String>,
    pub return_representation: bool,
    pub continue_on_error: bool,
}

impl Prefer {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for item in split_unquoted(text) {
                let item = item.trim();
                let (name, value) = match item.split_once('=') {
                    Some((n, v)) => (n.trim(), v.trim()),
                    None => (item, ""),
                };
                match name {
                    "odata.maxpagesize" => prefer.max_page_size = value.parse().ok(),
                    "odata.track-changes" => prefer.track_changes = true,
                    "odata.include-annotations" => {
                        prefer.annotations = Some(value.trim_matches('"').to_owned());
                    }
                    "return" => prefer.return_representation = value == "representation",
                    "odata.continue-on-error" => prefer.continue_on_error = true,
                    _ => {}
                }
            }
        }
        prefer
    }
}

/// Splits on commas outside double quotes.
fn split_unquoted(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut data = Router::new()
        .route("/api/data/v9.2/$batch", post(batch_route))
        .route("/api/data/v9.2/{record}", get(api).patch(api).delete(api))
        .route("/api/data/v9.2/{definition}/{attribute}/{cast}", get(api));
    for table in Table::ALL {
        data = data.route(
            &format!("{API_ROOT}{}", table.entity_set()),
            get(api).post(api),
        );
    }
    let data = data.route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route(TOKEN_ROUTE, post(token))
        .merge(data)
        .fallback(not_found)
        // The request size is `max_request_bytes`' to judge, not axum's.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(shared)
}

/// Releases a concurrency slot however the request ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let now_ms = shared.store().clock.now_ms();
    if let Err(reply) = lock(&shared.tokens).authenticate(authorization, now_ms, &shared.base()) {
        return reply.into_response();
    }
    {
        let mut left = lock(&shared.expire_after);
        if let Some(n) = left.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *left = None;
                lock(&shared.tokens).expire_all();
            }
        }
    }
    let knobs = shared.knobs();
    let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _slot = Slot(&shared.in_flight);
    if in_flight > knobs.concurrency {
        let mut error = concurrency_exceeded(knobs.concurrency);
        error.retry_after = Some(1);
        return error.into_response();
    }
    if let Err(error) = lock(&shared.window).admit(now_ms, &knobs) {
        return error.into_response();
    }
    if knobs.require_odata_headers {
        let has = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "4.0")
        };
        if !has("odata-maxversion") || !has("odata-version") {
            return ApiError::bad_request(
                "The request must carry the headers OData-MaxVersion: 4.0 and OData-Version: 4.0.",
            )
            .into_response();
        }
    }
    if !knobs.hold_requests.is_zero() {
        tokio::time::sleep(knobs.hold_requests).await;
    }
    next.run(request).await
}

/// The path after the API root, or `None` outside it.
fn api_path(uri: &Uri) -> Option<String> {
    uri.path().strip_prefix(API_ROOT).map(str::to_owned)
}

async fn api(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = api_path(&uri) else {
        return ApiError::no_resource(uri.path()).into_response();
    };
    let write = method != Method::GET;
    let request = ApiRequest {
        method,
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
    };
    let reply = dispatch(&shared, &request);
    if write && shared.take_malformed_write() {
        return garbled(reply).into_response();
    }
    reply.into_response()
}

/// Counts a detached `$batch` as running until it is dropped, however its
/// task ends.
struct Running(Arc<Shared>);

impl Running {
    fn start(shared: &Arc<Shared>) -> Self {
        shared.batches_running.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(shared))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.batches_running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn batch_route(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let knobs = shared.knobs();
    if body.len() > knobs.max_request_bytes {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "0x8004431a",
            "The request is too large.",
        )
        .into_response();
    }
    let pace = knobs.batch_part_delay;
    let ran = if pace.is_zero() {
        batch::run(&shared, &headers, &body, pace).await
    } else {
        // axum drops this handler's future when the client disconnects;
        // the batch runs in a task of its own, so that it goes on to the
        // end all the same, as Dataverse's does (facts 13).
        let running = Running::start(&shared);
        let task = tokio::spawn(async move {
            let batch = batch::run(&running.0, &headers, &body, pace).await;
            drop(running);
            batch
        });
        match task.await {
            Ok(ran) => ran,
            Err(_) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "0x80040216",
                    "An unexpected error occurred.",
                )
                .into_response();
            }
        }
    };
    let mut reply = ran.reply;
    if ran.wrote && shared.take_malformed_write() {
        reply = garbled(reply);
    }
    // The writes are made; only the answer waits, as when a connection
    // drops after the server acted.
    let hold = *lock(&shared.hold_batch);
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    reply.into_response()
}

/// Answers one data request (not a `$batch`): reads under the store's read
/// lock, writes under its write lock.
pub(crate) fn dispatch(shared: &Shared, request: &ApiRequest) -> Reply {
    let outcome = if request.method == Method::GET {
        if request.path.starts_with("EntityDefinitions(") {
            metadata::choice(shared, request)
        } else if let Some(table) = Table::by_entity_set(&request.path) {
            query::collection(shared, table, request)
        } else {
            query::single(shared, request)
        }
    } else {
        dispatch_write(shared, &mut shared.store_mut(), request, &mut Vec::new())
    };
    outcome.unwrap_or_else(|error| error.reply())
}

/// Answers a write on a store the caller holds (a change set holds it
/// across its parts), noting how to undo it.
pub(crate) fn dispatch_write(
    shared: &Shared,
    store: &mut Store,
    request: &ApiRequest,
    undo: &mut Vec<Undo>,
) -> Result<Reply, ApiError> {
    if let Some(table) = Table::by_entity_set(&request.path) {
        return match request.method {
            Method::POST => write::create(shared, store, table, request, undo),
            _ => Err(method_not_allowed()),
        };
    }
    if request.path.starts_with("EntityDefinitions(") || !request.path.contains('(') {
        return Err(match request.method {
            Method::PATCH | Method::DELETE | Method::POST => method_not_allowed(),
            _ => ApiError::no_resource(&request.path),
        });
    }
    match request.method {
        Method::PATCH => write::upsert(shared, store, request, undo),
        Method::DELETE => write::delete(shared, store, request, undo),
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "0x80060888",
        "The HTTP method is not allowed on this resource.",
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`: form-encoded.
async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let knobs = shared.knobs();
    let now_ms = shared.store().clock.now_ms();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    lock(&shared.tokens).grant(
        &tenant,
        &form,
        basic,
        &format!("{}/.default", shared.base()),
        &knobs,
        now_ms,
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::no_resource(uri.path())
}
