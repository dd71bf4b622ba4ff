//! A HubSpot object -> [`CrmRecord`]: pure, no IO.
//!
//! HubSpot sends every property value as a string (dates as ISO 8601 or
//! epoch milliseconds). A row this module cannot read faithfully (no id, a
//! bad `createdAt`/`updatedAt`, a property it interprets that is not a
//! string or does not parse) is refused with a reason; the caller names it
//! in the page's `skipped` list and carries on with the rest.
//!
//! Fields the daemon's field map names are passed on in `fields` with their
//! CRM names. Unset HubSpot properties come as null or `""`; both are left
//! out, so a criterion's `has(record.fields.x)` means "set". `"true"` and
//! `"false"` become booleans and plain decimal numbers become numbers, so
//! criteria such as `record.fields.active_users > 0` compare numerically;
//! anything else (dates, enumerations, `"007"`) stays a string.

use crate::wire::{ObjectRow, id_string};
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::{
    Associations, CrmRecord, ObjectKind, OwnerId, RecordId, StageChange, System, TaskRef,
    TaskStatus,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// Prefix of the per-stage entry-time properties of deals.
pub(crate) const DATE_ENTERED: &str = "hs_date_entered_";

/// What normalizing needs besides the row: the connector's settings that
/// shape a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    pub object: ObjectKind,
    /// The properties the daemon's field map names.
    pub fields: &'a [String],
    pub lifecycle_property: Option<&'a str>,
    /// `(app url without trailing slash, portal id)`, when links are wanted.
    pub link: Option<(&'a str, &'a str)>,
    /// Every deal stage id in pipeline then stage display order: breaks ties
    /// between stages entered in the same millisecond.
    pub stage_order: &'a [String],
}

/// HubSpot's object type id in UI links.
fn type_id(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Contact => "0-1",
        ObjectKind::Account => "0-2",
        ObjectKind::Deal => "0-3",
        ObjectKind::Lead => "0-136",
    }
}

/// Reads `row` as a record of `shape.object`, or says why it cannot.
pub(crate) fn normalize(row: &ObjectRow, shape: &Shape<'_>) -> Result<CrmRecord, String> {
    let id = match &row.id {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        Value::Null => return Err("the object has no id".into()),
        other => return Err(format!("the object id is not a string: {other}")),
    };
    let created_at = instant_field(&row.created_at, "createdAt")?;
    let modified_at = instant_field(&row.updated_at, "updatedAt")?;
    let owner_id = row.text("hubspot_owner_id")?.map(OwnerId::new);
    let lifecycle_status = match shape.lifecycle_property {
        Some(property) => row.text(property)?.map(str::to_owned),
        None => None,
    };
    let mut record = CrmRecord {
        system: System::Hubspot,
        object: shape.object,
        id: RecordId::new(id.clone()),
        name: None,
        url: shape.link.map(|(app, portal)| {
            format!(
                "{app}/contacts/{portal}/record/{}/{id}",
                type_id(shape.object)
            )
        }),
        owner_id,
        stage: None,
        lifecycle_status,
        stage_entered_at: None,
        amount: None,
        currency: None,
        email: None,
        domain: None,
        created_at,
        modified_at,
        close_date: None,
        contract_start: None,
        contract_end: None,
        fields: fields(row, shape.fields)?,
        associations: Associations::default(),
        tasks: Vec::new(),
        stage_history: Vec::new(),
    };
    match shape.object {
        ObjectKind::Deal => {
            record.name = row.text("dealname")?.map(str::to_owned);
            record.stage = row.text("dealstage")?.map(str::to_owned);
            record.currency = row.text("deal_currency_code")?.map(str::to_owned);
            record.amount = match row.text("amount")? {
                Some(text) => Some(amount(text)?),
                None => None,
            };
            record.close_date = match row.text("closedate")? {
                Some(text) => Some(
                    parse_date(text).ok_or_else(|| format!("closedate is not a date: {text}"))?,
                ),
                None => None,
            };
            record.stage_history = stage_history(row, shape.stage_order)?;
            record.stage_entered_at = record.stage.as_ref().and_then(|stage| {
                record
                    .stage_history
                    .iter()
                    .find(|change| &change.stage == stage)
                    .map(|change| change.at)
            });
        }
        ObjectKind::Contact => {
            let first = row.text("firstname")?.map(str::trim);
            let last = row.text("lastname")?.map(str::trim);
            let email = row.text("email")?.map(|e| e.trim().to_owned());
            record.name = match (first, last) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
                (None, None) => email.clone(),
            };
            record.email = email;
        }
        ObjectKind::Account => {
            record.name = row.text("name")?.map(str::to_owned);
            record.domain = row.text("domain")?.map(|d| d.trim().to_owned());
        }
        ObjectKind::Lead => {}
    }
    Ok(record)
}

