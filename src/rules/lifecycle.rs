//! `lifecycle_mismatch`: the CRM's own lifecycle status says a different
//! stage than the journey does.

use crate::config::LifecycleMap;
use crate::journey::{Journey, JourneyRecord};
use crate::rules::ruleset::{Finding, current_stage};

/// Fires when the lifecycle value maps to another stage than the record's.
/// A lifecycle value the map does not name is left alone: many CRMs carry
/// values (`other`, `evangelist`) that say nothing about the journey.
pub fn lifecycle_mismatch(
    journey: &Journey,
    map: Option<&LifecycleMap>,
    record: &JourneyRecord,
) -> Vec<Finding> {
    let (Some(map), Some((value, Some(said)))) = (map, &record.lifecycle) else {
        return Vec::new();
    };
    let Some((_, stage)) = current_stage(journey, record) else {
        return Vec::new();
    };
    if *said == stage.id {
        return Vec::new();
    }
    let fix = map.value_for(&stage.id);
    let mut finding = Finding::new(
        Some(&stage.id),
        Some(&stage.owner_role),
        format!(
            "{} is in stage {} but its {} is `{value}` (stage {said}){}",
            record.label(),
            stage.id,
            map.field,
            fix.map_or(String::new(), |v| format!("; it should be `{v}`"))
        ),
    );
    finding.set_field = fix.map(|v| (map.field.clone(), v.to_owned()));
    vec![finding]
}
