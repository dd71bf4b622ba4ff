//! The batch routes (facts 3.3, 3.4): read, create, update and archive up
//! to `batch_max` inputs per call. A call over the maximum is refused whole
//! (400); inputs that fail on their own become error rows of a 207 while
//! the rest are committed.
//!
//! A create input may carry an `objectWriteTraceId`; its result echoes it,
//! and so does its error row (`context.objectWriteTraceId`), which is how
//! HubSpot's multi-status answers tell which input failed (not in the fact
//! sheet: HubSpot's API reference for batch create and its error-handling
//! guide, "Multi-status errors").

use super::clock;
use super::config::MissingInUpdate;
use super::object::{ObjectType, association_target};
use super::objects::{record_id, written};
use super::reply::ApiError;
use super::router::{Params, Shared, json_body, object_type};
use super::store::{Problem, Store};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// The outcome of one create input.
pub(crate) enum Created {
    Ok(u64),
    Failed(ApiError),
}

/// HubSpot's "Property values were not valid" error, listing each problem.
pub(crate) fn invalid_properties(problems: &[Problem]) -> ApiError {
    let listed: Vec<Value> = problems
        .iter()
        .map(|p| json!({"isValid": false, "message": p.message, "error": p.code, "name": p.name}))
        .collect();
    let errors = problems
        .iter()
        .map(|p| json!({"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}}))
        .collect();
    ApiError::validation(format!(
        "Property values were not valid: {}",
        Value::Array(listed)
    ))
    .with_errors(errors)
    .with_context(
        json!({"propertyName": problems.iter().map(|p| p.name.clone()).collect::<Vec<_>>()}),
    )
}

/// Checks and commits one create input `{properties, associations}`.
pub(crate) fn create_one(store: &mut Store, object: ObjectType, input: &Value) -> Created {
    let empty = Map::new();
    let properties = match input.get("properties") {
        None => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Created::Failed(ApiError::validation("properties must be an object")),
    };
    let values = match store.prepare(object, properties) {
        Ok(values) => values,
        Err(problems) => return Created::Failed(invalid_properties(&problems)),
    };
    if object == ObjectType::Tasks {
        let due = store.schema(object).id("hs_timestamp");
        if !values
            .iter()
            .any(|(id, v)| Some(*id) == due && !v.is_empty())
        {
            return Created::Failed(invalid_properties(&[Problem {
                name: "hs_timestamp".into(),
                code: "REQUIRED_PROPERTY",
                message: "Property \"hs_timestamp\" is required".into(),
            }]));
        }
    }
    let associations = match associations(store, object, input.get("associations")) {
        Ok(associations) => associations,
        Err(err) => return Created::Failed(err),
    };
    let mut values = values;
    if object == ObjectType::Tasks {
        let status = store.schema(object).id("hs_task_status");
        if let Some(status) = status
            && !values.iter().any(|(id, _)| *id == status)
        {
            values.push((status, "NOT_STARTED".into()));
        }
    }
    Created::Ok(store.create(object, &values, &associations))
}

/// Reads `associations: [{to: {id}, types: [{associationCategory, associationTypeId}]}]`;
/// every target must be a live record of the type the type id leads to.
fn associations(
    store: &Store,
    from: ObjectType,
    input: Option<&Value>,
) -> Result<Vec<(ObjectType, u64)>, ApiError> {
    let Some(input) = input else {
        return Ok(Vec::new());
    };
    let list = input
        .as_array()
        .ok_or_else(|| ApiError::validation("associations must be an array"))?;
    let mut out = Vec::new();
    for association in list {
        let to_id = association
            .pointer("/to/id")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .ok_or_else(|| ApiError::validation("association is missing to.id"))?;
        let types = association
            .get("types")
            .and_then(Value::as_array)
            .filter(|types| !types.is_empty())
            .ok_or_else(|| ApiError::validation("association is missing types"))?;
        for kind in types {
            let category = kind
                .get("associationCategory")
                .and_then(Value::as_str)
                .unwrap_or("");
            let type_id = kind
                .get("associationTypeId")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let target = (category == "HUBSPOT_DEFINED")
                .then(|| association_target(from, u32::try_from(type_id).unwrap_or(0)))
                .flatten()
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "{category} association type {type_id} is not valid from {}",
                        from.singular()
                    ))
                    .with_context(json!({"associationTypeId": [type_id.to_string()]}))
                })?;
            let exists = record_id(&to_id).filter(|id| store.table(target).live.contains_key(id));
            let Some(id) = exists else {
                return Err(ApiError::validation(format!(
                    "One or more associations are invalid: no {} with id {to_id}",
                    target.singular()
                ))
                .with_context(json!({"toObjectId": [to_id]})));
            };
            out.push((target, id));
        }
    }
    Ok(out)
}

