//! `journeyd demo`: the whole pipeline against three emulated CRMs at once,
//! a HubSpot portal, a Salesforce org and a Dynamics 365 environment, with
//! no account and no network. Each emulator serves a seeded CRM of one or
//! two thousand deals or opportunities on 127.0.0.1 with its CRM's paging,
//! limits, sign-in and error bodies; the demo syncs all three over real
//! HTTP, audits them in one run with the shipped journey and config, and
//! shows the violations and the write-back plan of each. With `--apply` it
//! writes the corrective tasks into each and lists them. Config and state
//! live in a temporary directory, removed afterwards unless `--keep` is
//! given.
//!
//! Map of the module: `config` edits the shipped config for the emulators;
//! `hubspot`, `salesforce` and `dynamics` start each emulator and show what
//! it holds.

mod config;
mod dynamics;
mod hubspot;
mod salesforce;

use crate::cli::args::{FilterArgs, ListArgs, ReportArgs, SortArg, SyncArgs, WritebackArgs};
use crate::cli::commands::{self, Context, load_config};
use crate::cli::output::json;
use crate::cli::{signals, sync, violations, writeback};
use crate::secrets::SecretResolver;
use crate::store::{ViolationFilter, ViolationStatus};
use anyhow::{Context as _, anyhow};
use journeyd_connector::ConnectorName;
use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::ExitCode;

/// The connectors of the shipped config the demo runs, in the order shown.
const CONNECTORS: [&str; 3] = ["dynamics", "hubspot", "salesforce"];
/// Rows of each long table shown: a screenful per connector.
const ROWS: usize = 10;

