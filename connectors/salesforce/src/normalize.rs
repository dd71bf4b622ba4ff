//! Salesforce rows to journeyd's records: which fields each object is read
//! with, and how a row becomes a [`CrmRecord`], an [`Owner`], a stage change
//! or a task. A row that cannot be read is skipped with its id and the
//! reason, never failing its page.

use crate::settings::SalesforceSettings;
use crate::soql::{parse_date, parse_datetime};
use crate::wire::text;
use journeyd_connector::page::Skipped;
use journeyd_connector::{
    Associations, CrmRecord, ObjectKind, Owner, OwnerId, RecordId, StageChange, System, TaskRef,
    TaskStatus,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

type Row = Map<String, Value>;

/// The standard fields read for each object: only ones every org has, since
/// a query naming a missing field fails whole.
fn standard_fields(object: ObjectKind) -> &'static [&'static str] {
    match object {
        ObjectKind::Deal => &[
            "Id",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "AccountId",
            "OwnerId",
            "CreatedDate",
            "SystemModstamp",
        ],
        ObjectKind::Contact => &[
            "Id",
            "Name",
            "Email",
            "AccountId",
            "OwnerId",
            "CreatedDate",
            "SystemModstamp",
        ],
        ObjectKind::Lead => &[
            "Id",
            "Name",
            "Status",
            "Email",
            "Company",
            "Website",
            "OwnerId",
            "CreatedDate",
            "SystemModstamp",
        ],
        ObjectKind::Account => &[
            "Id",
            "Name",
            "Website",
            "OwnerId",
            "CreatedDate",
            "SystemModstamp",
        ],
    }
}

/// The fields a pull of `object` selects: the standard ones, the account
/// stage field for accounts, and the configured properties of `object`,
/// each once.
pub(crate) fn select_fields(object: ObjectKind, settings: &SalesforceSettings) -> Vec<String> {
    let mut fields: Vec<String> = standard_fields(object)
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    let extra = settings
        .account_stage_field
        .iter()
        .filter(|_| object == ObjectKind::Account)
        .chain(settings.properties.get(&object).into_iter().flatten());
    for field in extra {
        if !fields.iter().any(|known| known.eq_ignore_ascii_case(field)) {
            fields.push(field.clone());
        }
    }
    fields
}

fn skip(id: &str, reason: impl Into<String>) -> Skipped {
    Skipped {
        id: id.to_owned(),
        reason: reason.into(),
    }
}

/// A datetime field a record cannot do without.
fn required_time(
    row: &Row,
    id: &str,
    field: &str,
) -> Result<chrono::DateTime<chrono::Utc>, Skipped> {
    match row.get(field) {
        None | Some(Value::Null) => Err(skip(id, format!("no {field}"))),
        Some(Value::String(value)) => {
            parse_datetime(value).ok_or_else(|| skip(id, format!("{field} is not a datetime")))
        }
        Some(_) => Err(skip(id, format!("{field} is not a datetime"))),
    }
}

/// The host of a website, lowercased, without `www.`; the value itself if
/// it is no URL at all.
pub(crate) fn domain(website: &str) -> Option<String> {
    let website = website.trim();
    if website.is_empty() {
        return None;
    }
    let with_scheme = if website.contains("://") {
        website.to_owned()
    } else {
        format!("https://{website}")
    };
    let host = url::Url::parse(&with_scheme)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
    Some(match host {
        Some(host) => host.strip_prefix("www.").unwrap_or(&host).to_owned(),
        None => website.to_owned(),
    })
}

