//! `journeyd.toml`: state path, schedule, built-in checks, write-back policy,
//! custom rules and the service table; connectors are checked by
//! [`super::connectors`].

use super::{Checker, Known, Seen, backticked, first_seen, known_stage, label, object_kind};
use crate::config::diagnostic::lowercase_first;
use crate::config::document::ROOT;
use crate::config::raw::{
    RawChecks, RawConsole, RawDaemon, RawRule, RawSchedule, RawService, RawWriteback, Text,
};
use crate::config::{
    Checks, ConnectorConfig, ConsoleAuth, ConsoleConfig, CronExpr, CustomRule, OnboardingCheck,
    ProxyAuth, Schedule, ServiceConfig, TaskMode, WritebackMode, WritebackPolicy,
};
use crate::journey::{Expr, StageId};
use crate::rules::{ActionKind, BuiltinRule, MessageTemplate, RuleId, Severity};
use journeyd_connector::ObjectKind;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

const DEFAULT_TIMEZONE: chrono_tz::Tz = chrono_tz::UTC;
const DEFAULT_SYNC: &str = "0 */15 * * * *";
const DEFAULT_AUDIT: &str = "0 0 2 * * *";
const DEFAULT_MAX_WRITES: NonZeroU32 = NonZeroU32::new(100).expect("100 is not zero");
const DEFAULT_TASK_DUE_DAYS: u32 = 3;
const ONBOARDING_STAGE: &str = "onboarding";
const ONBOARDING_AFTER_DAYS: u32 = 7;
const ONBOARDING_SUBJECT: &str = "onboarding";
/// The port is the one commonly left to Prometheus exporters.
const DEFAULT_HEALTH_LISTEN: &str = "127.0.0.1:9464";

/// The daemon config's share of [`crate::config::Config`].
pub(super) struct DaemonParts {
    pub state_path: PathBuf,
    pub schedule: Schedule,
    pub checks: Checks,
    pub connectors: Vec<ConnectorConfig>,
    pub writeback: WritebackPolicy,
    pub custom_rules: Vec<CustomRule>,
    pub service: ServiceConfig,
    pub console: ConsoleConfig,
    /// Every canonical field name some connector maps a CRM field to.
    pub canonical_fields: BTreeSet<String>,
}

