//! An emulated Salesforce org on loopback and a journeyd installation
//! configured to sync it: the shipped config, pointed at the emulator, with
//! write-back switched to `apply`.

use crate::portal::shipped_config;
use crate::support::{Install, tasks_by_key};
use journeyd_salesforce_emulator::{EmulatorConfig, SalesforceEmulator, TEST_JWT_PRIVATE_KEY_PEM};
use std::collections::BTreeMap;
use toml_edit::{DocumentMut, InlineTable, value};

pub const KEY_VAR: &str = "JOURNEYD_SALESFORCE_KEY";

pub struct Org {
    pub emulator: SalesforceEmulator,
    pub install: Install,
}

impl Org {
    /// An org of `opportunities` opportunities seeded relative to now, and
    /// an installation syncing it with the JWT bearer flow.
    pub fn new(opportunities: usize) -> Org {
        Self::at(chrono::Utc::now(), opportunities, |_| {})
    }

    /// As [`Org::new`], seeded relative to `now`, with `edit` applied to
    /// the daemon config.
    pub fn at(
        now: chrono::DateTime<chrono::Utc>,
        opportunities: usize,
        edit: impl FnOnce(&mut DocumentMut),
    ) -> Org {
        let emulator = SalesforceEmulator::start(EmulatorConfig {
            now,
            ..EmulatorConfig::with_opportunities(opportunities)
        })
        .expect("the emulator starts");
        let mut config = shipped_config();
        let salesforce = &mut config["connectors"]["salesforce"];
        salesforce["login_url"] = value(emulator.base_url().as_str().trim_end_matches('/'));
        salesforce["client_id"] = value(emulator.client_id());
        salesforce["username"] = value(emulator.username());
        let mut secret = InlineTable::new();
        secret.insert("env", KEY_VAR.into());
        salesforce["secret"] = value(secret);
        config["writeback"]["mode"] = value("apply");
        config["writeback"]["max_writes_per_run"] = value(100_000);
        edit(&mut config);
        let env = vec![(KEY_VAR.to_owned(), TEST_JWT_PRIVATE_KEY_PEM.to_owned())];
        let install = Install::with_config(&config.to_string(), env);
        Org { emulator, install }
    }

    /// Corrective tasks in the org by the action key in their description.
    pub fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>> {
        let tasks = self.emulator.tasks();
        tasks_by_key(tasks.iter().map(|task| {
            let description = task.fields.get("Description").and_then(|v| v.as_str());
            (task.id.clone(), description.unwrap_or_default())
        }))
    }
}
