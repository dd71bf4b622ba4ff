//! Incremental search paging across HubSpot's 10,000-result cap: a pure
//! state machine over pages, no IO.
//!
//! One search query can page through at most `cap` results (paging past it
//! is a 400). So a pull is a sequence of query *windows*, each sorted by the
//! modification property, ascending:
//!
//! - `Since { from, inclusive }`: `modified >= from` (or `> from`). Before
//!   the next page would reach the cap, the window restarts at the greatest
//!   modification time `T` seen so far, `modified >= T`, and drops the
//!   records already emitted at exactly `T` (their ids are kept; there are
//!   only as many as share one millisecond).
//! - `Tie { at, after_id }`: the degenerate case, where a window reached the
//!   cap without getting past its own start (more than a window of records
//!   share one millisecond). It pages `modified == at` by `hs_object_id`,
//!   restarting with `hs_object_id > last id` (HubSpot compares ids as
//!   strings, so the raw string of the last id is used, never id + 1), then
//!   continues with `Since { from: at, inclusive: false }`.
//!
//! No record is missed or emitted twice across restarts, ties included. The
//! whole state is in [`SearchCursor`], which serializes into the opaque
//! cursor the daemon stores, so a pull resumes after a restart of the daemon.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the state machine needs to know of one search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// `None` when the row names no id (it will be skipped as malformed).
    pub id: Option<String>,
    /// The modification property in epoch ms; `None` when unreadable.
    pub modified_ms: Option<i64>,
}

/// A property a query filters or sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// `hs_lastmodifieddate` (`lastmodifieddate` for contacts).
    Modified,
    /// `hs_object_id`.
    ObjectId,
}

/// The search the cursor asks for next: one filter group, one sort
/// (ascending), well within HubSpot's 3 groups × 3 filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub filters: Vec<(Field, &'static str, String)>,
    pub sort: Field,
    pub after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Results per page.
    pub limit: u32,
    /// Results one query may page through.
    pub cap: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "window", rename_all = "snake_case")]
enum Window {
    Since {
        from_ms: i64,
        inclusive: bool,
        /// Ids at exactly `from_ms` already emitted by an earlier window.
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        skip: BTreeSet<String>,
    },
    Tie {
        at_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_id: Option<String>,
        /// Ids at `at_ms` already emitted by the `Since` windows before.
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        skip: BTreeSet<String>,
    },
}

/// Where an incremental search pull stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SearchCursor {
    #[serde(flatten)]
    window: Window,
    /// HubSpot's paging token within the current query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Results received from the current query.
    #[serde(default)]
    received: u64,
    /// `Since`: the greatest modification time seen in this window, and
    /// every id seen at it (emitted now or before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    at_max: BTreeSet<String>,
    /// `Tie`: the last id of the current query, in the server's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_id: Option<String>,
}

/// What to make of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Per hit: emit it (`true`) or drop it as already emitted.
    pub emit: Vec<bool>,
    /// `None`: the pull is complete.
    pub next: Option<SearchCursor>,
}

impl SearchCursor {
    /// Everything modified at or after `from_ms`.
    pub fn since(from_ms: i64) -> Self {
        Self::window(Window::Since {
            from_ms,
            inclusive: true,
            skip: BTreeSet::new(),
        })
    }

    fn window(window: Window) -> Self {
        let (max_ms, at_max) = match &window {
            // The ids to skip are at `from_ms`, emitted before: if this
            // window never gets past `from_ms`, they must be skipped again.
            Window::Since {
                from_ms,
                inclusive: true,
                skip,
            } => (Some(*from_ms), skip.clone()),
            _ => (None, BTreeSet::new()),
        };
        Self {
            window,
            after: None,
            received: 0,
            max_ms,
            at_max,
            last_id: None,
        }
    }

