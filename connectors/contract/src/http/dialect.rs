//! What differs between CRMs in reading a failed response.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime};

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

/// The wait a `Retry-After` header asks for: delta-seconds, or an HTTP-date
/// (a date already past asks for no wait). `None` when the header is absent
/// or unreadable. Reading it is the dialect's call, since not every CRM's
/// `Retry-After` means the same thing on every status.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn retry_after_reads_delta_seconds() {
        assert_eq!(
            parse_retry_after(" 120 ", at(0)),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn retry_after_reads_an_http_date_relative_to_now() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            parse_retry_after(date, at(784_111_777 - 30)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(date, at(784_111_777 + 5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_ignores_what_it_cannot_read() {
        assert_eq!(parse_retry_after("soon", at(0)), None);
        assert_eq!(parse_retry_after("-3", at(0)), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_is_read_from_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
