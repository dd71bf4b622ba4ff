//! Audits a large synthetic CRM from the store with the shipped journey and
//! config, and prints records/s and peak memory.
//!
//!     cargo bench --bench audit                      # 1,000,000 records
//!     JOURNEYD_BENCH_RECORDS=100000 cargo bench --bench audit
//!
//! Loading the store is timed apart from the audit. Peak RSS is reset (Linux
//! `clear_refs`) after loading, so the figure is the audit's own.

use chrono::{DateTime, Duration, TimeZone, Utc};
use journeyd::config;
use journeyd::store::Store;
use journeyd_connector::{
    Associations, CrmRecord, ObjectKind, Owner, OwnerId, RecordId, StageChange, System,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const BATCH: usize = 5000;
const OWNERS: usize = 60;

fn main() {
    let records: usize = std::env::var("JOURNEYD_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        config::load(&repo.join("config/journeyd.toml")).expect("the shipped config loads");
    let connector = config
        .connectors
        .iter()
        .find(|c| c.system == System::Hubspot)
        .expect("the shipped config has a HubSpot connector");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.sqlite");
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();

    let mut store = Store::open(&path).expect("the store opens");
    let started = Instant::now();
    let mut synth = Synth::new(connector, now);
    store
        .upsert_owners(&connector.name, &synth.owners(), now)
        .expect("owners stored");
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..records {
        batch.push(synth.record(i));
        if batch.len() == BATCH {
            store
                .upsert_records(&connector.name, &batch, now)
                .expect("records stored");
            batch.clear();
        }
    }
    store
        .upsert_records(&connector.name, &batch, now)
        .expect("records stored");
    let load = started.elapsed();
    drop(store);
    println!(
        "load:   {records} records in {:.1} s ({:.0} records/s), state file {} MB",
        load.as_secs_f64(),
        records as f64 / load.as_secs_f64(),
        std::fs::metadata(&path)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    );

    for (label, when) in [
        ("first audit", now),
        ("next audit", now + Duration::days(1)),
    ] {
        reset_peak_rss();
        let started = Instant::now();
        let summary =
            journeyd::audit::run_at(&path, &config, when, &|| false).expect("the audit runs");
        let took = started.elapsed();
        println!(
            "{label}: {} records in {:.1} s = {:.0} records/s; {} violations ({} new, {} resolved); peak RSS {} MB",
            summary.records,
            took.as_secs_f64(),
            summary.records as f64 / took.as_secs_f64(),
            summary.violations,
            summary.chunks.new,
            summary.finish.resolved,
            peak_rss_kb() / 1024
        );
    }
}

/// A deterministic synthetic HubSpot portal with a realistic mix of journey
/// problems: missing owners, inactive owners, stalled deals, unmet criteria,
/// skipped stages, unmapped stages, duplicate contacts.
struct Synth<'c> {
    rng: fastrand::Rng,
    stages: Vec<&'c str>,
    fields: Vec<&'c str>,
    now: DateTime<Utc>,
}

impl<'c> Synth<'c> {
    fn new(connector: &'c config::ConnectorConfig, now: DateTime<Utc>) -> Self {
        let stages = connector.stages[&ObjectKind::Deal]
            .keys()
            .map(String::as_str)
            .collect();
        let fields = connector.fields.keys().map(String::as_str).collect();
        Synth {
            rng: fastrand::Rng::with_seed(7),
            stages,
            fields,
            now,
        }
    }

    fn owners(&self) -> Vec<Owner> {
        let teams = [
            "Marketing",
            "Sales",
            "Onboarding",
            "Customer Success",
            "Account Management",
        ];
        (0..OWNERS)
            .map(|i| Owner {
                id: OwnerId::new(format!("{}", 1000 + i)),
                name: format!("Owner {i}"),
                email: Some(format!("owner{i}@example.com")),
                active: i % 15 != 0,
                teams: vec![teams[i % teams.len()].to_owned()],
            })
            .collect()
    }

    fn record(&mut self, i: usize) -> CrmRecord {
        let rng = &mut self.rng;
        let created = self.now - Duration::days(rng.i64(1..700));
        let object = match i % 20 {
            0..=15 => ObjectKind::Deal,
            16..=18 => ObjectKind::Contact,
            _ => ObjectKind::Account,
        };
        let mut fields = BTreeMap::new();
        for field in &self.fields {
            if rng.u8(0..10) < 7 {
                let value = match *field {
                    "budget_approved" | "success_criteria_met" => serde_json::json!("true"),
                    "weekly_active_users" => serde_json::json!(rng.u32(0..500)),
                    "customer_health_score" => serde_json::json!(rng.u32(20..100)),
                    _ => serde_json::json!(format!("{field} {}", rng.u32(..))),
                };
                fields.insert((*field).to_owned(), value);
            }
        }
        let (stage, history) = if object == ObjectKind::Deal {
            let stage = if rng.u16(0..100) == 0 {
                "negotiation_v2"
            } else {
                self.stages[rng.usize(0..self.stages.len())]
            };
            let steps = rng.usize(0..4);
            let mut at = created;
            let mut history: Vec<StageChange> = (0..steps)
                .map(|_| {
                    at += Duration::days(rng.i64(1..30));
                    StageChange {
                        stage: self.stages[rng.usize(0..self.stages.len())].to_owned(),
                        at,
                        owner_id: None,
                    }
                })
                .collect();
            history.push(StageChange {
                stage: stage.to_owned(),
                at: at + Duration::days(1),
                owner_id: None,
            });
            (Some(stage.to_owned()), history)
        } else {
            (None, Vec::new())
        };
        let duplicate = rng.u8(0..100) < 3;
        let n = if duplicate { i / 2 } else { i };
        CrmRecord {
            system: System::Hubspot,
            object,
            id: RecordId::new(format!("{}", 10_000_000 + i)),
            name: Some(format!("Record {i}")),
            url: Some(format!("https://app.hubspot.com/contacts/1/record/0-3/{i}")),
            owner_id: (rng.u8(0..100) >= 4)
                .then(|| OwnerId::new(format!("{}", 1000 + rng.usize(0..OWNERS)))),
            stage,
            lifecycle_status: None,
            stage_entered_at: None,
            amount: (rng.u8(0..10) < 8).then(|| f64::from(rng.u32(1_000..200_000))),
            currency: Some("EUR".into()),
            email: (object != ObjectKind::Account)
                .then(|| format!("buyer{n}@customer{}.example", n % 50_000)),
            domain: Some(format!(
                "customer{}.example",
                if object == ObjectKind::Account {
                    n
                } else {
                    n % 50_000
                }
            )),
            created_at: created,
            modified_at: created + Duration::days(1),
            close_date: (rng.bool())
                .then(|| (self.now + Duration::days(rng.i64(-200..200))).date_naive()),
            contract_start: None,
            contract_end: None,
            fields,
            associations: Associations {
                account: rng
                    .bool()
                    .then(|| RecordId::new(format!("a{}", i % 50_000))),
                contacts: Vec::new(),
            },
            tasks: Vec::new(),
            stage_history: history,
        }
    }
}

fn reset_peak_rss() {
    // Linux: writing 5 resets the peak resident set size of the process.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}
