//! The emulator's clock: it starts at the configured "now", runs on in real
//! time, can be moved forward by a test, and stamps writes with strictly
//! increasing times so that two writes never share a `modifiedon`.

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Clock {
    anchor_ms: i64,
    anchor: Instant,
    /// How far tests moved the clock forward.
    advanced_ms: i64,
    last_ms: i64,
}

impl Clock {
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        let anchor_ms = now.timestamp_millis();
        Self {
            anchor_ms,
            anchor: Instant::now(),
            advanced_ms: 0,
            last_ms: anchor_ms,
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX / 4);
        (self.anchor_ms + self.advanced_ms + elapsed).max(self.last_ms)
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.advanced_ms += i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
    }

    /// A write's timestamp: now, and later than any earlier write's.
    pub(crate) fn tick(&mut self) -> i64 {
        self.last_ms = self.now_ms().max(self.last_ms + 1);
        self.last_ms
    }

    /// A timestamp in a whole second later than any earlier write's, for
    /// the test controls: wire datetimes carry whole seconds, so a touched
    /// row's `modifiedon` then reads later than every row before it.
    pub(crate) fn tick_second(&mut self) -> i64 {
        let next_second = (self.last_ms.div_euclid(1000) + 1) * 1000;
        self.last_ms = self.now_ms().max(next_second);
        self.last_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_stamped_strictly_increasing_times() {
        let mut clock = Clock::new(DateTime::from_timestamp_millis(1_000_500).unwrap());
        let (a, b) = (clock.tick(), clock.tick());
        assert!(b > a);
        let c = clock.tick_second();
        assert!(c / 1000 > b / 1000);
        assert_eq!(c % 1000, 0);
    }

    #[test]
    fn advancing_moves_now_forward() {
        let mut clock = Clock::new(DateTime::from_timestamp_millis(0).unwrap());
        clock.advance(Duration::from_secs(60));
        assert!(clock.now_ms() >= 60_000);
    }
}
