//! Logging setup: `tracing` to stderr, human-readable on a terminal and JSON
//! lines otherwise (for journald and log shippers). `RUST_LOG` overrides the
//! default level.
//!
//! Span and field names are a schema, shared by every module: spans `run`,
//! `import`, `audit`, `sync`, `page`, `write`; fields `connector`, `object`,
//! `records`, `ms`, `run`, and `error = %ErrorChain(&err)` for failures:
//! an error is logged with every cause in its `source()` chain, in text and
//! JSON logs alike, since the top error alone rarely says what to fix.

use std::error::Error;
use std::fmt;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// Displays an error and each of its causes, `top: cause: cause`, the way
/// `anyhow` shows an error with `{:#}`. A cause whose text the message
/// already carries (an error that words its source into its own message)
/// is not repeated.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !said.contains(&text) {
                said.push_str(": ");
                said.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&said)
    }
}

/// [`ErrorChain`] as an owned string: for an error kept as text (a run's
/// row, a status line).
pub fn chain(error: &(dyn Error + 'static)) -> String {
    ErrorChain(error).to_string()
}

/// Installs the global subscriber. On a terminal only warnings show by
/// default, since the command prints its own result; elsewhere INFO lines
/// record each finished operation.
pub fn init() {
    let terminal = std::io::stderr().is_terminal();
    // A second init (tests calling into the CLI twice) is harmless: keep the first.
    let _ = subscriber(terminal, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs: compact text for a terminal, JSON
/// lines otherwise, written to `writer`.
fn subscriber<W>(terminal: bool, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Migrations log each step at INFO; an admin only needs to hear of trouble.
    let default = if terminal {
        "warn"
    } else {
        "info,rusqlite_migration=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if terminal {
        Box::new(builder.compact().finish())
    } else {
        Box::new(builder.json().with_current_span(true).finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Debug, thiserror::Error)]
    #[error("store failed to read a run")]
    struct Top(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("disk I/O error: {0}")]
    struct Middle(#[source] std::io::Error);

    fn failure() -> Top {
        Top(Middle(std::io::Error::other("sector 7 unreadable")))
    }

    #[test]
    fn an_error_chain_names_every_cause_once() {
        assert_eq!(
            ErrorChain(&failure()).to_string(),
            "store failed to read a run: disk I/O error: sector 7 unreadable"
        );
    }

    /// What `subscriber` writes when one error is logged through it.
    fn logged(terminal: bool) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let make = move || Sink(Arc::clone(&sink));
        tracing::subscriber::with_default(subscriber(terminal, make), || {
            let error = failure();
            tracing::error!(error = %ErrorChain(&error), "run failed");
        });
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_logs_carry_an_errors_causes() {
        let line = logged(false);
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(
            value["fields"]["error"],
            "store failed to read a run: disk I/O error: sector 7 unreadable"
        );
    }

    #[test]
    fn text_logs_carry_an_errors_causes() {
        let line = logged(true);
        assert!(
            line.contains("store failed to read a run: disk I/O error: sector 7 unreadable"),
            "{line}"
        );
    }
}
