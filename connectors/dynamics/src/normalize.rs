//! Dataverse rows to journeyd's records: which columns each table is read
//! with, and how an annotated row becomes a [`CrmRecord`], a task of a
//! deal, or an [`Owner`]. Stages are read by their labels (the
//! `FormattedValue` annotation); field-map columns keep their raw values
//! (a choice its option value). A row that cannot be read is skipped with
//! its id and the reason, never failing its page.

use crate::odata::{is_guid, parse_date, parse_datetime};
use crate::settings::DynamicsSettings;
use crate::wire::{LOOKUP_TABLE, Row, label, text};
use chrono::{DateTime, Utc};
use journeyd_connector::page::Skipped;
use journeyd_connector::{
    ActionKey, Associations, CrmRecord, ObjectKind, Owner, OwnerId, RecordId, System, TaskRef,
    TaskStatus,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// A Dataverse table as this connector reads it.
#[derive(Debug)]
pub(crate) struct Table {
    /// The logical name (`opportunity`): in UI links, binds and metadata.
    pub(crate) logical: &'static str,
    /// The entity set (`opportunities`): in URLs.
    pub(crate) set: &'static str,
    /// The primary key column (`opportunityid`).
    pub(crate) key: &'static str,
    /// The columns every pull selects.
    core: &'static [&'static str],
}

const OPPORTUNITY: Table = Table {
    logical: "opportunity",
    set: "opportunities",
    key: "opportunityid",
    core: &[
        "opportunityid",
        "name",
        "_ownerid_value",
        "_parentaccountid_value",
        "_parentcontactid_value",
        "estimatedvalue",
        "estimatedclosedate",
        "statecode",
        "createdon",
        "modifiedon",
    ],
};
const LEAD: Table = Table {
    logical: "lead",
    set: "leads",
    key: "leadid",
    core: &[
        "leadid",
        "fullname",
        "emailaddress1",
        "companyname",
        "_ownerid_value",
        "_parentaccountid_value",
        "_parentcontactid_value",
        "createdon",
        "modifiedon",
    ],
};
const CONTACT: Table = Table {
    logical: "contact",
    set: "contacts",
    key: "contactid",
    core: &[
        "contactid",
        "fullname",
        "emailaddress1",
        "_parentcustomerid_value",
        "_ownerid_value",
        "createdon",
        "modifiedon",
    ],
};
const ACCOUNT: Table = Table {
    logical: "account",
    set: "accounts",
    key: "accountid",
    core: &[
        "accountid",
        "name",
        "websiteurl",
        "_ownerid_value",
        "createdon",
        "modifiedon",
    ],
};

/// The table `object` lives in.
pub(crate) fn table(object: ObjectKind) -> &'static Table {
    match object {
        ObjectKind::Deal => &OPPORTUNITY,
        ObjectKind::Lead => &LEAD,
        ObjectKind::Contact => &CONTACT,
        ObjectKind::Account => &ACCOUNT,
    }
}

/// The columns of a task of a deal, as its lookup asks for them; the
/// description tells journeyd's own tasks (ending with a marker line)
/// from the rest.
pub(crate) const TASK_COLUMNS: &str =
    "activityid,subject,description,statecode,scheduledend,_ownerid_value,_regardingobjectid_value";

/// The column whose label is `object`'s stage, if it has one.
pub(crate) fn stage_column(object: ObjectKind, settings: &DynamicsSettings) -> Option<&str> {
    match object {
        ObjectKind::Deal => Some(&settings.deal_stage_field),
        ObjectKind::Lead => Some(&settings.lead_stage_field),
        ObjectKind::Account => settings.account_stage_field.as_deref(),
        ObjectKind::Contact => None,
    }
}

/// The configured field-map columns of `object`.
fn properties(object: ObjectKind, settings: &DynamicsSettings) -> &[String] {
    settings.properties.get(&object).map_or(&[], Vec::as_slice)
}

/// The column whose label is `object`'s lifecycle status: the configured
/// lifecycle column, where `object`'s properties list it.
fn lifecycle_column(object: ObjectKind, settings: &DynamicsSettings) -> Option<&str> {
    settings
        .lifecycle_field
        .as_deref()
        .filter(|field| properties(object, settings).iter().any(|p| p == field))
}

