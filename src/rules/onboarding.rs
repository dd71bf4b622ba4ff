//! `missing_onboarding_task`: a won deal that has sat in the onboarding stage
//! for more than N days with no onboarding task.

use crate::config::OnboardingCheck;
use crate::journey::{Journey, JourneyRecord};
use crate::rules::DAYS_IN_STAGE;
use crate::rules::ruleset::{Finding, current_stage};
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::ObjectKind;

pub fn missing_onboarding_task(
    journey: &Journey,
    check: &OnboardingCheck,
    record: &JourneyRecord,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    if record.object != ObjectKind::Deal {
        return Vec::new();
    }
    let Some((_, stage)) = current_stage(journey, record) else {
        return Vec::new();
    };
    if stage.id != check.stage {
        return Vec::new();
    }
    let Some(days) = record.days_in_stage(now, journey.timezone) else {
        return Vec::new();
    };
    if days <= i64::from(check.after_days) {
        return Vec::new();
    }
    // journeyd's own task is never evidence that onboarding was planned.
    let has_task = record.tasks.iter().any(|task| {
        !task.by_journeyd
            && task
                .subject
                .to_lowercase()
                .contains(&check.subject_contains)
    });
    if has_task {
        return Vec::new();
    }
    vec![Finding::new(
        Some(&stage.id),
        Some(&stage.owner_role),
        format!(
            "{} has been in stage {} for {DAYS_IN_STAGE} days with no task whose subject mentions \"{}\"",
            record.label(),
            stage.id,
            check.subject_contains
        ),
    )]
}

/// The org's date from which the check flags the deal if nothing changes:
/// the first day past `after_days` in the onboarding stage. `None` for
/// records it does not apply to, or that it may flag already.
pub fn due_on(
    journey: &Journey,
    check: &OnboardingCheck,
    record: &JourneyRecord,
    today: NaiveDate,
) -> Option<NaiveDate> {
    if record.object != ObjectKind::Deal {
        return None;
    }
    let (_, stage) = current_stage(journey, record)?;
    if stage.id != check.stage {
        return None;
    }
    record.passes_days_in_stage_on(check.after_days, journey.timezone, today)
}
