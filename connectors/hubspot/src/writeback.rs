//! Writing to HubSpot: creating corrective tasks, rewriting and completing
//! them, property updates (with HubSpot's forward-only lifecycle stage),
//! and finding tasks already written.
//!
//! Exactly once: HubSpot lets no client choose a task's id, so a create
//! cannot be made idempotent. A task carries its action key on its body's
//! last line (see `marker`) and as the input's `objectWriteTraceId`; a
//! create whose answer proves nothing is reported `Unknown` and is looked
//! up later by [`HubspotConnector::find_applied_keys`], once HubSpot's
//! eventually consistent search index has had `search_lag` to show it
//! (fact 6.14). Nothing here looks a create up right after sending it:
//! within the lag, not finding it proves nothing. Setting a property, or
//! rewriting or completing a task, gives the same result however often it
//! is done, so those are sent again freely (the HTTP client retries them).
//!
//! What each answer proves is decided in [`answer`]. Beyond that: a batch
//! HubSpot refuses as a whole (400, or 404 naming ids it does not have) is
//! retried input by input, so one bad input cannot fail the rest; `Err`
//! ends the call only when the connector is unusable (refused credentials,
//! the daily allowance spent), leaving every outcome unknown.

mod answer;

use crate::connector::{HubspotConnector, object_type};
use crate::marker::{is_token, markers, with_marker};
use crate::wire::{
    AssociationInput, AssociationType, BatchResponse, CreateInput, Filter, FilterGroup, Inputs,
    ListPage, ObjectId, ObjectRow, PropertyDefinition, SearchRequest, Sort, UpdateInput, id_string,
};
use answer::{NewTask, Target, Verdict, failed, outcome, verdict};
use chrono::{NaiveDate, SecondsFormat};
use journeyd_connector::Connector;
use journeyd_connector::http::Bucket;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorError, ObjectKind, OwnerId,
    Priority, RecordId, Retry,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub(crate) const BATCH_CREATE: &str = "/crm/v3/objects/{object}/batch/create";
pub(crate) const BATCH_UPDATE: &str = "/crm/v3/objects/{object}/batch/update";
pub(crate) const PROPERTY: &str = "/crm/v3/properties/{object}/{property}";
pub(crate) const TASK_SEARCH: &str = "/crm/v3/objects/{object}/search";

/// HubSpot's lifecycle stage: setting an earlier stage is silently ignored.
const LIFECYCLE_STAGE: &str = "lifecyclestage";
/// Filter groups per search (HubSpot honours at least 3 × 3).
const KEYS_PER_SEARCH: usize = 3;
/// Search pages one lookup may read.
const LOOKUP_PAGES: usize = 50;

/// One record's properties to set.
#[derive(Debug, Clone)]
struct Update {
    index: usize,
    id: String,
    properties: Vec<(String, String)>,
    /// The record's kind and the property's value when the action was
    /// planned, for a lifecycle move (a `SetField`).
    planned: Option<(ObjectKind, Option<String>)>,
    /// A record HubSpot no longer has counts as done: a task to complete.
    gone_is_done: bool,
}

impl Update {
    fn target(&self) -> Target<'_> {
        Target {
            index: self.index,
            id: &self.id,
            gone_is_done: self.gone_is_done,
        }
    }
}

/// Splits `updates` into rounds in which no record appears twice: HubSpot
/// refuses a batch update naming one id twice.
fn rounds(updates: Vec<Update>) -> Vec<Vec<Update>> {
    let mut rounds: Vec<(BTreeSet<String>, Vec<Update>)> = Vec::new();
    for update in updates {
        match rounds.iter_mut().find(|(ids, _)| !ids.contains(&update.id)) {
            Some((ids, round)) => {
                ids.insert(update.id.clone());
                round.push(update);
            }
            None => rounds.push((BTreeSet::from([update.id.clone()]), vec![update])),
        }
    }
    rounds.into_iter().map(|(_, round)| round).collect()
}

fn hs_priority(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "LOW",
        Priority::Normal => "MEDIUM",
        Priority::High => "HIGH",
    }
}

