//! Read-only connections to the state file, kept between requests: a
//! page takes one on a blocking thread (SQLite never runs on the async
//! runtime's threads) and gives it back when it is rendered.

use crate::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// More idle connections than this are closed, not kept.
const KEPT: usize = 4;

pub(super) struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    timezone: chrono_tz::Tz,
    idle: Mutex<Vec<Store>>,
}

impl Readers {
    pub(super) fn new(path: PathBuf, timezone: chrono_tz::Tz) -> Readers {
        Readers {
            inner: Arc::new(Inner {
                path,
                timezone,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The state file.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.inner.path
    }

    /// Runs `f` with a read-only connection, on a blocking thread.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let store = inner.take()?;
            let out = f(&store);
            inner.give(store);
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

impl Inner {
    fn take(&self) -> Result<Store, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(store) => Ok(store),
            None => {
                let mut store = Store::open_read_only(&self.path)?;
                store.set_timezone(self.timezone);
                Ok(store)
            }
        }
    }

    fn give(&self, store: Store) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEPT
        {
            idle.push(store);
        }
    }
}
