//! `journeyd import`: canonical records from a JSONL file into the store.
//!
//! One JSON object a line, tagged by `type`:
//! - `{"type":"record", ...}` a [`CrmRecord`] (fields as in the contract crate);
//! - `{"type":"owner", ...}` an [`Owner`] (`id`, `name`, `active`, optional
//!   `email` and `teams`).
//!
//! Bad input is data, not an error: a line that is not UTF-8, not JSON, not
//! a record or owner, longer than [`MAX_LINE_BYTES`], with a value over its
//! cap ([`MAX_TEXT_BYTES`], [`MAX_ID_BYTES`]), or whose record belongs to
//! another CRM than the connector is skipped and named (line number and
//! reason); every good line is imported, owners included. Blank lines and a
//! UTF-8 byte order mark are ignored.
//!
//! The connector is chosen once, by the first record's system (see
//! [`choose_connector`]), before anything is stored. The file is streamed:
//! memory holds one batch, bounded in lines and bytes.

use crate::config::ConnectorConfig;
use crate::store::{Store, StoreError, UpsertCounts};
use chrono::{DateTime, Utc};
use journeyd_connector::{CrmRecord, Owner, System};
use serde::Deserialize;
use std::io::BufRead;
use std::time::Instant;
use thiserror::Error;

/// Records and owners are written in transactions of at most this many.
const BATCH: usize = 1000;

/// ... and of at most this many bytes of input.
const BATCH_BYTES: usize = 32 << 20;

/// The longest line imported; a longer one is skipped unread.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The longest string value, as the largest CRM text field holds
/// (Salesforce's long text area: 131,072 characters).
pub const MAX_TEXT_BYTES: usize = 128 << 10;

/// The longest id, owner id or object key.
pub const MAX_ID_BYTES: usize = 256;

/// The keys whose values are ids, held to [`MAX_ID_BYTES`].
const ID_KEYS: [&str; 2] = ["id", "owner_id"];

const BOM: &[u8] = b"\xef\xbb\xbf";

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Record(Box<CrmRecord>),
    Owner(Owner),
}

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedLine {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub lines: usize,
    pub records: UpsertCounts,
    pub owners: usize,
    pub skipped: Vec<SkippedLine>,
}

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("could not read line {line} of the import file")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("no connector `{name}` is configured (the connectors are {})", valid.join(", "))]
    UnknownConnector { name: String, valid: Vec<String> },
    #[error(
        "connector `{connector}` is a {connector_system} connector, but the file holds {file_system} records (line {line}){}",
        connectors_of(*file_system, valid)
    )]
    WrongSystem {
        connector: String,
        connector_system: System,
        file_system: System,
        line: usize,
        /// The configured connectors of the file's system.
        valid: Vec<String>,
    },
    #[error("no {system} connector is configured for the file's records (line {line})")]
    NoConnectorOfSystem { system: System, line: usize },
    #[error("no connector is configured to import into")]
    NoConnector,
    #[error("several connectors could take the file: name one with --connector ({})", valid.join(", "))]
    SeveralConnectors { valid: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Whether the command line named no usable connector (rather than the
    /// file or the store failing).
    pub fn is_connector_choice(&self) -> bool {
        matches!(
            self,
            ImportError::UnknownConnector { .. }
                | ImportError::WrongSystem { .. }
                | ImportError::NoConnectorOfSystem { .. }
                | ImportError::NoConnector
                | ImportError::SeveralConnectors { .. }
        )
    }
}

fn connectors_of(system: System, valid: &[String]) -> String {
    if valid.is_empty() {
        format!(": no {system} connector is configured")
    } else {
        format!(": name a {system} connector ({})", valid.join(", "))
    }
}

/// The connector a file is imported into: the one `named`, which must be
/// of the file's system; else the only configured connector of that
/// system. `first_record` is the system and line number of the file's
/// first record; a file of owners only goes to the named connector, or to
/// the only one configured.
pub fn choose_connector<'c>(
    connectors: &'c [ConnectorConfig],
    named: Option<&str>,
    first_record: Option<(System, usize)>,
) -> Result<&'c ConnectorConfig, ImportError> {
    let names = |system: Option<System>| -> Vec<String> {
        connectors
            .iter()
            .filter(|c| system.is_none_or(|s| c.system == s))
            .map(|c| c.name.to_string())
            .collect()
    };
    if let Some(name) = named {
        let connector = connectors
            .iter()
            .find(|c| c.name.as_str() == name)
            .ok_or_else(|| ImportError::UnknownConnector {
                name: name.to_owned(),
                valid: names(None),
            })?;
        return match first_record {
            Some((system, line)) if system != connector.system => Err(ImportError::WrongSystem {
                connector: name.to_owned(),
                connector_system: connector.system,
                file_system: system,
                line,
                valid: names(Some(system)),
            }),
            _ => Ok(connector),
        };
    }
    let system = first_record.map(|(system, _)| system);
    let mut candidates = connectors
        .iter()
        .filter(|c| system.is_none_or(|s| c.system == s));
    match (candidates.next(), candidates.next(), first_record) {
        (Some(only), None, _) => Ok(only),
        (None, _, Some((system, line))) => Err(ImportError::NoConnectorOfSystem { system, line }),
        (None, _, None) => Err(ImportError::NoConnector),
        (Some(_), Some(_), _) => Err(ImportError::SeveralConnectors {
            valid: names(system),
        }),
    }
}

