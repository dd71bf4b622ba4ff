//! `journeyd demo`: the whole pipeline against an emulated HubSpot portal,
//! with no account and no network. The emulator serves a seeded portal of a
//! few thousand deals on 127.0.0.1 with HubSpot's paging, limits and error
//! bodies; the demo syncs it over real HTTP, audits it with the shipped
//! journey and config, and shows the violations and the write-back plan.
//! With `--apply` it writes the corrective tasks into the emulator and lists
//! them. Config and state live in a temporary directory, removed afterwards
//! unless `--keep` is given.

use crate::cli::args::{FilterArgs, ListArgs, SyncArgs, WritebackArgs};
use crate::cli::commands::{self, Context};
use crate::cli::output::table;
use crate::cli::{sync, violations, writeback};
use crate::secrets::SecretResolver;
use anyhow::Context as _;
use journeyd_hubspot::emulator::{EmulatorConfig, HubspotEmulator, ObjectType, SeedSizes};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DAEMON_CONFIG: &str = include_str!("../../config/journeyd.toml");
const JOURNEY: &str = include_str!("../../config/journey.toml");
const DEALS: usize = 2_000;
const TOKEN_VARIABLE: &str = "JOURNEYD_HUBSPOT_TOKEN";
/// The demo portal is a Professional account: 190 requests per 10 s.
const REQUESTS_PER_10S: u32 = 190;

pub fn run(json: bool, keep: bool, apply: bool) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("journeyd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let result = demo(&dir, json, apply);
    if keep {
        eprintln!("demo files kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn demo(dir: &Path, json: bool, apply: bool) -> anyhow::Result<ExitCode> {
    let emulator = HubspotEmulator::start(portal()).context("could not start the emulator")?;
    let config_path = write_config(dir, &emulator, apply)?;
    let token = emulator.private_app_token();
    let ctx = Context {
        config_path,
        state_override: Some(dir.join("state.sqlite")),
        json,
        // The emulator's token, handed over in memory: nothing to export.
        secrets: SecretResolver::new(
            move |name| (name == TOKEN_VARIABLE).then(|| OsString::from(&token)),
            None,
        ),
    };
    if !json {
        println!(
            "An emulated HubSpot portal is serving {DEALS} deals at {}",
            emulator.base_url()
        );
    }
    let hubspot = || Some("hubspot".to_owned());
    let steps: [(&str, &dyn Fn() -> anyhow::Result<ExitCode>); 5] = [
        (
            "sync the portal: owners, deals, contacts, companies",
            &|| {
                sync::run(
                    &ctx,
                    &SyncArgs {
                        connector: hubspot(),
                        full: true,
                        accept_mass_deletion: false,
                    },
                )
            },
        ),
        ("audit every record against the buyer journey", &|| {
            commands::audit(&ctx)
        }),
        ("the violations log, most severe first", &|| {
            violations::list_command(
                &ctx,
                &ListArgs {
                    filter: FilterArgs::default(),
                    limit: 10,
                },
            )
        }),
        ("stage KPIs", &|| commands::report(&ctx)),
        (
            if apply {
                "write-back: one corrective task per violation, written once"
            } else {
                "write-back plan (a dry run: nothing is written without --apply)"
            },
            &|| {
                writeback::run(
                    &ctx,
                    &WritebackArgs {
                        apply,
                        connector: hubspot(),
                    },
                )
            },
        ),
    ];
    for (title, step) in steps {
        if !json {
            println!("\n== {title}\n");
        }
        let code = step()?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    if !json {
        if apply {
            print_tasks(&emulator);
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

/// A portal of a few thousand deals, dated relative to now so that times
/// in stage are what they would be in a live portal.
fn portal() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        now: chrono::Utc::now(),
        sizes: SeedSizes {
            contacts: DEALS / 2,
            companies: DEALS / 4,
            ..SeedSizes::for_deals(DEALS)
        },
        ..EmulatorConfig::default()
    };
    config.knobs.limits.ten_secondly = Some(REQUESTS_PER_10S);
    config
}

/// The shipped config, pointed at the emulator, with write-back allowed when
/// `apply` (and a cap high enough for the whole portal).
fn write_config(dir: &Path, emulator: &HubspotEmulator, apply: bool) -> anyhow::Result<PathBuf> {
    let url = emulator.base_url();
    let mut config = DAEMON_CONFIG
        .replace(
            "# api_url = \"https://api.hubapi.com\"",
            &format!("api_url = \"{}\"", url.as_str().trim_end_matches('/')),
        )
        .replacen(
            "requests = 100\n",
            &format!("requests = {REQUESTS_PER_10S}\n"),
            1,
        );
    if apply {
        config = config
            .replace("mode = \"dry-run\"", "mode = \"apply\"")
            .replace("max_writes_per_run = 100 ", "max_writes_per_run = 10000 ");
    }
    anyhow::ensure!(
        config.contains(url.as_str().trim_end_matches('/')),
        "the shipped config no longer has the commented api_url line the demo points at the emulator"
    );
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
        Ok(path)
    };
    write("journey.toml", JOURNEY)?;
    write("journeyd.toml", &config)
}

/// The tasks the write-back created, as the portal now holds them.
fn print_tasks(emulator: &HubspotEmulator) {
    let tasks: Vec<_> = emulator
        .tasks()
        .into_iter()
        .filter(|task| {
            task.properties
                .get("hs_task_body")
                .is_some_and(|body| body.contains("journeyd-action: "))
        })
        .collect();
    println!(
        "\n== tasks now in the portal: {} created by journeyd\n",
        tasks.len()
    );
    let rows = tasks.iter().take(10).map(|task| {
        let property = |name: &str| task.properties.get(name).cloned().unwrap_or_default();
        let deals = task
            .associations
            .get(&ObjectType::Deals)
            .map(|ids| ids.join(","))
            .unwrap_or_default();
        vec![
            task.id.clone(),
            deals,
            property("hubspot_owner_id"),
            property("hs_task_priority"),
            property("hs_task_subject"),
        ]
    });
    println!(
        "{}",
        table(&["task", "deal", "owner", "priority", "subject"], rows)
    );
}
