//! The commands other than `violations`: config check, journey show,
//! import, audit and report.

use crate::cli::EXIT_CONFIG;
use crate::cli::args::{AuditArgs, Cli, ImportArgs, ReportArgs};
use crate::cli::output::{json, opt, table, text};
use crate::config::{self, Config, ConnectorConfig};
use crate::secrets::SecretResolver;
use crate::store::{Store, StoreError};
use crate::{audit as audit_run, import as import_run, report as report_build};
use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What every command gets from the global options.
pub struct Context {
    pub config_path: PathBuf,
    pub state_override: Option<PathBuf>,
    pub json: bool,
    /// Where connectors' secrets come from: the process's environment and
    /// systemd credentials, or (in the demo) the emulator's own.
    pub secrets: SecretResolver,
}

impl Context {
    pub fn new(cli: &Cli) -> Self {
        Context {
            config_path: cli.config.clone(),
            state_override: cli.state.clone(),
            json: cli.json,
            secrets: SecretResolver::from_process(),
        }
    }

    /// Loads the config, or prints every problem and says which exit code to use.
    pub fn config(&self) -> Result<Config, ExitCode> {
        config::load(&self.config_path).map_err(|errors| {
            eprint!("{errors}");
            eprintln!(
                "error: {} problem(s) in the config; nothing was done",
                errors.diagnostics.len()
            );
            ExitCode::from(EXIT_CONFIG)
        })
    }

    pub fn state_path<'a>(&'a self, config: &'a Config) -> &'a Path {
        self.state_override.as_deref().unwrap_or(&config.state_path)
    }

    pub fn open_store(&self, config: &Config) -> anyhow::Result<Store> {
        let path = self.state_path(config);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("could not create the state directory {}", dir.display())
            })?;
        }
        let mut store = Store::open(path)
            .with_context(|| format!("could not open the state file {}", path.display()))?;
        store.set_timezone(config.schedule.timezone);
        // A run whose process was killed would say `running` forever.
        let marked = store
            .interrupt_orphaned_runs(crate::process::is_alive, Utc::now())
            .with_context(|| {
                format!(
                    "could not mark the interrupted runs in the state file {}",
                    path.display()
                )
            })?;
        for run in marked {
            tracing::warn!(
                run = run.id.0,
                kind = %run.kind,
                connector = run.connector.as_ref().map(|c| c.as_str()),
                "a run was left running by a process that is gone; marked interrupted"
            );
        }
        Ok(store)
    }

    /// The state file, for a command that only reads it: a missing file is
    /// not created and an older one not migrated; the error says which
    /// command makes it readable.
    pub fn open_store_read_only(&self, config: &Config) -> anyhow::Result<Store> {
        let path = self.state_path(config);
        let mut store = Store::open_read_only(path).map_err(|error| match error {
            StoreError::Missing { .. } => anyhow!(
                "there is no state file at {}: run `journeyd sync` (or `journeyd import`) first; this command only reads it",
                path.display()
            ),
            StoreError::Outdated { found, latest, .. } => anyhow!(
                "the state file {} has schema version {found}, older than this journeyd's {latest}: `journeyd sync` (or `journeyd audit`) migrates it; this command only reads it",
                path.display()
            ),
            error => anyhow::Error::new(error)
                .context(format!("could not open the state file {}", path.display())),
        })?;
        store.set_timezone(config.schedule.timezone);
        Ok(store)
    }
}

/// Loads the config or returns early from the command with its exit code.
macro_rules! load_config {
    ($ctx:expr) => {
        match $ctx.config() {
            Ok(config) => config,
            Err(code) => return Ok(code),
        }
    };
}
pub(crate) use load_config;

