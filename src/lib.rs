//! journeyd keeps an existing CRM honest about the customer journey.
//!
//! Map of the crate (ARCHITECTURE.md has the invariants):
//! - [`config`]: `journeyd.toml` + `journey.toml` -> a validated [`config::Config`];
//! - [`journey`]: the journey model, CEL criteria, CRM record -> journey record;
//! - [`rules`]: journey record -> violations; pure;
//! - [`store`]: the SQLite state file; the only module that speaks SQL;
//! - [`secrets`]: credentials read at startup; rotated refresh tokens saved;
//! - [`connectors`]: the closed set of CRM connectors, built from config;
//! - [`sync`]: one connector's records into the store, page by page;
//! - [`audit`]: one audit of every stored record, diffed against the log;
//! - [`writeback`]: corrective writes planned, capped, and sent through the
//!   ledger;
//! - [`import`]: canonical records from JSONL;
//! - [`report`], [`export`]: what admins read;
//! - [`service`]: `journeyd run`, the scheduled service systemd runs, and
//!   its health and metrics listener;
//! - [`process`]: which process a run belongs to, and whether it still runs;
//! - [`cli`]: the command line; the only module that prints;
//! - [`telemetry`]: logging setup and its field schema.

#![deny(clippy::print_stdout, clippy::print_stderr)]

/// Every binary that links journeyd (the daemon, the benches, the tests)
/// allocates with mimalloc: the audit allocates on its evaluating threads
/// and frees on its writing one, which fragments glibc's per-thread arenas
/// (peak memory grew by a half) and costs a fifth of the audit's CPU in
/// `malloc` and `free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod audit;
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line is the one place that prints"
)]
pub mod cli;
pub mod config;
pub mod connectors;
pub mod export;
#[cfg(test)]
mod fake_connector;
pub mod import;
pub mod journey;
pub mod process;
pub mod report;
pub mod rules;
pub mod secrets;
pub mod service;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod writeback;