/// What a pull of `object` selects: the core columns, the stage column and
/// the configured properties, each once.
pub(crate) fn select_columns(object: ObjectKind, settings: &DynamicsSettings) -> Vec<String> {
    let mut columns: Vec<String> = table(object).core.iter().map(|c| (*c).to_owned()).collect();
    let extra = stage_column(object, settings)
        .into_iter()
        .chain(properties(object, settings).iter().map(String::as_str));
    for column in extra {
        if !columns.iter().any(|known| known == column) {
            columns.push(column.to_owned());
        }
    }
    columns
}

fn skip(id: &str, reason: impl Into<String>) -> Skipped {
    Skipped {
        id: id.to_owned(),
        reason: reason.into(),
    }
}

fn required_time(row: &Row, id: &str, column: &str) -> Result<DateTime<Utc>, Skipped> {
    match row.get(column) {
        None | Some(Value::Null) => Err(skip(id, format!("no {column}"))),
        Some(Value::String(value)) => {
            parse_datetime(value).ok_or_else(|| skip(id, format!("{column} is not a datetime")))
        }
        Some(_) => Err(skip(id, format!("{column} is not a datetime"))),
    }
}

/// A lookup column's GUID; an error naming the column when it holds
/// something else.
fn lookup(row: &Row, id: &str, column: &str) -> Result<Option<String>, Skipped> {
    match row.get(column) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if is_guid(value) => Ok(Some(value.to_ascii_lowercase())),
        Some(_) => Err(skip(id, format!("{column} is not a guid"))),
    }
}

/// A closed opportunity's stage: "Won" or "Lost" by its state, whatever
/// its sales stage says. Dataverse closes an opportunity by its state and
/// leaves the sales stage where it was; fixed names (not the state's
/// label, which follows the org's language) keep the stage map stable.
fn closed_stage(object: ObjectKind, row: &Row) -> Option<&'static str> {
    if object != ObjectKind::Deal {
        return None;
    }
    match row.get("statecode").and_then(Value::as_i64) {
        Some(1) => Some("Won"),
        Some(2) => Some("Lost"),
        _ => None,
    }
}

/// A column's label, else its raw value as text.
fn label_or_raw(row: &Row, column: &str) -> Option<String> {
    if let Some(label) = label(row, column) {
        return Some(label.to_owned());
    }
    match row.get(column)? {
        Value::Null => None,
        Value::String(value) => Some(value.clone()),
        other => Some(other.to_string()),
    }
}

/// One row of `object` as a record (without its tasks, which the pull
/// adds); `position` names a row without a readable id.
pub(crate) fn record(
    object: ObjectKind,
    row: &Row,
    position: usize,
    settings: &DynamicsSettings,
) -> Result<CrmRecord, Skipped> {
    let table = table(object);
    let id = match row.get(table.key) {
        Some(Value::String(id)) if is_guid(id) => id.to_ascii_lowercase(),
        Some(Value::String(id)) if !id.is_empty() => return Err(skip(id, "the id is not a guid")),
        None | Some(Value::Null | Value::String(_)) => {
            return Err(skip(
                &format!("row {position}"),
                format!("no {}", table.key),
            ));
        }
        // A number or the like: named as it came.
        Some(other) => return Err(skip(&other.to_string(), "the id is not a guid")),
    };
    let modified_at = required_time(row, &id, "modifiedon")?;
    let created_at = required_time(row, &id, "createdon")?;
    let owner = lookup(row, &id, "_ownerid_value")?;
    let (account, contact) = match object {
        ObjectKind::Deal | ObjectKind::Lead => (
            lookup(row, &id, "_parentaccountid_value")?,
            lookup(row, &id, "_parentcontactid_value")?,
        ),
        ObjectKind::Contact => (lookup(row, &id, "_parentcustomerid_value")?, None),
        ObjectKind::Account => (None, None),
    };
    let amount = match row.get("estimatedvalue") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_f64()
                .ok_or_else(|| skip(&id, "estimatedvalue is not a number"))?,
        ),
    };
    let close_date = match row.get("estimatedclosedate") {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) => {
            Some(parse_date(value).ok_or_else(|| skip(&id, "estimatedclosedate is not a date"))?)
        }
        Some(_) => return Err(skip(&id, "estimatedclosedate is not a date")),
    };
    let name = match object {
        ObjectKind::Deal | ObjectKind::Account => text(row, "name"),
        ObjectKind::Lead | ObjectKind::Contact => text(row, "fullname"),
    };
    let fields: BTreeMap<String, Value> = properties(object, settings)
        .iter()
        .filter_map(|column| Some((column.clone(), row.get(column)?.clone())))
        .filter(|(_, value)| !value.is_null())
        .collect();
    Ok(CrmRecord {
        system: System::Dynamics,
        object,
        url: Some(format!(
            "{}/main.aspx?etn={}&id={id}&pagetype=entityrecord",
            settings.url.as_str().trim_end_matches('/'),
            table.logical
        )),
        id: RecordId::new(id),
        name: name.map(str::to_owned),
        owner_id: owner.map(OwnerId::new),
        stage: closed_stage(object, row).map(str::to_owned).or_else(|| {
            stage_column(object, settings).and_then(|column| label_or_raw(row, column))
        }),
        lifecycle_status: lifecycle_column(object, settings)
            .and_then(|column| label_or_raw(row, column)),
        stage_entered_at: None,
        amount,
        currency: None,
        email: text(row, "emailaddress1").map(str::to_owned),
        domain: text(row, "websiteurl").and_then(journeyd_connector::record::website_domain),
        created_at,
        modified_at,
        close_date,
        contract_start: None,
        contract_end: None,
        fields,
        associations: Associations {
            account: account.map(RecordId::new),
            contacts: contact.into_iter().map(RecordId::new).collect(),
        },
        tasks: Vec::new(),
        stage_history: Vec::new(),
    })
}

