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
//! - [`log_entries`]: a record's violations as entries, one per missing fact;
//! - [`console`]: the same, as web pages an admin browses;
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

/// Has mimalloc hand freed memory back to the system: its arenas are
/// committed as they are used (a freed page of an arena committed whole is
/// only marked reusable on Linux, and stays in the process's memory until
/// the system runs short), and purged 50 ms after a free rather than 10.
/// An audit of a million records peaked at about 150 MB with the defaults
/// and about 105 MB with these, for a few percent of its time.
///
/// It runs before `main` (an ELF constructor): an option read by the first
/// arena must be set before the first allocation makes it.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune() {
        // mimalloc's option numbers (`mimalloc.h`, `mi_option_e`, the
        // same in its versions 2 and 3); the binding names only some.
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        // Between the options the binding does name, in the enum's order.
        const _: () = assert!(
            libmimalloc_sys::mi_option_verbose + 2 == ARENA_EAGER_COMMIT
                && libmimalloc_sys::mi_option_large_os_pages - 2 == ARENA_EAGER_COMMIT
                && libmimalloc_sys::mi_option_use_numa_nodes - 1 == PURGE_DELAY
        );
        // SAFETY: setting an option stores into mimalloc's option table,
        // which needs no initialisation; both options take any value.
        unsafe {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 50);
        }
    }
    tune
};

pub mod audit;
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line is the one place that prints"
)]
pub mod cli;
pub mod config;
pub mod connectors;
pub mod console;
pub mod export;
#[cfg(test)]
mod fake_connector;
pub mod import;
pub mod journey;
pub mod log_entries;
pub mod process;
pub mod report;
pub mod rules;
pub mod secrets;
pub mod service;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod writeback;
