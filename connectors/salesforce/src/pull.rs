//! Reading: pages of records (SOQL ordered by `SystemModstamp, Id`; deals
//! carry their stage history, tasks and contact roles nested by
//! parent-to-child sub-queries), owners, and deleted ids. A page's cursor is Salesforce's
//! own `nextRecordsUrl`.
//!
//! Child rows count toward a page's batch, and a parent's child result may
//! itself be cut short (`done: false`, its own `nextRecordsUrl`). Those are
//! followed before the page is returned: asking for the parents' next page
//! retires the cursors of the children on this one.
//!
//! Deletions come from `queryAll … WHERE IsDeleted = true` (the recycle
//! bin), then from getDeleted over the last 15 days, which also names
//! records emptied from the bin. Both forget: a record deleted longer ago,
//! or whose log entry Salesforce purged early, is reported by neither. The
//! daemon's full pull, which marks deleted whatever it no longer sees, is
//! what catches those.

use crate::connector::{DELETED_ROUTE, MAX_SIDE_PAGES, NEXT_ROUTE, SalesforceConnector, sobject};
use crate::normalize;
use crate::soql;
use crate::wire::{DeletedPage, QueryPage};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::page::Skipped;
use journeyd_connector::{Connector, ConnectorError, CrmRecord, ObjectKind, Owner, Page, RecordId};
use serde_json::{Map, Value};

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
            Some(link) => self
                .next_page(&link)
                .await
                .map_err(|err| self.refused("owner", err))?,
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
            ..Page::default()
        })
    }

    pub(crate) async fn pull_page(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let mut page = match from {
            PullFrom::Cursor(link) => self
                .next_page(&link)
                .await
                .map_err(|err| self.refused(object.as_str(), err))?,
            PullFrom::Delta(_) => {
                return Err(ConnectorError::not_own_delta(Connector::name(self), object));
            }
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
        for row in &mut page.records {
            for (relationship, _) in normalize::sub_queries(object) {
                self.complete_children(object, row, relationship)
                    .await
                    .map_err(|err| self.refused(object.as_str(), err))?;
            }
        }
        // The token that read the page names the instance its records are on.
        let instance = self.instance().await?;
        let mut items = Vec::new();
        let mut skipped: Vec<Skipped> = Vec::new();
        for (position, row) in page.records.iter().enumerate() {
            match normalize::record(object, row, position, &self.settings, instance.as_ref()) {
                Ok(record) => items.push(record),
                Err(skip) => {
                    tracing::warn!(connector = %self.name_str(), object = %object,
                        record = %skip.id, reason = %skip.reason, "record skipped");
                    skipped.push(skip);
                }
            }
        }
        Ok(Page {
            items,
            skipped,
            next: next_cursor(&page),
            total: page.total_size,
            ..Page::default()
        })
    }

    /// `SELECT <fields>[, (<sub-query>)…] FROM <Object> [WHERE
    /// SystemModstamp >= since] ORDER BY SystemModstamp, Id`.
    pub(crate) fn pull_query(
        &self,
        object: ObjectKind,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> String {
        let mut fields = normalize::select_fields(object, &self.settings).join(", ");
        for (_, sub_query) in normalize::sub_queries(object) {
            fields.push_str(&format!(", ({sub_query})"));
        }
        let filter = since
            .map(|at| format!(" WHERE SystemModstamp >= {}", soql::datetime(at)))
            .unwrap_or_default();
        format!(
            "SELECT {fields} FROM {}{filter} ORDER BY SystemModstamp, Id",
            sobject(object)
        )
    }

    /// Follows the child result under `relationship` in `row`, when cut
    /// short, through its `nextRecordsUrl` to its end, appending every
    /// child row; the result then reads `done: true`. A result cut short
    /// with no link is left for normalize to skip its record by name.
    async fn complete_children(
        &self,
        object: ObjectKind,
        row: &mut Map<String, Value>,
        relationship: &str,
    ) -> Result<(), ConnectorError> {
        let id = crate::wire::text(row, "Id").unwrap_or("?").to_owned();
        let Some(Value::Object(result)) = row.get_mut(relationship) else {
            return Ok(());
        };
        if result.get("done") != Some(&Value::Bool(false)) {
            return Ok(());
        }
        let Some(mut link) = result
            .get("nextRecordsUrl")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Ok(());
        };
        let malformed = |reason: String| ConnectorError::Malformed {
            connector: self.name_str(),
            route: NEXT_ROUTE.into(),
            reason: format!("{} {id}: {relationship}: {reason}", sobject(object)),
        };
        let mut rows = Vec::new();
        // Bounded: a server that never says done cannot hold the run forever.
        for _ in 0..MAX_SIDE_PAGES {
            let page = self.next_page(&link).await.map_err(|err| match err {
                ConnectorError::Malformed { reason, .. } => malformed(reason),
                other => other,
            })?;
            rows.extend(page.records.into_iter().map(Value::Object));
            match (page.done, page.next_records_url) {
                (true, _) => {
                    match result.get_mut("records") {
                        Some(Value::Array(records)) => records.append(&mut rows),
                        _ => {
                            result.insert("records".into(), Value::Array(rows));
                        }
                    }
                    result.insert("done".into(), Value::Bool(true));
                    result.remove("nextRecordsUrl");
                    return Ok(());
                }
                (false, Some(next)) => link = next,
                (false, None) => {
                    return Err(malformed(
                        "a page that is not done names no next page".into(),
                    ));
                }
            }
        }
        Err(malformed(format!(
            "the child rows did not end within {MAX_SIDE_PAGES} pages"
        )))
    }

    pub(crate) async fn deletions_page(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> Result<Page<RecordId>, ConnectorError> {
        let page = match cursor.as_deref() {
            Some(GET_DELETED) => return self.delete_log(object).await,
            Some(link) => self
                .next_page(link)
                .await
                .map_err(|err| self.refused(object.as_str(), err))?,
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
            ..Page::default()
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
            ..Page::default()
        })
    }
}

impl SalesforceConnector {
    /// A query locator Salesforce no longer holds (idle past about 15
    /// minutes, or evicted by newer cursors: facts 6.11) answers 400
    /// `INVALID_QUERY_LOCATOR`: a refused cursor, which the caller
    /// restarts from its watermark.
    fn refused(&self, object: &str, err: ConnectorError) -> ConnectorError {
        match err {
            ConnectorError::Api {
                status: 400,
                message,
                ..
            } if message.starts_with("INVALID_QUERY_LOCATOR") => ConnectorError::CursorRefused {
                connector: self.name_str(),
                object: object.to_owned(),
                reason: message,
            },
            other => other,
        }
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
            total_size: None,
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
