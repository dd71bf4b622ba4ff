//! Specifications of the Dataverse emulator, spoken to with a bare HTTP
//! client: the token endpoint, reads and their pages, annotations, change
//! tracking, writes and binds, `$batch`, service protection, choice
//! metadata, and the controls tests rely on.

use journeyd_dynamics_emulator::{DynamicsEmulator, EmulatorConfig, Table};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const ALL_ANNOTATIONS: &str = "odata.include-annotations=\"*\"";

struct Org {
    emu: DynamicsEmulator,
    http: reqwest::Client,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|err| panic!("{err}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn rows(&self) -> Vec<Value> {
        self.json()["value"].as_array().cloned().unwrap_or_default()
    }
}

/// A small org: 12 opportunities (and the odd one).
fn small() -> EmulatorConfig {
    EmulatorConfig::with_opportunities(12)
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the emulator answers");
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a whole body"),
    }
}

impl Org {
    async fn start(config: EmulatorConfig) -> Self {
        let emu = DynamicsEmulator::start(config).expect("the emulator starts");
        let mut org = Self {
            emu,
            http: reqwest::Client::new(),
            token: String::new(),
        };
        let reply = org.grant(&org.good_form()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        org.token = reply.json()["access_token"].as_str().unwrap().to_owned();
        org
    }

    fn good_form(&self) -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.emu.client_id()),
            ("client_secret", self.emu.client_secret()),
            ("scope", self.emu.scope()),
        ]
    }

    async fn grant(&self, form: &[(&'static str, String)]) -> Reply {
        send(self.http.post(self.emu.token_url()).form(form)).await
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.emu.api_url())
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("Accept", "application/json")
    }

    async fn get(&self, path: &str, prefer: &[&str]) -> Reply {
        let mut request = self.request(reqwest::Method::GET, path);
        if !prefer.is_empty() {
            request = request.header("Prefer", prefer.join(","));
        }
        send(request).await
    }

    async fn post(&self, path: &str, body: Value, prefer: Option<&str>) -> Reply {
        let mut request = self.request(reqwest::Method::POST, path).json(&body);
        if let Some(prefer) = prefer {
            request = request.header("Prefer", prefer);
        }
        send(request).await
    }

    async fn patch(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.request(reqwest::Method::PATCH, path).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    async fn batch(&self, body: String, boundary: &str, prefer: Option<&str>) -> Reply {
        let mut request = self
            .request(reqwest::Method::POST, "$batch")
            .header(
                "Content-Type",
                format!("multipart/mixed; boundary=\"{boundary}\""),
            )
            .body(body);
        if let Some(prefer) = prefer {
            request = request.header("Prefer", prefer);
        }
        send(request).await
    }

    /// Follows nextLinks verbatim until there is none (bounded); returns
    /// the pages' bodies.
    async fn all_pages(&self, first: &str, prefer: &[&str]) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(url) = next.take() {
            assert!(pages.len() < 100, "paging does not end");
            let reply = self.get(&url, prefer).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let body = reply.json();
            next = body["@odata.nextLink"].as_str().map(str::to_owned);
            pages.push(body);
        }
        pages
    }

    fn opportunity_id(&self) -> String {
        self.emu.ids(Table::Opportunity)[0].clone()
    }
}

/// A task create as a batch request line and body.
fn task_part(subject: &str, content_id: Option<usize>) -> String {
    let id = content_id
        .map(|n| format!("Content-ID: {n}\r\n"))
        .unwrap_or_default();
    format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{id}\r\nPOST /api/data/v9.2/tasks HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{}\r\n",
        json!({"subject": subject})
    )
}

