//! Checks a record body for a create or update the way Salesforce refuses
//! one: unknown or read-only fields, wrong types, malformed or dangling
//! ids, restricted picklists, required fields; each refusal is one
//! per-row error `{statusCode, message, fields}`.

use super::clock;
use super::object::{FieldType, SObject, TASK_PRIORITIES, TASK_STATUSES};
use super::reply::row_error;
use super::store::{Store, well_formed_id};
use serde_json::{Map, Value};

/// The fields to write, canonically named and in wire form, or the row's
/// error.
pub(crate) fn check(
    store: &Store,
    object: SObject,
    body: &Map<String, Value>,
    creating: bool,
    default_owner: &str,
) -> Result<Map<String, Value>, Value> {
    let mut out = Map::new();
    for (name, value) in body {
        if name == "attributes" || (!creating && name.eq_ignore_ascii_case("Id")) {
            continue;
        }
        let Some((field, ty)) = object.field(name) else {
            return Err(row_error(
                "INVALID_FIELD",
                &format!("No such column '{name}' on sobject of type {object}"),
                &[],
            ));
        };
        if object.read_only(field) {
            let message = if field == "Id" && creating {
                "cannot specify Id in an insert call".to_owned()
            } else {
                format!(
                    "Unable to create/update fields: {field}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
                )
            };
            let code = if field == "Id" {
                "INVALID_FIELD"
            } else {
                "INVALID_FIELD_FOR_INSERT_UPDATE"
            };
            return Err(row_error(code, &message, &[field]));
        }
        out.insert(field.to_owned(), typed(store, field, ty, value)?);
    }
    if object == SObject::Task {
        for (field, allowed) in [
            ("Status", TASK_STATUSES.map(|(s, _)| s).to_vec()),
            ("Priority", TASK_PRIORITIES.to_vec()),
        ] {
            match out.get(field) {
                Some(Value::String(v)) if allowed.contains(&v.as_str()) => {}
                None if creating => {
                    let default = if field == "Status" {
                        "Not Started"
                    } else {
                        "Normal"
                    };
                    out.insert(field.into(), Value::String(default.into()));
                }
                None => {}
                Some(other) => {
                    let shown = other.as_str().unwrap_or_default();
                    return Err(row_error(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        &format!("{field}: bad value for restricted picklist field: {shown}"),
                        &[field],
                    ));
                }
            }
        }
    }
    if creating {
        let missing: Vec<&str> = object
            .required()
            .iter()
            .copied()
            .filter(|f| out.get(*f).is_none_or(Value::is_null))
            .collect();
        if !missing.is_empty() {
            return Err(row_error(
                "REQUIRED_FIELD_MISSING",
                &format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
        if object.field("OwnerId").is_some() && out.get("OwnerId").is_none_or(Value::is_null) {
            out.insert("OwnerId".into(), Value::String(default_owner.into()));
        }
    }
    Ok(out)
}

fn typed(store: &Store, field: &'static str, ty: FieldType, value: &Value) -> Result<Value, Value> {
    let wrong = |what: &str| {
        row_error(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            &format!("{field}: value not of required type: {what}"),
            &[field],
        )
    };
    if value.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        FieldType::Bool if value.is_boolean() => Ok(value.clone()),
        FieldType::Bool => Err(wrong(&value.to_string())),
        FieldType::Number if value.is_number() => Ok(value.clone()),
        FieldType::Number => Err(wrong(&value.to_string())),
        FieldType::Text | FieldType::LongText | FieldType::Id => value
            .as_str()
            .map(|_| value.clone())
            .ok_or_else(|| wrong(&value.to_string())),
        FieldType::Date => {
            let text = value.as_str().ok_or_else(|| wrong(&value.to_string()))?;
            let ms = clock::parse_date(text)
                .or_else(|| clock::parse_datetime(text))
                .ok_or_else(|| wrong(text))?;
            Ok(Value::String(clock::date(ms)))
        }
        FieldType::DateTime => {
            let text = value.as_str().ok_or_else(|| wrong(&value.to_string()))?;
            let ms = clock::parse_datetime(text).ok_or_else(|| wrong(text))?;
            Ok(Value::String(clock::datetime(ms)))
        }
        FieldType::Reference(targets) => {
            let text = value.as_str().ok_or_else(|| wrong(&value.to_string()))?;
            if !well_formed_id(text) {
                return Err(row_error(
                    "MALFORMED_ID",
                    &format!("{field}: id value of incorrect type: {text}"),
                    &[field],
                ));
            }
            match store.live_anywhere(text) {
                Some((object, record)) if targets.contains(&object) => {
                    Ok(Value::String(record.id.clone()))
                }
                _ => Err(row_error(
                    "INVALID_CROSS_REFERENCE_KEY",
                    &format!("invalid cross reference id: {field}"),
                    &[field],
                )),
            }
        }
    }
}
