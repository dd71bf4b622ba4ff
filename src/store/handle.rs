//! [`StoreHandle`]: the store as async code uses it. A dedicated OS thread
//! owns the [`Store`] and runs the jobs sent to it one at a time, so SQLite
//! never blocks the async runtime.
//!
//! Handles are cheap to clone. Dropping the last one lets the thread finish
//! the job in hand, close the file and exit; the drop waits for that, so a
//! process that drops its handles before exiting leaves a closed file.

use super::{Store, StoreError};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle, ThreadId};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A cloneable, async-facing handle to the store's thread.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl StoreHandle {
    /// Opens the store at `path` on a new thread.
    pub fn open(path: &Path) -> Result<StoreHandle, StoreError> {
        Store::open(path).and_then(StoreHandle::spawn)
    }

    /// Moves `store` onto a new thread.
    pub fn spawn(store: Store) -> Result<StoreHandle, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name("journeyd-store".into())
            .spawn(move || run(store, queue))
            .map_err(StoreError::Thread)?;
        Ok(StoreHandle {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                thread_id: thread.thread().id(),
                thread: Some(thread),
            }),
        })
    }

    /// Runs `f` on the store's thread and awaits its result. `f` should do
    /// store work only: the thread runs one job at a time.
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Box::new(move |store| {
            // The caller may have stopped waiting; nothing to do then.
            let _ = reply.send(f(store));
        }))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the store's thread and blocks until it is done. For
    /// callers outside the async runtime (CLI commands, tests).
    pub fn call_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Box::new(move |store| {
            let _ = reply.send(f(store));
        }))?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).map_err(|_| StoreError::Closed)
    }
}

/// The store thread: runs jobs until every handle is gone. A job that
/// panics is dropped (its transaction rolls back, its caller gets
/// [`StoreError::Closed`]) and the thread goes on with the next.
fn run(mut store: Store, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut store)));
        if outcome.is_err() {
            tracing::error!("a store job panicked; its changes were rolled back");
        }
    }
    drop(store);
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        drop(self.jobs.take());
        // A job that held the last handle is dropping it on the store thread
        // itself: that thread exits on its own once the job returns.
        if thread::current().id() == self.thread_id {
            return;
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{day, hubspot, record};
    use super::*;
    use journeyd_connector::ObjectKind;

    #[tokio::test]
    async fn calls_from_async_code_run_on_the_store_thread() {
        let dir = tempfile::tempdir().unwrap();
        let handle = StoreHandle::open(&dir.path().join("journeyd.db")).unwrap();
        let counts = handle
            .call(|store| {
                store.upsert_records(&hubspot(), &[record(ObjectKind::Deal, "1")], day(1, 0))
            })
            .await
            .unwrap();
        assert_eq!(counts.inserted, 1);
        let clone = handle.clone();
        let caller = std::thread::current().id();
        let (count, thread) = clone
            .call(move |store| {
                Ok::<_, StoreError>((store.record_count()?, std::thread::current().id()))
            })
            .await
            .unwrap();
        assert_eq!(count, 1);
        assert_ne!(thread, caller);
    }

    #[test]
    fn blocking_calls_work_and_dropping_the_last_handle_closes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journeyd.db");
        let handle = StoreHandle::open(&path).unwrap();
        let clone = handle.clone();
        drop(handle);
        let count = clone.call_blocking(|store| store.record_count()).unwrap();
        assert_eq!(count, 0);
        drop(clone);
        // A closed WAL store checkpoints and removes its -wal file.
        assert!(!dir.path().join("journeyd.db-wal").exists());
    }

    #[test]
    fn a_panicking_job_fails_its_caller_and_the_store_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let handle = StoreHandle::open(&dir.path().join("journeyd.db")).unwrap();
        let result: Result<(), StoreError> = handle.call_blocking(|_| panic!("job panics"));
        assert!(matches!(result, Err(StoreError::Closed)));
        assert_eq!(
            handle.call_blocking(|store| store.record_count()).unwrap(),
            0
        );
    }
}
