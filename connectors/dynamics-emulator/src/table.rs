//! The tables the emulator serves, their columns and column kinds, the
//! choice (option set) labels, and the navigation properties a write binds
//! lookups through (the brief's table of tables).

use std::fmt;

/// A Dataverse table the emulator holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Opportunity,
    Lead,
    Contact,
    Account,
    SystemUser,
    Team,
    Task,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Opportunity,
        Table::Lead,
        Table::Contact,
        Table::Account,
        Table::SystemUser,
        Table::Team,
        Table::Task,
    ];

    /// The entity set its URLs name (`opportunities`).
    pub fn entity_set(self) -> &'static str {
        match self {
            Table::Opportunity => "opportunities",
            Table::Lead => "leads",
            Table::Contact => "contacts",
            Table::Account => "accounts",
            Table::SystemUser => "systemusers",
            Table::Team => "teams",
            Table::Task => "tasks",
        }
    }

    /// The logical name (`opportunity`), as in `Microsoft.Dynamics.CRM.opportunity`.
    pub fn logical_name(self) -> &'static str {
        match self {
            Table::Opportunity => "opportunity",
            Table::Lead => "lead",
            Table::Contact => "contact",
            Table::Account => "account",
            Table::SystemUser => "systemuser",
            Table::Team => "team",
            Table::Task => "task",
        }
    }

    /// The primary key column (`opportunityid`; `activityid` for tasks).
    pub fn key(self) -> &'static str {
        match self {
            Table::Opportunity => "opportunityid",
            Table::Lead => "leadid",
            Table::Contact => "contactid",
            Table::Account => "accountid",
            Table::SystemUser => "systemuserid",
            Table::Team => "teamid",
            Table::Task => "activityid",
        }
    }

    pub(crate) fn by_entity_set(set: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.entity_set() == set)
    }

    pub(crate) fn by_logical_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.logical_name() == name)
    }

    /// The primary name column, whose value a lookup's formatted value shows.
    pub(crate) fn primary_name(self) -> &'static str {
        match self {
            Table::Opportunity | Table::Account | Table::Team => "name",
            Table::Lead | Table::Contact | Table::SystemUser => "fullname",
            Table::Task => "subject",
        }
    }

    pub(crate) fn columns(self) -> &'static [Column] {
        match self {
            Table::Opportunity => OPPORTUNITY,
            Table::Lead => LEAD,
            Table::Contact => CONTACT,
            Table::Account => ACCOUNT,
            Table::SystemUser => SYSTEMUSER,
            Table::Team => TEAM,
            Table::Task => TASK,
        }
    }

    /// The position of a column by name; the alternate key column answers
    /// to the name `alt_key` gives it (when the org defines one).
    pub(crate) fn column(self, name: &str, alt_key: Option<&str>) -> Option<usize> {
        self.columns().iter().position(|c| match c.kind {
            Kind::AltKey => alt_key == Some(name),
            _ => c.name == name,
        })
    }

    /// The column a navigation property binds, and the tables it may bind to.
    pub(crate) fn navigation(self, nav: &str) -> Option<(usize, &'static [Table])> {
        self.columns()
            .iter()
            .enumerate()
            .find_map(|(i, c)| match &c.kind {
                Kind::Lookup(navs) => navs
                    .iter()
                    .find(|(name, _)| *name == nav)
                    .map(|(_, targets)| (i, *targets)),
                _ => None,
            })
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.logical_name())
    }
}

/// What a column holds, and so how it goes on the wire and which literals
/// and JSON values it takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// The primary key (a GUID).
    Key,
    Text {
        max: usize,
    },
    Int,
    /// A decimal shown as money in formatted values.
    Money,
    Bool,
    /// `Edm.Date`: `2026-03-05`.
    Date,
    /// `Edm.DateTimeOffset`: `2026-03-02T09:00:00Z`.
    DateTime,
    Choice(&'static [Opt]),
    State(&'static [Opt]),
    /// Status reasons, each with the state it belongs to.
    Status(&'static [(i64, &'static str, i64)]),
    /// `_x_value`; the navigation properties that bind it, and their targets.
    Lookup(&'static [(&'static str, &'static [Table])]),
    /// `versionnumber`, read-only.
    Version,
    /// The task alternate key's custom text column (named by a knob).
    AltKey,
}

