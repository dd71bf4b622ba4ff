//! Single-record routes (facts 1.4), getDeleted (facts 1.3) and `/limits`
//! (facts 1.5).

use super::clock;
use super::object::SObject;
use super::query::{render, to_minute};
use super::reply::{ApiError, json_reply};
use super::router::{Shared, UNLIMITED_MAX, json_body, lock};
use super::write;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn sobject(name: &str) -> Result<SObject, ApiError> {
    SObject::from_name(name).ok_or_else(ApiError::not_found)
}

fn object_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match json_body(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from an array or value",
        )),
    }
}

/// A row error as a whole-request 400 array.
fn refused(error: &Value) -> ApiError {
    ApiError::bad_request(
        match error["statusCode"].as_str().unwrap_or("INVALID_FIELD") {
            "INVALID_FIELD" => "INVALID_FIELD",
            "INVALID_FIELD_FOR_INSERT_UPDATE" => "INVALID_FIELD_FOR_INSERT_UPDATE",
            "MALFORMED_ID" => "MALFORMED_ID",
            "INVALID_CROSS_REFERENCE_KEY" => "INVALID_CROSS_REFERENCE_KEY",
            "REQUIRED_FIELD_MISSING" => "REQUIRED_FIELD_MISSING",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" => "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            _ => "INVALID_TYPE_ON_FIELD_IN_RECORD",
        },
        error["message"].as_str().unwrap_or_default(),
    )
}

/// `GET /limits`.
pub(crate) async fn limits(State(shared): State<Arc<Shared>>) -> Response {
    let used = *lock(&shared.used);
    let max = shared.knobs().daily_limit.unwrap_or(UNLIMITED_MAX);
    json_reply(
        StatusCode::OK,
        &json!({
            "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
            "DailyBulkApiRequests": {"Max": 10000, "Remaining": 10000},
        }),
    )
}

/// `GET /sobjects/{SObject}/deleted/?start=&end=`.
pub(crate) async fn deleted(
    State(shared): State<Arc<Shared>>,
    Path((_, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let object = sobject(&name)?;
    let when = |key: &str| {
        let text = params.get(key).ok_or_else(|| {
            ApiError::bad_request("MISSING_ARGUMENT", format!("{key} parameter not specified"))
        })?;
        clock::parse_datetime(text).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_REPLICATION_DATE",
                format!("invalid {key} date: {text}"),
            )
        })
    };
    let (start, end) = (when("start")?, when("end")?);
    let store = shared.store();
    let now = store.clock.now_ms();
    let window = i64::try_from(shared.knobs().deleted_window.as_millis()).unwrap_or(i64::MAX);
    let earliest = now - window;
    if start < earliest {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            "startDate is before the earliest date available in the delete log",
        ));
    }
    if end <= start {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            "endDate must be after startDate",
        ));
    }
    let latest = end.min(now);
    let deleted: Vec<Value> = store
        .deletions(object)
        .into_iter()
        .filter(|(at, _)| *at >= start && *at <= end)
        .map(|(at, id)| json!({"id": id, "deletedDate": clock::datetime(at)}))
        .collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "deletedRecords": deleted,
            "earliestDateAvailable": to_minute(earliest),
            "latestDateCovered": to_minute(latest),
        }),
    ))
}

/// `GET /sobjects/{SObject}/{id}`: every field.
pub(crate) async fn read(
    State(shared): State<Arc<Shared>>,
    Path((version, name, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let object = sobject(&name)?;
    let store = shared.store();
    let record = store
        .get(object, &id)
        .filter(|r| r.deleted_ms.is_none())
        .ok_or_else(ApiError::not_found)?;
    let names: Vec<String> = record.fields.keys().cloned().collect();
    Ok(json_reply(
        StatusCode::OK,
        &render(&version, object, record, names.iter().map(String::as_str)),
    ))
}

/// `POST /sobjects/{SObject}` → 201 `{id, success, errors}`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path((_, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = sobject(&name)?;
    if !object.writable() {
        return Err(ApiError::bad_request(
            "INVALID_TYPE",
            format!("entity type {object} does not support create"),
        ));
    }
    let body = object_body(&body)?;
    let owner = shared.tokens().user_id.clone();
    let mut store = shared.store_mut();
    let fields = write::check(&store, object, &body, true, &owner).map_err(|e| refused(&e))?;
    let id = store.insert(object, fields, &owner);
    Ok(json_reply(
        StatusCode::CREATED,
        &json!({"id": id, "success": true, "errors": []}),
    ))
}

/// `PATCH /sobjects/{SObject}/{id}` → 204.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path((_, name, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = sobject(&name)?;
    let body = object_body(&body)?;
    let owner = shared.tokens().user_id.clone();
    let mut store = shared.store_mut();
    let record = store.get(object, &id).ok_or_else(ApiError::not_found)?;
    if record.deleted_ms.is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ENTITY_IS_DELETED",
            "entity is deleted",
        ));
    }
    if !object.writable() {
        return Err(ApiError::bad_request(
            "INVALID_TYPE",
            format!("entity type {object} does not support update"),
        ));
    }
    let id = record.id.clone();
    let fields = write::check(&store, object, &body, false, &owner).map_err(|e| refused(&e))?;
    store.update(object, &id, fields);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /sobjects/{SObject}/{ExtIdField}/{value}`: 201 created, 200 (or
/// 204, a knob) updated, 300 when several records match, 404 when the
/// field is no external id.
pub(crate) async fn upsert(
    State(shared): State<Arc<Shared>>,
    Path((version, name, field, value)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = sobject(&name)?;
    let field = object
        .external_ids()
        .iter()
        .find(|f| f.eq_ignore_ascii_case(&field))
        .copied()
        .ok_or_else(ApiError::not_found)?;
    let mut body = object_body(&body)?;
    body.insert(field.to_owned(), Value::String(value.clone()));
    let owner = shared.tokens().user_id.clone();
    let mut store = shared.store_mut();
    let matches = matching(&store, object, field, &value);
    match matches.as_slice() {
        [] => {
            let fields =
                write::check(&store, object, &body, true, &owner).map_err(|e| refused(&e))?;
            let id = store.insert(object, fields, &owner);
            Ok(json_reply(
                StatusCode::CREATED,
                &json!({"id": id, "success": true, "errors": [], "created": true}),
            ))
        }
        [id] => {
            let id = id.clone();
            let fields =
                write::check(&store, object, &body, false, &owner).map_err(|e| refused(&e))?;
            store.update(object, &id, fields);
            if shared.knobs().upsert_update_returns_body {
                Ok(json_reply(
                    StatusCode::OK,
                    &json!({"id": id, "success": true, "errors": [], "created": false}),
                ))
            } else {
                Ok(StatusCode::NO_CONTENT.into_response())
            }
        }
        many => {
            let urls: Vec<String> = many
                .iter()
                .map(|id| format!("/services/data/{version}/sobjects/{object}/{id}"))
                .collect();
            Ok(json_reply(StatusCode::MULTIPLE_CHOICES, &json!(urls)))
        }
    }
}

/// The live records whose `field` is `value`.
pub(crate) fn matching(
    store: &super::store::Store,
    object: SObject,
    field: &str,
    value: &str,
) -> Vec<String> {
    store
        .table(object)
        .values()
        .filter(|r| r.deleted_ms.is_none() && r.get(field).and_then(Value::as_str) == Some(value))
        .map(|r| r.id.clone())
        .collect()
}
