//! The journey definition as validated from `journey.toml`.

use crate::journey::expr::Expr;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_id!(
    /// A stage's stable id (`decision`).
    StageId
);
name_id!(
    /// A role accountable for stages (`sales`).
    RoleId
);

/// An ordered list of stages, each a buyer decision.
#[derive(Debug)]
pub struct Journey {
    pub name: String,
    /// Every role the journey knows; stage owners and role maps name these.
    pub roles: Vec<RoleId>,
    /// In journey order.
    pub stages: Vec<Stage>,
    /// The org's time zone (`[schedule] timezone`): days in stage count
    /// its calendar days.
    pub timezone: chrono_tz::Tz,
}

impl Journey {
    /// The position of a stage in journey order.
    pub fn index_of(&self, id: &StageId) -> Option<usize> {
        self.stages.iter().position(|stage| &stage.id == id)
    }

    pub fn stage(&self, id: &StageId) -> Option<&Stage> {
        self.stages.iter().find(|stage| &stage.id == id)
    }
}

#[derive(Debug)]
pub struct Stage {
    pub id: StageId,
    pub name: String,
    /// The one role accountable for moving a record out of this stage.
    pub owner_role: RoleId,
    /// Must all hold before a record may be in a later stage.
    pub exit_criteria: Vec<Criterion>,
    /// Canonical fields the next owner needs when ownership changes role at
    /// this stage's exit.
    pub handoff_fields: Vec<String>,
    /// Time-in-stage limit; `None` for a stage with no limit.
    pub max_days: Option<u32>,
}

/// One named exit criterion.
#[derive(Debug)]
pub struct Criterion {
    pub name: String,
    pub expr: Expr,
}

impl Criterion {
    /// Whether the criterion names what the handoff field (or attribute)
    /// `name` is read from: then a record without it fails the criterion
    /// for the same missing fact.
    pub fn reads(&self, name: &str) -> bool {
        let keys = self.expr.record_keys();
        match crate::journey::record::attribute_keys(name) {
            Some(attribute) => attribute.iter().any(|key| keys.names(key)),
            None => keys.names_field(name),
        }
    }
}
