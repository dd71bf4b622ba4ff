//! Writing to HubSpot: corrective tasks, property updates (with HubSpot's
//! forward-only lifecycle stage), completing tasks, and finding tasks
//! already written.
//!
//! Idempotency: a task carries its action key in its body, on a marker line
//! `journeyd-action: <key>`. The key must be one search token (ASCII letters
//! and digits) so `find_applied` can look it up with `CONTAINS_TOKEN`; the
//! marker is then checked exactly on the client. Only tasks need the lookup:
//! setting a property to a value, or a task's status to completed, gives the
//! same result however often it is done.
//!
//! Outcomes: an action HubSpot refused alone (a 207 error row, a 400 for a
//! single input) fails on its own; a refusal of the whole batch is retried
//! input by input so one bad input cannot fail the rest. `Err` ends the
//! call, leaving the outcomes of its actions unknown, when the connector is
//! unusable (refused credentials, the daily allowance spent) and when tasks
//! may have been created that cannot be confirmed (a create that timed out
//! or failed with a 5xx, not found by an immediate lookup): the caller then
//! looks them up with `find_applied` before sending anything again.

use crate::connector::{HubspotConnector, object_type};
use crate::wire::{
    AssociationInput, AssociationType, BatchError, BatchResponse, CreateInput, Filter, FilterGroup,
    Inputs, ListPage, ObjectId, ObjectRow, PropertyDefinition, SearchRequest, Sort, UpdateInput,
    id_string,
};
use chrono::{NaiveDate, SecondsFormat};
use journeyd_connector::Connector;
use journeyd_connector::http::Bucket;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorError, ObjectKind, Priority,
    RecordId, Retry,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub(crate) const BATCH_CREATE: &str = "/crm/v3/objects/{object}/batch/create";
pub(crate) const BATCH_UPDATE: &str = "/crm/v3/objects/{object}/batch/update";
pub(crate) const PROPERTY: &str = "/crm/v3/properties/{object}/{property}";
pub(crate) const TASK_SEARCH: &str = "/crm/v3/objects/{object}/search";

const MARKER: &str = "journeyd-action:";
/// HubSpot's lifecycle stage: setting an earlier stage is silently ignored.
const LIFECYCLE_STAGE: &str = "lifecyclestage";
/// Filter groups per search (HubSpot honours at least 3 × 3).
const KEYS_PER_SEARCH: usize = 3;
/// Search pages one lookup may read.
const LOOKUP_PAGES: usize = 50;

/// Whether `key` can be carried as one search token.
pub(crate) fn is_token(key: &str) -> bool {
    !key.is_empty() && key.len() <= 100 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The body of a task created for `key`: the text, then the marker line,
/// unless the text already carries it.
pub(crate) fn task_body(body: &str, key: &ActionKey) -> String {
    let body = body.trim_end();
    if markers(body).iter().any(|k| k == key.as_str()) {
        body.to_owned()
    } else if body.is_empty() {
        format!("{MARKER} {key}")
    } else {
        format!("{body}\n\n{MARKER} {key}")
    }
}

/// Every action key a task body carries on a marker line. Bodies may come
/// back as HTML, so spaces may be `&nbsp;`.
pub(crate) fn markers(body: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find(MARKER) {
        rest = &rest[at + MARKER.len()..];
        let mut tail = rest;
        loop {
            let trimmed = tail.trim_start();
            match trimmed.strip_prefix("&nbsp;") {
                Some(after) => tail = after,
                None => {
                    tail = trimmed;
                    break;
                }
            }
        }
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        if end > 0 {
            keys.push(tail[..end].to_owned());
        }
    }
    keys
}

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
}

fn failed(reason: impl Into<String>, retryable: bool) -> ActionResult {
    ActionResult::Failed {
        reason: reason.into(),
        retryable,
    }
}

/// Errors after which no further call can succeed in this run.
fn is_fatal(err: &ConnectorError) -> bool {
    matches!(
        err,
        ConnectorError::Auth { .. } | ConnectorError::AllowanceExhausted { .. }
    )
}

fn retryable(err: &ConnectorError) -> bool {
    err.retry() != Retry::Never
}

/// HubSpot refused the batch as a whole for its content: one input may be
/// to blame, so the inputs are worth sending one by one.
fn refused_as_a_whole(err: &ConnectorError) -> bool {
    matches!(err, ConnectorError::Api { status: 400, .. })
}

