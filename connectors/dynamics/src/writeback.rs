//! Writing back: corrective tasks, their updates and completions, and
//! column values, as `$batch`es of at most `batch_limit` requests, each
//! write a top-level part with its `Content-ID`, sent with `Prefer:
//! odata.continue-on-error` so that every part answers for itself.
//!
//! Exactly once, by construction. A task's primary key is chosen here: the
//! v5 UUID of its action key ([`task_id`]). It is created with
//! `PATCH tasks(<that id>)` and `If-None-Match: *` (facts 13, 2.4 "Upsert"):
//! 204 made it, 412 says it is already there, and both are `Applied` with
//! that id. Updates (`If-Match: *`, never a create), completions and
//! column values set values. Every write is therefore safe to send again,
//! whenever: the HTTP client resends a batch whose answer was lost, and a
//! rerun resends what it never saw confirmed, even while Dataverse is
//! still finishing an orphaned batch of the run that died (facts 13).
//!
//! When `task_alternate_key` names a task column with an alternate key
//! over it, the key is written there too, so admins can find tasks by it.
//! A task an earlier version upserted by that key has an id of the
//! server's choosing; creating it again by the v5 id breaks the alternate
//! key's uniqueness, which Dataverse refuses (412, `0x80060892`): that
//! proves the task exists, and its id is read by the alternate key.
//!
//! An answer that does not prove what happened (an unreadable batch, a
//! part missing from it, a 5xx part) is `Unknown`, never `Failed`:
//! `Failed` means the write was certainly not made.
//!
//! `find_applied` remains for tasks written by earlier versions (a `POST`,
//! the key on the description's last line `journeyd-action: KEY`, or in
//! the alternate key column): it looks each key up by its v5 id and by
//! that marker.

use crate::batch::{self, Answer};
use crate::connector::{DynamicsConnector, READ_ROUTE};
use crate::dialect::describe;
use crate::normalize::table;
use crate::odata::{guid, is_column, query_string, quote};
use crate::task_id::task_id;
use crate::wire::{error_of, text};
use journeyd_connector::action::KEY_LINE;
use journeyd_connector::http::Resend;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorError, OwnerId, Priority,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Keys per lookup GET: each adds an id and a `contains(…)` or a literal
/// to its URL.
const KEYS_PER_LOOKUP: usize = 20;

/// Dataverse's cap on a task's subject.
const SUBJECT_CHARS: usize = 200;

/// Error codes that mean "a row with these key values already exists": the
/// alternate key's uniqueness (`DuplicateRecordEntityKey`) and the primary
/// key's (`DuplicateRecord`, "Cannot insert duplicate key").
const DUPLICATE_CODES: [&str; 2] = ["0x80060892", "0x80040237"];

/// What a write does, which decides how its answer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Creates a task by its v5 id, insert only.
    Create,
    /// Rewrites a task journeyd created; never creates.
    Update,
    /// Completes a task.
    Complete,
    /// Sets a column of a record.
    SetField,
}

/// One write to send.
struct Send {
    request: batch::Request,
    /// The id its outcome is reported under: the task's v5 id, or the
    /// record the URL names.
    id: String,
    write: Write,
}

/// What one action turns into: a write to send, or an outcome known
/// without asking (an id that is no GUID, a label no option has).
enum Prepared {
    Send(Send),
    Settled(ActionResult),
}

fn refused(reason: impl Into<String>) -> Prepared {
    Prepared::Settled(ActionResult::Failed {
        reason: reason.into(),
        retryable: false,
    })
}

/// What one part's answer says.
#[derive(Debug, Clone, PartialEq)]
enum Reading {
    Settled(ActionResult),
    /// A create found its task already there; under an alternate key its
    /// id is still to be read.
    Exists,
}