pub(crate) fn inputs(body: &Value, max: usize) -> Result<&Vec<Value>, ApiError> {
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::validation("inputs must be an array"))?;
    if inputs.len() > max {
        return Err(ApiError::validation(format!(
            "Batch input size {} is over the limit of {max}",
            inputs.len()
        ))
        .with_context(json!({"inputs": [inputs.len().to_string()]})));
    }
    Ok(inputs)
}

pub(crate) fn input_id(input: &Value) -> Option<String> {
    let id = input.get("id")?;
    id.as_str()
        .map(str::to_owned)
        .or_else(|| id.as_u64().map(|n| n.to_string()))
}

/// An error row of a 207.
fn row(err: &ApiError) -> Value {
    let mut row = json!({
        "status": "error",
        "category": err.category,
        "message": err.message,
        "context": err.context.clone().unwrap_or_else(|| json!({})),
    });
    if !err.errors.is_empty() {
        row["errors"] = Value::Array(err.errors.clone());
    }
    row
}

/// An injected refusal. Of a create input, it names the input only
/// through its trace id, as HubSpot's do; of an update, the id (below).
fn injected_failure() -> ApiError {
    ApiError::validation("The input could not be processed. Please try again.")
}

/// An input's `objectWriteTraceId`.
fn trace_id(input: &Value) -> Option<&str> {
    input.get("objectWriteTraceId").and_then(Value::as_str)
}

/// Commits one create input, or refuses it as an injected failure: its
/// result, or its error row.
fn create_row(
    store: &mut Store,
    object: ObjectType,
    input: &Value,
    refuse: bool,
    trace_in_errors: bool,
) -> Result<Value, Value> {
    let created = if refuse {
        Created::Failed(injected_failure())
    } else {
        create_one(store, object, input)
    };
    match created {
        Created::Ok(id) => {
            let record = &store.table(object).live[&id];
            let selection = written(store, object, record);
            let mut result = store.render(object, record, &selection);
            if let Some(trace) = trace_id(input) {
                result["objectWriteTraceId"] = json!(trace);
            }
            Ok(result)
        }
        Created::Failed(err) => {
            let mut error_row = row(&err);
            if trace_in_errors && let Some(trace) = trace_id(input) {
                error_row["context"]["objectWriteTraceId"] = json!([trace]);
            }
            Err(error_row)
        }
    }
}

/// What a batch create made of its inputs, in input order.
struct CreateRun {
    started: i64,
    completed: i64,
    results: Vec<Value>,
    errors: Vec<Value>,
}

/// Commits `inputs` one at a time, pausing `pause` after each: the store
/// is locked per input, so reads and other writes go on between them.
async fn create_slowly(
    shared: Arc<Shared>,
    object: ObjectType,
    inputs: Vec<Value>,
    fail: usize,
    trace_in_errors: bool,
    pause: std::time::Duration,
) -> CreateRun {
    use std::sync::atomic::Ordering;
    /// Counts the create as running until it is dropped, however it ends.
    struct Running(Arc<Shared>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.creates_running.fetch_sub(1, Ordering::SeqCst);
        }
    }
    shared.creates_running.fetch_add(1, Ordering::SeqCst);
    let _running = Running(shared.clone());
    let started = shared.store().clock.now_ms();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        let row = {
            let mut store = shared.store_mut();
            create_row(&mut store, object, input, index < fail, trace_in_errors)
        };
        match row {
            Ok(result) => results.push(result),
            Err(error) => errors.push(error),
        }
        tokio::time::sleep(pause).await;
    }
    let completed = shared.store().clock.now_ms();
    CreateRun {
        started,
        completed,
        results,
        errors,
    }
}

/// The batch reply: `ok` when nothing failed, 207 otherwise.
pub(crate) fn reply(
    ok: StatusCode,
    started: i64,
    completed: i64,
    results: Vec<Value>,
    errors: Vec<Value>,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": clock::iso(started),
        "completedAt": clock::iso(completed),
    });
    let status = if errors.is_empty() {
        ok
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    (status, Json(body)).into_response()
}

/// `POST /crm/v3/objects/{type}/batch/read` `{inputs:[{id}], properties, propertiesWithHistory}`.
pub(crate) async fn read(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let body = json_body(&body)?;
    let knobs = shared.knobs();
    let inputs = inputs(&body, knobs.batch_max)?;
    let archived = Params::parse(raw.as_deref()).flag("archived")?;
    let names = |key: &str| -> Option<Vec<String>> {
        body.get(key)?.as_array().map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    let store = shared.store();
    let started = store.clock.now_ms();
    let mut selection = super::store::Selection {
        props: store.select(object, names("properties").as_deref()),
        history: names("propertiesWithHistory")
            .map(|n| store.named(object, &n))
            .unwrap_or_default(),
        assoc: Vec::new(),
        null_for_unset: knobs.null_for_unset,
    };
    selection.props.sort_unstable();
    let table = store.table(object);
    let records = if archived {
        &table.archived
    } else {
        &table.live
    };
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    for input in inputs {
        let id = input_id(input).unwrap_or_default();
        match record_id(&id).and_then(|n| records.get(&n)) {
            Some(record) if seen.insert(record.id) => {
                results.push(store.render(object, record, &selection))
            }
            Some(_) => {}
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                object.shouting()
            ),
            "context": {"ids": missing},
        })]
    };
    Ok(reply(
        StatusCode::OK,
        started,
        store.clock.now_ms(),
        results,
        errors,
    ))
}

