//! `duplicate_record`: two records share a normalized email (leads and
//! contacts) or web domain (accounts).
//!
//! The oldest record of a group is taken as the original and is not flagged;
//! each younger one is, naming the original.

use crate::journey::{Journey, JourneyRecord};
use crate::rules::ruleset::{Finding, Peer, current_stage};

pub fn duplicate_record(journey: &Journey, record: &JourneyRecord, peers: &[Peer]) -> Vec<Finding> {
    let older = peers
        .iter()
        .filter(|peer| (peer.created_at, &peer.id) < (record.created_at, &record.id))
        .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let Some(original) = older else {
        return Vec::new();
    };
    let role = current_stage(journey, record).map(|(_, stage)| &stage.owner_role);
    let name = original
        .name
        .as_deref()
        .map_or(String::new(), |name| format!(" \"{name}\""));
    vec![Finding::new(
        None,
        role,
        format!(
            "{} duplicates {} {}{name}, created {}: both have `{}`",
            record.label(),
            record.object,
            original.id,
            original.created_at.format("%Y-%m-%d"),
            original.key
        ),
    )]
}
