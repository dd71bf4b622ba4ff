//! The HubSpot JSON shapes this client reads and writes.
//!
//! Reading is lenient where one bad row must not cost its page: a page's
//! `results` are kept as raw JSON values and each row is read on its own
//! ([`ObjectRow`], [`OwnerRow`]), so a malformed record is skipped by name
//! instead of failing the whole page. Shapes the client builds itself
//! (search requests, batch inputs) are typed.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A page of a list, search or owners endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPage {
    pub results: Vec<Value>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

impl ListPage {
    /// The `after` token of the next page; `None` when `paging` (or its
    /// `next`) is absent, which is the only end-of-results signal HubSpot
    /// gives: short and even empty pages can still carry a next page.
    pub fn next_after(&self) -> Option<String> {
        self.paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .map(|n| n.after.clone())
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextPage {
    #[serde(deserialize_with = "string_or_number")]
    pub after: String,
}

/// One CRM object (deal, contact, company, task) as HubSpot sends it. Every
/// field is optional here so that the reader, not serde, decides what is
/// wrong with a row and names it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectRow {
    #[serde(default)]
    pub id: Value,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default, rename = "createdAt")]
    pub created_at: Value,
    #[serde(default, rename = "updatedAt")]
    pub updated_at: Value,
    /// `{companies: {results: [{id, type}], paging?}, ...}` on list reads.
    #[serde(default)]
    pub associations: Map<String, Value>,
}

impl ObjectRow {
    /// The row's id for naming it: `id`, else the `hs_object_id` property.
    pub fn name_hint(raw: &Value) -> Option<String> {
        let id = raw.get("id").and_then(id_string);
        id.or_else(|| {
            raw.get("properties")
                .and_then(|p| p.get("hs_object_id"))
                .and_then(id_string)
        })
    }

    /// A string property; `Ok(None)` when absent, null or blank.
    pub fn text(&self, name: &str) -> Result<Option<&str>, String> {
        match self.properties.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!(
                "property {name} is not a string but {}",
                kind_of(other)
            )),
        }
    }
}

/// An id sent as a string (HubSpot's way) or, in some v4 answers, a number.
pub(crate) fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One owner of `GET /crm/v3/owners`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OwnerRow {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub teams: Vec<Team>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Team {
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /crm/v3/pipelines/deals`.
#[derive(Debug, Deserialize)]
pub(crate) struct Pipelines {
    pub results: Vec<Pipeline>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pipeline {
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub stages: Vec<PipelineStage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PipelineStage {
    pub id: String,
    #[serde(default)]
    pub display_order: i64,
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`: only the options.
#[derive(Debug, Deserialize)]
pub(crate) struct PropertyDefinition {
    #[serde(default)]
    pub options: Vec<PropertyOption>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropertyOption {
    pub value: String,
    #[serde(default)]
    pub display_order: i64,
}

/// `POST /crm/v3/objects/{type}/search`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    pub sorts: Vec<Sort>,
    pub properties: Vec<String>,
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FilterGroup {
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Filter {
    pub property_name: String,
    pub operator: &'static str,
    pub value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Sort {
    pub property_name: String,
    pub direction: &'static str,
}

/// The answer of every batch endpoint (create, update, read), 200, 201 or 207.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchResponse {
    #[serde(default)]
    pub results: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
}

/// One row of a 207's `errors`. HubSpot does not reliably say which input
/// it belongs to; `context` (e.g. `{"ids": ["123"]}`) and `message` are the
/// only clues.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct BatchError {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub context: Option<Value>,
    #[serde(default)]
    pub id: Option<Value>,
}

impl BatchError {
    /// `message (CATEGORY)`, for an outcome's reason.
    pub fn describe(&self) -> String {
        let message = self.message.as_deref().unwrap_or("no message");
        match &self.category {
            Some(category) => format!("{message} ({category})"),
            None => message.to_owned(),
        }
    }

    /// Every string in `id` and `context`, where an input's id may hide.
    pub fn clues(&self) -> Vec<String> {
        fn collect(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) => out.push(n.to_string()),
                Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                Value::Object(map) => map.values().for_each(|v| collect(v, out)),
                Value::Null | Value::Bool(_) => {}
            }
        }
        let mut out = Vec::new();
        if let Some(id) = &self.id {
            collect(id, &mut out);
        }
        if let Some(context) = &self.context {
            collect(context, &mut out);
        }
        out
    }
}

/// One input of a batch update.
#[derive(Debug, Serialize)]
pub(crate) struct UpdateInput {
    pub id: String,
    pub properties: Map<String, Value>,
}

/// One input of a batch create, with its associations inline.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateInput {
    pub properties: Map<String, Value>,
    pub associations: Vec<AssociationInput>,
    /// Echoed on the input's result and on its error row: how a
    /// multi-status answer says which input it speaks of.
    pub object_write_trace_id: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct AssociationInput {
    pub to: ObjectId,
    pub types: Vec<AssociationType>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ObjectId {
    pub id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssociationType {
    pub association_category: &'static str,
    pub association_type_id: u32,
}

/// `{inputs: [...]}`, the envelope of every batch request.
#[derive(Debug, Serialize)]
pub(crate) struct Inputs<T> {
    pub inputs: Vec<T>,
}

/// A v4 association batch-read input: an id, and where its own paging of
/// associated ids resumes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AssociationReadInput {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One row of `POST /crm/v4/associations/{from}/{to}/batch/read`:
/// `{from: {id}, to: [{toObjectId, associationTypes}], paging?}`.
#[derive(Debug, Deserialize)]
pub(crate) struct AssociationRow {
    pub from: AssociationFrom,
    #[serde(default)]
    pub to: Vec<AssociationTo>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssociationFrom {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssociationTo {
    #[serde(deserialize_with = "string_or_number")]
    pub to_object_id: String,
}

/// HubSpot's error body, for the dialect: `{status, message, correlationId,
/// category, subCategory?, context?}`, or the rate-limit variant with
/// `policyName` and `errorType`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub policy_name: Option<String>,
    #[serde(default)]
    pub error_type: Option<String>,
}

/// HubSpot sends ids and paging tokens as strings; accept numbers too.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {}",
            kind_of(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_without_paging_is_the_last() {
        let page: ListPage = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert_eq!(page.next_after(), None);
        let page: ListPage =
            serde_json::from_str(r#"{"results":[],"paging":{"next":{"after":"200","link":"x"}}}"#)
                .unwrap();
        assert_eq!(page.next_after().as_deref(), Some("200"));
    }

    #[test]
    fn v4_association_rows_accept_numeric_object_ids() {
        let row: AssociationRow = serde_json::from_str(
            r#"{"from":{"id":"1"},"to":[{"toObjectId":42,"associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":5,"label":"Primary"}]},{"toObjectId":"43","associationTypes":[]}]}"#,
        )
        .unwrap();
        let ids: Vec<_> = row.to.iter().map(|t| t.to_object_id.as_str()).collect();
        assert_eq!(ids, ["42", "43"]);
    }

    #[test]
    fn a_batch_error_offers_every_id_in_its_context_as_a_clue() {
        let error: BatchError = serde_json::from_str(
            r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"not found","context":{"ids":["7","9"]}}"#,
        )
        .unwrap();
        assert_eq!(error.clues(), ["7", "9"]);
        assert_eq!(error.describe(), "not found (OBJECT_NOT_FOUND)");
    }
}
