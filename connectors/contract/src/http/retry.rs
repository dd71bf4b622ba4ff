//! When and how often a failed call is tried again.

use std::num::NonZeroU32;
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
}
