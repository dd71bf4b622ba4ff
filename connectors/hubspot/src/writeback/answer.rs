//! What a HubSpot answer proves about each input of a write: pure, no IO.
//!
//! An input is `Applied` only when a result is tied to it, and `Failed`
//! only when HubSpot refused it by name (an error row tied to it, or a
//! refusal of a call that carried it alone or carried nothing written) or
//! it was never sent. Everything else is `Unknown`: a timeout, a reset, a
//! 5xx, an unreadable 2xx, a result or an error row that cannot be tied to
//! an input, an input the answer does not mention. A create called failed
//! would be sent again by the daemon, and written twice if it was made.
//!
//! Ties: a created task by the `objectWriteTraceId` HubSpot echoes, else
//! by the marker in its body (HubSpot does not promise result order); an
//! updated record by its id. An error row is tied by the trace id or the
//! record id its `context` (or message) names; a row naming a record that
//! two open inputs share is tied to neither.

use crate::marker::markers;
use crate::wire::{BatchError, BatchResponse, id_string};
use journeyd_connector::{ActionKey, ActionResult, ConnectorError, RecordId, Retry};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// HubSpot's category for an id it does not have (never created, or
/// archived: a deleted record).
const NOT_FOUND: &str = "OBJECT_NOT_FOUND";

/// One task to create, as sent.
#[derive(Debug, Clone)]
pub(crate) struct NewTask<'a> {
    pub index: usize,
    pub key: &'a ActionKey,
    pub record_id: &'a RecordId,
    pub input: Value,
}

/// One record to update, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub index: usize,
    pub id: &'a str,
    /// A record HubSpot no longer has counts as done (a task to complete).
    pub gone_is_done: bool,
}

/// What a call that ended in `err` (no answer to read) says of the inputs
/// it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The connector cannot go on (refused credentials, the daily
    /// allowance spent): the whole apply ends with the error.
    Fatal,
    /// HubSpot refused the call as a whole (400, or 404 naming ids it does
    /// not have): nothing was written, and one input may be to blame.
    Refused { not_found: bool },
    /// Certainly not written (a 429 after every retry, another 4xx).
    Failed { retryable: bool },
    /// May have been written.
    Unknown,
}

pub(crate) fn verdict(err: &ConnectorError) -> Verdict {
    match err {
        ConnectorError::Auth { .. }
        | ConnectorError::AllowanceExhausted { .. }
        | ConnectorError::RateLimitedUntil { .. } => Verdict::Fatal,
        ConnectorError::Api { status: 404, .. } => Verdict::Refused { not_found: true },
        ConnectorError::Api { status: 400, .. } => Verdict::Refused { not_found: false },
        ConnectorError::Api { status, .. } if *status >= 500 => Verdict::Unknown,
        ConnectorError::Transport { .. } | ConnectorError::Malformed { .. } => Verdict::Unknown,
        // Stopped in a wait: a create was not received (it is not sent
        // again after anything that may have reached HubSpot), and any
        // other write may safely be sent again.
        ConnectorError::RateLimited { .. } | ConnectorError::Stopped { .. } => {
            Verdict::Failed { retryable: true }
        }
        ConnectorError::Api { .. }
        | ConnectorError::ChangesExpired { .. }
        | ConnectorError::CursorRefused { .. }
        | ConnectorError::Unsupported { .. } => Verdict::Failed {
            retryable: err.retry() != Retry::Never,
        },
    }
}

pub(crate) fn failed(reason: impl Into<String>, retryable: bool) -> ActionResult {
    ActionResult::Failed {
        reason: reason.into(),
        retryable,
    }
}

pub(crate) fn unknown(reason: impl Into<String>) -> ActionResult {
    ActionResult::Unknown {
        reason: reason.into(),
    }
}

