//! The sObjects the emulator serves, their key prefixes (facts 1.6) and
//! the fields each one has, with the type SOQL compares them as.

use std::fmt;

/// An sObject type the emulated org holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SObject {
    Account,
    Contact,
    Lead,
    Opportunity,
    Task,
    User,
    OpportunityHistory,
    OpportunityContactRole,
}

/// How a field's values are typed, for SOQL comparisons and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Id,
    Text,
    /// A long text area (up to 32,000 characters): selectable, but never
    /// filtered or sorted on (facts 6.10).
    LongText,
    Bool,
    Number,
    Date,
    DateTime,
    /// A lookup to a record of one of these types.
    Reference(&'static [SObject]),
}

impl FieldType {
    /// Whether values are record ids, which SOQL matches in their 15- or
    /// 18-character form.
    pub(crate) fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference(_))
    }
}

use FieldType::{Bool, DateTime, Id, LongText, Number, Reference, Text};

/// Every record has these; `CreatedById` and `CreatedDate` are set by the
/// server on insert (facts 6.15).
const COMMON: &[(&str, FieldType)] = &[
    ("Id", Id),
    ("IsDeleted", Bool),
    ("CreatedById", Reference(&[SObject::User])),
    ("CreatedDate", DateTime),
    ("LastModifiedDate", DateTime),
    ("SystemModstamp", DateTime),
];

impl SObject {
    pub const ALL: [SObject; 8] = [
        SObject::Account,
        SObject::Contact,
        SObject::Lead,
        SObject::Opportunity,
        SObject::Task,
        SObject::User,
        SObject::OpportunityHistory,
        SObject::OpportunityContactRole,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SObject::Account => "Account",
            SObject::Contact => "Contact",
            SObject::Lead => "Lead",
            SObject::Opportunity => "Opportunity",
            SObject::Task => "Task",
            SObject::User => "User",
            SObject::OpportunityHistory => "OpportunityHistory",
            SObject::OpportunityContactRole => "OpportunityContactRole",
        }
    }

    /// The sObject named `name`; Salesforce names are case-insensitive.
    pub fn from_name(name: &str) -> Option<SObject> {
        Self::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// The three-character key prefix of its ids (facts 1.6; 005, 008 and
    /// 00K are general knowledge (?)).
    pub fn key_prefix(self) -> &'static str {
        match self {
            SObject::Account => "001",
            SObject::Contact => "003",
            SObject::Lead => "00Q",
            SObject::Opportunity => "006",
            SObject::Task => "00T",
            SObject::User => "005",
            SObject::OpportunityHistory => "008",
            SObject::OpportunityContactRole => "00K",
        }
    }

    pub(crate) fn of_id(id: &str) -> Option<SObject> {
        Self::ALL
            .into_iter()
            .find(|o| id.len() >= 3 && &id[..3] == o.key_prefix())
    }

    /// Writable through the REST API (OpportunityHistory is read-only,
    /// Users are left alone).
    pub(crate) fn writable(self) -> bool {
        !matches!(self, SObject::OpportunityHistory | SObject::User)
    }

    fn own_fields(self) -> &'static [(&'static str, FieldType)] {
        const OWNER: FieldType = Reference(&[SObject::User]);
        const ACCOUNT: FieldType = Reference(&[SObject::Account]);
        match self {
            SObject::Account => &[
                ("Name", Text),
                ("Website", Text),
                ("OwnerId", OWNER),
                ("Customer_Stage__c", Text),
                ("Description", LongText),
                ("Kickoff_Date__c", FieldType::Date),
                ("Go_Live_Date__c", FieldType::Date),
                ("Active_Users__c", Number),
                ("Health_Score__c", Number),
                ("Success_Criteria_Met__c", Bool),
                ("Renewal_Quote_Date__c", FieldType::Date),
                ("Renewal_Signed_Date__c", FieldType::Date),
                ("Expansion_Opportunity__c", Text),
                ("Champion__c", Text),
            ],
            SObject::Contact => &[
                ("FirstName", Text),
                ("LastName", Text),
                ("Name", Text),
                ("Email", Text),
                ("AccountId", ACCOUNT),
                ("OwnerId", OWNER),
                ("Description", LongText),
            ],
            SObject::Lead => &[
                ("FirstName", Text),
                ("LastName", Text),
                ("Name", Text),
                ("Email", Text),
                ("Company", Text),
                ("Website", Text),
                ("Status", Text),
                ("LeadSource", Text),
                ("OwnerId", OWNER),
                ("Description", LongText),
            ],
            SObject::Opportunity => &[
                ("Name", Text),
                ("StageName", Text),
                ("Amount", Number),
                ("CloseDate", FieldType::Date),
                ("AccountId", ACCOUNT),
                ("OwnerId", OWNER),
                ("IsClosed", Bool),
                ("IsWon", Bool),
                ("LeadSource", Text),
                ("Description", LongText),
                ("Pain_Points__c", Text),
                ("Discovery_Call_Date__c", FieldType::Date),
                ("Decision_Maker__c", Text),
                ("Budget_Confirmed__c", Bool),
                ("Success_Criteria__c", Text),
                ("Executive_Sponsor__c", Text),
                ("Kickoff_Date__c", FieldType::Date),
                ("Go_Live_Date__c", FieldType::Date),
            ],
            SObject::Task => &[
                ("Subject", Text),
                ("Description", LongText),
                ("Status", Text),
                ("Priority", Text),
                ("IsClosed", Bool),
                ("ActivityDate", FieldType::Date),
                (
                    "WhatId",
                    Reference(&[SObject::Account, SObject::Opportunity]),
                ),
                ("WhoId", Reference(&[SObject::Contact, SObject::Lead])),
                ("OwnerId", OWNER),
                ("Journeyd_Key__c", Text),
            ],
            SObject::User => &[
                ("Name", Text),
                ("Username", Text),
                ("Email", Text),
                ("IsActive", Bool),
                ("Department", Text),
                ("Title", Text),
            ],
            SObject::OpportunityHistory => &[
                ("OpportunityId", Reference(&[SObject::Opportunity])),
                ("StageName", Text),
                ("Amount", Number),
                ("CloseDate", FieldType::Date),
            ],
            // Facts 6.12.
            SObject::OpportunityContactRole => &[
                ("OpportunityId", Reference(&[SObject::Opportunity])),
                ("ContactId", Reference(&[SObject::Contact])),
                ("Role", Text),
                ("IsPrimary", Bool),
            ],
        }
    }

    /// The field named `name` (case-insensitive): its canonical name and type.
    pub(crate) fn field(self, name: &str) -> Option<(&'static str, FieldType)> {
        COMMON
            .iter()
            .chain(self.own_fields())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .copied()
            .filter(|(n, _)| {
                // OpportunityHistory has no LastModifiedDate.
                !(self == SObject::OpportunityHistory && *n == "LastModifiedDate")
            })
    }

    /// Fields the server sets; a write naming them is refused.
    pub(crate) fn read_only(self, name: &str) -> bool {
        let derived_name = matches!(self, SObject::Contact | SObject::Lead) && name == "Name";
        derived_name
            || matches!(
                name,
                "Id" | "IsDeleted"
                    | "CreatedById"
                    | "CreatedDate"
                    | "LastModifiedDate"
                    | "SystemModstamp"
                    | "IsClosed"
                    | "IsWon"
            )
    }

    /// Fields a create must set (general knowledge of the standard
    /// objects (?)).
    pub(crate) fn required(self) -> &'static [&'static str] {
        match self {
            SObject::Account => &["Name"],
            SObject::Contact => &["LastName"],
            SObject::Lead => &["LastName", "Company"],
            SObject::Opportunity => &["Name", "StageName", "CloseDate"],
            SObject::OpportunityContactRole => &["OpportunityId", "ContactId"],
            _ => &[],
        }
    }

    /// Fields marked External ID, usable for upserts.
    pub(crate) fn external_ids(self) -> &'static [&'static str] {
        match self {
            SObject::Task => &["Journeyd_Key__c"],
            _ => &[],
        }
    }
}

