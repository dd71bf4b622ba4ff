//! CRM record -> journey record, under one connector's maps.
//!
//! Mapping happens at audit time, not at sync time, so an admin who fixes a
//! stage or role map sees the effect at the next audit without a resync.

use crate::config::ConnectorConfig;
use crate::journey::record::{JourneyRecord, OwnerInfo, StageRef, Step};
use crate::journey::{Journey, RoleId};
use journeyd_connector::{CrmRecord, Owner, OwnerId};
use std::collections::{BTreeMap, HashMap};

/// A connector's owners, by id.
pub type OwnerIndex = HashMap<OwnerId, Owner>;

/// Applies `connector`'s maps to `record`.
pub fn normalize(
    journey: &Journey,
    connector: &ConnectorConfig,
    owners: &OwnerIndex,
    record: CrmRecord,
) -> JourneyRecord {
    let stage_map = connector.stages.get(&record.object);
    let left_journey = record.stage.as_ref().is_some_and(|native| {
        connector
            .outside
            .get(&record.object)
            .is_some_and(|values| values.contains(native))
    });
    let map_stage = |native: &str| -> StageRef {
        stage_map
            .and_then(|map| map.get(native))
            .and_then(|id| {
                journey.index_of(id).map(|index| StageRef::Mapped {
                    id: id.clone(),
                    index,
                })
            })
            .unwrap_or_else(|| StageRef::Unmapped(native.to_owned()))
    };
    let stage = match &record.stage {
        Some(native) => map_stage(native),
        None => StageRef::None,
    };
    let history: Vec<Step> = record
        .stage_history
        .iter()
        .map(|change| Step {
            native: change.stage.clone(),
            stage: map_stage(&change.stage),
            at: change.at,
        })
        .collect();
    let entered_stage_at = record.stage_entered_at.or_else(|| {
        let native = record.stage.as_deref()?;
        Some(
            record
                .stage_history
                .iter()
                .rev()
                .find(|change| change.stage == native)
                .map_or(record.created_at, |change| change.at),
        )
    });
    let owner = record
        .owner_id
        .as_ref()
        .map(|id| owner_info(connector, owners, id));
    let lifecycle = connector.lifecycle.as_ref().and_then(|map| {
        let value = record.lifecycle_status.clone()?;
        let stage = map.values.get(&value).cloned();
        Some((value, stage))
    });
    let fields = canonical_fields(&connector.fields, record.fields);
    JourneyRecord {
        connector: connector.name.clone(),
        system: record.system,
        object: record.object,
        id: record.id,
        name: record.name,
        url: record.url,
        in_journey: stage_map.is_some() && !left_journey,
        stage,
        owner,
        entered_stage_at,
        lifecycle,
        amount: record.amount,
        currency: record.currency,
        email: record.email,
        domain: record.domain,
        created_at: record.created_at,
        modified_at: record.modified_at,
        close_date: record.close_date,
        contract_start: record.contract_start,
        contract_end: record.contract_end,
        fields,
        account: record.associations.account,
        contacts: record.associations.contacts,
        // journeyd's own tasks are never evidence that the work was done.
        tasks: record
            .tasks
            .into_iter()
            .filter(|t| !t.by_journeyd)
            .collect(),
        history,
    }
}

fn owner_info(connector: &ConnectorConfig, owners: &OwnerIndex, id: &OwnerId) -> OwnerInfo {
    let known = owners.get(id);
    OwnerInfo {
        id: id.clone(),
        name: known.map(|o| o.name.clone()),
        active: known.map(|o| o.active),
        role: role_of(connector, id, known),
    }
}

/// A user's own entry (by id, then by email) wins over their teams'.
fn role_of(connector: &ConnectorConfig, id: &OwnerId, owner: Option<&Owner>) -> Option<RoleId> {
    let roles = &connector.roles;
    roles
        .users
        .get(id.as_str())
        .or_else(|| {
            let email = owner?.email.as_deref()?.trim().to_lowercase();
            roles.users.get(&email)
        })
        .or_else(|| owner?.teams.iter().find_map(|team| roles.teams.get(team)))
        .cloned()
}

/// Renames mapped CRM fields to their canonical names; unmapped fields keep
/// their CRM name, so criteria can still reach them.
fn canonical_fields(
    map: &BTreeMap<String, String>,
    fields: BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    fields
        .into_iter()
        .map(|(name, value)| match map.get(&name) {
            Some(canonical) => (canonical.clone(), value),
            None => (name, value),
        })
        .collect()
}

/// The key two contacts or leads are duplicates by: the trimmed, lowercased
/// address. `None` for something that is not an address.
pub fn email_key(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && domain.contains('.')).then_some(email)
}

/// The key two accounts are duplicates by: the host of a domain or website,
/// lowercased, without scheme, `www.`, port, path or trailing dot.
pub fn domain_key(domain: &str) -> Option<String> {
    let lower = domain.trim().to_lowercase();
    let rest = lower
        .split_once("://")
        .map_or(lower.as_str(), |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next()?.trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);
    (host.contains('.') && !host.starts_with('.')).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_keys_ignore_case_and_surrounding_space() {
        assert_eq!(
            email_key("  Ann@Example.COM "),
            Some("ann@example.com".into())
        );
        assert_eq!(email_key("not-an-address"), None);
    }

    #[test]
    fn domain_keys_strip_scheme_www_port_and_path() {
        for input in [
            "example.com",
            "https://www.Example.com/about",
            "http://example.com:8080",
            "WWW.EXAMPLE.COM.",
        ] {
            assert_eq!(domain_key(input), Some("example.com".into()), "{input}");
        }
        assert_eq!(domain_key("localhost"), None);
    }
}
