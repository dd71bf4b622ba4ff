//! The journey's rules: a journey record in, violations out.
//!
//! Pure: no IO, no clock (`now` is passed in), no store. Each built-in rule
//! lives in a module named after it; [`RuleSet::evaluate`] runs them all, and
//! the custom rules from config, on one record.

pub mod custom;
pub mod duplicate_record;
pub mod exit_criteria;
pub mod handoff;
pub mod lifecycle;
pub mod onboarding;
pub mod owner;
pub mod ruleset;
pub mod stage_history;
pub mod stalled;
pub mod template;
pub mod violation;

pub use ruleset::{Evaluation, Peer, RuleSet};
pub use template::{MessageTemplate, TemplateError};
pub use violation::{
    ActionKind, BuiltinRule, DAYS_IN_STAGE, Fingerprint, PlannedAction, RuleId, Severity,
    Violation, render_days,
};

#[cfg(test)]
mod tests;
