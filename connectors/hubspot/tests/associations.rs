//! Search results carry no associations, so an incremental pull of deals
//! reads companies, contacts and tasks after each search page through
//! `POST /crm/v4/associations/{from}/{to}/batch/read`. Specified here against
//! a scripted loopback server that answers in every shape HubSpot's
//! reference allows, which a small seeded portal may never produce:
//! per-record paging of associated ids, numeric `toObjectId`, a 207 for ids
//! without associations.

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use journeyd_connector::connector::{Connector, PullFrom};
use journeyd_connector::http::{RateLimits, RetryPolicy};
use journeyd_connector::secret::SecretString;
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, TaskStatus, Watermark};
use journeyd_hubspot::{HubspotAuth, HubspotConnector, HubspotCredentials, HubspotSettings};
use serde_json::{Value, json};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<(String, Value)>>>;

fn deal(id: &str) -> Value {
    json!({
        "id": id,
        "properties": {"dealname": format!("Deal {id}"), "dealstage": "s1", "hs_object_id": id,
                       "hs_lastmodifieddate": "2026-03-01T10:00:00.000Z",
                       "hs_date_entered_s1": "2026-02-01T10:00:00.000Z"},
        "createdAt": "2026-01-01T10:00:00.000Z",
        "updatedAt": "2026-03-01T10:00:00.000Z",
        "archived": false
    })
}

/// One scripted page of a record's associations: `(from id, the page's
/// after, associated ids, the next page's after)`.
type Link<'a> = (&'a str, Option<&'a str>, &'a [u64], Option<&'a str>);

/// Association rows for `inputs` from `links`.
fn associations(inputs: &Value, links: &[Link<'_>]) -> Response {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in inputs["inputs"].as_array().into_iter().flatten() {
        let id = input["id"].as_str().unwrap_or_default();
        let after = input["after"].as_str();
        match links.iter().find(|(from, at, _, _)| *from == id && *at == after) {
            Some((_, _, to, next)) => {
                let mut row = json!({
                    "from": {"id": id},
                    "to": to.iter().map(|t| json!({"toObjectId": t, "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": null}]})).collect::<Vec<_>>()
                });
                if let Some(next) = next {
                    row["paging"] = json!({"next": {"after": next, "link": null}});
                }
                results.push(row);
            }
            None => errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": format!("No associations found for {id}"), "context": {"fromObjectId": [id]}})),
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let body = json!({"status": "COMPLETE", "results": results, "errors": errors,
                      "startedAt": "2026-03-01T10:00:00Z", "completedAt": "2026-03-01T10:00:00Z"});
    (status, axum::Json(body)).into_response()
}

async fn answer(State(log): State<Log>, method: Method, uri: Uri, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    log.lock()
        .unwrap()
        .push((format!("{method} {}", uri.path()), body.clone()));
    let ok = |value: Value| (StatusCode::OK, axum::Json(value)).into_response();
    match (method.as_str(), uri.path()) {
        ("GET", "/crm/v3/pipelines/deals") => ok(json!({"results": [{"id": "default", "label": "Sales",
            "displayOrder": 0, "archived": false,
            "stages": [{"id": "s1", "label": "One", "displayOrder": 0, "archived": false,
                        "metadata": {"probability": "0.1"}}]}]})),
        ("POST", "/crm/v3/objects/deals/search") => ok(json!({"total": 2, "results": [deal("1"), deal("2")]})),
        ("POST", "/crm/v4/associations/deals/companies/batch/read") => {
            associations(&body, &[("1", None, &[70], None)])
        }
        ("POST", "/crm/v4/associations/deals/contacts/batch/read") => associations(
            &body,
            &[("1", None, &[51], Some("p2")), ("1", Some("p2"), &[52, 51], None), ("2", None, &[53], None)],
        ),
        ("POST", "/crm/v4/associations/deals/tasks/batch/read") => associations(&body, &[("1", None, &[900], None)]),
        ("POST", "/crm/v3/objects/tasks/batch/read") => ok(json!({"status": "COMPLETE", "results": [
            {"id": "900", "properties": {"hs_task_subject": "Call back", "hs_task_status": "COMPLETED",
             "hubspot_owner_id": "102", "hs_timestamp": "2026-03-05T09:00:00.000Z"},
             "createdAt": "2026-03-01T10:00:00Z", "updatedAt": "2026-03-01T10:00:00Z"}]})),
        _ => (StatusCode::NOT_FOUND, axum::Json(json!({"status": "error", "message": "Resource not found",
            "category": "OBJECT_NOT_FOUND", "correlationId": "00000000-0000-4000-8000-000000000000"})))
            .into_response(),
    }
}

async fn scripted() -> (url::Url, Log) {
    let log = Log::default();
    let app = Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}").parse().unwrap(), log)
}

fn connector(base: url::Url) -> HubspotConnector {
    let nz = |n| NonZeroU32::new(n).unwrap();
    let mut settings = HubspotSettings::defaults(base, HubspotAuth::PrivateApp);
    settings.limits = RateLimits {
        general: (nz(1000), Duration::from_secs(1)),
        search: None,
    };
    settings.retry = RetryPolicy {
        max_attempts: nz(1),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        budget: 0,
        timeout: Duration::from_secs(5),
        send_window: Duration::from_secs(20),
        max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
        max_body: RetryPolicy::DEFAULT_MAX_BODY,
    };
    // One id per association call, so chunking shows.
    settings.association_batch_limit = NonZeroUsize::new(1).unwrap();
    HubspotConnector::new(
        ConnectorName::new("hubspot"),
        settings,
        HubspotCredentials::PrivateApp {
            token: SecretString::from("pat-test"),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_page_of_deals_is_completed_with_companies_contacts_and_tasks_from_the_v4_api() {
    let (base, log) = scripted().await;
    let connector = connector(base);
    let since = Watermark {
        modified_at: DateTime::<Utc>::from_timestamp(1_772_000_000, 0).unwrap(),
        id: RecordId::new("0"),
    };
    let page = connector
        .pull(ObjectKind::Deal, PullFrom::Since(since))
        .await
        .expect("a page");
    assert!(page.skipped.is_empty(), "{:?}", page.skipped);
    assert_eq!(page.next, None);
    let [one, two] = &page.items[..] else {
        panic!("{:?}", page.items);
    };
    assert_eq!(one.associations.account, Some(RecordId::new("70")));
    assert_eq!(
        one.associations.contacts,
        [RecordId::new("51"), RecordId::new("52")]
    );
    assert_eq!(one.tasks.len(), 1);
    assert_eq!(one.tasks[0].id, "900");
    assert_eq!(one.tasks[0].subject, "Call back");
    assert_eq!(one.tasks[0].status, TaskStatus::Completed);
    assert_eq!(
        two.associations.account, None,
        "a 207 row for a deal without companies"
    );
    assert_eq!(two.associations.contacts, [RecordId::new("53")]);
    assert!(two.tasks.is_empty());

    let log = log.lock().unwrap();
    let contact_reads: Vec<&Value> = log
        .iter()
        .filter(|(route, _)| route == "POST /crm/v4/associations/deals/contacts/batch/read")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        contact_reads,
        [
            &json!({"inputs": [{"id": "1"}]}),
            &json!({"inputs": [{"id": "2"}]}),
            &json!({"inputs": [{"id": "1", "after": "p2"}]}),
        ],
        "one id per call, then deal 1's second page of contacts"
    );
}