/// Where the import stands: lines parsed but not stored yet, and the
/// connector once the first record chose it.
struct Batch<'c> {
    connector: Option<&'c ConnectorConfig>,
    records: Vec<CrmRecord>,
    owners: Vec<Owner>,
    bytes: usize,
}

impl Batch<'_> {
    fn is_full(&self) -> bool {
        self.records.len() + self.owners.len() >= BATCH || self.bytes >= BATCH_BYTES
    }

    /// Stores what is pending; nothing before the connector is chosen.
    fn flush(
        &mut self,
        store: &mut Store,
        summary: &mut ImportSummary,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(connector) = self.connector else {
            return Ok(());
        };
        if !self.owners.is_empty() {
            store.upsert_owners(&connector.name, &self.owners, now)?;
            summary.owners += self.owners.len();
            self.owners.clear();
        }
        if !self.records.is_empty() {
            summary.records += store.upsert_records(&connector.name, &self.records, now)?;
            self.records.clear();
        }
        self.bytes = 0;
        Ok(())
    }
}

/// Reads `input` to the end, storing its records and owners under the
/// connector [`choose_connector`] picks from `connectors` and `named`.
pub fn import<'c>(
    store: &mut Store,
    connectors: &'c [ConnectorConfig],
    named: Option<&str>,
    mut input: impl BufRead,
    now: DateTime<Utc>,
) -> Result<(&'c ConnectorConfig, ImportSummary), ImportError> {
    let started = Instant::now();
    let span = tracing::info_span!("import", connector = tracing::field::Empty);
    let _entered = span.enter();
    let mut summary = ImportSummary::default();
    let mut batch = Batch {
        connector: None,
        records: Vec::new(),
        owners: Vec::new(),
        bytes: 0,
    };
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        let length = match read_line(&mut input, &mut buf, MAX_LINE_BYTES) {
            Ok(Some(length)) => length,
            Ok(None) => break,
            Err(source) => {
                // What was read stays imported.
                batch.flush(store, &mut summary, now)?;
                return Err(ImportError::Read {
                    line: number,
                    source,
                });
            }
        };
        summary.lines = number;
        let parsed = if length > MAX_LINE_BYTES {
            Err(format!(
                "the line is {length} bytes, over the cap of {MAX_LINE_BYTES}"
            ))
        } else {
            let bytes = match number {
                1 => buf.strip_prefix(BOM).unwrap_or(&buf),
                _ => &buf,
            };
            decode(bytes).and_then(|text| {
                if text.trim().is_empty() {
                    Ok(None)
                } else {
                    parse_line(text).map(Some)
                }
            })
        };
        let parsed = match parsed {
            Ok(None) => continue,
            Ok(Some(line)) => line,
            Err(reason) => {
                skip(&mut summary, number, reason);
                continue;
            }
        };
        if batch.connector.is_none()
            && let Line::Record(record) = &parsed
        {
            let chosen = choose_connector(connectors, named, Some((record.system, number)))?;
            span.record("connector", tracing::field::display(&chosen.name));
            batch.connector = Some(chosen);
        }
        match parsed {
            Line::Record(record) => {
                let connector = batch.connector.expect("chosen by the first record");
                if record.system != connector.system {
                    let reason = format!(
                        "record {} is from {}, but connector `{}` is a {} connector",
                        record.id, record.system, connector.name, connector.system
                    );
                    skip(&mut summary, number, reason);
                    continue;
                }
                batch.records.push(*record);
            }
            Line::Owner(owner) => batch.owners.push(owner),
        }
        batch.bytes += length;
        if batch.is_full() {
            batch.flush(store, &mut summary, now)?;
        }
    }
    if batch.connector.is_none() {
        let chosen = choose_connector(connectors, named, None)?;
        span.record("connector", tracing::field::display(&chosen.name));
        batch.connector = Some(chosen);
    }
    batch.flush(store, &mut summary, now)?;
    tracing::info!(
        records = summary.records.total(),
        owners = summary.owners,
        skipped = summary.skipped.len(),
        ms = started.elapsed().as_millis() as u64,
        "import finished"
    );
    let connector = batch.connector.expect("chosen above");
    Ok((connector, summary))
}