/// A task row as (the id of the record it is regarding, the task); `None`
/// for a row without a readable id or regarding record.
pub(crate) fn task(row: &Row) -> Option<(String, TaskRef)> {
    let id = text(row, "activityid").filter(|id| is_guid(id))?;
    let regarding = text(row, "_regardingobjectid_value").filter(|id| is_guid(id))?;
    let open = row.get("statecode").and_then(Value::as_i64) == Some(0);
    Some((
        regarding.to_ascii_lowercase(),
        TaskRef {
            id: id.to_ascii_lowercase(),
            subject: text(row, "subject").unwrap_or_default().to_owned(),
            // Completed and canceled tasks both need no more doing.
            status: if open {
                TaskStatus::Open
            } else {
                TaskStatus::Completed
            },
            owner_id: text(row, "_ownerid_value")
                .filter(|id| is_guid(id))
                .map(|id| OwnerId::new(id.to_ascii_lowercase())),
            due: text(row, "scheduledend").and_then(parse_date),
            by_journeyd: text(row, "description")
                .and_then(ActionKey::from_text)
                .is_some(),
        },
    ))
}

/// Whether the owner lookup of `row` points at a team.
pub(crate) fn owned_by_team(row: &Row) -> bool {
    text(row, &format!("_ownerid_value{LOOKUP_TABLE}")) == Some("team")
}

/// A team, as its members' teams are named and as an owner itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Team {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) members: Vec<String>,
}

/// A `teams` row read with its `teammembership_association` expanded.
pub(crate) fn team(row: &Row) -> Option<Team> {
    let id = text(row, "teamid").filter(|id| is_guid(id))?;
    let members = row
        .get("teammembership_association")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| member.get("systemuserid").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
        .collect();
    Some(Team {
        id: id.to_ascii_lowercase(),
        name: text(row, "name").unwrap_or(id).to_owned(),
        members,
    })
}

