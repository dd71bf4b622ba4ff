//! When and how often a failed call is tried again.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: NonZeroU32,
    /// First backoff delay; doubled (with jitter) per attempt up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Retries allowed over the client's whole life (one run): a storm of
    /// failures ends the run instead of hammering the CRM.
    pub budget: u32,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// How long after its call began a write that must not happen twice
    /// ([`Resend::OnlyIfNotReceived`](super::Resend)) may still be sent:
    /// waits for the rate limit or a 429's `Retry-After` past it end the
    /// call instead, nothing more sent. A write whose answer was lost may
    /// so have reached the CRM at most this long after it was recorded as
    /// sent, and a lookup for it waits this much longer.
    pub send_window: Duration,
    /// The longest wait a `Retry-After` (or a pacing header) is obeyed
    /// for. Asked to wait longer, the call ends at once with
    /// [`ConnectorError::RateLimitedUntil`](crate::ConnectorError), and so
    /// does every later call of the bucket until then: the run stops
    /// instead of sleeping for hours.
    pub max_retry_after: Duration,
    /// The largest response body read, in bytes. A body is read as it
    /// streams in and dropped the moment it passes this, failing the call:
    /// one oversized answer never holds more than this in memory.
    pub max_body: usize,
}

impl RetryPolicy {
    /// The default of [`RetryPolicy::max_retry_after`]: five minutes, the
    /// longest any of the CRMs is known to ask for (Dataverse's service
    /// protection limits).
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
    /// The default of [`RetryPolicy::max_body`]: 64 MiB, ten times the
    /// largest page a CRM serves (5,000 Dataverse rows with annotations).
    pub const DEFAULT_MAX_BODY: usize = 64 << 20;
}

impl RetryPolicy {
    /// The waits between one call's attempts: exponential from `base_delay`,
    /// jittered, never above `max_delay`.
    pub(super) fn backoff(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let max = self.max_delay.max(self.base_delay);
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
            // Jitter is added on top of the capped delay; cap it again.
            .map(move |wait| wait.min(max))
    }
}

/// The retries left to a client over its whole life.
#[derive(Debug)]
pub(super) struct Budget(AtomicU32);

impl Budget {
    pub(super) fn new(retries: u32) -> Self {
        Self(AtomicU32::new(retries))
    }

    /// Takes one retry from the budget; `false` once it is spent.
    pub(super) fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: NonZeroU32::new(3).unwrap(),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            budget: 2,
            timeout: Duration::from_secs(1),
            send_window: Duration::from_secs(20),
            max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
            max_body: RetryPolicy::DEFAULT_MAX_BODY,
        }
    }

    #[test]
    fn backoff_doubles_from_the_base_delay_and_stays_under_the_maximum() {
        let waits: Vec<Duration> = policy().backoff().take(8).collect();
        for (n, wait) in waits.iter().enumerate() {
            let floor = Duration::from_millis(100 * (1 << n)).min(Duration::from_millis(1000));
            assert!(*wait >= floor, "wait {n} is {wait:?}");
            assert!(*wait <= Duration::from_millis(1000), "wait {n} is {wait:?}");
        }
        assert!(
            waits[0] < Duration::from_millis(200),
            "jitter is at most the delay itself"
        );
    }

    #[test]
    fn the_budget_runs_out() {
        let budget = Budget::new(policy().budget);
        assert!(budget.take());
        assert!(budget.take());
        assert!(!budget.take());
        assert!(!budget.take());
    }
}
