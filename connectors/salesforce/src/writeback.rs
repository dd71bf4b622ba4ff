//! Writing back: corrective tasks, their updates and completions, and field
//! values, through sObject Collections (≤ 200 rows a call, `allOrNone:
//! false`, one result per row in input order).
//!
//! Exactly once. Every task carries the key of the create that made it on
//! its description's last line (`journeyd-action: KEY`) and, when
//! `task_external_id` names a Task external-id field, in that field too.
//! - With that field, creates are upserts by it: a create sent again writes
//!   nothing new, so an unconfirmed one is simply resent.
//! - Without it, a create is sent once, and one whose answer was lost is
//!   looked up, `settle` after it was sent, among the tasks the integration
//!   user created since (`CreatedById`, `CreatedDate`: system fields
//!   Salesforce sets and lets a query filter on), its key matched here, on
//!   the description. The description is a long text area, which
//!   Salesforce refuses to filter or sort on.
//!
//! Updates, completions and field values set values: sent again, they
//! change nothing more.
//!
//! A reply that does not prove what became of a row (an unreadable 2xx, a
//! result list of the wrong length, a result that names another record, a
//! 5xx or a timeout after sending) leaves that row `Unknown`, never
//! `Failed`: `Failed` means certainly not written.

use crate::connector::{COLLECTIONS_ROUTE, SalesforceConnector, UPSERT_ROUTE, sobject};
use crate::soql;
use crate::wire::{SaveResult, text};
use chrono::{DateTime, Utc};
use journeyd_connector::http::{Resend, TOKEN_ROUTE};
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorError, ObjectKind, OwnerId,
    Priority, Retry,
};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Keys per external-id lookup: each adds a literal to a URL that
/// Salesforce caps at 16,384 characters.
const KEYS_PER_LOOKUP: usize = 20;

/// How much earlier than `since` a lookup starts: journeyd's clock and
/// Salesforce's may disagree, and a task created a little "before" the
/// batch was sent must still be found.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Task.Description is a long text area of 32,000 characters (facts 6.10).
const DESCRIPTION_CHARS: usize = 32_000;
/// Task.Subject is a string of 255 characters (facts 6.10).
const SUBJECT_CHARS: usize = 255;

/// Row errors after which the same row may succeed on a later run.
const RETRYABLE: [&str; 3] = [
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "UNABLE_TO_LOCK_ROW",
    "REQUEST_LIMIT_EXCEEDED",
];

/// The rows of one sObject Collections call: each with the place of its
/// action in the batch.
type Rows = [(usize, Value)];

#[derive(Debug, Clone, Copy)]
enum Call {
    /// Tasks created, or upserted by their external id.
    Create,
    /// Records updated by id.
    Update,
}

impl SalesforceConnector {
    pub(crate) async fn apply_actions(
        &self,
        actions: &[ActionRequest],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for (at, action) in actions.iter().enumerate() {
            match action {
                ActionRequest::CreateTask { .. } => creates.push((at, self.task_row(action))),
                ActionRequest::UpdateTask {
                    task_key,
                    task_id,
                    owner_id,
                    subject,
                    body,
                    priority,
                    ..
                } => updates.push((
                    at,
                    task_update_row(
                        task_id,
                        task_key,
                        owner_id.as_ref(),
                        subject,
                        body,
                        *priority,
                    ),
                )),
                ActionRequest::SetField {
                    object,
                    record_id,
                    field,
                    value,
                    ..
                } => updates.push((
                    at,
                    update_row(sobject(*object), record_id.as_str(), field, value),
                )),
                ActionRequest::CompleteTask { task_id, .. } => {
                    updates.push((at, update_row("Task", task_id, "Status", "Completed")));
                }
            }
        }
        // Collections take mixed types in runs of one type: grouping them
        // keeps a call within Salesforce's ten runs.
        updates.sort_by(|a, b| type_of(&a.1).cmp(type_of(&b.1)));
        let limit = self.settings.batch_limit.get().min(200);
        let calls = creates
            .chunks(limit)
            .map(|rows| (Call::Create, rows))
            .chain(updates.chunks(limit).map(|rows| (Call::Update, rows)));
        let mut results: Vec<Option<ActionResult>> = vec![None; actions.len()];
        // Why the calls after one that went unanswered are not sent.
        let mut held_back: Option<String> = None;
        for (call, rows) in calls {
            if let Some(why) = &held_back {
                for (at, _) in rows {
                    results[*at] = Some(ActionResult::Failed {
                        reason: format!("not sent: {why}"),
                        retryable: true,
                    });
                }
                continue;
            }
            match self.send_rows(call, rows).await {
                Ok(answer) => read_rows(actions, rows, answer, &mut results),
                Err(err) => {
                    let unanswered = unanswered(err)?;
                    for (at, _) in rows {
                        results[*at] = Some(unanswered.result.clone());
                    }
                    if unanswered.hold_back {
                        held_back = Some(unanswered.reason);
                    }
                }
            }
        }
        Ok(actions
            .iter()
            .zip(results)
            .map(|(action, result)| ActionOutcome {
                key: action.key().clone(),
                result: result.unwrap_or_else(|| ActionResult::Failed {
                    reason: "not sent".into(),
                    retryable: true,
                }),
            })
            .collect())
    }

