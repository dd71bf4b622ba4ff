//! `query` and `queryAll` with their `nextRecordsUrl` pages (facts 1.3):
//! a query's rows are fixed when it runs, each rendered once, and paged out
//! of a cursor; `Sforce-Query-Options: batchSize=N` sets the page size
//! within the knobs' bounds.
//!
//! A parent-to-child sub-query nests each parent's children as a result of
//! their own, `{totalSize, done, records}` under the relationship's name
//! (`null` when there are none), and child rows count toward the batch: a
//! page holds parents until they and their child rows would pass it, and
//! at least one parent. A child result longer than `child_batch_size` is
//! cut there with `done: false` and a `nextRecordsUrl` of its own, served
//! like any page; asking for the parents' next page retires the cursors of
//! the children on earlier pages, as `queryMore` does.

use super::clock;
use super::object::SObject;
use super::reply::{ApiError, json_text_reply};
use super::router::{Shared, lock};
use super::soql::{self, SubQuery};
use super::store::{Record, Store};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Open cursors: the newest 100 queries stay (Salesforce keeps a few per
/// user and expires them; the emulator only bounds memory), each with the
/// cursors of its cut child results.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    /// Query cursors, oldest first.
    open: VecDeque<String>,
    by_id: HashMap<String, Cursor>,
    made: u64,
}

#[derive(Debug)]
struct Cursor {
    rows: Arc<Vec<Row>>,
    batch: usize,
    /// The cursors of this query's cut child results, with the row of the
    /// parent each belongs to, in row order.
    children: VecDeque<(usize, String)>,
}

/// One row of a result, written out as JSON once, and how much of a batch
/// it takes: itself and the child rows it carries.
#[derive(Debug)]
struct Row {
    json: String,
    weight: usize,
}

/// A child result cut short, waiting for its cursor.
struct CutChildren {
    parent_row: usize,
    locator: String,
    rows: Vec<Row>,
}

const OPEN_CURSORS: usize = 100;

impl Cursors {
    fn new_locator(&mut self) -> String {
        self.made += 1;
        crate::store::id18(&format!("01gDn{:010}", self.made))
    }

    /// Opens a query's cursor and its children's, retiring the oldest
    /// query's past the bound.
    fn open(&mut self, id: String, cursor: Cursor, children: Vec<CutChildren>, batch: usize) {
        if self.open.len() == OPEN_CURSORS
            && let Some(oldest) = self.open.pop_front()
        {
            self.close(&oldest);
        }
        for child in children {
            self.by_id.insert(
                child.locator,
                Cursor {
                    rows: Arc::new(child.rows),
                    batch,
                    children: VecDeque::new(),
                },
            );
        }
        self.open.push_back(id.clone());
        self.by_id.insert(id, cursor);
    }

    /// Forgets every cursor, children's too; returns how many queries'
    /// cursors were open.
    pub(crate) fn expire_all(&mut self) -> usize {
        let open = self.open.len();
        self.open.clear();
        self.by_id.clear();
        open
    }

    fn close(&mut self, id: &str) {
        if let Some(cursor) = self.by_id.remove(id) {
            for (_, child) in cursor.children {
                self.by_id.remove(&child);
            }
        }
    }

    /// The rows and batch of cursor `id` for a page from `offset`; the
    /// child cursors of rows before `offset` are retired.
    fn page_from(&mut self, id: &str, offset: usize) -> Option<(Arc<Vec<Row>>, usize)> {
        let cursor = self.by_id.get_mut(id)?;
        let mut retired = Vec::new();
        while cursor
            .children
            .front()
            .is_some_and(|(row, _)| *row < offset)
        {
            retired.extend(cursor.children.pop_front().map(|(_, child)| child));
        }
        let found = (cursor.rows.clone(), cursor.batch);
        for child in retired {
            self.by_id.remove(&child);
        }
        Some(found)
    }
}

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

/// How a query's rows are written out.
struct Rendering<'a> {
    version: &'a str,
    all: bool,
    child_batch: usize,
    empty_null: bool,
    shared: &'a Shared,
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
    let knobs = shared.knobs();
    if knobs.refuse_long_text_filters
        && let Some(err) = parsed.long_text_misuse()
    {
        return Err(ApiError::bad_request(err.code, err.message));
    }
    let batch = batch_size(&shared, &headers);
    let rendering = Rendering {
        version: &version,
        all,
        child_batch: knobs.child_batch_size.max(1),
        empty_null: knobs.empty_subquery_null,
        shared: &shared,
    };
    let (rows, children) = {
        let store = shared.store();
        let live = |r: &&Record| all || r.deleted_ms.is_none();
        let matched = match parsed.required_ids() {
            // The rows an indexed lookup names, not the whole table.
            Some((field, ids)) if store.indexed(parsed.object, field) => {
                let candidates: BTreeMap<&str, &Record> = ids
                    .iter()
                    .flat_map(|id| store.children(parsed.object, field, id))
                    .filter(live)
                    .map(|r| (r.id.as_str(), r))
                    .collect();
                parsed.run(candidates.into_values())
            }
            _ => parsed.run(store.table(parsed.object).values().filter(live)),
        };
        let mut children = Vec::new();
        let rows: Vec<Row> = matched
            .into_iter()
            .enumerate()
            .map(|(at, record)| rendering.row(&store, &parsed, record, at, &mut children))
            .collect();
        (rows, children)
    };
    let rows = Arc::new(rows);
    let end = page_end(&rows, 0, batch);
    let locator = (end < rows.len() || !children.is_empty()).then(|| {
        let mut cursors = lock(&shared.cursors);
        let id = cursors.new_locator();
        let cursor = Cursor {
            rows: rows.clone(),
            batch,
            children: children
                .iter()
                .map(|c| (c.parent_row, c.locator.clone()))
                .collect(),
        };
        cursors.open(id.clone(), cursor, children, batch);
        id
    });
    Ok(page(&version, all, &rows, locator.as_deref(), 0, batch))
}

