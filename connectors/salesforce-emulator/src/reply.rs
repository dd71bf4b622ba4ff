//! Salesforce's reply shapes (facts 1.2): every REST error is a JSON array
//! of `{message, errorCode, fields?}`, and JSON goes out as
//! `application/json;charset=UTF-8` (facts 1.6). Also the replies the
//! harness injects, in Salesforce's words.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use journeyd_connector::emulator::{FaultReplies, retry_after_value};
use serde_json::{Value, json};
use std::time::Duration;

/// A JSON reply with Salesforce's content type.
pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Response {
    json_text_reply(status, body.to_string())
}

/// A reply of JSON already written out, with Salesforce's content type.
pub(crate) fn json_text_reply(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

/// An error reply: a status and one `{message, errorCode}` entry.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub(crate) fn session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    pub(crate) fn limit_exceeded() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_reply(
            self.status,
            &json!([{"message": self.message, "errorCode": self.code}]),
        )
    }
}

/// A per-row error of an sObject Collections reply.
pub(crate) fn row_error(code: &str, message: &str, fields: &[&str]) -> Value {
    json!({"statusCode": code, "message": message, "fields": fields})
}

/// Injected trouble. Salesforce has no 429 (facts 1.5, 6.1): a storm is
/// answered 503 `SERVER_UNAVAILABLE` with `Retry-After`, a knob-level
/// fault for exercising a client's waits, not a claim about Salesforce.
/// 502 and 504 come as HTML from the edge (?), 500 and 503 as JSON arrays.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SalesforceReplies;

impl FaultReplies for SalesforceReplies {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let mut response = unavailable();
        if let Some(wait) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(wait));
        }
        response
    }

    fn server_error(&self, status: StatusCode) -> Response {
        match status {
            StatusCode::SERVICE_UNAVAILABLE => unavailable(),
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
                let text = format!("<html><body><h1>{status}</h1></body></html>");
                let mut response = (status, text).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                response
            }
            _ => ApiError::new(
                status,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support",
            )
            .into_response(),
        }
    }
}

fn unavailable() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        "Server temporarily unavailable",
    )
    .into_response()
}