/// `POST /crm/v3/objects/{type}/batch/create` `{inputs:[{properties, associations, objectWriteTraceId?}]}`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let body = json_body(&body)?;
    let knobs = shared.knobs();
    let inputs = inputs(&body, knobs.batch_max)?.clone();
    let (fail, hold) = {
        let mut faults = shared.batch();
        (std::mem::take(&mut faults.fail_inputs), faults.hold_create)
    };
    let trace_in_errors = knobs.trace_ids_in_errors;
    let mut run = match knobs.detached_batch_create {
        Some(pause) => {
            // Spawned, not awaited in place: axum drops this handler when
            // the client disconnects, and the work must go on regardless.
            let work = create_slowly(shared.clone(), object, inputs, fail, trace_in_errors, pause);
            tokio::spawn(work)
                .await
                .map_err(|_| ApiError::internal("the batch create did not finish"))?
        }
        None => {
            let mut store = shared.store_mut();
            let started = store.clock.now_ms();
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for (index, input) in inputs.iter().enumerate() {
                match create_row(&mut store, object, input, index < fail, trace_in_errors) {
                    Ok(result) => results.push(result),
                    Err(error) => errors.push(error),
                }
            }
            CreateRun {
                started,
                completed: store.clock.now_ms(),
                results,
                errors,
            }
        }
    };
    if knobs.reverse_batch_results {
        run.results.reverse();
    }
    let response = reply(
        StatusCode::CREATED,
        run.started,
        run.completed,
        run.results,
        run.errors,
    );
    if !hold.is_zero() {
        // Committed already: a client that gives up now has written.
        tokio::time::sleep(hold).await;
    }
    Ok(response)
}

/// `POST /crm/v3/objects/{type}/batch/update` `{inputs:[{id, properties}]}`.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let body = json_body(&body)?;
    let knobs = shared.knobs();
    let inputs = inputs(&body, knobs.batch_max)?;
    let mut ids = HashSet::new();
    for input in inputs {
        if let Some(id) = input_id(input)
            && !ids.insert(id)
        {
            return Err(ApiError::validation("Duplicate IDs found in batch input"));
        }
    }
    let fail = std::mem::take(&mut shared.batch().fail_inputs);
    let mut store = shared.store_mut();
    if knobs.missing_in_batch_update == MissingInUpdate::WholeBatch {
        let missing: Vec<String> = inputs
            .iter()
            .map(|input| input_id(input).unwrap_or_default())
            .filter(|id| record_id(id).is_none_or(|id| !store.table(object).live.contains_key(&id)))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::not_found(format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                object.shouting()
            ))
            .with_context(json!({ "ids": missing })));
        }
    }
    let started = store.clock.now_ms();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        let id_text = input_id(input).unwrap_or_default();
        if index < fail {
            errors.push(row(
                &injected_failure().with_context(json!({"ids": [id_text]}))
            ));
            continue;
        }
        let Some(id) = record_id(&id_text).filter(|id| store.table(object).live.contains_key(id))
        else {
            errors.push(row(&ApiError::not_found(
                "Object not found.  objectId are usually numeric.",
            )
            .with_context(json!({"ids": [id_text]}))));
            continue;
        };
        let Some(properties) = input.get("properties").and_then(Value::as_object) else {
            errors.push(row(&ApiError::validation("properties must be an object")
                .with_context(json!({"ids": [id_text]}))));
            continue;
        };
        match store.prepare(object, properties) {
            Ok(values) => {
                store.update(object, id, &values, knobs.lifecycle_forward_only);
                let record = &store.table(object).live[&id];
                let selection = written(&store, object, record);
                results.push(store.render(object, record, &selection));
            }
            Err(problems) => {
                let err = invalid_properties(&problems);
                let mut error_row = row(&err);
                error_row["context"]["ids"] = json!([id_text]);
                errors.push(error_row);
            }
        }
    }
    if knobs.reverse_batch_results {
        results.reverse();
    }
    Ok(reply(
        StatusCode::OK,
        started,
        store.clock.now_ms(),
        results,
        errors,
    ))
}

/// `POST /crm/v3/objects/{type}/batch/archive` `{inputs:[{id}]}`: 204.
pub(crate) async fn archive(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let body = json_body(&body)?;
    let knobs = shared.knobs();
    let inputs = inputs(&body, knobs.batch_max)?;
    let mut store = shared.store_mut();
    for input in inputs {
        if let Some(id) = input_id(input).as_deref().and_then(record_id) {
            store.archive(object, id);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
