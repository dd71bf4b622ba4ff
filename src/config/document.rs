//! TOML text -> raw structs, reporting every unknown key and wrong type.
//!
//! serde stops at the first error. So the text is parsed once into a tree
//! that keeps every span, and deserialized from that tree; on an error, the
//! entry it points at is reported and dropped from the tree, and the rest is
//! deserialized again. Dropped entries are remembered so that validation
//! does not also call them missing.

use crate::config::diagnostic::{FileId, Sink, SourceFile, lowercase_first};
use crate::config::raw::Text;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

/// The span validation knows the top-level table by; entries dropped from it
/// are recorded under this span.
pub(super) const ROOT: Range<usize> = 0..0;

/// Bounds the work on a file full of mistakes; nobody reads past fifty.
const MAX_ROUNDS: usize = 50;

/// Keys whose value names where a secret comes from.
const SECRET_SOURCES: [&str; 2] = ["secret", "refresh_token"];

/// What to write instead of a literal secret under `key`.
fn secret_message(key: &str) -> String {
    let key = if SECRET_SOURCES.contains(&key) {
        key
    } else {
        "secret"
    };
    format!(
        "secrets are never written in the config file: use `{key} = {{ env = \"NAME\" }}` or `{key} = {{ credential = \"NAME\" }}`"
    )
}

/// A file's raw structs and the entries dropped on the way.
#[derive(Debug)]
pub(super) struct Parsed<T> {
    pub raw: T,
    pub dropped: Dropped,
}

/// Entries already reported and dropped.
#[derive(Debug, Default)]
pub(super) struct Dropped {
    /// By their table's span and their key.
    entries: BTreeSet<(usize, usize, String)>,
    /// Their keys from the root, array positions left out
    /// (`["connectors", "hubspot", "fields"]`).
    paths: Vec<Vec<String>>,
}

impl Dropped {
    pub fn contains(&self, table: &Range<usize>, key: &str) -> bool {
        self.entries
            .contains(&(table.start, table.end, key.to_owned()))
    }

    /// Whether what `path` names may be incomplete: an entry at, under or
    /// above it was dropped. `*` matches any key.
    pub fn touches(&self, path: &[&str]) -> bool {
        self.paths.iter().any(|dropped| {
            path.iter()
                .zip(dropped)
                .all(|(want, key)| *want == "*" || want == key)
        })
    }
}

/// Parses `file` into `T`, reporting into `sink`. `None` when the file is not
/// TOML at all, or when an error could not be pinned to an entry.
pub(super) fn parse<T: DeserializeOwned>(file: &SourceFile, sink: &mut Sink) -> Option<Parsed<T>> {
    let mut tree = match DeTable::parse(&file.text) {
        Ok(tree) => tree,
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            sink.error(
                file.id,
                span.start,
                syntax_message(&file.text, &error, &span),
            );
            return None;
        }
    };
    let mut dropped = Dropped::default();
    for _ in 0..MAX_ROUNDS {
        let error = match T::deserialize(Deserializer::from(tree.clone())) {
            Ok(raw) => return Some(Parsed { raw, dropped }),
            Err(error) => error,
        };
        let found = error
            .span()
            .and_then(|span| find(tree.get_ref(), ROOT, &span).map(|found| (span, found)));
        let Some((span, found)) = found else {
            let at = error.span().map_or(0, |span| span.start);
            sink.error(file.id, at, lowercase_first(error.message()));
            return None;
        };
        report(
            file.id,
            tree.get_ref(),
            &found,
            &span,
            error.message(),
            sink,
        );
        if !drop_entry(tree.get_mut(), &found.path) {
            return None;
        }
        dropped.paths.push(
            found
                .path
                .iter()
                .filter_map(|segment| match segment {
                    Segment::Key(key) => Some(key.clone()),
                    Segment::Index(_) => None,
                })
                .collect(),
        );
        let table = found.table_span;
        dropped.entries.insert((table.start, table.end, found.key));
    }
    sink.error(
        file.id,
        0,
        format!("too many problems in this file: stopped after {MAX_ROUNDS}"),
    );
    None
}

/// A top-level string of a file that is not valid TOML, read as far as the
/// parser could make sense of it: lets the journey be checked even when the
/// daemon config has a syntax error elsewhere.
pub(super) fn recover_top_level_string(text: &str, key: &str) -> Option<Text> {
    let (tree, _) = DeTable::parse_recoverable(text);
    let value = tree.get_ref().get(key)?;
    let string = value.get_ref().as_str()?;
    Some(Spanned::new(value.span(), string.to_owned()))
}

