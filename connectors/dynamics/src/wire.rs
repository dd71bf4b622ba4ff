//! Dataverse's JSON as this client reads it: a collection page (rows, next
//! link, delta link), the error body every failure comes in, and the
//! annotation names `odata.include-annotations="*"` adds. Rows stay loose
//! JSON maps until `normalize` reads them, so that one malformed row costs
//! only itself.

use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) type Row = Map<String, Value>;

/// A column's display label (a choice's, a lookup target's name).
pub(crate) const FORMATTED: &str = "@OData.Community.Display.V1.FormattedValue";
/// The table a lookup points into (`systemuser`, `team`, `account`).
pub(crate) const LOOKUP_TABLE: &str = "@Microsoft.Dynamics.CRM.lookuplogicalname";

/// One page of a collection, or of a change feed.
#[derive(Debug, Deserialize)]
pub(crate) struct Collection {
    #[serde(default)]
    pub(crate) value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    pub(crate) next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub(crate) delta_link: Option<String>,
}

/// `{"error": {"code": "0x…", "message": "…"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// The code and message of an error body, if it is one.
pub(crate) fn error_of(body: &[u8]) -> Option<(String, String)> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    Some((parsed.error.code, parsed.error.message))
}

/// A choice column's metadata, as the `…AttributeMetadata` cast with its
/// `OptionSet` expanded reads.
#[derive(Debug, Deserialize)]
pub(crate) struct AttributeMetadata {
    #[serde(rename = "OptionSet")]
    option_set: OptionSet,
}

#[derive(Debug, Deserialize)]
struct OptionSet {
    #[serde(rename = "Options", default)]
    options: Vec<OptionMetadata>,
}

#[derive(Debug, Deserialize)]
struct OptionMetadata {
    #[serde(rename = "Value")]
    value: i64,
    #[serde(rename = "Label")]
    label: Option<LabelMetadata>,
}

#[derive(Debug, Deserialize)]
struct LabelMetadata {
    #[serde(rename = "UserLocalizedLabel")]
    user: Option<LocalizedLabel>,
    #[serde(rename = "LocalizedLabels", default)]
    localized: Vec<LocalizedLabel>,
}

#[derive(Debug, Deserialize)]
struct LocalizedLabel {
    #[serde(rename = "Label")]
    label: String,
}

impl AttributeMetadata {
    /// (option value, label) pairs: the user's label, else the first
    /// localized one.
    pub(crate) fn options(self) -> Vec<(i64, String)> {
        self.option_set
            .options
            .into_iter()
            .filter_map(|option| {
                let label = option.label?;
                let text = label.user.or_else(|| label.localized.into_iter().next())?;
                Some((option.value, text.label))
            })
            .collect()
    }
}

/// A string column of a row, `None` when absent, null or not a string.
pub(crate) fn text<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column).and_then(Value::as_str)
}

/// The label Dataverse sent for `column`, if any.
pub(crate) fn label<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    text(row, &format!("{column}{FORMATTED}"))
}

/// The id of a `$deletedEntity` row of a change feed, if `row` is one:
/// `{"@odata.context": "…/$deletedEntity", "id": "…", "reason": "deleted"}`.
pub(crate) fn deleted_id(row: &Row) -> Option<&str> {
    let context = text(row, "@odata.context")?;
    context
        .ends_with("/$deletedEntity")
        .then(|| text(row, "id"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deleted_entity_row_names_its_id_and_a_changed_row_does_not() {
        let deleted = json!({"@odata.context": "https://o/api/data/v9.2/$metadata#accounts/$deletedEntity",
            "id": "a1b2c3d4-0000-4000-8000-000000000001", "reason": "deleted"});
        assert_eq!(
            deleted_id(deleted.as_object().unwrap()),
            Some("a1b2c3d4-0000-4000-8000-000000000001")
        );
        let changed =
            json!({"@odata.etag": "W/\"1\"", "accountid": "a1b2c3d4-0000-4000-8000-000000000001"});
        assert_eq!(deleted_id(changed.as_object().unwrap()), None);
    }

    #[test]
    fn a_page_reads_its_links_and_an_error_its_code() {
        let page: Collection = serde_json::from_value(json!({
            "@odata.context": "x", "value": [{"a": 1}],
            "@odata.deltaLink": "https://o/api/data/v9.2/accounts?$deltatoken=1"
        }))
        .unwrap();
        assert_eq!(page.value.len(), 1);
        assert!(page.next_link.is_none());
        assert!(page.delta_link.is_some());
        assert_eq!(
            error_of(br#"{"error":{"code":"0x80044352","message":"expired"}}"#),
            Some(("0x80044352".into(), "expired".into()))
        );
        assert_eq!(error_of(b"<html>"), None);
    }

    #[test]
    fn a_choice_reads_its_values_and_labels() {
        let metadata: AttributeMetadata = serde_json::from_value(json!({
            "@odata.context": "x", "LogicalName": "new_customerstage", "MetadataId": "m",
            "OptionSet": {"MetadataId": "o", "Options": [
                {"Value": 100000000, "Label": {"LocalizedLabels": [{"Label": "Onboarding", "LanguageCode": 1033}],
                    "UserLocalizedLabel": {"Label": "Onboarding", "LanguageCode": 1033}}},
                {"Value": 100000001, "Label": {"LocalizedLabels": [{"Label": "Won't \"go\"", "LanguageCode": 1033}],
                    "UserLocalizedLabel": null}}
            ]}
        }))
        .unwrap();
        assert_eq!(
            metadata.options(),
            [
                (100000000, "Onboarding".to_owned()),
                (100000001, "Won't \"go\"".to_owned())
            ]
        );
    }
}
