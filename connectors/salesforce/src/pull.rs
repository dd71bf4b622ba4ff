//! Reading: pages of records (SOQL ordered by `SystemModstamp, Id`, each
//! page's deals completed with their stage history and tasks), owners, and
//! deleted ids. A page's cursor is Salesforce's own `nextRecordsUrl`.
//!
//! Deletions come from `queryAll … WHERE IsDeleted = true` (the recycle
//! bin), then from getDeleted over the last 15 days, which also names
//! records emptied from the bin. Both forget: a record deleted longer ago,
//! or whose log entry Salesforce purged early, is reported by neither. The
//! daemon's full pull, which marks deleted whatever it no longer sees, is
//! what catches those.

use crate::connector::{DELETED_ROUTE, SalesforceConnector, sobject};
use crate::normalize;
use crate::soql;
use crate::wire::{DeletedPage, QueryPage};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::page::Skipped;
use journeyd_connector::{ConnectorError, CrmRecord, ObjectKind, Owner, Page, RecordId};
use std::collections::BTreeMap;

/// Ids per `IN (…)` of a side query: a query travels in the URL, which
/// Salesforce caps at 16,384 characters.
const IDS_PER_QUERY: usize = 200;

/// The deletions cursor after the recycle bin: getDeleted comes next.
const GET_DELETED: &str = "getDeleted";

/// How far back getDeleted is asked: its 15-day window (facts 1.3), less an
/// hour for the two clocks' skew (an older start is refused outright).
const DELETED_LOOKBACK: chrono::Duration = chrono::Duration::hours(15 * 24 - 1);

impl SalesforceConnector {
    pub(crate) async fn owners_page(
        &self,
        cursor: Option<String>,
    ) -> Result<Page<Owner>, ConnectorError> {
        let page = match cursor {
            Some(link) => self.next_page(&link).await?,
            None => {
                self.query(
                    "SELECT Id, Name, Email, IsActive, Title, Department FROM User ORDER BY Id",
                    false,
                )
                .await?
            }
        };
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for (position, row) in page.records.iter().enumerate() {
            match normalize::owner(row, position) {
                Ok(owner) => items.push(owner),
                Err(skip) => skipped.push(skip),
            }
        }
        Ok(Page {
            items,
            skipped,
            next: next_cursor(&page),
        })
    }

    pub(crate) async fn pull_page(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let page = match from {
            PullFrom::Cursor(link) => self.next_page(&link).await?,
            PullFrom::Start => self.query(&self.pull_query(object, None), false).await?,
            PullFrom::Since(mark) => {
                let since = mark
                    .modified_at
                    .checked_sub_signed(
                        chrono::Duration::from_std(self.settings.overlap)
                            .unwrap_or(chrono::Duration::zero()),
                    )
                    .unwrap_or(mark.modified_at);
                self.query(&self.pull_query(object, Some(since)), false)
                    .await?
            }
        };
        let mut items = Vec::new();
        let mut skipped: Vec<Skipped> = Vec::new();
        for (position, row) in page.records.iter().enumerate() {
            match normalize::record(object, row, position, &self.settings) {
                Ok(record) => items.push(record),
                Err(skip) => {
                    tracing::warn!(connector = %self.name_str(), object = %object,
                        record = %skip.id, reason = %skip.reason, "record skipped");
                    skipped.push(skip);
                }
            }
        }
        if object == ObjectKind::Deal && !items.is_empty() {
            self.complete_deals(&mut items).await?;
        }
        Ok(Page {
            items,
            skipped,
            next: next_cursor(&page),
        })
    }

