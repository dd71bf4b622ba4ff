//! Raw structs -> the typed [`Config`], once, reporting every problem.
//!
//! No IO: both files have been read and parsed by the time this runs. Each
//! check records its problem and carries on with what it can still check;
//! references into a file that did not parse (a stage map naming stages of
//! a journey that has a syntax error) are not checked, so that one mistake
//! is not reported ten times.
//!
//! - [`journey`]: `journey.toml`: stages, roles, criteria, handoff fields;
//! - [`daemon`]: `journeyd.toml` but its connectors: paths, schedule, checks,
//!   write-back policy, custom rules, the service's health listener;
//! - [`connectors`]: each `[connectors.NAME]` table and its maps;
//! - [`connection`]: how a connector reaches its CRM (URLs, auth, limits,
//!   paging), into the connector crate's settings.

mod connection;
mod connectors;
mod daemon;
mod journey;

pub(super) use daemon::resolve;

use crate::config::Config;
use crate::config::diagnostic::{Sink, SourceFile, line_of};
use crate::config::document::{Dropped, Parsed};
use crate::config::raw::{RawDaemon, RawJourney, Text};
use journeyd_connector::ObjectKind;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// A parsed file and where its text came from.
pub(super) struct Input<'a, T> {
    pub parsed: &'a Parsed<T>,
    pub file: &'a SourceFile,
}

/// Validates whatever parsed; `Some` only when both files did.
pub(super) fn config(
    config_path: &Path,
    daemon: Option<Input<'_, RawDaemon>>,
    journey: Option<Input<'_, RawJourney>>,
    sink: &mut Sink,
) -> Option<Config> {
    let journey = journey.map(|input| {
        let mut check = Checker::new(input.file, &input.parsed.dropped, sink);
        let (journey, known) = journey::journey(&input.parsed.raw, &mut check);
        (input, journey, known)
    });
    // A stage or role list that lost an entry to a structural error would
    // make every reference to it look wrong.
    let known = journey
        .as_ref()
        .filter(|(input, _, _)| {
            let dropped = &input.parsed.dropped;
            !dropped.touches(&["roles"]) && !dropped.touches(&["stage", "id"])
        })
        .map(|(_, _, known)| known);
    let daemon = daemon.map(|input| {
        let mut check = Checker::new(input.file, &input.parsed.dropped, sink);
        let parts = daemon::daemon(config_path, &input.parsed.raw, known, &mut check);
        let fields_incomplete = input.parsed.dropped.touches(&["connectors", "*", "fields"]);
        (parts, fields_incomplete)
    });
    let (input, journey, _) = journey?;
    let (daemon, fields_incomplete) = daemon?;
    if !fields_incomplete {
        let mut check = Checker::new(input.file, &input.parsed.dropped, sink);
        journey::handoff_fields(&input.parsed.raw, &daemon.canonical_fields, &mut check);
    }
    let mut journey = journey;
    journey.timezone = daemon.schedule.timezone;
    let mut config = Config {
        path: config_path.to_owned(),
        state_path: daemon.state_path,
        journey,
        schedule: daemon.schedule,
        checks: daemon.checks,
        connectors: daemon.connectors,
        writeback: daemon.writeback,
        custom_rules: daemon.custom_rules,
        service: daemon.service,
        console: daemon.console,
    };
    connection::settle_task_reading(&mut config);
    Some(config)
}

/// What the journey defines, for checking references to it from the daemon
/// config. Holds every id written, well-formed or not: a badly named stage
/// is reported once, where it is defined, not at every reference.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub stages: Vec<String>,
    pub roles: Vec<String>,
}

impl Known {
    pub fn stage_list(&self) -> String {
        backticked(&self.stages)
    }

    pub fn role_list(&self) -> String {
        backticked(&self.roles)
    }

    /// A journey with no stages is reported once, where it is defined; it
    /// does not make every stage reference wrong too.
    pub fn has_stage(&self, id: &str) -> bool {
        self.stages.is_empty() || self.stages.iter().any(|s| s == id)
    }

    pub fn has_role(&self, id: &str) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| r == id)
    }
}

/// Reports problems in one file.
pub(super) struct Checker<'a> {
    file: &'a SourceFile,
    dropped: &'a Dropped,
    sink: &'a mut Sink,
}

impl<'a> Checker<'a> {
    fn new(file: &'a SourceFile, dropped: &'a Dropped, sink: &'a mut Sink) -> Self {
        Checker {
            file,
            dropped,
            sink,
        }
    }

    pub fn error(&mut self, at: usize, message: impl Into<String>) {
        self.sink.error(self.file.id, at, message);
    }

