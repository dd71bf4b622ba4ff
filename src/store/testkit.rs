//! Builders shared by the store's tests: a store in a temporary directory,
//! records, violations and fixed times.

use super::Store;
use crate::journey::StageId;
use crate::rules::{BuiltinRule, Fingerprint, PlannedAction, Violation};
use chrono::{DateTime, TimeZone, Utc};
use journeyd_connector::{ConnectorName, CrmRecord, ObjectKind, RecordId, System};
use tempfile::TempDir;

/// A store in its own temporary directory, removed on drop.
pub struct TestStore {
    pub store: Store,
    pub dir: TempDir,
}

impl TestStore {
    /// The steps of SQLite's plan for `sql` with `params`, one line each
    /// (`EXPLAIN QUERY PLAN`'s detail column).
    pub fn plan(&self, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        self.store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("the query prepares")
            .query_map(params, |row| row.get(3))
            .expect("the plan is read")
            .collect::<Result<_, _>>()
            .expect("the plan is read")
    }

    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("journeyd.db")).expect("open store");
        TestStore { store, dir }
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("journeyd.db")
    }

    /// A store holding the hubspot records of `found`, stored on day 1,
    /// and what one audit found at 02:00 that day.
    pub fn audited(found: &[Violation]) -> TestStore {
        let mut test = TestStore::new();
        let mut records: Vec<_> = found
            .iter()
            .map(|v| record(v.object, v.record_id.as_str()))
            .collect();
        records.dedup_by(|a, b| a.id == b.id);
        test.store
            .upsert_records(&hubspot(), &records, day(1, 0))
            .expect("the records are stored");
        let run = test
            .store
            .begin_run(super::RunKind::Audit, None, day(1, 2))
            .expect("the audit begins");
        let mut writer = test
            .store
            .begin_audit(run, &[hubspot()], day(1, 2), day(1, 2).date_naive())
            .expect("the audit writes");
        writer.record(found).expect("the violations are written");
        writer.finish().expect("the audit finishes");
        test
    }
}

/// Midnight UTC of 2024-05-`day`, plus `hour` hours.
pub fn day(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, day, hour, 0, 0)
        .single()
        .expect("valid date")
}

pub fn hubspot() -> ConnectorName {
    ConnectorName::new("hubspot")
}

pub fn record(object: ObjectKind, id: &str) -> CrmRecord {
    CrmRecord {
        system: System::Hubspot,
        object,
        id: RecordId::new(id),
        name: Some(format!("{object} {id}")),
        url: None,
        owner_id: None,
        stage: None,
        lifecycle_status: None,
        stage_entered_at: None,
        amount: None,
        currency: None,
        email: None,
        domain: None,
        created_at: day(1, 0),
        modified_at: day(1, 0),
        close_date: None,
        contract_start: None,
        contract_end: None,
        fields: Default::default(),
        associations: Default::default(),
        tasks: Vec::new(),
        stage_history: Vec::new(),
    }
}

/// A violation of `rule` on deal `id` of the hubspot connector.
pub fn violation(id: &str, rule: BuiltinRule, stage: Option<&str>) -> Violation {
    let connector = hubspot();
    let record_id = RecordId::new(id);
    let stage = stage.map(StageId::new);
    Violation {
        fingerprint: Fingerprint::of(
            &connector,
            ObjectKind::Deal,
            &record_id,
            &rule.id(),
            stage.as_ref(),
        ),
        connector,
        object: ObjectKind::Deal,
        record_id,
        record_name: Some(format!("Deal {id}")),
        record_url: None,
        rule: rule.id(),
        severity: rule.default_severity(),
        stage,
        owner_id: None,
        owner_role: None,
        message: format!("deal {id} breaks {rule}"),
        stage_since: None,
        action: PlannedAction::None,
    }
}
