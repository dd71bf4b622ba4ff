//! Writing back: corrective tasks, field values and task completions,
//! through sObject Collections (≤ 200 rows a call, `allOrNone: false`, one
//! result per row in input order).
//!
//! Idempotency. Every task carries its action key: on its description's
//! last line (`journeyd-action: KEY`) and, when `task_external_id` names a
//! Task external-id field, in that field too. With that field, tasks are
//! upserted by it, so sending a batch twice writes each task once, and the
//! call may be resent freely; `find_applied` asks `WHERE <field> IN (…)`.
//! Without it, a create is sent at most once when its fate is unknown, and
//! `find_applied` looks for the marker with `Description LIKE`. Salesforce
//! does not let a long text area be filtered on in every org, so real
//! deployments should configure the external-id field.

use crate::connector::{COLLECTIONS_ROUTE, SalesforceConnector, UPSERT_ROUTE, sobject};
use crate::soql;
use crate::wire::{SaveResult, text};
use journeyd_connector::action::KEY_LINE;
use journeyd_connector::http::Resend;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, ConnectorError, ObjectKind, Priority,
};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Keys per lookup query: each adds a LIKE or a literal to a URL that
/// Salesforce caps at 16,384 characters.
const KEYS_PER_LOOKUP: usize = 20;

/// Row errors after which the same row may succeed on a later run.
const RETRYABLE: [&str; 3] = [
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "UNABLE_TO_LOCK_ROW",
    "REQUEST_LIMIT_EXCEEDED",
];