pub(crate) type Opt = (i64, &'static str);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

impl Column {
    /// Whether a create or update body may set it directly (lookups are
    /// set through their navigation properties; system columns never).
    pub(crate) fn writable(&self) -> bool {
        match self.kind {
            Kind::Key | Kind::Lookup(_) | Kind::Version => false,
            Kind::DateTime => !matches!(self.name, "createdon" | "modifiedon"),
            _ => true,
        }
    }

    /// The choice labels of this column, if it is a choice of any kind.
    pub(crate) fn options(&self) -> Option<Vec<(i64, &'static str)>> {
        match self.kind {
            Kind::Choice(opts) | Kind::State(opts) => Some(opts.to_vec()),
            Kind::Status(opts) => Some(opts.iter().map(|(v, l, _)| (*v, *l)).collect()),
            _ => None,
        }
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

const TEXT: Kind = Kind::Text { max: 4000 };
const NAME: Kind = Kind::Text { max: 300 };

const OWNER: Kind = Kind::Lookup(&[("ownerid", &[Table::SystemUser, Table::Team])]);
const PARENT_ACCOUNT: Kind = Kind::Lookup(&[("parentaccountid", &[Table::Account])]);
const PARENT_CONTACT: Kind = Kind::Lookup(&[("parentcontactid", &[Table::Contact])]);
const BUSINESS_UNIT: Kind = Kind::Lookup(&[("businessunitid", &[])]);

pub(crate) const SALES_STAGES: &[Opt] =
    &[(0, "Qualify"), (1, "Develop"), (2, "Propose"), (3, "Close")];
/// The value of the org's custom sales stage (the odd stage), when it has one.
pub(crate) const ODD_STAGE_VALUE: i64 = 100_000_000;

const OPPORTUNITY_STATES: &[Opt] = &[(0, "Open"), (1, "Won"), (2, "Lost")];
const OPPORTUNITY_STATUSES: &[(i64, &str, i64)] = &[
    (1, "In Progress", 0),
    (2, "On Hold", 0),
    (3, "Won", 1),
    (4, "Canceled", 2),
    (5, "Out-Sold", 2),
];
const LEAD_SOURCES: &[Opt] = &[
    (1, "Advertisement"),
    (2, "Employee Referral"),
    (3, "External Referral"),
    (4, "Partner"),
    (5, "Public Relations"),
    (6, "Seminar"),
    (7, "Trade Show"),
    (8, "Web"),
    (9, "Word of Mouth"),
    (10, "Other"),
];
const LEAD_STATES: &[Opt] = &[(0, "Open"), (1, "Qualified"), (2, "Disqualified")];
pub(crate) const LEAD_STATUSES: &[(i64, &str, i64)] = &[
    (1, "New", 0),
    (2, "Contacted", 0),
    (3, "Qualified", 1),
    (4, "Lost", 2),
    (5, "Cannot Contact", 2),
    (6, "No Longer Interested", 2),
    (7, "Canceled", 2),
];
pub(crate) const CUSTOMER_STAGES: &[Opt] = &[
    (100_000_000, "Onboarding"),
    (100_000_001, "Adoption"),
    (100_000_002, "Renewal"),
    (100_000_003, "Expansion"),
];
const ACCESS_MODES: &[Opt] = &[(0, "Read-Write"), (4, "Non-interactive")];
const TEAM_TYPES: &[Opt] = &[(0, "Owner"), (1, "Access")];
const PRIORITIES: &[Opt] = &[(0, "Low"), (1, "Normal"), (2, "High")];
const TASK_STATES: &[Opt] = &[(0, "Open"), (1, "Completed"), (2, "Canceled")];
pub(crate) const TASK_STATUSES: &[(i64, &str, i64)] = &[
    (2, "Not Started", 0),
    (3, "In Progress", 0),
    (4, "Waiting on someone else", 0),
    (7, "Deferred", 0),
    (5, "Completed", 1),
    (6, "Canceled", 2),
];

const OPPORTUNITY: &[Column] = &[
    col("opportunityid", Kind::Key),
    col("name", NAME),
    col("_ownerid_value", OWNER),
    col("_parentaccountid_value", PARENT_ACCOUNT),
    col("_parentcontactid_value", PARENT_CONTACT),
    col("estimatedvalue", Kind::Money),
    col("estimatedclosedate", Kind::Date),
    col("salesstage", Kind::Choice(SALES_STAGES)),
    col("stepname", NAME),
    col("statecode", Kind::State(OPPORTUNITY_STATES)),
    col("statuscode", Kind::Status(OPPORTUNITY_STATUSES)),
    col("customerpainpoints", TEXT),
    col("decisionmaker", Kind::Bool),
    col("new_discoverycalldate", Kind::Date),
    col("new_kickoffdate", Kind::Date),
    col("new_golivedate", Kind::Date),
    col("new_budgetconfirmed", Kind::Bool),
    col("new_successcriteria", TEXT),
    col("new_executivesponsor", NAME),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
];

const LEAD: &[Column] = &[
    col("leadid", Kind::Key),
    col("fullname", NAME),
    col("firstname", NAME),
    col("lastname", NAME),
    col("companyname", NAME),
    col("emailaddress1", NAME),
    col("subject", NAME),
    col("leadsourcecode", Kind::Choice(LEAD_SOURCES)),
    col("statecode", Kind::State(LEAD_STATES)),
    col("statuscode", Kind::Status(LEAD_STATUSES)),
    col("_ownerid_value", OWNER),
    col("_parentaccountid_value", PARENT_ACCOUNT),
    col("_parentcontactid_value", PARENT_CONTACT),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
];

const CONTACT: &[Column] = &[
    col("contactid", Kind::Key),
    col("fullname", NAME),
    col("firstname", NAME),
    col("lastname", NAME),
    col("emailaddress1", NAME),
    col(
        "_parentcustomerid_value",
        Kind::Lookup(&[("parentcustomerid_account", &[Table::Account])]),
    ),
    col("_ownerid_value", OWNER),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
];

const ACCOUNT: &[Column] = &[
    col("accountid", Kind::Key),
    col("name", NAME),
    col("accountnumber", NAME),
    col("websiteurl", NAME),
    col("_ownerid_value", OWNER),
    col("new_customerstage", Kind::Choice(CUSTOMER_STAGES)),
    col("new_kickoffdate", Kind::Date),
    col("new_golivedate", Kind::Date),
    col("new_renewalquotedate", Kind::Date),
    col("new_renewalsigneddate", Kind::Date),
    col("new_activeusers", Kind::Int),
    col("new_healthscore", Kind::Int),
    col("new_successcriteriamet", Kind::Bool),
    col("new_expansionopportunity", Kind::Bool),
    col("new_champion", NAME),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
];

const SYSTEMUSER: &[Column] = &[
    col("systemuserid", Kind::Key),
    col("fullname", NAME),
    col("internalemailaddress", NAME),
    col("isdisabled", Kind::Bool),
    col("accessmode", Kind::Choice(ACCESS_MODES)),
    col("_businessunitid_value", BUSINESS_UNIT),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
];

const TEAM: &[Column] = &[
    col("teamid", Kind::Key),
    col("name", NAME),
    col("teamtype", Kind::Choice(TEAM_TYPES)),
    col("_businessunitid_value", BUSINESS_UNIT),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
];

const TASK: &[Column] = &[
    col("activityid", Kind::Key),
    col("subject", Kind::Text { max: 200 }),
    col("description", Kind::Text { max: 100_000 }),
    col("scheduledend", Kind::DateTime),
    col("prioritycode", Kind::Choice(PRIORITIES)),
    col("statecode", Kind::State(TASK_STATES)),
    col("statuscode", Kind::Status(TASK_STATUSES)),
    col(
        "_regardingobjectid_value",
        Kind::Lookup(&[
            ("regardingobjectid_opportunity_task", &[Table::Opportunity]),
            ("regardingobjectid_lead_task", &[Table::Lead]),
            ("regardingobjectid_contact_task", &[Table::Contact]),
            ("regardingobjectid_account_task", &[Table::Account]),
        ]),
    ),
    col("_ownerid_value", OWNER),
    col("createdon", Kind::DateTime),
    col("modifiedon", Kind::DateTime),
    col("versionnumber", Kind::Version),
    col("", Kind::AltKey),
];

/// The column position of `name` in `table`, for the seed and the store,
/// which only name columns that exist.
pub(crate) fn at(table: Table, name: &str) -> usize {
    table
        .column(name, None)
        .unwrap_or_else(|| panic!("{table} has a column {name}"))
}
