//! The basic object routes (facts 3.3, 3.4): list a page, read, create,
//! update and archive one record.
//!
//! A list page is a range scan of the id-ordered map, so paging through
//! 100,000 records costs one page's work per page.

use super::batch::{self, Created};
use super::config::{Knobs, OverMax};
use super::object::ObjectType;
use super::reply::ApiError;
use super::router::{Params, Shared, json_body, object_type};
use super::store::{Record, Selection, Store};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// What a request asks to see of each record.
pub(crate) fn selection(
    store: &Store,
    object: ObjectType,
    params: &Params,
    knobs: &Knobs,
) -> Selection {
    Selection {
        props: store.select(object, params.list("properties").as_deref()),
        history: params
            .list("propertiesWithHistory")
            .map(|names| store.named(object, &names))
            .unwrap_or_default(),
        assoc: params
            .list("associations")
            .unwrap_or_default()
            .iter()
            .filter_map(|name| ObjectType::from_path(name))
            .collect(),
        null_for_unset: knobs.null_for_unset,
    }
}

/// Every stored property of a record, plus the ones always returned: what
/// a write's reply shows.
pub(crate) fn written(store: &Store, object: ObjectType, record: &Record) -> Selection {
    let schema = store.schema(object);
    let mut props: Vec<_> = schema
        .defs
        .iter()
        .enumerate()
        .filter(|(i, _)| record.props.get(*i as u16).is_some())
        .map(|(i, _)| i as u16)
        .collect();
    props.extend(schema.always.iter().copied());
    props.sort_unstable();
    props.dedup();
    Selection {
        props,
        ..Selection::default()
    }
}

pub(crate) fn record_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// `GET /crm/v3/objects/{type}`: ids ascending, `after` is the next id.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let params = Params::parse(raw.as_deref());
    let knobs = shared.knobs();
    let with_history = params.list("propertiesWithHistory").is_some();
    let max = if with_history {
        knobs.list.history_max_limit
    } else {
        knobs.list.max_limit
    };
    let mut limit = params.number("limit")?.unwrap_or(knobs.list.default_limit);
    if limit == 0 {
        return Err(ApiError::validation("limit must be at least 1"));
    }
    if limit > max {
        match knobs.list.over_max {
            OverMax::Reject => {
                return Err(ApiError::validation(format!(
                    "limit of {limit} is over the maximum of {max}"
                )));
            }
            OverMax::Clamp => limit = max,
        }
    }
    let asked_after = params.get("after");
    if let Some(text) = asked_after
        && knobs.list.refuse_after.contains(&object)
    {
        return Err(ApiError::validation(format!(
            "Invalid value for after: {text}"
        )));
    }
    let after = match asked_after {
        None => 0,
        Some(text) => record_id(text)
            .ok_or_else(|| ApiError::validation(format!("Invalid value for after: {text}")))?,
    };
    let archived = params.flag("archived")?;
    let store = shared.store();
    let selection = selection(&store, object, &params, &knobs);
    let table = store.table(object);
    let records = if archived {
        &table.archived
    } else {
        &table.live
    };
    let mut range = records.range(after..);
    let results: Vec<Value> = range
        .by_ref()
        .take(limit)
        .map(|(_, record)| store.render(object, record, &selection))
        .collect();
    let mut body = json!({ "results": results });
    let next = match asked_after {
        Some(asked) if knobs.list.repeat_after.contains(&object) => Some(asked.to_owned()),
        _ => range.next().map(|(next, _)| next.to_string()),
    };
    if let Some(next) = next {
        let mut query = params.without("after");
        query.push(("after".into(), next.clone()));
        let link = shared.link(&format!("/crm/v3/objects/{}", object.plural()), &query);
        body["paging"] = json!({"next": {"after": next, "link": link}});
    }
    Ok(Json(body).into_response())
}

/// `GET /crm/v3/objects/{type}/{id}`.
pub(crate) async fn read(
    State(shared): State<Arc<Shared>>,
    Path((segment, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let params = Params::parse(raw.as_deref());
    let knobs = shared.knobs();
    let archived = params.flag("archived")?;
    let store = shared.store();
    let table = store.table(object);
    let records = if archived {
        &table.archived
    } else {
        &table.live
    };
    let record = record_id(&id)
        .and_then(|id| records.get(&id))
        .ok_or_else(object_not_found)?;
    let selection = selection(&store, object, &params, &knobs);
    Ok(Json(store.render(object, record, &selection)).into_response())
}

/// `POST /crm/v3/objects/{type}`: 201 and the new record.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let input = json_body(&body)?;
    let mut store = shared.store_mut();
    match batch::create_one(&mut store, object, &input) {
        Created::Ok(id) => {
            let record = &store.table(object).live[&id];
            let selection = written(&store, object, record);
            Ok((
                StatusCode::CREATED,
                Json(store.render(object, record, &selection)),
            )
                .into_response())
        }
        Created::Failed(err) => Err(err),
    }
}

/// `PATCH /crm/v3/objects/{type}/{id}`: 200 and the record.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path((segment, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let input = json_body(&body)?;
    let properties = input
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::validation("properties must be an object"))?;
    let forward_only = shared.knobs().lifecycle_forward_only;
    let mut store = shared.store_mut();
    let id = record_id(&id)
        .filter(|id| store.table(object).live.contains_key(id))
        .ok_or_else(object_not_found)?;
    let values = store
        .prepare(object, properties)
        .map_err(|problems| batch::invalid_properties(&problems))?;
    store.update(object, id, &values, forward_only);
    let record = &store.table(object).live[&id];
    let selection = written(&store, object, record);
    Ok(Json(store.render(object, record, &selection)).into_response())
}

/// `DELETE /crm/v3/objects/{type}/{id}`: archives it; 204 either way.
pub(crate) async fn archive(
    State(shared): State<Arc<Shared>>,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    if let Some(id) = record_id(&id) {
        shared.store_mut().archive(object, id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) fn object_not_found() -> ApiError {
    ApiError::not_found("Object not found.  objectId are usually numeric.")
}
