//! `unmapped_stage` and `stage_skipped`: what the record's native stage and
//! its history say about its path through the journey.

use crate::journey::{Journey, JourneyRecord, StageRef};
use crate::rules::ruleset::Finding;

/// Fires when the native stage has no mapping: config drift, for instance a
/// stage added to a CRM pipeline after the config was written.
pub fn unmapped_stage(record: &JourneyRecord) -> Vec<Finding> {
    match &record.stage {
        StageRef::Unmapped(native) => vec![Finding::new(
            None,
            None,
            format!(
                "{} has {} stage `{native}`, which the {} connector's stage map does not name",
                record.label(),
                record.object,
                record.connector
            ),
        )],
        _ => Vec::new(),
    }
}

/// Fires when the stage history jumps forward over one or more stages. Moving
/// backwards, and being created straight into a later stage, are not skips.
/// One finding per record, keyed by the first skipped stage, naming them all.
pub fn stage_skipped(journey: &Journey, record: &JourneyRecord) -> Vec<Finding> {
    let mut path: Vec<usize> = record
        .history
        .iter()
        .filter_map(|step| step.stage.mapped().map(|(_, index)| index))
        .collect();
    if let Some((_, index)) = record.stage.mapped()
        && path.last() != Some(&index)
    {
        path.push(index);
    }
    let skipped: Vec<usize> = path
        .windows(2)
        .filter(|pair| pair[1] > pair[0] + 1)
        .flat_map(|pair| pair[0] + 1..pair[1])
        .collect();
    let Some(&first) = skipped.first() else {
        return Vec::new();
    };
    let names: Vec<&str> = skipped
        .iter()
        .map(|&i| journey.stages[i].id.as_str())
        .collect();
    let stage = &journey.stages[first];
    vec![Finding::new(
        Some(&stage.id),
        Some(&stage.owner_role),
        format!(
            "{} skipped stage{} {}",
            record.label(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
    )]
}
