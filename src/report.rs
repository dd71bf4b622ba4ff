//! Stage KPIs for admins and revenue operations: per journey stage, how many
//! records are in it and reached it, how many move on, how long they sit,
//! how many are stalled, and which rules and owners the open violations
//! belong to. Built from what the last audit recorded in the store.

use crate::journey::{Journey, RoleId, StageId};
use crate::store::{OwnerCount, StageRuleCount, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub stage: StageId,
    pub name: String,
    pub owner_role: RoleId,
    /// Records in the stage now.
    pub records: u64,
    /// Records that reached the stage or a later one.
    pub reached: u64,
    /// Share of the records that reached this stage that reached the next
    /// one; `None` for the last stage or when none reached this one.
    pub conversion: Option<f64>,
    pub days_median: Option<i64>,
    pub days_p90: Option<i64>,
    pub stalled: u64,
    /// Open violations keyed to this stage.
    pub violations: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub stages: Vec<StageReport>,
    /// Open violations by rule, most first.
    pub by_rule: Vec<(String, u64)>,
    pub by_stage_rule: Vec<StageRuleCount>,
    /// Open violations by accountable owner, most first.
    pub by_owner: Vec<OwnerCount>,
}

pub fn build(store: &Store, journey: &Journey) -> Result<Report, StoreError> {
    let figures = store.stage_figures(store.today())?;
    let by_stage_rule = store.violations_by_stage_rule()?;
    let mut by_owner = store.violations_by_owner()?;
    by_owner.sort_by_key(|o| std::cmp::Reverse(o.count));
    let mut per_stage: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_rule: BTreeMap<String, u64> = BTreeMap::new();
    for row in &by_stage_rule {
        if let Some(stage) = &row.stage {
            *per_stage.entry(stage.as_str()).or_default() += row.count;
        }
        *per_rule.entry(row.rule.to_string()).or_default() += row.count;
    }
    let figure = |index: usize| figures.iter().find(|f| f.stage_index == index);
    let stages = journey
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let here = figure(index);
            let reached = here.map_or(0, |f| f.reached);
            let next = (index + 1 < journey.stages.len())
                .then(|| figure(index + 1).map_or(0, |f| f.reached));
            StageReport {
                stage: stage.id.clone(),
                name: stage.name.clone(),
                owner_role: stage.owner_role.clone(),
                records: here.map_or(0, |f| f.records),
                reached,
                conversion: next
                    .filter(|_| reached > 0)
                    .map(|n| n as f64 / reached as f64),
                days_median: here.and_then(|f| f.days_median),
                days_p90: here.and_then(|f| f.days_p90),
                stalled: here.map_or(0, |f| f.stalled),
                violations: per_stage.get(stage.id.as_str()).copied().unwrap_or(0),
            }
        })
        .collect();
    let mut by_rule: Vec<(String, u64)> = per_rule.into_iter().collect();
    by_rule.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Report {
        stages,
        by_rule,
        by_stage_rule,
        by_owner,
    })
}
