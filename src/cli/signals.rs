//! Stopping a command at a safe point on SIGINT or SIGTERM. The first
//! signal asks the work to stop: the batch in hand is finished and
//! recorded, nothing new starts, waits end; the command then exits 130
//! (SIGINT) or 143 (SIGTERM). A second signal ends the process at once:
//! writes in flight stay unconfirmed in the ledger, and the next run
//! settles them the CRM's own way.

use crate::sync::Shutdown;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// The signal that stopped the work, if one did.
#[derive(Debug, Clone, Default)]
pub struct Caught(Arc<AtomicI32>);

impl Caught {
    /// The exit code the signal calls for: 128 + its number.
    pub fn exit_code(&self) -> Option<ExitCode> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            signo => u8::try_from(128 + signo).ok().map(ExitCode::from),
        }
    }
}

/// Listens for SIGINT and SIGTERM from now on (inside the runtime); the
/// receiver turns `true` at the first.
pub fn listen() -> std::io::Result<(Shutdown, Caught)> {
    let (stop, shutdown) = watch::channel(false);
    let caught = Caught::default();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let seen = caught.0.clone();
    tokio::spawn(async move {
        loop {
            let signo = tokio::select! {
                Some(()) = interrupt.recv() => libc::SIGINT,
                Some(()) = terminate.recv() => libc::SIGTERM,
                else => return,
            };
            if seen.swap(signo, Ordering::SeqCst) != 0 {
                // Asked twice: stop now, leaving what is in flight to the
                // ledger.
                std::process::exit(128 + signo);
            }
            tracing::warn!(
                signal = signo,
                "stopping at the next safe point (send it again to stop at once)"
            );
            stop.send_replace(true);
        }
    });
    Ok((shutdown, caught))
}
