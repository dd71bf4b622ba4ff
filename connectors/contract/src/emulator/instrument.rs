//! The middleware that puts the harness in front of a CRM emulator's
//! routes: count the request, then maybe answer with a fault, then (if not)
//! run the real handler.

use super::counts::RequestCounts;
use super::faults::{Fault, FaultReplies, Faults};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::io;
use std::sync::Arc;

/// The largest handler body a malformed reply garbles; larger bodies are
/// cut at this length anyway.
const MALFORMED_BODY_LIMIT: usize = 64 * 1024 * 1024;

struct Harness {
    counts: RequestCounts,
    faults: Faults,
    replies: Box<dyn FaultReplies>,
}

/// Wraps every route of `router` (and its fallback) so that each request is
/// counted in `counts`, then meets whatever `faults` has queued, then
/// reaches its handler. `replies` words the injected 429s and 5xx.
pub fn instrument(
    router: Router,
    counts: RequestCounts,
    faults: Faults,
    replies: impl FaultReplies,
) -> Router {
    let harness = Arc::new(Harness {
        counts,
        faults,
        replies: Box::new(replies),
    });
    router.layer(middleware::from_fn_with_state(harness, handle))
}

async fn handle(State(harness): State<Arc<Harness>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned());
    let key = format!(
        "{} {}",
        request.method(),
        route.as_deref().unwrap_or("<unmatched>")
    );
    harness.counts.record(&key);
    let (fault, delay) = harness
        .faults
        .decide(route.as_deref(), request.uri().path());
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::RateLimited(retry_after)) => harness.replies.rate_limited(retry_after),
        Some(Fault::ServerError(status)) => harness.replies.server_error(status),
        Some(Fault::Reset) => cut_connection(),
        Some(Fault::Malformed) => garble(next.run(request).await).await,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

/// A response whose body fails after its first bytes: the server aborts the
/// connection and the client sees an incomplete message, as after a reset.
fn cut_connection() -> Response {
    let chunks: [Result<Bytes, io::Error>; 2] = [
        Ok(Bytes::from_static(b"{\"results\":[{\"id\":")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected connection reset",
        )),
    ];
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The handler's own answer, turned into a 200 whose JSON body is cut in
/// half and ends in garbage.
async fn garble(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MALFORMED_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let mut garbled = bytes[..bytes.len() / 2].to_vec();
    if garbled.is_empty() {
        garbled.extend_from_slice(b"{\"results\":[{\"id\":");
    }
    garbled.extend_from_slice(b"\x00\xff<garbled");
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(garbled))
}
