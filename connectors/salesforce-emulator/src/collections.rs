//! sObject Collections (facts 1.4): create (`POST`), update (`PATCH`) and
//! upsert by external id (`PATCH /{SObject}/{ExtIdField}`), at most
//! `collections_max` records, HTTP 200 for any well-formed request with
//! one result per record in input order, and `allOrNone` rolling every
//! row back when one fails. With the `detached_row_delay` knob the rows
//! commit one at a time in a task of their own, which goes on when the
//! client has gone; a queued fault garbles the next answer after the
//! write is made.

use super::object::SObject;
use super::reply::{ApiError, json_reply, row_error};
use super::router::{Shared, json_body, lock};
use super::sobjects::matching;
use super::store::{Store, well_formed_id};
use super::write;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One row's fate before anything is committed.
enum Plan {
    Insert(SObject, Map<String, Value>),
    Update(SObject, String, Map<String, Value>),
    Failed(Option<String>, Value),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Upsert(SObject, &'static str),
}

struct Request {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn parse(shared: &Shared, body: &[u8]) -> Result<Request, ApiError> {
    let body = json_body(body)?;
    let malformed =
        || ApiError::bad_request("JSON_PARSER_ERROR", "records must be an array of sObjects");
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(malformed)?;
    let records: Vec<Map<String, Value>> = records
        .iter()
        .map(|r| r.as_object().cloned().ok_or_else(malformed))
        .collect::<Result<_, _>>()?;
    let max = shared.knobs().collections_max;
    if records.len() > max {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {max} records into this call"),
        ));
    }
    let all_or_none = match body.get("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "JSON_PARSER_ERROR",
                "allOrNone must be a boolean",
            ));
        }
    };
    Ok(Request {
        all_or_none,
        records,
    })
}

fn record_type(record: &Map<String, Value>) -> Result<SObject, Value> {
    let name = record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| row_error("INVALID_TYPE", "Must send a concrete entity type.", &[]))?;
    SObject::from_name(name)
        .filter(|o| o.writable())
        .ok_or_else(|| {
            row_error(
                "INVALID_TYPE",
                &format!("sObject type '{name}' is not supported."),
                &[],
            )
        })
}

fn plan(
    store: &Store,
    kind: Kind,
    record: &Map<String, Value>,
    owner: &str,
    seen: &mut BTreeSet<String>,
) -> Plan {
    let object = match record_type(record) {
        Ok(object) => object,
        Err(err) => return Plan::Failed(None, err),
    };
    match kind {
        Kind::Create => match write::check(store, object, record, true, owner) {
            Ok(fields) => Plan::Insert(object, fields),
            Err(err) => Plan::Failed(None, err),
        },
        Kind::Update => {
            let Some(id) = record
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Id"))
                .and_then(|(_, v)| v.as_str())
            else {
                return Plan::Failed(
                    None,
                    row_error(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        &[],
                    ),
                );
            };
            if !well_formed_id(id) {
                return Plan::Failed(
                    None,
                    row_error("MALFORMED_ID", &format!("malformed id {id}"), &["Id"]),
                );
            }
            let failed = |code: &str, message: &str| {
                Plan::Failed(Some(id.to_owned()), row_error(code, message, &[]))
            };
            match store.get(object, id) {
                None if store.logged_deletion(object, id) => {
                    failed("ENTITY_IS_DELETED", "entity is deleted")
                }
                None => failed("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"),
                Some(r) if r.deleted_ms.is_some() => {
                    failed("ENTITY_IS_DELETED", "entity is deleted")
                }
                Some(r) if !seen.insert(r.id.clone()) => {
                    failed("DUPLICATE_VALUE", "Duplicate id in list")
                }
                Some(r) => match write::check(store, object, record, false, owner) {
                    Ok(fields) => Plan::Update(object, r.id.clone(), fields),
                    Err(err) => Plan::Failed(Some(r.id.clone()), err),
                },
            }
        }
        Kind::Upsert(expected, field) => {
            if object != expected {
                return Plan::Failed(
                    None,
                    row_error(
                        "INVALID_TYPE",
                        "every record must be of the type in the path",
                        &[],
                    ),
                );
            }
            let Some(value) = record.get(field).and_then(Value::as_str) else {
                return Plan::Failed(
                    None,
                    row_error(
                        "MISSING_ARGUMENT",
                        &format!("{field} not specified"),
                        &[field],
                    ),
                );
            };
            if !seen.insert(value.to_owned()) {
                return Plan::Failed(
                    None,
                    row_error(
                        "DUPLICATE_EXTERNAL_ID",
                        &format!("Duplicate external id specified: {value}"),
                        &[field],
                    ),
                );
            }
            match matching(store, object, field, value).as_slice() {
                [] => match write::check(store, object, record, true, owner) {
                    Ok(fields) => Plan::Insert(object, fields),
                    Err(err) => Plan::Failed(None, err),
                },
                [id] => match write::check(store, object, record, false, owner) {
                    Ok(fields) => Plan::Update(object, id.clone(), fields),
                    Err(err) => Plan::Failed(Some(id.clone()), err),
                },
                many => Plan::Failed(
                    None,
                    row_error(
                        "DUPLICATE_EXTERNAL_ID",
                        &format!(
                            "{field}: more than one record found for external id field: {many:?}"
                        ),
                        &[field],
                    ),
                ),
            }
        }
    }
}

