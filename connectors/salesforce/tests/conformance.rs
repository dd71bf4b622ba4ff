//! The contract's conformance suite, run against the Salesforce connector
//! and the Salesforce emulator, once for each way it settles a lost write:
//! looking creates up among the integration user's own tasks (no external
//! id, the shipped config), and resending upserts by an external id.

use journeyd_connector::testkit::{MemoryTokenStore, Scenario, SeenTask, Target};
use journeyd_connector::{ConnectorName, ObjectKind, RecordId};
use journeyd_salesforce::{
    SalesforceAuth, SalesforceConnector, SalesforceCredentials, SalesforceSettings,
};
use journeyd_salesforce_emulator::{
    EmulatedRecord, EmulatorConfig, SObject, SalesforceEmulator, SeedSizes,
};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Batch rows asked per deal a page should hold: the deal and its first
/// stage-history row (see `Target::start`).
const ROWS_PER_DEAL: u32 = 2;

/// How long a lost create is given before it is looked up: the emulator
/// finishes a write before it answers, so any wait will do; short keeps the
/// checks fast.
const SETTLE: Duration = Duration::from_millis(500);

/// The connector and its emulator; `UPSERT`: tasks are upserted by the
/// `Journeyd_Key__c` external id.
struct Salesforce<const UPSERT: bool> {
    emulator: SalesforceEmulator,
    scenario: Scenario,
    tokens: Arc<MemoryTokenStore>,
}

impl<const UPSERT: bool> Target for Salesforce<UPSERT> {
    type Connector = SalesforceConnector;

    async fn start(scenario: Scenario) -> Self {
        let emulator = SalesforceEmulator::start(EmulatorConfig {
            sizes: SeedSizes::for_opportunities(scenario.records),
            // Exactly the scenario's records.
            odd_stage: None,
            // Salesforce stamps CreatedDate with its own clock, which the
            // checks' `sent_at` reads from the same real time.
            now: chrono::Utc::now(),
            ..EmulatorConfig::default()
        })
        .expect("the emulator starts");
        // The checks page in tens; Salesforce's own floor is 200. A deal's
        // stage history, tasks and contact roles come nested in its row and
        // count toward the batch (facts 1.3); cut after one child row each
        // (the rest is followed through the child result's own link), every
        // deal takes two to four rows of a batch: itself, at least one
        // stage, at most one task and one contact role.
        emulator.update_knobs(|knobs| {
            knobs.min_batch_size = 1;
            knobs.child_batch_size = 1;
        });
        Salesforce {
            emulator,
            scenario,
            tokens: Arc::default(),
        }
    }

    fn connector(&self) -> SalesforceConnector {
        let (auth, credentials) = if self.scenario.refreshable_auth {
            let refresh = self
                .tokens
                .latest()
                .unwrap_or_else(|| self.emulator.refresh_token());
            (
                SalesforceAuth::RefreshToken {
                    client_id: self.emulator.client_id(),
                },
                SalesforceCredentials::RefreshToken {
                    client_secret: self.emulator.client_secret().into(),
                    refresh_token: refresh.into(),
                    store: self.tokens.clone(),
                },
            )
        } else {
            (
                SalesforceAuth::JwtBearer {
                    client_id: self.emulator.client_id(),
                    username: self.emulator.username(),
                },
                SalesforceCredentials::JwtBearer {
                    private_key: journeyd_salesforce_emulator::TEST_JWT_PRIVATE_KEY_PEM.into(),
                },
            )
        };
        let mut settings = SalesforceSettings::defaults(self.emulator.base_url(), auth);
        settings.jwt_audience = Some(self.emulator.jwt_audience().to_string());
        // Two to four rows per deal: a batch of twice the page size holds
        // from half the page size to the page size in deals.
        settings.query_batch =
            NonZeroU32::new(self.scenario.page_size * ROWS_PER_DEAL).expect("a page size");
        // Every cut child result is one more request: the connector's own
        // courtesy pace (Salesforce has none per second) would make the
        // checks wait on it.
        settings.limits.general = (
            NonZeroU32::new(1000).expect("non-zero"),
            Duration::from_secs(1),
        );
        settings.settle = SETTLE;
        // A create the rate limit holds back is sent within a second, or not.
        settings.retry.send_window = std::time::Duration::from_secs(1);
        if UPSERT {
            settings.task_external_id = Some("Journeyd_Key__c".into());
        }
        SalesforceConnector::new(ConnectorName::new("salesforce"), settings, credentials)
            .expect("the connector builds")
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Deal
    }

    fn touch(&self, n: usize) -> Vec<RecordId> {
        self.emulator
            .touch(SObject::Opportunity, n)
            .into_iter()
            .map(RecordId::new)
            .collect()
    }

    fn corrupt(&self, id: &RecordId) {
        self.emulator
            .corrupt(SObject::Opportunity, id.as_str())
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
        self.emulator.counts().get("POST /services/oauth2/token")
    }

    fn requests(&self) -> u64 {
        self.emulator.counts().total()
    }

    fn fail_batch_inputs(&self, n: usize) {
        self.emulator.fail_batch_rows(n);
    }

    fn tasks(&self) -> usize {
        self.emulator.tasks().len()
    }

    fn task_list(&self) -> Vec<SeenTask> {
        let text = |task: &EmulatedRecord, field: &str| {
            task.fields
                .get(field)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        self.emulator
            .tasks()
            .iter()
            .map(|task| SeenTask {
                id: task.id.clone(),
                subject: text(task, "Subject"),
                body: text(task, "Description"),
                completed: text(task, "Status") == "Completed",
            })
            .collect()
    }

    fn delete_task(&self, id: &str) {
        self.emulator
            .delete(SObject::Task, id)
            .expect("the task exists");
    }

    fn malform_next_write(&self) {
        self.emulator.malform_next_write();
    }
}

mod looked_up {
    journeyd_connector::conformance_suite!(super::Salesforce<false>);
}

mod upserted {
    journeyd_connector::conformance_suite!(super::Salesforce<true>);
}
