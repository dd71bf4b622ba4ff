//! Raw figures for the stage report, from what the last audit derived of
//! each live record and from the open violations.
//!
//! The store knows stage positions, not the journey: the caller names the
//! stages and computes conversion from these figures.

use super::{SqlContext, Store, StoreError};
use crate::journey::{RoleId, StageId};
use crate::rules::RuleId;
use journeyd_connector::{ConnectorName, OwnerId};
use serde::Serialize;

/// The figures of one journey position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StageFigures {
    /// Position in journey order.
    pub stage_index: usize,
    /// The stage id the audit recorded at this position, if any record is
    /// in it now.
    pub stage: Option<StageId>,
    /// Records in the stage now.
    pub records: u64,
    /// Records that reached the stage or a later one.
    pub reached: u64,
    /// Records in the stage past its time limit.
    pub stalled: u64,
    /// Days in stage of the records in it: median and 90th percentile
    /// (nearest rank), where known.
    pub days_median: Option<i64>,
    pub days_p90: Option<i64>,
}

/// Open violations of one rule at one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageRuleCount {
    pub stage: Option<StageId>,
    pub rule: RuleId,
    pub count: u64,
}

/// Open violations an owner is accountable for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerCount {
    pub connector: ConnectorName,
    pub owner_id: Option<OwnerId>,
    pub owner_role: Option<RoleId>,
    pub count: u64,
}

/// Live records with their last audited state.
const LIVE_STATES: &str = "record_state s JOIN records r
     ON r.connector = s.connector AND r.object = s.object AND r.id = s.record_id
     WHERE r.deleted_at IS NULL";

impl Store {
    /// One entry per journey position from the first to the furthest any
    /// live record is in or reached.
    pub fn stage_figures(&self) -> Result<Vec<StageFigures>, StoreError> {
        let mut figures: Vec<StageFigures> = Vec::new();
        let at = |figures: &mut Vec<StageFigures>, index: usize| -> usize {
            if figures.len() <= index {
                figures.extend((figures.len()..=index).map(|stage_index| StageFigures {
                    stage_index,
                    ..StageFigures::default()
                }));
            }
            index
        };

        // Records, stalled and how many days values, per current position.
        let mut days_known: Vec<u64> = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT s.stage_index, max(s.stage), count(*), sum(s.stalled),
                        count(s.days_in_stage)
                 FROM {LIVE_STATES} AND s.stage_index IS NOT NULL
                 GROUP BY s.stage_index"
            ))
            .op("prepare counting records per stage")?;
        let mut rows = stmt.query([]).op("count records per stage")?;
        while let Some(row) = rows.next().op("count records per stage")? {
            let read = || -> rusqlite::Result<_> {
                Ok((
                    row.get::<_, usize>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, u64>(2)?,
                    row.get::<_, u64>(3)?,
                    row.get::<_, u64>(4)?,
                ))
            };
            let (index, stage, records, stalled, known) = read().op("count records per stage")?;
            let i = at(&mut figures, index);
            figures[i].stage = stage.map(StageId::new);
            figures[i].records = records;
            figures[i].stalled = stalled;
            if days_known.len() <= i {
                days_known.resize(i + 1, 0);
            }
            days_known[i] = known;
        }

        // Reached: how many went at least this far.
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT s.max_stage_index, count(*) FROM {LIVE_STATES}
                 AND s.max_stage_index IS NOT NULL GROUP BY s.max_stage_index"
            ))
            .op("prepare counting records per furthest stage")?;
        let furthest: Vec<(usize, u64)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .op("count records per furthest stage")?
            .collect::<Result<_, _>>()
            .op("count records per furthest stage")?;
        for &(index, _) in &furthest {
            at(&mut figures, index);
        }
        for (index, count) in furthest {
            for figure in &mut figures[..=index] {
                figure.reached += count;
            }
        }

        // Percentiles: stream the days in order and pick the ranks.
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT s.stage_index, s.days_in_stage FROM {LIVE_STATES}
                 AND s.stage_index IS NOT NULL AND s.days_in_stage IS NOT NULL
                 ORDER BY s.stage_index, s.days_in_stage"
            ))
            .op("prepare reading days in stage")?;
        let mut rows = stmt.query([]).op("read days in stage")?;
        let mut current: Option<(usize, u64)> = None;
        while let Some(row) = rows.next().op("read days in stage")? {
            let index: usize = row.get(0).op("read days in stage")?;
            let days: i64 = row.get(1).op("read days in stage")?;
            let rank = match current {
                Some((i, rank)) if i == index => rank + 1,
                _ => 1,
            };
            current = Some((index, rank));
            let n = days_known.get(index).copied().unwrap_or(0);
            let Some(figure) = figures.get_mut(index) else {
                continue;
            };
            if rank == n.div_ceil(2) {
                figure.days_median = Some(days);
            }
            if rank == (9 * n).div_ceil(10) {
                figure.days_p90 = Some(days);
            }
        }
        Ok(figures)
    }

    /// Open violations by stage and rule.
    pub fn violations_by_stage_rule(&self) -> Result<Vec<StageRuleCount>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT stage, rule, count(*) FROM violations WHERE status = 'open'
                 GROUP BY stage, rule ORDER BY stage, rule",
            )
            .op("prepare counting violations by stage")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(StageRuleCount {
                    stage: row.get::<_, Option<String>>(0)?.map(StageId::new),
                    rule: RuleId::new(row.get::<_, String>(1)?),
                    count: row.get(2)?,
                })
            })
            .op("count violations by stage")?
            .collect::<Result<_, _>>()
            .op("count violations by stage")?;
        Ok(rows)
    }

    /// Open violations by accountable owner, most first.
    pub fn violations_by_owner(&self) -> Result<Vec<OwnerCount>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT connector, owner_id, owner_role, count(*) AS n FROM violations
                 WHERE status = 'open'
                 GROUP BY connector, owner_id, owner_role
                 ORDER BY n DESC, connector, owner_id, owner_role",
            )
            .op("prepare counting violations by owner")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(OwnerCount {
                    connector: ConnectorName::new(row.get::<_, String>(0)?),
                    owner_id: row.get::<_, Option<String>>(1)?.map(OwnerId::new),
                    owner_role: row.get::<_, Option<String>>(2)?.map(RoleId::new),
                    count: row.get(3)?,
                })
            })
            .op("count violations by owner")?
            .collect::<Result<_, _>>()
            .op("count violations by owner")?;
        Ok(rows)
    }
}
