//! `stalled`: a record that has sat in its stage past the stage's `max_days`.

use crate::journey::{Journey, JourneyRecord};
use crate::rules::DAYS_IN_STAGE;
use crate::rules::ruleset::{Finding, current_stage};
use chrono::{DateTime, NaiveDate, Utc};

pub fn stalled(journey: &Journey, record: &JourneyRecord, now: DateTime<Utc>) -> Vec<Finding> {
    let Some((_, stage)) = current_stage(journey, record) else {
        return Vec::new();
    };
    let (Some(limit), Some(days)) = (stage.max_days, record.days_in_stage(now, journey.timezone))
    else {
        return Vec::new();
    };
    if days <= i64::from(limit) {
        return Vec::new();
    }
    vec![Finding::new(
        Some(&stage.id),
        Some(&stage.owner_role),
        format!(
            "{} has been in stage {} for {DAYS_IN_STAGE} days (limit {limit})",
            record.label(),
            stage.id
        ),
    )]
}

/// The org's date the record stalls if nothing changes: the first day its
/// days in stage pass the limit. `None` when it has no limit or already
/// stalled (only a change can make it pass again).
pub fn stalls_on(journey: &Journey, record: &JourneyRecord, today: NaiveDate) -> Option<NaiveDate> {
    let (_, stage) = current_stage(journey, record)?;
    record.passes_days_in_stage_on(stage.max_days?, journey.timezone, today)
}
