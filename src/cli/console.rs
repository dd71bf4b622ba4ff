//! `journeyd console`: serves the web console over the state file until
//! SIGINT or SIGTERM, printing where.

use crate::cli::args::ConsoleArgs;
use crate::cli::commands::{Context, load_config, runtime};
use crate::cli::signals;
use crate::config::Config;
use crate::console::{self, Console};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(ctx: &Context, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    // Refuses a missing or outdated state file with the read-only
    // commands' words, before anything listens.
    drop(ctx.open_store_read_only(&config)?);
    let address = match args.listen.or(config.console.listen) {
        Some(address) => address,
        None => console::DEFAULT_LISTEN
            .parse::<SocketAddr>()
            .context("the default console address")?,
    };
    let state = ctx.state_path(&config).to_path_buf();
    serve(config, state, address)?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the console over `state` with `config` on `address` until
/// SIGINT or SIGTERM, having printed `console: http://ADDR/`.
pub fn serve(config: Config, state: PathBuf, address: SocketAddr) -> anyhow::Result<()> {
    let (shutdown, _caught) = signals::listen().context("could not listen for signals")?;
    let auth = config.console.auth.clone();
    let console = Console::new(Arc::new(config), state)?;
    runtime()?.block_on(async move {
        let listener = console::bind(address, &auth).await?;
        let bound = listener.local_addr().context("the console's address")?;
        println!("console: http://{bound}/ (Ctrl-C stops it)");
        let mut stop = shutdown;
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        console::serve(listener, console, stopped)
            .await
            .context("the console stopped")
    })
}
