//! Owners, pipelines, property definitions and the daily usage figure
//! (facts 3.3, 3.5).

use super::clock;
use super::object::ObjectType;
use super::reply::ApiError;
use super::router::{Params, Shared, object_type};
use super::store::Pipeline;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /crm/v3/owners?limit&after&email&archived`: ids ascending, 100 per
/// page by default; `archived=true` lists only deactivated owners.
pub(crate) async fn owners(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref());
    let knobs = shared.knobs();
    let limit = params.number("limit")?.unwrap_or(100);
    if limit == 0 || limit > knobs.owners_max_limit {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {}",
            knobs.owners_max_limit
        )));
    }
    let after = match params.get("after") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("Invalid value for after: {text}")))?,
    };
    let archived = params.flag("archived")?;
    let email = params.get("email").map(str::to_lowercase);
    let store = shared.store();
    let mut matching = store.owners.iter().filter(|owner| {
        owner.archived == archived
            && owner.id >= after
            && email
                .as_ref()
                .is_none_or(|e| owner.email.to_lowercase() == *e)
    });
    let results: Vec<Value> = matching
        .by_ref()
        .take(limit)
        .map(|owner| owner.render())
        .collect();
    let mut body = json!({ "results": results });
    if let Some(next) = matching.next() {
        let next = next.id.to_string();
        let mut query = params.without("after");
        query.push(("after".into(), next.clone()));
        body["paging"] =
            json!({"next": {"after": next, "link": shared.link("/crm/v3/owners", &query)}});
    }
    Ok(Json(body).into_response())
}

/// `GET /crm/v3/owners/{ownerId}?idProperty=id|userId&archived`.
pub(crate) async fn owner(
    State(shared): State<Arc<Shared>>,
    Path(owner_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref());
    let archived = params.flag("archived")?;
    let by_user = params.get("idProperty") == Some("userId");
    let store = shared.store();
    let found = store.owners.iter().find(|owner| {
        let key = if by_user { owner.user_id } else { owner.id };
        key.to_string() == owner_id && owner.archived == archived
    });
    match found {
        Some(owner) => Ok(Json(owner.render()).into_response()),
        None => Err(ApiError::not_found(format!("Owner {owner_id} not found"))),
    }
}

fn pipelines_of<'a>(
    shared: &'a super::store::Store,
    segment: &str,
) -> Result<&'a [Pipeline], ApiError> {
    match object_type(segment)? {
        ObjectType::Deals => Ok(&shared.deal_pipelines),
        ObjectType::Tasks => Ok(&shared.task_pipelines),
        other => Err(ApiError::validation(format!(
            "{} have no pipelines",
            other.plural()
        ))),
    }
}

/// `GET /crm/v3/pipelines/{objectType}`: every pipeline, no paging.
pub(crate) async fn pipelines(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
) -> Result<Response, ApiError> {
    let store = shared.store();
    let results: Vec<Value> = pipelines_of(&store, &segment)?
        .iter()
        .map(Pipeline::render)
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// `GET /crm/v3/pipelines/{objectType}/{pipelineId}`.
pub(crate) async fn pipeline(
    State(shared): State<Arc<Shared>>,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = shared.store();
    pipelines_of(&store, &segment)?
        .iter()
        .find(|p| p.id == id)
        .map(|p| Json(p.render()).into_response())
        .ok_or_else(|| ApiError::not_found(format!("Pipeline {id} not found")))
}

fn render_property(object: ObjectType, def: &super::object::PropDef, order: usize) -> Value {
    let options: Vec<Value> = def
        .options
        .iter()
        .enumerate()
        .map(|(i, (value, label))| json!({"label": label, "value": value, "displayOrder": i, "hidden": false}))
        .collect();
    let at = clock::iso(1_577_836_800_000);
    json!({
        "name": def.name,
        "label": def.label,
        "type": def.kind.type_name(),
        "fieldType": def.kind.field_type(),
        "description": "",
        "groupName": format!("{}information", object.singular()),
        "options": options,
        "displayOrder": order,
        "calculated": false,
        "externalOptions": false,
        "hasUniqueValue": false,
        "hidden": false,
        "hubspotDefined": def.hubspot_defined,
        "formField": !def.read_only,
        "modificationMetadata": {
            "archivable": !def.hubspot_defined,
            "readOnlyDefinition": def.hubspot_defined,
            "readOnlyValue": def.read_only,
        },
        "createdAt": at,
        "updatedAt": at,
        "archived": false,
    })
}

/// `GET /crm/v3/properties/{objectType}`.
pub(crate) async fn properties(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let store = shared.store();
    let results: Vec<Value> = store
        .schema(object)
        .defs
        .iter()
        .enumerate()
        .map(|(i, def)| render_property(object, def, i))
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`: for
/// `lifecyclestage`, the stages in order.
pub(crate) async fn property(
    State(shared): State<Arc<Shared>>,
    Path((segment, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let store = shared.store();
    let schema = store.schema(object);
    let id = schema.id(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "Unable to find property {name} for object type {}",
            object.type_id()
        ))
    })?;
    Ok(Json(render_property(object, schema.def(id), usize::from(id))).into_response())
}

/// `GET /account-info/v3/api-usage/daily/private-apps`.
pub(crate) async fn daily_usage(State(shared): State<Arc<Shared>>) -> Response {
    let knobs = shared.knobs();
    let used = shared.limiter().daily_used();
    let now = shared.store().clock.now_ms();
    let day = 86_400_000;
    Json(json!({
        "results": [{
            "name": "private-apps-api-calls-daily",
            "usageLimit": knobs.limits.daily,
            "currentUsage": used,
            "collectedAt": clock::iso(now),
            "fetchStatus": "SUCCESS",
            "resetsAt": clock::iso((now / day + 1) * day),
        }]
    }))
    .into_response()
}
