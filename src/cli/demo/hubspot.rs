//! The demo's HubSpot side: an emulated Professional portal of 2,000 deals,
//! what it serves, and the corrective tasks it holds after `--apply`.

use super::TaskRow;
use journeyd_hubspot_emulator::{EmulatorConfig, HubspotEmulator, ObjectType, SeedSizes};

const DEALS: usize = 2_000;
/// The demo's config reads the private app token from this variable.
pub const TOKEN_VARIABLE: &str = "JOURNEYD_HUBSPOT_TOKEN";
/// The demo portal is a Professional account: 190 requests per 10 s.
pub const REQUESTS_PER_10S: u32 = 190;

/// Seeds and serves the portal, dated relative to now so that times in
/// stage are what they would be in a live portal.
pub fn start() -> std::io::Result<HubspotEmulator> {
    let mut config = EmulatorConfig {
        now: chrono::Utc::now(),
        sizes: SeedSizes {
            contacts: DEALS / 2,
            companies: DEALS / 4,
            ..SeedSizes::for_deals(DEALS)
        },
        ..EmulatorConfig::default()
    };
    config.knobs.limits.ten_secondly = Some(REQUESTS_PER_10S);
    HubspotEmulator::start(config)
}

/// One line: what the portal serves, and where.
pub fn describe(portal: &HubspotEmulator) -> String {
    format!(
        "HubSpot:    an emulated portal serves {} deals, {} contacts and {} companies at {} (private app token)",
        portal.records(ObjectType::Deals),
        portal.records(ObjectType::Contacts),
        portal.records(ObjectType::Companies),
        portal.base_url()
    )
}

/// The tasks the write-back created, as the portal now holds them.
/// journeyd's tasks in the portal.
pub fn tasks(portal: &HubspotEmulator) -> Vec<TaskRow> {
    portal
        .tasks()
        .into_iter()
        .filter(|task| {
            task.properties
                .get("hs_task_body")
                .is_some_and(|body| body.contains("journeyd-action: "))
        })
        .map(|task| {
            let property = |name: &str| task.properties.get(name).cloned().unwrap_or_default();
            let record = [
                (ObjectType::Deals, "deal"),
                (ObjectType::Contacts, "contact"),
                (ObjectType::Companies, "company"),
            ]
            .into_iter()
            .find_map(|(object, name)| {
                let ids = task.associations.get(&object)?;
                Some(format!("{name} {}", ids.join(",")))
            })
            .unwrap_or_default();
            TaskRow {
                record,
                owner: property("hubspot_owner_id"),
                priority: property("hs_task_priority"),
                subject: property("hs_task_subject"),
                id: task.id,
            }
        })
        .collect()
}
