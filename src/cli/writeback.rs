//! `journeyd writeback`: the corrective writes the open violations call for.
//! A dry run (the default) prints the plan and writes nothing to the CRM or
//! the ledger (the planner keeps only its notes of what it judged); `--apply`,
//! with `writeback.mode = "apply"` in the config, writes them and prints
//! what the CRM confirmed.

use crate::cli::EXIT_CONFIG;
use crate::cli::args::WritebackArgs;
use crate::cli::commands::{Context, load_config, runtime, select_connectors};
use crate::cli::output::{json, opt, table, text};
use crate::cli::signals;
use crate::config::WritebackMode;
use crate::connectors::AnyConnector;
use crate::secrets::RefreshTokenFile;
use crate::store::{RunStatus, StoreHandle};
use crate::writeback::{self, PlannedWrite, WritebackOptions, WritebackReport};
use anyhow::Context as _;
use chrono::Utc;
use journeyd_connector::ActionRequest;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(ctx: &Context, args: &WritebackArgs) -> anyhow::Result<ExitCode> {
    run_showing(ctx, args, usize::MAX)
}

/// As [`run`], with each connector's table cut to its first `rows` rows
/// (`journeyd demo` keeps to a screenful; `--json` still has them all).
pub fn run_showing(ctx: &Context, args: &WritebackArgs, rows: usize) -> anyhow::Result<ExitCode> {
    // Listening from the start: a signal that comes while the config loads
    // or the store opens stops the command before it writes, with its code.
    let runtime = runtime()?;
    let (shutdown, caught) = runtime
        .block_on(async { signals::listen() })
        .context("could not listen for SIGINT and SIGTERM")?;
    let config = load_config!(ctx);
    if args.apply && config.writeback.mode != WritebackMode::Apply {
        eprintln!(
            "error: --apply was given, but {} says `writeback.mode = \"dry-run\"`: set `mode = \"apply\"` in `[writeback]` to allow writes; nothing was written",
            config.path.display()
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let selected = select_connectors(&config, args.connector.as_deref())?;
    let store =
        StoreHandle::spawn(ctx.open_store(&config)?).context("could not start the store")?;
    let today = config.schedule.today(Utc::now());
    let secrets = &ctx.secrets;
    let tokens = Arc::new(RefreshTokenFile::beside(ctx.state_path(&config)));

    let reports = runtime.block_on(async {
        let mut reports = Vec::new();
        let mut built = Vec::new();
        if args.apply {
            // Every connector is built (and its secrets read) before any writes.
            for connector in &selected {
                let mut any = AnyConnector::build(connector, secrets, &tokens)?;
                any.stop_waits_on(&shutdown);
                built.push(any);
            }
        }
        for (index, connector) in selected.iter().enumerate() {
            if *shutdown.borrow() {
                break;
            }
            let options = WritebackOptions {
                connector,
                policy: &config.writeback,
                journey: &config.journey,
                today,
                batch: connector.connection.batch_limit(),
                shutdown: Some(&shutdown),
            };
            let report = match built.get(index) {
                Some(any) => any.writeback(&store, &options).await?,
                None => writeback::dry_run(&store, &options).await?,
            };
            reports.push(report);
        }
        Ok::<_, anyhow::Error>(reports)
    })?;

    if ctx.json {
        json(&reports)?;
    } else {
        for (index, report) in reports.iter().enumerate() {
            if index > 0 {
                println!();
            }
            if report.applied {
                print_applied(report, rows);
            } else {
                print_plan(
                    report,
                    config.writeback.max_writes_per_run.get(),
                    &config.writeback.mode,
                    rows,
                );
            }
        }
    }
    if let Some(code) = caught.exit_code() {
        eprintln!("write-back stopped by a signal; the writes not sent wait for the next run");
        return Ok(code);
    }
    let failed = reports.iter().any(|r| r.status == RunStatus::Failed);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn action(request: &ActionRequest) -> String {
    match request {
        ActionRequest::CreateTask { subject, due, .. } => format!("task \"{subject}\" due {due}"),
        ActionRequest::SetField {
            field,
            value,
            current,
            ..
        } => match current {
            Some(current) => format!("set {field}={value} (now {current})"),
            None => format!("set {field}={value}"),
        },
        ActionRequest::UpdateTask {
            task_id, subject, ..
        } => format!("update task {task_id} to \"{subject}\""),
        ActionRequest::CompleteTask { task_id, .. } => format!("complete task {task_id}"),
    }
}

fn plan_rows(writes: &[PlannedWrite]) -> impl Iterator<Item = Vec<String>> + '_ {
    writes.iter().map(|write| {
        let retry = if write.attempts > 0 {
            format!(" (retry {})", write.attempts + 1)
        } else {
            String::new()
        };
        let owner = match (&write.owner, &write.owner_id) {
            (Some(name), _) => name.clone(),
            (None, id) => opt(id.as_ref()),
        };
        vec![
            write.record.clone(),
            write.object.to_string(),
            format!("{}{retry}", action(&write.request)),
            owner,
            format!("{}: {}", write.rule, write.message),
        ]
    })
}

/// Says how many rows of a list were left out, if any.
fn print_more(total: usize, shown: usize, what: &str) {
    if total > shown {
        println!("... and {} more {what}", total - shown);
    }
}

fn print_plan(report: &WritebackReport, cap: u32, mode: &WritebackMode, rows: usize) {
    let plan = &report.plan;
    println!("{}: write-back plan (dry run)", report.connector);
    if !plan.writes.is_empty() {
        println!(
            "{}",
            table(
                &["RECORD", "OBJECT", "ACTION", "FOR", "WHY"],
                plan_rows(&plan.writes).take(rows)
            )
        );
        print_more(plan.writes.len(), rows, "planned");
    }
    for refused in plan.not_allowed.iter().take(rows) {
        println!(
            "not allowed: {} ({}): {}",
            text(&refused.record),
            refused.rule,
            text(&refused.reason)
        );
    }
    print_more(
        usize::try_from(plan.not_allowed_count).unwrap_or(usize::MAX),
        rows.min(plan.not_allowed.len()),
        "not allowed",
    );
    print_unassigned(report, rows);
    let counts = &report.counts;
    println!(
        "{} write(s) planned, {} already in the ledger, {} not allowed by the write-back policy",
        counts.planned, counts.known, counts.not_allowed
    );
    if counts.skipped_by_cap > 0 {
        println!(
            "{} more wait for a later run (max_writes_per_run = {cap})",
            counts.skipped_by_cap
        );
    }
    if plan.to_park_count > 0 {
        println!(
            "{} write(s) failed {} times and will be parked for an admin",
            plan.to_park_count,
            writeback::MAX_ATTEMPTS
        );
    }
    if counts.unconfirmed > 0 {
        println!(
            "{} earlier write(s) are unconfirmed: the next --apply checks them against the CRM first",
            counts.unconfirmed
        );
    }
    match mode {
        WritebackMode::Apply => println!("nothing was written: run with --apply to write"),
        WritebackMode::DryRun => println!(
            "nothing was written: writing needs `writeback.mode = \"apply\"` in the config and --apply"
        ),
    }
}

/// The tasks nobody can take, and why.
fn print_unassigned(report: &WritebackReport, rows: usize) {
    let plan = &report.plan;
    for entry in plan.unassigned.iter().take(rows) {
        println!(
            "no task for {} ({} {}): {}",
            text(&entry.record),
            entry.object,
            text(entry.record_id.as_str()),
            text(&entry.reason)
        );
    }
    print_more(
        usize::try_from(plan.unassigned_count).unwrap_or(usize::MAX),
        rows.min(plan.unassigned.len()),
        "without a task",
    );
}

fn print_applied(report: &WritebackReport, rows: usize) {
    println!("{}: write-back run {}", report.connector, opt(report.run));
    if !report.written.is_empty() {
        let lines = report.written.iter().map(|written| {
            let record = match &written.request {
                ActionRequest::CreateTask {
                    object, record_id, ..
                }
                | ActionRequest::SetField {
                    object, record_id, ..
                } => format!("{object} {record_id}"),
                ActionRequest::UpdateTask { task_id, .. }
                | ActionRequest::CompleteTask { task_id, .. } => format!("task {task_id}"),
            };
            vec![
                record,
                action(&written.request),
                written.crm_id.clone(),
                if written.recovered {
                    "found after a crash".to_owned()
                } else {
                    "written".to_owned()
                },
            ]
        });
        println!(
            "{}",
            table(&["RECORD", "ACTION", "CRM ID", "HOW"], lines.take(rows))
        );
        print_more(report.written.len(), rows, "written");
    }
    for refused in &report.refused {
        let then = if refused.parked {
            "parked for an admin"
        } else {
            "retried next run"
        };
        eprintln!(
            "{}: {} refused: {} ({then})",
            report.connector,
            refused.key,
            text(&refused.reason)
        );
    }
    print_unassigned(report, rows);
    let c = &report.counts;
    println!(
        "{} sent, {} applied, {} failed, {} parked, {} recovered; {} already in the ledger, {} not allowed by the policy",
        c.sent, c.applied, c.failed, c.parked, c.recovered, c.known, c.not_allowed
    );
    if c.unknown > 0 {
        println!(
            "{} write(s) got an answer that proves nothing: the next run settles them with the CRM before sending anything again",
            c.unknown
        );
    }
    if c.skipped_by_cap > 0 {
        println!(
            "{} more wait for the next run (max_writes_per_run)",
            c.skipped_by_cap
        );
    }
    if let Some(error) = &report.error {
        eprintln!("{}: {}", report.connector, text(error));
    }
}