/// After this error the batch may or may not have been written.
fn outcome_unknown(err: &ConnectorError) -> bool {
    match err {
        ConnectorError::Transport { .. } => true,
        ConnectorError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// One task to create.
#[derive(Debug, Clone)]
pub(crate) struct NewTask<'a> {
    pub index: usize,
    pub key: &'a ActionKey,
    pub record_id: &'a RecordId,
    pub input: Value,
}

/// What a create batch's answer says about each of its inputs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CreateMatch {
    pub outcomes: Vec<(usize, ActionResult)>,
    /// Inputs neither a result nor an error could be tied to.
    pub unresolved: Vec<usize>,
    /// Why the unresolved ones are not known to be written.
    pub unresolved_reason: String,
    /// Whether some result carried no readable marker: an unresolved input
    /// may then have been written after all.
    pub untied_results: bool,
}

/// Ties a batch create's results to its inputs by the marker in each
/// result's `hs_task_body` (HubSpot does not promise result order), and its
/// error rows by the key, else the associated record id, they mention.
/// Error rows fail their inputs retryably: HubSpot does not say reliably
/// which row errors are permanent, and a later run costs one call.
pub(crate) fn match_created(tasks: &[NewTask<'_>], response: &BatchResponse) -> CreateMatch {
    let mut open: BTreeMap<usize, &NewTask<'_>> = tasks.iter().map(|t| (t.index, t)).collect();
    let mut outcome = CreateMatch::default();
    for result in &response.results {
        let id = result.get("id").and_then(id_string);
        let body = result
            .get("properties")
            .and_then(|p| p.get("hs_task_body"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut tied = false;
        if let Some(id) = id {
            for key in markers(body) {
                let hit = open
                    .iter()
                    .find(|(_, t)| t.key.as_str() == key)
                    .map(|(index, _)| *index);
                if let Some(index) = hit {
                    open.remove(&index);
                    outcome
                        .outcomes
                        .push((index, ActionResult::Applied { crm_id: id.clone() }));
                    tied = true;
                }
            }
        }
        outcome.untied_results |= !tied;
    }
    let mut untied_errors = Vec::new();
    for error in &response.errors {
        let mut words: BTreeSet<String> = error.clues().into_iter().collect();
        if let Some(message) = &error.message {
            words.extend(tokens(message).map(str::to_owned));
        }
        let by_key: Vec<usize> = open
            .iter()
            .filter(|(_, t)| words.contains(t.key.as_str()))
            .map(|(i, _)| *i)
            .collect();
        let blamed = if by_key.is_empty() {
            open.iter()
                .filter(|(_, t)| words.contains(t.record_id.as_str()))
                .map(|(i, _)| *i)
                .collect()
        } else {
            by_key
        };
        if blamed.is_empty() {
            untied_errors.push(error.describe());
        }
        for index in blamed {
            open.remove(&index);
            outcome
                .outcomes
                .push((index, failed(error.describe(), true)));
        }
    }
    outcome.unresolved = open.into_keys().collect();
    outcome.unresolved_reason = if untied_errors.is_empty() {
        "hubspot returned no result for this task".to_owned()
    } else {
        format!("not created: {}", untied_errors.join("; "))
    };
    outcome
}

/// Ties a batch update's results and error rows to its inputs by record id.
pub(crate) fn match_updated(
    inputs: &[(usize, String)],
    response: &BatchResponse,
) -> Vec<(usize, ActionResult)> {
    let written: BTreeSet<String> = response
        .results
        .iter()
        .filter_map(|r| r.get("id").and_then(id_string))
        .collect();
    let blame = |error: &BatchError| -> BTreeSet<String> {
        let mut words: BTreeSet<String> = error.clues().into_iter().collect();
        if let Some(message) = &error.message {
            words.extend(tokens(message).map(str::to_owned));
        }
        words
    };
    let blamed: Vec<(BTreeSet<String>, String)> = response
        .errors
        .iter()
        .map(|e| (blame(e), e.describe()))
        .collect();
    let untied: Vec<&str> = blamed
        .iter()
        .filter(|(words, _)| !inputs.iter().any(|(_, id)| words.contains(id)))
        .map(|(_, reason)| reason.as_str())
        .collect();
    inputs
        .iter()
        .map(|(index, id)| {
            let result =
                if let Some((_, reason)) = blamed.iter().find(|(words, _)| words.contains(id)) {
                    failed(reason.clone(), true)
                } else if written.contains(id) {
                    ActionResult::Applied { crm_id: id.clone() }
                } else if untied.is_empty() {
                    failed("hubspot returned no result for this record", true)
                } else {
                    failed(format!("not updated: {}", untied.join("; ")), true)
                };
            (*index, result)
        })
        .collect()
}

/// One property update.
#[derive(Debug, Clone)]
struct Update {
    index: usize,
    id: String,
    property: String,
    value: String,
    /// The record's kind, for a record property (not for a task's status).
    object: Option<ObjectKind>,
    /// The property's value when the action was planned.
    current: Option<String>,
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
                        property: field.clone(),
                        value: value.clone(),
                        object: Some(*object),
                        current: current.clone(),
                    }),
                    Err(err) => results[index] = Some(failed(err.to_string(), false)),
                },
                ActionRequest::UpdateTask { .. } => {
                    results[index] = Some(failed("updating a task is not supported yet", false));
                }
                ActionRequest::CompleteTask { task_id, .. } => {
                    updates.entry("tasks").or_default().push(Update {
                        index,
                        id: task_id.clone(),
                        property: "hs_task_status".into(),
                        value: "COMPLETED".into(),
                        object: None,
                        current: None,
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
                    Err(err) if is_fatal(&err) => return Err(err),
                    Err(err) => {
                        results[update.index] = Some(failed(err.to_string(), retryable(&err)));
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
                    value: String::new(),
                    ..u.clone()
                })
                .collect();
            let mut set_after = Vec::new();
            for (index, result) in self.update_rounds(kind, cleared).await? {
                match result {
                    ActionResult::Applied { .. } => {
                        set_after.extend(backward.iter().find(|u| u.index == index).cloned());
                    }
                    failure => results[index] = Some(failure),
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
        properties.insert("hs_task_body".into(), task_body(body, key).into());
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

    async fn create_batch(
        &self,
        tasks: &[NewTask<'_>],
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        match self.create_once(tasks).await {
            Err(err) if refused_as_a_whole(&err) && tasks.len() > 1 => {
                let mut outcomes = Vec::new();
                for task in tasks {
                    let single = std::slice::from_ref(task);
                    let answer = self.create_once(single).await;
                    outcomes.extend(self.settle(single, answer).await?);
                }
                Ok(outcomes)
            }
            answer => self.settle(tasks, answer).await,
        }
    }

    /// What became of `tasks` after one create call answered `answer`.
    ///
    /// A task that may have been written but cannot be confirmed (the call
    /// timed out or failed with a 5xx, or it returned tasks that cannot be
    /// tied to their actions) is looked up at once; if the lookup cannot
    /// confirm it (search is eventually consistent), the call ends with an
    /// error instead of a retryable failure: the caller then keeps the
    /// action unconfirmed and looks it up on its next run, where a failure
    /// would be sent again and could write the task twice.
    async fn settle(
        &self,
        tasks: &[NewTask<'_>],
        answer: Result<BatchResponse, ConnectorError>,
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        let (mut outcomes, maybe_written, unconfirmed) = match answer {
            Ok(response) => {
                let matched = match_created(tasks, &response);
                let mut outcomes = matched.outcomes;
                if !matched.untied_results {
                    // Every task written is accounted for: the rest were not.
                    outcomes.extend(
                        matched
                            .unresolved
                            .into_iter()
                            .map(|index| (index, failed(matched.unresolved_reason.clone(), true))),
                    );
                    return Ok(outcomes);
                }
                let maybe: Vec<&NewTask<'_>> = tasks
                    .iter()
                    .filter(|t| matched.unresolved.contains(&t.index))
                    .collect();
                let error = ConnectorError::Malformed {
                    connector: self.name().to_string(),
                    route: BATCH_CREATE.to_owned(),
                    reason: "tasks were created that could not be tied to their actions".into(),
                };
                (outcomes, maybe, error)
            }
            Err(err) if is_fatal(&err) => return Err(err),
            Err(err) if outcome_unknown(&err) => (Vec::new(), tasks.iter().collect(), err),
            Err(err) => {
                return Ok(tasks
                    .iter()
                    .map(|t| (t.index, failed(err.to_string(), retryable(&err))))
                    .collect());
            }
        };
        if maybe_written.is_empty() {
            return Ok(outcomes);
        }
        let found = match self.look_up(&maybe_written).await {
            Ok(found) => found,
            Err(lookup) if is_fatal(&lookup) => return Err(lookup),
            Err(_) => BTreeMap::new(),
        };
        for task in maybe_written {
            match found.get(task.key.as_str()) {
                Some(id) => {
                    outcomes.push((task.index, ActionResult::Applied { crm_id: id.clone() }))
                }
                None => return Err(unconfirmed),
            }
        }
        Ok(outcomes)
    }

    async fn look_up(
        &self,
        tasks: &[&NewTask<'_>],
    ) -> Result<BTreeMap<String, String>, ConnectorError> {
        let keys: Vec<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
        self.find_task_keys(&keys).await
    }

    /// Whether setting `update` is a move to an earlier lifecycle stage,
    /// which HubSpot would silently ignore.
    async fn moves_backward(&self, update: &Update) -> Result<bool, ConnectorError> {
        let (Some(object), Some(current)) = (update.object, update.current.as_deref()) else {
            return Ok(false);
        };
        if !self.settings.lifecycle_forward_only
            || update.property != LIFECYCLE_STAGE
            || current.is_empty()
            || current == update.value
        {
            return Ok(false);
        }
        let Some(order) = self.lifecycle_order(object).await? else {
            return Ok(false);
        };
        let rank = |value: &str| order.iter().position(|v| v == value);
        Ok(match (rank(current), rank(&update.value)) {
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
                    properties: Map::from_iter([(
                        u.property.clone(),
                        Value::from(u.value.clone()),
                    )]),
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
        let inputs: Vec<(usize, String)> =
            updates.iter().map(|u| (u.index, u.id.clone())).collect();
        Ok(match_updated(&inputs, &response))
    }

    async fn update_batch(
        &self,
        kind: &'static str,
        updates: &[Update],
    ) -> Result<Vec<(usize, ActionResult)>, ConnectorError> {
        match self.update_once(kind, updates).await {
            Ok(outcomes) => Ok(outcomes),
            Err(err) if is_fatal(&err) => Err(err),
            Err(err) if refused_as_a_whole(&err) && updates.len() > 1 => {
                let mut outcomes = Vec::new();
                for update in updates {
                    match self.update_once(kind, std::slice::from_ref(update)).await {
                        Ok(single) => outcomes.extend(single),
                        Err(err) if is_fatal(&err) => return Err(err),
                        Err(err) => {
                            outcomes.push((update.index, failed(err.to_string(), retryable(&err))))
                        }
                    }
                }
                Ok(outcomes)
            }
            Err(err) => Ok(updates
                .iter()
                .map(|u| (u.index, failed(err.to_string(), retryable(&err))))
                .collect()),
        }
    }

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
    use serde_json::json;

    #[test]
    fn a_marker_is_found_exactly_in_plain_and_html_bodies() {
        let key = ActionKey::new("3f2a9c00d1");
        let body = task_body("Name the decision maker.", &key);
        assert_eq!(
            body,
            "Name the decision maker.\n\njourneyd-action: 3f2a9c00d1"
        );
        assert_eq!(markers(&body), ["3f2a9c00d1"]);
        assert_eq!(
            task_body(&body, &key),
            body,
            "a body with its marker keeps one"
        );
        assert_eq!(
            markers("<p>Name them.</p><p>journeyd-action:&nbsp;3f2a9c00d1</p>"),
            ["3f2a9c00d1"]
        );
        assert!(markers("journeyd-action: ").is_empty());
        assert_eq!(markers("journeyd-action: 3f2a9c00d1x"), ["3f2a9c00d1x"]);
    }

    #[test]
    fn only_ascii_letters_and_digits_make_a_key_token() {
        assert!(is_token("3f2a9c00d1e84b7a9c00d1e84b7a9c00"));
        assert!(!is_token("3f2a-task"));
        assert!(!is_token(""));
    }

    #[test]
    fn a_due_date_becomes_nine_utc_that_day() {
        assert_eq!(
            due_timestamp(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
            "2026-11-24T09:00:00.000Z"
        );
    }

    fn keys() -> Vec<ActionKey> {
        (0..4).map(|i| ActionKey::new(format!("k{i}"))).collect()
    }

    fn records() -> Vec<RecordId> {
        (0..4).map(|i| RecordId::new(format!("90{i}"))).collect()
    }

    fn new_tasks<'a>(keys: &'a [ActionKey], records: &'a [RecordId]) -> Vec<NewTask<'a>> {
        keys.iter()
            .zip(records)
            .enumerate()
            .map(|(index, (key, record_id))| NewTask {
                index,
                key,
                record_id,
                input: Value::Null,
            })
            .collect()
    }

    fn created(id: &str, key: &str) -> Value {
        json!({"id": id, "properties": {"hs_task_body": format!("Do it.\n\njourneyd-action: {key}"),
               "hs_task_status": "NOT_STARTED"}, "createdAt": "2026-11-23T10:00:00Z",
               "updatedAt": "2026-11-23T10:00:00Z", "archived": false})
    }

    fn response(body: Value) -> BatchResponse {
        serde_json::from_value(body).unwrap()
    }

    fn sorted(mut outcomes: Vec<(usize, ActionResult)>) -> Vec<(usize, ActionResult)> {
        outcomes.sort_by_key(|(i, _)| *i);
        outcomes
    }

    #[test]
    fn created_tasks_are_matched_by_marker_whatever_their_order() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..3], &records[..3]);
        let answer = response(json!({"status": "COMPLETE", "results": [
            created("t2", "k2"), created("t0", "k0"), created("t1", "k1")]}));
        let matched = match_created(&tasks, &answer);
        assert!(matched.unresolved.is_empty());
        assert_eq!(
            sorted(matched.outcomes),
            vec![
                (
                    0,
                    ActionResult::Applied {
                        crm_id: "t0".into()
                    }
                ),
                (
                    1,
                    ActionResult::Applied {
                        crm_id: "t1".into()
                    }
                ),
                (
                    2,
                    ActionResult::Applied {
                        crm_id: "t2".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_207_fails_exactly_the_inputs_its_errors_name_by_record() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys, &records);
        let answer = response(json!({"status": "COMPLETE", "numErrors": 2,
        "results": [created("t0", "k0"), created("t3", "k3")],
        "errors": [
            {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object 901 not found",
             "context": {"ids": ["901"]}},
            {"status": "error", "category": "VALIDATION_ERROR", "message": "No deal with id 902",
             "context": {}}
        ]}));
        let matched = match_created(&tasks, &answer);
        assert!(matched.unresolved.is_empty(), "{matched:?}");
        assert_eq!(
            sorted(matched.outcomes),
            vec![
                (
                    0,
                    ActionResult::Applied {
                        crm_id: "t0".into()
                    }
                ),
                (1, failed("Object 901 not found (OBJECT_NOT_FOUND)", true)),
                (2, failed("No deal with id 902 (VALIDATION_ERROR)", true)),
                (
                    3,
                    ActionResult::Applied {
                        crm_id: "t3".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_207_error_naming_an_action_key_fails_that_input() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..2], &records[..2]);
        let answer = response(json!({"results": [created("t0", "k0")],
            "errors": [{"category": "VALIDATION_ERROR", "message": "bad hs_task_body: journeyd-action: k1",
                        "context": {"propertyName": ["hs_task_body"]}}]}));
        let matched = match_created(&tasks, &answer);
        assert_eq!(
            sorted(matched.outcomes)[1],
            (
                1,
                failed(
                    "bad hs_task_body: journeyd-action: k1 (VALIDATION_ERROR)",
                    true
                )
            )
        );
    }

    #[test]
    fn inputs_no_error_can_be_tied_to_fail_retryably_with_every_untied_message() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..3], &records[..3]);
        let answer = response(json!({"results": [created("t1", "k1")],
            "errors": [{"category": "VALIDATION_ERROR", "message": "Something went wrong"}]}));
        let matched = match_created(&tasks, &answer);
        assert_eq!(matched.unresolved, [0, 2]);
        assert_eq!(
            matched.unresolved_reason,
            "not created: Something went wrong (VALIDATION_ERROR)"
        );
        assert!(!matched.untied_results);
    }

    #[test]
    fn a_result_without_a_readable_marker_is_reported_so_the_inputs_get_looked_up() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..2], &records[..2]);
        let answer =
            response(json!({"results": [created("t0", "k0"), {"id": "t9", "properties": {}}]}));
        let matched = match_created(&tasks, &answer);
        assert_eq!(matched.unresolved, [1]);
        assert!(matched.untied_results);
    }

    #[test]
    fn batch_update_outcomes_follow_result_and_error_ids() {
        let inputs = vec![
            (0, "51".to_owned()),
            (1, "52".to_owned()),
            (2, "53".to_owned()),
        ];
        let answer = response(json!({"status": "COMPLETE",
            "results": [{"id": "53", "properties": {}}, {"id": "51", "properties": {}}],
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": ["52"]}}]}));
        assert_eq!(
            match_updated(&inputs, &answer),
            vec![
                (
                    0,
                    ActionResult::Applied {
                        crm_id: "51".into()
                    }
                ),
                (
                    1,
                    failed(
                        "Could not get some CONTACT objects, they may be deleted or not exist. (OBJECT_NOT_FOUND)",
                        true
                    )
                ),
                (
                    2,
                    ActionResult::Applied {
                        crm_id: "53".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn updates_of_one_record_go_in_separate_rounds() {
        let update = |index, id: &str| Update {
            index,
            id: id.into(),
            property: "p".into(),
            value: "v".into(),
            object: None,
            current: None,
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
