//! Violations out of the store as CSV, a JSON array, or JSON lines, streamed
//! row by row in id order so an export of millions of violations holds one
//! in memory, and the store sorts nothing.
//!
//! CSV is opened by spreadsheets, which run a cell that starts like a
//! formula: every CSV cell is quoted, and one that starts with a formula
//! character gets a leading `'` (OWASP's CSV injection advice). JSON keeps
//! the text exact.

use crate::store::{Store, StoreError, ViolationFilter, ViolationRow};
use std::io::Write;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    JsonLines,
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not write violation {id} to the export")]
    Write {
        id: i64,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write the export")]
    Io(#[from] std::io::Error),
    #[error("could not write the CSV header")]
    CsvHeader(#[source] csv::Error),
    #[error("could not write violation {id} as CSV")]
    Csv {
        id: i64,
        #[source]
        source: csv::Error,
    },
}

/// The CSV columns, in order. Also the keys of each JSON object.
pub const COLUMNS: [&str; 20] = [
    "id",
    "fingerprint",
    "status",
    "severity",
    "rule",
    "stage",
    "connector",
    "object",
    "record_id",
    "record_name",
    "record_url",
    "owner_id",
    "owner_role",
    "message",
    "action",
    "status_reason",
    "suppressed_until",
    "first_seen",
    "last_seen",
    "resolved_at",
];

/// Writes every violation `filter` selects to `out`; returns how many.
pub fn export(
    store: &Store,
    filter: &ViolationFilter,
    format: Format,
    out: impl Write,
) -> Result<u64, ExportError> {
    let mut count = 0u64;
    match format {
        Format::Csv => {
            let mut csv = csv::WriterBuilder::new()
                .quote_style(csv::QuoteStyle::Always)
                .from_writer(out);
            csv.write_record(COLUMNS).map_err(ExportError::CsvHeader)?;
            store.stream_violations(filter, |row| {
                count += 1;
                csv.write_record(csv_fields(&row).map(csv_cell))
                    .map_err(|source| ExportError::Csv {
                        id: row.id.0,
                        source,
                    })
            })?;
            csv.flush()?;
        }
        Format::Json | Format::JsonLines => {
            let mut out = std::io::BufWriter::new(out);
            let array = format == Format::Json;
            if array {
                out.write_all(b"[")?;
            }
            store.stream_violations(filter, |row| {
                let separator: &[u8] = match (array, count) {
                    (true, 0) => b"\n",
                    (true, _) => b",\n",
                    (false, _) => b"",
                };
                count += 1;
                let write = |out: &mut std::io::BufWriter<_>| -> std::io::Result<()> {
                    out.write_all(separator)?;
                    serde_json::to_writer(&mut *out, &row)?;
                    if !array {
                        out.write_all(b"\n")?;
                    }
                    Ok(())
                };
                write(&mut out).map_err(|source| ExportError::Write {
                    id: row.id.0,
                    source,
                })
            })?;
            if array {
                out.write_all(b"\n]\n")?;
            }
            out.flush()?;
        }
    }
    Ok(count)
}

/// The characters a spreadsheet reads as the start of a formula (or, tab
/// and CR, skips to find one), and NUL.
const FORMULA_STARTS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\0'];

/// `cell`, with a leading `'` when a spreadsheet would take it for a formula.
fn csv_cell(cell: String) -> String {
    if cell.starts_with(FORMULA_STARTS) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn csv_fields(row: &ViolationRow) -> [String; 20] {
    let opt = |v: Option<&str>| v.unwrap_or_default().to_owned();
    [
        row.id.to_string(),
        row.violation.fingerprint.to_string(),
        row.status.as_str().to_owned(),
        row.violation.severity.to_string(),
        row.violation.rule.to_string(),
        opt(row.violation.stage.as_ref().map(|s| s.as_str())),
        row.violation.connector.to_string(),
        row.violation.object.to_string(),
        row.violation.record_id.to_string(),
        opt(row.violation.record_name.as_deref()),
        opt(row.violation.record_url.as_deref()),
        opt(row.violation.owner_id.as_ref().map(|s| s.as_str())),
        opt(row.violation.owner_role.as_ref().map(|s| s.as_str())),
        row.violation.message.clone(),
        serde_json::to_string(&row.violation.action).unwrap_or_default(),
        opt(row.status_reason.as_deref()),
        row.suppressed_until
            .map(|d| d.to_string())
            .unwrap_or_default(),
        row.first_seen.to_rfc3339(),
        row.last_seen.to_rfc3339(),
        row.resolved_at.map(|d| d.to_rfc3339()).unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_that_starts_like_a_formula_gets_a_leading_quote() {
        for formula in [
            "=HYPERLINK(\"http://x.invalid\",\"y\")",
            "+1+2",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1",
            "\r=1",
            "\0=1",
        ] {
            assert_eq!(csv_cell(formula.to_owned()), format!("'{formula}"));
        }
    }

    #[test]
    fn a_cell_that_does_not_start_like_a_formula_is_kept() {
        for text in ["Acme renewal", "a=b", "1-2", "", "'quoted", " =1"] {
            assert_eq!(csv_cell(text.to_owned()), text);
        }
    }
}
