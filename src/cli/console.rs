//! `journeyd console`: serves the web console over the state file until
//! SIGINT or SIGTERM, printing where.

use crate::cli::args::{ConsoleArgs, ConsoleCommand, RoleArg, UserCommand};
use crate::cli::commands::{Context, load_config, runtime};
use crate::cli::signals;
use crate::config::{Config, ConsoleAuth};
use crate::console::users::{Role, Users};
use crate::console::{self, Console};
use anyhow::Context as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(ctx: &Context, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    if let Some(ConsoleCommand::User(UserCommand::Add { name, role })) = &args.command {
        add_user(&config, name, *role)?;
        return Ok(ExitCode::SUCCESS);
    }
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

/// Adds `name` to the users file, their password read from stdin.
fn add_user(config: &Config, name: &str, role: RoleArg) -> anyhow::Result<()> {
    let ConsoleAuth::Users(file) = &config.console.auth else {
        anyhow::bail!(
            "the config's [console] has no `auth = \"users\"` and `users_file`: set them first"
        );
    };
    if std::io::stdin().is_terminal() {
        eprint!("password for {name} (shown as typed): ");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("could not read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let role = match role {
        RoleArg::Admin => Role::Admin,
        RoleArg::Viewer => Role::Viewer,
    };
    Users::add(file, name, role, password)?;
    println!(
        "{name} may now sign in to the console as {} ({})",
        match role {
            Role::Admin => "an admin",
            Role::Viewer => "a viewer",
        },
        file.display()
    );
    Ok(())
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