/// A `systemusers` row as an owner, its teams the names of the teams it
/// is a member of.
pub(crate) fn user(row: &Row, position: usize, teams: &[Team]) -> Result<Owner, Skipped> {
    let id = match text(row, "systemuserid") {
        Some(id) if is_guid(id) => id.to_ascii_lowercase(),
        Some(id) => return Err(skip(id, "the id is not a guid")),
        None => return Err(skip(&format!("row {position}"), "no systemuserid")),
    };
    let team_names = teams
        .iter()
        .filter(|team| team.members.contains(&id))
        .map(|team| team.name.clone())
        .collect();
    Ok(Owner {
        name: text(row, "fullname").unwrap_or(&id).to_owned(),
        email: text(row, "internalemailaddress").map(str::to_owned),
        active: !row
            .get("isdisabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        teams: team_names,
        id: OwnerId::new(id),
    })
}

/// A team as an owner: a team can own records. Its one team is itself.
pub(crate) fn team_owner(team: &Team) -> Owner {
    Owner {
        id: OwnerId::new(team.id.clone()),
        name: team.name.clone(),
        email: None,
        active: true,
        teams: vec![team.name.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEAL: &str = "a1b2c3d4-0000-4000-8000-000000000001";
    const USER: &str = "a1b2c3d4-0000-4000-8000-0000000000aa";
    const ACCOUNT_ID: &str = "a1b2c3d4-0000-4000-8000-0000000000bb";

    fn settings() -> DynamicsSettings {
        let mut settings = DynamicsSettings::for_url(
            url::Url::parse("https://contoso.crm.dynamics.com").unwrap(),
            "t",
            "c",
        );
        settings.account_stage_field = Some("new_customerstage".into());
        settings.lifecycle_field = Some("new_lifecycle".into());
        settings.properties.insert(
            ObjectKind::Deal,
            vec![
                "new_budgetconfirmed".into(),
                "statuscode".into(),
                "new_lifecycle".into(),
            ],
        );
        settings
    }

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    fn opportunity() -> Row {
        row(json!({
            "@odata.etag": "W/\"915244\"",
            "opportunityid": DEAL,
            "name": "Big deal",
            "_ownerid_value": USER,
            "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
            "_ownerid_value@OData.Community.Display.V1.FormattedValue": "Ann Lee",
            "_parentaccountid_value": ACCOUNT_ID,
            "_parentcontactid_value": null,
            "estimatedvalue": 12000.0,
            "estimatedvalue@OData.Community.Display.V1.FormattedValue": "$12,000.00",
            "estimatedclosedate": "2026-03-05",
            "salesstage": 2,
            "salesstage@OData.Community.Display.V1.FormattedValue": "Propose",
            "statuscode": 1,
            "statuscode@OData.Community.Display.V1.FormattedValue": "In Progress",
            "new_budgetconfirmed": true,
            "new_budgetconfirmed@OData.Community.Display.V1.FormattedValue": "Yes",
            "new_lifecycle": 100000001,
            "new_lifecycle@OData.Community.Display.V1.FormattedValue": "Customer's \"own\"",
            "createdon": "2026-01-02T10:00:00Z",
            "modifiedon": "2026-02-03T11:30:00Z"
        }))
    }

    #[test]
    fn an_annotated_opportunity_becomes_a_deal() {
        let deal = record(ObjectKind::Deal, &opportunity(), 0, &settings()).unwrap();
        assert_eq!(deal.id.as_str(), DEAL);
        assert_eq!(deal.name.as_deref(), Some("Big deal"));
        assert_eq!(deal.stage.as_deref(), Some("Propose"));
        assert_eq!(deal.amount, Some(12000.0));
        assert_eq!(deal.close_date, parse_date("2026-03-05"));
        assert_eq!(deal.owner_id.as_ref().unwrap().as_str(), USER);
        assert_eq!(
            deal.associations.account.as_ref().unwrap().as_str(),
            ACCOUNT_ID
        );
        assert!(deal.associations.contacts.is_empty());
        assert_eq!(
            deal.url.as_deref(),
            Some(
                "https://contoso.crm.dynamics.com/main.aspx?etn=opportunity&id=a1b2c3d4-0000-4000-8000-000000000001&pagetype=entityrecord"
            )
        );
        assert_eq!(
            deal.modified_at,
            parse_datetime("2026-02-03T11:30:00Z").unwrap()
        );
    }

    #[test]
    fn field_map_columns_keep_raw_values_and_the_lifecycle_its_label_quotes_intact() {
        let deal = record(ObjectKind::Deal, &opportunity(), 0, &settings()).unwrap();
        assert_eq!(deal.fields.get("statuscode"), Some(&json!(1)));
        assert_eq!(deal.fields.get("new_budgetconfirmed"), Some(&json!(true)));
        assert_eq!(deal.fields.get("new_lifecycle"), Some(&json!(100000001)));
        assert_eq!(deal.lifecycle_status.as_deref(), Some("Customer's \"own\""));
        let contact = row(json!({"contactid": DEAL, "new_lifecycle": 1,
            "new_lifecycle@OData.Community.Display.V1.FormattedValue": "Lead",
            "createdon": "2026-01-02T10:00:00Z", "modifiedon": "2026-01-02T10:00:00Z"}));
        let contact = record(ObjectKind::Contact, &contact, 0, &settings()).unwrap();
        assert_eq!(
            contact.lifecycle_status, None,
            "not among the contact's properties"
        );
    }

    #[test]
    fn a_won_or_lost_opportunity_is_in_stage_won_or_lost_whatever_its_sales_stage() {
        for (state, stage) in [(0, "Propose"), (1, "Won"), (2, "Lost")] {
            let mut closed = opportunity();
            closed.insert("statecode".into(), json!(state));
            let deal = record(ObjectKind::Deal, &closed, 0, &settings()).unwrap();
            assert_eq!(deal.stage.as_deref(), Some(stage));
        }
    }

    #[test]
    fn a_stage_without_a_label_is_its_raw_value_as_text() {
        let mut bare = opportunity();
        bare.remove("salesstage@OData.Community.Display.V1.FormattedValue");
        let deal = record(ObjectKind::Deal, &bare, 0, &settings()).unwrap();
        assert_eq!(deal.stage.as_deref(), Some("2"));
    }

    #[test]
    fn leads_contacts_and_accounts_read_their_own_columns() {
        let lead = row(
            json!({"leadid": DEAL, "fullname": "Ann Lee", "emailaddress1": "ann@acme.io",
            "statuscode": 2, "statuscode@OData.Community.Display.V1.FormattedValue": "Contacted",
            "_parentcontactid_value": USER,
            "createdon": "2026-01-02T10:00:00Z", "modifiedon": "2026-01-02T10:00:00Z"}),
        );
        let lead = record(ObjectKind::Lead, &lead, 0, &settings()).unwrap();
        assert_eq!(lead.stage.as_deref(), Some("Contacted"));
        assert_eq!(lead.email.as_deref(), Some("ann@acme.io"));
        assert_eq!(lead.associations.contacts, [RecordId::new(USER)]);
        let contact = row(
            json!({"contactid": DEAL, "fullname": "Bo", "_parentcustomerid_value": ACCOUNT_ID,
            "createdon": "2026-01-02T10:00:00Z", "modifiedon": "2026-01-02T10:00:00Z"}),
        );
        let contact = record(ObjectKind::Contact, &contact, 0, &settings()).unwrap();
        assert_eq!(contact.associations.account.unwrap().as_str(), ACCOUNT_ID);
        assert_eq!(contact.stage, None);
        let account = row(
            json!({"accountid": ACCOUNT_ID, "name": "Acme", "websiteurl": "https://www.Acme.io/x",
            "new_customerstage": 100000000,
            "new_customerstage@OData.Community.Display.V1.FormattedValue": "Onboarding",
            "createdon": "2026-01-02T10:00:00Z", "modifiedon": "2026-01-02T10:00:00Z"}),
        );
        let account = record(ObjectKind::Account, &account, 0, &settings()).unwrap();
        assert_eq!(account.stage.as_deref(), Some("Onboarding"));
        assert_eq!(account.domain.as_deref(), Some("acme.io"));
    }

    #[test]
    fn a_row_that_cannot_be_read_is_skipped_by_its_id() {
        let cases: [(&str, Value, &str); 5] = [
            (
                "modifiedon",
                json!("last tuesday"),
                "modifiedon is not a datetime",
            ),
            ("createdon", Value::Null, "no createdon"),
            (
                "estimatedclosedate",
                json!("05/03/2026"),
                "estimatedclosedate is not a date",
            ),
            (
                "estimatedvalue",
                json!("lots"),
                "estimatedvalue is not a number",
            ),
            (
                "_ownerid_value",
                json!("not-a-guid"),
                "_ownerid_value is not a guid",
            ),
        ];
        for (column, value, reason) in cases {
            let mut bad = opportunity();
            bad.insert(column.into(), value);
            let skipped = record(ObjectKind::Deal, &bad, 0, &settings()).unwrap_err();
            assert_eq!(
                (skipped.id.as_str(), skipped.reason.as_str()),
                (DEAL, reason)
            );
        }
        let mut bad_id = opportunity();
        bad_id.insert("opportunityid".into(), json!("0062x"));
        let skipped = record(ObjectKind::Deal, &bad_id, 3, &settings()).unwrap_err();
        assert_eq!(
            (skipped.id.as_str(), skipped.reason.as_str()),
            ("0062x", "the id is not a guid")
        );
        bad_id.insert("opportunityid".into(), json!(915244));
        let skipped = record(ObjectKind::Deal, &bad_id, 3, &settings()).unwrap_err();
        assert_eq!(skipped.id, "915244");
        bad_id.remove("opportunityid");
        let skipped = record(ObjectKind::Deal, &bad_id, 3, &settings()).unwrap_err();
        assert_eq!(skipped.id, "row 3");
    }

    #[test]
    fn the_select_names_each_column_once_and_properties_only_on_their_object() {
        let deal = select_columns(ObjectKind::Deal, &settings());
        assert_eq!(deal.iter().filter(|c| *c == "statuscode").count(), 1);
        assert!(deal.contains(&"salesstage".to_owned()));
        assert!(deal.contains(&"new_lifecycle".to_owned()));
        let account = select_columns(ObjectKind::Account, &settings());
        assert!(account.contains(&"new_customerstage".to_owned()));
        assert!(!account.contains(&"new_lifecycle".to_owned()));
        assert!(!select_columns(ObjectKind::Lead, &settings()).contains(&"salesstage".to_owned()));
    }

    #[test]
    fn a_task_row_names_its_record_and_a_closed_task_is_completed() {
        let open = row(
            json!({"activityid": USER, "subject": "Call", "statecode": 0,
            "scheduledend": "2026-03-05T12:00:00Z", "_ownerid_value": USER,
            "_regardingobjectid_value": DEAL}),
        );
        let (regarding, task) = task(&open).unwrap();
        assert_eq!(regarding, DEAL);
        assert_eq!(task.status, TaskStatus::Open);
        assert_eq!(task.due, parse_date("2026-03-05"));
        let done =
            row(json!({"activityid": USER, "statecode": 1, "_regardingobjectid_value": DEAL}));
        assert_eq!(super::task(&done).unwrap().1.status, TaskStatus::Completed);
        assert!(super::task(&row(json!({"activityid": USER}))).is_none());
    }

    #[test]
    fn a_task_whose_description_ends_with_a_marker_line_is_journeyds_own() {
        let with = |description: Value| {
            let (_, task) = task(&row(json!({"activityid": USER, "statecode": 0,
                "_regardingobjectid_value": DEAL, "description": description})))
            .unwrap();
            task.by_journeyd
        };
        assert!(with(json!("Fix it.\n\njourneyd-action: jd-1")));
        assert!(with(json!("journeyd-action: jd-1\n")));
        assert!(!with(json!(
            "journeyd-action: jd-1\nthen a person wrote more"
        )));
        assert!(!with(json!("Call the customer.")));
        assert!(!with(Value::Null));
    }

    #[test]
    fn users_are_owners_named_by_their_teams_and_teams_own_too() {
        let teams = [Team {
            id: ACCOUNT_ID.into(),
            name: "Sales \"East\"".into(),
            members: vec![USER.into()],
        }];
        let ann = row(
            json!({"systemuserid": USER, "fullname": "Ann", "internalemailaddress": "ann@x.io", "isdisabled": false}),
        );
        let ann = user(&ann, 0, &teams).unwrap();
        assert!(ann.active);
        assert_eq!(ann.teams, ["Sales \"East\""]);
        let gone = row(json!({"systemuserid": DEAL, "fullname": "Bo", "isdisabled": true}));
        let gone = user(&gone, 0, &teams).unwrap();
        assert!(!gone.active && gone.teams.is_empty());
        let read = team(&row(json!({"teamid": ACCOUNT_ID, "name": "Sales \"East\"",
            "teammembership_association": [{"systemuserid": USER, "@odata.etag": "W/\"1\""}]})))
        .unwrap();
        assert_eq!(read, teams[0]);
        assert_eq!(team_owner(&read).teams, ["Sales \"East\""]);
    }
}