/// One row of `object` as a record; `position` names a row without an id.
pub(crate) fn record(
    object: ObjectKind,
    row: &Row,
    position: usize,
    settings: &SalesforceSettings,
) -> Result<CrmRecord, Skipped> {
    let id = match row.get("Id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(skip(&format!("row {position}"), "no Id")),
    };
    let modified_at = required_time(row, &id, "SystemModstamp")?;
    let created_at = required_time(row, &id, "CreatedDate")?;
    let amount = match row.get("Amount") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_f64()
                .ok_or_else(|| skip(&id, "Amount is not a number"))?,
        ),
    };
    let close_date = match text(row, "CloseDate") {
        None => None,
        Some(value) => Some(parse_date(value).ok_or_else(|| skip(&id, "CloseDate is not a date"))?),
    };
    let stage = match object {
        ObjectKind::Deal => text(row, "StageName"),
        ObjectKind::Lead => text(row, "Status"),
        ObjectKind::Account => settings
            .account_stage_field
            .as_deref()
            .and_then(|field| text(row, field)),
        ObjectKind::Contact => None,
    };
    let fields = settings
        .properties
        .get(&object)
        .into_iter()
        .flatten()
        .filter_map(|field| Some((field.clone(), row.get(field)?.clone())))
        .filter(|(_, value)| !value.is_null())
        .collect();
    Ok(CrmRecord {
        system: System::Salesforce,
        object,
        id: RecordId::new(id.clone()),
        name: text(row, "Name").map(str::to_owned),
        url: None,
        owner_id: text(row, "OwnerId").map(OwnerId::new),
        stage: stage.map(str::to_owned),
        lifecycle_status: settings
            .lifecycle_field
            .as_deref()
            .and_then(|field| text(row, field))
            .map(str::to_owned),
        stage_entered_at: None,
        amount,
        currency: text(row, "CurrencyIsoCode").map(str::to_owned),
        email: text(row, "Email").map(str::to_owned),
        domain: text(row, "Website").and_then(domain),
        created_at,
        modified_at,
        close_date,
        contract_start: None,
        contract_end: None,
        fields,
        associations: Associations {
            account: text(row, "AccountId").map(RecordId::new),
            contacts: Vec::new(),
        },
        tasks: Vec::new(),
        stage_history: Vec::new(),
    })
}

/// A `User` row as an owner. Its teams are its `Title` and `Department`
/// (those set), which the daemon's role map matches on.
pub(crate) fn owner(row: &Row, position: usize) -> Result<Owner, Skipped> {
    let id = match text(row, "Id") {
        Some(id) if !id.is_empty() => id,
        _ => return Err(skip(&format!("row {position}"), "no Id")),
    };
    let teams = ["Title", "Department"]
        .iter()
        .filter_map(|field| text(row, field))
        .map(str::trim)
        .filter(|team| !team.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Owner {
        id: OwnerId::new(id),
        name: text(row, "Name").unwrap_or(id).to_owned(),
        email: text(row, "Email").map(str::to_owned),
        active: row
            .get("IsActive")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        teams,
    })
}

/// `OpportunityHistory` rows (ordered by `CreatedDate`) as stage changes
/// by opportunity: a change is a row whose stage differs from the row
/// before it, since a change of amount or close date writes a row too.
pub(crate) fn stage_history(rows: &[Row]) -> BTreeMap<String, Vec<StageChange>> {
    let mut history: BTreeMap<String, Vec<StageChange>> = BTreeMap::new();
    for row in rows {
        let (Some(deal), Some(stage), Some(at)) = (
            text(row, "OpportunityId"),
            text(row, "StageName"),
            text(row, "CreatedDate").and_then(parse_datetime),
        ) else {
            continue;
        };
        let changes = history.entry(deal.to_owned()).or_default();
        if changes.last().is_none_or(|last| last.stage != stage) {
            changes.push(StageChange {
                stage: stage.to_owned(),
                at,
                owner_id: None,
            });
        }
    }
    history
}

/// `Task` rows as tasks, by the record they are on (`WhatId`).
pub(crate) fn tasks(rows: &[Row]) -> BTreeMap<String, Vec<TaskRef>> {
    let mut tasks: BTreeMap<String, Vec<TaskRef>> = BTreeMap::new();
    for row in rows {
        let (Some(id), Some(what)) = (text(row, "Id"), text(row, "WhatId")) else {
            continue;
        };
        let closed = row
            .get("IsClosed")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        tasks.entry(what.to_owned()).or_default().push(TaskRef {
            id: id.to_owned(),
            subject: text(row, "Subject").unwrap_or_default().to_owned(),
            status: if closed {
                TaskStatus::Completed
            } else {
                TaskStatus::Open
            },
            owner_id: text(row, "OwnerId").map(OwnerId::new),
            due: text(row, "ActivityDate").and_then(parse_date),
        });
    }
    tasks
}

