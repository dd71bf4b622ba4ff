//! `journeyd sync`: pull owners and records from each connector's CRM.
//!
//! Secrets are read and every connector built before any sync starts, so a
//! missing credential stops the command before it has done half the work.
//! SIGINT or SIGTERM stops each sync at its next page boundary, or in the
//! wait it is in (a backoff, the rate limit, a `Retry-After`), with its
//! cursor saved; the command then exits 130 or 143.

use crate::cli::args::SyncArgs;
use crate::cli::commands::{Context, load_config, runtime, select_connectors};
use crate::cli::output::{json, table, text};
use crate::cli::progress::sync_progress;
use crate::cli::signals;
use crate::config::ConnectorConfig;
use crate::connectors::AnyConnector;
use crate::secrets::RefreshTokenFile;
use crate::store::{RunStatus, StoreHandle};
use crate::sync::{SyncOptions, SyncSummary};
use anyhow::Context as _;
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;

/// A connector the command did not sync, and why.
#[derive(Debug, Serialize)]
struct NotSynced {
    connector: String,
    error: String,
}

pub fn run(ctx: &Context, args: &SyncArgs) -> anyhow::Result<ExitCode> {
    // Listening from the start: a signal that comes while the config loads
    // or the store opens stops the command before it syncs, with its code.
    let (shutdown, caught) =
        signals::listen().context("could not listen for SIGINT and SIGTERM")?;
    let config = load_config!(ctx);
    let selected = select_connectors(&config, args.connector.as_deref())?;
    let store =
        StoreHandle::spawn(ctx.open_store(&config)?).context("could not start the store")?;
    let secrets = &ctx.secrets;
    let tokens = Arc::new(RefreshTokenFile::beside(ctx.state_path(&config)));
    let options = SyncOptions {
        full: args.full,
        objects: None,
        accept_mass_deletion: args.accept_mass_deletion,
    };
    let progress = sync_progress();

    let (summaries, not_synced) = runtime()?.block_on(async {
        let mut built = Vec::new();
        let mut not_synced = Vec::new();
        for connector in &selected {
            match AnyConnector::build(connector, secrets, &tokens) {
                Ok(mut any) => {
                    any.stop_waits_on(&shutdown);
                    built.push((*connector, any));
                }
                Err(error) => not_synced.push(NotSynced {
                    connector: connector.name.to_string(),
                    error: format!("{:#}", anyhow::Error::new(error)),
                }),
            }
        }
        if !not_synced.is_empty() {
            return Ok::<_, anyhow::Error>((Vec::new(), not_synced));
        }
        let mut summaries = Vec::new();
        for (connector, any) in &built {
            if *shutdown.borrow() {
                break;
            }
            summaries.push(
                any.sync(&store, connector, &options, progress.as_ref(), &shutdown)
                    .await?,
            );
        }
        Ok((summaries, not_synced))
    })?;
    drop(progress);

    if ctx.json {
        json(&serde_json::json!({ "synced": summaries, "not_synced": not_synced }))?;
    } else {
        print(&summaries, &not_synced);
    }
    if let Some(code) = caught.exit_code() {
        eprintln!("sync stopped by a signal; the next sync resumes from the saved cursors");
        return Ok(code);
    }
    let failed = !not_synced.is_empty()
        || summaries.iter().any(|s| s.status == RunStatus::Failed)
        || (summaries.is_empty() && args.connector.is_none());
    if summaries.is_empty() && not_synced.is_empty() {
        eprintln!(
            "error: no configured connector can be synced yet (only `journeyd import` feeds {})",
            selected_names(&config.connectors)
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn selected_names(connectors: &[ConnectorConfig]) -> String {
    connectors
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print(summaries: &[SyncSummary], not_synced: &[NotSynced]) {
    for failure in not_synced {
        eprintln!("error: {}", text(&failure.error));
    }
    if !not_synced.is_empty() {
        eprintln!("nothing was synced");
        return;
    }
    let rows = summaries.iter().map(|s| {
        vec![
            s.connector.to_string(),
            s.status.to_string(),
            s.pages.to_string(),
            s.records_new.to_string(),
            s.records_changed.to_string(),
            s.records_unchanged.to_string(),
            s.skipped.to_string(),
            s.deleted.to_string(),
            s.owners.to_string(),
            s.ms.to_string(),
        ]
    });
    println!(
        "{}",
        table(
            &[
                "CONNECTOR",
                "STATUS",
                "PAGES",
                "NEW",
                "CHANGED",
                "UNCHANGED",
                "SKIPPED",
                "DELETED",
                "OWNERS",
                "MS"
            ],
            rows
        )
    );
    for summary in summaries {
        if let Some(error) = &summary.error {
            eprintln!("{}: {}", summary.connector, text(error));
        }
        if summary.skipped > 0 {
            eprintln!(
                "{}: {} item(s) could not be read and were skipped (each is in the log)",
                summary.connector, summary.skipped
            );
        }
    }
}