fn syntax_message(text: &str, error: &toml::de::Error, span: &Range<usize>) -> String {
    let message = error.message();
    if message == "duplicate key" {
        let key = text.get(span.clone()).unwrap_or_default();
        format!("duplicate key `{key}` (a key may be given once per table)")
    } else {
        format!("invalid toml: {}", lowercase_first(message))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The table entry an error points at.
#[derive(Debug)]
struct Found {
    /// From the root to the entry's key.
    path: Vec<Segment>,
    key: String,
    value_span: Range<usize>,
    table_span: Range<usize>,
}

/// The entry an error's span points at: the deepest entry whose key or value
/// is exactly that span; failing that, the deepest whose value holds it (an
/// item of an array). Exact matches come first because a `[a.b.c]` header is
/// the span of table `c` and also holds the keys `a` and `b`.
fn find(table: &DeTable<'_>, table_span: Range<usize>, span: &Range<usize>) -> Option<Found> {
    let mut best = Best::default();
    let mut path = Vec::new();
    search(table, &table_span, span, &mut path, &mut best);
    best.exact.or(best.holding)
}

#[derive(Default)]
struct Best {
    exact: Option<Found>,
    holding: Option<Found>,
}

fn search(
    table: &DeTable<'_>,
    table_span: &Range<usize>,
    span: &Range<usize>,
    path: &mut Vec<Segment>,
    best: &mut Best,
) {
    for (key, value) in table.iter() {
        path.push(Segment::Key(key.get_ref().to_string()));
        let exact = key.span() == *span || value.span() == *span;
        let holds = value.span().start <= span.start && span.end <= value.span().end;
        let slot = if exact {
            Some(&mut best.exact)
        } else if holds {
            Some(&mut best.holding)
        } else {
            None
        };
        if let Some(slot) = slot
            && slot.as_ref().is_none_or(|b| b.path.len() < path.len())
        {
            *slot = Some(Found {
                path: path.clone(),
                key: key.get_ref().to_string(),
                value_span: value.span(),
                table_span: table_span.clone(),
            });
        }
        search_value(value, span, path, best);
        path.pop();
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<Segment>,
    best: &mut Best,
) {
    match value.get_ref() {
        DeValue::Table(table) => search(table, &value.span(), span, path, best),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Segment::Index(index));
                search_value(item, span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

fn drop_entry(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    match path {
        [Segment::Key(key)] => table.remove(key.as_str()).is_some(),
        [Segment::Key(key), rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|value| drop_in_value(value.get_mut(), rest)),
        _ => false,
    }
}

fn drop_in_value(value: &mut DeValue<'_>, path: &[Segment]) -> bool {
    match (value, path) {
        (DeValue::Table(table), rest) => drop_entry(table, rest),
        (DeValue::Array(items), [Segment::Index(index), rest @ ..]) => items
            .get_mut(*index)
            .is_some_and(|item| drop_in_value(item.get_mut(), rest)),
        _ => false,
    }
}

fn report(
    file: FileId,
    tree: &DeTable<'_>,
    found: &Found,
    span: &Range<usize>,
    message: &str,
    sink: &mut Sink,
) {
    let (prefix, within) = context(tree, &found.path);
    let key = &found.key;
    let within = if within.is_empty() {
        String::new()
    } else {
        format!(" in `{within}`")
    };
    let parent = found.path.iter().rev().nth(1);
    let parent_is_secret = SECRET_SOURCES
        .iter()
        .any(|source| parent == Some(&Segment::Key((*source).into())));
    let parent_key = match parent {
        Some(Segment::Key(parent)) => parent.as_str(),
        _ => "",
    };
    // Which secret-source key a masked value belongs to, for the message.
    let source = if SECRET_SOURCES.contains(&key.as_str()) {
        key.as_str()
    } else {
        parent_key
    };
    let actual = node_at(tree, span).map(|value| value.type_str());

    if let Some(rest) = message.strip_prefix("unknown field ") {
        if parent_is_secret || is_secret_key(key) {
            sink.mask(file, found.value_span.clone());
            sink.error(
                file,
                span.start,
                format!("{prefix}`{key}`: {}", secret_message(source)),
            );
            return;
        }
        let allowed: Vec<&str> = rest
            .split_once(", expected ")
            .map(|(_, expected)| expected.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let allowed = if allowed.is_empty() {
            " (no keys are allowed here)".to_owned()
        } else {
            format!(" (allowed: `{}`)", allowed.join("`, `"))
        };
        sink.error(
            file,
            span.start,
            format!("{prefix}unknown key `{key}`{within}{allowed}"),
        );
    } else if let Some((_, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        if SECRET_SOURCES.contains(&key.as_str()) && actual == Some("string") {
            sink.mask(file, found.value_span.clone());
            sink.error(
                file,
                span.start,
                format!("{prefix}`{key}`: {}", secret_message(source)),
            );
            return;
        }
        let expected = match expected {
            "i64" => "an integer",
            "a sequence" => "an array",
            "a map" => "a table",
            "a boolean" => "true or false",
            other => other,
        };
        let subject = if found.value_span == *span {
            format!("`{key}`")
        } else {
            format!("items of `{key}`")
        };
        let actual = match actual {
            Some(actual @ ("integer" | "array")) => format!(", not an {actual}"),
            Some(actual) => format!(", not a {actual}"),
            None => String::new(),
        };
        sink.error(
            file,
            span.start,
            format!("{prefix}{subject}{within} must be {expected}{actual}"),
        );
    } else if parent_is_secret || is_secret_key(key) {
        // The library's own text may quote the value.
        sink.mask(file, found.value_span.clone());
        sink.error(
            file,
            span.start,
            format!("{prefix}`{key}`: {}", secret_message(source)),
        );
    } else {
        sink.error(
            file,
            span.start,
            format!("{prefix}`{key}`{within}: {}", lowercase_first(message)),
        );
    }
}

/// What the entry belongs to, as admins name it ("stage `decision`: "), and
/// the dotted table path within that.
fn context(tree: &DeTable<'_>, path: &[Segment]) -> (String, String) {
    let head = |kind: &str| -> Option<(String, &[Segment])> {
        if path.len() <= 2 {
            return None;
        }
        match (&path[0], &path[1]) {
            (Segment::Key(table), Segment::Index(index)) if table == kind => {
                let id = tree
                    .get(kind)
                    .and_then(|items| items.get_ref().get(*index))
                    .and_then(|item| item.get_ref().get("id"))
                    .and_then(|id| id.get_ref().as_str());
                let label = if kind == "rules" { "rule" } else { kind };
                let prefix = match id {
                    Some(id) => format!("{label} `{id}`: "),
                    None => format!("{label} {}: ", index + 1),
                };
                Some((prefix, &path[2..]))
            }
            (Segment::Key(table), Segment::Key(name)) if table == kind => {
                Some((format!("connector `{name}`: "), &path[2..]))
            }
            _ => None,
        }
    };
    let (prefix, rest) = head("stage")
        .or_else(|| head("rules"))
        .or_else(|| head("connectors"))
        .unwrap_or((String::new(), path));
    let within: Vec<&str> = rest[..rest.len().saturating_sub(1)]
        .iter()
        .filter_map(|segment| match segment {
            Segment::Key(key) => Some(key.as_str()),
            Segment::Index(_) => None,
        })
        .collect();
    (prefix, within.join("."))
}

fn node_at<'a, 'i>(table: &'a DeTable<'i>, span: &Range<usize>) -> Option<&'a DeValue<'i>> {
    table.values().find_map(|value| node_in(value, span))
}

fn node_in<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    span: &Range<usize>,
) -> Option<&'a DeValue<'i>> {
    if value.span() == *span {
        return Some(value.get_ref());
    }
    match value.get_ref() {
        DeValue::Table(table) => node_at(table, span),
        DeValue::Array(items) => items.iter().find_map(|item| node_in(item, span)),
        _ => None,
    }
}

/// Key names that only ever hold a credential.
fn is_secret_key(key: &str) -> bool {
    const EXACT: [&str; 12] = [
        "token",
        "password",
        "passwd",
        "secret_value",
        "client_secret",
        "api_key",
        "apikey",
        "private_key",
        "access_key",
        "bearer",
        "credentials",
        "authorization",
    ];
    let key = key.to_ascii_lowercase();
    EXACT.contains(&key.as_str())
        || ["_token", "_secret", "_password", "_api_key", "_private_key"]
            .iter()
            .any(|suffix| key.ends_with(suffix))
}