/// A parent-to-child relationship a SOQL sub-query can name: the children
/// are the `child` records whose lookup `field` holds the parent's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChildRelationship {
    pub name: &'static str,
    pub child: SObject,
    pub field: &'static str,
}

const fn child(name: &'static str, child: SObject, field: &'static str) -> ChildRelationship {
    ChildRelationship { name, child, field }
}

/// Every lookup a relationship runs through; the store keeps an index of
/// each, so that a sub-query reads a parent's children, not the table.
pub(crate) const INDEXED_LOOKUPS: [(SObject, &str); 4] = [
    (SObject::OpportunityHistory, "OpportunityId"),
    (SObject::OpportunityContactRole, "OpportunityId"),
    (SObject::Task, "WhatId"),
    (SObject::Task, "WhoId"),
];

impl SObject {
    /// The standard child relationships the emulator serves: Opportunity's
    /// `OpportunityContactRoles` through `OpportunityContactRole.OpportunityId`
    /// (facts 6.12); and, general knowledge of the standard objects (?),
    /// Opportunity's `OpportunityHistories` through
    /// `OpportunityHistory.OpportunityId`, and `Tasks` through `Task.WhatId`
    /// on opportunities and accounts and `Task.WhoId` on contacts and leads.
    pub(crate) fn child_relationships(self) -> &'static [ChildRelationship] {
        const OPPORTUNITY: &[ChildRelationship] = &[
            child(
                "OpportunityHistories",
                SObject::OpportunityHistory,
                "OpportunityId",
            ),
            child("Tasks", SObject::Task, "WhatId"),
            child(
                "OpportunityContactRoles",
                SObject::OpportunityContactRole,
                "OpportunityId",
            ),
        ];
        const WHAT: &[ChildRelationship] = &[child("Tasks", SObject::Task, "WhatId")];
        const WHO: &[ChildRelationship] = &[child("Tasks", SObject::Task, "WhoId")];
        match self {
            SObject::Opportunity => OPPORTUNITY,
            SObject::Account => WHAT,
            SObject::Contact | SObject::Lead => WHO,
            SObject::Task
            | SObject::User
            | SObject::OpportunityHistory
            | SObject::OpportunityContactRole => &[],
        }
    }

    /// The child relationship named `name` (case-insensitive).
    pub(crate) fn child_relationship(self, name: &str) -> Option<ChildRelationship> {
        self.child_relationships()
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .copied()
    }
}

impl fmt::Display for SObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Task Status values (facts 1.4, a default picklist (?)) and whether each
/// one closes the task.
pub(crate) const TASK_STATUSES: [(&str, bool); 5] = [
    ("Not Started", false),
    ("In Progress", false),
    ("Completed", true),
    ("Waiting on someone else", false),
    ("Deferred", false),
];

pub(crate) const TASK_PRIORITIES: [&str; 3] = ["High", "Normal", "Low"];
