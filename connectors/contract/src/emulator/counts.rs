//! Request counts by route template, for tests and benchmarks that assert
//! how many calls a sync took.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts every request an instrumented router saw, keyed
/// `"METHOD /route/{template}"` (`"GET /crm/v3/objects/{object_type}"`), or
/// `"METHOD <unmatched>"` for a path no route matched. A request is counted
/// even when an injected fault answered it. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounts {
    inner: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request under `key`.
    pub fn record(&self, key: &str) {
        let mut counts = self.lock();
        match counts.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                counts.insert(key.to_owned(), 1);
            }
        }
    }

    /// Requests seen under `key` (`"POST /crm/v3/objects/{object_type}/search"`).
    pub fn get(&self, key: &str) -> u64 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// Requests seen under every key.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    pub fn reset(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic elsewhere cannot leave a counter map half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