    /// `SELECT <fields> FROM <Object> [WHERE SystemModstamp >= since]
    /// ORDER BY SystemModstamp, Id`.
    pub(crate) fn pull_query(
        &self,
        object: ObjectKind,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> String {
        let fields = normalize::select_fields(object, &self.settings).join(", ");
        let filter = since
            .map(|at| format!(" WHERE SystemModstamp >= {}", soql::datetime(at)))
            .unwrap_or_default();
        format!(
            "SELECT {fields} FROM {}{filter} ORDER BY SystemModstamp, Id",
            sobject(object)
        )
    }

    /// Adds the stage history (`OpportunityHistory`) and the tasks of the
    /// page's deals.
    async fn complete_deals(&self, deals: &mut [CrmRecord]) -> Result<(), ConnectorError> {
        let ids: Vec<String> = deals.iter().map(|d| d.id.as_str().to_owned()).collect();
        let mut history = BTreeMap::new();
        let mut tasks = BTreeMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = soql::in_list(chunk.iter().map(String::as_str));
            let rows = self
                .query_to_end(&format!(
                    "SELECT OpportunityId, StageName, CreatedDate FROM OpportunityHistory \
                     WHERE OpportunityId IN {list} ORDER BY CreatedDate"
                ))
                .await?;
            history.extend(normalize::stage_history(&rows));
            let rows = self
                .query_to_end(&format!(
                    "SELECT Id, Subject, Status, IsClosed, OwnerId, ActivityDate, WhatId \
                     FROM Task WHERE WhatId IN {list}"
                ))
                .await?;
            tasks.extend(normalize::tasks(&rows));
        }
        for deal in deals {
            if let Some(changes) = history.remove(deal.id.as_str()) {
                deal.stage_history = changes;
                deal.stage_entered_at = normalize::stage_entered_at(deal);
            }
            if let Some(found) = tasks.remove(deal.id.as_str()) {
                deal.tasks = found;
            }
        }
        Ok(())
    }

    pub(crate) async fn deletions_page(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> Result<Page<RecordId>, ConnectorError> {
        let page = match cursor.as_deref() {
            Some(GET_DELETED) => return self.delete_log(object).await,
            Some(link) => self.next_page(link).await?,
            None => {
                let soql = format!("SELECT Id FROM {} WHERE IsDeleted = true", sobject(object));
                self.query(&soql, true).await?
            }
        };
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for (position, row) in page.records.iter().enumerate() {
            match crate::wire::text(row, "Id") {
                Some(id) if !id.is_empty() => items.push(RecordId::new(id)),
                _ => skipped.push(Skipped {
                    id: format!("row {position}"),
                    reason: "no Id".into(),
                }),
            }
        }
        Ok(Page {
            items,
            skipped,
            next: next_cursor(&page).or_else(|| Some(GET_DELETED.to_owned())),
        })
    }

    /// getDeleted over its whole window: one call, the last deletions page.
    async fn delete_log(&self, object: ObjectKind) -> Result<Page<RecordId>, ConnectorError> {
        // Whole seconds go on the wire: round up, or a deletion in this
        // very second would fall after the window's end.
        let end = chrono::Utc::now() + chrono::Duration::seconds(1);
        let start = end - DELETED_LOOKBACK;
        let name = sobject(object);
        let log: DeletedPage = self
            .read(
                DELETED_ROUTE,
                self.data_path(&format!("/sobjects/{name}/deleted/")),
                vec![
                    ("start".into(), soql::datetime(start)),
                    ("end".into(), soql::datetime(end)),
                ],
            )
            .await?;
        let earliest = log
            .earliest_date_available
            .as_deref()
            .and_then(soql::parse_datetime);
        if earliest.is_some_and(|earliest| earliest > start) {
            tracing::info!(connector = %self.name_str(), object = %object,
                "the delete log was purged early; the full pull marks what it no longer sees");
        }
        Ok(Page {
            items: log
                .deleted_records
                .into_iter()
                .map(|row| RecordId::new(row.id))
                .collect(),
            skipped: Vec::new(),
            next: None,
        })
    }
}

/// The next page's cursor: Salesforce's `nextRecordsUrl` while not done.
fn next_cursor(page: &QueryPage) -> Option<String> {
    if page.done {
        None
    } else {
        page.next_records_url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(done: bool, next: Option<&str>) -> QueryPage {
        QueryPage {
            done,
            next_records_url: next.map(str::to_owned),
            records: Vec::new(),
        }
    }

    #[test]
    fn the_cursor_is_the_next_records_url_until_done() {
        let link = "/services/data/v62.0/query/01gD0000002HU6KIAW-2000";
        assert_eq!(next_cursor(&page(false, Some(link))).as_deref(), Some(link));
        assert_eq!(next_cursor(&page(true, Some(link))), None);
        assert_eq!(next_cursor(&page(true, None)), None);
    }
}
