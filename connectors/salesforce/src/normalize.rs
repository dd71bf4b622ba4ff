//! Salesforce rows to journeyd's records: which fields and child
//! relationships each object is read with, and how a row becomes a
//! [`CrmRecord`] (a deal with its stage history, tasks and contact roles,
//! nested in its row by sub-queries) or an [`Owner`]. A row that cannot be
//! read is skipped with its id and the reason, never failing its page.

use crate::settings::SalesforceSettings;
use crate::soql::{parse_date, parse_datetime};
use crate::wire::text;
use journeyd_connector::page::Skipped;
use journeyd_connector::{
    ActionKey, Associations, CrmRecord, ObjectKind, Owner, OwnerId, RecordId, StageChange, System,
    TaskRef, TaskStatus,
};
use serde_json::{Map, Value};

type Row = Map<String, Value>;

/// A deal's stage history, oldest first: Opportunity's child relationship
/// to `OpportunityHistory` (through `OpportunityId`).
pub(crate) const STAGE_HISTORY: &str = "OpportunityHistories";
/// A deal's tasks: Opportunity's child relationship to `Task` (through
/// `WhatId`).
pub(crate) const TASKS: &str = "Tasks";
/// A deal's contacts and the part each plays: Opportunity's child
/// relationship to `OpportunityContactRole` (facts 6.12).
pub(crate) const CONTACT_ROLES: &str = "OpportunityContactRoles";
/// The field of a deal's `fields` holding the roles its contacts play
/// (`Decision Maker`, ...), the primary contact's first, each once: a list
/// criteria can ask, e.g. `'Decision Maker' in record.fields.contact_roles`.
pub(crate) const CONTACT_ROLES_FIELD: &str = "contact_roles";

/// The parent-to-child sub-queries a pull of `object` selects, as
/// (relationship, sub-query): a deal's stage history, tasks and contact
/// roles come nested in its own row, so that a page of deals is one query,
/// not one and a side query per few hundred deals. A task's description is
/// read (never filtered on: a long text area) to tell journeyd's own.
pub(crate) fn sub_queries(object: ObjectKind) -> &'static [(&'static str, &'static str)] {
    match object {
        ObjectKind::Deal => &[
            (
                STAGE_HISTORY,
                "SELECT StageName, CreatedDate FROM OpportunityHistories ORDER BY CreatedDate, Id",
            ),
            (
                TASKS,
                "SELECT Id, Subject, Status, IsClosed, OwnerId, ActivityDate, Description FROM Tasks",
            ),
            (
                CONTACT_ROLES,
                "SELECT ContactId, Role, IsPrimary FROM OpportunityContactRoles",
            ),
        ],
        ObjectKind::Contact | ObjectKind::Lead | ObjectKind::Account => &[],
    }
}

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

/// The record's page in Lightning Experience:
/// `<instance>/lightning/r/<SObject>/<Id>/view` (the instance's My Domain
/// host sends it on to the org's Lightning host).
fn lightning_link(instance: &url::Url, object: ObjectKind, id: &str) -> Option<String> {
    let mut link = instance.clone();
    link.path_segments_mut().ok()?.clear().extend([
        "lightning",
        "r",
        crate::connector::sobject(object),
        id,
        "view",
    ]);
    link.set_query(None);
    Some(link.into())
}

