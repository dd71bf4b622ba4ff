//! `journeyd demo`: the whole pipeline on a sample HubSpot portal, with no
//! account and no network: the shipped config and journey, the sample
//! records (including three malformed lines), an import, an audit, the top
//! violations and the stage report. Everything lives in a temporary
//! directory that is removed afterwards unless `--keep` is given.

use crate::cli::args::{FilterArgs, ImportArgs, ListArgs};
use crate::cli::commands::{self, Context};
use crate::cli::violations;
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

const DAEMON_CONFIG: &str = include_str!("../../config/journeyd.toml");
const JOURNEY: &str = include_str!("../../config/journey.toml");
const SAMPLE: &str = include_str!("demo/hubspot-sample.jsonl");

pub fn run(json: bool, keep: bool) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("journeyd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let result = demo(&dir, json);
    if keep {
        eprintln!("demo files kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn demo(dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
        Ok(path)
    };
    let config_path = write("journeyd.toml", DAEMON_CONFIG)?;
    write("journey.toml", JOURNEY)?;
    let sample = write("hubspot-sample.jsonl", SAMPLE)?;
    let ctx = Context {
        config_path,
        state_override: Some(dir.join("state.sqlite")),
        json,
    };
    let steps: [(&str, &dyn Fn() -> anyhow::Result<ExitCode>); 4] = [
        ("import the sample HubSpot portal", &|| {
            commands::import(
                &ctx,
                &ImportArgs {
                    file: sample.clone(),
                    connector: Some("hubspot".into()),
                },
            )
        }),
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
        println!(
            "\nNext: `journeyd violations show ID`, `violations ack ID --reason ...`, `violations export`."
        );
    }
    Ok(ExitCode::SUCCESS)
}
