//! `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read`:
//! the associations of a batch of records to one object type.
//!
//! Not in the facts sheet: the shape follows HubSpot's API reference page
//! "Retrieve associations" (batch/get-associations, v4 and its 2026-03
//! twin): inputs `[{id, after?}]`, results `[{from:{id}, to:[{toObjectId,
//! associationTypes:[{category, typeId, label}]}], paging?}]`, and error
//! rows for ids with no association of the type (or no record). Search
//! results carry no associations, so an incremental client needs this call.
//! Up to 1,000 inputs per call since 2025-02 (fact 6.14); more is refused
//! whole, as every batch route refuses an oversized call.

use super::batch::{input_id, inputs, reply};
use super::object::association_type_id;
use super::objects::record_id;
use super::reply::ApiError;
use super::router::{Shared, json_body, object_type};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) async fn batch_read(
    State(shared): State<Arc<Shared>>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let from = object_type(&from)?;
    let to = object_type(&to)?;
    let body = json_body(&body)?;
    let knobs = shared.knobs();
    let inputs = inputs(&body, knobs.associations_batch_max)?;
    let store = shared.store();
    let started = store.clock.now_ms();
    let type_id = association_type_id(from, to);
    let live = &store.table(from).live;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in inputs {
        let id = input_id(input).unwrap_or_default();
        let Some(record) = record_id(&id).and_then(|n| live.get(&n)) else {
            missing.push(id);
            continue;
        };
        let targets: Vec<Value> = record
            .assoc
            .iter()
            .filter(|(object, _)| *object == to)
            .map(|(_, target)| {
                json!({
                    "toObjectId": target.to_string(),
                    "associationTypes": [{
                        "category": "HUBSPOT_DEFINED",
                        "typeId": type_id,
                        "label": null,
                    }],
                })
            })
            .collect();
        // A record with no association of the type is an error row, not an
        // empty result (?): clients must read such a 207 as "none".
        if targets.is_empty() {
            missing.push(id);
        } else {
            results.push(json!({ "from": { "id": id }, "to": targets }));
        }
    }
    let errors = missing
        .into_iter()
        .map(|id| {
            json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {} is associated with {} {id}.", to.singular(), from.singular()),
                "context": { "fromObjectId": [id] },
            })
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        started,
        store.clock.now_ms(),
        results,
        errors,
    ))
}