    /// One sObject Collections call: a create (or, with an external-id
    /// field, an upsert by it) or an update of `rows`.
    async fn send_rows(&self, call: Call, rows: &Rows) -> Result<Vec<SaveResult>, ConnectorError> {
        let records: Vec<Value> = rows.iter().map(|(_, row)| row.clone()).collect();
        let body = json!({"allOrNone": false, "records": records});
        let (method, route, tail, resend) = match (call, &self.settings.task_external_id) {
            // An upsert by the key writes the task once however often it
            // is sent.
            (Call::Create, Some(field)) => (
                Method::PATCH,
                UPSERT_ROUTE,
                format!("/composite/sobjects/Task/{field}"),
                Resend::Always,
            ),
            // A create sent twice would create twice.
            (Call::Create, None) => (
                Method::POST,
                COLLECTIONS_ROUTE,
                "/composite/sobjects".to_owned(),
                Resend::OnlyIfNotReceived,
            ),
            // Setting a value twice sets it once.
            (Call::Update, _) => (
                Method::PATCH,
                COLLECTIONS_ROUTE,
                "/composite/sobjects".to_owned(),
                Resend::Always,
            ),
        };
        self.write(method, route, self.data_path(&tail), body, resend)
            .await
    }

    /// The Task a `CreateTask` asks for.
    fn task_row(&self, action: &ActionRequest) -> Value {
        let ActionRequest::CreateTask {
            key,
            object,
            record_id,
            owner_id,
            subject,
            body,
            due,
            priority,
        } = action
        else {
            unreachable!("only called with a CreateTask")
        };
        let mut row = Map::new();
        row.insert("attributes".into(), json!({"type": "Task"}));
        // A task hangs off a person by WhoId, off anything else by WhatId.
        let link = match object {
            ObjectKind::Contact | ObjectKind::Lead => "WhoId",
            ObjectKind::Account | ObjectKind::Deal => "WhatId",
        };
        row.insert(link.into(), json!(record_id.as_str()));
        if let Some(owner) = owner_id {
            row.insert("OwnerId".into(), json!(owner.as_str()));
        }
        row.insert("Subject".into(), json!(clip(subject, SUBJECT_CHARS)));
        row.insert(
            "ActivityDate".into(),
            json!(due.format("%Y-%m-%d").to_string()),
        );
        row.insert("Status".into(), json!("Not Started"));
        row.insert("Priority".into(), json!(priority_value(*priority)));
        row.insert("Description".into(), json!(description(key, body)));
        if let Some(field) = &self.settings.task_external_id {
            row.insert(field.clone(), json!(key.as_str()));
        }
        Value::Object(row)
    }

    /// Which of the creates `keys` Salesforce holds, by the external-id
    /// field when there is one, else among the tasks the integration user
    /// created since `since`.
    pub(crate) async fn find_applied_keys(
        &self,
        keys: &[ActionKey],
        since: DateTime<Utc>,
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = match &self.settings.task_external_id {
            Some(field) => self.find_by_external_id(field, keys).await?,
            None => self.find_own_tasks(keys, since).await?,
        };
        Ok(ActionOutcome::found(keys, &found))
    }

