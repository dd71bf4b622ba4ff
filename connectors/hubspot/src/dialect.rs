//! How HubSpot's failures and rate-limit headers read, for the shared HTTP
//! client.
//!
//! HubSpot answers 429 in two shapes: the burst and daily limits name a
//! `policyName` (`TEN_SECONDLY_ROLLING`, `DAILY`, sometimes `SECONDLY`); the
//! search limit was recorded with only `category: RATE_LIMITS` and the text
//! "secondly limit", without `Retry-After`. The waits below follow the
//! official client: 10 s for the burst window, 1 s for search, unless the
//! server says otherwise.

use crate::wire::ErrorBody;
use journeyd_connector::http::{Dialect, Failure, Verdict, retry_after};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

const BURST_WINDOW: Duration = Duration::from_secs(10);
const SECONDLY_WAIT: Duration = Duration::from_secs(1);
/// Error messages are kept short: they end up in run rows and the ledger.
const MESSAGE_MAX: usize = 300;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HubspotDialect;

impl Dialect for HubspotDialect {
    fn classify(&self, failure: &Failure<'_>) -> Verdict {
        let body: ErrorBody = serde_json::from_slice(failure.body).unwrap_or_default();
        let retry_after = retry_after(failure.headers);
        match failure.status {
            StatusCode::TOO_MANY_REQUESTS => match body.policy_name.as_deref() {
                Some("DAILY") => Verdict::AllowanceExhausted,
                Some("TEN_SECONDLY_ROLLING") => Verdict::Retry(Some(
                    retry_after
                        .or_else(|| interval(failure.headers))
                        .unwrap_or(BURST_WINDOW),
                )),
                Some("SECONDLY") => Verdict::Retry(Some(retry_after.unwrap_or(SECONDLY_WAIT))),
                _ if is_secondly(&body) => {
                    Verdict::Retry(Some(retry_after.unwrap_or(SECONDLY_WAIT)))
                }
                _ => Verdict::Retry(retry_after.or_else(|| interval(failure.headers))),
            },
            StatusCode::UNAUTHORIZED => match body.category.as_deref() {
                Some("EXPIRED_AUTHENTICATION") => Verdict::Reauthenticate,
                _ => Verdict::Fail {
                    message: message(&body, failure.status),
                    retryable: false,
                },
            },
            StatusCode::REQUEST_TIMEOUT => Verdict::Retry(retry_after),
            status if status.is_server_error() => Verdict::Retry(retry_after),
            status => Verdict::Fail {
                message: message(&body, status),
                retryable: false,
            },
        }
    }

    /// The burst window is spent: hold the next call until it rolls over.
    /// Search answers usually carry no burst headers, so they never pace.
    fn pace(&self, headers: &HeaderMap) -> Option<Duration> {
        let remaining: u64 = header(headers, "x-hubspot-ratelimit-remaining")?
            .trim()
            .parse()
            .ok()?;
        (remaining == 0).then(|| interval(headers).unwrap_or(BURST_WINDOW))
    }
}

