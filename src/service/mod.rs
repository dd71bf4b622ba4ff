//! The long-running daemon: what `journeyd run` is made of.
//!
//! - [`health`]: the optional HTTP listener answering `/healthz` and
//!   `/metrics`;
//! - [`metrics`]: the Prometheus metrics each run is recorded into.

pub mod health;
pub mod metrics;