impl DynamicsConnector {
    pub(crate) async fn apply_actions(
        &self,
        actions: &[ActionRequest],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let mut results: Vec<Option<ActionResult>> = vec![None; actions.len()];
        let mut sends: Vec<(usize, Send)> = Vec::new();
        for (at, action) in actions.iter().enumerate() {
            match self.prepare(action).await? {
                Prepared::Settled(result) => results[at] = Some(result),
                Prepared::Send(send) => sends.push((at, send)),
            }
        }
        // Creates that found their task there, with the key to read its id by.
        let mut existing: Vec<(usize, &ActionKey, &Send)> = Vec::new();
        // Batches to send, as ranges of `sends`; one the server refuses as
        // too large (413, nothing run) is sent again as two halves.
        let mut queue: std::collections::VecDeque<std::ops::Range<usize>> = (0..sends.len())
            .step_by(self.batch_size())
            .map(|start| start..(start + self.batch_size()).min(sends.len()))
            .collect();
        let mut sent_any = false;
        while let Some(range) = queue.pop_front() {
            let chunk = &sends[range.clone()];
            let requests: Vec<batch::Request> =
                chunk.iter().map(|(_, send)| send.request.clone()).collect();
            // Every write is idempotent (see the module's docs): a batch
            // whose answer was lost may be sent again as it is.
            let answers = match self.batch(&requests, Resend::Always).await {
                Ok(answers) => answers,
                Err(ConnectorError::Api { status: 413, .. }) if chunk.len() > 1 => {
                    let middle = range.start + chunk.len() / 2;
                    queue.push_front(middle..range.end);
                    queue.push_front(range.start..middle);
                    continue;
                }
                Err(err @ ConnectorError::Malformed { .. }) => {
                    // A 2xx that cannot be read: the batch ran, how is not known.
                    sent_any = true;
                    for (at, _) in chunk.iter() {
                        results[*at] = Some(unknown(format!("the batch answer: {err}")));
                    }
                    continue;
                }
                // Nothing of this call is known yet: the call as a whole
                // ends, which leaves every action unconfirmed.
                Err(err) if !sent_any => return Err(err),
                Err(err) => {
                    for (at, _) in chunk.iter() {
                        results[*at] = Some(unknown(format!("the batch was sent: {err}")));
                    }
                    for (at, _) in queue.iter().flat_map(|r| sends[r.clone()].iter()) {
                        results[*at] = Some(ActionResult::Failed {
                            reason: format!("not sent after an earlier batch failed: {err}"),
                            retryable: true,
                        });
                    }
                    break;
                }
            };
            sent_any = true;
            for ((at, send), answer) in chunk.iter().zip(match_answers(chunk.len(), answers)) {
                let reading = match answer {
                    Some(answer) => read_part(&answer, send),
                    None => Reading::Settled(unknown(
                        "the batch answer has no part that can be tied to this write",
                    )),
                };
                match reading {
                    Reading::Settled(result) => results[*at] = Some(result),
                    Reading::Exists => existing.push((*at, actions[*at].key(), send)),
                }
            }
        }
        if !existing.is_empty() {
            let keys: Vec<&ActionKey> = existing.iter().map(|(_, key, _)| *key).collect();
            let found = self.ids_by_alternate_key(&keys).await;
            for (at, key, send) in existing {
                results[at] = Some(match &found {
                    Ok(found) => ActionResult::Applied {
                        crm_id: found
                            .get(key.as_str())
                            .cloned()
                            .unwrap_or_else(|| send.id.clone()),
                    },
                    Err(err) => unknown(format!(
                        "the task exists, but its id could not be read: {err}"
                    )),
                });
            }
        }
        Ok(actions
            .iter()
            .zip(results)
            .map(|(action, result)| ActionOutcome {
                key: action.key().clone(),
                result: result.expect("every action is settled or sent"),
            })
            .collect())
    }

