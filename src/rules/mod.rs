//! The journey's rules: a journey record in, violations out.
//!
//! Pure: no IO, no clock (`now` is passed in), no store. Each rule lives in a
//! module named after it; [`evaluate`] runs them all on one record.

pub mod template;
pub mod violation;

pub use template::{MessageTemplate, TemplateError};
pub use violation::{
    ActionKind, BuiltinRule, Fingerprint, PlannedAction, RuleId, Severity, Violation,
};