pub fn config_check(ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    #[derive(Serialize)]
    struct Checked<'a> {
        config: &'a Path,
        state_path: &'a Path,
        stages: usize,
        connectors: Vec<String>,
        custom_rules: usize,
        writeback: &'static str,
        tasks: &'static str,
        /// Per connector: how a write is kept from being made twice.
        write_guarantees: BTreeMap<String, config::WriteGuarantee>,
    }
    let checked = Checked {
        config: &config.path,
        state_path: ctx.state_path(&config),
        stages: config.journey.stages.len(),
        connectors: config
            .connectors
            .iter()
            .map(|c| c.name.to_string())
            .collect(),
        custom_rules: config.custom_rules.len(),
        writeback: match config.writeback.mode {
            config::WritebackMode::DryRun => "dry-run",
            config::WritebackMode::Apply => "apply",
        },
        tasks: config.writeback.tasks.as_str(),
        write_guarantees: config
            .connectors
            .iter()
            .map(|c| (c.name.to_string(), c.connection.write_guarantee()))
            .collect(),
    };
    if ctx.json {
        json(&checked)?;
    } else {
        println!(
            "{}: ok ({} stages, connectors: {}, {} custom rules, write-back {}, state in {})",
            checked.config.display(),
            checked.stages,
            checked.connectors.join(", "),
            checked.custom_rules,
            checked.writeback,
            checked.state_path.display()
        );
        for (connector, guarantee) in &checked.write_guarantees {
            let kind = match guarantee.kind {
                "by_construction" => "exactly once by construction",
                _ => "exactly once by lookup",
            };
            println!(
                "write-back to {connector} (one task per {}): {kind}: {}",
                checked.tasks.trim_start_matches("per_"),
                guarantee.how
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn journey_show(ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let journey = &config.journey;
    if ctx.json {
        #[derive(Serialize)]
        struct StageView<'a> {
            id: &'a str,
            name: &'a str,
            owner_role: &'a str,
            max_days: Option<u32>,
            exit_criteria: BTreeMap<&'a str, &'a str>,
            handoff_fields: &'a [String],
        }
        let stages: Vec<StageView<'_>> = journey
            .stages
            .iter()
            .map(|s| StageView {
                id: s.id.as_str(),
                name: &s.name,
                owner_role: s.owner_role.as_str(),
                max_days: s.max_days,
                exit_criteria: s
                    .exit_criteria
                    .iter()
                    .map(|c| (c.name.as_str(), c.expr.source()))
                    .collect(),
                handoff_fields: &s.handoff_fields,
            })
            .collect();
        json(&serde_json::json!({ "name": journey.name, "stages": stages }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", journey.name);
    let rows = journey.stages.iter().enumerate().map(|(i, s)| {
        vec![
            (i + 1).to_string(),
            s.id.to_string(),
            s.name.clone(),
            s.owner_role.to_string(),
            opt(s.max_days),
            s.exit_criteria
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            s.handoff_fields.join(", "),
        ]
    });
    println!(
        "{}",
        table(
            &[
                "#",
                "STAGE",
                "NAME",
                "OWNER ROLE",
                "MAX DAYS",
                "EXIT CRITERIA",
                "HANDOFF FIELDS"
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The connector named on the command line, or every configured one.
pub fn select_connectors<'c>(
    config: &'c Config,
    name: Option<&str>,
) -> anyhow::Result<Vec<&'c ConnectorConfig>> {
    match name {
        Some(name) => config
            .connectors
            .iter()
            .find(|c| c.name.as_str() == name)
            .map(|c| vec![c])
            .ok_or_else(|| anyhow!("no connector `{name}` in {}", config.path.display())),
        None if config.connectors.is_empty() => {
            bail!("{} configures no connector", config.path.display())
        }
        None => Ok(config.connectors.iter().collect()),
    }
}

/// The async runtime of a command that talks to a CRM.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

pub fn import(ctx: &Context, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let named = args.connector.as_deref();
    if let Some(name) = named
        && !config.connectors.iter().any(|c| c.name.as_str() == name)
    {
        // Refused before the state file is touched.
        let error = import_run::choose_connector(&config.connectors, named, None)
            .expect_err("the connector is not configured");
        eprintln!("error: {error}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let mut store = ctx.open_store(&config)?;
    let outcome = if args.file.as_os_str() == "-" {
        import_run::import(
            &mut store,
            &config.connectors,
            named,
            std::io::stdin().lock(),
            Utc::now(),
        )
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("could not open {}", args.file.display()))?;
        import_run::import(
            &mut store,
            &config.connectors,
            named,
            BufReader::new(file),
            Utc::now(),
        )
    };
    let (connector, summary) = match outcome {
        Ok(imported) => imported,
        Err(error) if error.is_connector_choice() => {
            eprintln!(
                "error: {}: {}; nothing was imported",
                args.file.display(),
                text(&error.to_string())
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("import of {} stopped", args.file.display())));
        }
    };
    if ctx.json {
        json(&summary)?;
    } else {
        for skipped in &summary.skipped {
            eprintln!(
                "{}:{}: skipped: {}",
                args.file.display(),
                skipped.line,
                text(&skipped.reason)
            );
        }
        let r = &summary.records;
        println!(
            "imported into {}: {} records ({} new, {} updated, {} unchanged), {} owners; {} line(s) skipped",
            connector.name,
            r.total(),
            r.inserted,
            r.updated,
            r.unchanged,
            summary.owners,
            summary.skipped.len()
        );
    }
    Ok(if summary.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn audit(ctx: &Context, args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let mut store = ctx.open_store(&config)?;
    let path = ctx.state_path(&config);
    let reader = Store::open_reader(path)
        .with_context(|| format!("could not open the state file {} to read", path.display()))?;
    // SIGINT or SIGTERM stops the audit after the chunk in hand: the run is
    // recorded interrupted, having resolved nothing.
    let runtime = runtime()?;
    let (shutdown, caught) = runtime
        .block_on(async { super::signals::listen() })
        .context("could not listen for signals")?;
    let stop = || *shutdown.borrow();
    let depth = if args.full {
        audit_run::Depth::Full
    } else {
        audit_run::Depth::Changed
    };
    let summary = audit_run::run(&mut store, &reader, &config, depth, Utc::now(), &stop)?;
    if let Some(code) = caught.exit_code() {
        eprintln!(
            "audit run {} stopped after {} records; nothing was resolved (the records not judged stay queued for the next audit)",
            summary.run, summary.records
        );
        return Ok(code);
    }
    let by_rule_stage = store.run_summary(crate::store::RunId(summary.run))?;
    if ctx.json {
        json(&serde_json::json!({ "summary": summary, "by_rule_and_stage": by_rule_stage }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let judged = if summary.whole.is_empty() {
        "those changed since the last audit".to_owned()
    } else {
        let whole: Vec<&str> = summary.whole.iter().map(|c| c.as_str()).collect();
        format!("every record of {}", whole.join(", "))
    };
    println!(
        "audit run {}: {} records judged ({judged}), {} violations found on them: {} new, {} reopened, {} resolved, {} back from suppression ({} ms)",
        summary.run,
        summary.records,
        summary.violations,
        summary.chunks.new,
        summary.chunks.reopened,
        summary.finish.resolved,
        summary.finish.unsuppressed,
        summary.ms
    );
    if summary.expression_errors > 0 {
        eprintln!(
            "warning: {} criterion or rule evaluations failed (counted as unmet); first ones:",
            summary.expression_errors
        );
        for sample in &summary.expression_error_samples {
            eprintln!("  {}", text(sample));
        }
    }
    let rows = by_rule_stage.iter().map(|row| {
        vec![
            row.rule.to_string(),
            opt(row.stage.as_ref()),
            row.new.to_string(),
            row.open.to_string(),
            row.acknowledged.to_string(),
            row.suppressed.to_string(),
            row.resolved.to_string(),
        ]
    });
    println!(
        "{}",
        table(
            &[
                "RULE",
                "STAGE",
                "NEW",
                "OPEN",
                "ACKNOWLEDGED",
                "SUPPRESSED",
                "RESOLVED THIS RUN"
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub fn report(ctx: &Context, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let store = ctx.open_store_read_only(&config)?;
    if let Some(path) = &args.html {
        let page = crate::console::overview_file(&store, &config)?;
        std::fs::write(path, page)
            .with_context(|| format!("could not write {}", path.display()))?;
        eprintln!("wrote the overview to {}", path.display());
    }
    let report = report_build::build(&store, &config.journey)?;
    if ctx.json {
        json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = report.stages.iter().map(|s| {
        vec![
            s.stage.to_string(),
            s.owner_role.to_string(),
            s.records.to_string(),
            s.reached.to_string(),
            s.conversion
                .map_or_else(|| "-".into(), |c| format!("{:.0}%", c * 100.0)),
            opt(s.days_median),
            opt(s.days_p90),
            s.stalled.to_string(),
            s.violations.to_string(),
        ]
    });
    println!(
        "{}",
        table(
            &[
                "STAGE",
                "OWNER ROLE",
                "RECORDS",
                "REACHED",
                "TO NEXT",
                "MEDIAN DAYS",
                "P90 DAYS",
                "STALLED",
                "VIOLATIONS"
            ],
            rows
        )
    );
    println!("\nOpen violations by rule");
    println!(
        "{}",
        table(
            &["RULE", "OPEN"],
            report
                .by_rule
                .iter()
                .map(|(rule, n)| vec![rule.clone(), n.to_string()])
        )
    );
    println!("\nOpen violations by owner");
    println!(
        "{}",
        table(
            &["CONNECTOR", "OWNER", "ROLE", "OPEN"],
            report.by_owner.iter().take(20).map(|o| {
                vec![
                    o.connector.to_string(),
                    // By name; by id where the owners table does not hold them.
                    opt(o
                        .owner_name
                        .as_deref()
                        .or(o.owner_id.as_ref().map(|id| id.as_str()))),
                    opt(o.owner_role.as_ref()),
                    o.count.to_string(),
                ]
            })
        )
    );
    Ok(ExitCode::SUCCESS)
}