/// The row an injected `UNABLE_TO_LOCK_ROW` hits: nothing of it written.
fn locked(record: &Map<String, Value>) -> Plan {
    let id = record
        .get("id")
        .or_else(|| record.get("Id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Plan::Failed(
        id,
        row_error(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record",
            &[],
        ),
    )
}

/// What one call does, once parsed.
struct Work {
    kind: Kind,
    request: Request,
    /// Its first rows fail with `UNABLE_TO_LOCK_ROW`.
    fail_rows: usize,
    /// The calling user, who creates what is inserted.
    owner: String,
}

impl Work {
    fn plan_row(
        &self,
        store: &Store,
        at: usize,
        record: &Map<String, Value>,
        seen: &mut BTreeSet<String>,
    ) -> Plan {
        if at < self.fail_rows {
            locked(record)
        } else {
            plan(store, self.kind, record, &self.owner, seen)
        }
    }

    /// Plans every row, then commits them all or, with `allOrNone` and a
    /// row refused, none: one result per row, and whether any was created.
    fn commit_at_once(&self, store: &mut Store) -> (Vec<Value>, bool) {
        let mut seen = BTreeSet::new();
        let plans: Vec<Plan> = self
            .request
            .records
            .iter()
            .enumerate()
            .map(|(at, record)| self.plan_row(store, at, record, &mut seen))
            .collect();
        let any_failed = plans.iter().any(|p| matches!(p, Plan::Failed(..)));
        let rollback = self.request.all_or_none && any_failed;
        let mut created_any = false;
        let results = plans
            .into_iter()
            .map(|plan| {
                if rollback && !matches!(plan, Plan::Failed(..)) {
                    return failure(
                        None,
                        row_error(
                            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                            "Record rolled back because not all records were valid and the request was using AllOrNone header",
                            &[],
                        ),
                        self.kind,
                    );
                }
                commit(store, plan, self.kind, &self.owner, &mut created_any)
            })
            .collect();
        (results, created_any)
    }

    /// Commits the rows one at a time, `delay` before each, each planned
    /// when its turn comes (so that a row sees what other calls wrote in
    /// the meantime). Run in a task of its own, it goes on after the
    /// client has gone. With `allOrNone` and a row refused up front,
    /// nothing is written, as at once.
    async fn commit_one_by_one(self, shared: Arc<Shared>, delay: Duration) -> (Vec<Value>, bool) {
        if self.request.all_or_none {
            let mut store = shared.store_mut();
            let mut seen = BTreeSet::new();
            let refused = self.request.records.iter().enumerate().any(|(at, record)| {
                matches!(
                    self.plan_row(&store, at, record, &mut seen),
                    Plan::Failed(..)
                )
            });
            if refused {
                return self.commit_at_once(&mut store);
            }
        }
        let mut seen = BTreeSet::new();
        let mut results = Vec::with_capacity(self.request.records.len());
        let mut created_any = false;
        for (at, record) in self.request.records.iter().enumerate() {
            tokio::time::sleep(delay).await;
            let mut store = shared.store_mut();
            let plan = self.plan_row(&store, at, record, &mut seen);
            results.push(commit(
                &mut store,
                plan,
                self.kind,
                &self.owner,
                &mut created_any,
            ));
        }
        (results, created_any)
    }
}

/// Writes one planned row and returns its result.
fn commit(store: &mut Store, plan: Plan, kind: Kind, owner: &str, created_any: &mut bool) -> Value {
    match plan {
        Plan::Failed(id, error) => failure(id, error, kind),
        Plan::Insert(object, fields) => {
            *created_any = true;
            let id = store.insert(object, fields, owner);
            success(id, kind, true)
        }
        Plan::Update(object, id, fields) => {
            store.update(object, &id, fields);
            success(id, kind, false)
        }
    }
}

async fn handle(shared: Arc<Shared>, kind: Kind, body: Bytes) -> Result<Response, ApiError> {
    let request = parse(&shared, &body)?;
    let (fail_rows, hold, malform) = {
        let mut faults = lock(&shared.collections);
        (
            std::mem::take(&mut faults.fail_rows),
            faults.hold_create,
            std::mem::take(&mut faults.malform_next),
        )
    };
    let work = Work {
        kind,
        request,
        fail_rows,
        owner: shared.tokens().user_id.clone(),
    };
    let (results, created_any) = match shared.knobs().detached_row_delay {
        Some(delay) => {
            // Spawned, not awaited in place: axum drops this handler when
            // the client disconnects, and the rows must still be written.
            let (done, answer) = tokio::sync::oneshot::channel();
            let server = Arc::clone(&shared);
            shared.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let committed = work.commit_one_by_one(Arc::clone(&server), delay).await;
                server.in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = done.send(committed);
            });
            answer.await.map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN_EXCEPTION",
                    "the write stopped before it was done",
                )
            })?
        }
        None => work.commit_at_once(&mut shared.store_mut()),
    };
    if created_any && !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let body = Value::Array(results);
    if malform {
        return Ok(garbled(&body));
    }
    Ok(json_reply(StatusCode::OK, &body))
}

