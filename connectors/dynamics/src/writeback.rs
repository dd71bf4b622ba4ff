//! Writing back: corrective tasks, column values and task completions, as
//! `$batch`es of at most `batch_limit` requests, each write a top-level
//! part with its `Content-ID`, sent with `Prefer: odata.continue-on-error`
//! so that every part answers for itself.
//!
//! Idempotency. Every task carries its action key on its description's
//! last line (`journeyd-action: KEY`) and, when `task_alternate_key` names a
//! task column with an alternate key over it, in that column too: tasks
//! are then upserted (`PATCH tasks(<column>='<key>')`), so sending a batch
//! twice writes each task once, and the batch may be resent freely. Without
//! it, a batch that creates is sent at most once when its fate is unknown
//! (`Resend::OnlyIfNotReceived`), and `find_applied` looks the marker up
//! with `contains(description, …)`.

use crate::batch::{self, Answer};
use crate::connector::{DynamicsConnector, READ_ROUTE};
use crate::dialect::describe;
use crate::normalize::table;
use crate::odata::{encode, guid, is_column, query_string, quote};
use crate::wire::text;
use journeyd_connector::action::KEY_LINE;
use journeyd_connector::http::Resend;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorError, Priority,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Keys per lookup GET: each adds a `contains(…)` or a literal to its URL.
const KEYS_PER_LOOKUP: usize = 20;

/// Dataverse's cap on a task's subject.
const SUBJECT_CHARS: usize = 200;

/// What one action turns into: a request to send, or an outcome known
/// without asking (an id that is no GUID, a label no option has).
enum Prepared {
    Send {
        request: batch::Request,
        /// The record the request writes to, when its URL names it.
        target: Option<String>,
        /// Whether sending it twice could write twice.
        creates: bool,
    },
    Settled(ActionResult),
}

fn refused(reason: impl Into<String>) -> Prepared {
    Prepared::Settled(ActionResult::Failed {
        reason: reason.into(),
        retryable: false,
    })
}

