//! The guard on one pull's paging: a CRM (or something between it and us)
//! that hands back a cursor already followed, or pages on past any count
//! its own reported total allows, would otherwise hold a sync forever.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use thiserror::Error;

/// Pages a pull may take beyond one per reported item: room for the short
/// and even empty pages some CRMs hand out before their last (HubSpot,
/// facts 3.3), and for the last page itself.
pub const PAGE_SLACK: u64 = 10;

/// Pages a pull may take when its CRM reports no total: far past any real
/// object (a billion records at a thousand a page), still an end.
pub const PAGES_WITHOUT_TOTAL: u64 = 1_000_000;

/// Why paging was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Runaway {
    #[error("page {page} handed back the cursor already followed after page {first}")]
    RepeatedCursor { page: u64, first: u64 },
    #[error(
        "page {page} still names a next page, past the {limit} pages {total} reported items allow"
    )]
    PastTotal { page: u64, total: u64, limit: u64 },
    #[error(
        "page {page} still names a next page, past the {limit} pages allowed when no total is reported"
    )]
    Endless { page: u64, limit: u64 },
}

/// What one pull's paging has seen: every cursor followed (as a hash: a
/// pull of a million pages keeps eight bytes each), how many pages, and
/// the total its CRM reported.
#[derive(Debug, Default)]
pub struct PageGuard {
    hasher: RandomState,
    /// Cursor hash -> the page after which it was followed (0: the cursor
    /// the pull was resumed from).
    followed: HashMap<u64, u64>,
    pages: u64,
    /// The total reported, and the page count when it was first reported:
    /// a CRM that reads in windows (HubSpot's search) reports each
    /// window's total, and the pages allowed count from there.
    total: Option<(u64, u64)>,
}

impl PageGuard {
    /// A guard for a pull resumed from `cursor`, which counts as followed.
    pub fn resumed(cursor: &str) -> Self {
        let mut guard = Self::default();
        let hash = guard.hasher.hash_one(cursor);
        guard.followed.insert(hash, 0);
        guard
    }

    /// The number the next page will have, from 1.
    pub fn next_page(&self) -> u64 {
        self.pages + 1
    }

    /// Takes one more page, which reported `total` items in its query and
    /// names `next`; refuses it when following `next` would loop or page
    /// on past what the total allows.
    pub fn page(&mut self, total: Option<u64>, next: Option<&str>) -> Result<(), Runaway> {
        self.pages += 1;
        let page = self.pages;
        if let Some(total) = total
            && self.total.is_none_or(|(known, _)| known != total)
        {
            self.total = Some((total, page - 1));
        }
        let Some(next) = next else {
            return Ok(());
        };
        let hash = self.hasher.hash_one(next);
        if let Some(&first) = self.followed.get(&hash) {
            return Err(Runaway::RepeatedCursor { page, first });
        }
        self.followed.insert(hash, page);
        match self.total {
            Some((total, since)) => {
                let limit = total.saturating_add(PAGE_SLACK);
                if page - since > limit {
                    return Err(Runaway::PastTotal { page, total, limit });
                }
            }
            None if page > PAGES_WITHOUT_TOTAL => {
                return Err(Runaway::Endless {
                    page,
                    limit: PAGES_WITHOUT_TOTAL,
                });
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_handed_back_twice_stops_paging() {
        let mut guard = PageGuard::default();
        assert_eq!(guard.page(None, Some("a")), Ok(()));
        assert_eq!(guard.page(None, Some("b")), Ok(()));
        assert_eq!(
            guard.page(None, Some("a")),
            Err(Runaway::RepeatedCursor { page: 3, first: 1 })
        );
    }

    #[test]
    fn a_page_naming_the_cursor_it_was_resumed_from_stops_paging() {
        let mut guard = PageGuard::resumed("a");
        assert_eq!(
            guard.page(None, Some("a")),
            Err(Runaway::RepeatedCursor { page: 1, first: 0 })
        );
    }

    #[test]
    fn paging_stops_past_one_page_per_reported_item_and_the_slack() {
        let mut guard = PageGuard::default();
        let limit = 3 + PAGE_SLACK;
        for page in 1..=limit {
            assert_eq!(guard.page(Some(3), Some(&page.to_string())), Ok(()));
        }
        assert_eq!(
            guard.page(Some(3), Some("past")),
            Err(Runaway::PastTotal {
                page: limit + 1,
                total: 3,
                limit
            })
        );
    }

    #[test]
    fn the_pages_allowed_count_from_where_a_new_total_was_reported() {
        let mut guard = PageGuard::default();
        for page in 1..=(2 + PAGE_SLACK) {
            assert_eq!(guard.page(Some(2), Some(&format!("w1-{page}"))), Ok(()));
        }
        // A new window of the search, with a total of its own.
        for page in 1..=(2 + PAGE_SLACK) {
            assert_eq!(guard.page(Some(5), Some(&format!("w2-{page}"))), Ok(()));
        }
    }

    #[test]
    fn the_last_page_ends_paging_whatever_the_count() {
        let mut guard = PageGuard::default();
        for page in 1..=(1 + PAGE_SLACK) {
            assert_eq!(guard.page(Some(1), Some(&page.to_string())), Ok(()));
        }
        assert_eq!(guard.page(Some(1), None), Ok(()));
    }
}