fn batch_body(boundary: &str, parts: &[String]) -> String {
    let mut body = String::new();
    for part in parts {
        body.push_str(&format!("--{boundary}\r\n{part}"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

fn change_set(boundary: &str, parts: &[String]) -> String {
    format!(
        "Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{}",
        batch_body(boundary, parts)
    )
}

fn subjects(org: &Org) -> BTreeSet<String> {
    org.emu
        .tasks()
        .into_iter()
        .filter_map(|t| {
            t.fields
                .get("subject")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_client_credentials_grant_returns_a_bearer_token_with_the_secret_in_the_form_or_basic() {
    let org = Org::start(small()).await;
    let reply = org.grant(&org.good_form()).await;
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    let basic = send(
        org.http
            .post(org.emu.token_url())
            .basic_auth(org.emu.client_id(), Some(org.emu.client_secret()))
            .form(&[
                ("grant_type", "client_credentials".to_owned()),
                ("scope", org.emu.scope()),
            ]),
    )
    .await;
    assert_eq!(basic.status, StatusCode::OK, "{}", basic.text);
    assert_eq!(org.emu.counts().get("POST /{tenant}/oauth2/v2.0/token"), 3);
}

#[tokio::test]
async fn token_refusals_are_aadsts_shaped() {
    let org = Org::start(small()).await;
    let with = |name: &'static str, value: &str| {
        let mut form = org.good_form();
        form.retain(|(n, _)| *n != name);
        form.push((name, value.to_owned()));
        form
    };
    let cases = [
        (
            with("client_secret", "wrong"),
            401,
            "invalid_client",
            7_000_215,
        ),
        (
            with("client_id", "00000000-0000-0000-0000-000000000000"),
            400,
            "unauthorized_client",
            700_016,
        ),
        (
            with("scope", "https://org.crm.dynamics.com/.default"),
            400,
            "invalid_scope",
            70_011,
        ),
        (
            with("grant_type", "password"),
            400,
            "unsupported_grant_type",
            70_003,
        ),
    ];
    for (form, status, error, code) in cases {
        let reply = org.grant(&form).await;
        assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
        let body = reply.json();
        assert_eq!(body["error"], error);
        assert_eq!(body["error_codes"][0], code);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("AADSTS{code}:"))
        );
        for key in ["timestamp", "trace_id", "correlation_id"] {
            assert!(body[key].is_string(), "{key}");
        }
    }
    let url = org
        .emu
        .base_url()
        .join("00000000-0000-0000-0000-000000000001/oauth2/v2.0/token")
        .unwrap();
    let wrong_tenant = send(org.http.post(url).form(&org.good_form())).await;
    assert_eq!(wrong_tenant.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_tenant.json()["error_codes"][0], 90_002);
}

#[tokio::test]
async fn data_calls_without_a_valid_token_get_401_with_www_authenticate() {
    let org = Org::start(small()).await;
    let bare = send(org.http.get(org.url("accounts"))).await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    let challenge = bare.header("www-authenticate").unwrap().to_owned();
    let expected = format!(
        "Bearer authorization_uri={}{}/oauth2/authorize",
        org.emu.base_url(),
        org.emu.tenant()
    );
    assert!(challenge.starts_with(&expected), "{challenge}");
    assert_eq!(bare.json()["error"]["code"], "");
    assert_eq!(org.get("accounts", &[]).await.status, StatusCode::OK);
    org.emu.expire_tokens();
    let expired = org.get("accounts", &[]).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.header("www-authenticate").is_some());
}

#[tokio::test]
async fn select_filter_and_orderby_narrow_and_sort_rows() {
    let org = Org::start(small()).await;
    let reply = org
        .get(
            "opportunities?$select=name,estimatedvalue,salesstage&$filter=salesstage eq 2 and statecode eq 0&$orderby=estimatedvalue desc",
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let rows = reply.rows();
    assert!(!rows.is_empty());
    let expected = org
        .emu
        .records(Table::Opportunity)
        .into_iter()
        .filter(|r| r.fields["salesstage"] == 2 && r.fields["statecode"] == 0)
        .count();
    assert_eq!(rows.len(), expected);
    let values: Vec<f64> = rows
        .iter()
        .map(|r| r["estimatedvalue"].as_f64().unwrap_or(-1.0))
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    for row in &rows {
        let keys: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "@odata.etag",
                "opportunityid",
                "name",
                "estimatedvalue",
                "salesstage"
            ])
        );
        assert!(row["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    }
    let body = reply.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#opportunities(name,estimatedvalue,salesstage)")
    );
}

#[tokio::test]
async fn rows_come_in_key_order_without_orderby() {
    let org = Org::start(small()).await;
    let ids: Vec<String> = org
        .get("contacts?$select=fullname", &[])
        .await
        .rows()
        .iter()
        .map(|r| r["contactid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, org.emu.ids(Table::Contact));
}

#[tokio::test]
async fn a_task_lookup_by_regarding_ids_answers_what_a_scan_does_and_follows_writes() {
    let org = Org::start(small()).await;
    let opps: Vec<String> = org
        .emu
        .ids(Table::Opportunity)
        .into_iter()
        .take(6)
        .collect();
    let created = org
        .post(
            "tasks",
            json!({"subject": "fresh", "regardingobjectid_opportunity_task@odata.bind": format!("/opportunities({})", opps[0])}),
            None,
        )
        .await;
    assert_eq!(created.status, StatusCode::NO_CONTENT, "{}", created.text);
    let any_of = opps
        .iter()
        .map(|id| format!("_regardingobjectid_value eq {id}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let ids = |pages: Vec<Value>| -> Vec<String> {
        pages
            .iter()
            .flat_map(|page| page["value"].as_array().unwrap().clone())
            .map(|r| r["activityid"].as_str().unwrap().to_owned())
            .collect()
    };
    let indexed = ids(org
        .all_pages(
            &format!("tasks?$select=subject&$filter={any_of}"),
            &["odata.maxpagesize=2"],
        )
        .await);
    // An `and` is answered by a scan of every task.
    let scanned = ids(org
        .all_pages(
            &format!("tasks?$select=subject&$filter=({any_of}) and statecode ne 99"),
            &["odata.maxpagesize=2"],
        )
        .await);
    assert_eq!(indexed, scanned);
    assert!(indexed.len() > 1, "{indexed:?}");
    let fresh = org
        .emu
        .tasks()
        .into_iter()
        .find(|t| t.fields.get("subject") == Some(&json!("fresh")))
        .unwrap();
    assert!(indexed.contains(&fresh.id));
    org.emu.delete(Table::Task, &fresh.id).unwrap();
    let after = ids(org
        .all_pages(&format!("tasks?$select=subject&$filter={any_of}"), &[])
        .await);
    assert_eq!(after.len(), indexed.len() - 1);
}

#[tokio::test]
async fn a_quoted_label_goes_out_intact_and_matches_with_doubled_quotes() {
    let org = Org::start(small()).await;
    let reply = org
        .get(
            "opportunities?$select=name,salesstage&$filter=contains(name,'O''Neil') and salesstage eq 100000000",
            &[ALL_ANNOTATIONS],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let rows = reply.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "O'Neil Freight (Won't Close)");
    assert_eq!(
        rows[0]["salesstage@OData.Community.Display.V1.FormattedValue"],
        "Won't Close"
    );
    let exact = org
        .get(
            "opportunities?$filter=name eq 'O''Neil Freight (Won''t Close)'",
            &[],
        )
        .await;
    assert_eq!(exact.rows().len(), 1);
    assert_eq!(
        org.emu.filters(),
        [
            "contains(name,'O''Neil') and salesstage eq 100000000",
            "name eq 'O''Neil Freight (Won''t Close)'"
        ]
    );
}

#[tokio::test]
async fn an_unknown_column_or_a_malformed_query_is_a_400() {
    let org = Org::start(small()).await;
    let select = org
        .get("opportunities?$select=name,nosuchcolumn", &[])
        .await;
    assert_eq!(select.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        select.json()["error"]["message"],
        "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.opportunity'."
    );
    for bad in [
        "opportunities?$filter=nosuch eq 1",
        "opportunities?$filter=salesstage eq 'Propose'",
        "opportunities?$filter=name eq 'open",
        "opportunities?$skip=10",
        "opportunities?$expand=parentaccountid",
        "opportunities?$orderby=name sideways",
    ] {
        assert_eq!(
            org.get(bad, &[]).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn paging_follows_next_links_verbatim_to_the_end() {
    let org = Org::start(EmulatorConfig::with_opportunities(119)).await;
    let first = org
        .get("opportunities?$select=name", &["odata.maxpagesize=25"])
        .await;
    assert_eq!(
        first.header("preference-applied"),
        Some("odata.maxpagesize=25")
    );
    let next = first.json()["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.starts_with(&format!(
        "{}opportunities?$select=name&$skiptoken=",
        org.emu.api_url()
    )));
    assert!(next.contains("%3Ccookie%20pagenumber%3D%222%22"), "{next}");
    let pages = org
        .all_pages("opportunities?$select=name", &["odata.maxpagesize=25"])
        .await;
    assert_eq!(pages.len(), 5);
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .map(|r| r["opportunityid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        org.emu.ids(Table::Opportunity),
        "120 rows, each once, in key order"
    );
    assert_eq!(org.emu.counts().get("GET /api/data/v9.2/opportunities"), 6);
    let clamped = org
        .get("opportunities?$select=name", &["odata.maxpagesize=9000"])
        .await;
    assert_eq!(
        clamped.header("preference-applied"),
        Some("odata.maxpagesize=5000")
    );
    assert_eq!(clamped.rows().len(), 120);
}

#[tokio::test]
async fn a_filtered_and_ordered_read_pages_the_same_rows() {
    let org = Org::start(EmulatorConfig::with_opportunities(60)).await;
    let query = "leads?$select=fullname,statuscode&$filter=statecode eq 0&$orderby=fullname desc";
    let pages = org.all_pages(query, &["odata.maxpagesize=7"]).await;
    let paged: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .collect();
    let whole = org.get(query, &[]).await.rows();
    assert_eq!(paged, whole);
    assert!(pages.len() > 2);
}

#[tokio::test]
async fn annotations_appear_only_when_asked() {
    let org = Org::start(small()).await;
    let query = "opportunities?$select=name,_ownerid_value,salesstage,estimatedvalue,decisionmaker,estimatedclosedate";
    let plain = org.get(query, &[]).await.text;
    assert!(!plain.contains("@OData.Community"));
    assert!(!plain.contains("@Microsoft.Dynamics.CRM"));
    let annotated = org.get(query, &[ALL_ANNOTATIONS]).await;
    assert_eq!(
        annotated.header("preference-applied"),
        Some(ALL_ANNOTATIONS)
    );
    let rows = annotated.rows();
    let row = rows
        .iter()
        .find(|r| r["estimatedvalue"].is_number() && r["decisionmaker"].is_boolean())
        .unwrap();
    let owner = row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"]
        .as_str()
        .unwrap();
    assert!(owner == "systemuser" || owner == "team");
    assert!(row["_ownerid_value@OData.Community.Display.V1.FormattedValue"].is_string());
    assert_eq!(
        row["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"],
        "ownerid"
    );
    assert!(
        row["estimatedvalue@OData.Community.Display.V1.FormattedValue"]
            .as_str()
            .unwrap()
            .starts_with('$')
    );
    let yes_no = row["decisionmaker@OData.Community.Display.V1.FormattedValue"]
        .as_str()
        .unwrap();
    assert!(yes_no == "Yes" || yes_no == "No");
    let only_labels = org
        .get(
            query,
            &["odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\""],
        )
        .await
        .text;
    assert!(only_labels.contains("@OData.Community.Display.V1.FormattedValue"));
    assert!(!only_labels.contains("lookuplogicalname"));
    let teams = org
        .get("opportunities?$select=_ownerid_value", &[ALL_ANNOTATIONS])
        .await
        .rows();
    assert!(
        teams
            .iter()
            .any(|r| r["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team")
    );
}

#[tokio::test]
async fn track_changes_returns_the_full_set_with_a_delta_link_on_the_last_page_only() {
    let org = Org::start(small()).await;
    let prefer = ["odata.track-changes", "odata.maxpagesize=10"];
    let pages = org
        .all_pages("contacts?$select=fullname,emailaddress1", &prefer)
        .await;
    assert_eq!(pages.len(), 3, "24 contacts in pages of 10");
    for page in &pages[..2] {
        assert!(page.get("@odata.deltaLink").is_none());
    }
    let last = pages.last().unwrap();
    let delta = last["@odata.deltaLink"].as_str().unwrap();
    assert!(
        delta.starts_with(&format!(
            "{}contacts?$select=fullname%2Cemailaddress1&$deltatoken=",
            org.emu.api_url()
        )),
        "{delta}"
    );
    let token = delta.split("$deltatoken=").nth(1).unwrap();
    assert!(token.contains("%21") && token.contains("%2F"), "{token}");
    let rows: usize = pages
        .iter()
        .map(|p| p["value"].as_array().unwrap().len())
        .sum();
    assert_eq!(rows, org.emu.ids(Table::Contact).len());
}

#[tokio::test]
async fn a_delta_link_returns_changed_rows_then_deleted_rows() {
    let org = Org::start(small()).await;
    let prefer = ["odata.track-changes", "odata.maxpagesize=2"];
    let first = org.all_pages("accounts?$select=name", &prefer).await;
    let delta = first.last().unwrap()["@odata.deltaLink"]
        .as_str()
        .unwrap()
        .to_owned();
    let touched = org.emu.touch(Table::Account, 2);
    let doomed = org
        .emu
        .ids(Table::Account)
        .into_iter()
        .find(|id| !touched.contains(id))
        .unwrap();
    org.emu.delete(Table::Account, &doomed).unwrap();
    let added = org.emu.insert(
        Table::Account,
        BTreeMap::from([("name".to_owned(), json!("Fresh Ltd"))]),
    );
    let gone = org.emu.insert(
        Table::Account,
        BTreeMap::from([("name".to_owned(), json!("Brief Ltd"))]),
    );
    org.emu.delete(Table::Account, &gone).unwrap();
    let pages = org.all_pages(&delta, &prefer).await;
    assert_eq!(
        pages.len(),
        3,
        "three changes and two deletions in pages of two"
    );
    assert!(
        pages[0]["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#accounts(name)/$delta")
    );
    let rows: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .collect();
    let changed: Vec<&str> = rows[..3]
        .iter()
        .map(|r| r["accountid"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        [touched[0].as_str(), touched[1].as_str(), added.as_str()]
    );
    for (row, id) in rows[3..].iter().zip([&doomed, &gone]) {
        assert_eq!(row["id"], id.as_str());
        assert_eq!(row["reason"], "deleted");
        assert!(
            row["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("$metadata#accounts/$deletedEntity")
        );
    }
    assert!(
        pages[..2]
            .iter()
            .all(|p| p.get("@odata.deltaLink").is_none())
    );
    let fresh = pages[2]["@odata.deltaLink"].as_str().unwrap();
    let empty = org.get(fresh, &prefer).await.json();
    assert_eq!(empty["value"], json!([]));
    assert!(empty["@odata.deltaLink"].is_string());
}

#[tokio::test]
async fn track_changes_with_a_filter_orderby_or_top_is_a_400() {
    let org = Org::start(small()).await;
    for query in [
        "accounts?$select=name&$filter=name ne null",
        "accounts?$select=name&$orderby=name",
        "accounts?$select=name&$top=3",
    ] {
        let reply = org.get(query, &["odata.track-changes"]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
    }
    org.emu.update_knobs(|k| {
        k.change_tracking.remove(&Table::Lead);
    });
    let untracked = org
        .get("leads?$select=fullname", &["odata.track-changes"])
        .await;
    assert_eq!(untracked.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_delta_token_gets_the_configured_error() {
    let org = Org::start(small()).await;
    let delta_link = |pages: Vec<Value>| {
        pages.last().unwrap()["@odata.deltaLink"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let delta = delta_link(
        org.all_pages("teams?$select=name", &["odata.track-changes"])
            .await,
    );
    assert_eq!(
        org.get(&delta, &["odata.track-changes"]).await.status,
        StatusCode::OK
    );
    org.emu.expire_delta_tokens();
    let expired = org.get(&delta, &["odata.track-changes"]).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        expired.json(),
        json!({"error": {"code": "0x80044352", "message": "Version stamp associated with the client has expired. Please perform a full sync."}})
    );
    // A token handed out after the control works; by age it expires after
    // seven days on the emulator clock, with the knobs' status and code.
    let later = delta_link(
        org.all_pages("teams?$select=name", &["odata.track-changes"])
            .await,
    );
    assert_eq!(
        org.get(&later, &["odata.track-changes"]).await.status,
        StatusCode::OK
    );
    org.emu.update_knobs(|k| {
        k.expired_delta_status = 410;
        k.expired_delta_code = "0x80044353".into();
    });
    org.emu.advance_clock(Duration::from_secs(8 * 24 * 3600));
    let reply = org.grant(&org.good_form()).await;
    let org = Org {
        token: reply.json()["access_token"].as_str().unwrap().to_owned(),
        ..org
    };
    let aged = org.get(&later, &["odata.track-changes"]).await;
    assert_eq!(aged.status.as_u16(), 410);
    assert_eq!(aged.json()["error"]["code"], "0x80044353");
}

#[tokio::test]
async fn posting_a_task_answers_204_with_the_entity_id_or_201_with_the_row() {
    let org = Org::start(small()).await;
    let opp = org.opportunity_id();
    let body = json!({
        "subject": "Confirm budget",
        "scheduledend": "2026-03-09T09:00:00Z",
        "prioritycode": 2,
        "regardingobjectid_opportunity_task@odata.bind": format!("/opportunities({opp})"),
    });
    let created = org.post("tasks", body.clone(), None).await;
    assert_eq!(created.status, StatusCode::NO_CONTENT, "{}", created.text);
    let entity = created.header("odata-entityid").unwrap();
    let id = entity
        .strip_prefix(&format!("{}tasks(", org.emu.api_url()))
        .and_then(|s| s.strip_suffix(')'))
        .unwrap();
    let task = org.emu.record(Table::Task, id).unwrap();
    assert_eq!(task.fields["_regardingobjectid_value"], opp.as_str());
    assert_eq!(
        task.fields["_ownerid_value"],
        org.emu.application_user_id().as_str()
    );
    assert_eq!(task.fields["statecode"], 0);
    assert_eq!(task.fields["statuscode"], 2);
    let represented = org
        .post(
            "tasks?$select=subject,prioritycode",
            body,
            Some("return=representation"),
        )
        .await;
    assert_eq!(represented.status, StatusCode::CREATED);
    assert!(represented.header("odata-entityid").is_none());
    let row = represented.json();
    assert_eq!(row["subject"], "Confirm budget");
    assert_eq!(row["prioritycode"], 2);
    assert!(row["activityid"].is_string());
    let long = org
        .post("tasks", json!({"subject": "x".repeat(201)}), None)
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    let unknown = org.post("tasks", json!({"subjekt": "x"}), None).await;
    assert_eq!(
        unknown.json()["error"]["message"],
        "Invalid property 'subjekt' was found in entity 'Microsoft.Dynamics.CRM.task'."
    );
}

#[tokio::test]
async fn binds_check_the_navigation_property_and_the_target() {
    let org = Org::start(small()).await;
    let opp = org.opportunity_id();
    let wrong_nav = org
        .post("tasks", json!({"subject": "a", "regardingobjectid_opportunity@odata.bind": format!("/opportunities({opp})")}), None)
        .await;
    assert_eq!(wrong_nav.status, StatusCode::BAD_REQUEST);
    assert!(wrong_nav.json()["error"]["message"].as_str().unwrap().starts_with(
        "An undeclared property 'regardingobjectid_opportunity' which only has property annotations"
    ));
    let wrong_set = org
        .post("tasks", json!({"subject": "a", "regardingobjectid_opportunity_task@odata.bind": format!("/accounts({opp})")}), None)
        .await;
    assert_eq!(wrong_set.status, StatusCode::BAD_REQUEST);
    let missing = org
        .post("tasks", json!({"subject": "a", "ownerid@odata.bind": "/systemusers(00000000-0000-0000-0000-00000000abcd)"}), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let team = org.emu.ids(Table::Team)[0].clone();
    let owned = org
        .post(
            "tasks",
            json!({"subject": "by team", "ownerid@odata.bind": format!("/teams({team})")}),
            None,
        )
        .await;
    assert_eq!(owned.status, StatusCode::NO_CONTENT);
    let task = org
        .emu
        .tasks()
        .into_iter()
        .find(|t| t.fields.get("subject") == Some(&json!("by team")))
        .unwrap();
    assert_eq!(task.fields["_ownerid_value"], team.as_str());
}

#[tokio::test]
async fn conditional_patches_refuse_as_dataverse_does() {
    let org = Org::start(small()).await;
    let missing = "tasks(00000000-0000-0000-0000-0000000000aa)";
    let reply = org
        .patch(missing, json!({"subject": "x"}), &[("If-Match", "*")])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json()["error"],
        json!({"code": "0x80040217", "message": "task With Id = 00000000-0000-0000-0000-0000000000aa Does Not Exist"})
    );
    let task = org.emu.tasks()[0].clone();
    let path = format!("tasks({})", task.id);
    let exists = org
        .patch(&path, json!({"subject": "x"}), &[("If-None-Match", "*")])
        .await;
    assert_eq!(exists.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        exists.json()["error"]["message"],
        "A record with matching key values already exists."
    );
    let stale = org
        .patch(&path, json!({"subject": "x"}), &[("If-Match", "W/\"1\"")])
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let version = task.fields["versionnumber"].as_str().unwrap().to_owned();
    let tag = format!("W/\"{version}\"");
    let fresh = org
        .patch(
            &path,
            json!({"statecode": 1}),
            &[("If-Match", tag.as_str()), ("If-None-Match", "null")],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::NO_CONTENT, "{}", fresh.text);
    let after = org.emu.record(Table::Task, &task.id).unwrap();
    assert_eq!(
        after.fields["statuscode"], 5,
        "a completed task takes the completed status"
    );
    let upsert = org
        .patch(missing, json!({"subject": "made by upsert"}), &[])
        .await;
    assert_eq!(upsert.status, StatusCode::NO_CONTENT);
    assert!(
        org.emu
            .record(Table::Task, "00000000-0000-0000-0000-0000000000aa")
            .is_some()
    );
}

#[tokio::test]
async fn the_task_alternate_key_upserts_when_defined_and_is_refused_otherwise() {
    let org = Org::start(small()).await;
    let path = "tasks(new_journeydkey='rule-7%3Aopp-1')";
    let refused = org.patch(path, json!({"subject": "x"}), &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.json()["error"]["message"].as_str().unwrap().starts_with(
        "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.task'."
    ));
    org.emu
        .update_knobs(|k| k.task_alternate_key = Some("new_journeydkey".into()));
    let created = org.patch(path, json!({"subject": "first"}), &[]).await;
    assert_eq!(created.status, StatusCode::NO_CONTENT, "{}", created.text);
    let entity = created.header("odata-entityid").unwrap().to_owned();
    let updated = org.patch(path, json!({"subject": "second"}), &[]).await;
    assert_eq!(updated.status, StatusCode::NO_CONTENT);
    assert_eq!(updated.header("odata-entityid"), Some(entity.as_str()));
    let found = org
        .get(
            "tasks?$select=subject,new_journeydkey&$filter=new_journeydkey eq 'rule-7:opp-1'",
            &[],
        )
        .await
        .rows();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["subject"], "second");
    let again = org
        .patch(path, json!({"subject": "third"}), &[("If-None-Match", "*")])
        .await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn batch_replies_are_framed_with_crlf_as_dataverse_frames_them() {
    let org = Org::start(small()).await;
    let body = batch_body(
        "batch_a1",
        &[
            change_set("changeset_b2", &[task_part("one", Some(1)), task_part("two", Some(2))]),
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/teams?$select=name HTTP/1.1\r\nAccept: application/json\r\n\r\n".to_owned(),
        ],
    );
    let reply = org.batch(body, "batch_a1", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let content_type = reply.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap();
    assert!(boundary.starts_with("batchresponse_"));
    let text = &reply.text;
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "every line ends in CRLF"
    );
    let changeset = text
        .split("boundary=changesetresponse_")
        .nth(1)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap();
    let expected_start = format!(
        "--{boundary}\r\nContent-Type: multipart/mixed; boundary=changesetresponse_{changeset}\r\n\r\n--changesetresponse_{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nOData-EntityId: {}tasks(",
        org.emu.api_url()
    );
    assert!(text.starts_with(&expected_start), "{text}");
    assert!(text.contains(&format!(")\r\n\r\n\r\n--changesetresponse_{changeset}\r\n")));
    assert!(text.contains(&format!("--changesetresponse_{changeset}--\r\n--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 200 OK\r\n")));
    assert!(text.ends_with(&format!("}}\r\n--{boundary}--\r\n")));
    assert!(subjects(&org).is_superset(&BTreeSet::from(["one".to_owned(), "two".to_owned()])));
    assert_eq!(org.emu.counts().get("POST /api/data/v9.2/$batch"), 1);
}

#[tokio::test]
async fn a_refused_batch_part_with_continue_on_error_leaves_the_others_written() {
    let org = Org::start(small()).await;
    org.emu.fail_batch_parts(1);
    let body = batch_body(
        "b",
        &[
            task_part("p1", None),
            task_part("p2", None),
            task_part("p3", None),
        ],
    );
    let reply = org.batch(body, "b", Some("odata.continue-on-error")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply
            .text
            .matches("HTTP/1.1 429 Too Many Requests\r\n")
            .count(),
        1
    );
    assert!(
        reply.text.contains("\r\nRetry-After: 1\r\n"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("0x80072321"), "{}", reply.text);
    assert_eq!(reply.text.matches("HTTP/1.1 204 No Content\r\n").count(), 2);
    let made = subjects(&org);
    assert!(!made.contains("p1") && made.contains("p2") && made.contains("p3"));
}

#[tokio::test]
async fn an_erroring_batch_part_is_carried_out_then_answered_500() {
    let org = Org::start(small()).await;
    org.emu.error_batch_parts(1);
    let body = batch_body("b", &[task_part("e1", None), task_part("e2", None)]);
    let reply = org.batch(body, "b", Some("odata.continue-on-error")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply
            .text
            .matches("HTTP/1.1 500 Internal Server Error\r\n")
            .count(),
        1
    );
    assert!(reply.text.contains("0x80044150"), "{}", reply.text);
    let made = subjects(&org);
    assert!(
        made.contains("e1") && made.contains("e2"),
        "both were written"
    );
}

/// A task create by a primary key the client chose, as a batch part.
fn keyed_task_part(id: &str, subject: &str, content_id: usize) -> String {
    format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {content_id}\r\n\r\nPATCH /api/data/v9.2/tasks({id}) HTTP/1.1\r\nIf-None-Match: *\r\nContent-Type: application/json; type=entry\r\n\r\n{}\r\n",
        json!({"subject": subject})
    )
}

#[tokio::test]
async fn a_patch_with_if_none_match_creates_the_row_it_names_once_and_then_answers_412() {
    let org = Org::start(small()).await;
    let id = "5b7f0c3e-1d2a-5e4f-8a9b-0c1d2e3f4a5b";
    let path = format!("tasks({id})");
    let made = org
        .patch(
            &path,
            json!({"subject": "first"}),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(made.status, StatusCode::NO_CONTENT, "{}", made.text);
    assert_eq!(
        made.header("odata-entityid"),
        Some(format!("{}{path}", org.emu.api_url()).as_str())
    );
    let again = org
        .patch(
            &path,
            json!({"subject": "second"}),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);
    // The conditional operations doc's body, its code empty.
    assert_eq!(
        again.json(),
        json!({"error": {"code": "", "message": "A record with matching key values already exists."}})
    );
    let task = org.emu.record(Table::Task, id).expect("made under its key");
    assert_eq!(task.fields["subject"], "first", "never updated");
    let posted = org
        .post("tasks", json!({"activityid": id, "subject": "third"}), None)
        .await;
    assert_eq!(posted.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(posted.json()["error"]["code"], "0x80040237");
}

#[tokio::test]
async fn inside_a_batch_an_insert_only_patch_makes_one_row_and_answers_412_after() {
    let org = Org::start(small()).await;
    let id = "6c8f1d4e-2e3b-5f5a-9bac-1d2e3f4a5b6c";
    let before = org.emu.tasks().len();
    let body = batch_body(
        "b",
        &[keyed_task_part(id, "one", 1), keyed_task_part(id, "two", 2)],
    );
    let reply = org.batch(body, "b", Some("odata.continue-on-error")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .text
            .contains("Content-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\n"),
        "{}",
        reply.text
    );
    assert!(
        reply
            .text
            .contains("Content-ID: 2\r\n\r\nHTTP/1.1 412 Precondition Failed\r\n"),
        "{}",
        reply.text
    );
    assert_eq!(org.emu.tasks().len(), before + 1);
    assert_eq!(
        org.emu.record(Table::Task, id).unwrap().fields["subject"],
        "one"
    );
}

#[tokio::test]
async fn a_second_task_under_a_taken_alternate_key_value_is_refused_as_a_duplicate() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|k| k.task_alternate_key = Some("new_journeydkey".into()));
    let first = org
        .patch(
            "tasks(new_journeydkey='jd-k1')",
            json!({"subject": "by key"}),
            &[],
        )
        .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.text);
    let second = org
        .patch(
            "tasks(7d9f2e5f-3f4c-5a6b-8cbd-2e3f4a5b6c7d)",
            json!({"subject": "by id", "new_journeydkey": "jd-k1"}),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(second.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(second.json()["error"]["code"], "0x80060892");
    assert!(
        org.emu
            .record(Table::Task, "7d9f2e5f-3f4c-5a6b-8cbd-2e3f4a5b6c7d")
            .is_none()
    );
    org.emu.update_knobs(|k| k.alt_key_duplicate_status = 400);
    let third = org
        .patch(
            "tasks(7d9f2e5f-3f4c-5a6b-8cbd-2e3f4a5b6c7d)",
            json!({"subject": "by id", "new_journeydkey": "jd-k1"}),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(third.status, StatusCode::BAD_REQUEST);
    assert_eq!(third.json()["error"]["code"], "0x80060892");
}

/// Polls `done` every 10 ms for at most 5 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test]
async fn a_paced_batch_goes_on_to_the_end_after_its_client_has_gone() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|k| k.batch_part_delay = Duration::from_millis(60));
    let before = org.emu.tasks().len();
    let parts: Vec<String> = (0..6)
        .map(|i| task_part(&format!("orphan{i}"), Some(i + 1)))
        .collect();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(org.url("$batch"))
        .bearer_auth(&org.token)
        .header("Content-Type", "multipart/mixed; boundary=\"b\"")
        .header("Prefer", "odata.continue-on-error")
        .body(batch_body("b", &parts))
        .send()
        .await
        .expect_err("the client times out");
    assert!(gave_up.is_timeout(), "{gave_up}");
    let made_when_it_left = org.emu.tasks().len() - before;
    assert!(
        made_when_it_left < 6,
        "{made_when_it_left} parts ran at once"
    );
    assert_eq!(org.emu.batches_running(), 1, "the batch runs on");
    assert!(eventually(|| org.emu.batches_running() == 0).await);
    assert_eq!(
        org.emu.tasks().len(),
        before + 6,
        "every part was committed"
    );
    let made = subjects(&org);
    assert!((0..6).all(|i| made.contains(&format!("orphan{i}"))));
}

#[tokio::test]
async fn a_paced_batch_answers_when_all_its_parts_are_done() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|k| k.batch_part_delay = Duration::from_millis(20));
    let parts: Vec<String> = (0..3)
        .map(|i| task_part(&format!("paced{i}"), Some(i + 1)))
        .collect();
    let started = std::time::Instant::now();
    let reply = org
        .batch(
            batch_body("b", &parts),
            "b",
            Some("odata.continue-on-error"),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text.matches("HTTP/1.1 204 No Content\r\n").count(), 3);
    assert_eq!(org.emu.batches_running(), 0);
}

#[tokio::test]
async fn the_next_write_is_made_then_answered_with_a_body_that_cannot_be_read() {
    let org = Org::start(small()).await;
    org.emu.malform_next_write();
    let read = org.get("teams?$select=name", &[]).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.rows().is_empty(), "a read is left alone");
    let before = org.emu.tasks().len();
    let garbled = org
        .batch(
            batch_body("b", &[task_part("g1", Some(1)), task_part("g2", Some(2))]),
            "b",
            Some("odata.continue-on-error"),
        )
        .await;
    assert_eq!(garbled.status, StatusCode::OK);
    assert!(garbled.text.ends_with("<garbled"), "{}", garbled.text);
    assert!(!garbled.text.contains("--\r\n"), "no closing delimiter");
    assert_eq!(org.emu.tasks().len(), before + 2, "the writes were made");
    let next = org
        .batch(
            batch_body("b", &[task_part("g3", Some(1))]),
            "b",
            Some("odata.continue-on-error"),
        )
        .await;
    assert!(
        next.text.ends_with("--\r\n"),
        "only the next write: {}",
        next.text
    );
}

#[tokio::test]
async fn without_continue_on_error_a_batch_stops_at_the_first_failure() {
    let org = Org::start(small()).await;
    let bad = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPOST /api/data/v9.2/tasks HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{\"nosuch\":1}\r\n".to_owned();
    let body = batch_body("b", &[task_part("s1", None), bad, task_part("s3", None)]);
    let reply = org.batch(body, "b", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("multipart/mixed; boundary=batchresponse_")
    );
    assert_eq!(
        reply.text.matches("HTTP/1.1 400 Bad Request\r\n").count(),
        1
    );
    let made = subjects(&org);
    assert!(made.contains("s1") && !made.contains("s3"));
}

#[tokio::test]
async fn a_change_set_is_atomic() {
    let org = Org::start(small()).await;
    let bad = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\nPOST /api/data/v9.2/tasks HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{\"subject\":\"c2\",\"ownerid@odata.bind\":\"/systemusers(00000000-0000-0000-0000-000000000001)\"}\r\n".to_owned();
    let body = batch_body(
        "b",
        &[
            change_set("cs", &[task_part("c1", Some(1)), bad]),
            task_part("after", None),
        ],
    );
    let before = org.emu.tasks().len();
    let reply = org.batch(body, "b", Some("odata.continue-on-error")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .text
            .contains("Content-ID: 2\r\n\r\nHTTP/1.1 404 Not Found\r\n"),
        "{}",
        reply.text
    );
    let made = subjects(&org);
    assert!(
        !made.contains("c1"),
        "the change set's first part was rolled back"
    );
    assert!(made.contains("after"));
    assert_eq!(org.emu.tasks().len(), before + 1);
}

#[tokio::test]
async fn a_batch_over_the_limit_is_a_400_and_writes_nothing() {
    let org = Org::start(small()).await;
    org.emu.update_knobs(|k| k.batch_max = 3);
    let parts: Vec<String> = (0..4)
        .map(|i| task_part(&format!("over{i}"), None))
        .collect();
    let reply = org.batch(batch_body("b", &parts), "b", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3")
    );
    assert!(!subjects(&org).iter().any(|s| s.starts_with("over")));
}

#[tokio::test]
async fn a_get_part_in_a_batch_is_answered_like_the_plain_get() {
    let org = Org::start(small()).await;
    let get = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/contacts?$select=fullname HTTP/1.1\r\nAccept: application/json\r\nPrefer: odata.maxpagesize=5\r\n\r\n".to_owned();
    let reply = org.batch(batch_body("b", &[get]), "b", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let json_start = reply.text.find("\r\n\r\n{").unwrap() + 4;
    let json_end = reply.text.rfind("}\r\n--").unwrap() + 1;
    let inner: Value = serde_json::from_str(&reply.text[json_start..json_end]).unwrap();
    let plain = org
        .get("contacts?$select=fullname", &["odata.maxpagesize=5"])
        .await
        .json();
    assert_eq!(inner, plain);
    assert!(inner["@odata.nextLink"].is_string());
    assert!(
        reply
            .text
            .contains("Preference-Applied: odata.maxpagesize=5\r\n")
    );
}

#[tokio::test]
async fn the_request_window_answers_429_with_a_growing_retry_after() {
    let org = Org::start(small()).await;
    org.emu.update_knobs(|k| k.requests_per_window = Some(3));
    for _ in 0..3 {
        assert_eq!(
            org.get("teams?$select=name", &[]).await.status,
            StatusCode::OK
        );
    }
    let refused = org.get("teams?$select=name", &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.json()["error"],
        json!({"code": "0x80072322", "message": "Number of requests exceeded the limit of 3 over time window of 300 seconds."})
    );
    let first: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&first));
    let again = org.get("teams?$select=name", &[]).await;
    let second: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!(second > first, "{second} after {first}");
    org.emu.advance_clock(Duration::from_secs(301));
    assert_eq!(
        org.get("teams?$select=name", &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_get_429_at_once() {
    let org = Org::start(small()).await;
    org.emu.update_knobs(|k| {
        k.concurrency = 2;
        k.hold_requests = Duration::from_millis(400);
    });
    let q = "teams?$select=name";
    let (a, b, c, d, e, f) = tokio::join!(
        org.get(q, &[]),
        org.get(q, &[]),
        org.get(q, &[]),
        org.get(q, &[]),
        org.get(q, &[]),
        org.get(q, &[])
    );
    let replies = [a, b, c, d, e, f];
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(ok <= 2, "{ok} answered at once");
    assert_eq!(ok + refused.len(), 6);
    assert!(refused.len() >= 4);
    assert_eq!(refused[0].json()["error"]["code"], "0x80072326");
    assert!(refused[0].header("retry-after").is_some());
}

#[tokio::test]
async fn injected_faults_have_dataverse_bodies_and_retry_after() {
    let org = Org::start(small()).await;
    org.emu.faults().storm(1, Some(Duration::from_secs(2)));
    let storm = org.get("teams", &[]).await;
    assert_eq!(storm.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(storm.header("retry-after"), Some("2"));
    assert_eq!(storm.json()["error"]["code"], "0x80072322");
    org.emu.faults().fail_next(1);
    let failed = org.get("teams", &[]).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(failed.json()["error"]["message"].is_string());
}

#[tokio::test]
async fn choice_metadata_lists_options_with_labels() {
    let org = Org::start(small()).await;
    let path = "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_customerstage')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options)";
    let reply = org.get(path, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["LogicalName"], "new_customerstage");
    let options = body["OptionSet"]["Options"].as_array().unwrap();
    let labels: Vec<(i64, &str)> = options
        .iter()
        .map(|o| {
            (
                o["Value"].as_i64().unwrap(),
                o["Label"]["UserLocalizedLabel"]["Label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            (100000000, "Onboarding"),
            (100000001, "Adoption"),
            (100000002, "Renewal"),
            (100000003, "Expansion")
        ]
    );
    let stage = org
        .get("EntityDefinitions(LogicalName='opportunity')/Attributes(LogicalName='salesstage')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet", &[])
        .await
        .json();
    assert!(
        stage["OptionSet"]["Options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["Label"]["UserLocalizedLabel"]["Label"] == "Won't Close")
    );
    let status = org
        .get("EntityDefinitions(LogicalName='task')/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata?$expand=OptionSet", &[])
        .await
        .json();
    assert!(
        status["OptionSet"]["Options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["Value"] == 5 && o["State"] == 1)
    );
    let not_a_choice = org
        .get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata", &[])
        .await;
    assert_eq!(not_a_choice.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_corrupt_row_is_unreadable_while_the_rest_of_its_page_stays_valid() {
    let org = Org::start(small()).await;
    let id = org.emu.ids(Table::Account)[1].clone();
    org.emu.corrupt(Table::Account, &id).unwrap();
    let rows = org
        .get("accounts?$select=name,modifiedon", &[])
        .await
        .rows();
    let bad: Vec<&Value> = rows
        .iter()
        .filter(|r| r["modifiedon"] == "not a date")
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["accountid"], id.as_str(), "the key stays readable");
    assert!(
        rows.iter()
            .filter(|r| r["accountid"] != id.as_str())
            .all(|r| r["modifiedon"].as_str().unwrap().ends_with('Z'))
    );
}

#[tokio::test]
async fn the_seeded_org_has_an_application_user_owner_teams_with_members_and_a_realistic_mix() {
    let org = Org::start(EmulatorConfig::with_opportunities(60)).await;
    let app = org
        .emu
        .record(Table::SystemUser, &org.emu.application_user_id())
        .unwrap();
    assert_eq!(app.fields["accessmode"], 4);
    let users = org.emu.records(Table::SystemUser);
    let disabled: Vec<&str> = users
        .iter()
        .filter(|u| u.fields["isdisabled"] == true)
        .map(|u| u.id.as_str())
        .collect();
    assert_eq!(disabled.len(), 1);
    assert!(
        users
            .iter()
            .any(|u| u.id == "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    );
    assert!(
        users
            .iter()
            .any(|u| u.fields["internalemailaddress"] == "mia.schmidt@example.com")
    );
    let teams = org
        .get(
            "teams?$select=name,teamtype&$expand=teammembership_association($select=systemuserid)",
            &[],
        )
        .await
        .rows();
    let names: Vec<&str> = teams.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "Account Management",
            "Customer Success",
            "Marketing",
            "Onboarding",
            "Sales"
        ]
    );
    assert!(teams.iter().all(|t| {
        t["teamtype"] == 0
            && !t["teammembership_association"]
                .as_array()
                .unwrap()
                .is_empty()
    }));
    let opps = org.emu.records(Table::Opportunity);
    let owner_of = |o: &&journeyd_dynamics_emulator::EmulatedRecord| {
        o.fields["_ownerid_value"].as_str().unwrap().to_owned()
    };
    assert!(
        opps.iter()
            .any(|o| disabled.contains(&owner_of(&o).as_str()))
    );
    let team_ids = org.emu.ids(Table::Team);
    assert!(opps.iter().any(|o| team_ids.contains(&owner_of(&o))));
    let states: BTreeSet<i64> = opps
        .iter()
        .map(|o| o.fields["statecode"].as_i64().unwrap())
        .collect();
    assert_eq!(states, BTreeSet::from([0, 1, 2]));
    assert!(
        opps.iter()
            .any(|o| o.fields["salesstage"].as_i64() >= Some(2)
                && !o.fields.contains_key("new_successcriteria"))
    );
    let lead_statuses: BTreeSet<i64> = org
        .emu
        .records(Table::Lead)
        .iter()
        .map(|l| l.fields["statuscode"].as_i64().unwrap())
        .collect();
    assert_eq!(lead_statuses.len(), 7);
    let regarding: BTreeSet<Table> = org
        .emu
        .tasks()
        .iter()
        .filter_map(|t| {
            let id = t.fields.get("_regardingobjectid_value")?.as_str()?;
            [Table::Opportunity, Table::Account]
                .into_iter()
                .find(|table| org.emu.record(*table, id).is_some())
        })
        .collect();
    assert_eq!(
        regarding,
        BTreeSet::from([Table::Opportunity, Table::Account])
    );
    let stages: BTreeSet<i64> = org
        .emu
        .records(Table::Account)
        .iter()
        .filter_map(|a| a.fields.get("new_customerstage")?.as_i64())
        .collect();
    assert_eq!(stages.len(), 4);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_org() {
    let a = DynamicsEmulator::start(small()).unwrap();
    let b = DynamicsEmulator::start(small()).unwrap();
    assert_eq!(a.records(Table::Opportunity), b.records(Table::Opportunity));
    assert_eq!(a.tasks(), b.tasks());
    let other = DynamicsEmulator::start(EmulatorConfig { seed: 2, ..small() }).unwrap();
    assert_ne!(a.ids(Table::Contact), other.ids(Table::Contact));
}

#[tokio::test]
async fn set_field_and_touch_move_modifiedon_past_every_earlier_row() {
    let org = Org::start(small()).await;
    let latest = |org: &Org| {
        org.emu
            .records(Table::Lead)
            .iter()
            .map(|l| l.fields["modifiedon"].as_str().unwrap().to_owned())
            .max()
            .unwrap()
    };
    let before = latest(&org);
    let id = org.emu.ids(Table::Lead)[0].clone();
    org.emu
        .set_field(Table::Lead, &id, "subject", json!("Changed"))
        .unwrap();
    let changed = org.emu.record(Table::Lead, &id).unwrap();
    assert_eq!(changed.fields["subject"], "Changed");
    assert!(changed.fields["modifiedon"].as_str().unwrap() > before.as_str());
    let touched = org.emu.touch(Table::Lead, 1);
    let after = org.emu.record(Table::Lead, &touched[0]).unwrap();
    assert!(
        after.fields["modifiedon"].as_str().unwrap()
            > changed.fields["modifiedon"].as_str().unwrap()
    );
    assert!(
        org.emu
            .set_field(Table::Lead, &id, "nosuch", json!(1))
            .is_err()
    );
    assert!(
        org.emu
            .delete(Table::Lead, "00000000-0000-0000-0000-000000000000")
            .is_err()
    );
}

#[tokio::test]
async fn missing_odata_headers_are_refused_when_the_knob_asks() {
    let org = Org::start(small()).await;
    let bare = || send(org.http.get(org.url("teams")).bearer_auth(&org.token));
    assert_eq!(bare().await.status, StatusCode::OK);
    org.emu.update_knobs(|k| k.require_odata_headers = true);
    assert_eq!(bare().await.status, StatusCode::BAD_REQUEST);
    assert_eq!(org.get("teams", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn count_reports_every_matching_row() {
    let org = Org::start(small()).await;
    let body = org
        .get(
            "contacts?$select=fullname&$count=true",
            &["odata.maxpagesize=5"],
        )
        .await
        .json();
    assert_eq!(body["@odata.count"], org.emu.ids(Table::Contact).len());
    assert_eq!(body["value"].as_array().unwrap().len(), 5);
}