pub(super) fn daemon(
    config_path: &Path,
    raw: &RawDaemon,
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> DaemonParts {
    let state_path = check
        .require(
            &raw.state_path,
            &ROOT,
            "state_path",
            "",
            "the SQLite file holding journeyd's state, e.g. `/var/lib/journeyd/journeyd.sqlite`",
        )
        .and_then(|path| {
            if path.get_ref().trim().is_empty() {
                check.error(path.span().start, "`state_path` must not be empty");
                return None;
            }
            Some(resolve(config_path, path.get_ref()))
        })
        .unwrap_or_default();
    check.require(
        &raw.journey,
        &ROOT,
        "journey",
        "",
        "the journey definition to audit against, e.g. `journey = \"journey.toml\"`",
    );

    let schedule = schedule(raw.schedule.as_ref(), check);
    let checks = checks(raw.checks.as_ref(), known, check);
    let (connectors, canonical_fields) =
        super::connectors::connectors(&raw.connectors, known, check);
    let rule_ids: BTreeSet<&str> = raw
        .rules
        .iter()
        .filter_map(|rule| rule.get_ref().id.as_ref())
        .map(|id| id.get_ref().as_str())
        .collect();
    let writeback = writeback(raw.writeback.as_ref(), &rule_ids, check);
    let custom_rules = custom_rules(&raw.rules, known, check);
    let service = service(raw.service.as_ref(), check);
    let console = console(config_path, raw.console.as_ref(), check);
    DaemonParts {
        state_path,
        schedule,
        checks,
        connectors,
        writeback,
        custom_rules,
        service,
        console,
        canonical_fields,
    }
}

/// The console's listener and who may use it: a loopback address, unless
/// a reverse proxy that authenticates admins stands in front of it.
fn console(config_path: &Path, raw: Option<&RawConsole>, check: &mut Checker<'_>) -> ConsoleConfig {
    const CONTEXT: &str = "console: ";
    let Some(raw) = raw else {
        return ConsoleConfig::default();
    };
    let auth = console_auth(config_path, raw, check);
    let Some(listen) = &raw.listen else {
        return ConsoleConfig { listen: None, auth };
    };
    let written = listen.get_ref().trim();
    let Ok(address) = written.parse::<SocketAddr>() else {
        check.error(
            listen.span().start,
            format!(
                "{CONTEXT}`listen` `{written}` is not a socket address (use an IP address and a port, e.g. `{}`)",
                crate::console::DEFAULT_LISTEN
            ),
        );
        return ConsoleConfig::default();
    };
    if let Err(refused) = crate::console::check_listen(address, &auth) {
        check.error(listen.span().start, refused.to_string());
        return ConsoleConfig::default();
    }
    ConsoleConfig {
        listen: Some(address),
        auth,
    }
}

/// `auth = "none"` (the default), `"users"` with its `users_file`, or
/// `"proxy"` with the proxy's keys.
fn console_auth(config_path: &Path, raw: &RawConsole, check: &mut Checker<'_>) -> ConsoleAuth {
    const CONTEXT: &str = "console: ";
    const DEFAULT_HEADER: &str = "x-forwarded-user";
    let chosen = raw
        .auth
        .as_ref()
        .map(|auth| (auth.get_ref().trim(), auth.span().start));
    let proxy = match chosen {
        None | Some(("none", _)) => false,
        Some(("proxy", _)) => true,
        Some(("users", at)) => {
            return match &raw.users_file {
                Some(file) => ConsoleAuth::Users(resolve(config_path, file.get_ref().trim())),
                None => {
                    check.error(
                        at,
                        format!("{CONTEXT}`auth = \"users\"` needs `users_file`, which `journeyd console user add` writes"),
                    );
                    ConsoleAuth::Loopback
                }
            };
        }
        Some((other, at)) => {
            check.error(
                at,
                format!("{CONTEXT}`auth` `{other}` is not `none`, `users` or `proxy`"),
            );
            false
        }
    };
    if let Some(file) = &raw.users_file {
        check.error(
            file.span().start,
            format!("{CONTEXT}`users_file` applies only with `auth = \"users\"`"),
        );
    }
    if !proxy {
        let stray = [
            raw.proxy_user_header
                .as_ref()
                .map(|v| ("proxy_user_header", v.span().start)),
            raw.trusted_proxies
                .as_ref()
                .map(|v| ("trusted_proxies", v.span().start)),
            raw.admins.as_ref().map(|v| ("admins", v.span().start)),
        ];
        for (key, at) in stray.into_iter().flatten() {
            check.error(
                at,
                format!("{CONTEXT}`{key}` applies only with `auth = \"proxy\"`"),
            );
        }
        return ConsoleAuth::Loopback;
    }
    let user_header = match &raw.proxy_user_header {
        None => DEFAULT_HEADER.to_owned(),
        Some(header) => {
            let name = header.get_ref().trim().to_ascii_lowercase();
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                check.error(
                    header.span().start,
                    format!("{CONTEXT}`proxy_user_header` `{name}` is not a header name"),
                );
            }
            name
        }
    };
    let mut trusted = Vec::new();
    match &raw.trusted_proxies {
        Some(list) if !list.get_ref().is_empty() => {
            for written in list.get_ref() {
                match written.get_ref().trim().parse::<std::net::IpAddr>() {
                    Ok(ip) => trusted.push(ip),
                    Err(_) => check.error(
                        written.span().start,
                        format!(
                            "{CONTEXT}`trusted_proxies`: `{}` is not an IP address",
                            written.get_ref()
                        ),
                    ),
                }
            }
        }
        Some(list) => check.error(
            list.span().start,
            format!("{CONTEXT}`trusted_proxies` must name the proxy's address"),
        ),
        None => check.error(
            raw.auth.as_ref().map_or(0, |auth| auth.span().start),
            format!(
                "{CONTEXT}`auth = \"proxy\"` needs `trusted_proxies`: the addresses the proxy connects from, the only ones whose user header is believed"
            ),
        ),
    }
    let admins = raw
        .admins
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .map(|name| name.get_ref().trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ConsoleAuth::Proxy(ProxyAuth {
        user_header,
        trusted,
        admins,
    })
}

/// Relative paths in the config are relative to the config file, not to
/// wherever the daemon happens to be started from.
pub(in crate::config) fn resolve(config_path: &Path, path: &str) -> PathBuf {
    config_path.parent().unwrap_or(Path::new("")).join(path)
}

fn schedule(raw: Option<&RawSchedule>, check: &mut Checker<'_>) -> Schedule {
    let mut schedule = Schedule {
        timezone: DEFAULT_TIMEZONE,
        sync: CronExpr::new_unchecked(DEFAULT_SYNC.to_owned()),
        audit: CronExpr::new_unchecked(DEFAULT_AUDIT.to_owned()),
    };
    let Some(raw) = raw else { return schedule };
    if let Some(timezone) = &raw.timezone {
        match timezone.get_ref().parse::<chrono_tz::Tz>() {
            Ok(tz) => schedule.timezone = tz,
            Err(_) => check.error(
                timezone.span().start,
                format!(
                    "schedule: unknown time zone `{}` (use an IANA name such as `UTC` or `Europe/Paris`)",
                    timezone.get_ref()
                ),
            ),
        }
    }
    for (key, value, slot) in [
        ("sync", &raw.sync, &mut schedule.sync),
        ("audit", &raw.audit, &mut schedule.audit),
    ] {
        let Some(value) = value else { continue };
        match value.get_ref().parse::<croner::Cron>() {
            Ok(_) => *slot = CronExpr::new_unchecked(value.get_ref().trim().to_owned()),
            Err(error) => check.error(
                value.span().start,
                format!(
                    "schedule: `{}` is not a valid cron expression for `{key}`: {} (use 5 fields, or 6 with seconds first, e.g. `{DEFAULT_SYNC}`)",
                    value.get_ref(),
                    error.to_string().to_lowercase().trim_end_matches('.')
                ),
            ),
        }
    }
    schedule
}

/// The health listener: a socket address, on loopback unless the admin
/// says in so many words that it may be reached from elsewhere (it shows
/// connector names, run times and counts to whoever asks).
fn service(raw: Option<&RawService>, check: &mut Checker<'_>) -> ServiceConfig {
    const CONTEXT: &str = "service: ";
    let Some(raw) = raw else {
        return ServiceConfig::default();
    };
    let Some(listen) = &raw.health_listen else {
        return ServiceConfig::default();
    };
    let written = listen.get_ref().trim();
    let Ok(address) = written.parse::<SocketAddr>() else {
        check.error(
            listen.span().start,
            format!(
                "{CONTEXT}`health_listen` `{written}` is not a socket address (use an IP address and a port, e.g. `{DEFAULT_HEALTH_LISTEN}`)"
            ),
        );
        return ServiceConfig::default();
    };
    let public = raw.health_public.as_ref().is_some_and(|p| *p.get_ref());
    if !address.ip().to_canonical().is_loopback() && !public {
        check.error(
            listen.span().start,
            format!(
                "{CONTEXT}`health_listen` `{address}` is not a loopback address; set `health_public = true` to expose it"
            ),
        );
        return ServiceConfig::default();
    }
    ServiceConfig {
        health_listen: Some(address),
    }
}

fn builtin_list() -> String {
    let names: Vec<&str> = BuiltinRule::ALL.iter().map(|rule| rule.as_str()).collect();
    backticked(&names)
}

fn builtin(check: &mut Checker<'_>, value: &Text, within: &str) -> Option<BuiltinRule> {
    let rule = BuiltinRule::parse(value.get_ref());
    if rule.is_none() {
        check.error(
            value.span().start,
            format!(
                "unknown built-in rule `{}` in `{within}` (built-in rules: {})",
                value.get_ref(),
                builtin_list()
            ),
        );
    }
    rule
}

fn severity(check: &mut Checker<'_>, value: &Text, context: &str) -> Option<Severity> {
    let severity = Severity::parse(value.get_ref());
    if severity.is_none() {
        check.error(
            value.span().start,
            format!(
                "{context}unknown severity `{}` (use `low`, `medium` or `high`)",
                value.get_ref()
            ),
        );
    }
    severity
}

fn action(check: &mut Checker<'_>, value: &Text, context: &str) -> Option<ActionKind> {
    let action = ActionKind::parse(value.get_ref());
    if action.is_none() {
        check.error(
            value.span().start,
            format!(
                "{context}unknown action `{}` (use `task`, `set_lifecycle` or `none`)",
                value.get_ref()
            ),
        );
    }
    action
}

fn checks(raw: Option<&RawChecks>, known: Option<&Known>, check: &mut Checker<'_>) -> Checks {
    let mut disabled = BTreeSet::new();
    let mut severities = BTreeMap::new();
    let mut configured = None;
    if let Some(raw) = raw {
        for name in &raw.disabled {
            if let Some(rule) = builtin(check, name, "checks.disabled") {
                disabled.insert(rule);
            }
        }
        for (name, value) in &raw.severity {
            let rule = builtin(check, name, "checks.severity");
            let value = severity(
                check,
                value,
                &format!("checks.severity: `{}`: ", name.get_ref()),
            );
            if let (Some(rule), Some(value)) = (rule, value) {
                severities.insert(rule, value);
            }
        }
        if let Some(table) = &raw.missing_onboarding_task {
            configured = Some(onboarding(table, known, check));
        }
    }
    let onboarding = if disabled.contains(&BuiltinRule::MissingOnboardingTask) {
        None
    } else if let Some(configured) = configured {
        configured
    } else if known.is_some_and(|known| known.stages.iter().any(|s| s == ONBOARDING_STAGE)) {
        Some(OnboardingCheck {
            stage: StageId::new(ONBOARDING_STAGE),
            after_days: ONBOARDING_AFTER_DAYS,
            subject_contains: ONBOARDING_SUBJECT.to_owned(),
        })
    } else {
        None
    };
    Checks {
        disabled,
        severity: severities,
        onboarding,
    }
}

fn onboarding(
    table: &toml::Spanned<crate::config::raw::RawOnboarding>,
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> Option<OnboardingCheck> {
    const CONTEXT: &str = "checks.missing_onboarding_task: ";
    let raw = table.get_ref();
    let stage = match &raw.stage {
        Some(stage) => known_stage(check, known, stage, CONTEXT, "`stage` names")
            .then(|| stage.get_ref().clone()),
        None if known.is_some_and(|known| !known.has_stage(ONBOARDING_STAGE)) => {
            check.error(
                table.span().start,
                format!(
                    "{CONTEXT}the journey has no stage `{ONBOARDING_STAGE}` to default to: set `stage`"
                ),
            );
            None
        }
        None => Some(ONBOARDING_STAGE.to_owned()),
    };
    let after_days = match &raw.after_days {
        Some(days) => check.count(days, 0, CONTEXT, "after_days"),
        None => Some(ONBOARDING_AFTER_DAYS),
    };
    let subject = match &raw.subject_contains {
        Some(subject) if subject.get_ref().trim().is_empty() => {
            check.error(
                subject.span().start,
                format!("{CONTEXT}`subject_contains` must not be empty: it would match every task"),
            );
            None
        }
        Some(subject) => Some(subject.get_ref().trim().to_lowercase()),
        None => Some(ONBOARDING_SUBJECT.to_owned()),
    };
    Some(OnboardingCheck {
        stage: StageId::new(stage?),
        after_days: after_days?,
        subject_contains: subject?,
    })
}

fn writeback(
    raw: Option<&RawWriteback>,
    custom: &BTreeSet<&str>,
    check: &mut Checker<'_>,
) -> WritebackPolicy {
    const CONTEXT: &str = "writeback: ";
    let mut policy = WritebackPolicy {
        mode: WritebackMode::DryRun,
        max_writes_per_run: DEFAULT_MAX_WRITES,
        task_objects: ObjectKind::ALL.into_iter().collect(),
        fields: BTreeMap::new(),
        task_due_days: DEFAULT_TASK_DUE_DAYS,
        tasks: TaskMode::default(),
        actions: BTreeMap::new(),
    };
    let Some(raw) = raw else { return policy };
    if let Some(tasks) = &raw.tasks {
        match tasks.get_ref().as_str() {
            "per_record" => policy.tasks = TaskMode::PerRecord,
            "per_violation" => policy.tasks = TaskMode::PerViolation,
            other => check.error(
                tasks.span().start,
                format!(
                    "{CONTEXT}unknown tasks mode `{other}` (use `per_record` or `per_violation`)"
                ),
            ),
        }
    }
    if let Some(mode) = &raw.mode {
        match mode.get_ref().as_str() {
            "dry-run" => policy.mode = WritebackMode::DryRun,
            "apply" => policy.mode = WritebackMode::Apply,
            other => check.error(
                mode.span().start,
                format!("{CONTEXT}unknown mode `{other}` (use `dry-run` or `apply`)"),
            ),
        }
    }
    if let Some(max) = &raw.max_writes_per_run
        && let Some(max) = check
            .count(max, 1, CONTEXT, "max_writes_per_run")
            .and_then(NonZeroU32::new)
    {
        policy.max_writes_per_run = max;
    }
    if let Some(objects) = &raw.task_objects {
        policy.task_objects = objects
            .iter()
            .filter_map(|kind| object_kind(check, kind, CONTEXT, "task_objects"))
            .collect();
    }
    if let Some(days) = &raw.task_due_days
        && let Some(days) = check.count(days, 0, CONTEXT, "task_due_days")
    {
        policy.task_due_days = days;
    }
    for (kind, fields) in &raw.fields {
        let kind = object_kind(check, kind, CONTEXT, "fields");
        let mut names = BTreeSet::new();
        for field in fields {
            if field.get_ref().trim().is_empty() {
                check.error(
                    field.span().start,
                    format!("{CONTEXT}a field name in `fields` is empty"),
                );
            } else {
                names.insert(field.get_ref().clone());
            }
        }
        if let Some(kind) = kind {
            policy.fields.insert(kind, names);
        }
    }
    for (rule, value) in &raw.actions {
        let name = rule.get_ref().as_str();
        let known = BuiltinRule::parse(name).is_some() || custom.contains(name);
        if !known {
            check.error(
                rule.span().start,
                format!(
                    "{CONTEXT}`actions` names unknown rule `{name}` (use a built-in rule, {}, or the id of a `[[rules]]` entry)",
                    builtin_list()
                ),
            );
        }
        let value = action(check, value, &format!("{CONTEXT}`actions.{name}`: "));
        if let (true, Some(value)) = (known, value) {
            policy.actions.insert(RuleId::new(name), value);
        }
    }
    policy
}

fn custom_rules(
    raw: &[toml::Spanned<RawRule>],
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> Vec<CustomRule> {
    let mut rules = Vec::new();
    let mut seen = Seen::new();
    for (index, table) in raw.iter().enumerate() {
        let span = table.span();
        let raw = table.get_ref();
        let context = label("rule", raw.id.as_ref(), index);
        let id = check.require(
            &raw.id,
            &span,
            "id",
            &context,
            "a name such as `big_deal_without_sponsor`",
        );
        let id = id.filter(|id| {
            if let Some(first) = first_seen(&mut seen, id) {
                let line = check.line_of(first.start);
                check.error(
                    id.span().start,
                    format!(
                        "duplicate rule id `{}` (first defined on line {line})",
                        id.get_ref()
                    ),
                );
                return false;
            }
            if BuiltinRule::parse(id.get_ref()).is_some() {
                check.error(
                    id.span().start,
                    format!(
                        "rule id `{}` is the name of a built-in rule: choose another",
                        id.get_ref()
                    ),
                );
                return false;
            }
            check.identifier(id, "", "rule id", false)
        });
        let condition = check.require(
            &raw.condition,
            &span,
            "condition",
            &context,
            "a CEL expression over `record` that holds when the rule is broken",
        );
        let condition = condition.and_then(|condition| match Expr::compile(condition.get_ref()) {
            Ok(expr) => Some(expr),
            Err(error) => {
                let at = check.inside(condition, error.offset.unwrap_or(0));
                check.error(
                    at,
                    format!(
                        "{context}condition does not compile: {}",
                        lowercase_first(&error.message)
                    ),
                );
                None
            }
        });
        let severity = check
            .require(
                &raw.severity,
                &span,
                "severity",
                &context,
                "`low`, `medium` or `high`",
            )
            .and_then(|value| severity(check, value, &context));
        let message = check.require(
            &raw.message,
            &span,
            "message",
            &context,
            "the violation's message, e.g. `\"{record} has no sponsor\"`",
        );
        let message = message.and_then(|message| match MessageTemplate::parse(message.get_ref()) {
            Ok(template) => Some(template),
            Err(error) => {
                let at = check.inside(message, error.offset);
                check.error(
                    at,
                    format!("{context}bad message: {}", lowercase_first(&error.message)),
                );
                None
            }
        });
        let action = match &raw.action {
            Some(value) => action(check, value, &context),
            None => Some(ActionKind::Task),
        };
        let objects: BTreeSet<ObjectKind> = raw
            .objects
            .iter()
            .filter_map(|kind| object_kind(check, kind, &context, "objects"))
            .collect();
        let mut stages = BTreeSet::new();
        for stage in &raw.stages {
            if known_stage(check, known, stage, &context, "`stages` names") {
                stages.insert(StageId::new(stage.get_ref()));
            }
        }
        if let (Some(id), Some(condition), Some(severity), Some(message), Some(action)) =
            (id, condition, severity, message, action)
        {
            rules.push(CustomRule {
                id: RuleId::new(id.get_ref()),
                condition,
                severity,
                message,
                action,
                objects,
                stages,
            });
        }
    }
    rules
}
