//! Reading: pages of records, owners, and (empty) deletions.
//!
//! A table in `change_tracking` is read from the start with `Prefer:
//! odata.track-changes` (no `$filter`, `$orderby` or `$top`: Dataverse
//! refuses them there); the last page's `@odata.deltaLink` becomes
//! [`Page::delta`], and the next pull starts from it and gets what changed
//! since, deletions in line (`$deletedEntity` rows, into
//! [`Page::removed`]). A delta link refused with one of the
//! `expired_delta_codes` is [`ConnectorError::ChangesExpired`]. Other
//! tables, and any pull from a watermark, are read with `$filter=modifiedon
//! ge <watermark - overlap>` ordered by `modifiedon, <key>`.
//!
//! A page's cursor is the `@odata.nextLink`, followed unchanged with the
//! same `Prefer`: `track <link>` or `read <link>`.
//!
//! A page of deals gets its tasks by one `$batch` of GETs, each asking
//! `tasks` regarding `task_lookup_ids` of the page's deals. A full read of
//! N deals thus costs `2 x ceil(N / page_size)` calls (at the default
//! 5,000 per page), plus the token; the other tables `ceil(N / page_size)`.

use crate::connector::{DELTA_ROUTE, DynamicsConnector, NEXT_ROUTE, READ_ROUTE};
use crate::dialect::has_code;
use crate::normalize::{self, TASK_COLUMNS, table};
use crate::odata::{self, query_string};
use crate::wire::{Collection, deleted_id, text};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::page::Skipped;
use journeyd_connector::{ConnectorError, CrmRecord, ObjectKind, Owner, Page, RecordId};
use std::collections::BTreeMap;

/// How a page was asked for, and so how its next page must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A change-tracking read (a full one, or from a delta link).
    Track,
    /// A plain read.
    Read,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Mode::Track => "track",
            Mode::Read => "read",
        }
    }
}

/// `track <link>` / `read <link>`.
fn cursor(mode: Mode, link: &str) -> String {
    format!("{} {link}", mode.tag())
}

fn parse_cursor(cursor: &str) -> Option<(Mode, &str)> {
    let (tag, link) = cursor.split_once(' ')?;
    let mode = match tag {
        "track" => Mode::Track,
        "read" => Mode::Read,
        _ => return None,
    };
    Some((mode, link))
}

/// The owners cursor: the users' next link.
const USERS: &str = "systemusers";

impl DynamicsConnector {
    pub(crate) async fn pull_page(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let set = table(object).set;
        let tracked = self.settings.change_tracking.contains(&object);
        let (mode, route, url) = match from {
            PullFrom::Start if tracked => {
                (Mode::Track, READ_ROUTE, self.first_url(object, None, true))
            }
            PullFrom::Start => (Mode::Read, READ_ROUTE, self.first_url(object, None, false)),
            PullFrom::Since(mark) => {
                let overlap = chrono::Duration::from_std(self.settings.overlap)
                    .unwrap_or(chrono::Duration::zero());
                let since = mark
                    .modified_at
                    .checked_sub_signed(overlap)
                    .unwrap_or(mark.modified_at);
                (
                    Mode::Read,
                    READ_ROUTE,
                    self.first_url(object, Some(since), false),
                )
            }
            PullFrom::Cursor(cursor) => {
                let (mode, link) = parse_cursor(&cursor)
                    .filter(|(_, link)| self.is_link_to(link, set))
                    .ok_or_else(|| {
                        self.malformed(NEXT_ROUTE, format!("a cursor is not a next link of {set}"))
                    })?;
                (mode, NEXT_ROUTE, link.to_owned())
            }
            PullFrom::Delta(link) => {
                if !self.is_link_to(&link, set) {
                    // Not a link of this table under this environment's API
                    // (another connector's, or a moved environment): only a
                    // full pull can bring the object back in step.
                    return Err(ConnectorError::ChangesExpired {
                        connector: self.name_str(),
                        object,
                        reason: format!("the stored delta link is not one of {set} here"),
                    });
                }
                (Mode::Track, DELTA_ROUTE, link)
            }
        };
        let page = self
            .collection(route, url, self.prefer(mode == Mode::Track))
            .await
            .map_err(|err| self.expired(object, err))
            .map_err(|err| match err {
                // Dataverse publishes neither how long a paging cookie
                // stays good nor how it refuses a stale one (facts 2.3 say
                // only: follow the link unchanged): a 400 to a next link is
                // taken as a refused cursor, which the caller restarts from
                // its watermark.
                ConnectorError::Api {
                    status: 400,
                    message,
                    ..
                } if route == NEXT_ROUTE => ConnectorError::CursorRefused {
                    connector: self.name_str(),
                    object: object.to_string(),
                    reason: message,
                },
                other => other,
            })?;
        self.read_page(object, mode, page).await
    }

    /// A refused delta link as [`ConnectorError::ChangesExpired`].
    fn expired(&self, object: ObjectKind, err: ConnectorError) -> ConnectorError {
        match err {
            ConnectorError::Api { message, .. }
                if has_code(&message, &self.settings.expired_delta_codes) =>
            {
                ConnectorError::ChangesExpired {
                    connector: self.name_str(),
                    object,
                    reason: message,
                }
            }
            other => other,
        }
    }

