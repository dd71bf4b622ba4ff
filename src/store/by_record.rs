//! A page of the violations log grouped by record: each record the filter
//! selects appears once, where its first violation falls in the list's
//! order, with every violation of it the filter selects. Pages continue
//! from the last record's first violation, so a record never shows on two
//! pages.

use super::violations::{FEW, Where, filter_on, rows_of_ids};
use super::{Store, StoreError, ViolationFilter, ViolationRow};
use rusqlite::types::Value;
use std::num::NonZeroUsize;

/// A page of records.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    pub groups: Vec<RecordGroup>,
    /// How many violations the filter selects (every one, not one per
    /// record), where reading the page counted them: up to
    /// [`RecordPage::COUNTED`], `Some(None)` past it.
    pub counted: Option<Option<u64>>,
}

impl RecordPage {
    /// The cap of [`RecordPage::counted`].
    pub const COUNTED: u64 = FEW;
}

/// One record's violations on a page, its first in the list's order
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordGroup {
    pub rows: Vec<ViolationRow>,
}

impl RecordGroup {
    /// The violation the record is listed by: where the next page goes on
    /// from.
    pub fn first(&self) -> &ViolationRow {
        &self.rows[0]
    }
}

impl Store {
    /// Up to `records` records of `filter`'s list (its `after` a record's
    /// first violation, its limit and `one_per_record` ignored), each with
    /// the violations of it `filter` selects, in the list's order.
    pub fn list_by_record(
        &self,
        filter: &ViolationFilter,
        records: NonZeroUsize,
    ) -> Result<RecordPage, StoreError> {
        let firsts = ViolationFilter {
            one_per_record: true,
            limit: Some(records),
            ..filter.clone()
        };
        let (leads, counted) = self.page_ids(&firsts, records)?;
        if leads.is_empty() {
            return Ok(RecordPage {
                groups: Vec::new(),
                counted,
            });
        }
        let (sql, values) = members_sql(filter, &leads);
        let members = self.ids(&sql, values)?;
        let mut rows = Vec::with_capacity(members.len());
        self.query_violations(&rows_of_ids(&members, filter.sort), |row| {
            rows.push(row);
            Ok::<_, StoreError>(())
        })?;
        // In the list's order, a record's first row is its lead (no row of
        // it the filter selects comes before), and leads come in the page's
        // order: each record's group opens at its first row.
        let mut groups: Vec<RecordGroup> = Vec::with_capacity(leads.len());
        let mut index: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
        for row in rows {
            let v = &row.violation;
            let key = (v.connector.clone(), v.object, v.record_id.clone());
            match index.get(&key) {
                Some(&at) => groups[at].rows.push(row),
                None => {
                    index.insert(key, groups.len());
                    groups.push(RecordGroup { rows: vec![row] });
                }
            }
        }
        Ok(RecordPage { groups, counted })
    }

    /// How many records `filter` selects, its limit aside.
    pub fn count_records(&self, filter: &ViolationFilter) -> Result<u64, StoreError> {
        self.count_violations(&ViolationFilter {
            one_per_record: true,
            after: None,
            limit: None,
            ..filter.clone()
        })
    }

    /// How many records `filter` selects (its limit aside), counting no
    /// further than `cap`: `None` when there are more.
    pub fn count_records_upto(
        &self,
        filter: &ViolationFilter,
        cap: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.count_violations_upto(
            &ViolationFilter {
                one_per_record: true,
                after: None,
                limit: None,
                ..filter.clone()
            },
            cap,
        )
    }
}

