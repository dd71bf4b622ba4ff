//! Client-side rate limits: one `governor` limiter per bucket.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

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

/// The limiters of one client: a `governor` limiter per bucket, and per
/// bucket a "not before" instant that one call's lesson ("wait 10 s") sets
/// for every call drawing from that bucket.
pub(super) struct Limiters {
    general: Lane,
    search: Option<Lane>,
}

struct Lane {
    limiter: DefaultDirectRateLimiter,
    not_before: Mutex<Option<Instant>>,
}

impl Limiters {
    /// Fails with what is wrong when a quota cannot be built (a zero period).
    pub(super) fn new(limits: &RateLimits) -> Result<Self, String> {
        Ok(Self {
            general: Lane::new("general", limits.general)?,
            search: limits
                .search
                .map(|quota| Lane::new("search", quota))
                .transpose()?,
        })
    }

    fn lane(&self, bucket: Bucket) -> &Lane {
        match bucket {
            Bucket::General => &self.general,
            Bucket::Search => self.search.as_ref().unwrap_or(&self.general),
        }
    }

    /// Waits until a call of `bucket` may go: past the bucket's hold, then
    /// through its limiter. A hold further off than `longest` is not waited
    /// for: `Err` says how far off it is.
    pub(super) async fn ready(&self, bucket: Bucket, longest: Duration) -> Result<(), Duration> {
        let lane = self.lane(bucket);
        // A hold can be extended while we sleep on it, hence the loop.
        loop {
            let not_before = *lane.lock();
            match not_before {
                Some(at) if at > Instant::now() => {
                    let wait = at - Instant::now();
                    if wait > longest {
                        return Err(wait);
                    }
                    tokio::time::sleep_until(at).await;
                }
                _ => break,
            }
        }
        lane.limiter.until_ready().await;
        Ok(())
    }

    /// Holds every call of `bucket` for at least `wait` from now.
    pub(super) fn hold(&self, bucket: Bucket, wait: Duration) {
        let lane = self.lane(bucket);
        let until = Instant::now() + wait;
        let mut not_before = lane.lock();
        if not_before.is_none_or(|at| at < until) {
            *not_before = Some(until);
        }
    }
}

impl Lane {
    fn new(name: &str, (requests, per): (NonZeroU32, Duration)) -> Result<Self, String> {
        // CRMs count over a rolling window: a limiter allowing a burst `b`
        // refilled at rate `r` lets `b + r * per` calls into one window, so
        // the burst is a tenth of the limit and the refill the rest of it.
        // No window ever sees more than `requests` calls.
        let burst = (requests.get() / 10).max(1);
        let refill = (requests.get() - burst).max(1);
        let quota = Quota::with_period(per / refill)
            .ok_or_else(|| format!("the {name} rate limit has a zero period"))?
            .allow_burst(NonZeroU32::new(burst).expect("at least one"));
        Ok(Self {
            limiter: RateLimiter::direct(quota),
            not_before: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain instant: a panic elsewhere cannot
        // leave it half-written, so a poisoned lock is still good.
        self.not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: Duration = Duration::from_secs(300);

    fn limits(search: bool) -> Limiters {
        let quota = (NonZeroU32::new(1000).unwrap(), Duration::from_secs(1));
        Limiters::new(&RateLimits {
            general: quota,
            search: search.then_some(quota),
        })
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_makes_every_call_of_the_bucket_wait() {
        let limits = limits(false);
        limits.hold(Bucket::General, Duration::from_secs(10));
        let start = Instant::now();
        // Search draws from the general bucket when it has no quota of its own.
        limits.ready(Bucket::Search, LONGEST).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_hold_does_not_shorten_a_longer_one() {
        let limits = limits(true);
        limits.hold(Bucket::General, Duration::from_secs(10));
        limits.hold(Bucket::General, Duration::from_secs(1));
        let start = Instant::now();
        limits.ready(Bucket::Search, LONGEST).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "search has its own bucket"
        );
        limits.ready(Bucket::General, LONGEST).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_longer_than_the_longest_wait_is_not_waited_for() {
        let limits = limits(false);
        limits.hold(Bucket::General, Duration::from_secs(3600));
        let start = Instant::now();
        let refused = limits.ready(Bucket::General, LONGEST).await;
        assert!(refused.is_err_and(|wait| wait > LONGEST));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn a_zero_period_is_refused() {
        let refused = Limiters::new(&RateLimits {
            general: (NonZeroU32::new(5).unwrap(), Duration::ZERO),
            search: None,
        });
        assert!(refused.is_err_and(|reason| reason.contains("general")));
    }
}
