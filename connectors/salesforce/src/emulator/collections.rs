//! sObject Collections (facts 1.4): create (`POST`), update (`PATCH`) and
//! upsert by external id (`PATCH /{SObject}/{ExtIdField}`), at most
//! `collections_max` records, HTTP 200 for any well-formed request with
//! one result per record in input order, and `allOrNone` rolling every
//! row back when one fails.

use super::object::SObject;
use super::reply::{ApiError, json_reply, row_error};
use super::router::{Shared, json_body, lock};
use super::sobjects::matching;
use super::store::{Store, well_formed_id};
use super::write;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

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

async fn handle(shared: Arc<Shared>, kind: Kind, body: Bytes) -> Result<Response, ApiError> {
    let request = parse(&shared, &body)?;
    let (fail_rows, hold) = {
        let mut faults = lock(&shared.collections);
        (std::mem::take(&mut faults.fail_rows), faults.hold_create)
    };
    let owner = shared.tokens().user_id.clone();
    let (results, created_any) = {
        let mut store = shared.store_mut();
        let mut seen = BTreeSet::new();
        let plans: Vec<Plan> = request
            .records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                if i < fail_rows {
                    let id = record
                        .get("id")
                        .or_else(|| record.get("Id"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    return Plan::Failed(
                        id,
                        row_error(
                            "UNABLE_TO_LOCK_ROW",
                            "unable to obtain exclusive access to this record",
                            &[],
                        ),
                    );
                }
                plan(&store, kind, record, &owner, &mut seen)
            })
            .collect();
        let any_failed = plans.iter().any(|p| matches!(p, Plan::Failed(..)));
        let rollback = request.all_or_none && any_failed;
        let mut created_any = false;
        let results: Vec<Value> = plans
            .into_iter()
            .map(|plan| match plan {
                Plan::Failed(id, error) => failure(id, error, kind),
                _ if rollback => failure(
                    None,
                    row_error(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using AllOrNone header",
                        &[],
                    ),
                    kind,
                ),
                Plan::Insert(object, fields) => {
                    created_any = true;
                    let id = store.insert(object, fields, &owner);
                    success(id, kind, true)
                }
                Plan::Update(object, id, fields) => {
                    store.update(object, &id, fields);
                    success(id, kind, false)
                }
            })
            .collect();
        (results, created_any)
    };
    if created_any && !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    Ok(json_reply(StatusCode::OK, &Value::Array(results)))
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
