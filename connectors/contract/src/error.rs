//! Errors a connector reports, each saying whether trying again can help.

use crate::record::ObjectKind;
use chrono::{DateTime, Utc};
use std::time::Duration;
use thiserror::Error;

/// Whether, and when, an operation that failed may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying again will fail the same way (bad config, refused credentials).
    Never,
    /// A later run may succeed (daily allowance used up, CRM down).
    NextRun,
    /// May be retried after the given delay within this run.
    After(Duration),
}

#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("authentication with {connector} failed: {reason}")]
    Auth { connector: String, reason: String },
    #[error("{connector} rate limit reached on {route}")]
    RateLimited {
        connector: String,
        route: String,
        retry: Retry,
    },
    /// The CRM asked for a wait longer than the client obeys (a
    /// `Retry-After` past `limits.max_retry_after_seconds`): the run stops
    /// here rather than sleeping, and a run after `until` goes on.
    #[error("{connector} rate limited until {until} on {route}")]
    RateLimitedUntil {
        connector: String,
        route: String,
        until: DateTime<Utc>,
    },
    /// Shutdown cut a wait short (a backoff, the rate limit, a
    /// `Retry-After`): the call ended there and sent nothing more. For a
    /// write that must not happen twice, no attempt of it was received.
    #[error("{connector} call on {route} stopped by shutdown")]
    Stopped { connector: String, route: String },
    #[error("{connector} daily API allowance exhausted")]
    AllowanceExhausted { connector: String },
    #[error("{connector} answered {status} on {route}: {message}")]
    Api {
        connector: String,
        route: String,
        status: u16,
        message: String,
        retry: Retry,
    },
    #[error("{connector} sent a response that could not be read on {route}: {reason}")]
    Malformed {
        connector: String,
        route: String,
        reason: String,
    },
    #[error("{connector} could not be reached on {route}: {reason}")]
    Transport {
        connector: String,
        route: String,
        reason: String,
    },
    /// The changes since the stored delta link are no longer available (a
    /// Dataverse change-tracking token past its retention): only a full
    /// pull, reconciled against the store, can bring the object back in
    /// step.
    #[error("{connector} no longer has the {object} changes since the last sync: {reason}")]
    ChangesExpired {
        connector: String,
        object: ObjectKind,
        reason: String,
    },
    /// The CRM refused the cursor a pull was following (a Salesforce query
    /// locator gone idle or evicted, a next link or `after` it no longer
    /// honours): the pull restarts from its watermark. `object` names what
    /// was pulled (`deal`, or `owner`).
    #[error("{connector} refused the {object} cursor: {reason}")]
    CursorRefused {
        connector: String,
        object: String,
        reason: String,
    },
    #[error("{connector} does not support {object} records")]
    Unsupported {
        connector: String,
        object: ObjectKind,
    },
}

impl ConnectorError {
    /// What a connector whose CRM hands out no delta links answers when
    /// asked to pull from one (a store written by another connector kind
    /// under the same name): the caller then pulls from the start.
    pub fn not_own_delta(connector: &crate::ids::ConnectorName, object: ObjectKind) -> Self {
        ConnectorError::ChangesExpired {
            connector: connector.to_string(),
            object,
            reason: "this connector hands out no delta links".into(),
        }
    }

    /// The retry hint the sync loop and the write-back act on.
    pub fn retry(&self) -> Retry {
        match self {
            ConnectorError::Auth { .. } | ConnectorError::Unsupported { .. } => Retry::Never,
            ConnectorError::AllowanceExhausted { .. }
            | ConnectorError::Malformed { .. }
            | ConnectorError::ChangesExpired { .. }
            | ConnectorError::CursorRefused { .. }
            | ConnectorError::RateLimitedUntil { .. }
            | ConnectorError::Stopped { .. } => Retry::NextRun,
            ConnectorError::RateLimited { retry, .. } | ConnectorError::Api { retry, .. } => *retry,
            ConnectorError::Transport { .. } => Retry::After(Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_never_retried_and_an_exhausted_allowance_waits_for_the_next_run() {
        let auth = ConnectorError::Auth {
            connector: "hubspot".into(),
            reason: "invalid token".into(),
        };
        assert_eq!(auth.retry(), Retry::Never);
        let allowance = ConnectorError::AllowanceExhausted {
            connector: "salesforce".into(),
        };
        assert_eq!(allowance.retry(), Retry::NextRun);
    }
}
