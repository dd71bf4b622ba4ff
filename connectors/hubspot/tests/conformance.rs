//! The contract's conformance suite, run against the HubSpot connector and
//! the HubSpot emulator.

use journeyd_connector::testkit::{MemoryTokenStore, Scenario, Target};
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, conformance_suite};
use journeyd_hubspot::emulator::{EmulatorConfig, HubspotEmulator, ObjectType, SeedSizes};
use journeyd_hubspot::{HubspotAuth, HubspotConnector, HubspotCredentials, HubspotSettings};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

struct Hubspot {
    emulator: HubspotEmulator,
    scenario: Scenario,
    tokens: Arc<MemoryTokenStore>,
}

impl Target for Hubspot {
    type Connector = HubspotConnector;

    async fn start(scenario: Scenario) -> Self {
        let emulator = HubspotEmulator::start(EmulatorConfig {
            sizes: SeedSizes::for_deals(scenario.records),
            ..EmulatorConfig::default()
        })
        .expect("the emulator starts");
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
        HubspotConnector::new(ConnectorName::new("hubspot"), settings, credentials)
            .expect("the connector builds")
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Deal
    }

    fn touch(&self, n: usize) -> Vec<RecordId> {
        self.emulator
            .touch(ObjectType::Deals, n)
            .into_iter()
            .map(RecordId::new)
            .collect()
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
}

conformance_suite!(Hubspot);
