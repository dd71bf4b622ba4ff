//! Raw figures for the stage report, from what the last audit derived of
//! each live record and from the open violations.
//!
//! The store knows stage positions, not the journey: the caller names the
//! stages and computes conversion from these figures.

use super::{SqlContext, Store, StoreError};
use crate::journey::{RoleId, StageId};
use crate::rules::RuleId;
use chrono::NaiveDate;
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
    /// The owner's name, where the owners table holds them.
    pub owner_name: Option<String>,
    pub owner_role: Option<RoleId>,
    pub count: u64,
}

/// Live records with their last audited state.
const LIVE_STATES: &str = "record_state s JOIN records r
     ON r.connector = s.connector AND r.object = s.object AND r.id = s.record_id
     WHERE r.deleted_at IS NULL";

impl Store {
    /// One entry per journey position from the first to the furthest any
    /// live record is in or reached; days in stage counted to `today`.
    pub fn stage_figures(&self, today: NaiveDate) -> Result<Vec<StageFigures>, StoreError> {
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
                        count(s.stage_entered_on)
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
                "SELECT s.stage_index,
                        max(0, CAST(julianday(?1) - julianday(s.stage_entered_on) AS INTEGER))
                 FROM {LIVE_STATES}
                 AND s.stage_index IS NOT NULL AND s.stage_entered_on IS NOT NULL
                 ORDER BY s.stage_index, s.stage_entered_on DESC"
            ))
            .op("prepare reading days in stage")?;
        let mut rows = stmt
            .query([super::columns::date(today)])
            .op("read days in stage")?;
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
                "SELECT stage, rule, count(*) FROM violation_rows WHERE status = 'open'
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
                "SELECT v.connector, v.owner_id, v.owner_role, v.n, o.name FROM
                     (SELECT connector, owner_id, owner_role, count(*) AS n FROM violation_rows
                      WHERE status = 'open'
                      GROUP BY connector, owner_id, owner_role) v
                 LEFT JOIN owners o ON o.connector = v.connector AND o.id = v.owner_id
                 ORDER BY v.n DESC, v.connector, v.owner_id, v.owner_role",
            )
            .op("prepare counting violations by owner")?;
        let rows = stmt
            .query_map([], |row| {
                Ok(OwnerCount {
                    connector: ConnectorName::new(row.get::<_, String>(0)?),
                    owner_id: row.get::<_, Option<String>>(1)?.map(OwnerId::new),
                    owner_role: row.get::<_, Option<String>>(2)?.map(RoleId::new),
                    count: row.get(3)?,
                    owner_name: row.get(4)?,
                })
            })
            .op("count violations by owner")?
            .collect::<Result<_, _>>()
            .op("count violations by owner")?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot, record, violation};
    use super::super::{RecordState, RunKind};
    use super::*;
    use crate::rules::BuiltinRule;
    use journeyd_connector::{ObjectKind, RecordId};

    fn today() -> NaiveDate {
        day(4, 0).date_naive()
    }

    fn state(id: &str, index: usize, furthest: usize, days: i64, stalled: bool) -> RecordState {
        let stages = ["awareness", "consideration", "decision"];
        RecordState {
            connector: hubspot(),
            object: ObjectKind::Deal,
            record_id: RecordId::new(id),
            stage: Some(StageId::new(stages[index])),
            stage_index: Some(index),
            max_stage_index: Some(furthest),
            record_rowid: None,
            stage_entered_on: Some(today() - chrono::Duration::days(days)),
            stalled,
            owner_id: None,
            owner_role: None,
            recheck_on: None,
        }
    }

    #[test]
    fn stage_figures_count_records_reached_stalled_and_days_percentiles() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let ids: Vec<String> = (0..13).map(|i| format!("d{i}")).collect();
        let records: Vec<_> = ids.iter().map(|id| record(ObjectKind::Deal, id)).collect();
        store
            .upsert_records(&hubspot(), &records, day(1, 0))
            .unwrap();
        // Ten records in stage 0 with days 1..=10; two in stage 2, one of
        // which went back to stage 0 (counted as having reached 2).
        let mut states: Vec<RecordState> = (0..10)
            .map(|i| state(&ids[i], 0, 0, i as i64 + 1, i >= 8))
            .collect();
        states[9].max_stage_index = Some(2);
        states.push(state(&ids[10], 2, 2, 4, false));
        states.push(state(&ids[11], 2, 2, 30, true));
        states.push(state(&ids[12], 2, 2, 99, true));
        let run = store.begin_run(RunKind::Audit, None, day(2, 0)).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], day(2, 0), day(2, 0).date_naive())
            .unwrap();
        writer.record_states(&states).unwrap();
        writer.finish().unwrap();
        store
            .mark_deleted(
                &hubspot(),
                ObjectKind::Deal,
                &[RecordId::new("d12")],
                day(3, 0),
            )
            .unwrap();

        let figures = store.stage_figures(today()).unwrap();
        let summary: Vec<_> = figures
            .iter()
            .map(|f| {
                (
                    f.stage_index,
                    f.records,
                    f.reached,
                    f.stalled,
                    f.days_median,
                    f.days_p90,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, 10, 12, 2, Some(5), Some(9)),
                (1, 0, 3, 0, None, None),
                (2, 2, 3, 1, Some(4), Some(30)),
            ]
        );
        assert_eq!(figures[0].stage, Some(StageId::new("awareness")));
        assert_eq!(figures[1].stage, None);
    }

    #[test]
    fn open_violations_are_counted_by_stage_rule_and_owner() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let mut owned = violation("1", BuiltinRule::Stalled, Some("decision"));
        owned.owner_id = Some(OwnerId::new("u1"));
        let found = [
            owned,
            violation("2", BuiltinRule::Stalled, Some("decision")),
            violation("3", BuiltinRule::MissingOwner, None),
        ];
        let records: Vec<_> = ["1", "2", "3"]
            .iter()
            .map(|id| record(ObjectKind::Deal, id))
            .collect();
        store
            .upsert_records(&hubspot(), &records, day(1, 0))
            .unwrap();
        let run = store.begin_run(RunKind::Audit, None, day(1, 2)).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], day(1, 2), day(1, 2).date_naive())
            .unwrap();
        writer.record(&found).unwrap();
        writer.finish().unwrap();
        store
            .acknowledge(super::super::ViolationId(3), "ann", "known", day(1, 3))
            .unwrap();

        let by_stage = store.violations_by_stage_rule().unwrap();
        assert_eq!(
            by_stage,
            vec![StageRuleCount {
                stage: Some(StageId::new("decision")),
                rule: BuiltinRule::Stalled.id(),
                count: 2
            }]
        );
        let by_owner: Vec<(Option<String>, u64)> = store
            .violations_by_owner()
            .unwrap()
            .into_iter()
            .map(|o| (o.owner_id.map(|id| id.to_string()), o.count))
            .collect();
        assert_eq!(by_owner, vec![(None, 1), (Some("u1".into()), 1)]);
    }
}