/// What `err` (with verdict `verdict`, not `Fatal`) makes of an input the
/// call carried; `target` is a record to update, for a refusal naming it.
pub(crate) fn outcome(
    verdict: Verdict,
    err: &ConnectorError,
    target: Option<&Target<'_>>,
) -> ActionResult {
    let reason = err.to_string();
    match (verdict, target) {
        (Verdict::Refused { not_found: true }, Some(t)) if t.gone_is_done => {
            ActionResult::Applied {
                crm_id: t.id.to_owned(),
            }
        }
        (Verdict::Refused { not_found: true }, Some(_)) => failed(reason, false),
        (Verdict::Refused { .. }, _) => failed(reason, err.retry() != Retry::Never),
        (Verdict::Failed { retryable }, _) => failed(reason, retryable),
        (Verdict::Unknown | Verdict::Fatal, _) => unknown(reason),
    }
}

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// Every word an error row offers as a clue to its input: the strings of
/// its `id` and `context`, and the words of its message.
fn clues(error: &BatchError) -> BTreeSet<String> {
    let mut words: BTreeSet<String> = error.clues().into_iter().collect();
    if let Some(message) = &error.message {
        words.extend(tokens(message).map(str::to_owned));
    }
    words
}

/// Ties a batch create's answer to its inputs; every input gets an
/// outcome.
pub(crate) fn created(
    tasks: &[NewTask<'_>],
    response: &BatchResponse,
) -> Vec<(usize, ActionResult)> {
    let mut open: BTreeMap<usize, &NewTask<'_>> = tasks.iter().map(|t| (t.index, t)).collect();
    let mut outcomes = Vec::new();
    let mut untied_results = 0usize;
    for result in &response.results {
        let id = result.get("id").and_then(id_string);
        let trace = result
            .get("objectWriteTraceId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let body = result
            .get("properties")
            .and_then(|p| p.get("hs_task_body"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let keys: Vec<String> = trace.into_iter().chain(markers(body)).collect();
        let tied = id.and_then(|id| {
            let index = open
                .iter()
                .find(|(_, t)| keys.iter().any(|k| k == t.key.as_str()))
                .map(|(index, _)| *index)?;
            Some((index, id))
        });
        match tied {
            Some((index, id)) => {
                open.remove(&index);
                outcomes.push((index, ActionResult::Applied { crm_id: id }));
            }
            None => untied_results += 1,
        }
    }
    let mut untied_errors = Vec::new();
    for error in &response.errors {
        let words = clues(error);
        let by_key: Vec<usize> = open
            .iter()
            .filter(|(_, t)| words.contains(t.key.as_str()))
            .map(|(i, _)| *i)
            .collect();
        let blamed = if by_key.is_empty() {
            let by_record: Vec<usize> = open
                .iter()
                .filter(|(_, t)| words.contains(t.record_id.as_str()))
                .map(|(i, _)| *i)
                .collect();
            // A record two open inputs share does not say which one failed.
            if by_record.len() == 1 {
                by_record
            } else {
                Vec::new()
            }
        } else {
            by_key
        };
        if blamed.is_empty() {
            untied_errors.push(error.describe());
        }
        for index in blamed {
            open.remove(&index);
            outcomes.push((index, failed(error.describe(), true)));
        }
    }
    let reason = unaccounted("task", untied_results, &untied_errors);
    outcomes.extend(
        open.into_keys()
            .map(|index| (index, unknown(reason.clone()))),
    );
    outcomes
}

/// Ties a batch update's answer to its inputs by record id; every input
/// gets an outcome.
pub(crate) fn updated(
    targets: &[Target<'_>],
    response: &BatchResponse,
) -> Vec<(usize, ActionResult)> {
    let written: BTreeSet<String> = response
        .results
        .iter()
        .filter_map(|r| r.get("id").and_then(id_string))
        .collect();
    let blamed: Vec<(BTreeSet<String>, &BatchError)> =
        response.errors.iter().map(|e| (clues(e), e)).collect();
    let untied: Vec<String> = blamed
        .iter()
        .filter(|(words, _)| !targets.iter().any(|t| words.contains(t.id)))
        .map(|(_, error)| error.describe())
        .collect();
    let untied_results = written
        .iter()
        .filter(|id| !targets.iter().any(|t| t.id == id.as_str()))
        .count();
    targets
        .iter()
        .map(|target| {
            let refusal = blamed.iter().find(|(words, _)| words.contains(target.id));
            let result = if written.contains(target.id) {
                ActionResult::Applied {
                    crm_id: target.id.to_owned(),
                }
            } else if let Some((_, error)) = refusal {
                match error.category.as_deref() {
                    Some(NOT_FOUND) if target.gone_is_done => ActionResult::Applied {
                        crm_id: target.id.to_owned(),
                    },
                    Some(NOT_FOUND) => failed(error.describe(), false),
                    _ => failed(error.describe(), true),
                }
            } else {
                unknown(unaccounted("record", untied_results, &untied))
            };
            (target.index, result)
        })
        .collect()
}

/// Why an input the answer does not account for is unknown.
fn unaccounted(what: &str, untied_results: usize, untied_errors: &[String]) -> String {
    let mut reason = format!("hubspot's answer does not account for this {what}");
    if untied_results > 0 {
        reason.push_str(&format!(
            "; {untied_results} result(s) could not be tied to an input"
        ));
    }
    if !untied_errors.is_empty() {
        reason.push_str(&format!(
            "; error(s) naming no input: {}",
            untied_errors.join("; ")
        ));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn created_row(id: &str, key: &str) -> Value {
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

    fn applied(id: &str) -> ActionResult {
        ActionResult::Applied { crm_id: id.into() }
    }

    fn is_unknown(result: &ActionResult) -> bool {
        matches!(result, ActionResult::Unknown { .. })
    }

    #[test]
    fn created_tasks_are_tied_by_marker_whatever_their_order() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..3], &records[..3]);
        let answer = response(json!({"status": "COMPLETE", "results": [
            created_row("t2", "k2"), created_row("t0", "k0"), created_row("t1", "k1")]}));
        assert_eq!(
            sorted(created(&tasks, &answer)),
            vec![(0, applied("t0")), (1, applied("t1")), (2, applied("t2"))]
        );
    }

    #[test]
    fn a_created_task_is_tied_by_its_trace_id_when_its_body_says_nothing() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..2], &records[..2]);
        let answer = response(json!({"results": [
            {"id": "t1", "objectWriteTraceId": "k1", "properties": {}},
            {"id": "t0", "objectWriteTraceId": "k0", "properties": {}}]}));
        assert_eq!(
            sorted(created(&tasks, &answer)),
            vec![(0, applied("t0")), (1, applied("t1"))]
        );
    }

    #[test]
    fn a_207_fails_exactly_the_inputs_its_errors_name() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys, &records);
        let answer = response(json!({"status": "COMPLETE", "numErrors": 2,
        "results": [created_row("t0", "k0"), created_row("t3", "k3")],
        "errors": [
            {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid",
             "context": {"objectWriteTraceId": ["k1"]}},
            {"status": "error", "category": "VALIDATION_ERROR", "message": "No deal with id 902",
             "context": {}}
        ]}));
        assert_eq!(
            sorted(created(&tasks, &answer)),
            vec![
                (0, applied("t0")),
                (
                    1,
                    failed("Property values were not valid (VALIDATION_ERROR)", true)
                ),
                (2, failed("No deal with id 902 (VALIDATION_ERROR)", true)),
                (3, applied("t3")),
            ]
        );
    }

    #[test]
    fn an_error_naming_no_input_leaves_the_inputs_without_a_result_unknown() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..3], &records[..3]);
        let answer = response(json!({"results": [created_row("t1", "k1")],
            "errors": [{"category": "VALIDATION_ERROR", "message": "Something went wrong"}]}));
        let outcomes = sorted(created(&tasks, &answer));
        assert_eq!(outcomes[1], (1, applied("t1")));
        for (_, result) in [&outcomes[0], &outcomes[2]] {
            assert!(is_unknown(result), "{result:?}");
        }
        let ActionResult::Unknown { reason } = &outcomes[0].1 else {
            unreachable!()
        };
        assert!(reason.contains("Something went wrong"), "{reason}");
    }

    #[test]
    fn an_error_naming_a_record_two_inputs_share_is_tied_to_neither() {
        let keys = keys();
        let same = vec![RecordId::new("901"), RecordId::new("901")];
        let tasks = new_tasks(&keys[..2], &same);
        let answer = response(json!({"results": [],
            "errors": [{"category": "VALIDATION_ERROR", "message": "No deal with id 901"}]}));
        assert!(created(&tasks, &answer).iter().all(|(_, r)| is_unknown(r)));
    }

    #[test]
    fn an_input_a_complete_answer_does_not_mention_is_unknown_not_failed() {
        let (keys, records) = (keys(), records());
        let tasks = new_tasks(&keys[..2], &records[..2]);
        let answer = response(json!({"status": "COMPLETE", "results": [
            created_row("t0", "k0"), {"id": "t9", "properties": {}}]}));
        let outcomes = sorted(created(&tasks, &answer));
        assert_eq!(outcomes[0], (0, applied("t0")));
        let ActionResult::Unknown { reason } = &outcomes[1].1 else {
            panic!("{outcomes:?}");
        };
        assert!(reason.contains("1 result(s) could not be tied"), "{reason}");
    }

    fn target(index: usize, id: &str, gone_is_done: bool) -> Target<'_> {
        Target {
            index,
            id,
            gone_is_done,
        }
    }

    #[test]
    fn batch_update_outcomes_follow_result_and_error_ids() {
        let targets = [
            target(0, "51", false),
            target(1, "52", false),
            target(2, "53", false),
            target(3, "54", true),
            target(4, "55", false),
        ];
        let answer = response(json!({"status": "COMPLETE",
            "results": [{"id": "53", "properties": {}}, {"id": "51", "properties": {}}],
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": "Object not found.  objectId are usually numeric.",
                        "context": {"ids": ["52", "54"]}}]}));
        let not_found = "Object not found.  objectId are usually numeric. (OBJECT_NOT_FOUND)";
        let outcomes = updated(&targets, &answer);
        assert_eq!(
            outcomes[..4],
            [
                (0, applied("51")),
                (1, failed(not_found, false)),
                (2, applied("53")),
                (3, applied("54")),
            ],
            "a task to complete that HubSpot no longer has counts as done"
        );
        assert!(is_unknown(&outcomes[4].1), "{:?}", outcomes[4]);
    }

    fn api(status: u16) -> ConnectorError {
        ConnectorError::Api {
            connector: "hubspot".into(),
            route: "/crm/v3/objects/{object}/batch/create".into(),
            status,
            message: "x".into(),
            retry: if status >= 500 {
                Retry::After(std::time::Duration::from_secs(1))
            } else {
                Retry::Never
            },
        }
    }

    #[test]
    fn a_call_without_a_readable_answer_leaves_its_inputs_unknown() {
        let malformed = ConnectorError::Malformed {
            connector: "hubspot".into(),
            route: "r".into(),
            reason: "eof".into(),
        };
        let transport = ConnectorError::Transport {
            connector: "hubspot".into(),
            route: "r".into(),
            reason: "timed out".into(),
        };
        for err in [malformed, transport, api(500), api(503)] {
            assert_eq!(verdict(&err), Verdict::Unknown, "{err}");
            assert!(is_unknown(&outcome(verdict(&err), &err, None)));
        }
    }

    #[test]
    fn a_refusal_fails_and_a_missing_task_to_complete_is_done() {
        let gone = api(404);
        assert_eq!(verdict(&gone), Verdict::Refused { not_found: true });
        let task = target(0, "77", true);
        assert_eq!(outcome(verdict(&gone), &gone, Some(&task)), applied("77"));
        let record = target(0, "77", false);
        assert!(matches!(
            outcome(verdict(&gone), &gone, Some(&record)),
            ActionResult::Failed {
                retryable: false,
                ..
            }
        ));
        let limited = ConnectorError::RateLimited {
            connector: "hubspot".into(),
            route: "r".into(),
            retry: Retry::NextRun,
        };
        assert!(matches!(
            outcome(verdict(&limited), &limited, None),
            ActionResult::Failed {
                retryable: true,
                ..
            }
        ));
    }
}