/// `body` cut in half and ending in bytes that are no JSON, answered 200:
/// a reply that proves nothing about what was written.
fn garbled(body: &Value) -> Response {
    let text = body.to_string();
    let mut cut = text.as_bytes()[..text.len() / 2].to_vec();
    cut.extend_from_slice(b"\x00\xff<garbled");
    let mut response = (StatusCode::OK, cut).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

fn success(id: String, kind: Kind, created: bool) -> Value {
    let mut row = json!({"id": id, "success": true, "errors": []});
    if matches!(kind, Kind::Upsert(..)) {
        row["created"] = json!(created);
    }
    row
}

fn failure(id: Option<String>, error: Value, kind: Kind) -> Value {
    let mut row = json!({"success": false, "errors": [error]});
    if let Some(id) = id {
        row["id"] = json!(id);
    }
    if matches!(kind, Kind::Upsert(..)) {
        row["created"] = json!(false);
    }
    row
}

/// `POST /composite/sobjects`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    handle(shared, Kind::Create, body).await
}

/// `PATCH /composite/sobjects`.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    handle(shared, Kind::Update, body).await
}

/// `PATCH /composite/sobjects/{SObject}/{ExtIdField}`.
pub(crate) async fn upsert(
    State(shared): State<Arc<Shared>>,
    Path((_, name, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = SObject::from_name(&name).ok_or_else(ApiError::not_found)?;
    let field = object
        .external_ids()
        .iter()
        .find(|f| f.eq_ignore_ascii_case(&field))
        .copied()
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_FIELD",
                format!("Field name provided, {field} is not an External ID or indexed field for {object}"),
            )
        })?;
    handle(shared, Kind::Upsert(object, field), body).await
}