    /// The 1-based line of `offset`, for "first defined on line N".
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(&self.file.text, offset)
    }

    /// A required key's value, or a report that it is missing (unless it was
    /// there with a wrong type, which has been reported already).
    pub fn require<'v, T>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        table: &Range<usize>,
        key: &str,
        context: &str,
        hint: &str,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() && !self.dropped.contains(table, key) {
            self.error(
                table.start,
                format!("{context}missing key `{key}` ({hint})"),
            );
        }
        value.as_ref()
    }

    /// Hides `span` (a value that holds a secret) in every line shown.
    pub fn mask(&mut self, span: Range<usize>) {
        self.sink.mask(self.file.id, span);
    }

    /// Whether `key` of `table` was there but reported and dropped.
    pub fn dropped(&self, table: &Range<usize>, key: &str) -> bool {
        self.dropped.contains(table, key)
    }

    /// Checks `value` is a lowercase identifier (`[a-z][a-z0-9_]*`, or with
    /// `-` too where `dash` allows).
    pub fn identifier(&mut self, value: &Text, context: &str, what: &str, dash: bool) -> bool {
        let ok = is_identifier(value.get_ref(), dash);
        if !ok {
            let allowed = if dash {
                "digits, `_` or `-`"
            } else {
                "digits or `_`"
            };
            self.error(
                value.span().start,
                format!(
                    "{context}{what} `{}` is not allowed (use a lowercase letter, then lowercase letters, {allowed})",
                    value.get_ref()
                ),
            );
        }
        ok
    }

    /// A non-negative whole number that fits `u32`, at least `min`.
    pub fn count(
        &mut self,
        value: &Spanned<i64>,
        min: u32,
        context: &str,
        key: &str,
    ) -> Option<u32> {
        let number = *value.get_ref();
        if number < i64::from(min) {
            self.error(
                value.span().start,
                format!("{context}`{key}` must be at least {min}, not `{number}`"),
            );
            return None;
        }
        let fits = u32::try_from(number).ok();
        if fits.is_none() {
            self.error(
                value.span().start,
                format!(
                    "{context}`{key}` must be at most {}, not `{number}`",
                    u32::MAX
                ),
            );
        }
        fits
    }

    /// Where byte `offset` of a string value's contents is in the file. Exact
    /// for strings written without escapes (all of `'...'`, most of
    /// `"..."`); otherwise the string's start.
    pub fn inside(&self, value: &Text, offset: usize) -> usize {
        let span = value.span();
        let raw = self.file.text.get(span.clone()).unwrap_or_default();
        let quotes = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
            3
        } else if raw.starts_with('\'') || raw.starts_with('"') {
            1
        } else {
            return span.start;
        };
        let Some(mut body) = raw.get(quotes..raw.len().saturating_sub(quotes)) else {
            return span.start;
        };
        let mut start = span.start + quotes;
        if quotes == 3 {
            // TOML drops a newline right after the opening quotes.
            for newline in ["\r\n", "\n"] {
                if let Some(rest) = body.strip_prefix(newline) {
                    body = rest;
                    start += newline.len();
                    break;
                }
            }
        }
        if body == value.get_ref().as_str() && body.is_char_boundary(offset.min(body.len())) {
            start + offset.min(body.len())
        } else {
            span.start
        }
    }
}

pub(super) fn is_identifier(value: &str, dash: bool) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (dash && c == '-'))
}

/// `a`, `b` or `c`
pub(super) fn one_of<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [only] => format!("`{}`", only.as_ref()),
        [init @ .., last] => format!("{} or `{}`", backticked(init), last.as_ref()),
    }
}

/// `a`, `b`, `c`
pub(super) fn backticked<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|item| format!("`{}`", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reports a second definition of an id, pointing back at the first.
pub(super) fn first_seen<'v>(seen: &mut Vec<&'v Text>, value: &'v Text) -> Option<Range<usize>> {
    let earlier = seen
        .iter()
        .find(|v| v.get_ref() == value.get_ref())
        .map(|v| v.span());
    if earlier.is_none() {
        seen.push(value);
    }
    earlier
}

/// Stage, role and rule ids seen so far, for duplicate checks.
pub(super) type Seen<'v> = Vec<&'v Text>;

/// Labels a table whose `id` may be missing: "stage `decision`: " or
/// "stage 3: ".
pub(super) fn label(kind: &str, id: Option<&Text>, index: usize) -> String {
    match id {
        Some(id) => format!("{kind} `{}`: ", id.get_ref()),
        None => format!("{kind} {}: ", index + 1),
    }
}

/// Checks that `value` names a journey stage; passes when the journey did
/// not parse, since its stages are then unknown. `what` says what refers to
/// it: "`qualifiedtobuy` in `stages.deal` maps to".
pub(super) fn known_stage(
    check: &mut Checker<'_>,
    known: Option<&Known>,
    value: &Text,
    context: &str,
    what: &str,
) -> bool {
    let Some(known) = known else { return true };
    let ok = known.has_stage(value.get_ref());
    if !ok {
        check.error(
            value.span().start,
            format!(
                "{context}{what} unknown stage `{}` (the journey's stages: {})",
                value.get_ref(),
                known.stage_list()
            ),
        );
    }
    ok
}

/// An object kind by name: `lead`, `contact`, `account` or `deal`.
pub(super) fn object_kind(
    check: &mut Checker<'_>,
    value: &Text,
    context: &str,
    within: &str,
) -> Option<ObjectKind> {
    let kind = ObjectKind::parse(value.get_ref());
    if kind.is_none() {
        let kinds: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.as_str()).collect();
        check.error(
            value.span().start,
            format!(
                "{context}unknown object kind `{}` in `{within}` (use {})",
                value.get_ref(),
                one_of(&kinds)
            ),
        );
    }
    kind
}