impl SalesforceConnector {
    pub(crate) async fn apply_actions(
        &self,
        actions: &[ActionRequest],
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut unsupported = Vec::new();
        for (at, action) in actions.iter().enumerate() {
            match action {
                ActionRequest::CreateTask { .. } => creates.push((at, self.task_row(action))),
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
                ActionRequest::UpdateTask { .. } => unsupported.push(at),
            }
        }
        let mut outcomes: Vec<Option<ActionOutcome>> = vec![None; actions.len()];
        for at in unsupported {
            outcomes[at] = Some(ActionOutcome {
                key: actions[at].key().clone(),
                result: ActionResult::Failed {
                    reason: "updating a task is not supported yet".into(),
                    retryable: false,
                },
            });
        }
        let limit = self.settings.batch_limit.get().min(200);
        for chunk in creates.chunks(limit) {
            let results = self.create_tasks(chunk).await?;
            self.settle(actions, chunk, results, &mut outcomes)?;
        }
        // Collections take mixed types in runs of one type: grouping them
        // keeps a call within Salesforce's ten runs.
        updates.sort_by(|a, b| type_of(&a.1).cmp(type_of(&b.1)));
        for chunk in updates.chunks(limit) {
            let records: Vec<Value> = chunk.iter().map(|(_, row)| row.clone()).collect();
            let results: Vec<SaveResult> = self
                .write(
                    Method::PATCH,
                    COLLECTIONS_ROUTE,
                    self.data_path("/composite/sobjects"),
                    json!({"allOrNone": false, "records": records}),
                    // Setting a value twice sets it once.
                    Resend::Always,
                )
                .await?;
            self.settle(actions, chunk, results, &mut outcomes)?;
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Creates (or, with an external-id field, upserts) one chunk of tasks.
    async fn create_tasks(
        &self,
        chunk: &[(usize, Value)],
    ) -> Result<Vec<SaveResult>, ConnectorError> {
        let records: Vec<Value> = chunk.iter().map(|(_, row)| row.clone()).collect();
        let body = json!({"allOrNone": false, "records": records});
        match &self.settings.task_external_id {
            Some(field) => {
                self.write(
                    Method::PATCH,
                    UPSERT_ROUTE,
                    self.data_path(&format!("/composite/sobjects/Task/{field}")),
                    body,
                    Resend::Always,
                )
                .await
            }
            None => {
                self.write(
                    Method::POST,
                    COLLECTIONS_ROUTE,
                    self.data_path("/composite/sobjects"),
                    body,
                    Resend::OnlyIfNotReceived,
                )
                .await
            }
        }
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
        row.insert("Subject".into(), json!(subject));
        row.insert(
            "ActivityDate".into(),
            json!(due.format("%Y-%m-%d").to_string()),
        );
        row.insert("Status".into(), json!("Not Started"));
        row.insert(
            "Priority".into(),
            json!(match priority {
                Priority::High => "High",
                Priority::Normal => "Normal",
                Priority::Low => "Low",
            }),
        );
        row.insert("Description".into(), json!(key.in_text(body)));
        if let Some(field) = &self.settings.task_external_id {
            row.insert(field.clone(), json!(key.as_str()));
        }
        Value::Object(row)
    }

    /// Turns one call's per-row results into outcomes, in input order.
    fn settle(
        &self,
        actions: &[ActionRequest],
        chunk: &[(usize, Value)],
        results: Vec<SaveResult>,
        outcomes: &mut [Option<ActionOutcome>],
    ) -> Result<(), ConnectorError> {
        if results.len() != chunk.len() {
            return Err(ConnectorError::Malformed {
                connector: self.name_str(),
                route: COLLECTIONS_ROUTE.into(),
                reason: format!(
                    "{} results came back for {} records",
                    results.len(),
                    chunk.len()
                ),
            });
        }
        for ((at, row), result) in chunk.iter().zip(results) {
            let fallback_id = row.get("id").and_then(Value::as_str);
            outcomes[*at] = Some(ActionOutcome {
                key: actions[*at].key().clone(),
                result: row_result(result, fallback_id),
            });
        }
        Ok(())
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
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for chunk in unique.chunks(KEYS_PER_LOOKUP) {
            let rows = match &self.settings.task_external_id {
                Some(field) => {
                    self.query_to_end(&format!(
                        "SELECT Id, {field} FROM Task WHERE {field} IN {} ORDER BY CreatedDate, Id",
                        soql::in_list(chunk.iter().copied())
                    ))
                    .await?
                }
                None => {
                    let likes: Vec<String> = chunk
                        .iter()
                        .map(|key| {
                            format!(
                                "Description LIKE {}",
                                soql::like_contains(&format!("{KEY_LINE}{key}"))
                            )
                        })
                        .collect();
                    self.query_to_end(&format!(
                        "SELECT Id, Description FROM Task WHERE {} ORDER BY CreatedDate, Id",
                        likes.join(" OR ")
                    ))
                    .await?
                }
            };
            for row in &rows {
                let Some(id) = text(row, "Id") else { continue };
                let key = match &self.settings.task_external_id {
                    Some(field) => text(row, field).map(str::to_owned),
                    None => text(row, "Description")
                        .and_then(ActionKey::from_text)
                        .map(|key| key.as_str().to_owned()),
                };
                // The earliest task wins when several carry a key.
                if let Some(key) = key.filter(|key| chunk.contains(&key.as_str())) {
                    found.entry(key).or_insert_with(|| id.to_owned());
                }
            }
        }
        Ok(ActionOutcome::found(keys, &found))
    }
}

/// `{attributes: {type}, id, field: value}`: one row of a collections update.
fn update_row(object: &str, id: &str, field: &str, value: &str) -> Value {
    let mut row = Map::new();
    row.insert("attributes".into(), json!({"type": object}));
    row.insert("id".into(), json!(id));
    row.insert(field.into(), json!(value));
    Value::Object(row)
}

fn type_of(row: &Value) -> &str {
    row.pointer("/attributes/type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// One row's result as an outcome: applied with the record's id (the
/// updated record's own id when the answer names none), or failed with
/// Salesforce's code and message.
fn row_result(result: SaveResult, fallback_id: Option<&str>) -> ActionResult {
    if result.success {
        return match result.id.as_deref().or(fallback_id) {
            Some(id) => ActionResult::Applied {
                crm_id: id.to_owned(),
            },
            None => ActionResult::Failed {
                reason: "salesforce reported success without an id".into(),
                retryable: true,
            },
        };
    }
    let retryable = !result.errors.is_empty()
        && result.errors.iter().all(|err| {
            err.status_code
                .as_deref()
                .is_some_and(|code| RETRYABLE.contains(&code))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(body: &str) -> SaveResult {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_created_row_is_applied_with_its_new_id() {
        let row = result(r#"{"id":"00T000000000001AAA","success":true,"errors":[]}"#);
        assert_eq!(
            row_result(row, None),
            ActionResult::Applied {
                crm_id: "00T000000000001AAA".into()
            }
        );
    }

    #[test]
    fn an_updated_row_without_an_id_is_applied_with_the_records_own() {
        let row = result(r#"{"success":true,"errors":[]}"#);
        assert_eq!(
            row_result(row, Some("006A")),
            ActionResult::Applied {
                crm_id: "006A".into()
            }
        );
    }

    #[test]
    fn a_refused_row_fails_with_salesforces_code_for_good() {
        let row = result(
            r#"{"success":false,"errors":[{"statusCode":"MALFORMED_ID","message":"bad id 006X","fields":["WhatId"]}]}"#,
        );
        assert_eq!(
            row_result(row, None),
            ActionResult::Failed {
                reason: "MALFORMED_ID: bad id 006X (WhatId)".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn a_rolled_back_row_may_be_tried_again() {
        let row = result(
            r#"{"success":false,"errors":[{"statusCode":"ALL_OR_NONE_OPERATION_ROLLED_BACK","message":"Record rolled back because not all records were valid and the request was using AllOrNone header","fields":[]}]}"#,
        );
        assert!(matches!(
            row_result(row, None),
            ActionResult::Failed {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn an_update_row_names_its_type_id_and_field() {
        assert_eq!(
            update_row("Opportunity", "006A", "Lifecycle__c", "Customer"),
            json!({"attributes": {"type": "Opportunity"}, "id": "006A", "Lifecycle__c": "Customer"})
        );
    }
}