/// When a deal entered its current stage: the last change to it.
pub(crate) fn stage_entered_at(record: &CrmRecord) -> Option<chrono::DateTime<chrono::Utc>> {
    let stage = record.stage.as_deref()?;
    record
        .stage_history
        .last()
        .filter(|last| last.stage == stage)
        .map(|last| last.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SalesforceAuth;
    use serde_json::json;

    fn settings() -> SalesforceSettings {
        let mut settings = SalesforceSettings::defaults(
            url::Url::parse("https://login.salesforce.com").unwrap(),
            SalesforceAuth::RefreshToken {
                client_id: "c".into(),
            },
        );
        settings.account_stage_field = Some("Customer_Stage__c".into());
        settings
            .properties
            .insert(ObjectKind::Deal, vec!["Region__c".into(), "Amount".into()]);
        settings
    }

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    fn opportunity() -> Row {
        row(json!({
            "attributes": {"type": "Opportunity", "url": "/services/data/v62.0/sobjects/Opportunity/006A"},
            "Id": "006A", "Name": "Big deal", "StageName": "Closed Won", "Amount": 1200.5,
            "CloseDate": "2026-03-01", "AccountId": "001A", "OwnerId": "005A",
            "CreatedDate": "2026-01-02T10:00:00.000+0000",
            "SystemModstamp": "2026-02-03T11:30:00.000+0000",
            "Region__c": "EMEA"
        }))
    }

    #[test]
    fn an_opportunity_becomes_a_deal() {
        let deal = record(ObjectKind::Deal, &opportunity(), 0, &settings()).unwrap();
        assert_eq!(deal.id.as_str(), "006A");
        assert_eq!(deal.stage.as_deref(), Some("Closed Won"));
        assert_eq!(deal.amount, Some(1200.5));
        assert_eq!(deal.close_date, parse_date("2026-03-01"));
        assert_eq!(deal.associations.account.as_ref().unwrap().as_str(), "001A");
        assert_eq!(deal.owner_id.as_ref().unwrap().as_str(), "005A");
        assert_eq!(
            deal.modified_at,
            parse_datetime("2026-02-03T11:30:00Z").unwrap()
        );
        assert_eq!(deal.fields.get("Region__c"), Some(&json!("EMEA")));
    }

    #[test]
    fn a_lead_takes_its_status_as_stage_and_its_website_as_domain() {
        let lead = row(json!({
            "Id": "00QA", "Name": "Ann Lee", "Status": "Working", "Email": "ann@acme.io",
            "Company": "Acme", "Website": "https://www.Acme.io/about", "OwnerId": "005A",
            "CreatedDate": "2026-01-02T10:00:00.000+0000",
            "SystemModstamp": "2026-01-02T10:00:00.000+0000"
        }));
        let lead = record(ObjectKind::Lead, &lead, 0, &settings()).unwrap();
        assert_eq!(lead.stage.as_deref(), Some("Working"));
        assert_eq!(lead.domain.as_deref(), Some("acme.io"));
        assert_eq!(lead.email.as_deref(), Some("ann@acme.io"));
    }

    #[test]
    fn an_account_takes_its_stage_from_the_configured_field() {
        let account = row(json!({
            "Id": "001A", "Name": "Acme", "Website": "acme.io", "Customer_Stage__c": "Onboarding",
            "CreatedDate": "2026-01-02T10:00:00.000+0000",
            "SystemModstamp": "2026-01-02T10:00:00.000+0000"
        }));
        let account = record(ObjectKind::Account, &account, 0, &settings()).unwrap();
        assert_eq!(account.stage.as_deref(), Some("Onboarding"));
        assert_eq!(account.domain.as_deref(), Some("acme.io"));
        assert!(
            select_fields(ObjectKind::Account, &settings())
                .contains(&"Customer_Stage__c".to_owned())
        );
    }

    #[test]
    fn configured_properties_are_selected_once_and_only_on_their_object() {
        let deal = select_fields(ObjectKind::Deal, &settings());
        assert_eq!(deal.iter().filter(|f| *f == "Amount").count(), 1);
        assert!(deal.contains(&"Region__c".to_owned()));
        assert!(!select_fields(ObjectKind::Contact, &settings()).contains(&"Region__c".to_owned()));
    }

    #[test]
    fn a_row_that_cannot_be_read_is_skipped_with_its_id_and_reason() {
        let mut no_id = opportunity();
        no_id.remove("Id");
        let skipped = record(ObjectKind::Deal, &no_id, 7, &settings()).unwrap_err();
        assert_eq!(
            (skipped.id.as_str(), skipped.reason.as_str()),
            ("row 7", "no Id")
        );

        let mut bad_time = opportunity();
        bad_time.insert("SystemModstamp".into(), json!("last tuesday"));
        let skipped = record(ObjectKind::Deal, &bad_time, 0, &settings()).unwrap_err();
        assert_eq!(skipped.id, "006A");
        assert_eq!(skipped.reason, "SystemModstamp is not a datetime");

        let mut bad_amount = opportunity();
        bad_amount.insert("Amount".into(), json!("lots"));
        let skipped = record(ObjectKind::Deal, &bad_amount, 0, &settings()).unwrap_err();
        assert_eq!(skipped.reason, "Amount is not a number");

        let mut no_created = opportunity();
        no_created.insert("CreatedDate".into(), Value::Null);
        let skipped = record(ObjectKind::Deal, &no_created, 0, &settings()).unwrap_err();
        assert_eq!(skipped.reason, "no CreatedDate");
    }

    #[test]
    fn a_user_is_an_owner_whose_teams_are_its_title_and_department() {
        let user = row(json!({
            "Id": "005A", "Name": "Ann Lee", "Email": "ann@acme.io", "IsActive": true,
            "Title": "Account Executive", "Department": " "
        }));
        let owner = owner(&user, 0).unwrap();
        assert_eq!(owner.teams, ["Account Executive"]);
        assert!(owner.active);
        let gone = row(json!({"Id": "005B", "Name": "Bo", "IsActive": false}));
        assert!(!super::owner(&gone, 0).unwrap().active);
    }

    #[test]
    fn stage_history_keeps_only_changes_of_stage() {
        let rows: Vec<Row> = [
            ("Prospecting", "2026-01-01T00:00:00.000+0000"),
            ("Prospecting", "2026-01-05T00:00:00.000+0000"),
            ("Closed Won", "2026-02-01T00:00:00.000+0000"),
        ]
        .iter()
        .map(|(stage, at)| {
            row(json!({"OpportunityId": "006A", "StageName": stage, "CreatedDate": at}))
        })
        .collect();
        let history = stage_history(&rows);
        let changes = &history["006A"];
        assert_eq!(changes.len(), 2);
        let mut deal = record(ObjectKind::Deal, &opportunity(), 0, &settings()).unwrap();
        deal.stage_history = changes.clone();
        assert_eq!(
            stage_entered_at(&deal),
            parse_datetime("2026-02-01T00:00:00Z")
        );
    }

    #[test]
    fn a_closed_task_is_completed() {
        let rows = vec![
            row(
                json!({"Id": "00TA", "Subject": "Call", "Status": "Completed", "IsClosed": true,
                "OwnerId": "005A", "ActivityDate": "2026-03-01", "WhatId": "006A"}),
            ),
            row(
                json!({"Id": "00TB", "Subject": "Send", "Status": "Not Started", "IsClosed": false,
                "WhatId": "006A"}),
            ),
        ];
        let tasks = tasks(&rows);
        let statuses: Vec<TaskStatus> = tasks["006A"].iter().map(|t| t.status).collect();
        assert_eq!(statuses, [TaskStatus::Completed, TaskStatus::Open]);
        assert_eq!(tasks["006A"][0].due, parse_date("2026-03-01"));
    }
}
