//! `journeyd run`: journeyd as a long-running service.
//!
//! Map of the module:
//! - [`daemon`]: the service itself: the scheduled jobs (each connector's
//!   incremental sync, the nightly audit and write-back, the watchdog),
//!   one run at a time per connector, signals (stop, reload);
//! - `notify`: what the service tells systemd (`READY=1`, `STATUS=`,
//!   `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`);
//! - [`health`]: the optional HTTP listener answering `/healthz` and
//!   `/metrics`;
//! - [`metrics`]: the Prometheus metrics each run is recorded into.

pub mod daemon;
pub mod health;
pub mod metrics;
mod notify;
