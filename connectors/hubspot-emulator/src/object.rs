//! The emulated object types, their property definitions and the
//! association types between them (facts 3.3, 3.4).

use std::collections::HashMap;

/// A CRM object type the emulator serves. Paths accept the plural name
/// (`deals`) or the object type id (`0-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Deals,
    Contacts,
    Companies,
    Tasks,
}

impl ObjectType {
    pub const ALL: [ObjectType; 4] = [Self::Deals, Self::Contacts, Self::Companies, Self::Tasks];

    /// `deals`, `contacts`, `companies`, `tasks`: the path segment and the
    /// key of an `associations` object.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Deals => "deals",
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Tasks => "tasks",
        }
    }

    /// `deal`, `contact`, `company`, `task`: as in `deal_to_contact`.
    pub fn singular(self) -> &'static str {
        match self {
            Self::Deals => "deal",
            Self::Contacts => "contact",
            Self::Companies => "company",
            Self::Tasks => "task",
        }
    }

    /// The object type id (`0-3` for deals).
    pub fn type_id(self) -> &'static str {
        match self {
            Self::Deals => "0-3",
            Self::Contacts => "0-1",
            Self::Companies => "0-2",
            Self::Tasks => "0-27",
        }
    }

    /// Reads a path segment: the plural name or the object type id.
    pub fn from_path(segment: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.plural().eq_ignore_ascii_case(segment) || t.type_id() == segment)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// `DEAL`, as HubSpot names an object type in its error messages.
    pub(crate) fn shouting(self) -> String {
        self.singular().to_ascii_uppercase()
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.plural())
    }
}

/// The HUBSPOT_DEFINED association type ids the emulator knows, from
/// object to object. Task -> deal 216 and task -> contact 204 are in the
/// facts; the others are widely used values (task -> company 192 (?)).
const ASSOCIATION_TYPES: [(ObjectType, ObjectType, u32); 16] = [
    (ObjectType::Tasks, ObjectType::Deals, 216),
    (ObjectType::Tasks, ObjectType::Contacts, 204),
    (ObjectType::Tasks, ObjectType::Companies, 192),
    (ObjectType::Deals, ObjectType::Tasks, 215),
    (ObjectType::Contacts, ObjectType::Tasks, 203),
    (ObjectType::Companies, ObjectType::Tasks, 191),
    (ObjectType::Deals, ObjectType::Contacts, 3),
    (ObjectType::Contacts, ObjectType::Deals, 4),
    (ObjectType::Deals, ObjectType::Companies, 5),
    (ObjectType::Companies, ObjectType::Deals, 6),
    (ObjectType::Deals, ObjectType::Companies, 341),
    (ObjectType::Companies, ObjectType::Deals, 342),
    (ObjectType::Contacts, ObjectType::Companies, 1),
    (ObjectType::Companies, ObjectType::Contacts, 2),
    (ObjectType::Contacts, ObjectType::Companies, 279),
    (ObjectType::Companies, ObjectType::Contacts, 280),
];

/// The object a HUBSPOT_DEFINED association type id leads to from `from`.
pub(crate) fn association_target(from: ObjectType, type_id: u32) -> Option<ObjectType> {
    ASSOCIATION_TYPES
        .iter()
        .find(|(f, _, id)| *f == from && *id == type_id)
        .map(|(_, to, _)| *to)
}

/// The unlabeled HUBSPOT_DEFINED association type id from `from` to `to`.
pub(crate) fn association_type_id(from: ObjectType, to: ObjectType) -> Option<u32> {
    ASSOCIATION_TYPES
        .iter()
        .find(|(f, t, _)| *f == from && *t == to)
        .map(|(_, _, id)| *id)
}

/// `deal_to_contact`: the `type` of an association in a v3 response.
pub(crate) fn association_name(from: ObjectType, to: ObjectType) -> String {
    format!("{}_to_{}", from.singular(), to.singular())
}

/// A property's type, as the properties API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropKind {
    String,
    Number,
    DateTime,
    Date,
    Bool,
    Enumeration,
}

impl PropKind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::DateTime => "datetime",
            Self::Date => "date",
            Self::Bool => "bool",
            Self::Enumeration => "enumeration",
        }
    }

    pub(crate) fn field_type(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Number => "number",
            Self::DateTime | Self::Date => "date",
            Self::Bool => "booleancheckbox",
            Self::Enumeration => "select",
        }
    }
}

/// Where a property's value lives: most are stored; the id, the creation
/// and the last-modified dates are read off the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Stored,
    Id,
    Created,
    Modified,
}

#[derive(Debug, Clone)]
pub(crate) struct PropDef {
    pub name: String,
    pub label: String,
    pub kind: PropKind,
    /// (value, label), in display order.
    pub options: Vec<(String, String)>,
    pub read_only: bool,
    pub source: Source,
    pub hubspot_defined: bool,
}

