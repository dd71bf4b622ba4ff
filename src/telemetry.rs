//! Logging setup: `tracing` to stderr, human-readable on a terminal and JSON
//! lines otherwise (for journald and log shippers). `RUST_LOG` overrides the
//! default level.
//!
//! Span and field names are a schema, shared by every module: spans `run`,
//! `import`, `audit`, `sync`, `page`, `write`; fields `connector`, `object`,
//! `records`, `ms`, `run`, and `error = %err` for failures.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. On a terminal only warnings show by
/// default, since the command prints its own result; elsewhere INFO lines
/// record each finished operation.
pub fn init() {
    let terminal = std::io::stderr().is_terminal();
    // Migrations log each step at INFO; an admin only needs to hear of trouble.
    let default = if terminal {
        "warn"
    } else {
        "info,rusqlite_migration=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling into the CLI twice) is harmless: keep the first.
    let _ = if terminal {
        builder.compact().try_init()
    } else {
        builder.json().with_current_span(true).try_init()
    };
}
