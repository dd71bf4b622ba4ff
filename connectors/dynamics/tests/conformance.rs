//! The contract's conformance suite, run against the Dynamics 365
//! connector and the Dataverse emulator.

use journeyd_connector::testkit::{Scenario, SeenTask, Target};
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, conformance_suite};
use journeyd_dynamics::{DynamicsConnector, DynamicsCredentials, DynamicsSettings};
use journeyd_dynamics_emulator::{
    DynamicsEmulator, EmulatedRecord, EmulatorConfig, SeedSizes, Table,
};
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
        self.emulator
            .corrupt(Table::Opportunity, id.as_str())
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

    fn task_list(&self) -> Vec<SeenTask> {
        let text = |task: &EmulatedRecord, column: &str| {
            task.fields
                .get(column)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        self.emulator
            .tasks()
            .iter()
            .map(|task| SeenTask {
                id: task.id.clone(),
                subject: text(task, "subject"),
                body: text(task, "description"),
                // statecode 0 is Open; Completed (1) and Canceled (2) are done.
                completed: task.fields.get("statecode").and_then(|v| v.as_i64()) == Some(1),
            })
            .collect()
    }

    fn delete_task(&self, id: &str) {
        self.emulator
            .delete(Table::Task, id)
            .expect("the task exists");
    }

    fn malform_next_write(&self) {
        self.emulator.malform_next_write();
    }
}

conformance_suite!(Dynamics);
