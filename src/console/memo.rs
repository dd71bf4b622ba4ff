//! Figures summed over the whole log (the overview's counts, each owner's
//! load, the journey's funnel), kept between requests until the log moves:
//! at a million records each takes a second or more to sum, and the log
//! moves only when a run begins or ends or an admin acts. Figures are kept
//! for the org's day they were summed on too: days in stage count to it.

use crate::store::{LogVersion, Store, StoreError};
use chrono::NaiveDate;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

type Kept = ((LogVersion, NaiveDate), Arc<dyn Any + Send + Sync>);

#[derive(Default)]
pub(super) struct Memo {
    kept: Mutex<HashMap<&'static str, Kept>>,
}

impl Memo {
    /// Forgets every figure kept.
    pub(super) fn clear(&self) {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// `sum`'s figures, as kept under `key` if the log has not moved and
    /// the org's day not turned since, else summed again and kept.
    pub(super) fn get<T>(
        &self,
        store: &Store,
        key: &'static str,
        sum: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<Arc<T>, StoreError>
    where
        T: Send + Sync + 'static,
    {
        let version = (store.log_version()?, store.today());
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|(at, _)| *at == version)
            .and_then(|(_, figures)| figures.clone().downcast::<T>().ok());
        if let Some(figures) = kept {
            return Ok(figures);
        }
        let figures = Arc::new(sum(store)?);
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (version, figures.clone()));
        Ok(figures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunKind;
    use crate::store::testkit::{TestStore, day};

    #[test]
    fn figures_are_kept_until_a_run_begins() {
        let mut test = TestStore::new();
        let memo = Memo::default();
        let mut sums = 0;
        for _ in 0..3 {
            let got = memo.get(&test.store, "figures", |_| {
                sums += 1;
                Ok(sums)
            });
            assert_eq!(*got.unwrap(), 1);
        }
        test.store
            .begin_run(RunKind::Sync, None, day(1, 0))
            .unwrap();
        let got = memo.get(&test.store, "figures", |_| {
            sums += 1;
            Ok(sums)
        });
        assert_eq!(*got.unwrap(), 2);
    }

    #[test]
    fn figures_of_one_kind_are_kept_apart_from_another() {
        let test = TestStore::new();
        let memo = Memo::default();
        assert_eq!(*memo.get(&test.store, "one", |_| Ok(1)).unwrap(), 1);
        assert_eq!(*memo.get(&test.store, "two", |_| Ok("two")).unwrap(), "two");
        assert_eq!(*memo.get(&test.store, "one", |_| Ok(9)).unwrap(), 1);
    }
}