fn instant_field(value: &Value, name: &str) -> Result<DateTime<Utc>, String> {
    match value {
        Value::String(text) => {
            parse_instant(text).ok_or_else(|| format!("{name} is not a timestamp: {text}"))
        }
        Value::Null => Err(format!("the object has no {name}")),
        other => Err(format!("{name} is not a timestamp: {other}")),
    }
}

fn amount(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|a| a.is_finite())
        .ok_or_else(|| format!("amount is not a number: {text}"))
}

/// Every `hs_date_entered_<stage>` the row carries, oldest first; stages
/// entered in the same millisecond in pipeline order.
fn stage_history(row: &ObjectRow, order: &[String]) -> Result<Vec<StageChange>, String> {
    let mut history = Vec::new();
    for name in row.properties.keys() {
        let Some(stage) = name.strip_prefix(DATE_ENTERED) else {
            continue;
        };
        if let Some(text) = row.text(name)? {
            let at =
                parse_instant(text).ok_or_else(|| format!("{name} is not a timestamp: {text}"))?;
            history.push(StageChange {
                stage: stage.to_owned(),
                at,
                owner_id: None,
            });
        }
    }
    let rank = |stage: &str| order.iter().position(|s| s == stage).unwrap_or(usize::MAX);
    history.sort_by(|a, b| (a.at, rank(&a.stage), &a.stage).cmp(&(b.at, rank(&b.stage), &b.stage)));
    Ok(history)
}

/// The daemon's fields that are set on the row, typed where HubSpot's
/// string says a boolean or a number.
fn fields(row: &ObjectRow, names: &[String]) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for name in names {
        let value = match row.properties.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) if text.trim().is_empty() => continue,
            Some(Value::String(text)) => typed(text),
            // Not HubSpot's documented shape, but already typed: keep it.
            Some(value @ (Value::Bool(_) | Value::Number(_))) => value.clone(),
            Some(other) => {
                return Err(format!(
                    "property {name} is not a string but {}",
                    crate::wire::kind_of(other)
                ));
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// `"true"`/`"false"` -> bool; a plain decimal that reads back identically
/// -> number (so `"007"`, `"1e3"` and long digit strings beyond f64's
/// precision stay strings); anything else unchanged.
fn typed(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(int) = text.parse::<i64>()
        && int.to_string() == text
    {
        return Value::from(int);
    }
    let plain_decimal = {
        let digits = text.strip_prefix('-').unwrap_or(text);
        match digits.split_once('.') {
            Some((whole, fraction)) => {
                !whole.is_empty()
                    && !fraction.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && fraction.bytes().all(|b| b.is_ascii_digit())
                    && (whole == "0" || !whole.starts_with('0'))
            }
            None => false,
        }
    };
    if plain_decimal
        && let Ok(float) = text.parse::<f64>()
        && float.is_finite()
        && let Some(number) = serde_json::Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

/// A HubSpot timestamp: RFC 3339, epoch milliseconds, or a bare date
/// (midnight UTC).
pub(crate) fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return DateTime::from_timestamp_millis(text.parse().ok()?);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// A HubSpot date: a bare date, or the date part (UTC) of a timestamp.
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .or_else(|| parse_instant(text).map(|at| at.date_naive()))
}

/// A task row of `POST /crm/v3/objects/tasks/batch/read`.
pub(crate) fn task(row: &ObjectRow) -> Result<TaskRef, String> {
    let id = id_string(&row.id).ok_or("the task has no id")?;
    let status = match row.text("hs_task_status")? {
        Some("COMPLETED") => TaskStatus::Completed,
        _ => TaskStatus::Open,
    };
    let due = match row.text("hs_timestamp")? {
        Some(text) => {
            Some(parse_date(text).ok_or_else(|| format!("hs_timestamp is not a date: {text}"))?)
        }
        None => None,
    };
    Ok(TaskRef {
        id,
        subject: row.text("hs_task_subject")?.unwrap_or_default().to_owned(),
        status,
        owner_id: row.text("hubspot_owner_id")?.map(OwnerId::new),
        due,
        by_journeyd: row
            .text("hs_task_body")?
            .and_then(crate::marker::final_key)
            .is_some(),
    })
}

/// Ids of the records a row links to, by association type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Links {
    pub companies: Vec<String>,
    pub contacts: Vec<String>,
    pub tasks: Vec<String>,
}

