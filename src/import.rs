//! `journeyd import`: canonical records from a JSONL file into the store.
//!
//! One JSON object a line, tagged by `type`:
//! - `{"type":"record", ...}` a [`CrmRecord`] (fields as in the contract crate);
//! - `{"type":"owner", ...}` an [`Owner`] (`id`, `name`, `active`, optional
//!   `email` and `teams`).
//!
//! Blank lines are skipped. A line that does not parse, or whose record
//! belongs to another CRM than the connector, is reported with its line number
//! and skipped; every good line is imported. The file is streamed: memory does
//! not grow with its size.

use crate::config::ConnectorConfig;
use crate::store::{Store, StoreError, UpsertCounts};
use chrono::{DateTime, Utc};
use journeyd_connector::{CrmRecord, Owner};
use serde::Deserialize;
use std::io::BufRead;
use std::time::Instant;
use thiserror::Error;

/// Records are written in transactions of this many.
const BATCH: usize = 1000;

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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads `input` to the end, storing its records and owners under `connector`.
pub fn import(
    store: &mut Store,
    connector: &ConnectorConfig,
    input: impl BufRead,
    now: DateTime<Utc>,
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let span = tracing::info_span!("import", connector = %connector.name);
    let _entered = span.enter();
    let mut summary = ImportSummary::default();
    let mut records = Vec::with_capacity(BATCH);
    let mut owners = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|source| ImportError::Read {
            line: number,
            source,
        })?;
        summary.lines = number;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, connector) {
            Ok(Line::Record(record)) => records.push(*record),
            Ok(Line::Owner(owner)) => owners.push(owner),
            Err(reason) => {
                tracing::warn!(line = number, %reason, "import line skipped");
                summary.skipped.push(SkippedLine {
                    line: number,
                    reason,
                });
            }
        }
        if records.len() == BATCH {
            summary.records += store.upsert_records(&connector.name, &records, now)?;
            records.clear();
        }
    }
    summary.records += store.upsert_records(&connector.name, &records, now)?;
    summary.owners = owners.len();
    store.upsert_owners(&connector.name, &owners, now)?;
    tracing::info!(
        records = summary.records.total(),
        owners = summary.owners,
        skipped = summary.skipped.len(),
        ms = started.elapsed().as_millis() as u64,
        "import finished"
    );
    Ok(summary)
}

fn parse_line(line: &str, connector: &ConnectorConfig) -> Result<Line, String> {
    let parsed: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if let Line::Record(record) = &parsed
        && record.system != connector.system
    {
        return Err(format!(
            "record {} is from {}, but connector `{}` is a {} connector",
            record.id, record.system, connector.name, connector.system
        ));
    }
    Ok(parsed)
}