/// One row of `object` as a record; `position` names a row without an id.
/// `instance` is the org's instance the token named, where the record's
/// Lightning page is.
pub(crate) fn record(
    object: ObjectKind,
    row: &Row,
    position: usize,
    settings: &SalesforceSettings,
    instance: Option<&url::Url>,
) -> Result<CrmRecord, Skipped> {
    let id = match row.get("Id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        // The row's own API link still names it.
        _ => {
            let named = row
                .get("attributes")
                .and_then(|attributes| attributes.get("url"))
                .and_then(Value::as_str)
                .and_then(|url| url.rsplit('/').next())
                .filter(|id| !id.is_empty())
                .map_or_else(|| format!("row {position}"), str::to_owned);
            return Err(skip(&named, "no Id"));
        }
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
    let (stage_history, tasks, roles) = if object == ObjectKind::Deal {
        let history = child_rows(row, STAGE_HISTORY).map_err(|reason| skip(&id, reason))?;
        let tasks = child_rows(row, TASKS).map_err(|reason| skip(&id, reason))?;
        let roles = child_rows(row, CONTACT_ROLES).map_err(|reason| skip(&id, reason))?;
        (
            stage_changes(history),
            task_refs(tasks),
            Some(contact_roles(roles)),
        )
    } else {
        (Vec::new(), Vec::new(), None)
    };
    let stage_entered_at = stage
        .and_then(|stage| stage_history.last().filter(|last| last.stage == stage))
        .map(|last| last.at);
    let mut fields: std::collections::BTreeMap<String, Value> = settings
        .properties
        .get(&object)
        .into_iter()
        .flatten()
        .filter_map(|field| Some((field.clone(), row.get(field)?.clone())))
        .filter(|(_, value)| !value.is_null())
        .collect();
    let contacts = match roles {
        Some(ContactRoles { contacts, roles }) => {
            fields.insert(CONTACT_ROLES_FIELD.into(), Value::from(roles));
            contacts
        }
        None => Vec::new(),
    };
    Ok(CrmRecord {
        system: System::Salesforce,
        object,
        id: RecordId::new(id.clone()),
        name: text(row, "Name").map(str::to_owned),
        url: instance.and_then(|instance| lightning_link(instance, object, &id)),
        owner_id: text(row, "OwnerId").map(OwnerId::new),
        stage: stage.map(str::to_owned),
        lifecycle_status: settings
            .lifecycle_field
            .as_deref()
            .and_then(|field| text(row, field))
            .map(str::to_owned),
        stage_entered_at,
        amount,
        currency: text(row, "CurrencyIsoCode").map(str::to_owned),
        email: text(row, "Email").map(str::to_owned),
        domain: text(row, "Website").and_then(journeyd_connector::record::website_domain),
        created_at,
        modified_at,
        close_date,
        contract_start: None,
        contract_end: None,
        fields,
        associations: Associations {
            account: text(row, "AccountId").map(RecordId::new),
            contacts,
        },
        tasks,
        stage_history,
    })
}

/// The child rows nested under `relationship` in `row`: a sub-query's
/// result `{totalSize, done, records}`, or `null` when there are none. A
/// result still cut short (`done: false`) is an error: the pull follows
/// each one to its end before it reads the rows.
fn child_rows<'a>(row: &'a Row, relationship: &str) -> Result<Vec<&'a Row>, String> {
    let result = match row.get(relationship) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(result)) => result,
        Some(_) => return Err(format!("{relationship} is not a query result")),
    };
    if result.get("done").and_then(Value::as_bool) != Some(true) {
        return Err(format!("{relationship} is cut short"));
    }
    match result.get("records") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(records)) => records
            .iter()
            .map(|record| {
                record
                    .as_object()
                    .ok_or_else(|| format!("a row of {relationship} is not a record"))
            })
            .collect(),
        Some(_) => Err(format!("{relationship} records are not a list")),
    }
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

/// A deal's `OpportunityHistory` rows (ordered by `CreatedDate`) as its
/// stage changes: a change is a row whose stage differs from the row
/// before it, since a change of amount or close date writes a row too.
fn stage_changes(rows: Vec<&Row>) -> Vec<StageChange> {
    let mut changes: Vec<StageChange> = Vec::new();
    for row in rows {
        let (Some(stage), Some(at)) = (
            text(row, "StageName"),
            text(row, "CreatedDate").and_then(parse_datetime),
        ) else {
            continue;
        };
        if changes.last().is_none_or(|last| last.stage != stage) {
            changes.push(StageChange {
                stage: stage.to_owned(),
                at,
                owner_id: None,
            });
        }
    }
    changes
}

/// A deal's contacts and the roles they play.
struct ContactRoles {
    /// The primary contact first, then the others as Salesforce listed
    /// them; each once.
    contacts: Vec<RecordId>,
    /// The roles, in the same order, each once.
    roles: Vec<String>,
}