fn skip(summary: &mut ImportSummary, line: usize, reason: String) {
    tracing::warn!(line, %reason, "import line skipped");
    summary.skipped.push(SkippedLine { line, reason });
}

/// Reads the next line into `buf`, without its line break (`\n` or
/// `\r\n`), keeping at most `cap + 1` bytes of it; returns the line's whole
/// length, or `None` at the end of the input. A longer line is read to its
/// end but not kept.
fn read_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut length = 0;
    let mut read_any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            break;
        }
        read_any = true;
        let end = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..end.unwrap_or(available.len())];
        length += chunk.len();
        let room = (cap + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = end.map_or(available.len(), |end| end + 1);
        input.consume(used);
        if end.is_some() {
            break;
        }
    }
    if !read_any {
        return Ok(None);
    }
    if buf.last() == Some(&b'\r') && length <= cap + 1 {
        buf.pop();
        length -= 1;
    }
    Ok(Some(length))
}

fn decode(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|error| {
        format!(
            "the line is not UTF-8 (invalid byte at column {})",
            error.valid_up_to() + 1
        )
    })
}

/// One line's JSON, its values held to their caps, as a record or an owner.
fn parse_line(line: &str) -> Result<Line, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if let Some(problem) = over_cap(&value, None) {
        return Err(problem);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The first value over its cap, as `field PATH is N bytes, over the cap
/// of M`.
fn over_cap(value: &serde_json::Value, key: Option<&str>) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            let cap = match key {
                Some(key) if ID_KEYS.contains(&key) => MAX_ID_BYTES,
                _ => MAX_TEXT_BYTES,
            };
            (text.len() > cap).then(|| {
                format!(
                    "field `{}` is {} bytes, over the cap of {cap}",
                    key.unwrap_or_default(),
                    text.len()
                )
            })
        }
        Value::Array(items) => items.iter().find_map(|item| over_cap(item, key)),
        Value::Object(fields) => fields.iter().find_map(|(name, value)| {
            if name.len() > MAX_ID_BYTES {
                return Some(format!(
                    "a field name is {} bytes, over the cap of {MAX_ID_BYTES}",
                    name.len()
                ));
            }
            over_cap(value, Some(name)).map(|problem| match key {
                // Name the field by its path: `fields.notes`.
                Some(parent) => problem.replacen("field `", &format!("field `{parent}."), 1),
                None => problem,
            })
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> crate::config::Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/journeyd.toml");
        crate::config::load(&path).expect("the shipped config loads")
    }

    fn lines(input: &[u8], cap: usize) -> Vec<(usize, Vec<u8>)> {
        let mut input = input;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(length) = read_line(&mut input, &mut buf, cap).unwrap() {
            out.push((length, buf.clone()));
        }
        out
    }

    #[test]
    fn lines_end_at_newlines_with_or_without_a_carriage_return() {
        assert_eq!(
            lines(b"ab\r\ncd\n\nef", 10),
            [
                (2, b"ab".to_vec()),
                (2, b"cd".to_vec()),
                (0, Vec::new()),
                (2, b"ef".to_vec())
            ]
        );
    }

    #[test]
    fn a_line_over_the_cap_is_measured_but_not_kept() {
        let long = [b'x'; 100];
        let mut input = long.to_vec();
        input.extend_from_slice(b"\nnext\n");
        let read = lines(&input, 10);
        assert_eq!(read[0].0, 100);
        assert!(read[0].1.len() <= 11);
        assert_eq!(read[1], (4, b"next".to_vec()));
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named_with_its_column() {
        assert_eq!(
            decode(b"{\"name\":\"caf\xe9\"}"),
            Err("the line is not UTF-8 (invalid byte at column 13)".to_owned())
        );
    }

    fn record_line(extra: &str) -> String {
        format!(
            r#"{{"type":"record","system":"hubspot","object":"deal","id":"1","created_at":"2026-01-01T00:00:00Z","modified_at":"2026-01-01T00:00:00Z"{extra}}}"#
        )
    }

    #[test]
    fn a_text_value_over_its_cap_is_named_by_its_path() {
        let notes = "n".repeat(MAX_TEXT_BYTES + 1);
        let err =
            parse_line(&record_line(&format!(r#","fields":{{"notes":"{notes}"}}"#))).unwrap_err();
        assert_eq!(
            err,
            format!(
                "field `fields.notes` is {} bytes, over the cap of {MAX_TEXT_BYTES}",
                MAX_TEXT_BYTES + 1
            )
        );
        let fits = "n".repeat(MAX_TEXT_BYTES);
        assert!(parse_line(&record_line(&format!(r#","fields":{{"notes":"{fits}"}}"#))).is_ok());
    }

    #[test]
    fn an_id_over_its_cap_is_refused() {
        let id = "7".repeat(MAX_ID_BYTES + 1);
        let err = parse_line(&record_line(&format!(r#","owner_id":"{id}""#))).unwrap_err();
        assert!(err.starts_with("field `owner_id` is 257 bytes"), "{err}");
    }

    #[test]
    fn an_import_goes_to_the_only_connector_of_the_files_system() {
        let config = shipped();
        let chosen = choose_connector(&config.connectors, None, Some((System::Salesforce, 3)));
        assert_eq!(chosen.unwrap().name.as_str(), "salesforce");
    }

    #[test]
    fn a_named_connector_of_another_system_than_the_file_is_refused() {
        let config = shipped();
        let err = choose_connector(
            &config.connectors,
            Some("salesforce"),
            Some((System::Hubspot, 5)),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "connector `salesforce` is a salesforce connector, but the file holds hubspot records (line 5): name a hubspot connector (hubspot)"
        );
        assert!(err.is_connector_choice());
    }

    #[test]
    fn an_unknown_connector_is_refused_naming_the_configured_ones() {
        let config = shipped();
        let err = choose_connector(&config.connectors, Some("hubspot-eu"), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no connector `hubspot-eu` is configured (the connectors are dynamics, hubspot, salesforce)"
        );
    }

    #[test]
    fn a_file_of_owners_only_needs_a_connector_named_when_several_are_configured() {
        let config = shipped();
        assert!(matches!(
            choose_connector(&config.connectors, None, None),
            Err(ImportError::SeveralConnectors { .. })
        ));
    }
}
