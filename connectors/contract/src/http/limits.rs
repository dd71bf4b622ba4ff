//! Client-side rate limits: one `governor` limiter per bucket.

use std::num::NonZeroU32;
use std::time::Duration;

/// Which limiter a call draws from. CRMs meter some endpoints (HubSpot's
/// search) apart from the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    General,
    Search,
}

/// `requests` per `per` for each bucket; `search: None` draws search calls
/// from the general bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub general: (NonZeroU32, Duration),
    pub search: Option<(NonZeroU32, Duration)>,
}
