//! `handoff_incomplete`: where ownership changes role at a stage's exit, the
//! next owner needs that stage's `handoff_fields`.

use crate::journey::{Journey, JourneyRecord};
use crate::rules::ruleset::{Finding, current_stage};

/// One finding per handoff the record has passed with fields missing.
pub fn handoff_incomplete(journey: &Journey, record: &JourneyRecord) -> Vec<Finding> {
    let Some((index, _)) = current_stage(journey, record) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    for pair in journey.stages[..=index].windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        if from.owner_role == to.owner_role {
            continue;
        }
        let missing: Vec<&str> = from
            .handoff_fields
            .iter()
            .filter(|field| !record.has_value(field))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            continue;
        }
        findings.push(Finding::new(
            Some(&from.id),
            Some(&to.owner_role),
            format!(
                "{} was handed from {} to {} at the exit of stage {} without: {}",
                record.label(),
                from.owner_role,
                to.owner_role,
                from.id,
                missing.join(", ")
            ),
        ));
    }
    findings
}