    pub fn query(&self) -> Query {
        match &self.window {
            Window::Since {
                from_ms, inclusive, ..
            } => Query {
                filters: vec![(
                    Field::Modified,
                    if *inclusive { "GTE" } else { "GT" },
                    from_ms.to_string(),
                )],
                sort: Field::Modified,
                after: self.after.clone(),
            },
            Window::Tie {
                at_ms, after_id, ..
            } => {
                let mut filters = vec![(Field::Modified, "EQ", at_ms.to_string())];
                if let Some(id) = after_id {
                    filters.push((Field::ObjectId, "GT", id.clone()));
                }
                Query {
                    filters,
                    sort: Field::ObjectId,
                    after: self.after.clone(),
                }
            }
        }
    }

    /// Takes in the page answering [`Self::query`]; `next_after` is its
    /// `paging.next.after`. Errs only when the server pages to the cap
    /// without giving a single result to restart from.
    pub fn advance(
        mut self,
        hits: &[Hit],
        next_after: Option<String>,
        limits: Limits,
    ) -> Result<Step, String> {
        let mut emit = Vec::with_capacity(hits.len());
        for hit in hits {
            emit.push(self.take(hit));
        }
        self.received += hits.len() as u64;
        let Some(after) = next_after else {
            // The query is exhausted.
            let next = match self.window {
                Window::Since { .. } => None,
                Window::Tie { at_ms, .. } => Some(Self::window(Window::Since {
                    from_ms: at_ms,
                    inclusive: false,
                    skip: BTreeSet::new(),
                })),
            };
            return Ok(Step { emit, next });
        };
        let offset = after.parse::<u64>().unwrap_or(self.received);
        if offset + u64::from(limits.limit) <= u64::from(limits.cap) {
            self.after = Some(after);
            return Ok(Step {
                emit,
                next: Some(self),
            });
        }
        Ok(Step {
            emit,
            next: Some(self.restart()?),
        })
    }

    /// Whether `hit` is new, recording it either way.
    fn take(&mut self, hit: &Hit) -> bool {
        match &self.window {
            Window::Since {
                from_ms,
                inclusive,
                skip,
            } => {
                let seen_before = *inclusive
                    && hit.modified_ms == Some(*from_ms)
                    && hit.id.as_ref().is_some_and(|id| skip.contains(id));
                if let Some(ms) = hit.modified_ms {
                    match self.max_ms {
                        Some(max) if ms < max => {}
                        Some(max) if ms == max => {
                            self.at_max.extend(hit.id.clone());
                        }
                        _ => {
                            self.max_ms = Some(ms);
                            self.at_max = hit.id.iter().cloned().collect();
                        }
                    }
                }
                !seen_before
            }
            Window::Tie { skip, .. } => {
                let seen_before = hit.id.as_ref().is_some_and(|id| skip.contains(id));
                if hit.id.is_some() {
                    self.last_id.clone_from(&hit.id);
                }
                !seen_before
            }
        }
    }