impl Rendering<'_> {
    /// Row `at` of a result: the record's selected fields, and under each
    /// relationship its children's result; a result cut short goes to
    /// `children`, to get its cursor.
    fn row(
        &self,
        store: &Store,
        query: &soql::Query,
        record: &Record,
        at: usize,
        children: &mut Vec<CutChildren>,
    ) -> Row {
        let mut out = render(self.version, query.object, record, query.field_names());
        let mut weight = 1;
        if let Value::Object(fields) = &mut out {
            for sub in &query.subqueries {
                let (result, carried) = self.children(store, sub, record, at, children);
                weight += carried;
                fields.insert(sub.relationship.name.to_owned(), result);
            }
        }
        Row {
            json: out.to_string(),
            weight,
        }
    }

    /// One parent's child result and how many child rows it carries.
    fn children(
        &self,
        store: &Store,
        sub: &SubQuery,
        parent: &Record,
        parent_row: usize,
        cut: &mut Vec<CutChildren>,
    ) -> (Value, usize) {
        let relationship = sub.relationship;
        let found = sub.query.run(
            store
                .children(relationship.child, relationship.field, &parent.id)
                .filter(|r| self.all || r.deleted_ms.is_none()),
        );
        if found.is_empty() && self.empty_null {
            return (Value::Null, 0);
        }
        let mut rendered: Vec<Value> = found
            .into_iter()
            .map(|r| render(self.version, relationship.child, r, sub.query.field_names()))
            .collect();
        let total = rendered.len();
        let carried = total.min(self.child_batch);
        let mut next = None;
        if total > self.child_batch {
            let locator = lock(&self.shared.cursors).new_locator();
            next = Some(next_url(self.version, self.all, &locator, carried));
            cut.push(CutChildren {
                parent_row,
                locator,
                rows: rendered
                    .iter()
                    .map(|r| Row {
                        json: r.to_string(),
                        weight: 1,
                    })
                    .collect(),
            });
            rendered.truncate(carried);
        }
        let mut result = Map::new();
        result.insert("totalSize".into(), json!(total));
        result.insert("done".into(), json!(next.is_none()));
        if let Some(url) = next {
            result.insert("nextRecordsUrl".into(), json!(url));
        }
        result.insert("records".into(), Value::Array(rendered));
        (Value::Object(result), carried)
    }
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
        .page_from(id, offset)
        .ok_or_else(invalid)?;
    if offset >= rows.len() {
        return Err(invalid());
    }
    Ok(page(&version, all, &rows, Some(id), offset, batch))
}

fn next_url(version: &str, all: bool, locator: &str, offset: usize) -> String {
    let route = if all { "queryAll" } else { "query" };
    format!("/services/data/{version}/{route}/{locator}-{offset}")
}

/// Where a page starting at `offset` ends: rows are added while they and
/// their child rows fit in `batch`, and the first always is.
fn page_end(rows: &[Row], offset: usize, batch: usize) -> usize {
    let mut taken = 0;
    let mut end = offset;
    while let Some(row) = rows.get(end) {
        if end > offset && taken + row.weight > batch {
            break;
        }
        taken += row.weight;
        end += 1;
    }
    end
}

fn page(
    version: &str,
    all: bool,
    rows: &[Row],
    locator: Option<&str>,
    offset: usize,
    batch: usize,
) -> Response {
    let end = page_end(rows, offset, batch);
    let done = end >= rows.len();
    let records: usize = rows[offset..end].iter().map(|r| r.json.len() + 1).sum();
    let mut body = String::with_capacity(records + 160);
    body.push_str(&format!(r#"{{"totalSize":{},"done":{done},"#, rows.len()));
    if !done && let Some(id) = locator {
        body.push_str(&format!(
            r#""nextRecordsUrl":{},"#,
            Value::String(next_url(version, all, id, end))
        ));
    }
    body.push_str(r#""records":["#);
    for (k, row) in rows[offset..end].iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        body.push_str(&row.json);
    }
    body.push_str("]}");
    json_text_reply(StatusCode::OK, body)
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
