//! `exit_criteria_unmet`: a record may only be in a later stage once every
//! exit criterion of each stage before it holds.
//!
//! The criteria of the record's *current* stage are deliberately not checked:
//! they describe the work still to do in that stage, and flagging them would
//! put every healthy record in progress on the violations log.

use crate::journey::expr::Outcome;
use crate::journey::{Journey, JourneyRecord};
use crate::rules::ruleset::{Finding, LazyScope, current_stage};

/// One finding per earlier stage with unmet criteria, naming each of them,
/// plus the evaluation errors met on the way.
pub fn exit_criteria_unmet(
    journey: &Journey,
    record: &JourneyRecord,
    scope: &LazyScope<'_>,
) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut errors = Vec::new();
    let Some((index, current)) = current_stage(journey, record) else {
        return (findings, errors);
    };
    for stage in &journey.stages[..index] {
        let mut unmet = Vec::new();
        for criterion in &stage.exit_criteria {
            match criterion.expr.eval(scope.get()) {
                Outcome::True => {}
                Outcome::False => unmet.push(criterion.name.clone()),
                Outcome::Error(error) => {
                    unmet.push(format!(
                        "{} (could not be evaluated: {error})",
                        criterion.name
                    ));
                    errors.push(format!(
                        "stage {} criterion {} on {}: {error}",
                        stage.id,
                        criterion.name,
                        record.label()
                    ));
                }
            }
        }
        if !unmet.is_empty() {
            let message = format!(
                "{} is in stage {} but exit criteria of stage {} are unmet: {}",
                record.label(),
                current.id,
                stage.id,
                unmet.join(", ")
            );
            findings.push(Finding::new(
                Some(&stage.id),
                Some(&stage.owner_role),
                message,
            ));
        }
    }
    (findings, errors)
}
