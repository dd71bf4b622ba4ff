//! HubSpot's error bodies (facts 3.2, 3.5) and the replies the harness
//! injects in HubSpot's words.
//!
//! Every error body is `{status:"error", message, correlationId, category,
//! ...}` and every response carries `X-HubSpot-Correlation-Id`.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use journeyd_connector::emulator::FaultReplies;
use serde_json::{Map, Value, json};
use std::time::Duration;

pub(crate) const CORRELATION_HEADER: HeaderName =
    HeaderName::from_static("x-hubspot-correlation-id");

/// A fresh uuid-shaped correlation id.
pub(crate) fn correlation_id() -> String {
    let n = fastrand::u128(..);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// An error reply: status, category, message and the optional parts.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub category: &'static str,
    pub message: String,
    pub sub_category: Option<&'static str>,
    pub context: Option<Value>,
    pub errors: Vec<Value>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        category: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            sub_category: None,
            context: None,
            errors: Vec::new(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }

    pub(crate) fn with_context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    pub(crate) fn with_errors(mut self, errors: Vec<Value>) -> Self {
        self.errors = errors;
        self
    }

    pub(crate) fn body(&self, correlation: &str) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), json!(self.message));
        body.insert("correlationId".into(), json!(correlation));
        body.insert("category".into(), json!(self.category));
        if let Some(sub) = self.sub_category {
            body.insert("subCategory".into(), json!(sub));
        }
        if let Some(context) = &self.context {
            body.insert("context".into(), context.clone());
        }
        if !self.errors.is_empty() {
            body.insert("errors".into(), Value::Array(self.errors.clone()));
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let correlation = correlation_id();
        json_reply(self.status, self.body(&correlation), &correlation)
    }
}

/// A JSON reply carrying its correlation id in the header too.
pub(crate) fn json_reply(status: StatusCode, body: Value, correlation: &str) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(correlation) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// The largest body an unreadable reply is made from.
const UNREADABLE_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// `response` with its status and headers kept and its JSON body cut in
/// half and ended in garbage: what a client sees when a reply breaks in a
/// proxy after the write was carried out.
pub(crate) async fn unreadable(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, UNREADABLE_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let mut garbled = bytes[..bytes.len() / 2].to_vec();
    garbled.extend_from_slice(b"\x00\xff<garbled");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(garbled))
}

/// Which limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    TenSecondly,
    Daily,
    /// The search limit: the recorded shape, with `category` and no
    /// `policyName`.
    SearchSecondly,
}

/// A 429 in one of HubSpot's two shapes (facts 3.5).
pub(crate) fn rate_limited(policy: Policy, retry_after: Option<Duration>) -> Response {
    let correlation = correlation_id();
    let body = match policy {
        Policy::SearchSecondly => json!({
            "status": "error",
            "message": "You have reached your secondly limit.",
            "correlationId": correlation,
            "category": "RATE_LIMITS",
        }),
        Policy::TenSecondly | Policy::Daily => {
            let (name, text) = if policy == Policy::Daily {
                ("DAILY", "You have reached your daily limit.")
            } else {
                (
                    "TEN_SECONDLY_ROLLING",
                    "You have reached your ten_secondly_rolling limit.",
                )
            };
            json!({
                "status": "error",
                "message": text,
                "errorType": "RATE_LIMIT",
                "correlationId": correlation,
                "policyName": name,
                "requestId": correlation_id(),
            })
        }
    };
    let mut response = json_reply(StatusCode::TOO_MANY_REQUESTS, body, &correlation);
    if let Some(wait) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            journeyd_connector::emulator::retry_after_value(wait),
        );
    }
    response
}

/// Injected trouble, worded as HubSpot's edge words it: burst-shaped 429s,
/// JSON 500/503 from the API, HTML 502/504 from the gateway in front of it (?).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HubspotReplies;

impl FaultReplies for HubspotReplies {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        rate_limited(Policy::TenSecondly, retry_after)
    }

    fn server_error(&self, status: StatusCode) -> Response {
        if status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT {
            let text = format!(
                "<html><head><title>{code}</title></head><body><center><h1>{code}</h1></center></body></html>",
                code = status
            );
            let mut response = (status, text).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            return response;
        }
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "The service is temporarily unavailable. Please try again later."
        } else {
            "internal error"
        };
        ApiError::new(status, "INTERNAL_ERROR", message).into_response()
    }
}
