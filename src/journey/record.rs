//! A CRM record as the journey sees it: canonical stage, owner with role,
//! time entered in stage, canonical field names.
//!
//! [`JourneyRecord::to_cel`] gives the `record` value that criteria and custom
//! rules are evaluated against. Its shape is part of the config's interface
//! (documented in README "Writing criteria"): absent values are absent keys,
//! so `has(record.close_date)` means "is set".

use crate::journey::expr::RecordKeys;
use crate::journey::{RoleId, StageId};
use cel::Value;
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::{
    ConnectorName, ObjectKind, OwnerId, RecordId, System, TaskRef, TaskStatus,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Where a record stands in the journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// A journey stage, with its position in journey order.
    Mapped { id: StageId, index: usize },
    /// A native value the connector's stage map does not know.
    Unmapped(String),
    /// The record has no native stage value.
    None,
}

impl StageRef {
    pub fn mapped(&self) -> Option<(&StageId, usize)> {
        match self {
            StageRef::Mapped { id, index } => Some((id, *index)),
            _ => None,
        }
    }
}

/// The record's owner, with what the owner list and role map say of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    pub id: OwnerId,
    pub name: Option<String>,
    /// `None` when the owner is not in the synced owner list.
    pub active: Option<bool>,
    pub role: Option<RoleId>,
}

/// One step of the record's stage history, mapped to the journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub native: String,
    pub stage: StageRef,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JourneyRecord {
    pub connector: ConnectorName,
    pub system: System,
    pub object: ObjectKind,
    pub id: RecordId,
    pub name: Option<String>,
    pub url: Option<String>,
    /// False when the connector has no stage map for this object kind: the
    /// record is outside the journey and only record-level rules apply.
    pub in_journey: bool,
    pub stage: StageRef,
    pub owner: Option<OwnerInfo>,
    /// When the record entered its current stage, where it can be told.
    pub entered_stage_at: Option<DateTime<Utc>>,
    /// The CRM's lifecycle value and the stage it maps to, where configured.
    pub lifecycle: Option<(String, Option<StageId>)>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub email: Option<String>,
    pub domain: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub close_date: Option<NaiveDate>,
    pub contract_start: Option<NaiveDate>,
    pub contract_end: Option<NaiveDate>,
    /// Keyed by canonical name.
    pub fields: BTreeMap<String, serde_json::Value>,
    pub account: Option<RecordId>,
    pub contacts: Vec<RecordId>,
    pub tasks: Vec<TaskRef>,
    /// Oldest first.
    pub history: Vec<Step>,
}

/// Top-level attributes a handoff field or message may name besides the
/// canonical `fields`.
pub const ATTRIBUTES: [&str; 13] = [
    "name",
    "owner",
    "amount",
    "currency",
    "email",
    "domain",
    "close_date",
    "contract_start",
    "contract_end",
    "account",
    "contacts",
    // A way to reach the buyer: the record's own email, or an associated
    // contact (a deal has no email of its own).
    "contact",
    // The buyer's company: the record's web domain, or an associated account.
    "company",
];

/// The name admins know a record by, as the rules' messages begin:
/// `deal "Acme renewal" (123)`, or `deal 123` without a name.
pub fn label(object: ObjectKind, name: Option<&str>, id: &RecordId) -> String {
    match name {
        Some(name) => format!("{object} \"{name}\" ({id})"),
        None => format!("{object} {id}"),
    }
}

/// [`ATTRIBUTES`], for slices of it that live as long as the program.
static ATTRIBUTE_KEYS: [&str; 13] = ATTRIBUTES;

/// The keys of the CEL `record` that [`JourneyRecord::has_value`] reads
/// for `name`: an attribute's own key (`contact` and `company` either of
/// two), or `None` for a canonical field, read from `record.fields`.
pub fn attribute_keys(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "contact" => Some(&["email", "contacts"]),
        "company" => Some(&["domain", "account"]),
        _ => ATTRIBUTE_KEYS
            .iter()
            .find(|attribute| **attribute == name)
            .map(std::slice::from_ref),
    }
}

impl JourneyRecord {
    /// Whether a canonical field or attribute is set to something non-empty.
    pub fn has_value(&self, name: &str) -> bool {
        match name {
            "name" => non_empty(self.name.as_deref()),
            "owner" => self.owner.is_some(),
            "amount" => self.amount.is_some(),
            "currency" => non_empty(self.currency.as_deref()),
            "email" => non_empty(self.email.as_deref()),
            "domain" => non_empty(self.domain.as_deref()),
            "close_date" => self.close_date.is_some(),
            "contract_start" => self.contract_start.is_some(),
            "contract_end" => self.contract_end.is_some(),
            "account" => self.account.is_some(),
            "contacts" => !self.contacts.is_empty(),
            "contact" => non_empty(self.email.as_deref()) || !self.contacts.is_empty(),
            "company" => non_empty(self.domain.as_deref()) || self.account.is_some(),
            field => match self.fields.get(field) {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::String(s)) => !s.trim().is_empty(),
                Some(serde_json::Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            },
        }
    }

