//! Stopping a command at a safe point on SIGINT or SIGTERM. The first
//! signal asks the work to stop: the batch in hand is finished and
//! recorded, nothing new starts, waits end (the HTTP clients' backoffs,
//! rate limits and `Retry-After`s included); the command then exits 130
//! (SIGINT) or 143 (SIGTERM). A second signal ends the process at once:
//! writes in flight stay unconfirmed in the ledger, and the next run
//! settles them the CRM's own way.
//!
//! The listener runs on a thread of its own, for the life of the process:
//! once the signals are caught they stay caught, so a command made of
//! several steps, each on its own runtime (`journeyd demo`), hears them
//! between and during every step alike.

use crate::sync::Shutdown;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// The process's one listener, once started.
static LISTENING: Mutex<Option<(Shutdown, Caught)>> = Mutex::new(None);

/// Listens for SIGINT and SIGTERM from now on (the first call starts the
/// listener; later calls share it); the receiver turns `true` at the first.
pub fn listen() -> std::io::Result<(Shutdown, Caught)> {
    let mut listening = LISTENING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((shutdown, caught)) = listening.as_ref() {
        return Ok((shutdown.clone(), caught.clone()));
    }
    let (stop, shutdown) = watch::channel(false);
    let caught = Caught::default();
    let seen = caught.0.clone();
    let (started, registered) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = started.send(Err(err));
                    return;
                }
            };
            runtime.block_on(async move {
                let streams = signal(SignalKind::interrupt())
                    .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)));
                let (mut interrupt, mut terminate) = match streams {
                    Ok(streams) => {
                        let _ = started.send(Ok(()));
                        streams
                    }
                    Err(err) => {
                        let _ = started.send(Err(err));
                        return;
                    }
                };
                loop {
                    let signo = tokio::select! {
                        Some(()) = interrupt.recv() => libc::SIGINT,
                        Some(()) = terminate.recv() => libc::SIGTERM,
                        else => return,
                    };
                    if seen.swap(signo, Ordering::SeqCst) != 0 {
                        // Asked twice: stop now, leaving what is in flight
                        // to the ledger.
                        std::process::exit(128 + signo);
                    }
                    tracing::warn!(
                        signal = signo,
                        "stopping at the next safe point (send it again to stop at once)"
                    );
                    stop.send_replace(true);
                }
            });
        })?;
    registered
        .recv()
        .map_err(|_| std::io::Error::other("the signal listener ended before it started"))??;
    *listening = Some((shutdown.clone(), caught.clone()));
    Ok((shutdown, caught))
}
