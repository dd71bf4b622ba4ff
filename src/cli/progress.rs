//! Progress bars for long syncs, on a terminal only: one spinner per step
//! (owners, each object's records, deletions), counting items as pages land.

use crate::sync::{NoProgress, Step, SyncProgress};
use indicatif::{ProgressBar, ProgressStyle};
use journeyd_connector::ConnectorName;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Bars on stderr when it is a terminal; nothing otherwise (logs and
/// scripts get no control characters).
pub fn sync_progress() -> Box<dyn SyncProgress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(NoProgress)
    }
}

#[derive(Default)]
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl SyncProgress for Bars {
    fn step_started(&self, connector: &ConnectorName, step: Step) {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {human_pos} ({per_sec}, {elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("{connector} {step}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut current) = self.current.lock()
            && let Some(previous) = current.replace(bar)
        {
            previous.finish();
        }
    }

    fn page(&self, _: &ConnectorName, _: Step, items: u64) {
        if let Ok(current) = self.current.lock()
            && let Some(bar) = current.as_ref()
        {
            bar.inc(items);
        }
    }

    fn step_finished(&self, _: &ConnectorName, _: Step) {
        if let Ok(mut current) = self.current.lock()
            && let Some(bar) = current.take()
        {
            bar.finish();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        // A step cut short (an error, a shutdown) leaves its bar as it was.
        if let Ok(mut current) = self.current.lock()
            && let Some(bar) = current.take()
        {
            bar.abandon();
        }
    }
}
