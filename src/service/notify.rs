//! What the service tells systemd over `$NOTIFY_SOCKET` (a `Type=notify`
//! unit): ready, its status line, watchdog pings, reloading and stopping.
//! Outside systemd (no `$NOTIFY_SOCKET`) every message is a no-op.

use crate::telemetry::ErrorChain;
use sd_notify::NotifyState;
use std::time::Duration;

/// Sends `states`; a failure to reach systemd is logged, never fatal: the
/// service goes on, and systemd, if it is waiting, says so itself.
fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(error = %ErrorChain(&error), "could not notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

pub fn reloading() {
    // systemd 253 and later want the monotonic time with `RELOADING=1`.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn reloaded(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// How often to ping the watchdog: half of `WatchdogSec=`, as systemd
/// advises; `None` when the unit has no watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|limit| limit / 2)
}
