//! Reading HubSpot: owners, deal pipelines, records by list (a full pull) or
//! by search (an incremental pull, across the 10,000-result cap; see
//! [`window`]), their associations and tasks, and archived record ids.
//!
//! Every method reads one page and returns it with an opaque cursor: a small
//! JSON document the daemon stores and hands back, so a pull resumes where
//! it stopped even after the daemon restarts.

mod window;

use crate::connector::{HubspotConnector, object_type};
use crate::normalize::{self, DATE_ENTERED, Links, Shape};
use crate::settings::TaskReading;
use crate::wire::{
    AssociationReadInput, AssociationRow, BatchResponse, Filter, FilterGroup, Inputs, ListPage,
    ObjectId, ObjectRow, OwnerRow, Pipelines, SearchRequest, Sort,
};
use journeyd_connector::connector::{Connector, PullFrom};
use journeyd_connector::http::Bucket;
use journeyd_connector::{
    ConnectorError, CrmRecord, ObjectKind, Owner, OwnerId, Page, RecordId, Skipped, TaskRef,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use window::{Field, Hit, Limits, SearchCursor};

pub(crate) const OWNERS: &str = "/crm/v3/owners";
pub(crate) const PIPELINES: &str = "/crm/v3/pipelines/deals";
pub(crate) const LIST: &str = "/crm/v3/objects/{object}";
pub(crate) const SEARCH: &str = "/crm/v3/objects/{object}/search";
pub(crate) const BATCH_READ: &str = "/crm/v3/objects/{object}/batch/read";
pub(crate) const ASSOCIATIONS: &str = "/crm/v4/associations/{from}/{to}/batch/read";

/// Rounds of per-record association paging one batch may take, so a
/// server that never stops paging cannot hold a pull forever.
const ASSOCIATION_ROUNDS: usize = 50;

/// What a record's task is read with; the body tells journeyd's own tasks
/// by their marker line.
const TASK_PROPERTIES: [&str; 5] = [
    "hs_task_subject",
    "hs_task_status",
    "hubspot_owner_id",
    "hs_timestamp",
    "hs_task_body",
];

/// Where a record pull stands, as stored by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum PullCursor {
    /// A full pull through the list endpoint.
    List { after: String },
    /// An incremental pull through search.
    Search(SearchCursor),
}

/// Where an owners pull stands: active owners first, then archived ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OwnersCursor {
    archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// The property incremental search filters and sorts on.
fn modified_property(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Contact => "lastmodifieddate",
        _ => "hs_lastmodifieddate",
    }
}

/// Associations read with each object kind.
fn association_types(object: ObjectKind, read_tasks: bool) -> Vec<&'static str> {
    match object {
        ObjectKind::Deal if read_tasks => vec!["companies", "contacts", "tasks"],
        ObjectKind::Deal => vec!["companies", "contacts"],
        ObjectKind::Contact => vec!["companies"],
        ObjectKind::Account | ObjectKind::Lead => Vec::new(),
    }
}