fn is_secondly(body: &ErrorBody) -> bool {
    body.category.as_deref() == Some("RATE_LIMITS")
        || body.error_type.as_deref() == Some("RATE_LIMIT")
        || body
            .message
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("secondly limit"))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// `X-HubSpot-RateLimit-Interval-Milliseconds`: the burst window's length.
fn interval(headers: &HeaderMap) -> Option<Duration> {
    let ms: u64 = header(headers, "x-hubspot-ratelimit-interval-milliseconds")?
        .trim()
        .parse()
        .ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// HubSpot's own message and category, or the status when the body says
/// nothing readable.
fn message(body: &ErrorBody, status: StatusCode) -> String {
    let text = match (&body.message, &body.category) {
        (Some(message), Some(category)) => format!("{message} ({category})"),
        (Some(message), None) => message.clone(),
        (None, Some(category)) => category.clone(),
        (None, None) => format!("http status {}", status.as_u16()),
    };
    match text.char_indices().nth(MESSAGE_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn check(status: u16, headers: &[(&str, &str)], body: &str) -> Verdict {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        HubspotDialect.classify(&Failure {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &map,
            body: body.as_bytes(),
        })
    }

    fn pace(headers: &[(&str, &str)]) -> Option<Duration> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        HubspotDialect.pace(&map)
    }

    const DAILY: &str = r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c0ffee00-0000-4000-8000-000000000001","policyName":"DAILY","requestId":"r1"}"#;
    const BURST: &str = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c0ffee00-0000-4000-8000-000000000002","policyName":"TEN_SECONDLY_ROLLING"}"#;
    const SEARCH: &str = r#"{"status":"error","message":"You have reached your secondly limit.","correlationId":"c0ffee00-0000-4000-8000-000000000003","category":"RATE_LIMITS"}"#;
    const EXPIRED: &str = r#"{"status":"error","message":"The OAuth token used to make this call expired 12 second(s) ago.","correlationId":"c0ffee00-0000-4000-8000-000000000004","category":"EXPIRED_AUTHENTICATION","context":{"expire time":["2026-11-23T10:00:00.000Z"]}}"#;
    const MISSING: &str = r#"{"status":"error","message":"Authentication credentials not found.","correlationId":"c0ffee00-0000-4000-8000-000000000005","category":"INVALID_AUTHENTICATION"}"#;
    const VALIDATION: &str = r#"{"status":"error","message":"Property values were not valid","correlationId":"c0ffee00-0000-4000-8000-000000000006","category":"VALIDATION_ERROR","errors":[{"message":"bad","code":"INVALID_OPTION"}]}"#;

    #[test]
    fn a_daily_429_means_the_allowance_is_exhausted() {
        assert_eq!(check(429, &[], DAILY), Verdict::AllowanceExhausted);
    }

    #[test]
    fn a_burst_429_waits_the_ten_second_window() {
        assert_eq!(
            check(429, &[], BURST),
            Verdict::Retry(Some(Duration::from_secs(10)))
        );
    }

    #[test]
    fn a_burst_429_prefers_retry_after_then_the_interval_header() {
        assert_eq!(
            check(429, &[("Retry-After", "3")], BURST),
            Verdict::Retry(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            check(
                429,
                &[("X-HubSpot-RateLimit-Interval-Milliseconds", "2500")],
                BURST
            ),
            Verdict::Retry(Some(Duration::from_millis(2500)))
        );
    }

    #[test]
    fn the_recorded_search_429_without_policy_or_retry_after_waits_one_second() {
        assert_eq!(
            check(429, &[], SEARCH),
            Verdict::Retry(Some(Duration::from_secs(1)))
        );
        assert_eq!(
            check(429, &[("Retry-After", "2")], SEARCH),
            Verdict::Retry(Some(Duration::from_secs(2)))
        );
    }

    #[test]
    fn a_429_with_an_unreadable_body_falls_back_to_the_policy_backoff() {
        assert_eq!(check(429, &[], "<html>"), Verdict::Retry(None));
    }

    #[test]
    fn an_expired_token_asks_for_reauthentication() {
        assert_eq!(check(401, &[], EXPIRED), Verdict::Reauthenticate);
    }

    #[test]
    fn other_401s_fail_without_retry_and_say_why() {
        assert_eq!(
            check(401, &[], MISSING),
            Verdict::Fail {
                message: "Authentication credentials not found. (INVALID_AUTHENTICATION)".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn server_errors_are_retried_with_the_policy_backoff() {
        assert_eq!(check(502, &[], "bad gateway"), Verdict::Retry(None));
        assert_eq!(
            check(503, &[("Retry-After", "4")], ""),
            Verdict::Retry(Some(Duration::from_secs(4)))
        );
    }

    #[test]
    fn a_validation_error_fails_with_hubspots_message_and_category() {
        assert_eq!(
            check(400, &[], VALIDATION),
            Verdict::Fail {
                message: "Property values were not valid (VALIDATION_ERROR)".into(),
                retryable: false
            }
        );
        assert_eq!(
            check(404, &[], ""),
            Verdict::Fail {
                message: "http status 404".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn a_spent_burst_window_paces_the_next_call_by_its_interval() {
        assert_eq!(
            pace(&[
                ("X-HubSpot-RateLimit-Remaining", "0"),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            pace(&[
                ("X-HubSpot-RateLimit-Remaining", "5"),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ]),
            None
        );
        assert_eq!(
            pace(&[
                ("X-HubSpot-RateLimit-Daily", "250000"),
                ("X-HubSpot-RateLimit-Daily-Remaining", "0")
            ]),
            None,
            "search answers carry only the daily headers"
        );
    }
}
