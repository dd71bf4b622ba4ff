//! What differs between CRMs in reading a failed response.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// A response the client did not accept as success.
#[derive(Debug)]
pub struct Failure<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What the client should do about a [`Failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after at least this long (`None`: the policy's backoff).
    Retry(Option<Duration>),
    /// The access token is no longer accepted: refresh it once and retry.
    Reauthenticate,
    /// The daily (or otherwise long) allowance is used up: stop this run.
    AllowanceExhausted,
    /// Give up with the CRM's own message (which must hold no secret).
    Fail { message: String, retryable: bool },
}

/// A CRM's reading of its own failures and pacing headers.
pub trait Dialect: Send + Sync + 'static {
    /// What to do about a non-2xx response.
    fn classify(&self, failure: &Failure<'_>) -> Verdict;

    /// How long to hold the next call of the same bucket after a successful
    /// response, from the CRM's rate-limit headers (`None`: no need to wait).
    fn pace(&self, headers: &HeaderMap) -> Option<Duration> {
        let _ = headers;
        None
    }
}