    /// Key to task id, for the keys of `keys` some task carries in `field`.
    async fn find_by_external_id(
        &self,
        field: &str,
        keys: &[ActionKey],
    ) -> Result<BTreeMap<String, String>, ConnectorError> {
        let unique: Vec<&str> = keys
            .iter()
            .map(ActionKey::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found = BTreeMap::new();
        for chunk in unique.chunks(KEYS_PER_LOOKUP) {
            let rows = self
                .query_to_end(&format!(
                    "SELECT Id, {field} FROM Task WHERE {field} IN {} ORDER BY CreatedDate, Id",
                    soql::in_list(chunk.iter().copied())
                ))
                .await?;
            for row in &rows {
                let (Some(id), Some(key)) = (text(row, "Id"), text(row, field)) else {
                    continue;
                };
                // The earliest task wins when several carry a key.
                if chunk.contains(&key) {
                    found.entry(key.to_owned()).or_insert_with(|| id.to_owned());
                }
            }
        }
        Ok(found)
    }

    /// Key to task id, for the keys of `keys` on the last line of the
    /// description of a task the integration user created since `since`
    /// (less [`CLOCK_SKEW`]). Filters on system fields only, pages to the
    /// end, and matches keys here.
    async fn find_own_tasks(
        &self,
        keys: &[ActionKey],
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, String>, ConnectorError> {
        let user = self.integration_user().await?;
        // A `since` from the dawn of time (an old ledger) reads every task
        // the user ever created, which is still right.
        let from = since
            .checked_sub_signed(CLOCK_SKEW)
            .unwrap_or(since)
            .max(DateTime::UNIX_EPOCH);
        let rows = self
            .query_to_end(&format!(
                "SELECT Id, Description FROM Task WHERE CreatedById = {} AND CreatedDate >= {} ORDER BY CreatedDate, Id",
                soql::quote(&user),
                soql::datetime(from)
            ))
            .await?;
        let wanted: BTreeSet<&str> = keys.iter().map(ActionKey::as_str).collect();
        let mut found = BTreeMap::new();
        for row in &rows {
            let (Some(id), Some(key)) = (
                text(row, "Id"),
                text(row, "Description").and_then(ActionKey::from_text),
            ) else {
                continue;
            };
            // The earliest task wins when several carry a key.
            if wanted.contains(key.as_str()) {
                found
                    .entry(key.as_str().to_owned())
                    .or_insert_with(|| id.to_owned());
            }
        }
        Ok(found)
    }

    /// The id of the user the connector writes as, from the identity URL
    /// of the token response.
    async fn integration_user(&self) -> Result<String, ConnectorError> {
        let identity = self.identity().await?;
        identity
            .as_deref()
            .and_then(user_of_identity)
            .ok_or_else(|| ConnectorError::Malformed {
                connector: self.name_str(),
                route: TOKEN_ROUTE.into(),
                reason: "the token response names no identity url (`id`) ending in the integration user's id, which the lookup of that user's own tasks needs".into(),
            })
    }
}

/// The user id an identity URL ends in: `https://login.salesforce.com/id/<org
/// id>/<user id>` (facts 6.15).
fn user_of_identity(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let parts: Vec<&str> = url.path_segments()?.filter(|p| !p.is_empty()).collect();
    let is_id = |part: &str| {
        matches!(part.len(), 15 | 18) && part.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    match parts.as_slice() {
        [.., "id", org, user] if is_id(org) && is_id(user) => Some((*user).to_owned()),
        _ => None,
    }
}

/// What became of the rows of a call that ended without their results.
struct Unanswered {
    result: ActionResult,
    reason: String,
    /// Whether the calls after it are better not sent: the CRM or the way
    /// to it is in trouble.
    hold_back: bool,
}

/// The rows' fate after a call ended in `err`; `Err` for trouble that
/// ends the whole batch (refused credentials, the daily allowance), which
/// leaves every action of it unknown.
fn unanswered(err: ConnectorError) -> Result<Unanswered, ConnectorError> {
    let reason = err.to_string();
    let (result, hold_back) = match &err {
        ConnectorError::Auth { .. }
        | ConnectorError::AllowanceExhausted { .. }
        | ConnectorError::RateLimitedUntil { .. }
        | ConnectorError::ChangesExpired { .. }
        | ConnectorError::CursorRefused { .. }
        | ConnectorError::Unsupported { .. } => return Err(err),
        // A 2xx that cannot be read: the rows were very likely written.
        ConnectorError::Malformed { .. } => (
            ActionResult::Unknown {
                reason: reason.clone(),
            },
            false,
        ),
        // Sent, and then no answer, or a server error: maybe written.
        ConnectorError::Transport { .. } => (
            ActionResult::Unknown {
                reason: reason.clone(),
            },
            true,
        ),
        ConnectorError::Api { status, .. } if *status >= 500 => (
            ActionResult::Unknown {
                reason: reason.clone(),
            },
            true,
        ),
        // Refused whole, before any row was looked at.
        ConnectorError::Api { retry, .. } => (
            ActionResult::Failed {
                reason: reason.clone(),
                retryable: *retry != Retry::Never,
            },
            false,
        ),
        // Stopped in a wait: nothing more was sent.
        ConnectorError::RateLimited { .. } | ConnectorError::Stopped { .. } => (
            ActionResult::Failed {
                reason: reason.clone(),
                retryable: true,
            },
            true,
        ),
    };
    Ok(Unanswered {
        result,
        reason,
        hold_back,
    })
}

/// Turns one call's per-row results into the results of its actions; a
/// list that does not have one result per row leaves them all unknown.
fn read_rows(
    actions: &[ActionRequest],
    rows: &Rows,
    answer: Vec<SaveResult>,
    results: &mut [Option<ActionResult>],
) {
    if answer.len() != rows.len() {
        let reason = format!(
            "salesforce answered {} results for {} records",
            answer.len(),
            rows.len()
        );
        for (at, _) in rows {
            results[*at] = Some(ActionResult::Unknown {
                reason: reason.clone(),
            });
        }
        return;
    }
    for ((at, row), result) in rows.iter().zip(answer) {
        results[*at] = Some(row_result(&actions[*at], row, result));
    }
}

/// Whether two ids name one record: their first 15 characters, which an
/// 18-character id only extends.
fn same_record(a: &str, b: &str) -> bool {
    a.len() >= 15 && b.len() >= 15 && a.get(..15) == b.get(..15)
}

/// Whether a refused row says the record it names is gone: in the recycle
/// bin or emptied from it (`ENTITY_IS_DELETED`), or unknown (`NOT_FOUND`,
/// or `INVALID_CROSS_REFERENCE_KEY` about the record's own id, not a
/// lookup field).
fn record_gone(result: &SaveResult) -> bool {
    !result.errors.is_empty()
        && result
            .errors
            .iter()
            .all(|err| match err.status_code.as_deref() {
                Some("ENTITY_IS_DELETED" | "NOT_FOUND") => true,
                Some("INVALID_CROSS_REFERENCE_KEY") => err
                    .fields
                    .iter()
                    .all(|field| field.eq_ignore_ascii_case("Id")),
                _ => false,
            })
}

/// One row's result as its action's: applied with the record's id,
/// refused with Salesforce's code and message, or unknown when the result
/// cannot be tied to the row. A completion of a task that is gone is as
/// good as done.
fn row_result(action: &ActionRequest, row: &Value, result: SaveResult) -> ActionResult {
    let sent = row.get("id").and_then(Value::as_str);
    if result.success {
        return match (result.id.as_deref(), sent) {
            (Some(id), None) => ActionResult::Applied {
                crm_id: id.to_owned(),
            },
            (None, Some(sent)) => ActionResult::Applied {
                crm_id: sent.to_owned(),
            },
            (Some(id), Some(sent)) if same_record(id, sent) => ActionResult::Applied {
                crm_id: sent.to_owned(),
            },
            (Some(id), Some(sent)) => ActionResult::Unknown {
                reason: format!("salesforce answered for record {id} where {sent} was sent"),
            },
            (None, None) => ActionResult::Unknown {
                reason: "salesforce reported a record written without its id".into(),
            },
        };
    }
    if let (ActionRequest::CompleteTask { task_id, .. }, true) = (action, record_gone(&result)) {
        return ActionResult::Applied {
            crm_id: task_id.clone(),
        };
    }
    let creates = action.creates();
    let retryable = !result.errors.is_empty()
        && result.errors.iter().all(|err| {
            err.status_code.as_deref().is_some_and(|code| {
                // A create that lost a race to another of its key on a
                // Unique external-id field: sent again, the upsert finds
                // that task and updates it.
                RETRYABLE.contains(&code) || (creates && code == "DUPLICATE_VALUE")
            })
        });
    let reason = if result.errors.is_empty() {
        "salesforce refused the row without saying why".to_owned()
    } else {
        result
            .errors
            .iter()
            .map(|err| {
                let mut text = format!(
                    "{}: {}",
                    err.status_code.as_deref().unwrap_or("UNKNOWN"),
                    err.message.as_deref().unwrap_or_default()
                );
                if !err.fields.is_empty() {
                    text.push_str(&format!(" ({})", err.fields.join(", ")));
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    ActionResult::Failed { reason, retryable }
}

/// `{attributes: {type}, id, field: value}`: one row of a collections update.
fn update_row(object: &str, id: &str, field: &str, value: &str) -> Value {
    let mut row = Map::new();
    row.insert("attributes".into(), json!({"type": object}));
    row.insert("id".into(), json!(id));
    row.insert(field.into(), json!(value));
    Value::Object(row)
}

/// The update of a task journeyd created under `task_key`: its subject,
/// description (ending with the key's line), priority, and owner if given.
fn task_update_row(
    task_id: &str,
    task_key: &ActionKey,
    owner: Option<&OwnerId>,
    subject: &str,
    body: &str,
    priority: Priority,
) -> Value {
    let mut row = Map::new();
    row.insert("attributes".into(), json!({"type": "Task"}));
    row.insert("id".into(), json!(task_id));
    row.insert("Subject".into(), json!(clip(subject, SUBJECT_CHARS)));
    row.insert("Description".into(), json!(description(task_key, body)));
    row.insert("Priority".into(), json!(priority_value(priority)));
    if let Some(owner) = owner {
        row.insert("OwnerId".into(), json!(owner.as_str()));
    }
    Value::Object(row)
}

fn priority_value(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "High",
        Priority::Normal => "Normal",
        Priority::Low => "Low",
    }
}

/// A task's description: `body` (less any key line it already ends with),
/// then the key's line, once; the body cut short so that the whole fits
/// Task.Description, since Salesforce refuses a longer one.
fn description(key: &ActionKey, body: &str) -> String {
    let mut body = body.trim_end();
    while ActionKey::from_text(body).is_some() {
        body = body
            .rsplit_once('\n')
            .map_or("", |(head, _)| head)
            .trim_end();
    }
    // The key's line and the blank line before it.
    let room = DESCRIPTION_CHARS.saturating_sub(key.line().chars().count() + 2);
    key.in_text(&clip(body, room))
}

/// `text` within `chars` characters: cut, and ending in `…`, if longer.
fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn type_of(row: &Value) -> &str {
    row.pointer("/attributes/type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(body: &str) -> SaveResult {
        serde_json::from_str(body).unwrap()
    }

    fn create() -> (ActionRequest, Value) {
        let action = ActionRequest::CreateTask {
            key: ActionKey::new("jdk1t"),
            object: ObjectKind::Deal,
            record_id: journeyd_connector::RecordId::new("006A"),
            owner_id: None,
            subject: "s".into(),
            body: "b".into(),
            due: chrono::NaiveDate::from_ymd_opt(2026, 3, 5).unwrap(),
            priority: Priority::Normal,
        };
        (
            action,
            json!({"attributes": {"type": "Task"}, "WhatId": "006A"}),
        )
    }

    fn completion(task: &str) -> (ActionRequest, Value) {
        let action = ActionRequest::CompleteTask {
            key: ActionKey::new("jdc1"),
            task_id: task.into(),
        };
        (action, update_row("Task", task, "Status", "Completed"))
    }

    const TASK: &str = "00TDn0000ZZZZZ1AAA";

    #[test]
    fn a_created_row_is_applied_with_its_new_id() {
        let (action, row) = create();
        let answer = result(r#"{"id":"00T000000000001AAA","success":true,"errors":[]}"#);
        assert_eq!(
            row_result(&action, &row, answer),
            ActionResult::Applied {
                crm_id: "00T000000000001AAA".into()
            }
        );
    }

    #[test]
    fn a_create_reported_written_without_an_id_is_unknown_not_failed() {
        let (action, row) = create();
        let answer = result(r#"{"success":true,"errors":[]}"#);
        assert!(matches!(
            row_result(&action, &row, answer),
            ActionResult::Unknown { .. }
        ));
    }

    #[test]
    fn an_updated_row_is_applied_with_the_records_own_id_in_either_form() {
        let (action, row) = completion(TASK);
        let bare = result(r#"{"success":true,"errors":[]}"#);
        let short = result(r#"{"id":"00TDn0000ZZZZZ1","success":true,"errors":[]}"#);
        for answer in [bare, short] {
            assert_eq!(
                row_result(&action, &row, answer),
                ActionResult::Applied {
                    crm_id: TASK.into()
                }
            );
        }
    }

    #[test]
    fn a_result_naming_another_record_is_unknown() {
        let (action, row) = completion(TASK);
        let answer = result(r#"{"id":"00TDn0000ZZZZZ2AAA","success":true,"errors":[]}"#);
        assert!(matches!(
            row_result(&action, &row, answer),
            ActionResult::Unknown { .. }
        ));
    }

    #[test]
    fn completing_a_task_that_is_gone_is_applied_but_updating_it_is_not() {
        let (action, row) = completion(TASK);
        for gone in [
            r#"{"success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}"#,
            r#"{"id":"00TDn0000ZZZZZ1AAA","success":false,"errors":[{"statusCode":"INVALID_CROSS_REFERENCE_KEY","message":"invalid cross reference id","fields":[]}]}"#,
            r#"{"success":false,"errors":[{"statusCode":"NOT_FOUND","message":"The requested resource does not exist"}]}"#,
        ] {
            assert_eq!(
                row_result(&action, &row, result(gone)),
                ActionResult::Applied {
                    crm_id: TASK.into()
                },
                "{gone}"
            );
        }
        let bad_owner = result(
            r#"{"success":false,"errors":[{"statusCode":"INVALID_CROSS_REFERENCE_KEY","message":"invalid cross reference id","fields":["OwnerId"]}]}"#,
        );
        assert!(matches!(
            row_result(&action, &row, bad_owner),
            ActionResult::Failed { .. }
        ));
        let update = ActionRequest::UpdateTask {
            key: ActionKey::new("jdu1"),
            task_key: ActionKey::new("jdk1t"),
            task_id: TASK.into(),
            owner_id: None,
            subject: "s".into(),
            body: "b".into(),
            priority: Priority::Low,
        };
        let deleted = result(
            r#"{"success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}"#,
        );
        assert_eq!(
            row_result(&update, &row, deleted),
            ActionResult::Failed {
                reason: "ENTITY_IS_DELETED: entity is deleted".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn a_refused_row_fails_with_salesforces_code_for_good() {
        let (action, row) = create();
        let answer = result(
            r#"{"success":false,"errors":[{"statusCode":"MALFORMED_ID","message":"bad id 006X","fields":["WhatId"]}]}"#,
        );
        assert_eq!(
            row_result(&action, &row, answer),
            ActionResult::Failed {
                reason: "MALFORMED_ID: bad id 006X (WhatId)".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn a_rolled_back_row_may_be_tried_again() {
        let (action, row) = create();
        let answer = result(
            r#"{"success":false,"errors":[{"statusCode":"ALL_OR_NONE_OPERATION_ROLLED_BACK","message":"Record rolled back because not all records were valid and the request was using AllOrNone header","fields":[]}]}"#,
        );
        assert!(matches!(
            row_result(&action, &row, answer),
            ActionResult::Failed {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn a_create_that_lost_a_race_to_its_own_key_may_be_sent_again() {
        let (action, row) = create();
        let answer = result(
            r#"{"success":false,"created":false,"errors":[{"statusCode":"DUPLICATE_VALUE","message":"duplicate value found: Journeyd_Key__c duplicates value on record with id: 00TDn0000ZZZZZ1AAA","fields":["Journeyd_Key__c"]}]}"#,
        );
        assert!(matches!(
            row_result(&action, &row, answer),
            ActionResult::Failed {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn a_result_list_of_the_wrong_length_leaves_every_row_unknown() {
        let (action, row) = create();
        let actions = vec![action.clone(), action];
        let rows = vec![(0, row.clone()), (1, row)];
        let mut results = vec![None, None];
        read_rows(
            &actions,
            &rows,
            vec![result(
                r#"{"id":"00T000000000001AAA","success":true,"errors":[]}"#,
            )],
            &mut results,
        );
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Some(ActionResult::Unknown { .. }))),
            "{results:?}"
        );
    }

    #[test]
    fn a_call_that_went_unanswered_leaves_its_rows_unknown_and_one_refused_whole_fails_them() {
        let connector = || "salesforce".to_owned();
        let route = || COLLECTIONS_ROUTE.to_owned();
        for maybe_written in [
            ConnectorError::Malformed {
                connector: connector(),
                route: route(),
                reason: "eof".into(),
            },
            ConnectorError::Transport {
                connector: connector(),
                route: route(),
                reason: "timed out".into(),
            },
            ConnectorError::Api {
                connector: connector(),
                route: route(),
                status: 503,
                message: "service unavailable".into(),
                retry: Retry::NextRun,
            },
        ] {
            let fate = unanswered(maybe_written).unwrap();
            assert!(matches!(fate.result, ActionResult::Unknown { .. }));
        }
        let refused = unanswered(ConnectorError::Api {
            connector: connector(),
            route: route(),
            status: 400,
            message: "JSON_PARSER_ERROR: bad".into(),
            retry: Retry::Never,
        })
        .unwrap();
        assert!(matches!(
            refused.result,
            ActionResult::Failed {
                retryable: false,
                ..
            }
        ));
        assert!(
            unanswered(ConnectorError::AllowanceExhausted {
                connector: connector()
            })
            .is_err()
        );
    }

    #[test]
    fn a_description_ends_with_the_key_line_once_and_fits_salesforce() {
        let key = ActionKey::new("jdk1t");
        let text = description(&key, "- first\n- second");
        assert_eq!(text, "- first\n- second\n\njourneyd-action: jdk1t");
        let again = description(&key, &text);
        assert_eq!(again, text, "a body that already ends with a key line");
        let long = description(&key, &"x".repeat(40_000));
        assert_eq!(long.chars().count(), DESCRIPTION_CHARS);
        assert_eq!(ActionKey::from_text(&long), Some(key.clone()));
        assert_eq!(description(&key, ""), "journeyd-action: jdk1t");
    }

    #[test]
    fn a_subject_is_cut_to_255_characters() {
        assert_eq!(clip("short", SUBJECT_CHARS), "short");
        let cut = clip(&"é".repeat(300), SUBJECT_CHARS);
        assert_eq!(cut.chars().count(), SUBJECT_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn the_integration_user_is_the_last_part_of_the_identity_url() {
        assert_eq!(
            user_of_identity(
                "https://login.salesforce.com/id/00D000000000001AAA/005Dn000003KxQ1IAK"
            )
            .as_deref(),
            Some("005Dn000003KxQ1IAK")
        );
        assert_eq!(
            user_of_identity("http://127.0.0.1:4000/id/00D000000000001/005Dn000003KxQ1").as_deref(),
            Some("005Dn000003KxQ1")
        );
        for bad in [
            "not a url",
            "https://login.salesforce.com/id/00D000000000001AAA",
            "https://login.salesforce.com/id/00D000000000001AAA/005' OR x",
            "https://login.salesforce.com/services/oauth2/userinfo",
        ] {
            assert_eq!(user_of_identity(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_update_row_names_its_type_id_and_field() {
        assert_eq!(
            update_row("Opportunity", "006A", "Lifecycle__c", "Customer"),
            json!({"attributes": {"type": "Opportunity"}, "id": "006A", "Lifecycle__c": "Customer"})
        );
    }

    #[test]
    fn a_task_update_row_carries_the_first_key_and_the_owner_only_when_given() {
        let key = ActionKey::new("jdk1t");
        let row = task_update_row(TASK, &key, None, "2 checks", "- a\n- b", Priority::High);
        assert_eq!(
            row,
            json!({"attributes": {"type": "Task"}, "id": TASK, "Subject": "2 checks",
                   "Description": "- a\n- b\n\njourneyd-action: jdk1t", "Priority": "High"})
        );
        let owner = OwnerId::new("005A");
        let row = task_update_row(TASK, &key, Some(&owner), "s", "b", Priority::Low);
        assert_eq!(row["OwnerId"], "005A");
    }
}
