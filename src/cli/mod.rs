//! The command line: parses nothing itself (see [`args`]), runs the command
//! asked for, and is the only code in journeyd that prints.

pub mod args;
mod commands;
pub(crate) mod console;
#[cfg(feature = "demo")]
mod demo;
mod output;
mod progress;
mod run;
mod signals;
mod sync;
mod violations;
mod writeback;

use args::{Cli, Command, ConfigCommand, JourneyCommand};
use std::process::ExitCode;

/// Exit code for an invalid config or command line.
pub const EXIT_CONFIG: u8 = 2;

/// Runs `cli` and turns the outcome into the process's exit code; errors are
/// printed with their whole chain of causes.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", output::text(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = commands::Context::new(&cli);
    match cli.command {
        Command::Config(ConfigCommand::Check) => commands::config_check(&ctx),
        Command::Journey(JourneyCommand::Show) => commands::journey_show(&ctx),
        Command::Import(args) => commands::import(&ctx, &args),
        Command::Sync(args) => sync::run(&ctx, &args),
        Command::Writeback(args) => writeback::run(&ctx, &args),
        Command::Audit(args) => commands::audit(&ctx, &args),
        Command::Report(args) => commands::report(&ctx, &args),
        Command::Console(args) => console::run(&ctx, &args),
        Command::Run => run::run(&ctx),
        #[cfg(feature = "demo")]
        Command::Demo {
            apply,
            keep,
            console,
        } => demo::run(ctx.json, keep, apply, console),
        Command::Violations(command) => violations::run(&ctx, command),
    }
}
