//! Salesforce's JSON as this client reads it: query pages, per-row results
//! of sObject Collections, and the error array every REST error comes in.
//! Records stay loose JSON maps until `normalize` reads them, so that one
//! malformed record costs only itself.

use serde::Deserialize;
use serde_json::{Map, Value};

/// One page of a SOQL query (`/query`, `/queryAll`, or a `nextRecordsUrl`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryPage {
    /// Rows of the whole query (parents, for a query with sub-queries).
    #[serde(default)]
    pub(crate) total_size: Option<u64>,
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) next_records_url: Option<String>,
    #[serde(default)]
    pub(crate) records: Vec<Map<String, Value>>,
}

/// getDeleted's answer: ids deleted within the asked window, and how far
/// back the delete log still reaches.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletedPage {
    pub(crate) deleted_records: Vec<DeletedRecord>,
    pub(crate) earliest_date_available: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeletedRecord {
    pub(crate) id: String,
}

/// One row of an sObject Collections answer, in input order.
#[derive(Debug, Deserialize)]
pub(crate) struct SaveResult {
    #[serde(default)]
    pub(crate) id: Option<String>,
    pub(crate) success: bool,
    #[serde(default)]
    pub(crate) errors: Vec<SaveError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SaveError {
    #[serde(default)]
    pub(crate) status_code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) fields: Vec<String>,
}

/// One entry of a REST error array: `[{message, errorCode, fields?}]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiError {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) error_code: Option<String>,
}

/// A string field of a record, `None` when absent, null or not a string.
pub(crate) fn text<'a>(record: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}
