//! How Dataverse's failures read: `{"error": {"code", "message"}}`, with
//! the service-protection limits (facts 2.5) answered 429 and a
//! `Retry-After` to wait, each limit named by its code.

use crate::wire::error_of;
use journeyd_connector::http::{Dialect, Failure, Verdict, retry_after};

/// The service-protection limits: (Web API hex code, SDK code, what is
/// limited).
const THROTTLES: [(&str, &str, &str); 3] = [
    (
        "0x80072322",
        "-2147015902",
        "requests per user in 300 seconds",
    ),
    (
        "0x80072321",
        "-2147015903",
        "execution time per user in 300 seconds",
    ),
    ("0x80072326", "-2147015898", "concurrent requests per user"),
];

/// The service-protection limit an error code names, if any.
pub(crate) fn throttle(code: &str) -> Option<&'static str> {
    THROTTLES
        .iter()
        .find(|(hex, sdk, _)| hex.eq_ignore_ascii_case(code) || *sdk == code)
        .map(|(_, _, what)| *what)
}

/// At most this many characters of Dataverse's own message are kept.
const MESSAGE_CHARS: usize = 300;

/// A failure in words: `code: message` (the code left out when empty), or
/// the status alone when the body is no Dataverse error.
pub(crate) fn describe(status: u16, body: &[u8]) -> String {
    match error_of(body) {
        Some((code, message)) => {
            let message: String = message.chars().take(MESSAGE_CHARS).collect();
            let limit = throttle(&code)
                .map(|what| format!(" (service protection: {what})"))
                .unwrap_or_default();
            if code.is_empty() {
                format!("{message}{limit}")
            } else {
                format!("{code}: {message}{limit}")
            }
        }
        None => format!("{status} without a dataverse error"),
    }
}

/// Whether a described failure carries one of `codes` (`0x80044352: …`).
pub(crate) fn has_code(message: &str, codes: &[String]) -> bool {
    let code = message.split_once(':').map_or("", |(code, _)| code.trim());
    !code.is_empty() && codes.iter().any(|known| known.eq_ignore_ascii_case(code))
}

pub(crate) struct DynamicsDialect;

impl Dialect for DynamicsDialect {
    fn classify(&self, failure: &Failure<'_>) -> Verdict {
        let status = failure.status.as_u16();
        let code = error_of(failure.body).map(|(code, _)| code);
        let limit = code.as_deref().and_then(throttle);
        match status {
            401 => Verdict::Reauthenticate,
            429 => {
                let wait = retry_after(failure.headers);
                tracing::warn!(
                    status,
                    limit = limit.unwrap_or("unnamed"),
                    wait_s = wait.map(|w| w.as_secs()),
                    "dataverse service protection limit reached"
                );
                Verdict::Retry(wait)
            }
            _ if limit.is_some() => Verdict::Retry(retry_after(failure.headers)),
            500 | 502 | 503 | 504 => Verdict::Retry(retry_after(failure.headers)),
            _ => Verdict::Fail {
                message: describe(status, failure.body),
                retryable: status >= 500,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, RETRY_AFTER};
    use std::time::Duration;

    fn classify(status: u16, headers: &HeaderMap, body: &str) -> Verdict {
        DynamicsDialect.classify(&Failure {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn a_429_waits_as_long_as_retry_after_says() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let body = r#"{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}"#;
        assert_eq!(
            classify(429, &headers, body),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn every_service_protection_code_is_named_in_either_form() {
        assert_eq!(
            throttle("0x80072322"),
            Some("requests per user in 300 seconds")
        );
        assert_eq!(
            throttle("-2147015903"),
            Some("execution time per user in 300 seconds")
        );
        assert_eq!(throttle("0x80072326"), Some("concurrent requests per user"));
        assert_eq!(
            throttle("-2147015898"),
            Some("concurrent requests per user")
        );
        assert_eq!(throttle("0x80040217"), None);
        let body = br#"{"error":{"code":"0x80072326","message":"Number of concurrent requests exceeded the limit of 52."}}"#;
        assert_eq!(
            describe(429, body),
            "0x80072326: Number of concurrent requests exceeded the limit of 52. (service protection: concurrent requests per user)"
        );
    }

    #[test]
    fn a_refused_token_asks_for_a_new_one() {
        let body = r#"{"error":{"code":"","message":"Bearer token expired"}}"#;
        assert_eq!(
            classify(401, &HeaderMap::new(), body),
            Verdict::Reauthenticate
        );
    }

    #[test]
    fn server_errors_are_retried() {
        assert_eq!(
            classify(503, &HeaderMap::new(), "unavailable"),
            Verdict::Retry(None)
        );
    }

    #[test]
    fn client_errors_fail_with_dataverses_code_and_message() {
        let missing =
            r#"{"error":{"code":"0x80040217","message":"task With Id = 1 Does Not Exist"}}"#;
        assert_eq!(
            classify(404, &HeaderMap::new(), missing),
            Verdict::Fail {
                message: "0x80040217: task With Id = 1 Does Not Exist".into(),
                retryable: false
            }
        );
        let stale = r#"{"error":{"code":"","message":"The version of the existing record doesn't match the RowVersion property provided."}}"#;
        assert!(matches!(
            classify(412, &HeaderMap::new(), stale),
            Verdict::Fail { message, retryable: false } if message.starts_with("The version")
        ));
        assert!(matches!(
            classify(400, &HeaderMap::new(), "<html>"),
            Verdict::Fail { message, .. } if message == "400 without a dataverse error"
        ));
    }

    #[test]
    fn an_expired_delta_is_recognised_by_its_code() {
        let codes = vec!["0x80044352".to_owned()];
        let body = br#"{"error":{"code":"0x80044352","message":"Version stamp associated with the client has expired. Please perform a full sync."}}"#;
        assert!(has_code(&describe(400, body), &codes));
        assert!(has_code("0X80044352: whatever", &codes));
        assert!(!has_code("0x80040217: missing", &codes));
        assert!(!has_code("no code here", &codes));
    }
}