impl DynamicsConnector {
    pub(crate) async fn apply_actions(
        &self,
        actions: &[ActionRequest],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let mut prepared = Vec::with_capacity(actions.len());
        for action in actions {
            prepared.push(self.prepare(action).await?);
        }
        let mut results: Vec<Option<ActionResult>> = vec![None; actions.len()];
        let mut sends: Vec<(usize, batch::Request, Option<String>, bool)> = Vec::new();
        for (at, prepared) in prepared.into_iter().enumerate() {
            match prepared {
                Prepared::Settled(result) => results[at] = Some(result),
                Prepared::Send {
                    request,
                    target,
                    creates,
                } => sends.push((at, request, target, creates)),
            }
        }
        for chunk in sends.chunks(self.batch_size()) {
            let requests: Vec<batch::Request> = chunk
                .iter()
                .map(|(_, request, ..)| request.clone())
                .collect();
            let resend = if chunk.iter().any(|(.., creates)| *creates) {
                Resend::OnlyIfNotReceived
            } else {
                Resend::Always
            };
            let answers = self.batch(&requests, resend).await?;
            let matched = match_answers(chunk.len(), answers);
            for ((at, _, target, _), answer) in chunk.iter().zip(matched) {
                results[*at] = Some(match answer {
                    Some(answer) => part_result(&answer, target.as_deref()),
                    None => ActionResult::Failed {
                        reason: "the batch answered no part for this write".into(),
                        retryable: true,
                    },
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
                let mut row = Map::new();
                row.insert(
                    "subject".into(),
                    json!(subject.chars().take(SUBJECT_CHARS).collect::<String>()),
                );
                row.insert("description".into(), json!(key.in_text(body)));
                // Noon UTC keeps the due date the same day across time zones.
                row.insert(
                    "scheduledend".into(),
                    json!(format!("{}T12:00:00Z", due.format("%Y-%m-%d"))),
                );
                row.insert(
                    "prioritycode".into(),
                    json!(match priority {
                        Priority::Low => 0,
                        Priority::Normal => 1,
                        Priority::High => 2,
                    }),
                );
                row.insert(
                    format!("regardingobjectid_{}_task@odata.bind", regarding.logical),
                    json!(format!("/{}({record})", regarding.set)),
                );
                if let Some(owner) = owner_id {
                    let Some(owner) = guid(owner.as_str()) else {
                        return Ok(refused(format!("owner {owner} is not a dataverse id")));
                    };
                    let set = if self.is_team(&owner).await? {
                        "teams"
                    } else {
                        "systemusers"
                    };
                    row.insert(
                        "ownerid@odata.bind".into(),
                        json!(format!("/{set}({owner})")),
                    );
                }
                match &self.settings.task_alternate_key {
                    Some(column) => {
                        row.insert(column.clone(), json!(key.as_str()));
                        Prepared::Send {
                            request: batch::Request {
                                method: "PATCH",
                                url: self.url(&format!(
                                    "tasks({column}={})",
                                    encode(&quote(key.as_str()))
                                )),
                                headers: Vec::new(),
                                json: Some(Value::Object(row)),
                            },
                            target: None,
                            creates: false,
                        }
                    }
                    None => Prepared::Send {
                        request: batch::Request {
                            method: "POST",
                            url: self.url("tasks"),
                            headers: Vec::new(),
                            json: Some(Value::Object(row)),
                        },
                        target: None,
                        creates: true,
                    },
                }
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
                Prepared::Send {
                    request: self.update(table.set, &record, row),
                    target: Some(record),
                    creates: false,
                }
            }
            ActionRequest::UpdateTask { .. } => refused("updating a task is not supported yet"),
            ActionRequest::CompleteTask { task_id, .. } => {
                let Some(task) = guid(task_id) else {
                    return Ok(refused(format!("{task_id} is not a dataverse id")));
                };
                let mut row = Map::new();
                row.insert("statecode".into(), json!(1));
                row.insert("statuscode".into(), json!(5));
                Prepared::Send {
                    request: self.update("tasks", &task, row),
                    target: Some(task),
                    creates: false,
                }
            }
        })
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
        let urls: Vec<String> = unique
            .chunks(KEYS_PER_LOOKUP)
            .map(|chunk| {
                let (select, filter) = match alternate {
                    Some(column) => (
                        format!("activityid,{column}"),
                        chunk
                            .iter()
                            .map(|key| format!("{column} eq {}", quote(key)))
                            .collect::<Vec<_>>(),
                    ),
                    None => (
                        "activityid,description".to_owned(),
                        chunk
                            .iter()
                            .map(|key| {
                                format!(
                                    "contains(description,{})",
                                    quote(&format!("{KEY_LINE}{key}"))
                                )
                            })
                            .collect(),
                    ),
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
            let Some(id) = text(row, "activityid") else {
                continue;
            };
            let key = match alternate {
                Some(column) => text(row, column).map(str::to_owned),
                None => text(row, "description")
                    .and_then(ActionKey::from_text)
                    .map(|key| key.as_str().to_owned()),
            };
            // The earliest task wins when several carry a key; `contains`
            // also matches a longer key, which the exact read drops.
            if let Some(key) = key.filter(|key| wanted.contains(key.as_str())) {
                found.entry(key).or_insert_with(|| id.to_ascii_lowercase());
            }
        }
        Ok(ActionOutcome::found(keys, &found))
    }
}

/// The answers of a chunk of `sent` writes, in the order they were sent:
/// by `Content-ID` where every part echoes one, else by position.
fn match_answers(sent: usize, answers: Vec<Answer>) -> Vec<Option<Answer>> {
    let mut matched: Vec<Option<Answer>> = vec![None; sent];
    let by_id = answers.iter().all(|answer| {
        answer
            .content_id
            .as_deref()
            .and_then(|id| id.trim().parse::<usize>().ok())
            .is_some_and(|id| (1..=sent).contains(&id))
    });
    for (position, answer) in answers.into_iter().enumerate() {
        let slot = if by_id {
            answer
                .content_id
                .as_deref()
                .and_then(|id| id.trim().parse::<usize>().ok())
                .map(|id| id - 1)
        } else {
            Some(position)
        };
        if let Some(slot) = slot.filter(|&slot| slot < sent) {
            matched[slot] = Some(answer);
        }
    }
    matched
}

/// The GUID in the last parentheses of an `OData-EntityId`
/// (`…/tasks(<guid>)`).
fn entity_id(link: &str) -> Option<String> {
    let open = link.rfind('(')?;
    let close = link[open..].find(')')? + open;
    guid(&link[open + 1..close])
}

/// One part's answer as an outcome: applied with the written record's id,
/// or failed with Dataverse's message, retryable on a 429 or a 5xx.
fn part_result(answer: &Answer, target: Option<&str>) -> ActionResult {
    if (200..300).contains(&answer.status) {
        let from_body = || {
            serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|body| body.get("activityid")?.as_str().and_then(guid))
        };
        return match answer
            .header("OData-EntityId")
            .and_then(entity_id)
            .or_else(from_body)
            .or_else(|| target.map(str::to_owned))
        {
            Some(crm_id) => ActionResult::Applied { crm_id },
            None => ActionResult::Failed {
                reason: "dataverse reported success without naming the record".into(),
                retryable: true,
            },
        };
    }
    ActionResult::Failed {
        reason: format!(
            "{} ({})",
            describe(answer.status, answer.body.as_bytes()),
            answer.status
        ),
        retryable: answer.status == 429 || answer.status >= 500,
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

    #[test]
    fn a_created_task_is_applied_with_the_id_its_entity_link_names() {
        let link = format!("https://o/api/data/v9.2/tasks({TASK})");
        let created = answer(204, &[("OData-EntityId", &link)], "", Some("1"));
        assert_eq!(
            part_result(&created, None),
            ActionResult::Applied {
                crm_id: TASK.into()
            }
        );
        let updated = answer(204, &[], "", None);
        assert_eq!(
            part_result(&updated, Some(TASK)),
            ActionResult::Applied {
                crm_id: TASK.into()
            }
        );
        let represented = answer(201, &[], &format!("{{\"activityid\":\"{TASK}\"}}"), None);
        assert_eq!(
            part_result(&represented, None),
            ActionResult::Applied {
                crm_id: TASK.into()
            }
        );
    }

    #[test]
    fn a_refused_part_fails_for_good_and_a_throttled_one_may_be_retried() {
        let missing = answer(
            404,
            &[],
            r#"{"error":{"code":"0x80040217","message":"task With Id = x Does Not Exist"}}"#,
            None,
        );
        assert_eq!(
            part_result(&missing, Some(TASK)),
            ActionResult::Failed {
                reason: "0x80040217: task With Id = x Does Not Exist (404)".into(),
                retryable: false
            }
        );
        for status in [429, 500, 503] {
            assert!(matches!(
                part_result(&answer(status, &[], "", None), None),
                ActionResult::Failed {
                    retryable: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn answers_are_matched_by_content_id_else_by_position() {
        let out_of_order = vec![
            answer(204, &[], "", Some("2")),
            answer(400, &[], "", Some("1")),
        ];
        let matched = match_answers(2, out_of_order);
        assert_eq!(matched[0].as_ref().unwrap().status, 400);
        assert_eq!(matched[1].as_ref().unwrap().status, 204);
        let short = match_answers(3, vec![answer(204, &[], "", None)]);
        assert_eq!(short[0].as_ref().unwrap().status, 204);
        assert!(short[1].is_none() && short[2].is_none());
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

    #[test]
    fn an_entity_link_yields_its_guid_only() {
        assert_eq!(
            entity_id(&format!("https://o/api/data/v9.2/tasks({TASK})")).as_deref(),
            Some(TASK)
        );
        assert_eq!(
            entity_id("https://o/api/data/v9.2/tasks(new_key='x')"),
            None
        );
        assert_eq!(entity_id("no link"), None);
    }
}
