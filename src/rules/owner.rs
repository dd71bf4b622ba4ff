//! `missing_owner` and `owner_role_mismatch`: every stage has one accountable
//! owner, of the stage's role.

use crate::journey::{Journey, JourneyRecord, OwnerInfo};
use crate::rules::ruleset::{Finding, current_stage};

/// Fires when the record has no owner, or its owner is inactive. The stage is
/// left out of the fingerprint: an ownerless record that moves on is still the
/// same problem.
pub fn missing_owner(journey: &Journey, record: &JourneyRecord) -> Vec<Finding> {
    let stage = current_stage(journey, record).map(|(_, stage)| stage);
    let needs = stage.map_or(String::new(), |stage| {
        format!(
            "; stage {} needs an owner with role {}",
            stage.id, stage.owner_role
        )
    });
    let message = match &record.owner {
        None => format!("{} has no owner{needs}", record.label()),
        Some(owner) if owner.active == Some(false) => {
            format!(
                "{} is owned by {}, who is inactive{needs}",
                record.label(),
                describe(owner)
            )
        }
        Some(_) => return Vec::new(),
    };
    vec![Finding::new(None, stage.map(|s| &s.owner_role), message)]
}

/// Fires when an active owner's role is not the role accountable for the
/// record's stage (or the owner has no role in the role map).
pub fn owner_role_mismatch(journey: &Journey, record: &JourneyRecord) -> Vec<Finding> {
    let Some((_, stage)) = current_stage(journey, record) else {
        return Vec::new();
    };
    let Some(owner) = record.owner.as_ref().filter(|o| o.active != Some(false)) else {
        return Vec::new();
    };
    let message = match &owner.role {
        Some(role) if *role == stage.owner_role => return Vec::new(),
        Some(role) => format!(
            "{} is in stage {} owned by role {}, but its owner {} has role {role}",
            record.label(),
            stage.id,
            stage.owner_role,
            describe(owner)
        ),
        None => format!(
            "{} is in stage {} owned by role {}, but its owner {} has no role in the role map",
            record.label(),
            stage.id,
            stage.owner_role,
            describe(owner)
        ),
    };
    vec![Finding::new(
        Some(&stage.id),
        Some(&stage.owner_role),
        message,
    )]
}

pub fn describe(owner: &OwnerInfo) -> String {
    match &owner.name {
        Some(name) => format!("{name} ({})", owner.id),
        None => owner.id.to_string(),
    }
}
