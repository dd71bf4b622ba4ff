//! The command line, as clap definitions. Nothing here runs anything.

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// journeyd keeps an existing CRM honest about the customer journey.
///
/// Exit codes: 0 success; 1 the command failed (store, file, an import
/// that skipped a line, unknown violation); 2 the config is invalid or the
/// command line is wrong.
#[derive(Debug, Parser)]
#[command(name = "journeyd", version, about, long_about)]
pub struct Cli {
    /// The daemon config file.
    #[arg(
        long,
        global = true,
        env = "JOURNEYD_CONFIG",
        default_value = "/etc/journeyd/journeyd.toml"
    )]
    pub config: PathBuf,

    /// Use this state file instead of the config's `state_path`
    /// (to audit an export offline without touching the daemon's state).
    #[arg(long, global = true, env = "JOURNEYD_STATE")]
    pub state: Option<PathBuf>,

    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config files and print every problem with file:line:col.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show the journey definition.
    #[command(subcommand)]
    Journey(JourneyCommand),
    /// Import canonical records and owners from a JSONL file.
    Import(ImportArgs),
    /// Pull owners and records from the CRMs into the state file: what
    /// changed since the last sync, or everything with --full.
    Sync(SyncArgs),
    /// Show the corrective writes the violations call for; with --apply
    /// (and `writeback.mode = "apply"`), write them to the CRM.
    Writeback(WritebackArgs),
    /// Judge the stored records that changed since the last audit (every
    /// record the first time, or after the config or owners changed) and
    /// update the violations log; with --full, every record.
    Audit(AuditArgs),
    /// Review the violations log.
    #[command(subcommand)]
    Violations(ViolationsCommand),
    /// Stage KPIs: conversion, time in stage, stalled records, violations.
    Report(ReportArgs),
    /// Serve the web console: the violations log, records, owners, the
    /// journey and runs as pages in a browser, until Ctrl-C or SIGTERM.
    Console(ConsoleArgs),
    /// Run as a service: each connector's sync and the nightly audit on the
    /// config's schedule, until SIGTERM (SIGHUP reloads the config).
    Run,
    /// Run the whole pipeline on an emulated HubSpot portal, Salesforce org
    /// and Dynamics 365 environment: no account, no network.
    #[cfg(feature = "demo")]
    Demo {
        /// Write the corrective tasks into each emulated CRM and list them.
        #[arg(long)]
        apply: bool,
        /// Keep the demo's config and state file instead of removing them.
        #[arg(long)]
        keep: bool,
        /// Then serve the web console over the demo's state on a free
        /// loopback port, printing its URL, until Ctrl-C.
        #[arg(long)]
        console: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate journeyd.toml and the journey it names.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum JourneyCommand {
    /// Print the stages, their owners, criteria and limits.
    Show,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSONL file (`-` for standard input).
    pub file: PathBuf,
    /// The connector the records belong to: a configured connector of the
    /// file's CRM (its first record's `system`); may be left out when the
    /// config has exactly one of that CRM.
    #[arg(long)]
    pub connector: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Also write the console's overview to FILE, as one self-contained
    /// HTML page (its style and charts inside) to mail around.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleArgs {
    /// Where to listen (default: the config's `[console] listen`, else
    /// 127.0.0.1:8788; port 0 picks a free one); off loopback only with
    /// the config's `auth = "users"` or `"proxy"`.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub command: Option<ConsoleCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// The console's own users (`[console] auth = "users"`).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to the config's `users_file`, or give them a new role
    /// and password; the password is the first line of standard input.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Views and acts: acknowledges, suppresses, reopens.
    Admin,
    /// Views only.
    Viewer,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Judge every stored record, not only those that changed.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this connector (default: every configured connector whose CRM
    /// journeyd can reach).
    #[arg(long)]
    pub connector: Option<String>,
    /// Read every record, not only what changed, and mark the records the
    /// CRM deleted.
    #[arg(long)]
    pub full: bool,
    /// Let a full sync mark deleted more than half of an object kind's
    /// records when the CRM no longer returns them (refused otherwise, as
    /// lost read access looks the same).
    #[arg(long, requires = "full")]
    pub accept_mass_deletion: bool,
}

#[derive(Debug, Args)]
pub struct WritebackArgs {
    /// Write to the CRM (the config's `writeback.mode` must be "apply" too).
    #[arg(long)]
    pub apply: bool,
    /// Only this connector (default: every configured connector).
    #[arg(long)]
    pub connector: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ViolationsCommand {
    /// List violations, most severe first, the newest first within a severity.
    List(ListArgs),
    /// Show one violation and its history.
    Show {
        /// Violation id, or fingerprint (a prefix of 6 or more characters).
        id: String,
    },
    /// Acknowledge a violation: known, being worked on.
    Ack(AdminArgs),
    /// Suppress a violation: intended, do not flag it (until a date, if given).
    Suppress {
        #[command(flatten)]
        admin: AdminArgs,
        /// Re-open the violation after this date (YYYY-MM-DD).
        #[arg(long)]
        until: Option<NaiveDate>,
    },
    /// Undo an acknowledgement or suppression.
    Reopen(AdminArgs),
    /// Export violations as CSV, JSON or JSON lines.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show at most this many (the total is printed after them).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Most severe first (the newest first within a severity), the newest
    /// first, or the oldest first.
    #[arg(long, value_enum, default_value_t = SortArg::Severity)]
    pub sort: SortArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    Severity,
    Newest,
    Oldest,
}

#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// open, acknowledged, suppressed, resolved, or all (repeatable; default: open and acknowledged).
    #[arg(long, value_enum)]
    pub status: Vec<StatusArg>,
    /// Only this rule's (one no violation can have is refused, naming those
    /// that exist; so are the stage, owner and connector below).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only this journey stage's.
    #[arg(long)]
    pub stage: Option<String>,
    /// CRM owner id of the accountable owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this connector's.
    #[arg(long)]
    pub connector: Option<String>,
    #[arg(long, value_enum)]
    pub severity: Option<SeverityArg>,
    /// Only violations seen on or after this date (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Violation id, or fingerprint (a prefix of 6 or more characters).
    pub id: String,
    /// Why: kept in the violation's history.
    #[arg(long)]
    pub reason: String,
    /// Who: defaults to the OS user.
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Open,
    Acknowledged,
    Suppressed,
    Resolved,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
    Jsonl,
}