    /// `{set}?$select=…` (tracking: nothing else), or with `$orderby` and,
    /// from a watermark, `$filter`.
    fn first_url(
        &self,
        object: ObjectKind,
        since: Option<chrono::DateTime<chrono::Utc>>,
        tracking: bool,
    ) -> String {
        let table = table(object);
        let mut options = vec![(
            "$select",
            normalize::select_columns(object, &self.settings).join(","),
        )];
        if !tracking {
            if let Some(since) = since {
                options.push((
                    "$filter",
                    format!("modifiedon ge {}", odata::datetime(since)),
                ));
            }
            options.push(("$orderby", format!("modifiedon asc,{} asc", table.key)));
        }
        self.url(&format!("{}?{}", table.set, query_string(&options)))
    }

    /// A page's rows as records (deals with their tasks), deleted ids, and
    /// what could not be read.
    async fn read_page(
        &self,
        object: ObjectKind,
        mode: Mode,
        page: Collection,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        let mut removed = Vec::new();
        for (position, row) in page.value.iter().enumerate() {
            let Some(row) = row.as_object() else {
                skipped.push(Skipped {
                    id: format!("row {position}"),
                    reason: "not an object".into(),
                });
                continue;
            };
            if let Some(id) = deleted_id(row) {
                removed.push(RecordId::new(id.to_ascii_lowercase()));
                continue;
            }
            if normalize::owned_by_team(row)
                && let Some(owner) = text(row, "_ownerid_value")
            {
                self.saw_team(&owner.to_ascii_lowercase());
            }
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
            self.attach_tasks(&mut items).await?;
        }
        let (next, delta) = match page.next_link {
            Some(link) => (Some(cursor(mode, &link)), None),
            None => (None, page.delta_link),
        };
        Ok(Page {
            items,
            skipped,
            next,
            removed,
            delta,
            // No `$count` is asked for: paging is bounded by its cursors.
            total: None,
        })
    }

    /// Adds to each deal its tasks: one `$batch` of GETs of the tasks
    /// regarding `task_lookup_ids` deals each.
    async fn attach_tasks(&self, deals: &mut [CrmRecord]) -> Result<(), ConnectorError> {
        let ids: Vec<String> = deals
            .iter()
            .filter_map(|deal| odata::guid(deal.id.as_str()))
            .collect();
        let urls = ids
            .chunks(self.settings.task_lookup_ids.get())
            .map(|chunk| {
                let filter = chunk
                    .iter()
                    .map(|id| format!("_regardingobjectid_value eq {id}"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                self.url(&format!(
                    "tasks?{}",
                    query_string(&[("$select", TASK_COLUMNS.into()), ("$filter", filter)])
                ))
            })
            .collect();
        let rows = self.get_many(READ_ROUTE, urls).await?;
        let mut by_deal: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for row in &rows {
            if let Some((regarding, task)) = normalize::task(row) {
                by_deal.entry(regarding).or_default().push(task);
            }
        }
        for deal in deals {
            if let Some(tasks) = by_deal.remove(deal.id.as_str()) {
                deal.tasks = tasks;
            }
        }
        Ok(())
    }

    /// A page of users (each with the names of its teams); the last one
    /// also holds the teams themselves, which can own records too.
    pub(crate) async fn owners_page(
        &self,
        cursor: Option<String>,
    ) -> Result<Page<Owner>, ConnectorError> {
        let teams = self.teams().await?;
        let (route, url) = match cursor {
            None => (
                READ_ROUTE,
                self.url(&format!(
                    "{USERS}?{}",
                    query_string(&[(
                        "$select",
                        "systemuserid,fullname,internalemailaddress,isdisabled".into()
                    )])
                )),
            ),
            Some(link) if self.is_link_to(&link, USERS) => (NEXT_ROUTE, link),
            Some(_) => {
                return Err(
                    self.malformed(NEXT_ROUTE, "a cursor is not a next link of systemusers")
                );
            }
        };
        let page = self.collection(route, url, self.prefer(false)).await?;
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for (position, row) in page.value.iter().enumerate() {
            let read = match row.as_object() {
                Some(row) => normalize::user(row, position, &teams),
                None => Err(Skipped {
                    id: format!("row {position}"),
                    reason: "not an object".into(),
                }),
            };
            match read {
                Ok(owner) => items.push(owner),
                Err(skip) => skipped.push(skip),
            }
        }
        if page.next_link.is_none() {
            items.extend(teams.iter().map(normalize::team_owner));
        }
        Ok(Page {
            items,
            skipped,
            next: page.next_link,
            ..Page::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_carries_the_next_link_and_whether_the_read_tracks_changes() {
        let link = "https://o/api/data/v9.2/accounts?$select=name&$skiptoken=%3Ccookie%20pagenumber%3D%222%22%20%2F%3E";
        for mode in [Mode::Track, Mode::Read] {
            assert_eq!(parse_cursor(&cursor(mode, link)), Some((mode, link)));
        }
        assert_eq!(parse_cursor(link), None);
        assert_eq!(parse_cursor("later https://o"), None);
    }
}
