//! `journeyd violations`: list, show, acknowledge, suppress, reopen, export.

use crate::cli::EXIT_CONFIG;
use crate::cli::args::{
    AdminArgs, ExportFormat, FilterArgs, ListArgs, SeverityArg, SortArg, StatusArg,
    ViolationsCommand,
};
use crate::cli::commands::{Context, load_config};
use crate::cli::output::{json, opt, table, text};
use crate::config::Config;
use crate::export::{self, Format};
use crate::journey::StageId;
use crate::log_entries::entries;
use crate::rules::{BuiltinRule, RuleId, Severity};
use crate::store::{FilterColumn, Sort, Store, ViolationFilter, ViolationRow, ViolationStatus};
use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;
use journeyd_connector::{ConnectorName, OwnerId};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::process::ExitCode;

pub fn run(ctx: &Context, command: ViolationsCommand) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    match command {
        ViolationsCommand::List(args) => {
            let store = ctx.open_store_read_only(&config)?;
            return list_in(ctx, &config, &store, &args);
        }
        ViolationsCommand::Show { id } => {
            let store = ctx.open_store_read_only(&config)?;
            show(ctx, &store, &id)?;
        }
        ViolationsCommand::Ack(admin) => {
            let mut store = ctx.open_store(&config)?;
            let row = find(&store, &admin.id)?;
            let (by, reason) = who_why(&admin)?;
            store.acknowledge(row.id, &by, &reason, Utc::now())?;
            done(ctx, &store, row, "acknowledged")?;
        }
        ViolationsCommand::Suppress { admin, until } => {
            let mut store = ctx.open_store(&config)?;
            let row = find(&store, &admin.id)?;
            let (by, reason) = who_why(&admin)?;
            store.suppress(row.id, &by, &reason, until, Utc::now())?;
            done(ctx, &store, row, "suppressed")?;
        }
        ViolationsCommand::Reopen(admin) => {
            let mut store = ctx.open_store(&config)?;
            let row = find(&store, &admin.id)?;
            let (by, reason) = who_why(&admin)?;
            store.reopen(row.id, &by, &reason, Utc::now())?;
            done(ctx, &store, row, "reopened")?;
        }
        ViolationsCommand::Export {
            format,
            output,
            filter: args,
        } => {
            let store = ctx.open_store_read_only(&config)?;
            if let Some(code) = refuse_unknown_values(&config, &store, &args)? {
                return Ok(code);
            }
            let format = match format {
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Json => Format::Json,
                ExportFormat::Jsonl => Format::JsonLines,
            };
            let filter = filter(&args);
            let count = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("could not create {}", path.display()))?;
                    export::export(&store, &filter, format, file)?
                }
                None => export::export(&store, &filter, format, std::io::stdout().lock())?,
            };
            if let Some(path) = output {
                eprintln!("exported {count} violation(s) to {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `violations list`, for callers that have their arguments already.
#[cfg(feature = "demo")]
pub fn list_command(ctx: &Context, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let config = load_config!(ctx);
    let store = ctx.open_store_read_only(&config)?;
    list_in(ctx, &config, &store, args)
}

fn list_in(
    ctx: &Context,
    config: &Config,
    store: &Store,
    args: &ListArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(code) = refuse_unknown_values(config, store, &args.filter)? {
        return Ok(code);
    }
    let mut filter = filter(&args.filter);
    filter.limit = NonZeroUsize::new(args.limit as usize);
    filter.sort = match args.sort {
        SortArg::Severity => Sort::Severity,
        SortArg::Newest => Sort::Newest,
        SortArg::Oldest => Sort::Oldest,
    };
    list(ctx, config, store, &filter)?;
    Ok(ExitCode::SUCCESS)
}

/// At most this many valid values are named when a filter's is unknown.
const VALUES_NAMED: usize = 50;

/// A `--rule`, `--stage`, `--owner` or `--connector` that no violation can
/// have is a mistake, not an empty answer: says so, naming the values that
/// could be meant (the config's and those the log holds), and returns the
/// command line's exit code.
fn refuse_unknown_values(
    config: &Config,
    store: &Store,
    args: &FilterArgs,
) -> anyhow::Result<Option<ExitCode>> {
    let mut problems = Vec::new();
    if let Some(rule) = &args.rule {
        let mut valid: BTreeSet<String> = BuiltinRule::ALL
            .iter()
            .map(|r| r.id().to_string())
            .chain(config.custom_rules.iter().map(|r| r.id.to_string()))
            .collect();
        // The log is read only for a value the config does not name.
        if !valid.contains(rule) {
            valid.extend(store.violation_values(FilterColumn::Rule)?);
        }
        if !valid.contains(rule) {
            problems.push(unknown("--rule", rule, "rules", valid));
        }
    }
    if let Some(stage) = &args.stage {
        let mut valid: BTreeSet<String> = config
            .journey
            .stages
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        if !valid.contains(stage) {
            valid.extend(store.violation_values(FilterColumn::Stage)?);
        }
        if !valid.contains(stage) {
            problems.push(unknown("--stage", stage, "stages", valid));
        }
    }
    if let Some(connector) = &args.connector {
        let mut valid: BTreeSet<String> = config
            .connectors
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        if !valid.contains(connector) {
            valid.extend(store.violation_values(FilterColumn::Connector)?);
        }
        if !valid.contains(connector) {
            problems.push(unknown("--connector", connector, "connectors", valid));
        }
    }
    if let Some(owner) = &args.owner {
        // Owner ids, each with its name where the store knows the owner.
        let mut valid: BTreeMap<String, Option<String>> = store
            .violation_values(FilterColumn::Owner)?
            .into_iter()
            .map(|id| (id, None))
            .collect();
        for connector in &config.connectors {
            for known in store.owners(&connector.name)? {
                valid.insert(known.id.to_string(), Some(known.name));
            }
        }
        if !valid.contains_key(owner) {
            let named = valid.into_iter().map(|(id, name)| match name {
                Some(name) => format!("{id} ({name})"),
                None => id,
            });
            problems.push(unknown("--owner", owner, "owners", named));
        }
    }
    if problems.is_empty() {
        return Ok(None);
    }
    for problem in problems {
        eprintln!("error: {}", text(&problem));
    }
    Ok(Some(ExitCode::from(EXIT_CONFIG)))
}

fn unknown(flag: &str, value: &str, what: &str, valid: impl IntoIterator<Item = String>) -> String {
    let valid: Vec<String> = valid.into_iter().collect();
    if valid.is_empty() {
        return format!("unknown {flag} `{value}`: there are no {what} to filter by yet");
    }
    let mut named = valid
        .iter()
        .take(VALUES_NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if valid.len() > VALUES_NAMED {
        named.push_str(&format!(" and {} more", valid.len() - VALUES_NAMED));
    }
    format!("unknown {flag} `{value}`: the {what} are {named}")
}

/// Without `--status`, the list shows what needs attention: open and
/// acknowledged violations.
fn filter(args: &FilterArgs) -> ViolationFilter {
    let statuses = if args.status.contains(&StatusArg::All) {
        Vec::new()
    } else if args.status.is_empty() {
        vec![ViolationStatus::Open, ViolationStatus::Acknowledged]
    } else {
        args.status
            .iter()
            .map(|s| match s {
                StatusArg::Open | StatusArg::All => ViolationStatus::Open,
                StatusArg::Acknowledged => ViolationStatus::Acknowledged,
                StatusArg::Suppressed => ViolationStatus::Suppressed,
                StatusArg::Resolved => ViolationStatus::Resolved,
            })
            .collect()
    };
    ViolationFilter {
        statuses,
        rule: args.rule.as_deref().map(RuleId::new),
        stage: args.stage.as_deref().map(StageId::new),
        owner_id: args.owner.as_deref().map(OwnerId::new),
        connector: args.connector.as_deref().map(ConnectorName::new),
        since: args
            .since
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()),
        min_severity: args.severity.map(|s| match s {
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
        }),
        ..ViolationFilter::default()
    }
}

/// The table lists records, most severe first (or as `--sort` says), each
/// with the violations of it the filter selects as entries (one per
/// missing fact: ids and rules joined by `+`); `--limit` counts records.
/// `--json` gives the rows as they are, `--limit` of them, in the list's
/// order.
fn list(
    ctx: &Context,
    config: &Config,
    store: &Store,
    filter: &ViolationFilter,
) -> anyhow::Result<()> {
    let owners = store.owner_directory()?;
    if ctx.json {
        let mut rows = Vec::new();
        store.list_violations(filter, |row| {
            rows.push(row);
            Ok::<_, crate::store::StoreError>(())
        })?;
        let named: Vec<Named<'_>> = rows.iter().map(|row| Named::of(row, &owners)).collect();
        return json(&named);
    }
    let records = filter.limit.unwrap_or(NonZeroUsize::MIN);
    let groups = store.list_by_record(filter, records)?.groups;
    let mut lines = Vec::new();
    let mut shown = 0;
    for group in &groups {
        shown += group.rows.len();
        for entry in entries(&config.journey, &group.rows) {
            let v = &entry.first().violation;
            lines.push(vec![
                entry.id_label(),
                entry.severity().to_string(),
                entry.status().as_str().to_owned(),
                entry.rules(),
                opt(v.stage.as_ref()),
                format!("{} {} {}", v.connector, v.object, v.record_id),
                owner_name(&owners, v),
                entry.message(),
            ]);
        }
    }
    println!(
        "{}",
        table(
            &[
                "ID", "SEVERITY", "STATUS", "RULE", "STAGE", "RECORD", "OWNER", "MESSAGE"
            ],
            lines
        )
    );
    let total = store.count_violations(&ViolationFilter {
        limit: None,
        ..filter.clone()
    })?;
    eprintln!(
        "{shown} of {total} violation(s), on {} record(s)",
        groups.len()
    );
    Ok(())
}

/// A violation as `--json` prints it: its row, and its owner's name
/// beside the id (`null` where the owners table does not hold them).
#[derive(serde::Serialize)]
struct Named<'a> {
    #[serde(flatten)]
    row: &'a ViolationRow,
    owner_name: Option<&'a str>,
}

impl<'a> Named<'a> {
    fn of(row: &'a ViolationRow, owners: &'a crate::store::OwnerDirectory) -> Named<'a> {
        let owner_name = row.violation.owner_id.as_ref().and_then(|id| {
            owners
                .get(&(row.violation.connector.clone(), id.clone()))
                .map(|owner| owner.name.as_str())
        });
        Named { row, owner_name }
    }
}

