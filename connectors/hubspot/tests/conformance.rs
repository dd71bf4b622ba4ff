//! The contract's conformance suite, run against the HubSpot connector and
//! the HubSpot emulator.
//!
//! The emulator's search index lags behind writes, as HubSpot's does, but
//! by 300 ms rather than seconds, and the connector waits 1 s (its
//! `search_lag`) before looking up a write whose answer was lost, so the
//! checks stay fast while still crossing the lag.

use journeyd_connector::testkit::{MemoryTokenStore, Scenario, SeenTask, Target};
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, conformance_suite};
use journeyd_hubspot::{HubspotAuth, HubspotConnector, HubspotCredentials, HubspotSettings};
use journeyd_hubspot_emulator::{EmulatorConfig, HubspotEmulator, ObjectType, SeedSizes};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// How far the emulator's search index lags behind its writes.
const INDEX_LAG: Duration = Duration::from_millis(300);
/// How long the connector lets the index catch up before a lookup.
const SEARCH_LAG: Duration = Duration::from_secs(1);

struct Hubspot {
    emulator: HubspotEmulator,
    scenario: Scenario,
    tokens: Arc<MemoryTokenStore>,
}

impl Target for Hubspot {
    type Connector = HubspotConnector;

    async fn start(scenario: Scenario) -> Self {
        let mut config = EmulatorConfig {
            sizes: SeedSizes::for_deals(scenario.records),
            ..EmulatorConfig::default()
        };
        config.knobs.search_lag = INDEX_LAG;
        let emulator = HubspotEmulator::start(config).expect("the emulator starts");
        Hubspot {
            emulator,
            scenario,
            tokens: Arc::default(),
        }
    }

    fn connector(&self) -> HubspotConnector {
        let (auth, credentials) = if self.scenario.refreshable_auth {
            let refresh = self
                .tokens
                .latest()
                .unwrap_or_else(|| self.emulator.oauth_refresh_token());
            (
                HubspotAuth::OAuth {
                    client_id: self.emulator.oauth_client_id(),
                    token_url: self.emulator.token_url(),
                },
                HubspotCredentials::OAuth {
                    client_secret: self.emulator.oauth_client_secret().into(),
                    refresh_token: refresh.into(),
                    store: self.tokens.clone(),
                },
            )
        } else {
            (
                HubspotAuth::PrivateApp,
                HubspotCredentials::PrivateApp {
                    token: self.emulator.private_app_token().into(),
                },
            )
        };
        let mut settings = HubspotSettings::defaults(self.emulator.base_url(), auth);
        settings.list_limit = NonZeroU32::new(self.scenario.page_size).expect("a page size");
        settings.search_lag = SEARCH_LAG;
        // A create the rate limit holds back is sent within a second, or not.
        settings.retry.send_window = std::time::Duration::from_secs(1);
        HubspotConnector::new(ConnectorName::new("hubspot"), settings, credentials)
            .expect("the connector builds")
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Deal
    }

    /// The check pulls what changed right after: the changes are given
    /// the time the search index takes to show them, as they would have
    /// between two incremental syncs.
    fn touch(&self, n: usize) -> Vec<RecordId> {
        let touched = self.emulator.touch(ObjectType::Deals, n);
        std::thread::sleep(self.emulator.search_settles_in());
        touched.into_iter().map(RecordId::new).collect()
    }

    fn corrupt(&self, id: &RecordId) {
        self.emulator
            .corrupt(ObjectType::Deals, id.as_str())
            .expect("the deal exists");
    }

    fn storm(&self, n: u32, retry_after: Duration) {
        self.emulator
            .faults()
            .storm(u64::from(n), Some(retry_after));
    }

    fn expire_tokens(&self) {
        self.emulator.expire_tokens();
    }

    fn token_requests(&self) -> u64 {
        self.emulator.counts().get("POST /oauth/v3/token")
    }

    fn requests(&self) -> u64 {
        self.emulator.counts().total()
    }

    fn fail_batch_inputs(&self, n: usize) {
        self.emulator.fail_batch_inputs(n);
    }

    fn tasks(&self) -> usize {
        self.emulator.tasks().len()
    }

    fn task_list(&self) -> Vec<SeenTask> {
        self.emulator
            .tasks()
            .into_iter()
            .map(|task| {
                let text = |name: &str| task.properties.get(name).cloned().unwrap_or_default();
                SeenTask {
                    subject: text("hs_task_subject"),
                    body: text("hs_task_body"),
                    completed: text("hs_task_status") == "COMPLETED",
                    id: task.id,
                }
            })
            .collect()
    }

    fn delete_task(&self, id: &str) {
        self.emulator.delete_task(id).expect("the task exists");
    }

    fn malform_next_write(&self) {
        self.emulator.malform_next_write();
    }
}

conformance_suite!(Hubspot);
