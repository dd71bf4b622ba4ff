//! The demo's Salesforce side: an emulated org of 1,000 opportunities
//! signed into with the OAuth JWT bearer flow, what it serves, and the
//! corrective tasks it holds after `--apply`.

use super::TaskRow;
use journeyd_salesforce_emulator::{
    EmulatorConfig, SObject, SalesforceEmulator, SeedSizes, TEST_JWT_PRIVATE_KEY_PEM,
};

const OPPORTUNITIES: usize = 1_000;
/// The demo's config reads the connected app's private key from this
/// variable, which only the demo's own secret resolver answers.
pub const KEY_VARIABLE: &str = "JOURNEYD_SALESFORCE_KEY";

/// Seeds and serves the org, dated relative to now. The org's daily API
/// allowance is a Developer Edition's, as in the emulator's default.
pub fn start() -> std::io::Result<SalesforceEmulator> {
    SalesforceEmulator::start(EmulatorConfig {
        now: chrono::Utc::now(),
        // Five opportunities an account: the seeded accounts sit in the
        // late stages, with criteria unmet for each, so more of them would
        // mostly lengthen the write-back.
        sizes: SeedSizes {
            accounts: OPPORTUNITIES / 5,
            contacts: OPPORTUNITIES * 3 / 5,
            leads: OPPORTUNITIES * 3 / 10,
            ..SeedSizes::for_opportunities(OPPORTUNITIES)
        },
        ..EmulatorConfig::default()
    })
}

/// The connected app's private key. The emulator trusts the public half of
/// this throwaway key pair, which protects nothing real.
pub fn private_key() -> &'static str {
    TEST_JWT_PRIVATE_KEY_PEM
}

/// One line: what the org serves, and where.
pub fn describe(org: &SalesforceEmulator) -> String {
    format!(
        "Salesforce: an emulated org serves {} opportunities, {} accounts, {} contacts and {} leads at {} (login and instance host, JWT bearer sign-in)",
        org.ids(SObject::Opportunity).len(),
        org.ids(SObject::Account).len(),
        org.ids(SObject::Contact).len(),
        org.ids(SObject::Lead).len(),
        org.base_url()
    )
}

/// The tasks the write-back created, as the org now holds them.
/// journeyd's tasks in the org.
pub fn tasks(org: &SalesforceEmulator) -> Vec<TaskRow> {
    org.tasks()
        .into_iter()
        .filter(|task| {
            task.fields
                .get("Description")
                .and_then(|value| value.as_str())
                .is_some_and(|text| text.contains("journeyd-action: "))
        })
        .map(|task| {
            let field = |name: &str| {
                task.fields
                    .get(name)
                    .and_then(|value| value.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            // A task hangs off an opportunity or account (`WhatId`), or off
            // a contact or lead (`WhoId`); the id's prefix names the object.
            let record = [field("WhatId"), field("WhoId")]
                .into_iter()
                .find(|id| !id.is_empty())
                .map(|id| {
                    let object = SObject::ALL
                        .into_iter()
                        .find(|object| id.starts_with(object.key_prefix()))
                        .map_or("", SObject::name);
                    format!("{object} {id}")
                })
                .unwrap_or_default();
            TaskRow {
                record,
                owner: field("OwnerId"),
                priority: field("Priority"),
                subject: field("Subject"),
                id: task.id,
            }
        })
        .collect()
}
