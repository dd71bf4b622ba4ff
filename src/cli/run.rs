//! `journeyd run`: checks the config as `config check` does (and refuses to
//! start with the same problems), opens the state file, then hands over to
//! the service until it is stopped.

use crate::cli::commands::{Context, load_config, runtime};
use crate::service::daemon::{self, Service};
use crate::store::StoreHandle;
use anyhow::Context as _;
use std::process::ExitCode;

pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let state_path = ctx.state_path(&config).to_path_buf();
    let store =
        StoreHandle::spawn(ctx.open_store(&config)?).context("could not start the store")?;
    let service = Service {
        config_path: ctx.config_path.clone(),
        config,
        store,
        state_path,
        secrets: ctx.secrets.clone(),
    };
    runtime()?
        .block_on(daemon::run(service))
        .context("journeyd could not run")?;
    Ok(ExitCode::SUCCESS)
}