/// A deal's `OpportunityContactRole` rows as its contacts and their roles.
fn contact_roles(mut rows: Vec<&Row>) -> ContactRoles {
    // Stable: the primary first, the rest in Salesforce's order.
    rows.sort_by_key(|row| row.get("IsPrimary").and_then(Value::as_bool) != Some(true));
    let mut contacts: Vec<RecordId> = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    for row in rows {
        if let Some(contact) = text(row, "ContactId").filter(|id| !id.is_empty())
            && !contacts.iter().any(|known| known.as_str() == contact)
        {
            contacts.push(RecordId::new(contact));
        }
        if let Some(role) = text(row, "Role")
            .map(str::trim)
            .filter(|role| !role.is_empty())
            && !roles.iter().any(|known| known == role)
        {
            roles.push(role.to_owned());
        }
    }
    ContactRoles { contacts, roles }
}

/// A record's `Task` rows as its tasks; a task whose description ends with
/// a key line is journeyd's own.
fn task_refs(rows: Vec<&Row>) -> Vec<TaskRef> {
    rows.into_iter()
        .filter_map(|row| {
            let id = text(row, "Id")?;
            let closed = row
                .get("IsClosed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some(TaskRef {
                id: id.to_owned(),
                subject: text(row, "Subject").unwrap_or_default().to_owned(),
                status: if closed {
                    TaskStatus::Completed
                } else {
                    TaskStatus::Open
                },
                owner_id: text(row, "OwnerId").map(OwnerId::new),
                due: text(row, "ActivityDate").and_then(parse_date),
                by_journeyd: text(row, "Description")
                    .and_then(ActionKey::from_text)
                    .is_some(),
            })
        })
        .collect()
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
    fn a_record_links_to_its_lightning_page_on_the_instance_the_token_named() {
        let instance = url::Url::parse("https://acme.my.salesforce.com").unwrap();
        let deal = record(
            ObjectKind::Deal,
            &opportunity(),
            0,
            &settings(),
            Some(&instance),
        )
        .unwrap();
        assert_eq!(
            deal.url.as_deref(),
            Some("https://acme.my.salesforce.com/lightning/r/Opportunity/006A/view")
        );
        let unlinked = record(ObjectKind::Deal, &opportunity(), 0, &settings(), None).unwrap();
        assert_eq!(unlinked.url, None);
    }

    #[test]
    fn an_opportunity_becomes_a_deal() {
        let deal = record(ObjectKind::Deal, &opportunity(), 0, &settings(), None).unwrap();
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
        let lead = record(ObjectKind::Lead, &lead, 0, &settings(), None).unwrap();
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
        let account = record(ObjectKind::Account, &account, 0, &settings(), None).unwrap();
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
        let skipped = record(ObjectKind::Deal, &no_id, 7, &settings(), None).unwrap_err();
        assert_eq!(
            (skipped.id.as_str(), skipped.reason.as_str()),
            ("006A", "no Id")
        );
        no_id.remove("attributes");
        let skipped = record(ObjectKind::Deal, &no_id, 7, &settings(), None).unwrap_err();
        assert_eq!(
            (skipped.id.as_str(), skipped.reason.as_str()),
            ("row 7", "no Id")
        );

        let mut bad_time = opportunity();
        bad_time.insert("SystemModstamp".into(), json!("last tuesday"));
        let skipped = record(ObjectKind::Deal, &bad_time, 0, &settings(), None).unwrap_err();
        assert_eq!(skipped.id, "006A");
        assert_eq!(skipped.reason, "SystemModstamp is not a datetime");

        let mut bad_amount = opportunity();
        bad_amount.insert("Amount".into(), json!("lots"));
        let skipped = record(ObjectKind::Deal, &bad_amount, 0, &settings(), None).unwrap_err();
        assert_eq!(skipped.reason, "Amount is not a number");

        let mut no_created = opportunity();
        no_created.insert("CreatedDate".into(), Value::Null);
        let skipped = record(ObjectKind::Deal, &no_created, 0, &settings(), None).unwrap_err();
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

    /// A sub-query result of `rows` as Salesforce nests it.
    fn nested(rows: Value) -> Value {
        let size = rows.as_array().map_or(0, Vec::len);
        json!({"totalSize": size, "done": true, "records": rows})
    }

    fn deal_with(history: Value, tasks: Value) -> Result<CrmRecord, Skipped> {
        let mut row = opportunity();
        row.insert(STAGE_HISTORY.into(), history);
        row.insert(TASKS.into(), tasks);
        record(ObjectKind::Deal, &row, 0, &settings(), None)
    }

    fn history_row(stage: &str, at: &str) -> Value {
        json!({"attributes": {"type": "OpportunityHistory"}, "StageName": stage, "CreatedDate": at})
    }

    #[test]
    fn a_deal_without_history_or_tasks_has_null_under_both_relationships() {
        let deal = deal_with(Value::Null, Value::Null).unwrap();
        assert!(deal.stage_history.is_empty());
        assert!(deal.tasks.is_empty());
        assert_eq!(deal.stage_entered_at, None);
    }

    #[test]
    fn an_empty_child_result_reads_as_no_children() {
        let deal = deal_with(nested(json!([])), nested(json!([]))).unwrap();
        assert!(deal.stage_history.is_empty() && deal.tasks.is_empty());
        let no_records = json!({"totalSize": 0, "done": true});
        let deal = deal_with(no_records.clone(), no_records).unwrap();
        assert!(deal.stage_history.is_empty() && deal.tasks.is_empty());
    }

    #[test]
    fn nested_stage_history_keeps_only_changes_of_stage_and_dates_the_current_one() {
        let history = nested(json!([
            history_row("Prospecting", "2026-01-01T00:00:00.000+0000"),
            history_row("Prospecting", "2026-01-05T00:00:00.000+0000"),
            history_row("Closed Won", "2026-02-01T00:00:00.000+0000"),
        ]));
        let deal = deal_with(history, Value::Null).unwrap();
        let stages: Vec<&str> = deal
            .stage_history
            .iter()
            .map(|c| c.stage.as_str())
            .collect();
        assert_eq!(stages, ["Prospecting", "Closed Won"]);
        assert_eq!(
            deal.stage_entered_at,
            parse_datetime("2026-02-01T00:00:00Z")
        );
    }

    #[test]
    fn a_deal_whose_last_change_is_to_another_stage_has_no_entry_date() {
        let history = nested(json!([history_row(
            "Prospecting",
            "2026-01-01T00:00:00.000+0000"
        )]));
        let deal = deal_with(history, Value::Null).unwrap();
        assert_eq!(deal.stage_history.len(), 1);
        assert_eq!(deal.stage_entered_at, None, "the deal is Closed Won");
    }

    #[test]
    fn nested_tasks_are_read_and_a_closed_one_is_completed() {
        let tasks = nested(json!([
            {"attributes": {"type": "Task"}, "Id": "00TA", "Subject": "Call", "Status": "Completed",
             "IsClosed": true, "OwnerId": "005A", "ActivityDate": "2026-03-01"},
            {"Id": "00TB", "Subject": "Send", "Status": "Not Started", "IsClosed": false},
            {"Subject": "no id, not a task to act on"},
        ]));
        let deal = deal_with(Value::Null, tasks).unwrap();
        let statuses: Vec<TaskStatus> = deal.tasks.iter().map(|t| t.status).collect();
        assert_eq!(statuses, [TaskStatus::Completed, TaskStatus::Open]);
        assert_eq!(deal.tasks[0].due, parse_date("2026-03-01"));
        assert_eq!(deal.tasks[0].owner_id.as_ref().unwrap().as_str(), "005A");
    }

    #[test]
    fn a_child_result_followed_to_its_end_reads_whole() {
        // What the pull leaves after following a cut result: every row, done.
        let rows: Vec<Value> = (0..5)
            .map(|day| {
                history_row(
                    &format!("Stage {day}"),
                    &format!("2026-01-0{}T00:00:00.000+0000", day + 1),
                )
            })
            .collect();
        let followed = json!({"totalSize": 5, "done": true, "records": rows});
        let deal = deal_with(followed, Value::Null).unwrap();
        assert_eq!(deal.stage_history.len(), 5);
    }

    #[test]
    fn a_child_result_still_cut_short_or_malformed_skips_the_deal_by_name() {
        let cut = json!({"totalSize": 9, "done": false, "nextRecordsUrl": "/services/data/v62.0/query/01gX-2",
                         "records": [history_row("Prospecting", "2026-01-01T00:00:00.000+0000")]});
        let skipped = deal_with(cut, Value::Null).unwrap_err();
        assert_eq!(skipped.id, "006A");
        assert_eq!(skipped.reason, "OpportunityHistories is cut short");
        let skipped = deal_with(Value::Null, json!(7)).unwrap_err();
        assert_eq!(skipped.reason, "Tasks is not a query result");
        let skipped = deal_with(Value::Null, nested(json!([3]))).unwrap_err();
        assert_eq!(skipped.reason, "a row of Tasks is not a record");
    }

    fn deal_with_roles(roles: Value) -> Result<CrmRecord, Skipped> {
        let mut row = opportunity();
        row.insert(CONTACT_ROLES.into(), roles);
        record(ObjectKind::Deal, &row, 0, &settings(), None)
    }

    fn role(contact: &str, role: Option<&str>, primary: bool) -> Value {
        json!({"attributes": {"type": "OpportunityContactRole"}, "ContactId": contact,
               "Role": role, "IsPrimary": primary})
    }

    #[test]
    fn a_deals_contacts_come_primary_first_each_once_with_their_roles_in_fields() {
        let deal = deal_with_roles(nested(json!([
            role("003B", Some("Evaluator"), false),
            role("003A", Some("Decision Maker"), true),
            role("003C", None, false),
            role("003B", Some("Influencer"), false),
            role("003D", Some("Evaluator"), false),
        ])))
        .unwrap();
        let contacts: Vec<&str> = deal
            .associations
            .contacts
            .iter()
            .map(RecordId::as_str)
            .collect();
        assert_eq!(contacts, ["003A", "003B", "003C", "003D"]);
        assert_eq!(
            deal.fields[CONTACT_ROLES_FIELD],
            json!(["Decision Maker", "Evaluator", "Influencer"])
        );
    }

    #[test]
    fn a_deal_without_contact_roles_has_no_contacts_and_an_empty_role_list() {
        let deal = deal_with_roles(Value::Null).unwrap();
        assert!(deal.associations.contacts.is_empty());
        assert_eq!(deal.fields[CONTACT_ROLES_FIELD], json!([]));
        let lead = row(json!({
            "Id": "00QA", "Name": "Ann Lee", "Status": "Working",
            "CreatedDate": "2026-01-02T10:00:00.000+0000",
            "SystemModstamp": "2026-01-02T10:00:00.000+0000"
        }));
        let lead = record(ObjectKind::Lead, &lead, 0, &settings(), None).unwrap();
        assert!(!lead.fields.contains_key(CONTACT_ROLES_FIELD));
    }

    #[test]
    fn contact_roles_still_cut_short_skip_the_deal_by_name_rather_than_drop_contacts() {
        let cut = json!({"totalSize": 3, "done": false,
                         "nextRecordsUrl": "/services/data/v62.0/query/01gX-1",
                         "records": [role("003A", Some("Evaluator"), true)]});
        let skipped = deal_with_roles(cut).unwrap_err();
        assert_eq!(skipped.id, "006A");
        assert_eq!(skipped.reason, "OpportunityContactRoles is cut short");
    }

    #[test]
    fn a_task_whose_description_ends_with_a_key_line_is_journeyds_own() {
        let tasks = nested(json!([
            {"Id": "00TA", "Subject": "[journeyd] 2 checks", "IsClosed": false,
             "Description": "- a\n- b\n\njourneyd-action: jd1t"},
            {"Id": "00TB", "Subject": "Call", "IsClosed": false,
             "Description": "mentions journeyd-action: jd1t midway\nthen more"},
            {"Id": "00TC", "Subject": "Send", "IsClosed": false, "Description": null},
        ]));
        let deal = deal_with(Value::Null, tasks).unwrap();
        let own: Vec<bool> = deal.tasks.iter().map(|t| t.by_journeyd).collect();
        assert_eq!(own, [true, false, false]);
    }

    #[test]
    fn only_deals_are_read_with_sub_queries() {
        assert_eq!(sub_queries(ObjectKind::Deal).len(), 3);
        for object in [ObjectKind::Lead, ObjectKind::Contact, ObjectKind::Account] {
            assert!(sub_queries(object).is_empty());
        }
    }
}
