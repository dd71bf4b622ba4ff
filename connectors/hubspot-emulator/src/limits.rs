//! The request limits (facts 3.5): a rolling 10-second bucket for every
//! route but search, a per-second bucket for search, and a daily count for
//! all; and the `X-HubSpot-RateLimit-*` headers that report them.

use super::auth::Caller;
use super::config::RateLimitKnobs;
use super::reply::Policy;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const TEN_SECONDS: Duration = Duration::from_secs(10);
const ONE_SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    burst: VecDeque<Instant>,
    search: VecDeque<Instant>,
    daily_used: u64,
}

/// What the headers of an admitted call report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    burst: Option<(u32, u32)>,
    daily: Option<(u32, u64)>,
    search: bool,
    oauth: bool,
}

impl Limiter {
    /// Admits one call, or names the limit it hit. Refused calls use up
    /// nothing.
    pub(crate) fn admit(
        &mut self,
        knobs: &RateLimitKnobs,
        search: bool,
        caller: Caller,
    ) -> Result<Usage, Policy> {
        let now = Instant::now();
        prune(&mut self.burst, now, TEN_SECONDS);
        prune(&mut self.search, now, ONE_SECOND);
        if let Some(daily) = knobs.daily
            && self.daily_used >= u64::from(daily)
        {
            return Err(Policy::Daily);
        }
        let burst = if search {
            if let Some(max) = knobs.search_per_second {
                if self.search.len() >= max as usize {
                    return Err(Policy::SearchSecondly);
                }
                self.search.push_back(now);
            }
            None
        } else if let Some(max) = knobs.ten_secondly {
            if self.burst.len() >= max as usize {
                return Err(Policy::TenSecondly);
            }
            self.burst.push_back(now);
            Some((max, max - self.burst.len() as u32))
        } else {
            None
        };
        self.daily_used += 1;
        Ok(Usage {
            burst,
            daily: knobs
                .daily
                .map(|max| (max, u64::from(max).saturating_sub(self.daily_used))),
            search,
            oauth: caller == Caller::OAuth,
        })
    }

    /// Calls counted today.
    pub(crate) fn daily_used(&self) -> u64 {
        self.daily_used
    }

    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

fn prune(window: &mut VecDeque<Instant>, now: Instant, span: Duration) {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
}

impl Usage {
    /// Adds the rate-limit headers. Search replies carry only the daily
    /// ones; OAuth calls carry no daily ones.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        if !self.search
            && let Some((max, remaining)) = self.burst
        {
            put("x-hubspot-ratelimit-interval-milliseconds", "10000".into());
            put("x-hubspot-ratelimit-max", max.to_string());
            put("x-hubspot-ratelimit-remaining", remaining.to_string());
        }
        if !self.oauth
            && let Some((max, remaining)) = self.daily
        {
            put("x-hubspot-ratelimit-daily", max.to_string());
            put("x-hubspot-ratelimit-daily-remaining", remaining.to_string());
        }
    }
}