fn malformed(
    connector: &HubspotConnector,
    route: &str,
    reason: impl Into<String>,
) -> ConnectorError {
    ConnectorError::Malformed {
        connector: connector.name().to_string(),
        route: route.to_owned(),
        reason: reason.into(),
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    connector: &HubspotConnector,
    route: &str,
    cursor: &str,
) -> Result<T, ConnectorError> {
    serde_json::from_str(cursor)
        .map_err(|err| malformed(connector, route, format!("unreadable cursor: {err}")))
}

fn encode(value: &impl Serialize) -> String {
    // Serializing these plain structs cannot fail: string keys only.
    serde_json::to_string(value).unwrap_or_default()
}

/// Names a raw row that cannot be read: its id, else its place in the page.
fn skipped(raw: &Value, position: usize, reason: String) -> Skipped {
    Skipped {
        id: ObjectRow::name_hint(raw).unwrap_or_else(|| format!("#{position}")),
        reason,
    }
}

impl HubspotConnector {
    pub(crate) async fn owners_page(
        &self,
        cursor: Option<String>,
    ) -> Result<Page<Owner>, ConnectorError> {
        let state = match cursor {
            Some(cursor) => decode(self, OWNERS, &cursor)?,
            None => OwnersCursor {
                archived: false,
                after: None,
            },
        };
        let mut query = vec![
            ("limit".to_owned(), self.settings.list_limit.to_string()),
            ("archived".to_owned(), state.archived.to_string()),
        ];
        if let Some(after) = &state.after {
            query.push(("after".to_owned(), after.clone()));
        }
        let page: ListPage = self.get(OWNERS, OWNERS.to_owned(), query).await?;
        let mut items = Vec::new();
        let mut skipped_rows = Vec::new();
        for (position, raw) in page.results.iter().enumerate() {
            match serde_json::from_value::<OwnerRow>(raw.clone()) {
                Ok(row) => items.push(owner(row, state.archived)),
                Err(err) => {
                    skipped_rows.push(skipped(raw, position, format!("unreadable owner: {err}")))
                }
            }
        }
        let next = match (page.next_after(), state.archived) {
            (Some(after), archived) => Some(OwnersCursor {
                archived,
                after: Some(after),
            }),
            (None, false) => Some(OwnersCursor {
                archived: true,
                after: None,
            }),
            (None, true) => None,
        };
        Ok(Page {
            items,
            skipped: skipped_rows,
            next: next.as_ref().map(encode),
            ..Page::default()
        })
    }

    /// Every deal stage id, pipelines then stages in display order; read
    /// once per connector.
    pub(crate) async fn stage_ids(&self) -> Result<Arc<Vec<String>>, ConnectorError> {
        self.pipelines
            .get_or_try_init(|| async {
                let mut body: Pipelines = self
                    .get(PIPELINES, PIPELINES.to_owned(), Vec::new())
                    .await?;
                body.results.sort_by_key(|p| p.display_order);
                let mut ids = Vec::new();
                for mut pipeline in body.results {
                    pipeline.stages.sort_by_key(|s| s.display_order);
                    for stage in pipeline.stages {
                        if !ids.contains(&stage.id) {
                            ids.push(stage.id);
                        }
                    }
                }
                Ok(Arc::new(ids))
            })
            .await
            .cloned()
    }

    /// The properties requested for `object`.
    async fn properties(&self, object: ObjectKind) -> Result<Vec<String>, ConnectorError> {
        let base: &[&str] = match object {
            ObjectKind::Deal => &[
                "dealname",
                "dealstage",
                "pipeline",
                "amount",
                "deal_currency_code",
                "closedate",
                "createdate",
                "hs_lastmodifieddate",
                "hubspot_owner_id",
                "hs_object_id",
            ],
            ObjectKind::Contact => &[
                "firstname",
                "lastname",
                "email",
                "lifecyclestage",
                "lastmodifieddate",
                "createdate",
                "hubspot_owner_id",
                "hs_object_id",
            ],
            _ => &[
                "name",
                "domain",
                "lifecyclestage",
                "hs_lastmodifieddate",
                "createdate",
                "hubspot_owner_id",
                "hs_object_id",
            ],
        };
        let mut names: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        if object == ObjectKind::Deal {
            for stage in self.stage_ids().await?.iter() {
                names.push(format!("{DATE_ENTERED}{stage}"));
            }
        }
        names.extend(self.settings.properties.iter().cloned());
        names.extend(self.settings.lifecycle_property.iter().cloned());
        let mut seen = BTreeSet::new();
        names.retain(|name| seen.insert(name.clone()));
        Ok(names)
    }

    pub(crate) async fn pull_page(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let kind = object_type(self, object)?;
        match from {
            PullFrom::Start => self.list_page(object, kind, None).await,
            PullFrom::Delta(_) => Err(ConnectorError::not_own_delta(self.name(), object)),
            PullFrom::Since(watermark) => {
                let overlap = chrono::Duration::from_std(self.settings.overlap)
                    .unwrap_or(chrono::Duration::zero());
                let from = (watermark.modified_at - overlap).timestamp_millis();
                self.search_page(object, kind, SearchCursor::since(from))
                    .await
            }
            PullFrom::Cursor(cursor) => match decode(self, LIST, &cursor)? {
                PullCursor::List { after } => self.list_page(object, kind, Some(after)).await,
                PullCursor::Search(state) => self.search_page(object, kind, state).await,
            },
        }
    }

    async fn list_page(
        &self,
        object: ObjectKind,
        kind: &'static str,
        after: Option<String>,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let properties = self.properties(object).await?;
        let associations =
            association_types(object, self.settings.read_tasks != TaskReading::Never);
        let mut query = vec![
            ("limit".to_owned(), self.settings.list_limit.to_string()),
            ("properties".to_owned(), properties.join(",")),
            ("archived".to_owned(), "false".to_owned()),
        ];
        if !associations.is_empty() {
            query.push(("associations".to_owned(), associations.join(",")));
        }
        let resumed = after.is_some();
        if let Some(after) = after {
            query.push(("after".to_owned(), after));
        }
        let page: ListPage = self
            .get(LIST, format!("/crm/v3/objects/{kind}"), query)
            .await
            .map_err(|err| match err {
                // HubSpot publishes no expiry of `after`, nor how it would
                // refuse one (facts 3.3 say nothing): a 400 to a page asked
                // by it is taken as a refused cursor, which the caller
                // restarts from the start.
                ConnectorError::Api {
                    status: 400,
                    message,
                    ..
                } if resumed => ConnectorError::CursorRefused {
                    connector: self.name().to_string(),
                    object: object.to_string(),
                    reason: message,
                },
                other => other,
            })?;
        let next = page
            .next_after()
            .map(|after| encode(&PullCursor::List { after }));
        let rows: Vec<(usize, &Value)> = page.results.iter().enumerate().collect();
        let (items, skipped) = self.records(object, kind, &rows, true).await?;
        Ok(Page {
            items,
            skipped,
            next,
            ..Page::default()
        })
    }

    /// Records changed since the cursor's window, read by search pages
    /// (search results carry no associations) until they fill one v4
    /// association read (`association_batch_limit`, 1,000), so that a
    /// thousand changed deals cost one association call per type rather
    /// than one per search page of 200.
    async fn search_page(
        &self,
        object: ObjectKind,
        kind: &'static str,
        cursor: SearchCursor,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let wanted = self.settings.association_batch_limit.get();
        let mut rows: Vec<Value> = Vec::new();
        let mut cursor = Some(cursor);
        while let Some(at) = cursor.take() {
            // The last page asks for no more than the read has room for.
            let room = u32::try_from(wanted - rows.len()).unwrap_or(u32::MAX);
            let (found, next) = self
                .search_once(object, kind, at, self.search_limit().min(room))
                .await?;
            rows.extend(found);
            cursor = next;
            if rows.len() >= wanted {
                break;
            }
        }
        let rows: Vec<(usize, &Value)> = rows.iter().enumerate().collect();
        let (items, skipped) = self.records(object, kind, &rows, false).await?;
        Ok(Page {
            items,
            skipped,
            next: cursor.map(|state| encode(&PullCursor::Search(state))),
            ..Page::default()
        })
    }

    /// Rows per search page: the configured page, within the result cap.
    fn search_limit(&self) -> u32 {
        self.settings
            .search_limit
            .get()
            .min(self.settings.search_cap.get())
    }

    /// One search page of up to `limit` rows from `cursor`: the rows not
    /// read before, and where the next page starts (`None`: the pull is
    /// complete).
    async fn search_once(
        &self,
        object: ObjectKind,
        kind: &'static str,
        cursor: SearchCursor,
        limit: u32,
    ) -> Result<(Vec<Value>, Option<SearchCursor>), ConnectorError> {
        // Every page starts a new window at the newest modification time
        // seen (keyset paging) instead of paging by offset: a record
        // modified mid-pull moves to the end of the order, and with offsets
        // the record behind it would shift onto a page already read and be
        // missed. The cost is re-reading the records at that one timestamp.
        let limits = Limits { limit, cap: limit };
        let modified = modified_property(object);
        let name = |field: Field| match field {
            Field::Modified => modified.to_owned(),
            Field::ObjectId => "hs_object_id".to_owned(),
        };
        let query = cursor.query();
        let request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: query
                    .filters
                    .iter()
                    .map(|(field, operator, value)| Filter {
                        property_name: name(*field),
                        operator,
                        value: value.clone(),
                    })
                    .collect(),
            }],
            sorts: vec![Sort {
                property_name: name(query.sort),
                direction: "ASCENDING",
            }],
            properties: self.properties(object).await?,
            limit,
            after: query.after,
        };
        let page: ListPage = self
            .post(
                SEARCH,
                format!("/crm/v3/objects/{kind}/search"),
                &request,
                Bucket::Search,
            )
            .await?;
        let hits: Vec<Hit> = page.results.iter().map(|raw| hit(raw, modified)).collect();
        let step = cursor
            .advance(&hits, page.next_after(), limits)
            .map_err(|reason| malformed(self, SEARCH, reason))?;
        let rows = page
            .results
            .into_iter()
            .zip(&step.emit)
            .filter(|(_, emit)| **emit)
            .map(|(row, _)| row)
            .collect();
        Ok((rows, step.next))
    }

    /// Normalizes `rows` and fills in their associations and tasks, from the
    /// rows themselves (`embedded`, list reads) or from the v4 associations
    /// API (search results carry none).
    async fn records(
        &self,
        object: ObjectKind,
        kind: &'static str,
        rows: &[(usize, &Value)],
        embedded: bool,
    ) -> Result<(Vec<CrmRecord>, Vec<Skipped>), ConnectorError> {
        let stage_order = if object == ObjectKind::Deal {
            self.stage_ids().await?
        } else {
            Arc::new(Vec::new())
        };
        let app_url = self.settings.app_url.as_str().trim_end_matches('/');
        let shape = Shape {
            object,
            fields: &self.settings.properties,
            lifecycle_property: self.settings.lifecycle_property.as_deref(),
            link: self
                .settings
                .portal_id
                .as_deref()
                .map(|portal| (app_url, portal)),
            stage_order: &stage_order,
        };
        let mut records = Vec::new();
        let mut links = Vec::new();
        let mut skipped_rows = Vec::new();
        // (association type, record id) whose embedded list was cut short.
        let mut to_read: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let types = association_types(object, self.settings.read_tasks != TaskReading::Never);
        for &(position, raw) in rows {
            let row = match serde_json::from_value::<ObjectRow>(raw.clone()) {
                Ok(row) => row,
                Err(err) => {
                    skipped_rows.push(skipped(raw, position, format!("unreadable object: {err}")));
                    continue;
                }
            };
            let record = match normalize::normalize(&row, &shape) {
                Ok(record) => record,
                Err(reason) => {
                    skipped_rows.push(skipped(raw, position, reason));
                    continue;
                }
            };
            let (found, truncated) = if embedded {
                normalize::embedded_links(&row)
            } else {
                (
                    Links::default(),
                    types.iter().map(|t| (*t).to_owned()).collect(),
                )
            };
            for to in truncated {
                if let Some(&to) = types.iter().find(|t| **t == to) {
                    to_read
                        .entry(to)
                        .or_default()
                        .push(record.id.as_str().to_owned());
                }
            }
            records.push(record);
            links.push(found);
        }
        for (to, ids) in to_read {
            let read = self.read_links(kind, to, &ids).await?;
            for (record, found) in records.iter().zip(links.iter_mut()) {
                if let Some(ids) = read.get(record.id.as_str()) {
                    for id in ids {
                        found.push(to, id.clone());
                    }
                }
            }
        }
        let wanted = &self.settings.read_tasks;
        let task_ids: BTreeSet<&String> = records
            .iter()
            .zip(&links)
            .filter(|(record, _)| wanted.wants(record.stage.as_deref()))
            .flat_map(|(_, l)| &l.tasks)
            .collect();
        let tasks = if task_ids.is_empty() {
            BTreeMap::new()
        } else {
            self.read_tasks(task_ids.into_iter().cloned().collect())
                .await?
        };
        for (record, found) in records.iter_mut().zip(&links) {
            record.associations = found.associations();
            record.tasks = found
                .tasks
                .iter()
                .filter_map(|id| tasks.get(id).cloned())
                .collect();
        }
        Ok((records, skipped_rows))
    }

    /// `from` record id -> associated `to` ids, through
    /// `POST /crm/v4/associations/{from}/{to}/batch/read` (not in the fact
    /// sheet; HubSpot's reference: inputs `[{id, after?}]`, results
    /// `[{from: {id}, to: [{toObjectId, associationTypes}], paging?}]`, 207
    /// with `errors` for ids that have none), up to
    /// `association_batch_limit` ids per call (1,000 since 2025-02, fact 6.14).
    /// Each record's own paging is followed by sending its id again with
    /// `after`.
    pub(crate) async fn read_links(
        &self,
        from: &'static str,
        to: &'static str,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut pending: Vec<AssociationReadInput> = ids
            .iter()
            .map(|id| AssociationReadInput {
                id: id.clone(),
                after: None,
            })
            .collect();
        let path = format!("/crm/v4/associations/{from}/{to}/batch/read");
        for _ in 0..ASSOCIATION_ROUNDS {
            if pending.is_empty() {
                return Ok(found);
            }
            let mut more = Vec::new();
            for chunk in pending.chunks(self.settings.association_batch_limit.get()) {
                let body = Inputs {
                    inputs: chunk.to_vec(),
                };
                let response: BatchResponse = self
                    .post(ASSOCIATIONS, path.clone(), &body, Bucket::General)
                    .await?;
                for raw in response.results {
                    let row: AssociationRow = serde_json::from_value(raw).map_err(|err| {
                        malformed(
                            self,
                            ASSOCIATIONS,
                            format!("unreadable association row: {err}"),
                        )
                    })?;
                    let ids = found.entry(row.from.id.clone()).or_default();
                    for target in row.to {
                        if !ids.contains(&target.to_object_id) {
                            ids.push(target.to_object_id);
                        }
                    }
                    if let Some(after) = row.paging.and_then(|p| p.next).map(|n| n.after) {
                        more.push(AssociationReadInput {
                            id: row.from.id,
                            after: Some(after),
                        });
                    }
                }
            }
            pending = more;
        }
        if pending.is_empty() {
            Ok(found)
        } else {
            Err(malformed(
                self,
                ASSOCIATIONS,
                format!("association paging did not end within {ASSOCIATION_ROUNDS} rounds"),
            ))
        }
    }

    /// Tasks by id, in batches. A task row that cannot be read is left out
    /// (and logged): it costs the record one task, not the record itself.
    async fn read_tasks(
        &self,
        ids: Vec<String>,
    ) -> Result<BTreeMap<String, TaskRef>, ConnectorError> {
        let mut tasks = BTreeMap::new();
        for chunk in ids.chunks(self.settings.batch_limit.get()) {
            let body = serde_json::json!({
                "inputs": chunk.iter().map(|id| ObjectId { id: id.clone() }).collect::<Vec<_>>(),
                "properties": TASK_PROPERTIES,
            });
            let response: BatchResponse = self
                .post(
                    BATCH_READ,
                    "/crm/v3/objects/tasks/batch/read".to_owned(),
                    &body,
                    Bucket::General,
                )
                .await?;
            for raw in response.results {
                let read = serde_json::from_value::<ObjectRow>(raw.clone())
                    .map_err(|err| err.to_string())
                    .and_then(|row| normalize::task(&row));
                match read {
                    Ok(task) => {
                        tasks.insert(task.id.clone(), task);
                    }
                    Err(reason) => tracing::warn!(
                        connector = %self.name(),
                        object = "task",
                        id = ObjectRow::name_hint(&raw).unwrap_or_default(),
                        reason,
                        "left out an unreadable task"
                    ),
                }
            }
        }
        Ok(tasks)
    }

    pub(crate) async fn deletions_page(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> Result<Page<RecordId>, ConnectorError> {
        let kind = object_type(self, object)?;
        let mut query = vec![
            ("limit".to_owned(), self.settings.list_limit.to_string()),
            ("properties".to_owned(), "hs_object_id".to_owned()),
            ("archived".to_owned(), "true".to_owned()),
        ];
        if let Some(after) = cursor {
            query.push(("after".to_owned(), after));
        }
        let page: ListPage = self
            .get(LIST, format!("/crm/v3/objects/{kind}"), query)
            .await?;
        let mut items = Vec::new();
        let mut skipped_rows = Vec::new();
        for (position, raw) in page.results.iter().enumerate() {
            match raw.get("id").and_then(crate::wire::id_string) {
                Some(id) => items.push(RecordId::new(id)),
                None => skipped_rows.push(skipped(
                    raw,
                    position,
                    "the archived object has no id".into(),
                )),
            }
        }
        Ok(Page {
            items,
            skipped: skipped_rows,
            next: page.next_after(),
            ..Page::default()
        })
    }
}

