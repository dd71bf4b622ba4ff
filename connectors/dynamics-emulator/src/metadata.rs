//! Choice metadata, for writing a choice column by its label (brief (?)):
//! `GET /EntityDefinitions(LogicalName='<table>')/Attributes(LogicalName='<column>')/Microsoft.Dynamics.CRM.<Picklist|State|Status>AttributeMetadata`
//! answers the column's options with their labels; a column that is not a
//! choice of that type is 404 (?).

use super::cell::Guid;
use super::render::choice_options;
use super::reply::{ApiError, Reply};
use super::router::{ApiRequest, Shared};
use super::table::{Kind, Table};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// `Name(LogicalName='x')` -> `x`.
fn logical_name<'a>(segment: &'a str, name: &str) -> Option<&'a str> {
    segment
        .strip_prefix(name)?
        .strip_prefix("(LogicalName='")?
        .strip_suffix("')")
}

/// A stable id for a metadata item, from its names.
fn metadata_id(parts: &[&str]) -> String {
    let mut bytes = [0u8; 16];
    for (half, seed) in [(0, 0xcbf2_9ce4_8422_2325u64), (8, 0x8422_2325_cbf2_9ce4u64)] {
        let mut hash = seed;
        for b in parts.join("/").bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        bytes[half..half + 8].copy_from_slice(&hash.to_be_bytes());
    }
    Guid(bytes).to_string()
}

pub(crate) fn choice(shared: &Shared, request: &ApiRequest) -> Result<Reply, ApiError> {
    let path = percent_encoding::percent_decode_str(&request.path)
        .decode_utf8_lossy()
        .into_owned();
    let not_found = || ApiError::no_resource(&path);
    let segments: Vec<&str> = path.split('/').collect();
    let [entity, attribute, cast] = segments.as_slice() else {
        return Err(not_found());
    };
    let entity = logical_name(entity, "EntityDefinitions").ok_or_else(not_found)?;
    let attribute = logical_name(attribute, "Attributes").ok_or_else(not_found)?;
    let cast = cast
        .strip_prefix("Microsoft.Dynamics.CRM.")
        .ok_or_else(not_found)?;
    let table = Table::by_logical_name(entity).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!("Could not find entity with name '{entity}'."),
        )
    })?;
    let column = table.column(attribute, None).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!("Could not find attribute with name '{attribute}' on entity '{entity}'."),
        )
    })?;
    let kind = table.columns()[column].kind;
    let fits = matches!(
        (cast, kind),
        ("PicklistAttributeMetadata", Kind::Choice(_))
            | ("StateAttributeMetadata", Kind::State(_))
            | ("StatusAttributeMetadata", Kind::Status(_))
    );
    if !fits {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!("The attribute '{attribute}' of entity '{entity}' is not of type '{cast}'."),
        ));
    }
    let store = shared.store();
    let options: Vec<Value> = choice_options(&store, table, column)
        .unwrap_or_default()
        .into_iter()
        .map(|(value, label)| {
            let localized = json!({"Label": label, "LanguageCode": 1033});
            let mut option = json!({
                "Value": value,
                "Label": {"LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized},
            });
            if let Kind::Status(statuses) = kind
                && let Some((_, _, state)) = statuses.iter().find(|(v, _, _)| *v == value)
            {
                option["State"] = json!(state);
            }
            option
        })
        .collect();
    let expand_options = request
        .options()
        .iter()
        .any(|(k, v)| k == "$expand" && v.contains("OptionSet"));
    let mut body = json!({
        "@odata.context": format!(
            "{}$metadata#EntityDefinitions('{entity}')/Attributes/Microsoft.Dynamics.CRM.{cast}(LogicalName,OptionSet(Options))/$entity",
            shared.root()
        ),
        "LogicalName": attribute,
        "MetadataId": metadata_id(&[entity, attribute]),
    });
    if expand_options {
        body["OptionSet"] = json!({
            "MetadataId": metadata_id(&[entity, attribute, "OptionSet"]),
            "Options": options,
        });
    }
    Ok(Reply::json(StatusCode::OK, body.to_string()))
}