    async fn prepare(&self, action: &ActionRequest) -> Result<Prepared, ConnectorError> {
        Ok(match action {
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
                let Some(record) = guid(record_id.as_str()) else {
                    return Ok(refused(format!("{record_id} is not a dataverse id")));
                };
                let regarding = table(*object);
                let mut row = task_text(key, subject, body, *priority);
                // Noon UTC keeps the due date the same day across time zones.
                row.insert(
                    "scheduledend".into(),
                    json!(format!("{}T12:00:00Z", due.format("%Y-%m-%d"))),
                );
                row.insert(
                    format!("regardingobjectid_{}_task@odata.bind", regarding.logical),
                    json!(format!("/{}({record})", regarding.set)),
                );
                if let Some(owner) = owner_id {
                    let Some(bind) = self.owner_bind(owner).await? else {
                        return Ok(refused(format!("owner {owner} is not a dataverse id")));
                    };
                    row.insert("ownerid@odata.bind".into(), json!(bind));
                }
                if let Some(column) = &self.settings.task_alternate_key {
                    row.insert(column.clone(), json!(key.as_str()));
                }
                let id = task_id(key);
                Prepared::Send(Send {
                    request: batch::Request {
                        method: "PATCH",
                        url: self.url(&format!("tasks({id})")),
                        headers: vec![("If-None-Match", "*".into())],
                        json: Some(Value::Object(row)),
                    },
                    id,
                    write: Write::Create,
                })
            }
            ActionRequest::UpdateTask {
                task_key,
                task_id,
                owner_id,
                subject,
                body,
                priority,
                ..
            } => {
                let Some(task) = guid(task_id) else {
                    return Ok(refused(format!("{task_id} is not a dataverse id")));
                };
                let mut row = task_text(task_key, subject, body, *priority);
                if let Some(owner) = owner_id {
                    let Some(bind) = self.owner_bind(owner).await? else {
                        return Ok(refused(format!("owner {owner} is not a dataverse id")));
                    };
                    row.insert("ownerid@odata.bind".into(), json!(bind));
                }
                Prepared::Send(Send {
                    request: self.update("tasks", &task, row),
                    id: task,
                    write: Write::Update,
                })
            }
            ActionRequest::SetField {
                object,
                record_id,
                field,
                value,
                ..
            } => {
                let Some(record) = guid(record_id.as_str()) else {
                    return Ok(refused(format!("{record_id} is not a dataverse id")));
                };
                if !is_column(field) {
                    return Ok(refused(format!("{field:?} is not a column logical name")));
                }
                let table = table(*object);
                let value = match self.options(table.logical, field).await? {
                    Some(options) => match option_value(&options, value) {
                        Some(number) => json!(number),
                        None => {
                            return Ok(refused(format!(
                                "{}.{field} has no option labelled {value:?}",
                                table.logical
                            )));
                        }
                    },
                    None => plain_value(value),
                };
                let mut row = Map::new();
                row.insert(field.clone(), value);
                Prepared::Send(Send {
                    request: self.update(table.set, &record, row),
                    id: record,
                    write: Write::SetField,
                })
            }
            ActionRequest::CompleteTask { task_id, .. } => {
                let Some(task) = guid(task_id) else {
                    return Ok(refused(format!("{task_id} is not a dataverse id")));
                };
                let mut row = Map::new();
                row.insert("statecode".into(), json!(1));
                row.insert("statuscode".into(), json!(5));
                Prepared::Send(Send {
                    request: self.update("tasks", &task, row),
                    id: task,
                    write: Write::Complete,
                })
            }
        })
    }

    /// The `ownerid@odata.bind` value for `owner`, a team's or a user's;
    /// `None` when the id is no GUID.
    async fn owner_bind(&self, owner: &OwnerId) -> Result<Option<String>, ConnectorError> {
        let Some(owner) = guid(owner.as_str()) else {
            return Ok(None);
        };
        let set = if self.is_team(&owner).await? {
            "teams"
        } else {
            "systemusers"
        };
        Ok(Some(format!("/{set}({owner})")))
    }

    /// `PATCH <set>(<id>)` with `If-Match: *`: an update, never a create.
    fn update(&self, set: &str, id: &str, row: Map<String, Value>) -> batch::Request {
        batch::Request {
            method: "PATCH",
            url: self.url(&format!("{set}({id})")),
            headers: vec![("If-Match", "*".into())],
            json: Some(Value::Object(row)),
        }
    }

    /// The ids of the tasks holding `keys` in the alternate key column, by
    /// key; empty when there is no such column.
    async fn ids_by_alternate_key(
        &self,
        keys: &[&ActionKey],
    ) -> Result<HashMap<String, String>, ConnectorError> {
        let Some(column) = self.settings.task_alternate_key.as_deref() else {
            return Ok(HashMap::new());
        };
        let urls: Vec<String> = keys
            .chunks(KEYS_PER_LOOKUP)
            .map(|chunk| {
                let filter: Vec<String> = chunk
                    .iter()
                    .map(|key| format!("{column} eq {}", quote(key.as_str())))
                    .collect();
                self.url(&format!(
                    "tasks?{}",
                    query_string(&[
                        ("$select", format!("activityid,{column}")),
                        ("$filter", filter.join(" or ")),
                    ])
                ))
            })
            .collect();
        let rows = self.get_many(READ_ROUTE, urls).await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let id = text(row, "activityid").and_then(guid)?;
                Some((text(row, column)?.to_owned(), id))
            })
            .collect())
    }

    /// Which of `keys` have a task: by the v5 id a create gives it, and,
    /// for tasks of earlier versions, by the alternate key column or the
    /// description's marker line.
    ///
    /// No `createdon` bound is put on the lookup: it is the server's clock,
    /// the time a write was sent is the client's, and a skew between them
    /// would hide a task that exists.
    pub(crate) async fn find_applied_keys(
        &self,
        keys: &[ActionKey],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let unique: Vec<&str> = keys
            .iter()
            .map(ActionKey::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let alternate = self.settings.task_alternate_key.as_deref();
        let by_id: HashMap<String, &str> = unique
            .iter()
            .map(|key| (task_id(&ActionKey::new(*key)), *key))
            .collect();
        let urls: Vec<String> = unique
            .chunks(KEYS_PER_LOOKUP)
            .map(|chunk| {
                let mut filter: Vec<String> = chunk
                    .iter()
                    .map(|key| format!("activityid eq {}", task_id(&ActionKey::new(*key))))
                    .collect();
                let select = match alternate {
                    Some(column) => {
                        filter.extend(
                            chunk
                                .iter()
                                .map(|key| format!("{column} eq {}", quote(key))),
                        );
                        format!("activityid,{column}")
                    }
                    None => {
                        filter.extend(chunk.iter().map(|key| {
                            format!(
                                "contains(description,{})",
                                quote(&format!("{KEY_LINE}{key}"))
                            )
                        }));
                        "activityid,description".to_owned()
                    }
                };
                self.url(&format!(
                    "tasks?{}",
                    query_string(&[
                        ("$select", select),
                        ("$filter", filter.join(" or ")),
                        ("$orderby", "createdon asc,activityid asc".into()),
                    ])
                ))
            })
            .collect();
        if urls.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.get_many(READ_ROUTE, urls).await?;
        let wanted: BTreeSet<&str> = unique.iter().copied().collect();
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for row in &rows {
            let Some(id) = text(row, "activityid").and_then(guid) else {
                continue;
            };
            let key = match by_id.get(&id) {
                Some(key) => Some((*key).to_owned()),
                None => match alternate {
                    Some(column) => text(row, column).map(str::to_owned),
                    None => text(row, "description")
                        .and_then(ActionKey::from_text)
                        .map(|key| key.as_str().to_owned()),
                },
            };
            // The earliest task wins when several carry a key; `contains`
            // also matches a longer key, which the exact read drops.
            if let Some(key) = key.filter(|key| wanted.contains(key.as_str())) {
                found.entry(key).or_insert(id);
            }
        }
        Ok(ActionOutcome::found(keys, &found))
    }
}

