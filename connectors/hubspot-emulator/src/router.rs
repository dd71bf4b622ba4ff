//! The emulator's routes, the state they share, and the guard in front of
//! every API route: authentication first, then the request limits, then
//! the handler, then the rate-limit and correlation headers.

use super::auth::Tokens;
use super::config::Knobs;
use super::limits::Limiter;
use super::object::ObjectType;
use super::reply::{ApiError, CORRELATION_HEADER, correlation_id, rate_limited, unreadable};
use super::search::{LoggedSearch, SearchCache};
use super::store::Store;
use super::{associations, batch, metadata, objects, search};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::{HashMap, VecDeque};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Duration;
use url::Url;

pub(crate) const TOKEN_PATH: &str = "/oauth/v3/token";

/// Trouble queued for the next batch write.
#[derive(Debug, Default)]
pub(crate) struct BatchFaults {
    /// The next batch create or update fails its first this many inputs.
    pub fail_inputs: usize,
    /// Batch creates commit, then hold their reply this long.
    pub hold_create: Duration,
    /// The next write is carried out, then answered with an unreadable
    /// body.
    pub malform_next_write: bool,
}

pub(crate) struct Shared {
    pub store: RwLock<Store>,
    pub knobs: RwLock<Knobs>,
    pub tokens: Mutex<Tokens>,
    pub limiter: Mutex<Limiter>,
    pub batch: Mutex<BatchFaults>,
    pub search_cache: Mutex<SearchCache>,
    pub search_log: Mutex<VecDeque<LoggedSearch>>,
    /// Known once the server is bound; paging links are absolute.
    pub base_url: OnceLock<Url>,
    /// Batch creates running in a task of their own
    /// (`detached_batch_create`), whether or not their client still waits.
    pub creates_running: std::sync::atomic::AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

    pub(crate) fn limiter(&self) -> MutexGuard<'_, Limiter> {
        lock(&self.limiter)
    }

    pub(crate) fn batch(&self) -> MutexGuard<'_, BatchFaults> {
        lock(&self.batch)
    }

    pub(crate) fn search_cache(&self) -> MutexGuard<'_, SearchCache> {
        lock(&self.search_cache)
    }

    pub(crate) fn search_log(&self) -> MutexGuard<'_, VecDeque<LoggedSearch>> {
        lock(&self.search_log)
    }

    /// An absolute link to `path` on this server with `query`.
    pub(crate) fn link(&self, path: &str, query: &[(String, String)]) -> String {
        let base = self
            .base_url
            .get()
            .cloned()
            .unwrap_or_else(|| Url::parse("http://127.0.0.1/").expect("a valid literal URL"));
        let mut url = base.join(path.trim_start_matches('/')).unwrap_or(base);
        url.query_pairs_mut().extend_pairs(query);
        url.to_string()
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/crm/v3/owners", get(metadata::owners))
        .route("/crm/v3/owners/{owner_id}", get(metadata::owner))
        .route("/crm/v3/pipelines/{object_type}", get(metadata::pipelines))
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}",
            get(metadata::pipeline),
        )
        .route(
            "/crm/v3/properties/{object_type}",
            get(metadata::properties),
        )
        .route(
            "/crm/v3/properties/{object_type}/{property_name}",
            get(metadata::property),
        )
        .route(
            "/account-info/v3/api-usage/daily/private-apps",
            get(metadata::daily_usage),
        )
        .route(
            "/crm/v3/objects/{object_type}",
            get(objects::list).post(objects::create),
        )
        .route(
            "/crm/v3/objects/{object_type}/{object_id}",
            get(objects::read)
                .patch(objects::update)
                .delete(objects::archive),
        )
        .route("/crm/v3/objects/{object_type}/search", post(search::search))
        .route(
            "/crm/v3/objects/{object_type}/batch/read",
            post(batch::read),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/create",
            post(batch::create),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/update",
            post(batch::update),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/archive",
            post(batch::archive),
        )
        .route(
            "/crm/v4/associations/{from_object_type}/{to_object_type}/batch/read",
            post(associations::batch_read),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route(TOKEN_PATH, post(token))
        .merge(api)
        .fallback(not_found)
        .with_state(shared)
}

/// Whether a request to `route` changes the portal: every POST, PATCH and
/// DELETE but searches and batch reads.
fn is_write(method: &Method, route: &str) -> bool {
    (method == Method::POST || method == Method::PATCH || method == Method::DELETE)
        && !route.ends_with("/search")
        && !route.ends_with("/batch/read")
}

async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let search = route.ends_with("/search");
    let write = is_write(request.method(), &route);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let caller = match shared.tokens().authenticate(authorization) {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    let limits = shared.knobs().limits;
    let usage = match shared.limiter().admit(&limits, search, caller) {
        Ok(usage) => usage,
        Err(policy) => return rate_limited(policy, limits.retry_after),
    };
    let garble = write && std::mem::take(&mut shared.batch().malform_next_write);
    let mut response = next.run(request).await;
    if garble {
        response = unreadable(response).await;
    }
    usage.write(response.headers_mut());
    with_correlation(response)
}

fn with_correlation(mut response: Response) -> Response {
    if !response.headers().contains_key(CORRELATION_HEADER)
        && let Ok(value) = HeaderValue::from_str(&correlation_id())
    {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// `POST /oauth/v3/token`: form-encoded, every parameter in the body.
async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let knobs = shared.knobs();
    shared
        .tokens()
        .exchange(&form, knobs.access_token_ttl, knobs.rotate_refresh_tokens)
}

async fn not_found() -> ApiError {
    ApiError::not_found("Resource not found")
}

/// Query parameters, repeated or comma-separated.
#[derive(Debug, Default)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list parameter, `None` if it is absent.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        self.0.iter().any(|(k, _)| k == name).then_some(values)
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::validation(format!(
                "Invalid boolean for {name}: {v}"
            ))),
        }
    }

    pub(crate) fn number(&self, name: &str) -> Result<Option<usize>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| ApiError::validation(format!("Invalid integer for {name}: {v}")))
            })
            .transpose()
    }

    /// The other parameters, for a paging link.
    pub(crate) fn without(&self, name: &str) -> Vec<(String, String)> {
        self.0.iter().filter(|(k, _)| k != name).cloned().collect()
    }
}

pub(crate) fn object_type(segment: &str) -> Result<ObjectType, ApiError> {
    ObjectType::from_path(segment)
        .ok_or_else(|| ApiError::validation(format!("Unable to infer object type from: {segment}")))
}

/// Parses a JSON request body; a bad one is a 400 in HubSpot's shape.
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::validation(format!("Invalid input JSON: {err}")))
}
