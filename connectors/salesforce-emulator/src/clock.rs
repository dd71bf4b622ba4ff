//! The emulator's clock and Salesforce's date formats.
//!
//! Seeded data is placed relative to the configured "now"; writes stamp a
//! strictly increasing time so that two writes never share a
//! `SystemModstamp` by accident.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Clock {
    anchor_ms: i64,
    anchor: Instant,
    last_ms: i64,
}

impl Clock {
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        let anchor_ms = now.timestamp_millis();
        Self {
            anchor_ms,
            anchor: Instant::now(),
            last_ms: anchor_ms,
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        (self.anchor_ms + elapsed).max(self.last_ms)
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
}

/// `2011-07-07T00:37:00.000+0000`: Salesforce's wire datetime (facts 1.6).
pub(crate) fn datetime(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// `2011-07-07`.
pub(crate) fn date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Reads a datetime as Salesforce writes or accepts one: `Z`, `+0000` or
/// `+00:00` offsets, with or without milliseconds.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.timestamp_millis());
        }
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc().timestamp_millis())
}

/// Reads a `YYYY-MM-DD` date as midnight UTC.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|at| at.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_go_out_with_millis_and_a_colonless_offset_and_read_back() {
        let ms = 1_310_000_000_000;
        assert_eq!(datetime(ms), "2011-07-07T00:53:20.000+0000");
        assert_eq!(parse_datetime(&datetime(ms)), Some(ms));
        assert_eq!(parse_datetime("2011-07-07T00:53:20Z"), Some(ms));
        assert_eq!(parse_date("2011-07-07"), Some(1_309_996_800_000));
    }

    #[test]
    fn writes_are_stamped_strictly_increasing_times() {
        let mut clock = Clock::new(DateTime::from_timestamp_millis(1_000).unwrap());
        let (a, b) = (clock.tick(), clock.tick());
        assert!(b > a);
    }
}
