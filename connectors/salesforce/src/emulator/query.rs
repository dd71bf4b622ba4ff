//! `query` and `queryAll` with their `nextRecordsUrl` pages (facts 1.3):
//! a query's rows are fixed when it runs and paged out of a cursor;
//! `Sforce-Query-Options: batchSize=N` sets the page size within the
//! knobs' bounds.

use super::clock;
use super::object::SObject;
use super::reply::{ApiError, json_reply};
use super::router::{Shared, lock};
use super::soql;
use super::store::Record;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Open cursors: the newest 100 stay (Salesforce keeps a few per user and
/// expires them; the emulator only bounds memory).
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    open: VecDeque<(String, Arc<Vec<Value>>, usize)>,
    made: u64,
}

const OPEN_CURSORS: usize = 100;

pub(crate) async fn query(
    state: State<Arc<Shared>>,
    path: Path<String>,
    params: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(state, path, params, headers, false)
}

pub(crate) async fn query_all(
    state: State<Arc<Shared>>,
    path: Path<String>,
    params: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(state, path, params, headers, true)
}

fn batch_size(shared: &Shared, headers: &HeaderMap) -> usize {
    let knobs = shared.knobs();
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|part| part.trim().strip_prefix("batchSize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        })
        .map_or(knobs.max_batch_size, |n| {
            n.clamp(knobs.min_batch_size, knobs.max_batch_size)
        })
        .max(1)
}

fn run(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    all: bool,
) -> Result<Response, ApiError> {
    let soql_text = params
        .get("q")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified")
        })?;
    shared.log_query(soql_text);
    let parsed =
        soql::parse(soql_text).map_err(|err| ApiError::bad_request(err.code, err.message))?;
    let rows: Vec<Value> = {
        let store = shared.store();
        let records = store
            .table(parsed.object)
            .values()
            .filter(|r| all || r.deleted_ms.is_none());
        parsed
            .run(records)
            .into_iter()
            .map(|r| render(&version, parsed.object, r, parsed.field_names()))
            .collect()
    };
    let batch = batch_size(&shared, &headers);
    let rows = Arc::new(rows);
    let locator = (rows.len() > batch).then(|| {
        let mut cursors = lock(&shared.cursors);
        cursors.made += 1;
        let id =
            crate::emulator::store::id18(&format!("01gDn0000{:06}", cursors.made))[..18].to_owned();
        if cursors.open.len() == OPEN_CURSORS {
            cursors.open.pop_front();
        }
        cursors.open.push_back((id.clone(), rows.clone(), batch));
        id
    });
    Ok(page(&version, all, &rows, locator.as_deref(), 0, batch))
}

pub(crate) async fn more(
    state: State<Arc<Shared>>,
    path: Path<(String, String)>,
) -> Result<Response, ApiError> {
    next_page(state, path, false)
}

pub(crate) async fn more_all(
    state: State<Arc<Shared>>,
    path: Path<(String, String)>,
) -> Result<Response, ApiError> {
    next_page(state, path, true)
}

fn next_page(
    State(shared): State<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
    all: bool,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let (rows, batch) = lock(&shared.cursors)
        .open
        .iter()
        .find(|(open, _, _)| open == id)
        .map(|(_, rows, batch)| (rows.clone(), *batch))
        .ok_or_else(invalid)?;
    if offset >= rows.len() {
        return Err(invalid());
    }
    Ok(page(&version, all, &rows, Some(id), offset, batch))
}

fn page(
    version: &str,
    all: bool,
    rows: &[Value],
    locator: Option<&str>,
    offset: usize,
    batch: usize,
) -> Response {
    let end = (offset + batch).min(rows.len());
    let done = end >= rows.len();
    let mut body = json!({
        "totalSize": rows.len(),
        "done": done,
        "records": rows[offset..end].to_vec(),
    });
    if !done && let Some(id) = locator {
        let route = if all { "queryAll" } else { "query" };
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/{route}/{id}-{end}"));
    }
    json_reply(StatusCode::OK, &body)
}

/// A record as a query returns it: `attributes`, then the selected fields
/// in the order asked. A corrupted record has unreadable timestamps and a
/// numeric `Id`.
pub(crate) fn render<'a>(
    version: &str,
    object: SObject,
    record: &Record,
    fields: impl Iterator<Item = &'a str>,
) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": object.name(), "url": format!("/services/data/{version}/sobjects/{object}/{}", record.id)}),
    );
    for field in fields {
        let value = record.fields.get(field).cloned().unwrap_or(Value::Null);
        let value = if record.corrupt {
            match field {
                "SystemModstamp" | "LastModifiedDate" | "CreatedDate" => json!("not-a-date"),
                "Id" => json!(404),
                _ => value,
            }
        } else {
            value
        };
        out.insert(field.to_owned(), value);
    }
    Value::Object(out)
}

/// Truncates to the minute, as the replication calls do.
pub(crate) fn to_minute(ms: i64) -> String {
    clock::datetime(ms - ms.rem_euclid(60_000))
}
