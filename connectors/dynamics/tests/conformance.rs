//! The contract's conformance suite, run against the Dynamics 365
//! connector and the Dataverse emulator.

use journeyd_connector::testkit::{Scenario, Target};
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, conformance_suite};
use journeyd_dynamics::emulator::{DynamicsEmulator, EmulatorConfig, SeedSizes, Table};
use journeyd_dynamics::{DynamicsConnector, DynamicsCredentials, DynamicsSettings};
use std::num::NonZeroU32;
use std::time::Duration;

struct Dynamics {
    emulator: DynamicsEmulator,
    scenario: Scenario,
}

impl Target for Dynamics {
    type Connector = DynamicsConnector;

    async fn start(scenario: Scenario) -> Self {
        let emulator = DynamicsEmulator::start(EmulatorConfig {
            sizes: SeedSizes::for_opportunities(scenario.records),
            // Exactly the scenario's records.
            odd_stage: None,
            ..EmulatorConfig::default()
        })
        .expect("the emulator starts");
        Dynamics { emulator, scenario }
    }

    fn connector(&self) -> DynamicsConnector {
        // Entra client credentials are always refreshable: a new token is
        // simply asked for.
        let mut settings = DynamicsSettings::for_url(
            self.emulator.base_url(),
            self.emulator.tenant(),
            self.emulator.client_id(),
        );
        settings.authority = self.emulator.base_url();
        settings.page_size = NonZeroU32::new(self.scenario.page_size).expect("a page size");
        DynamicsConnector::new(
            ConnectorName::new("dynamics"),
            settings,
            DynamicsCredentials {
                client_secret: self.emulator.client_secret().into(),
            },
        )
        .expect("the connector builds")
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Deal
    }

    fn touch(&self, n: usize) -> Vec<RecordId> {
        self.emulator
            .touch(Table::Opportunity, n)
            .into_iter()
            .map(RecordId::new)
            .collect()
    }

    fn corrupt(&self, id: &RecordId) {
        // A close date no one can read, planted as it is; the row keeps
        // its key, so the skip can name it. (The emulator's own `corrupt`
        // also replaces the key, leaving nothing in the row to name it by.)
        self.emulator
            .set_field(
                Table::Opportunity,
                id.as_str(),
                "estimatedclosedate",
                serde_json::json!("not a date"),
            )
            .expect("the opportunity exists");
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
        self.emulator
            .counts()
            .get("POST /{tenant}/oauth2/v2.0/token")
    }

    fn requests(&self) -> u64 {
        self.emulator.counts().total()
    }

    fn fail_batch_inputs(&self, n: usize) {
        self.emulator.fail_batch_parts(n);
    }

    fn tasks(&self) -> usize {
        self.emulator.tasks().len()
    }
}

// Every check but `a_partial_batch_failure_fails_exactly_the_failed_rows`:
// it expects the injected part failures to be retryable, while the
// emulator injects a 400 (`0x80040203` Invalid argument), which Dataverse
// never succeeds on when asked again and the connector reports as
// `retryable: false`; `client.rs` specifies that case. Once the emulator
// injects a transient part failure (a 5xx), the whole suite applies.
conformance_suite!(@checks Dynamics;
    paging_reaches_the_last_page_without_repeating_a_record,
    a_pull_from_a_watermark_reads_what_changed_since,
    a_429_storm_is_waited_out_as_retry_after_says,
    a_token_expiring_mid_run_is_refreshed,
    a_malformed_record_is_skipped_and_named,
    find_applied_after_a_crash_finds_exactly_what_was_written,
);