pub fn run(json: bool, keep: bool, apply: bool, console: bool) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("journeyd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut result = demo(&dir, json, apply);
    if console && matches!(result, Ok(ExitCode::SUCCESS)) {
        result = browse(&dir).map(|()| ExitCode::SUCCESS);
    }
    if keep {
        eprintln!("demo files kept in {}", dir.display());
        eprintln!(
            "browse them: journeyd console --config {} --state {}",
            dir.join("journeyd.toml").display(),
            dir.join("state.sqlite").display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Serves the console over the demo's files on a free loopback port.
fn browse(dir: &Path) -> anyhow::Result<()> {
    let config = crate::config::load(&dir.join("journeyd.toml"))
        .map_err(|errors| anyhow!("the demo's config does not load:\n{errors}"))?;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    crate::cli::console::serve(config, dir.join("state.sqlite"), address)
}

fn demo(dir: &Path, json: bool, apply: bool) -> anyhow::Result<ExitCode> {
    // Listening from the start and for every step: an interrupted demo
    // stops where it is and goes on with nothing.
    let (_, caught) = signals::listen().context("could not listen for SIGINT and SIGTERM")?;
    // Seeding is the emulators' own work and takes a while each: side by side.
    let (portal, org, environment) = std::thread::scope(|scope| {
        let portal = scope.spawn(hubspot::start);
        let org = scope.spawn(salesforce::start);
        let environment = scope.spawn(dynamics::start);
        let join = |name: &str| anyhow!("the {name} emulator panicked while starting");
        (
            portal.join().map_err(|_| join("HubSpot")),
            org.join().map_err(|_| join("Salesforce")),
            environment.join().map_err(|_| join("Dynamics 365")),
        )
    });
    let portal = portal?.context("could not start the HubSpot emulator")?;
    let org = org?.context("could not start the Salesforce emulator")?;
    let environment = environment?.context("could not start the Dynamics 365 emulator")?;
    if let Some(code) = stopped(&caught) {
        return Ok(code);
    }
    let trimmed = |url: url::Url| url.as_str().trim_end_matches('/').to_owned();
    let config_path = config::write(
        dir,
        &config::Targets {
            hubspot_url: trimmed(portal.base_url()),
            hubspot_token_variable: hubspot::TOKEN_VARIABLE,
            hubspot_requests_per_10s: hubspot::REQUESTS_PER_10S,
            hubspot_portal_id: portal.portal_id(),
            salesforce_login_url: trimmed(org.base_url()),
            salesforce_client_id: org.client_id(),
            salesforce_username: org.username(),
            salesforce_key_variable: salesforce::KEY_VARIABLE,
            dynamics_url: trimmed(environment.base_url()),
            dynamics_tenant: environment.tenant(),
            dynamics_client_id: environment.client_id(),
            dynamics_secret_variable: dynamics::SECRET_VARIABLE,
        },
        apply,
    )?;
    let token = portal.private_app_token();
    let client_secret = environment.client_secret();
    let ctx = Context {
        config_path,
        state_override: Some(dir.join("state.sqlite")),
        json,
        // The emulators' secrets, handed over in memory: nothing to export,
        // no key file.
        secrets: SecretResolver::new(
            move |name| match name {
                hubspot::TOKEN_VARIABLE => Some(OsString::from(&token)),
                salesforce::KEY_VARIABLE => Some(OsString::from(salesforce::private_key())),
                dynamics::SECRET_VARIABLE => Some(OsString::from(&client_secret)),
                _ => None,
            },
            None,
        ),
    };
    if !json {
        println!("{}", dynamics::describe(&environment));
        println!("{}", hubspot::describe(&portal));
        println!("{}", salesforce::describe(&org));
    }
    let steps: [(&str, &dyn Fn() -> anyhow::Result<ExitCode>); 5] = [
        (
            "sync every CRM: Dynamics users, teams, opportunities, accounts, contacts, leads; HubSpot owners, deals, contacts, companies; Salesforce users, opportunities, accounts, contacts, leads",
            &|| {
                sync::run(
                    &ctx,
                    &SyncArgs {
                        connector: None,
                        full: true,
                        accept_mass_deletion: false,
                    },
                )
            },
        ),
        (
            "audit every record of all three against the buyer journey",
            &|| commands::audit(&ctx, &crate::cli::args::AuditArgs { full: false }),
        ),
        ("the violations log, most severe first", &|| {
            violations_by_connector(&ctx)
        }),
        ("stage KPIs", &|| {
            commands::report(&ctx, &ReportArgs { html: None })
        }),
        (
            if apply {
                "write-back: one task per record listing what to fix, for its owner, written once, in each CRM"
            } else {
                "write-back plan per CRM (a dry run: nothing is written without --apply)"
            },
            &|| {
                writeback::run_showing(
                    &ctx,
                    &WritebackArgs {
                        apply,
                        connector: None,
                    },
                    ROWS,
                )
            },
        ),
    ];
    for (title, step) in steps {
        if !json {
            println!("\n== {title}\n");
        }
        let code = step()?;
        if let Some(code) = stopped(&caught) {
            return Ok(code);
        }
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    if !json {
        if apply {
            print_tasks("Dynamics environment", &dynamics::tasks(&environment));
            print_tasks("HubSpot portal", &hubspot::tasks(&portal));
            print_tasks("Salesforce org", &salesforce::tasks(&org));
        }
        println!(
            "\nNext: `journeyd violations show ID`, `violations ack ID --reason ...`, `violations export`{}.",
            if apply {
                ""
            } else {
                ", `journeyd demo --apply`"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a demo a signal stopped, said once.
fn stopped(caught: &signals::Caught) -> Option<ExitCode> {
    let code = caught.exit_code()?;
    eprintln!("demo stopped by a signal; nothing further was run");
    Some(code)
}

/// One of journeyd's tasks as a CRM holds it.
pub struct TaskRow {
    pub id: String,
    /// The record it is attached to.
    pub record: String,
    pub owner: String,
    pub priority: String,
    pub subject: String,
}

/// journeyd's tasks in one CRM: how many, on how many records, with how
/// many different subjects and how many without an owner (none, by
/// design), then the first rows.
fn print_tasks(crm: &str, tasks: &[TaskRow]) {
    let records: std::collections::BTreeSet<&str> =
        tasks.iter().map(|t| t.record.as_str()).collect();
    let subjects: std::collections::BTreeSet<&str> =
        tasks.iter().map(|t| t.subject.as_str()).collect();
    let unowned = tasks.iter().filter(|t| t.owner.is_empty()).count();
    println!(
        "\n== tasks now in the {crm}: {} created by journeyd, on {} records, with {} different subjects, {unowned} without an owner\n",
        tasks.len(),
        records.len(),
        subjects.len()
    );
    let lines = tasks.iter().take(ROWS).map(|task| {
        vec![
            task.id.clone(),
            task.record.clone(),
            task.owner.clone(),
            task.priority.clone(),
            task.subject.clone(),
        ]
    });
    println!(
        "{}",
        crate::cli::output::table(&["TASK", "RECORD", "OWNER", "PRIORITY", "SUBJECT"], lines)
    );
}

/// Each connector's open violations, most severe first: its count and its
/// first rows. With `--json`, one list holding each connector's first rows,
/// as `violations list --json` prints them.
fn violations_by_connector(ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let store = ctx.open_store_read_only(&config)?;
    let mut shown = Vec::new();
    for (index, name) in CONNECTORS.into_iter().enumerate() {
        let mut filter = ViolationFilter {
            statuses: vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            connector: Some(ConnectorName::new(name)),
            ..ViolationFilter::default()
        };
        if ctx.json {
            filter.limit = NonZeroUsize::new(ROWS);
            store.list_violations(&filter, |row| {
                shown.push(row);
                Ok::<_, crate::store::StoreError>(())
            })?;
            continue;
        }
        let open = store.count_violations(&filter)?;
        if index > 0 {
            println!();
        }
        println!(
            "{name}: {open} open violation(s); the {ROWS} most severe records, each with its violations:"
        );
        let code = violations::list_command(
            ctx,
            &ListArgs {
                filter: FilterArgs {
                    connector: Some(name.to_owned()),
                    ..FilterArgs::default()
                },
                limit: ROWS as u32,
                sort: SortArg::Severity,
            },
        )?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    if ctx.json {
        json(&shown)?;
    }
    Ok(ExitCode::SUCCESS)
}
