//! The emulator's clock and HubSpot's date formats.
//!
//! Seeded data is placed relative to the configured "now"; writes stamp a
//! time that is strictly increasing, so two writes never share a
//! `hs_lastmodifieddate` by accident (seeded ties are deliberate).

use super::config::ClockMode;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Clock {
    anchor_ms: i64,
    anchor: Instant,
    mode: ClockMode,
    last_ms: i64,
}

impl Clock {
    pub(crate) fn new(now: DateTime<Utc>, mode: ClockMode) -> Self {
        let anchor_ms = now.timestamp_millis();
        Self {
            anchor_ms,
            anchor: Instant::now(),
            mode,
            last_ms: anchor_ms,
        }
    }

    /// The current time in epoch milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        let running = match self.mode {
            ClockMode::Running => {
                self.anchor_ms
                    + i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
            }
            ClockMode::Frozen => self.anchor_ms,
        };
        running.max(self.last_ms)
    }

    /// A write's timestamp: now, and later than any earlier write's.
    pub(crate) fn tick(&mut self) -> i64 {
        let now = self.now_ms();
        self.last_ms = if now > self.last_ms {
            now
        } else {
            self.last_ms + 1
        };
        self.last_ms
    }

    /// Moves "now" to `now` (writes stay strictly increasing even if
    /// this goes back in time).
    pub(crate) fn set(&mut self, now: DateTime<Utc>) {
        self.anchor_ms = now.timestamp_millis();
        self.anchor = Instant::now();
    }
}

/// `2026-03-02T09:00:00.000Z`: how HubSpot writes datetime properties.
pub(crate) fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2026-03-02`: how HubSpot writes date properties.
pub(crate) fn date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Reads a date or datetime the way HubSpot accepts one: epoch
/// milliseconds, an ISO 8601 datetime, or a bare date (midnight UTC).
pub(crate) fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_epoch_ms_iso_or_bare_dates() {
        assert_eq!(parse_ms("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_ms("2023-11-14T22:13:20.000Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_ms("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(parse_ms("soon"), None);
        assert_eq!(iso(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn writes_are_stamped_strictly_increasing_times_even_on_a_frozen_clock() {
        let mut clock = Clock::new(
            DateTime::from_timestamp_millis(1_000).unwrap(),
            ClockMode::Frozen,
        );
        assert_eq!(
            [clock.tick(), clock.tick(), clock.tick()],
            [1_001, 1_002, 1_003]
        );
        clock.set(DateTime::from_timestamp_millis(500).unwrap());
        assert_eq!(clock.tick(), 1_004);
    }
}
