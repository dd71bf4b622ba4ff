//! An emulated Dataverse environment on loopback and a journeyd
//! installation configured to sync it: the shipped config, pointed at the
//! emulator, with write-back switched to `apply`.

use crate::portal::shipped_config;
use crate::support::{Install, tasks_by_key};
use journeyd_dynamics_emulator::{DynamicsEmulator, EmulatorConfig};
use std::collections::BTreeMap;
use toml_edit::{DocumentMut, InlineTable, value};

pub const SECRET_VAR: &str = "JOURNEYD_DYNAMICS_SECRET";

pub struct Environment {
    pub emulator: DynamicsEmulator,
    pub install: Install,
}

impl Environment {
    /// An environment of `opportunities` opportunities seeded relative to
    /// now, and an installation syncing it with the app's client secret.
    pub fn new(opportunities: usize) -> Environment {
        Self::at(chrono::Utc::now(), opportunities, |_| {})
    }

    /// As [`Environment::new`], seeded relative to `now`, with `edit`
    /// applied to the daemon config.
    pub fn at(
        now: chrono::DateTime<chrono::Utc>,
        opportunities: usize,
        edit: impl FnOnce(&mut DocumentMut),
    ) -> Environment {
        let emulator = DynamicsEmulator::start(EmulatorConfig {
            now,
            ..EmulatorConfig::with_opportunities(opportunities)
        })
        .expect("the emulator starts");
        let mut config = shipped_config();
        let base = emulator
            .base_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let dynamics = &mut config["connectors"]["dynamics"];
        dynamics["api_url"] = value(base.as_str());
        dynamics["authority_url"] = value(base.as_str());
        dynamics["tenant"] = value(emulator.tenant());
        dynamics["client_id"] = value(emulator.client_id());
        let mut secret = InlineTable::new();
        secret.insert("env", SECRET_VAR.into());
        dynamics["secret"] = value(secret);
        config["writeback"]["mode"] = value("apply");
        config["writeback"]["max_writes_per_run"] = value(100_000);
        edit(&mut config);
        let env = vec![(SECRET_VAR.to_owned(), emulator.client_secret())];
        let install = Install::with_config(&config.to_string(), env);
        Environment { emulator, install }
    }

    /// Corrective tasks in the environment by the action key in their
    /// description.
    pub fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>> {
        let tasks = self.emulator.tasks();
        tasks_by_key(tasks.iter().map(|task| {
            let description = task.fields.get("description").and_then(|v| v.as_str());
            (task.id.clone(), description.unwrap_or_default())
        }))
    }
}
