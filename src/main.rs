//! The `journeyd` binary: parse the command line, set up logging, run.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = journeyd::cli::args::Cli::parse();
    journeyd::telemetry::init();
    journeyd::cli::main(cli)
}

/// Rust ignores SIGPIPE, so `journeyd violations list | head` would panic on
/// the closed pipe; a command-line tool should just stop, as `cat` does.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; setting
    // a signal's disposition to the default has no other precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