impl Links {
    pub fn of(&mut self, to: &str) -> Option<&mut Vec<String>> {
        match to {
            "companies" => Some(&mut self.companies),
            "contacts" => Some(&mut self.contacts),
            "tasks" => Some(&mut self.tasks),
            _ => None,
        }
    }

    /// Adds `id` under `to` unless already there: HubSpot lists a pair once
    /// per association type (labelled and unlabelled).
    pub fn push(&mut self, to: &str, id: String) {
        if let Some(ids) = self.of(to)
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }

    pub fn associations(&self) -> Associations {
        Associations {
            account: self.companies.first().map(|id| RecordId::new(id.clone())),
            contacts: self
                .contacts
                .iter()
                .map(|id| RecordId::new(id.clone()))
                .collect(),
        }
    }
}

/// The associations a list read embeds in `row`, and the association types
/// whose embedded list was cut short (it carries its own `paging`), which
/// must be read in full elsewhere.
pub(crate) fn embedded_links(row: &ObjectRow) -> (Links, Vec<String>) {
    let mut links = Links::default();
    let mut truncated = Vec::new();
    for (to, value) in &row.associations {
        let to = to.as_str();
        if links.of(to).is_none() {
            continue;
        }
        let results = value.get("results").and_then(Value::as_array);
        for id in results.into_iter().flatten().filter_map(|r| r.get("id")) {
            if let Some(id) = id_string(id) {
                links.push(to, id);
            }
        }
        if value
            .get("paging")
            .and_then(|p| p.get("next"))
            .is_some_and(|n| !n.is_null())
        {
            truncated.push(to.to_owned());
        }
    }
    (links, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: [&str; 4] = [
        "budget_approved",
        "weekly_active_users",
        "pain_points",
        "customer_health_score",
    ];

    fn field_names() -> Vec<String> {
        FIELDS.iter().map(|s| (*s).to_owned()).collect()
    }

    fn stages() -> Vec<String> {
        ["appointmentscheduled", "qualifiedtobuy", "closedwon"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    fn check(object: ObjectKind, row: serde_json::Value) -> Result<CrmRecord, String> {
        let fields = field_names();
        let order = stages();
        let shape = Shape {
            object,
            fields: &fields,
            lifecycle_property: Some("lifecyclestage"),
            link: Some(("https://app.hubspot.com", "4242")),
            stage_order: &order,
        };
        let row: ObjectRow = serde_json::from_value(row).expect("a row");
        normalize(&row, &shape)
    }

    fn deal() -> serde_json::Value {
        json!({
            "id": "9001",
            "properties": {
                "dealname": "Acme expansion",
                "dealstage": "qualifiedtobuy",
                "pipeline": "default",
                "amount": "48000.50",
                "deal_currency_code": "EUR",
                "closedate": "2026-12-31T00:00:00Z",
                "createdate": "2026-01-05T10:00:00Z",
                "hs_lastmodifieddate": "2026-11-01T10:00:00.123Z",
                "hubspot_owner_id": "102",
                "hs_object_id": "9001",
                "hs_date_entered_appointmentscheduled": "1767607200000",
                "hs_date_entered_qualifiedtobuy": "2026-02-01T09:30:00Z",
                "hs_date_entered_closedwon": null,
                "budget_approved": "true",
                "weekly_active_users": "12",
                "customer_health_score": "71.5",
                "pain_points": "",
                "unrequested": "ignored"
            },
            "createdAt": "2026-01-05T10:00:00Z",
            "updatedAt": "2026-11-01T10:00:00.123Z",
            "archived": false
        })
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn a_deal_becomes_a_record_with_its_stage_history_and_typed_fields() {
        let record = check(ObjectKind::Deal, deal()).unwrap();
        assert_eq!(record.id.as_str(), "9001");
        assert_eq!(record.system, System::Hubspot);
        assert_eq!(record.name.as_deref(), Some("Acme expansion"));
        assert_eq!(
            record.url.as_deref(),
            Some("https://app.hubspot.com/contacts/4242/record/0-3/9001")
        );
        assert_eq!(record.owner_id, Some(OwnerId::new("102")));
        assert_eq!(record.stage.as_deref(), Some("qualifiedtobuy"));
        assert_eq!(record.amount, Some(48000.5));
        assert_eq!(record.currency.as_deref(), Some("EUR"));
        assert_eq!(record.close_date, NaiveDate::from_ymd_opt(2026, 12, 31));
        assert_eq!(record.created_at, at("2026-01-05T10:00:00Z"));
        assert_eq!(record.modified_at, at("2026-11-01T10:00:00.123Z"));
        assert_eq!(record.stage_entered_at, Some(at("2026-02-01T09:30:00Z")));
        assert_eq!(
            record.stage_history,
            vec![
                StageChange {
                    stage: "appointmentscheduled".into(),
                    at: at("2026-01-05T10:00:00Z"),
                    owner_id: None
                },
                StageChange {
                    stage: "qualifiedtobuy".into(),
                    at: at("2026-02-01T09:30:00Z"),
                    owner_id: None
                },
            ]
        );
        assert_eq!(
            serde_json::to_value(&record.fields).unwrap(),
            json!({"budget_approved": true, "weekly_active_users": 12, "customer_health_score": 71.5})
        );
        assert_eq!(record.lifecycle_status, None);
    }

    #[test]
    fn a_contact_is_named_by_first_and_last_name_and_carries_its_lifecycle_stage() {
        let record = check(
            ObjectKind::Contact,
            json!({
                "id": "51",
                "properties": {"firstname": "Ann", "lastname": "Lee", "email": " ann@example.com ",
                               "lifecyclestage": "opportunity", "hubspot_owner_id": "101"},
                "createdAt": "2026-01-05T10:00:00Z",
                "updatedAt": "2026-01-06T10:00:00Z"
            }),
        )
        .unwrap();
        assert_eq!(record.name.as_deref(), Some("Ann Lee"));
        assert_eq!(record.email.as_deref(), Some("ann@example.com"));
        assert_eq!(record.lifecycle_status.as_deref(), Some("opportunity"));
        assert_eq!(record.stage, None);
        assert_eq!(
            record.url.as_deref(),
            Some("https://app.hubspot.com/contacts/4242/record/0-1/51")
        );
    }

    #[test]
    fn a_contact_without_a_name_is_named_by_its_email() {
        let record = check(
            ObjectKind::Contact,
            json!({"id": "52", "properties": {"email": "x@example.com", "firstname": null},
                   "createdAt": "2026-01-05T10:00:00Z", "updatedAt": "2026-01-05T10:00:00Z"}),
        )
        .unwrap();
        assert_eq!(record.name.as_deref(), Some("x@example.com"));
    }

    #[test]
    fn a_company_becomes_an_account_with_its_domain() {
        let record = check(
            ObjectKind::Account,
            json!({"id": "7", "properties": {"name": "Acme", "domain": "acme.example"},
                   "createdAt": "2026-01-05T10:00:00Z", "updatedAt": "2026-01-05T10:00:00Z"}),
        )
        .unwrap();
        assert_eq!(record.object, ObjectKind::Account);
        assert_eq!(record.name.as_deref(), Some("Acme"));
        assert_eq!(record.domain.as_deref(), Some("acme.example"));
        assert_eq!(
            record.url.as_deref(),
            Some("https://app.hubspot.com/contacts/4242/record/0-2/7")
        );
    }

    fn refused(change: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut row = deal();
        change(&mut row);
        check(ObjectKind::Deal, row).unwrap_err()
    }

    #[test]
    fn a_row_without_an_id_is_refused() {
        let reason = refused(|row| {
            row.as_object_mut().unwrap().remove("id");
        });
        assert_eq!(reason, "the object has no id");
    }

    #[test]
    fn a_row_with_a_bad_created_or_updated_time_is_refused() {
        assert_eq!(
            refused(|row| row["createdAt"] = json!("yesterday")),
            "createdAt is not a timestamp: yesterday"
        );
        assert_eq!(
            refused(|row| {
                row.as_object_mut().unwrap().remove("updatedAt");
            }),
            "the object has no updatedAt"
        );
    }

    #[test]
    fn a_property_that_is_not_a_string_is_refused() {
        assert_eq!(
            refused(|row| row["properties"]["dealstage"] = json!(3)),
            "property dealstage is not a string but a number"
        );
        assert_eq!(
            refused(|row| row["properties"]["pain_points"] = json!(["a"])),
            "property pain_points is not a string but an array"
        );
    }

    #[test]
    fn an_unparsable_amount_or_date_is_refused() {
        assert_eq!(
            refused(|row| row["properties"]["amount"] = json!("12k")),
            "amount is not a number: 12k"
        );
        assert_eq!(
            refused(|row| row["properties"]["closedate"] = json!("soon")),
            "closedate is not a date: soon"
        );
        assert_eq!(
            refused(|row| row["properties"]["hs_date_entered_closedwon"] = json!("never")),
            "hs_date_entered_closedwon is not a timestamp: never"
        );
    }

    #[test]
    fn stages_entered_in_the_same_millisecond_keep_pipeline_order() {
        let record = check(ObjectKind::Deal, {
            let mut row = deal();
            row["properties"]["hs_date_entered_closedwon"] = json!("2026-02-01T09:30:00Z");
            row["properties"]["hs_date_entered_appointmentscheduled"] =
                json!("2026-02-01T09:30:00Z");
            row
        })
        .unwrap();
        let order: Vec<_> = record
            .stage_history
            .iter()
            .map(|c| c.stage.as_str())
            .collect();
        assert_eq!(
            order,
            ["appointmentscheduled", "qualifiedtobuy", "closedwon"]
        );
    }

    #[test]
    fn field_values_are_typed_only_when_they_read_back_identically() {
        assert_eq!(typed("true"), json!(true));
        assert_eq!(typed("false"), json!(false));
        assert_eq!(typed("-3"), json!(-3));
        assert_eq!(typed("0.25"), json!(0.25));
        for kept in [
            "007",
            "1e3",
            "True",
            "12345678901234567890",
            ".5",
            "1.",
            "2026-01-01",
        ] {
            assert_eq!(typed(kept), json!(kept), "{kept}");
        }
    }

    #[test]
    fn timestamps_read_as_iso_epoch_milliseconds_or_bare_dates() {
        assert_eq!(
            parse_instant("1767607200000"),
            Some(at("2026-01-05T10:00:00Z"))
        );
        assert_eq!(
            parse_instant("2026-01-05T10:00:00.500+01:00"),
            Some(at("2026-01-05T09:00:00.5Z"))
        );
        assert_eq!(
            parse_instant("2026-01-05"),
            Some(at("2026-01-05T00:00:00Z"))
        );
        assert_eq!(parse_instant("Jan 5"), None);
    }

    #[test]
    fn a_completed_task_is_completed_and_any_other_status_is_open() {
        let row = |status: &str| -> ObjectRow {
            serde_json::from_value(json!({"id": "t1", "properties": {
                "hs_task_subject": "Call", "hs_task_status": status,
                "hubspot_owner_id": "102", "hs_timestamp": "2026-03-01T09:00:00Z"}}))
            .unwrap()
        };
        let done = task(&row("COMPLETED")).unwrap();
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(done.due, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(done.owner_id, Some(OwnerId::new("102")));
        assert_eq!(task(&row("WAITING")).unwrap().status, TaskStatus::Open);
    }

    #[test]
    fn a_task_whose_body_ends_with_a_marker_line_is_journeyds_own() {
        let row = |body: &str| -> ObjectRow {
            serde_json::from_value(json!({"id": "t1", "properties": {
                "hs_task_subject": "Call", "hs_task_status": "NOT_STARTED",
                "hs_task_body": body}}))
            .unwrap()
        };
        assert!(
            task(&row("- fix the owner\n\njourneyd-action: 3f2a9c00"))
                .unwrap()
                .by_journeyd
        );
        assert!(
            task(&row("<p>fix</p><p>journeyd-action:&nbsp;3f2a9c00</p>"))
                .unwrap()
                .by_journeyd
        );
        assert!(!task(&row("Call the customer back.")).unwrap().by_journeyd);
        let bodiless: ObjectRow =
            serde_json::from_value(json!({"id": "t2", "properties": {"hs_task_subject": "Call"}}))
                .unwrap();
        assert!(!task(&bodiless).unwrap().by_journeyd);
    }

    #[test]
    fn embedded_associations_are_deduplicated_and_a_cut_list_is_reported() {
        let row: ObjectRow = serde_json::from_value(json!({
            "id": "1",
            "associations": {
                "companies": {"results": [
                    {"id": "7", "type": "deal_to_company"},
                    {"id": "7", "type": "deal_to_company_unlabeled"},
                    {"id": "8", "type": "deal_to_company_unlabeled"}]},
                "contacts": {"results": [{"id": "51", "type": "deal_to_contact"}],
                             "paging": {"next": {"after": "x"}}}
            }
        }))
        .unwrap();
        let (links, truncated) = embedded_links(&row);
        assert_eq!(links.companies, ["7", "8"]);
        assert_eq!(links.associations().account, Some(RecordId::new("7")));
        assert_eq!(links.contacts, ["51"]);
        assert_eq!(truncated, ["contacts"]);
    }
}
