//! The `journeyd` binary: parse the command line, set up logging, run.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = journeyd::cli::args::Cli::parse();
    journeyd::telemetry::init();
    journeyd::cli::main(cli)
}