/// A task's subject (cut to Dataverse's 200 characters), its description
/// (`body`, then the marker line of `key`, the only one), and its priority.
fn task_text(key: &ActionKey, subject: &str, body: &str, priority: Priority) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(
        "subject".into(),
        json!(subject.chars().take(SUBJECT_CHARS).collect::<String>()),
    );
    row.insert("description".into(), json!(key.in_text(&unmarked(body))));
    row.insert(
        "prioritycode".into(),
        json!(match priority {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }),
    );
    row
}

/// `body` without marker lines, so that the one appended is the only one
/// and the last; a body without any is kept as it is.
fn unmarked(body: &str) -> String {
    let marker = KEY_LINE.trim_end();
    let is_marker = |line: &str| line.trim_start().starts_with(marker);
    if !body.lines().any(is_marker) {
        return body.to_owned();
    }
    body.lines()
        .filter(|line| !is_marker(line))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

fn unknown(reason: impl Into<String>) -> ActionResult {
    ActionResult::Unknown {
        reason: reason.into(),
    }
}

/// The answers of a chunk of `sent` writes, in the order they were sent:
/// by `Content-ID` where every part echoes a distinct one of them, else by
/// position when there is exactly one answer per write. Otherwise no
/// answer can be tied to its write, and none is.
fn match_answers(sent: usize, answers: Vec<Answer>) -> Vec<Option<Answer>> {
    let mut matched: Vec<Option<Answer>> = vec![None; sent];
    let ids: Option<Vec<usize>> = answers
        .iter()
        .map(|answer| {
            answer
                .content_id
                .as_deref()
                .and_then(|id| id.trim().parse::<usize>().ok())
                .filter(|id| (1..=sent).contains(id))
        })
        .collect();
    let distinct = ids
        .as_ref()
        .is_some_and(|ids| ids.iter().collect::<BTreeSet<_>>().len() == ids.len());
    match ids {
        Some(ids) if distinct => {
            for (id, answer) in ids.into_iter().zip(answers) {
                matched[id - 1] = Some(answer);
            }
        }
        _ if answers.len() == sent => {
            for (slot, answer) in matched.iter_mut().zip(answers) {
                *slot = Some(answer);
            }
        }
        _ => {}
    }
    matched
}

/// Whether an error answer says a row with these key values exists.
fn is_duplicate(answer: &Answer) -> bool {
    error_of(answer.body.as_bytes()).is_some_and(|(code, _)| {
        DUPLICATE_CODES
            .iter()
            .any(|known| known.eq_ignore_ascii_case(code.trim()))
    })
}

/// One part's answer to `send`: applied with the written record's id,
/// already there, certainly not written (Dataverse refused it: retryable
/// on a 429, or when an update's task is not there yet), or unknown (a 5xx:
/// the part may have been carried out).
fn read_part(answer: &Answer, send: &Send) -> Reading {
    let status = answer.status;
    let applied = || {
        Reading::Settled(ActionResult::Applied {
            crm_id: send.id.clone(),
        })
    };
    if (200..300).contains(&status) {
        return applied();
    }
    let reason = format!("{} ({status})", describe(status, answer.body.as_bytes()));
    let failed = |retryable| {
        Reading::Settled(ActionResult::Failed {
            reason: reason.clone(),
            retryable,
        })
    };
    match (send.write, status) {
        (Write::Create, 412) => Reading::Exists,
        (Write::Create, 400..=499) if is_duplicate(answer) => Reading::Exists,
        // Someone deleted the task: as good as closed.
        (Write::Complete, 404 | 410) => applied(),
        // The task is not there yet (its create may still be running on
        // the server) or was deleted; a later run tries again.
        (Write::Update, 404) => failed(true),
        (_, 408 | 429) => failed(true),
        (_, 500..) => Reading::Settled(unknown(reason)),
        _ => failed(false),
    }
}

/// An option's value by its label (exactly, else ignoring case), or the
/// option value itself written as a number.
fn option_value(options: &[(i64, String)], value: &str) -> Option<i64> {
    options
        .iter()
        .find(|(_, label)| label == value)
        .or_else(|| {
            options
                .iter()
                .find(|(_, label)| label.to_lowercase() == value.to_lowercase())
        })
        .map(|(number, _)| *number)
        .or_else(|| {
            let number = value.trim().parse::<i64>().ok()?;
            options
                .iter()
                .any(|(known, _)| *known == number)
                .then_some(number)
        })
}

/// A value for a column that is no choice: a number as a number, `true`
/// and `false` as booleans, nothing as null, anything else as text.
fn plain_value(value: &str) -> Value {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    if let Ok(number) = trimmed.parse::<i64>() {
        return json!(number);
    }
    if let Some(number) = trimmed
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(number);
    }
    match trimmed {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => json!(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str, id: Option<&str>) -> Answer {
        Answer {
            status,
            content_id: id.map(str::to_owned),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        }
    }

    const TASK: &str = "a1b2c3d4-0000-4000-8000-000000000001";

    fn send(write: Write) -> Send {
        Send {
            request: batch::Request {
                method: "PATCH",
                url: format!("https://o/api/data/v9.2/tasks({TASK})"),
                headers: Vec::new(),
                json: None,
            },
            id: TASK.into(),
            write,
        }
    }

    fn applied() -> Reading {
        Reading::Settled(ActionResult::Applied {
            crm_id: TASK.into(),
        })
    }

    #[test]
    fn a_create_made_or_found_already_there_is_applied_under_its_own_id() {
        let link = format!("https://o/api/data/v9.2/tasks({TASK})");
        let made = answer(204, &[("OData-EntityId", &link)], "", Some("1"));
        assert_eq!(read_part(&made, &send(Write::Create)), applied());
        // The conditional operations doc's answer, with its empty code.
        let there = answer(
            412,
            &[],
            r#"{"error":{"code":"","message":"A record with matching key values already exists."}}"#,
            Some("1"),
        );
        assert_eq!(read_part(&there, &send(Write::Create)), Reading::Exists);
        let key_taken = answer(
            400,
            &[],
            r#"{"error":{"code":"0x80060892","message":"A record that has the attribute values x already exists."}}"#,
            None,
        );
        assert_eq!(read_part(&key_taken, &send(Write::Create)), Reading::Exists);
    }

    #[test]
    fn a_create_part_answered_2xx_is_applied_whatever_its_body_says() {
        // The id is journeyd's own, so nothing needs reading from the body;
        // a 2xx status line proves the row was written.
        let garbled = answer(201, &[], "{\"activityid\":\u{0}<garbled", Some("1"));
        assert_eq!(read_part(&garbled, &send(Write::Create)), applied());
    }

    #[test]
    fn a_5xx_part_is_unknown_and_a_throttled_one_failed_for_now() {
        for status in [500, 502, 503, 504] {
            assert!(
                matches!(
                    read_part(&answer(status, &[], "", None), &send(Write::Create)),
                    Reading::Settled(ActionResult::Unknown { .. })
                ),
                "{status}"
            );
        }
        assert!(matches!(
            read_part(&answer(429, &[], "", None), &send(Write::Create)),
            Reading::Settled(ActionResult::Failed {
                retryable: true,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_task_completes_but_does_not_update() {
        let missing = answer(
            404,
            &[],
            r#"{"error":{"code":"0x80040217","message":"task With Id = x Does Not Exist"}}"#,
            None,
        );
        assert_eq!(read_part(&missing, &send(Write::Complete)), applied());
        assert_eq!(
            read_part(&answer(410, &[], "", None), &send(Write::Complete)),
            applied()
        );
        assert_eq!(
            read_part(&missing, &send(Write::Update)),
            Reading::Settled(ActionResult::Failed {
                reason: "0x80040217: task With Id = x Does Not Exist (404)".into(),
                retryable: true
            })
        );
        assert!(matches!(
            read_part(&missing, &send(Write::SetField)),
            Reading::Settled(ActionResult::Failed {
                retryable: false,
                ..
            })
        ));
    }

    #[test]
    fn a_refused_create_fails_for_good() {
        let invalid = answer(
            400,
            &[],
            r#"{"error":{"code":"0x80044331","message":"A validation error occurred."}}"#,
            None,
        );
        assert!(matches!(
            read_part(&invalid, &send(Write::Create)),
            Reading::Settled(ActionResult::Failed {
                retryable: false,
                ..
            })
        ));
    }

    #[test]
    fn answers_are_matched_by_content_id_else_by_position_else_not_at_all() {
        let out_of_order = vec![
            answer(204, &[], "", Some("2")),
            answer(400, &[], "", Some("1")),
        ];
        let matched = match_answers(2, out_of_order);
        assert_eq!(matched[0].as_ref().unwrap().status, 400);
        assert_eq!(matched[1].as_ref().unwrap().status, 204);
        let missing_one = match_answers(3, vec![answer(204, &[], "", Some("2"))]);
        assert!(missing_one[0].is_none() && missing_one[2].is_none());
        assert_eq!(missing_one[1].as_ref().unwrap().status, 204);
        let by_position = match_answers(
            2,
            vec![answer(204, &[], "", None), answer(400, &[], "", None)],
        );
        assert_eq!(by_position[1].as_ref().unwrap().status, 400);
        let short = match_answers(3, vec![answer(204, &[], "", None)]);
        assert!(
            short.iter().all(Option::is_none),
            "cannot be tied to a write"
        );
        let twice = match_answers(
            2,
            vec![
                answer(204, &[], "", Some("1")),
                answer(400, &[], "", Some("1")),
            ],
        );
        assert_eq!(twice[1].as_ref().unwrap().status, 400, "by position");
    }

    #[test]
    fn a_task_description_ends_with_exactly_one_marker_line() {
        let key = ActionKey::new("jd-7");
        let row = task_text(&key, &"s".repeat(250), "- one\n- two", Priority::High);
        assert_eq!(row["subject"].as_str().unwrap().chars().count(), 200);
        assert_eq!(row["description"], "- one\n- two\n\njourneyd-action: jd-7");
        assert_eq!(row["prioritycode"], 2);
        let stale = task_text(
            &key,
            "s",
            "- one\n\njourneyd-action: jd-old\n",
            Priority::Low,
        );
        assert_eq!(stale["description"], "- one\n\njourneyd-action: jd-7");
        assert_eq!(unmarked("keep\r\nas is"), "keep\r\nas is");
    }

    #[test]
    fn a_choice_is_written_by_the_value_of_its_label() {
        let options = [
            (100000000, "Onboarding".to_owned()),
            (100000001, "Won't \"go\"".to_owned()),
        ];
        assert_eq!(option_value(&options, "Won't \"go\""), Some(100000001));
        assert_eq!(option_value(&options, "onboarding"), Some(100000000));
        assert_eq!(option_value(&options, "100000001"), Some(100000001));
        assert_eq!(option_value(&options, "7"), None);
        assert_eq!(option_value(&options, "Churned"), None);
    }

    #[test]
    fn a_plain_value_is_sent_as_a_number_when_it_is_one() {
        assert_eq!(plain_value("42"), json!(42));
        assert_eq!(plain_value("4.5"), json!(4.5));
        assert_eq!(plain_value("true"), json!(true));
        assert_eq!(plain_value(""), Value::Null);
        assert_eq!(plain_value("Customer"), json!("Customer"));
    }
}