/// The accountable owner by name, as the owners table has it; the id
/// where it does not hold the owner.
fn owner_name(owners: &crate::store::OwnerDirectory, v: &crate::rules::Violation) -> String {
    let Some(id) = &v.owner_id else {
        return opt(None::<&str>);
    };
    let known = owners.get(&(v.connector.clone(), id.clone()));
    opt(Some(known.map_or(id.as_str(), |owner| owner.name.as_str())))
}

fn find(store: &Store, id: &str) -> anyhow::Result<ViolationRow> {
    store.violation(id)?.ok_or_else(|| {
        anyhow!("no violation `{id}` (give its id or a fingerprint of 6+ characters)")
    })
}

fn show(ctx: &Context, store: &Store, id: &str) -> anyhow::Result<()> {
    let row = find(store, id)?;
    let events = store.violation_events(row.id)?;
    if ctx.json {
        let owners = store.owner_directory()?;
        return json(&serde_json::json!({
            "violation": Named::of(&row, &owners),
            "events": events
        }));
    }
    let fields = [
        ("id", row.id.to_string()),
        ("fingerprint", row.violation.fingerprint.to_string()),
        ("status", row.status.as_str().to_owned()),
        ("severity", row.violation.severity.to_string()),
        ("rule", row.violation.rule.to_string()),
        ("stage", opt(row.violation.stage.as_ref())),
        (
            "record",
            format!(
                "{} {} {} {}",
                row.violation.connector,
                row.violation.object,
                row.violation.record_id,
                row.violation.record_name.clone().unwrap_or_default()
            ),
        ),
        ("link", opt(row.violation.record_url.as_ref())),
        (
            "owner",
            format!(
                "{} ({}) {}",
                owner_name(&store.owner_directory()?, &row.violation),
                opt(row.violation.owner_role.as_ref()),
                opt(row.violation.owner_id.as_ref())
            ),
        ),
        ("message", row.violation.message.clone()),
        ("action", serde_json::to_string(&row.violation.action)?),
        ("first seen", row.first_seen.to_rfc3339()),
        ("last seen", row.last_seen.to_rfc3339()),
        ("suppressed until", opt(row.suppressed_until)),
    ];
    for (name, value) in fields {
        println!("{name:>16}: {}", text(&value));
    }
    println!("\nHistory");
    let lines = events.iter().map(|e| {
        vec![
            e.at.to_rfc3339(),
            e.actor.clone(),
            e.kind.as_str().to_owned(),
            format!(
                "{} -> {}",
                e.from_status.map_or("-", |s| s.as_str()),
                e.to_status.as_str()
            ),
            opt(e.reason.as_ref()),
        ]
    });
    println!(
        "{}",
        table(&["AT", "BY", "EVENT", "STATUS", "REASON"], lines)
    );
    Ok(())
}

fn who_why(admin: &AdminArgs) -> anyhow::Result<(String, String)> {
    if admin.reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let by = admin
        .by
        .clone()
        .filter(|by| !by.trim().is_empty())
        .unwrap_or_else(crate::process::os_user);
    Ok((by, admin.reason.clone()))
}

fn done(ctx: &Context, store: &Store, before: ViolationRow, what: &str) -> anyhow::Result<()> {
    let after = store.violation_by_id(before.id)?.unwrap_or(before);
    if ctx.json {
        return json(&after);
    }
    println!(
        "violation {} {what}: {}",
        after.id,
        text(&after.violation.message)
    );
    Ok(())
}
