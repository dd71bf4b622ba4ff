//! An emulated HubSpot portal on loopback and a journeyd installation
//! configured to sync it: the shipped config, pointed at the emulator, with
//! write-back switched to `apply`.

use crate::support::{Install, repo, tasks_by_key};
use journeyd_hubspot_emulator::{EmulatorConfig, HubspotEmulator, ObjectType};
use std::collections::BTreeMap;
use toml_edit::{DocumentMut, value};

pub const TOKEN_VAR: &str = "JOURNEYD_HUBSPOT_TOKEN";
pub const REFRESH_VAR: &str = "JOURNEYD_HUBSPOT_REFRESH_TOKEN";

/// How journeyd authenticates with the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    PrivateApp,
    OAuth,
}

pub struct Portal {
    pub emulator: HubspotEmulator,
    pub install: Install,
}

impl Portal {
    /// A portal of `deals` deals (seeded relative to the real now, since the
    /// binary audits against the real clock) and an installation syncing it.
    pub fn new(deals: usize, auth: Auth) -> Portal {
        Self::configured(deals, auth, |_| {})
    }

    /// As [`Portal::new`], with `edit` applied to the daemon config.
    pub fn configured(deals: usize, auth: Auth, edit: impl FnOnce(&mut DocumentMut)) -> Portal {
        Self::at(chrono::Utc::now(), deals, auth, edit)
    }

    /// As [`Portal::configured`], seeded relative to `now`: two portals
    /// seeded at the same `now` hold the same records.
    pub fn at(
        now: chrono::DateTime<chrono::Utc>,
        deals: usize,
        auth: Auth,
        edit: impl FnOnce(&mut DocumentMut),
    ) -> Portal {
        let emulator = HubspotEmulator::start(EmulatorConfig {
            now,
            ..EmulatorConfig::with_deals(deals)
        })
        .expect("the emulator starts");
        let mut config = shipped_config();
        let hubspot = &mut config["connectors"]["hubspot"];
        hubspot["api_url"] = value(emulator.base_url().as_str().trim_end_matches('/'));
        // The shipped config reads the token from a systemd credential; the
        // tests hand it over in the environment instead.
        let mut secret = toml_edit::InlineTable::new();
        secret.insert("env", TOKEN_VAR.into());
        hubspot["secret"] = value(secret);
        let mut env = Vec::new();
        match auth {
            Auth::PrivateApp => env.push((TOKEN_VAR.to_owned(), emulator.private_app_token())),
            Auth::OAuth => {
                hubspot["auth"] = value("oauth");
                hubspot["client_id"] = value(emulator.oauth_client_id());
                let mut refresh = toml_edit::InlineTable::new();
                refresh.insert("env", REFRESH_VAR.into());
                hubspot["refresh_token"] = value(refresh);
                env.push((TOKEN_VAR.to_owned(), emulator.oauth_client_secret()));
                env.push((REFRESH_VAR.to_owned(), emulator.oauth_refresh_token()));
            }
        }
        config["writeback"]["mode"] = value("apply");
        config["writeback"]["max_writes_per_run"] = value(100_000);
        edit(&mut config);
        let install = Install::with_config(&config.to_string(), env);
        Portal { emulator, install }
    }

    /// Corrective tasks in the portal by the action key in their body.
    pub fn tasks_by_key(&self) -> BTreeMap<String, Vec<String>> {
        let tasks = self.emulator.tasks();
        tasks_by_key(tasks.iter().map(|task| {
            let body = task
                .properties
                .get("hs_task_body")
                .map_or("", String::as_str);
            (task.id.clone(), body)
        }))
    }

    pub fn deal(&self, id: &str) -> BTreeMap<String, String> {
        self.emulator
            .record(ObjectType::Deals, id)
            .unwrap_or_else(|| panic!("the emulator has deal {id}"))
            .properties
    }
}

/// The shipped daemon config, with its journey named by absolute path.
pub fn shipped_config() -> DocumentMut {
    let text = std::fs::read_to_string(repo().join("config/journeyd.toml"))
        .expect("the shipped config reads");
    let mut config: DocumentMut = text.parse().expect("the shipped config is TOML");
    config["journey"] = value(repo().join("config/journey.toml").display().to_string());
    config
}