/// A due date as HubSpot's `hs_timestamp`: 09:00 UTC that day.
fn due_timestamp(due: NaiveDate) -> String {
    due.and_time(chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default())
        .and_utc()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The properties that rewrite a task journeyd made: its subject, its body
/// (ending with the marker line of the key it was created under), its
/// priority, and its owner when one is given.
fn task_rewrite(
    task_key: &ActionKey,
    owner_id: Option<&OwnerId>,
    subject: &str,
    body: &str,
    priority: Priority,
) -> Vec<(String, String)> {
    let mut properties = vec![
        ("hs_task_subject".to_owned(), subject.to_owned()),
        ("hs_task_body".to_owned(), with_marker(body, task_key)),
        (
            "hs_task_priority".to_owned(),
            hs_priority(priority).to_owned(),
        ),
    ];
    if let Some(owner) = owner_id {
        properties.push(("hubspot_owner_id".to_owned(), owner.as_str().to_owned()));
    }
    properties
}

impl HubspotConnector {
    pub(crate) async fn apply_actions(
        &self,
        actions: &[ActionRequest],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let mut results: Vec<Option<ActionResult>> = vec![None; actions.len()];
        let mut tasks = Vec::new();
        let mut first_of_key: HashMap<&ActionKey, usize> = HashMap::new();
        let mut copies = Vec::new();
        let mut updates: BTreeMap<&'static str, Vec<Update>> = BTreeMap::new();
        for (index, action) in actions.iter().enumerate() {
            match action {
                ActionRequest::CreateTask {
                    key,
                    object,
                    record_id,
                    owner_id,
                    subject,
                    body,
                    due,
                    priority,
                } => {
                    if let Some(&first) = first_of_key.get(key) {
                        // The same task twice in one call is written once.
                        copies.push((index, first));
                        continue;
                    }
                    first_of_key.insert(key, index);
                    match self.task_input(
                        key,
                        *object,
                        record_id,
                        owner_id.as_ref().map(|o| o.as_str()),
                        subject,
                        body,
                        *due,
                        *priority,
                    ) {
                        Ok(input) => tasks.push(NewTask {
                            index,
                            key,
                            record_id,
                            input,
                        }),
                        Err(reason) => results[index] = Some(failed(reason, false)),
                    }
                }
                ActionRequest::SetField {
                    object,
                    record_id,
                    field,
                    value,
                    current,
                    ..
                } => match object_type(self, *object) {
                    Ok(kind) => updates.entry(kind).or_default().push(Update {
                        index,
                        id: record_id.as_str().to_owned(),
                        properties: vec![(field.clone(), value.clone())],
                        planned: Some((*object, current.clone())),
                        gone_is_done: false,
                    }),
                    Err(err) => results[index] = Some(failed(err.to_string(), false)),
                },
                ActionRequest::UpdateTask {
                    task_key,
                    task_id,
                    owner_id,
                    subject,
                    body,
                    priority,
                    ..
                } => updates.entry("tasks").or_default().push(Update {
                    index,
                    id: task_id.clone(),
                    properties: task_rewrite(task_key, owner_id.as_ref(), subject, body, *priority),
                    planned: None,
                    gone_is_done: false,
                }),
                ActionRequest::CompleteTask { task_id, .. } => {
                    updates.entry("tasks").or_default().push(Update {
                        index,
                        id: task_id.clone(),
                        properties: vec![("hs_task_status".into(), "COMPLETED".into())],
                        planned: None,
                        gone_is_done: true,
                    });
                }
            }
        }
        for chunk in tasks.chunks(self.settings.batch_limit.get()) {
            for (index, result) in self.create_batch(chunk).await? {
                results[index] = Some(result);
            }
        }
        for (kind, list) in updates {
            let mut plain = Vec::new();
            let mut backward = Vec::new();
            for update in list {
                match self.moves_backward(&update).await {
                    Ok(true) => backward.push(update),
                    Ok(false) => plain.push(update),
                    Err(err) if verdict(&err) == Verdict::Fatal => return Err(err),
                    // Only the stage options were read: nothing was sent.
                    Err(err) => {
                        let retryable = err.retry() != Retry::Never;
                        results[update.index] = Some(failed(err.to_string(), retryable));
                    }
                }
            }
            for (index, result) in self.update_rounds(kind, plain).await? {
                results[index] = Some(result);
            }
            // HubSpot ignores a move to an earlier lifecycle stage: clear the
            // property, then set it, in two separate requests.
            let cleared: Vec<Update> = backward
                .iter()
                .map(|u| Update {
                    properties: u
                        .properties
                        .iter()
                        .map(|(name, _)| (name.clone(), String::new()))
                        .collect(),
                    ..u.clone()
                })
                .collect();
            let mut set_after = Vec::new();
            for (index, result) in self.update_rounds(kind, cleared).await? {
                match result {
                    ActionResult::Applied { .. } => {
                        set_after.extend(backward.iter().find(|u| u.index == index).cloned());
                    }
                    other => results[index] = Some(other),
                }
            }
            for (index, result) in self.update_rounds(kind, set_after).await? {
                results[index] = Some(result);
            }
        }
        for (copy, first) in copies {
            results[copy] = results[first].clone();
        }
        Ok(actions
            .iter()
            .zip(results)
            .map(|(action, result)| ActionOutcome {
                key: action.key().clone(),
                result: result.unwrap_or_else(|| failed("the action was not sent", true)),
            })
            .collect())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one CreateTask action"
    )]
    fn task_input(
        &self,
        key: &ActionKey,
        object: ObjectKind,
        record_id: &RecordId,
        owner_id: Option<&str>,
        subject: &str,
        body: &str,
        due: NaiveDate,
        priority: Priority,
    ) -> Result<Value, String> {
        if !is_token(key.as_str()) {
            return Err(format!(
                "action key {key} is not one search token (ascii letters and digits only)"
            ));
        }
        let types = self.settings.task_association_types;
        let type_id = match object {
            ObjectKind::Deal => types.deal,
            ObjectKind::Contact => types.contact,
            ObjectKind::Account => types.company,
            ObjectKind::Lead => {
                return Err(format!(
                    "{} has no lead records to attach a task to",
                    self.name()
                ));
            }
        };
        let mut properties = Map::new();
        properties.insert("hs_timestamp".into(), due_timestamp(due).into());
        properties.insert("hs_task_subject".into(), subject.into());
        properties.insert("hs_task_body".into(), with_marker(body, key).into());
        properties.insert("hs_task_status".into(), "NOT_STARTED".into());
        properties.insert("hs_task_priority".into(), hs_priority(priority).into());
        properties.insert("hs_task_type".into(), "TODO".into());
        if let Some(owner) = owner_id {
            properties.insert("hubspot_owner_id".into(), owner.into());
        }
        serde_json::to_value(CreateInput {
            properties,
            associations: vec![AssociationInput {
                to: ObjectId {
                    id: record_id.as_str().to_owned(),
                },
                types: vec![AssociationType {
                    association_category: "HUBSPOT_DEFINED",
                    association_type_id: type_id,
                }],
            }],
            object_write_trace_id: key.as_str().to_owned(),
        })
        .map_err(|err| format!("could not build the task: {err}"))
    }

    async fn create_once(&self, tasks: &[NewTask<'_>]) -> Result<BatchResponse, ConnectorError> {
        let body = Inputs {
            inputs: tasks.iter().map(|t| t.input.clone()).collect(),
        };
        self.post_once(
            BATCH_CREATE,
            "/crm/v3/objects/tasks/batch/create".to_owned(),
            &body,
        )
        .await
    }

    /// Creates `tasks` in one call; every task gets an outcome.
    async fn create_batch(
        &self,
        tasks: &[NewTask<'_>],
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        let err = match self.create_once(tasks).await {
            Ok(response) => return Ok(answer::created(tasks, &response)),
            Err(err) => err,
        };
        match verdict(&err) {
            Verdict::Fatal => Err(err),
            Verdict::Refused { .. } if tasks.len() > 1 => {
                let mut outcomes = Vec::new();
                for task in tasks {
                    let single = std::slice::from_ref(task);
                    match self.create_once(single).await {
                        Ok(response) => outcomes.extend(answer::created(single, &response)),
                        Err(err) => match verdict(&err) {
                            Verdict::Fatal => return Err(err),
                            judged => outcomes.push((task.index, outcome(judged, &err, None))),
                        },
                    }
                }
                Ok(outcomes)
            }
            judged => Ok(tasks
                .iter()
                .map(|t| (t.index, outcome(judged, &err, None)))
                .collect()),
        }
    }

    /// Whether setting `update` is a move to an earlier lifecycle stage,
    /// which HubSpot would silently ignore.
    async fn moves_backward(&self, update: &Update) -> Result<bool, ConnectorError> {
        let (Some((object, Some(current))), [(property, value)]) =
            (&update.planned, update.properties.as_slice())
        else {
            return Ok(false);
        };
        if !self.settings.lifecycle_forward_only
            || property != LIFECYCLE_STAGE
            || current.is_empty()
            || current == value
        {
            return Ok(false);
        }
        let Some(order) = self.lifecycle_order(*object).await? else {
            return Ok(false);
        };
        let rank = |value: &str| order.iter().position(|v| v == value);
        Ok(match (rank(current), rank(value)) {
            (Some(now), Some(next)) => next < now,
            _ => false,
        })
    }

    /// The lifecycle stage's option values in display order, for contacts
    /// and companies (`None` for other objects); read once per connector.
    async fn lifecycle_order(
        &self,
        object: ObjectKind,
    ) -> Result<Option<Arc<Vec<String>>>, ConnectorError> {
        let (cell, kind) = match object {
            ObjectKind::Contact => (&self.lifecycle_options[0], "contacts"),
            ObjectKind::Account => (&self.lifecycle_options[1], "companies"),
            _ => return Ok(None),
        };
        cell.get_or_try_init(|| async {
            let mut definition: PropertyDefinition = self
                .get(
                    PROPERTY,
                    format!("/crm/v3/properties/{kind}/{LIFECYCLE_STAGE}"),
                    Vec::new(),
                )
                .await?;
            definition.options.sort_by_key(|o| o.display_order);
            Ok(Arc::new(
                definition.options.into_iter().map(|o| o.value).collect(),
            ))
        })
        .await
        .cloned()
        .map(Some)
    }

    async fn update_rounds(
        &self,
        kind: &'static str,
        updates: Vec<Update>,
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        let mut outcomes = Vec::new();
        for round in rounds(updates) {
            for chunk in round.chunks(self.settings.batch_limit.get()) {
                outcomes.extend(self.update_batch(kind, chunk).await?);
            }
        }
        Ok(outcomes)
    }

    async fn update_once(
        &self,
        kind: &'static str,
        updates: &[Update],
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        let body = Inputs {
            inputs: updates
                .iter()
                .map(|u| UpdateInput {
                    id: u.id.clone(),
                    properties: u
                        .properties
                        .iter()
                        .map(|(name, value)| (name.clone(), Value::from(value.clone())))
                        .collect(),
                })
                .collect(),
        };
        let response: BatchResponse = self
            .post(
                BATCH_UPDATE,
                format!("/crm/v3/objects/{kind}/batch/update"),
                &body,
                Bucket::General,
            )
            .await?;
        let targets: Vec<Target<'_>> = updates.iter().map(Update::target).collect();
        Ok(answer::updated(&targets, &response))
    }

    /// Updates in one call; every update gets an outcome.
    async fn update_batch(
        &self,
        kind: &'static str,
        updates: &[Update],
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        let err = match self.update_once(kind, updates).await {
            Ok(outcomes) => return Ok(outcomes),
            Err(err) => err,
        };
        match verdict(&err) {
            Verdict::Fatal => Err(err),
            Verdict::Refused { .. } if updates.len() > 1 => {
                let mut outcomes = Vec::new();
                for update in updates {
                    match self.update_once(kind, std::slice::from_ref(update)).await {
                        Ok(single) => outcomes.extend(single),
                        Err(err) => match verdict(&err) {
                            Verdict::Fatal => return Err(err),
                            judged => outcomes.push((
                                update.index,
                                outcome(judged, &err, Some(&update.target())),
                            )),
                        },
                    }
                }
                Ok(outcomes)
            }
            judged => Ok(updates
                .iter()
                .map(|u| (u.index, outcome(judged, &err, Some(&u.target()))))
                .collect()),
        }
    }

    /// Which of `keys` some task carries on a marker line, by search.
    /// Search lags behind writes (fact 6.14): the caller asks only once
    /// `search_lag` has passed since the creates were sent, and a key not
    /// found before then may still be written.
    pub(crate) async fn find_applied_keys(
        &self,
        keys: &[ActionKey],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        // A key that is not one token was never written by this connector.
        let lookup: Vec<&str> = keys
            .iter()
            .map(ActionKey::as_str)
            .filter(|k| is_token(k))
            .collect();
        let found = self.find_task_keys(&lookup).await?;
        Ok(ActionOutcome::found(keys, &found))
    }

    /// Task id by action key, for the keys some task carries on its marker
    /// line; the earliest task wins when several do.
    async fn find_task_keys(
        &self,
        keys: &[&str],
    ) -> Result<BTreeMap<String, String>, ConnectorError> {
        let mut found = BTreeMap::new();
        for chunk in keys.chunks(KEYS_PER_SEARCH) {
            let wanted: BTreeSet<&str> = chunk.iter().copied().collect();
            let mut after = None;
            for _ in 0..LOOKUP_PAGES {
                let request = SearchRequest {
                    filter_groups: chunk
                        .iter()
                        .map(|key| FilterGroup {
                            filters: vec![Filter {
                                property_name: "hs_task_body".into(),
                                operator: "CONTAINS_TOKEN",
                                value: (*key).to_owned(),
                            }],
                        })
                        .collect(),
                    sorts: vec![Sort {
                        property_name: "hs_createdate".into(),
                        direction: "ASCENDING",
                    }],
                    properties: vec!["hs_task_body".into()],
                    limit: self.settings.search_limit.get(),
                    after: after.take(),
                };
                let page: ListPage = self
                    .post(
                        TASK_SEARCH,
                        "/crm/v3/objects/tasks/search".to_owned(),
                        &request,
                        Bucket::Search,
                    )
                    .await?;
                for raw in &page.results {
                    let Ok(row) = serde_json::from_value::<ObjectRow>(raw.clone()) else {
                        continue;
                    };
                    let (Some(id), Ok(Some(body))) = (id_string(&row.id), row.text("hs_task_body"))
                    else {
                        continue;
                    };
                    for key in markers(body) {
                        if wanted.contains(key.as_str()) {
                            found.entry(key).or_insert_with(|| id.clone());
                        }
                    }
                }
                after = page.next_after();
                if after.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_due_date_becomes_nine_utc_that_day() {
        assert_eq!(
            due_timestamp(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
            "2026-11-24T09:00:00.000Z"
        );
    }

    #[test]
    fn a_rewritten_task_keeps_the_marker_of_its_first_key_and_its_owner_unless_given() {
        let first = ActionKey::new("k0");
        let rewrite = task_rewrite(&first, None, "2 checks", "- one\n- two", Priority::High);
        assert_eq!(
            rewrite,
            [
                ("hs_task_subject".to_owned(), "2 checks".to_owned()),
                (
                    "hs_task_body".to_owned(),
                    "- one\n- two\n\njourneyd-action: k0".to_owned()
                ),
                ("hs_task_priority".to_owned(), "HIGH".to_owned()),
            ]
        );
        let owned = task_rewrite(&first, Some(&OwnerId::new("102")), "s", "b", Priority::Low);
        assert_eq!(
            owned.last(),
            Some(&("hubspot_owner_id".to_owned(), "102".to_owned()))
        );
    }

    #[test]
    fn updates_of_one_record_go_in_separate_rounds() {
        let update = |index, id: &str| Update {
            index,
            id: id.into(),
            properties: vec![("p".into(), "v".into())],
            planned: None,
            gone_is_done: false,
        };
        let split = rounds(vec![
            update(0, "1"),
            update(1, "2"),
            update(2, "1"),
            update(3, "1"),
        ]);
        let ids: Vec<Vec<usize>> = split
            .iter()
            .map(|r| r.iter().map(|u| u.index).collect())
            .collect();
        assert_eq!(ids, vec![vec![0, 1], vec![2], vec![3]]);
    }
}