impl PropDef {
    fn new(name: &str, label: &str, kind: PropKind) -> Self {
        Self {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            options: Vec::new(),
            read_only: false,
            source: Source::Stored,
            hubspot_defined: true,
        }
    }

    fn custom(mut self) -> Self {
        self.hubspot_defined = false;
        self
    }

    fn read_only(mut self, source: Source) -> Self {
        self.read_only = true;
        self.source = source;
        self
    }

    fn options<'a>(mut self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.options = options
            .into_iter()
            .map(|(v, l)| (v.to_owned(), l.to_owned()))
            .collect();
        self
    }

    /// The position of `value` among the options (lifecycle order).
    pub(crate) fn option_rank(&self, value: &str) -> Option<usize> {
        self.options.iter().position(|(v, _)| v == value)
    }
}

/// Index of a property within its object type's schema.
pub(crate) type PropId = u16;

/// Every property of one object type.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub object: ObjectType,
    pub defs: Vec<PropDef>,
    index: HashMap<String, PropId>,
    /// Returned when a request names no properties.
    pub defaults: Vec<PropId>,
    /// Returned whatever a request names (id, created, modified).
    pub always: Vec<PropId>,
}

impl Schema {
    pub(crate) fn id(&self, name: &str) -> Option<PropId> {
        self.index.get(name).copied()
    }

    pub(crate) fn def(&self, id: PropId) -> &PropDef {
        &self.defs[usize::from(id)]
    }

    fn build(object: ObjectType, defs: Vec<PropDef>, defaults: &[&str]) -> Self {
        let index: HashMap<String, PropId> = defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), PropId::try_from(i).expect("few properties")))
            .collect();
        let find = |name: &str| index[name];
        let always: Vec<PropId> = defs
            .iter()
            .filter(|d| d.source != Source::Stored)
            .map(|d| find(&d.name))
            .collect();
        let defaults = defaults.iter().map(|n| find(n)).collect();
        Self {
            object,
            defs,
            index,
            defaults,
            always,
        }
    }
}

