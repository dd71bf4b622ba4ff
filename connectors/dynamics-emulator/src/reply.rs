//! Dataverse's reply shapes (facts 2.2): JSON bodies with `OData-Version:
//! 4.0`, errors as `{"error":{"code":"0x8004…","message":"…"}}`. A reply is
//! plain data first, so a `$batch` can write it as an embedded HTTP
//! response and a route can send it as it is. Also the replies the harness
//! injects, in Dataverse's words.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use journeyd_connector::emulator::{FaultReplies, retry_after_value};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const JSON: &str = "application/json; odata.metadata=minimal";

/// One response, before it goes on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    /// Headers besides `Content-Type` and `OData-Version`.
    pub headers: Vec<(HeaderName, String)>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: Some(JSON.to_owned()),
            body,
        }
    }

    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: None,
            body: String::new(),
        }
    }

    pub(crate) fn with(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_TYPE);
        if let Some(content_type) = self.content_type
            && let Ok(value) = HeaderValue::from_str(&content_type)
        {
            headers.insert(header::CONTENT_TYPE, value);
        }
        headers.insert("odata-version", HeaderValue::from_static("4.0"));
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// `reply` turned into a 200 whose body breaks off halfway and ends in
/// garbage: what a client gets when a proxy or the connection mangles the
/// answer to a write the server made.
pub(crate) fn garbled(mut reply: Reply) -> Reply {
    let mut cut = reply.body.len() / 2;
    while !reply.body.is_char_boundary(cut) {
        cut -= 1;
    }
    reply.body.truncate(cut);
    reply.body.push_str("\u{0}\u{fffd}<garbled");
    reply.status = StatusCode::OK;
    if reply.content_type.is_none() {
        reply.content_type = Some(JSON.to_owned());
    }
    reply
}

/// An error: a status, a hex code (often empty) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// `Retry-After` in whole seconds (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400 with Dataverse's generic code (?).
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "0x80060888", message)
    }

    pub(crate) fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }

    pub(crate) fn reply(&self) -> Reply {
        let mut reply = Reply::json(self.status, self.body().to_string());
        if let Some(secs) = self.retry_after {
            reply = reply.with(header::RETRY_AFTER, secs.to_string());
        }
        reply
    }

    /// A row the URL names that does not exist (code (?), brief).
    pub(crate) fn missing(logical_name: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!("{logical_name} With Id = {id} Does Not Exist"),
        )
    }

    /// A route or resource the emulator does not serve.
    pub(crate) fn no_resource(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "0x8006088a",
            format!("Resource not found for the segment '{path}'."),
        )
    }

    /// A column a table does not have, in a `$select` (brief).
    pub(crate) fn no_property(logical_name: &str, name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            format!(
                "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{logical_name}'."
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.reply().into_response()
    }
}

/// Injected trouble, worded as Dataverse words it (facts 2.2, 2.5): a 429
/// is the requests-limit error with `Retry-After` (Dataverse always sends
/// one; a storm that names none gets 1 s (?)); 500 and 503 are JSON errors
/// (codes (?)); 502 and 504 come as HTML from the gateway (?).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DataverseReplies;

impl FaultReplies for DataverseReplies {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        let mut response = requests_exceeded(6000, 300).reply().into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after_value(wait));
        response
    }

    fn server_error(&self, status: StatusCode) -> Response {
        match status {
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
                let text = format!("<html><body><h1>{status}</h1></body></html>");
                let mut response = (status, text).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                response
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ApiError::new(status, "0x80040265", "Service is temporarily unavailable.")
                    .into_response()
            }
            _ => {
                ApiError::new(status, "0x80040216", "An unexpected error occurred.").into_response()
            }
        }
    }
}

/// The requests-limit error (facts 2.5).
pub(crate) fn requests_exceeded(limit: u64, window_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "0x80072322",
        format!(
            "Number of requests exceeded the limit of {limit} over time window of {window_secs} seconds."
        ),
    )
}

/// The execution-time-limit error (facts 2.5).
pub(crate) fn execution_exceeded(limit_ms: u64, window_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "0x80072321",
        format!(
            "Combined execution time of incoming requests exceeded limit of {limit_ms} milliseconds over time window of {window_secs} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later."
        ),
    )
}

/// The concurrency-limit error (facts 2.5).
pub(crate) fn concurrency_exceeded(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "0x80072326",
        format!("Number of concurrent requests exceeded the limit of {limit}."),
    )
}