    /// A new query picking up where this one must stop.
    fn restart(self) -> Result<Self, String> {
        match self.window {
            Window::Since {
                from_ms, inclusive, ..
            } => match self.max_ms {
                Some(max) if max > from_ms => Ok(Self::window(Window::Since {
                    from_ms: max,
                    inclusive: true,
                    skip: self.at_max,
                })),
                // A whole window without getting past its start: page the
                // records at `from_ms` by id instead.
                _ if inclusive => Ok(Self::window(Window::Tie {
                    at_ms: from_ms,
                    after_id: None,
                    skip: self.at_max,
                })),
                _ => Err(format!(
                    "search paged to its cap of results after {from_ms} without returning one"
                )),
            },
            Window::Tie {
                at_ms,
                after_id,
                skip,
            } => {
                if self.last_id.is_none() && after_id.is_none() && self.received == 0 {
                    return Err(format!(
                        "search paged to its cap of results at {at_ms} without returning one"
                    ));
                }
                Ok(Self::window(Window::Tie {
                    at_ms,
                    after_id: self.last_id.or(after_id),
                    skip,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A search index that behaves as HubSpot's is documented to: filters,
    /// one ascending sort (ties in an order of its own), offset paging that
    /// refuses to go past `cap`, a `paging.next` on every full page (so the
    /// last full page is followed by an empty one), and rows it counts but
    /// does not return (short and empty pages that still carry paging).
    struct Index {
        rows: Vec<(String, i64)>,
        hidden: BTreeSet<String>,
        cap: u32,
    }

    impl Index {
        fn answer(&self, query: &Query, limit: u32) -> (Vec<Hit>, Option<String>) {
            let mut matching: Vec<&(String, i64)> = self
                .rows
                .iter()
                .filter(|(id, ms)| {
                    query.filters.iter().all(|(field, op, value)| match field {
                        Field::Modified => {
                            let value: i64 = value.parse().unwrap();
                            match *op {
                                "GTE" => *ms >= value,
                                "GT" => *ms > value,
                                "EQ" => *ms == value,
                                other => panic!("unexpected operator {other}"),
                            }
                        }
                        Field::ObjectId => match *op {
                            "GT" => id.as_str() > value.as_str(),
                            other => panic!("unexpected operator {other}"),
                        },
                    })
                })
                .collect();
            match query.sort {
                // Ties come in an order unrelated to ids.
                Field::Modified => matching.sort_by_key(|(id, ms)| (*ms, scramble(id))),
                Field::ObjectId => matching.sort_by(|a, b| a.0.cmp(&b.0)),
            }
            let offset: u32 = query.after.as_deref().map_or(0, |a| a.parse().unwrap());
            assert!(
                offset + limit <= self.cap,
                "paged past the cap: offset {offset} + limit {limit} > {}",
                self.cap
            );
            let page: Vec<Hit> = matching
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .filter(|(id, _)| !self.hidden.contains(id))
                .map(|(id, ms)| Hit {
                    id: Some(id.clone()),
                    modified_ms: Some(*ms),
                })
                .collect();
            let full = matching.len() >= (offset + limit) as usize;
            (page, full.then(|| (offset + limit).to_string()))
        }
    }

    fn scramble(id: &str) -> u64 {
        id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// Pulls everything from `from_ms`, through the serialized cursor at
    /// every step as the daemon would store it; returns each emitted id with
    /// how often it came, and how many queries were windows restarted.
    fn pull(index: &Index, from_ms: i64, limit: u32) -> (BTreeMap<String, usize>, usize) {
        let limits = Limits {
            limit,
            cap: index.cap,
        };
        let mut cursor = SearchCursor::since(from_ms);
        let mut emitted = BTreeMap::new();
        let mut restarts = 0;
        for _ in 0..10_000 {
            let query = cursor.query();
            assert!(query.filters.len() <= 3);
            let (hits, next) = index.answer(&query, limit);
            let step = cursor.advance(&hits, next, limits).expect("progress");
            for (hit, emit) in hits.iter().zip(&step.emit) {
                if *emit {
                    *emitted.entry(hit.id.clone().unwrap()).or_insert(0) += 1;
                }
            }
            match step.next {
                None => return (emitted, restarts),
                Some(next) => {
                    if next.after.is_none() {
                        restarts += 1;
                    }
                    let stored = serde_json::to_string(&next).unwrap();
                    cursor = serde_json::from_str(&stored).unwrap();
                }
            }
        }
        panic!("the pull did not end")
    }

    fn assert_each_once(index: &Index, from_ms: i64, emitted: &BTreeMap<String, usize>) {
        let expected: BTreeSet<&String> = index
            .rows
            .iter()
            .filter(|(id, ms)| *ms >= from_ms && !index.hidden.contains(id))
            .map(|(id, _)| id)
            .collect();
        let repeated: Vec<_> = emitted.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "emitted more than once: {repeated:?}");
        let missed: Vec<_> = expected
            .iter()
            .filter(|id| !emitted.contains_key(**id))
            .collect();
        assert!(missed.is_empty(), "missed: {missed:?}");
        assert_eq!(
            emitted.len(),
            expected.len(),
            "emitted something unexpected"
        );
    }

    fn rows(times: impl IntoIterator<Item = i64>) -> Vec<(String, i64)> {
        times
            .into_iter()
            .enumerate()
            .map(|(i, ms)| ((i + 1).to_string(), ms))
            .collect()
    }

    #[test]
    fn distinct_times_page_through_many_windows_without_miss_or_repeat() {
        let index = Index {
            rows: rows((0..1000).map(|i| 1_000 + i * 7)),
            hidden: BTreeSet::new(),
            cap: 100,
        };
        let (emitted, restarts) = pull(&index, 0, 30);
        assert_each_once(&index, 0, &emitted);
        assert!(restarts >= 9, "{restarts} restarts");
    }

    #[test]
    fn a_run_of_ties_across_the_restart_point_is_neither_missed_nor_repeated() {
        // 80 records share one millisecond around offsets 70..150, so the
        // first window stops in the middle of them.
        let times = (0..70)
            .map(|i| 1_000 + i)
            .chain((0..80).map(|_| 5_000))
            .chain((0..200).map(|i| 6_000 + i));
        let index = Index {
            rows: rows(times),
            hidden: BTreeSet::new(),
            cap: 100,
        };
        let (emitted, _) = pull(&index, 0, 30);
        assert_each_once(&index, 0, &emitted);
    }

    #[test]
    fn more_ties_than_the_cap_are_paged_by_id_then_the_pull_goes_on() {
        // 350 records in one millisecond, with ids whose string order is not
        // their numeric order ("10" < "100" < "9").
        let times = (0..20)
            .map(|i| 1_000 + i)
            .chain((0..350).map(|_| 5_000))
            .chain((0..60).map(|i| 9_000 + i));
        let index = Index {
            rows: rows(times),
            hidden: BTreeSet::new(),
            cap: 100,
        };
        let (emitted, _) = pull(&index, 0, 30);
        assert_each_once(&index, 0, &emitted);
    }

    #[test]
    fn every_record_in_one_millisecond_still_comes_exactly_once() {
        let index = Index {
            rows: rows((0..450).map(|_| 7_000)),
            hidden: BTreeSet::new(),
            cap: 90,
        };
        let (emitted, _) = pull(&index, 7_000, 30);
        assert_each_once(&index, 7_000, &emitted);
    }

    #[test]
    fn short_and_empty_pages_that_carry_paging_are_paged_past() {
        let index = Index {
            rows: rows((0..300).map(|i| 1_000 + i / 3)),
            // Every record of 40..100 is counted but not returned: two
            // whole pages come back empty, with paging.
            hidden: (40..100).map(|i: usize| (i + 1).to_string()).collect(),
            cap: 100,
        };
        let (emitted, _) = pull(&index, 0, 20);
        assert_each_once(&index, 0, &emitted);
    }

    #[test]
    fn the_watermark_start_is_inclusive() {
        let index = Index {
            rows: rows([10, 20, 20, 30]),
            hidden: BTreeSet::new(),
            cap: 100,
        };
        let (emitted, _) = pull(&index, 20, 30);
        assert_eq!(emitted.keys().collect::<Vec<_>>(), ["2", "3", "4"]);
    }

    #[test]
    fn queries_use_one_group_and_one_ascending_sort_and_the_raw_last_id() {
        let cursor = SearchCursor::window(Window::Tie {
            at_ms: 5,
            after_id: Some("0099".into()),
            skip: BTreeSet::new(),
        });
        let query = cursor.query();
        assert_eq!(
            query.filters,
            vec![
                (Field::Modified, "EQ", "5".to_owned()),
                (Field::ObjectId, "GT", "0099".to_owned())
            ]
        );
        assert_eq!(query.sort, Field::ObjectId);
    }

    #[test]
    fn a_server_that_pages_to_the_cap_without_results_is_an_error_not_a_loop() {
        let limits = Limits {
            limit: 50,
            cap: 100,
        };
        let cursor = SearchCursor::window(Window::Since {
            from_ms: 5,
            inclusive: false,
            skip: BTreeSet::new(),
        });
        let step = cursor.advance(&[], Some("50".into()), limits).unwrap();
        let error = step
            .next
            .unwrap()
            .advance(&[], Some("100".into()), limits)
            .unwrap_err();
        assert!(error.contains("without returning one"), "{error}");
    }
}
