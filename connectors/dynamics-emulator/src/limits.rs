//! Service protection (facts 2.5): a sliding window, on the emulator clock,
//! of the requests admitted and the execution time charged for them. Over
//! either limit a request gets 429 with `Retry-After`: the seconds until
//! enough of the window has slid by, plus one more for each request refused
//! since the last one admitted (hammering lengthens the wait, facts 2.5;
//! by how much is (?)).

use super::config::Knobs;
use super::reply::{ApiError, execution_exceeded, requests_exceeded};
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(crate) struct Window {
    /// (admitted at, execution ms charged), oldest first.
    entries: VecDeque<(i64, u64)>,
    charged_ms: u64,
    refused_in_a_row: u64,
}

impl Window {
    /// Admits one request at `now_ms` charged `knobs.request_cost_ms`, or
    /// refuses it.
    pub(crate) fn admit(&mut self, now_ms: i64, knobs: &Knobs) -> Result<(), ApiError> {
        let window_ms = i64::try_from(knobs.window.as_millis()).unwrap_or(i64::MAX / 4);
        self.slide(now_ms - window_ms);
        let window_secs = knobs.window.as_secs();
        let refusal = match (knobs.requests_per_window, knobs.execution_ms_per_window) {
            (Some(max), _) if self.entries.len() as u64 >= max => {
                // The window has room again once enough of the oldest
                // entries slid out.
                let over = self.entries.len() as u64 + 1 - max;
                let until = self.entry_leaves(over, window_ms);
                Some((requests_exceeded(max, window_secs), until))
            }
            (_, Some(max)) if self.charged_ms >= max => {
                let mut excess = self.charged_ms + knobs.request_cost_ms - max;
                let mut n = 0;
                for (_, cost) in &self.entries {
                    n += 1;
                    if *cost >= excess {
                        break;
                    }
                    excess -= cost;
                }
                let until = self.entry_leaves(n, window_ms);
                Some((execution_exceeded(max, window_secs), until))
            }
            _ => None,
        };
        match refusal {
            Some((mut error, until_ms)) => {
                let wait_ms = (until_ms - now_ms).max(1);
                let secs = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
                error.retry_after = Some(secs + self.refused_in_a_row);
                self.refused_in_a_row += 1;
                Err(error)
            }
            None => {
                self.refused_in_a_row = 0;
                self.charge(now_ms, knobs.request_cost_ms);
                Ok(())
            }
        }
    }

    /// Charges execution time without counting a request (the parts of a
    /// `$batch` beyond its first).
    pub(crate) fn charge(&mut self, now_ms: i64, cost_ms: u64) {
        self.entries.push_back((now_ms, cost_ms));
        self.charged_ms += cost_ms;
    }

    /// Adds execution time to the newest entry (a `$batch` counts as one
    /// request but its parts' time in full).
    pub(crate) fn charge_more(&mut self, cost_ms: u64) {
        if let Some((_, cost)) = self.entries.back_mut() {
            *cost += cost_ms;
            self.charged_ms += cost_ms;
        }
    }

    /// When the `n`th oldest entry leaves the window.
    fn entry_leaves(&self, n: u64, window_ms: i64) -> i64 {
        let index = usize::try_from(n.max(1) - 1).unwrap_or(usize::MAX);
        self.entries
            .get(index)
            .or(self.entries.back())
            .map_or(0, |(at, _)| at + window_ms)
    }

    fn slide(&mut self, oldest_ms: i64) {
        while let Some((at, cost)) = self.entries.front().copied() {
            if at > oldest_ms {
                break;
            }
            self.entries.pop_front();
            self.charged_ms -= cost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn knobs(requests: u64) -> Knobs {
        Knobs {
            requests_per_window: Some(requests),
            window: Duration::from_secs(10),
            ..Knobs::default()
        }
    }

    #[test]
    fn the_window_refuses_past_its_limit_with_a_growing_wait_then_slides() {
        let mut window = Window::default();
        let k = knobs(2);
        assert!(window.admit(0, &k).is_ok());
        assert!(window.admit(1_000, &k).is_ok());
        let first = window.admit(2_000, &k).unwrap_err();
        assert_eq!(first.code, "0x80072322");
        assert_eq!(first.retry_after, Some(8));
        let second = window.admit(2_000, &k).unwrap_err();
        assert_eq!(second.retry_after, Some(9));
        assert!(window.admit(10_001, &k).is_ok());
    }

    #[test]
    fn execution_time_has_its_own_limit() {
        let mut window = Window::default();
        let k = Knobs {
            requests_per_window: None,
            execution_ms_per_window: Some(100),
            request_cost_ms: 60,
            window: Duration::from_secs(10),
            ..Knobs::default()
        };
        assert!(window.admit(0, &k).is_ok());
        assert!(window.admit(0, &k).is_ok());
        let err = window.admit(0, &k).unwrap_err();
        assert_eq!(err.code, "0x80072321");
    }
}