    /// The name admins know the record by.
    pub fn label(&self) -> String {
        label(self.object, self.name.as_deref(), &self.id)
    }

    /// Days since the record entered its stage: calendar days of the org's
    /// time zone `tz`, so that "today" is the org's today; a CRM clock ahead
    /// of ours gives 0, not a negative count.
    pub fn days_in_stage(&self, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<i64> {
        let today = now.with_timezone(&tz).date_naive();
        self.stage_entered_on(tz)
            .map(|entered| (today - entered).num_days().max(0))
    }

    /// The first org date after `today` on which the record will have been
    /// in its stage more than `days` days, if nothing changes. `None` when
    /// that day has come (or its entry date is unknown).
    pub fn passes_days_in_stage_on(
        &self,
        days: u32,
        tz: chrono_tz::Tz,
        today: chrono::NaiveDate,
    ) -> Option<chrono::NaiveDate> {
        let on = self
            .stage_entered_on(tz)?
            .checked_add_days(chrono::Days::new(u64::from(days) + 1))?;
        (on > today).then_some(on)
    }

    /// The org's date (in time zone `tz`) the record entered its stage.
    pub fn stage_entered_on(&self, tz: chrono_tz::Tz) -> Option<chrono::NaiveDate> {
        self.entered_stage_at
            .map(|at| at.with_timezone(&tz).date_naive())
    }

    /// The `record` variable of CEL expressions, holding the keys in
    /// `keys` (the expressions can read no other).
    pub fn to_cel(&self, now: DateTime<Utc>, tz: chrono_tz::Tz, keys: &RecordKeys) -> Value {
        let mut map: HashMap<String, Value> = HashMap::new();
        // A value is built only when an expression can read its key.
        let mut put = |key: &str, value: &dyn Fn() -> Option<Value>| {
            if keys.wants(key)
                && let Some(value) = value()
            {
                map.insert(key.to_owned(), value);
            }
        };
        put("id", &|| Some(string(self.id.as_str())));
        put("object", &|| Some(string(self.object.as_str())));
        put("connector", &|| Some(string(self.connector.as_str())));
        put("system", &|| Some(string(self.system.as_str())));
        put("name", &|| self.name.as_deref().map(string));
        put("stage", &|| match &self.stage {
            StageRef::Mapped { id, .. } => Some(string(id.as_str())),
            _ => None,
        });
        put("native_stage", &|| match &self.stage {
            StageRef::Unmapped(native) => Some(string(native)),
            _ => None,
        });
        put("owner", &|| {
            let owner = self.owner.as_ref()?;
            let mut o: HashMap<String, Value> = HashMap::new();
            o.insert("id".into(), string(owner.id.as_str()));
            if let Some(role) = &owner.role {
                o.insert("role".into(), string(role.as_str()));
            }
            if let Some(active) = owner.active {
                o.insert("active".into(), Value::Bool(active));
            }
            Some(o.into())
        });
        put("days_in_stage", &|| {
            self.days_in_stage(now, tz).map(Value::Int)
        });
        put("lifecycle", &|| {
            self.lifecycle.as_ref().map(|(value, _)| string(value))
        });
        put("amount", &|| self.amount.map(Value::Float));
        put("currency", &|| self.currency.as_deref().map(string));
        put("email", &|| self.email.as_deref().map(string));
        put("domain", &|| self.domain.as_deref().map(string));
        put("created_at", &|| Some(timestamp(self.created_at)));
        put("modified_at", &|| Some(timestamp(self.modified_at)));
        let day = |date: Option<NaiveDate>| {
            date.map(|date| timestamp(date.and_time(chrono::NaiveTime::MIN).and_utc()))
        };
        put("close_date", &|| day(self.close_date));
        put("contract_start", &|| day(self.contract_start));
        put("contract_end", &|| day(self.contract_end));
        put("fields", &|| {
            let fields: HashMap<String, Value> = self
                .fields
                .iter()
                .filter(|(k, v)| !v.is_null() && keys.wants_field(k))
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect();
            Some(fields.into())
        });
        put("account", &|| {
            self.account.as_ref().map(|a| string(a.as_str()))
        });
        put("contacts", &|| {
            Some(Value::List(Arc::new(
                self.contacts.iter().map(|c| string(c.as_str())).collect(),
            )))
        });
        put("open_tasks", &|| {
            let open = self
                .tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Open)
                .count();
            Some(Value::Int(open as i64))
        });
        put("task_subjects", &|| {
            Some(Value::List(Arc::new(
                self.tasks.iter().map(|t| string(&t.subject)).collect(),
            )))
        });
        map.into()
    }
}

/// The `now` variable of CEL expressions.
pub fn cel_now(now: DateTime<Utc>) -> Value {
    timestamp(now)
}

fn non_empty(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.trim().is_empty())
}

fn string(value: &str) -> Value {
    Value::String(Arc::new(value.to_owned()))
}

fn timestamp(at: DateTime<Utc>) -> Value {
    Value::Timestamp(at.fixed_offset())
}

fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => string(s),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(map) => {
            let map: HashMap<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect();
            map.into()
        }
    }
}