/// What the search window needs of a raw row: its id and its modification
/// time, from the property the search sorts on (else `updatedAt`).
fn hit(raw: &Value, modified: &str) -> Hit {
    let time = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .and_then(normalize::parse_instant)
            .map(|at| at.timestamp_millis())
    };
    Hit {
        id: ObjectRow::name_hint(raw),
        modified_ms: time(raw.get("properties").and_then(|p| p.get(modified)))
            .or_else(|| time(raw.get("updatedAt"))),
    }
}

fn owner(row: OwnerRow, archived_phase: bool) -> Owner {
    let full_name = [row.first_name.as_deref(), row.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let email = row.email.filter(|e| !e.trim().is_empty());
    let name = if full_name.is_empty() {
        email.clone().unwrap_or_else(|| row.id.clone())
    } else {
        full_name
    };
    Owner {
        id: OwnerId::new(row.id),
        name,
        email,
        active: !(archived_phase || row.archived.unwrap_or(false)),
        teams: row.teams.into_iter().filter_map(|t| t.name).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_owner_is_named_by_first_and_last_name_else_email_else_id() {
        let row = |value| serde_json::from_value::<OwnerRow>(value).unwrap();
        let named = owner(
            row(
                json!({"id": "102", "email": "sam@example.com", "firstName": "Sam", "lastName": "Ortiz",
                       "userId": 9, "teams": [{"id": "1", "name": "Sales", "primary": true}], "archived": false}),
            ),
            false,
        );
        assert_eq!(named.id, OwnerId::new("102"));
        assert_eq!(named.name, "Sam Ortiz");
        assert_eq!(named.teams, ["Sales"]);
        assert!(named.active);
        let by_email = owner(
            row(json!({"id": "103", "email": "q@example.com", "firstName": ""})),
            false,
        );
        assert_eq!(by_email.name, "q@example.com");
        let by_id = owner(row(json!({"id": "104"})), false);
        assert_eq!(by_id.name, "104");
    }

    #[test]
    fn an_owner_read_in_the_archived_phase_is_inactive() {
        let row =
            serde_json::from_value::<OwnerRow>(json!({"id": "105", "email": "old@example.com"}))
                .unwrap();
        assert!(!owner(row, true).active);
    }

    #[test]
    fn the_search_position_comes_from_the_sorted_property_else_updated_at() {
        let raw = json!({"id": "1", "properties": {"lastmodifieddate": "1000"}, "updatedAt": "1970-01-01T00:00:02Z"});
        assert_eq!(hit(&raw, "lastmodifieddate").modified_ms, Some(1000));
        assert_eq!(hit(&raw, "hs_lastmodifieddate").modified_ms, Some(2000));
        let nameless = json!({"properties": {"hs_object_id": "77"}});
        assert_eq!(
            hit(&nameless, "hs_lastmodifieddate").id.as_deref(),
            Some("77")
        );
    }

    /// Against the emulator: 1,000 deals' associations of each type in one
    /// v4 batch read, the 1,001st in a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_associations_of_1000_deals_take_one_call_per_type() {
        use crate::{HubspotAuth, HubspotCredentials, HubspotSettings};
        use journeyd_connector::ConnectorName;
        use journeyd_hubspot_emulator::{
            EmulatorConfig, HubspotEmulator, ObjectType, RateLimitKnobs,
        };
        let mut config = EmulatorConfig::with_deals(1000);
        config.knobs.limits = RateLimitKnobs::unlimited();
        let emulator = HubspotEmulator::start(config).expect("the emulator starts");
        let connector = HubspotConnector::new(
            ConnectorName::new("hubspot"),
            HubspotSettings::defaults(emulator.base_url(), HubspotAuth::PrivateApp),
            HubspotCredentials::PrivateApp {
                token: emulator.private_app_token().into(),
            },
        )
        .expect("the connector builds");
        let calls = || {
            emulator
                .counts()
                .get("POST /crm/v4/associations/{from_object_type}/{to_object_type}/batch/read")
        };
        let deals = emulator.ids(ObjectType::Deals);
        assert_eq!(deals.len(), 1000);
        for (to, object) in [
            ("companies", ObjectType::Companies),
            ("contacts", ObjectType::Contacts),
            ("tasks", ObjectType::Tasks),
        ] {
            let before = calls();
            let links = connector
                .read_links("deals", to, &deals)
                .await
                .expect("the associations are read");
            assert_eq!(calls() - before, 1, "deals to {to}");
            for id in &deals {
                let held = emulator.record(ObjectType::Deals, id).expect("a deal");
                assert_eq!(
                    links.get(id).cloned().unwrap_or_default(),
                    held.associations.get(&object).cloned().unwrap_or_default(),
                    "deal {id} to {to}"
                );
            }
        }
        let mut more = deals;
        more.push("1".to_owned());
        let before = calls();
        connector
            .read_links("deals", "tasks", &more)
            .await
            .expect("the associations are read");
        assert_eq!(calls() - before, 2, "1,001 deals take two calls");
    }

    #[test]
    fn pull_cursors_round_trip_through_their_stored_form() {
        let list = PullCursor::List {
            after: "200".into(),
        };
        let stored = encode(&list);
        assert_eq!(stored, r#"{"mode":"list","after":"200"}"#);
        assert_eq!(serde_json::from_str::<PullCursor>(&stored).unwrap(), list);
        let search = PullCursor::Search(SearchCursor::since(42));
        let stored = encode(&search);
        assert_eq!(serde_json::from_str::<PullCursor>(&stored).unwrap(), search);
    }
}