/// HubSpot's default lifecycle stages, in order.
pub(crate) const LIFECYCLE_STAGES: [(&str, &str); 8] = [
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

pub(crate) const ANALYTICS_SOURCES: [(&str, &str); 9] = [
    ("ORGANIC_SEARCH", "Organic search"),
    ("PAID_SEARCH", "Paid search"),
    ("EMAIL_MARKETING", "Email marketing"),
    ("SOCIAL_MEDIA", "Organic social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other campaigns"),
    ("DIRECT_TRAFFIC", "Direct traffic"),
    ("OFFLINE", "Offline sources"),
    ("PAID_SOCIAL", "Paid social"),
];

const CURRENCIES: [(&str, &str); 6] = [
    ("USD", "US Dollar"),
    ("EUR", "Euro"),
    ("GBP", "British Pound"),
    ("CAD", "Canadian Dollar"),
    ("AUD", "Australian Dollar"),
    ("CHF", "Swiss Franc"),
];

/// The schemas of all four object types. `stage_ids` are every deal stage
/// of every pipeline (each gets its `hs_date_entered_<id>`), `pipeline_ids`
/// the deal pipelines, `owner_ids` every owner, archived ones included.
pub(crate) fn schemas(
    pipeline_ids: &[String],
    stage_ids: &[String],
    owner_ids: &[String],
) -> [Schema; 4] {
    use PropKind::*;
    let owner_options: Vec<(&str, &str)> = owner_ids
        .iter()
        .map(|id| (id.as_str(), id.as_str()))
        .collect();
    let owner =
        || PropDef::new("hubspot_owner_id", "Owner", Enumeration).options(owner_options.clone());
    let object_id = || PropDef::new("hs_object_id", "Record ID", Number).read_only(Source::Id);
    let source = || {
        PropDef::new("hs_analytics_source", "Original Source", Enumeration)
            .options(ANALYTICS_SOURCES)
    };
    let lifecycle =
        || PropDef::new("lifecyclestage", "Lifecycle Stage", Enumeration).options(LIFECYCLE_STAGES);

    let mut deal = vec![
        PropDef::new("dealname", "Deal Name", String),
        PropDef::new("amount", "Amount", Number),
        PropDef::new("deal_currency_code", "Currency", Enumeration).options(CURRENCIES),
        PropDef::new("closedate", "Close Date", DateTime),
        PropDef::new("createdate", "Create Date", DateTime).read_only(Source::Created),
        PropDef::new("hs_lastmodifieddate", "Last Modified Date", DateTime)
            .read_only(Source::Modified),
        object_id(),
        PropDef::new("pipeline", "Pipeline", Enumeration)
            .options(pipeline_ids.iter().map(|p| (p.as_str(), p.as_str()))),
        PropDef::new("dealstage", "Deal Stage", Enumeration)
            .options(stage_ids.iter().map(|s| (s.as_str(), s.as_str()))),
        owner(),
        PropDef::new("description", "Deal Description", String),
        source(),
        PropDef::new("pain_points", "Pain points", String).custom(),
        PropDef::new("discovery_call_date", "Discovery call date", Date).custom(),
        PropDef::new("decision_maker_contact", "Decision maker", String).custom(),
        PropDef::new("budget_approved", "Budget approved", Bool)
            .options([("true", "Yes"), ("false", "No")])
            .custom(),
        PropDef::new("success_criteria", "Success criteria", String).custom(),
        PropDef::new("executive_sponsor", "Executive sponsor", String).custom(),
        PropDef::new("kickoff_meeting_date", "Kickoff meeting date", Date).custom(),
        PropDef::new("go_live_date", "Go-live date", Date).custom(),
        PropDef::new("weekly_active_users", "Weekly active users", Number).custom(),
        PropDef::new("customer_health_score", "Customer health score", Number).custom(),
        PropDef::new("success_criteria_met", "Success criteria met", Bool)
            .options([("true", "Yes"), ("false", "No")])
            .custom(),
        PropDef::new("renewal_quote_sent_date", "Renewal quote sent", Date).custom(),
        PropDef::new("renewal_signed_date", "Renewal signed", Date).custom(),
        PropDef::new("expansion_opportunity", "Expansion opportunity", String).custom(),
        PropDef::new("champion_contact", "Champion", String).custom(),
    ];
    for stage in stage_ids {
        let mut def = PropDef::new(
            &format!("hs_date_entered_{stage}"),
            &format!("Date entered \"{stage}\""),
            DateTime,
        );
        // Calculated by HubSpot when the deal stage changes.
        def.read_only = true;
        deal.push(def);
    }
    let contact = vec![
        PropDef::new("firstname", "First Name", String),
        PropDef::new("lastname", "Last Name", String),
        PropDef::new("email", "Email", String),
        PropDef::new("phone", "Phone Number", String),
        PropDef::new("jobtitle", "Job Title", String),
        PropDef::new("company", "Company Name", String),
        lifecycle(),
        owner(),
        source(),
        PropDef::new("createdate", "Create Date", DateTime).read_only(Source::Created),
        PropDef::new("lastmodifieddate", "Last Modified Date", DateTime)
            .read_only(Source::Modified),
        object_id(),
    ];
    let company = vec![
        PropDef::new("name", "Name", String),
        PropDef::new("domain", "Company Domain Name", String),
        PropDef::new("industry", "Industry", String),
        PropDef::new("city", "City", String),
        PropDef::new("phone", "Phone Number", String),
        PropDef::new("description", "Description", String),
        lifecycle(),
        owner(),
        source(),
        PropDef::new("createdate", "Create Date", DateTime).read_only(Source::Created),
        PropDef::new("hs_lastmodifieddate", "Last Modified Date", DateTime)
            .read_only(Source::Modified),
        object_id(),
    ];
    let task = vec![
        PropDef::new("hs_task_subject", "Task Title", String),
        PropDef::new("hs_task_body", "Notes", String),
        PropDef::new("hs_task_status", "Task Status", Enumeration).options([
            ("NOT_STARTED", "Not started"),
            ("IN_PROGRESS", "In progress"),
            ("WAITING", "Waiting"),
            ("DEFERRED", "Deferred"),
            ("COMPLETED", "Completed"),
        ]),
        PropDef::new("hs_task_priority", "Priority", Enumeration).options([
            ("NONE", "None"),
            ("LOW", "Low"),
            ("MEDIUM", "Medium"),
            ("HIGH", "High"),
        ]),
        PropDef::new("hs_task_type", "Task Type", Enumeration).options([
            ("TODO", "To-do"),
            ("CALL", "Call"),
            ("EMAIL", "Email"),
            ("LINKED_IN_CONNECT", "LinkedIn connect"),
            ("LINKED_IN_MESSAGE", "LinkedIn message"),
        ]),
        PropDef::new("hs_timestamp", "Due date", DateTime),
        owner(),
        PropDef::new("hs_createdate", "Create Date", DateTime).read_only(Source::Created),
        PropDef::new("hs_lastmodifieddate", "Last Modified Date", DateTime)
            .read_only(Source::Modified),
        object_id(),
    ];
    [
        Schema::build(
            ObjectType::Deals,
            deal,
            &[
                "dealname",
                "amount",
                "closedate",
                "pipeline",
                "dealstage",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
        ),
        Schema::build(
            ObjectType::Contacts,
            contact,
            &[
                "firstname",
                "lastname",
                "email",
                "createdate",
                "lastmodifieddate",
                "hs_object_id",
            ],
        ),
        Schema::build(
            ObjectType::Companies,
            company,
            &[
                "name",
                "domain",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
        ),
        Schema::build(
            ObjectType::Tasks,
            task,
            &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        ),
    ]
}