/// The ids of the rows `filter` selects (its position and limit aside)
/// of the records the rows `leads` belong to.
fn members_sql(filter: &ViolationFilter, leads: &[i64]) -> (String, Vec<Value>) {
    let every = ViolationFilter {
        after: None,
        limit: None,
        one_per_record: false,
        ..filter.clone()
    };
    // The filter is kept from the indexes: the rows are found by id and by
    // record, and the filter only checks them.
    let mut query: Where = filter_on(&every, "+", "+", "+");
    let ids = query.bind(Value::Text(
        serde_json::Value::from(leads.to_vec()).to_string(),
    ));
    query.clauses.push(format!(
        "(id IN (SELECT value FROM json_each({ids})) OR record_rowid IN \
         (SELECT record_rowid FROM violation_rows \
          WHERE id IN (SELECT value FROM json_each({ids}))))"
    ));
    (
        format!("SELECT id FROM violation_rows{}", query.sql()),
        query.values,
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, violation};
    use super::super::{ListPosition, Sort, ViolationStatus};
    use super::*;
    use crate::rules::{BuiltinRule, Severity, Violation};

    /// Records 1 to 6: each has a duplicate (low); the even ones are also
    /// stalled (medium); 3 and 6 also have no owner (high).
    fn log() -> TestStore {
        let found: Vec<Violation> = (1..=6)
            .flat_map(|i| {
                let id = i.to_string();
                let mut found = vec![violation(&id, BuiltinRule::DuplicateRecord, None)];
                if i % 2 == 0 {
                    found.push(violation(&id, BuiltinRule::Stalled, None));
                }
                if i % 3 == 0 {
                    found.push(violation(&id, BuiltinRule::MissingOwner, None));
                }
                found
            })
            .collect();
        TestStore::audited(&found)
    }

    /// Every page of `filter`'s list, `size` records a page, as
    /// `record:rule,rule` per record.
    fn pages(store: &Store, filter: &ViolationFilter, size: usize) -> Vec<Vec<String>> {
        let mut filter = filter.clone();
        let mut pages = Vec::new();
        for _ in 0..20 {
            let groups = store
                .list_by_record(&filter, NonZeroUsize::new(size).unwrap())
                .unwrap()
                .groups;
            let Some(last) = groups.last() else { break };
            filter.after = Some(ListPosition {
                severity: last.first().violation.severity,
                id: last.first().id,
            });
            pages.push(groups.iter().map(shown).collect());
        }
        pages
    }

    fn shown(group: &RecordGroup) -> String {
        let rules: Vec<&str> = group
            .rows
            .iter()
            .map(|row| row.violation.rule.as_str())
            .collect();
        format!("{}:{}", group.first().violation.record_id, rules.join(","))
    }

    #[test]
    fn each_record_shows_once_under_its_most_severe_violation_with_all_of_them() {
        let test = log();
        let pages = pages(&test.store, &ViolationFilter::default(), 4);

        assert_eq!(
            pages,
            [
                vec![
                    "6:missing_owner,stalled,duplicate_record",
                    "3:missing_owner,duplicate_record",
                    "4:stalled,duplicate_record",
                    "2:stalled,duplicate_record",
                ],
                vec!["5:duplicate_record", "1:duplicate_record"],
            ]
        );
    }

    #[test]
    fn a_record_shows_only_the_violations_the_filter_selects() {
        let test = log();
        let filter = ViolationFilter {
            min_severity: Some(Severity::Medium),
            ..ViolationFilter::default()
        };

        assert_eq!(
            pages(&test.store, &filter, 10),
            [vec![
                "6:missing_owner,stalled",
                "3:missing_owner",
                "4:stalled",
                "2:stalled",
            ]]
        );
        assert_eq!(test.store.count_records_upto(&filter, 10).unwrap(), Some(4));
        assert_eq!(test.store.count_records_upto(&filter, 3).unwrap(), None);
    }

    #[test]
    fn a_filter_that_selects_few_rows_pages_records_as_a_wide_one_does() {
        let test = log();
        // A status other than the usual narrows: the few rows are read by
        // their own index and sorted.
        let few = ViolationFilter {
            statuses: vec![ViolationStatus::Open],
            connector: Some(super::super::testkit::hubspot()),
            ..ViolationFilter::default()
        };
        let wide = ViolationFilter::default();

        assert_eq!(pages(&test.store, &few, 1), pages(&test.store, &wide, 1));
    }

    #[test]
    fn the_oldest_first_lists_records_by_their_oldest_violation() {
        let test = log();
        let filter = ViolationFilter {
            sort: Sort::Oldest,
            ..ViolationFilter::default()
        };
        let pages = pages(&test.store, &filter, 4);

        assert_eq!(
            pages.concat(),
            [
                "1:duplicate_record",
                "2:duplicate_record,stalled",
                "3:duplicate_record,missing_owner",
                "4:duplicate_record,stalled",
                "5:duplicate_record",
                "6:duplicate_record,stalled,missing_owner",
            ]
        );
    }

    #[test]
    fn the_newest_first_lists_records_by_their_newest_violation() {
        let test = log();
        let filter = ViolationFilter {
            sort: Sort::Newest,
            ..ViolationFilter::default()
        };
        let records: Vec<String> = pages(&test.store, &filter, 2)
            .concat()
            .into_iter()
            .map(|shown| shown.split(':').next().unwrap().to_owned())
            .collect();

        assert_eq!(records, ["6", "5", "4", "3", "2", "1"]);
    }

    #[test]
    fn whether_a_row_is_its_records_first_is_read_through_the_index_by_record() {
        let test = log();
        // Status and severity have an index of their own, which must not
        // be the one that finds a record's other rows.
        let filter = ViolationFilter {
            one_per_record: true,
            statuses: vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            min_severity: Some(Severity::High),
            ..ViolationFilter::default()
        };
        let query = super::super::violations::filter_on(&filter, "+", "+", "");
        let sql = format!("SELECT id FROM violation_rows{}", query.sql());
        let plan = test.plan(&sql, rusqlite::params_from_iter(query.values));

        let inner: Vec<&String> = plan.iter().filter(|step| step.contains(" w ")).collect();
        assert_eq!(inner.len(), 1, "{plan:?}");
        assert!(
            inner[0].contains("USING INDEX violation_rows_record_rowid (record_rowid=?)"),
            "{plan:?}"
        );
    }

    #[test]
    fn a_pages_records_rows_are_read_by_id_and_by_record_never_by_scanning_the_log() {
        let test = log();
        let filter = ViolationFilter {
            statuses: vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            min_severity: Some(Severity::Medium),
            ..ViolationFilter::default()
        };
        let (sql, values) = members_sql(&filter, &[1, 2]);
        let plan = test.plan(&sql, rusqlite::params_from_iter(values));

        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN violation_rows")),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("violation_rows_record_rowid (record_rowid=?)")),
            "{plan:?}"
        );
    }
}
