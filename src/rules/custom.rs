//! Custom rules from config: a CEL condition that flags a record when it
//! holds, with the admin's severity, message and action.

use crate::config::CustomRule;
use crate::journey::expr::Outcome;
use crate::journey::{Journey, JourneyRecord};
use crate::rules::ruleset::{Finding, LazyScope, current_stage};

/// `Ok(Some)` when the rule fires, `Err` when its condition could not be
/// evaluated on this record. A rule scoped to stages keys its violations by
/// stage; an unscoped one follows the record through the journey as one
/// violation.
pub fn custom_rule(
    journey: &Journey,
    rule: &CustomRule,
    record: &JourneyRecord,
    scope: &LazyScope<'_>,
) -> Result<Option<Finding>, String> {
    if !rule.objects.is_empty() && !rule.objects.contains(&record.object) {
        return Ok(None);
    }
    let stage = current_stage(journey, record).map(|(_, stage)| stage);
    if !rule.stages.is_empty() && !stage.is_some_and(|s| rule.stages.contains(&s.id)) {
        return Ok(None);
    }
    match rule.condition.eval(scope.get()) {
        Outcome::True => {
            let keyed_stage = if rule.stages.is_empty() {
                None
            } else {
                stage.map(|s| &s.id)
            };
            Ok(Some(Finding::new(
                keyed_stage,
                stage.map(|s| &s.owner_role),
                rule.message.render(record),
            )))
        }
        Outcome::False => Ok(None),
        Outcome::Error(error) => Err(format!("rule {} on {}: {error}", rule.id, record.label())),
    }
}
