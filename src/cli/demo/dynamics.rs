//! The demo's Dynamics 365 side: an emulated Dataverse environment of 1,000
//! opportunities, signed into with Entra client credentials, what it
//! serves, and the corrective tasks it holds after `--apply`.

use super::TaskRow;
use journeyd_dynamics_emulator::{DynamicsEmulator, EmulatorConfig, SeedSizes, Table};

const OPPORTUNITIES: usize = 1_000;
/// The demo's config reads the app registration's client secret from this
/// variable, which only the demo's own secret resolver answers.
pub const SECRET_VARIABLE: &str = "JOURNEYD_DYNAMICS_SECRET";

/// Seeds and serves the environment, dated relative to now, with
/// Dataverse's service protection limits.
pub fn start() -> std::io::Result<DynamicsEmulator> {
    DynamicsEmulator::start(EmulatorConfig {
        now: chrono::Utc::now(),
        // As for the Salesforce org: five opportunities an account.
        sizes: SeedSizes {
            accounts: OPPORTUNITIES / 5,
            contacts: OPPORTUNITIES * 3 / 5,
            leads: OPPORTUNITIES * 3 / 10,
            ..SeedSizes::for_opportunities(OPPORTUNITIES)
        },
        ..EmulatorConfig::default()
    })
}

/// One line: what the environment serves, and where.
pub fn describe(environment: &DynamicsEmulator) -> String {
    format!(
        "Dynamics:   an emulated environment serves {} opportunities, {} accounts, {} contacts and {} leads at {} (Entra client credentials, change tracking)",
        environment.ids(Table::Opportunity).len(),
        environment.ids(Table::Account).len(),
        environment.ids(Table::Contact).len(),
        environment.ids(Table::Lead).len(),
        environment.base_url()
    )
}

/// The tasks the write-back created, as the environment now holds them.
/// journeyd's tasks in the environment.
pub fn tasks(environment: &DynamicsEmulator) -> Vec<TaskRow> {
    environment
        .tasks()
        .into_iter()
        .filter(|task| {
            task.fields
                .get("description")
                .and_then(|value| value.as_str())
                .is_some_and(|text| text.contains("journeyd-action: "))
        })
        .map(|task| {
            let field = |name: &str| match task.fields.get(name) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            TaskRow {
                record: field("_regardingobjectid_value"),
                owner: field("_ownerid_value"),
                priority: field("prioritycode"),
                subject: field("subject"),
                id: task.id,
            }
        })
        .collect()
}
