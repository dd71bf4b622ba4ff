//! How Salesforce's failures read (an array of `{message, errorCode}`), and
//! the daily allowance it reports on every answer (`Sforce-Limit-Info:
//! api-usage=used/max`), which the connector checks before starting work.

use crate::wire::ApiError;
use journeyd_connector::http::{Dialect, Failure, Verdict, retry_after};
use reqwest::header::HeaderMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The last `api-usage` Salesforce reported, shared between the dialect
/// (which reads every answer) and the connector (which checks it).
#[derive(Debug, Default)]
pub(crate) struct Usage {
    used: AtomicU64,
    max: AtomicU64,
}

impl Usage {
    /// Used over allowed, once Salesforce has said.
    pub(crate) fn share(&self) -> Option<(u64, u64)> {
        let max = self.max.load(Ordering::Relaxed);
        (max > 0).then(|| (self.used.load(Ordering::Relaxed), max))
    }

    fn record(&self, headers: &HeaderMap) {
        if let Some((used, max)) = headers
            .get("sforce-limit-info")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_limit_info)
        {
            self.max.store(max, Ordering::Relaxed);
            self.used.store(used, Ordering::Relaxed);
        }
    }
}

/// `api-usage=25/5000` out of `api-usage=25/5000; per-app-api-usage=17/250(appName=x)`.
pub(crate) fn parse_limit_info(value: &str) -> Option<(u64, u64)> {
    value.split(';').find_map(|part| {
        let (name, counts) = part.trim().split_once('=')?;
        if name.trim() != "api-usage" {
            return None;
        }
        let (used, max) = counts.split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

pub(crate) struct SalesforceDialect {
    pub(crate) usage: Arc<Usage>,
}

/// The first error of a Salesforce error array: code and message.
fn first_error(body: &[u8]) -> Option<(String, String)> {
    let errors: Vec<ApiError> = serde_json::from_slice(body).ok()?;
    let first = errors.into_iter().next()?;
    Some((
        first.error_code.unwrap_or_default(),
        first.message.unwrap_or_default(),
    ))
}

/// At most this many characters of Salesforce's own message are kept.
const MESSAGE_CHARS: usize = 300;

impl Dialect for SalesforceDialect {
    fn classify(&self, failure: &Failure<'_>) -> Verdict {
        self.usage.record(failure.headers);
        let status = failure.status.as_u16();
        let (code, message) = first_error(failure.body).unwrap_or_default();
        match (status, code.as_str()) {
            (401, _) | (_, "INVALID_SESSION_ID") => Verdict::Reauthenticate,
            // The concurrent long-running-request cap passes; the daily one
            // does not, and comes with no Retry-After to wait for.
            (_, "REQUEST_LIMIT_EXCEEDED") if message.contains("Concurrent") => Verdict::Retry(None),
            (_, "REQUEST_LIMIT_EXCEEDED") => Verdict::AllowanceExhausted,
            (429, _) => Verdict::Retry(retry_after(failure.headers)),
            (500 | 502 | 503 | 504, _) => Verdict::Retry(retry_after(failure.headers)),
            _ => {
                let text = if code.is_empty() {
                    format!("{} without a salesforce error", failure.status)
                } else {
                    let message: String = message.chars().take(MESSAGE_CHARS).collect();
                    format!("{code}: {message}")
                };
                Verdict::Fail {
                    message: text,
                    retryable: status >= 500,
                }
            }
        }
    }

    fn pace(&self, headers: &HeaderMap) -> Option<Duration> {
        self.usage.record(headers);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn classify(status: u16, body: &str) -> Verdict {
        let dialect = SalesforceDialect {
            usage: Arc::default(),
        };
        dialect.classify(&Failure {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &HeaderMap::new(),
            body: body.as_bytes(),
        })
    }

    #[test]
    fn an_expired_session_asks_for_a_new_token() {
        let body = r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(classify(401, body), Verdict::Reauthenticate);
    }

    #[test]
    fn the_daily_limit_is_a_403_that_ends_the_run_without_retrying() {
        let body =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert_eq!(classify(403, body), Verdict::AllowanceExhausted);
    }

    #[test]
    fn the_concurrent_request_cap_is_waited_out() {
        let body = r#"[{"message":"ConcurrentRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert_eq!(classify(403, body), Verdict::Retry(None));
    }

    #[test]
    fn a_bad_query_fails_with_salesforces_code_and_message() {
        let body = r#"[{"message":"No such column 'Foo__c' on entity 'Opportunity'","errorCode":"INVALID_FIELD","fields":[]}]"#;
        assert_eq!(
            classify(400, body),
            Verdict::Fail {
                message: "INVALID_FIELD: No such column 'Foo__c' on entity 'Opportunity'".into(),
                retryable: false,
            }
        );
        let not_found =
            r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#;
        assert!(matches!(
            classify(404, not_found),
            Verdict::Fail {
                retryable: false,
                ..
            }
        ));
    }

    #[test]
    fn server_errors_are_retried() {
        assert_eq!(classify(503, "unavailable"), Verdict::Retry(None));
    }

    #[test]
    fn the_api_usage_is_read_from_sforce_limit_info() {
        assert_eq!(parse_limit_info("api-usage=25/5000"), Some((25, 5000)));
        assert_eq!(
            parse_limit_info("api-usage=8408/15000; per-app-api-usage=17/250(appName=sample)"),
            Some((8408, 15000))
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=x)"),
            None
        );
        assert_eq!(parse_limit_info("api-usage=lots"), None);
        let usage = Usage::default();
        assert_eq!(usage.share(), None);
        let mut headers = HeaderMap::new();
        headers.insert("Sforce-Limit-Info", "api-usage=12/15000".parse().unwrap());
        let dialect = SalesforceDialect {
            usage: Arc::new(usage),
        };
        assert_eq!(dialect.pace(&headers), None);
        assert_eq!(dialect.usage.share(), Some((12, 15000)));
    }
}
