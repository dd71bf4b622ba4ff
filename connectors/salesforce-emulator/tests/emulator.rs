//! Specifications of the Salesforce emulator, spoken to with a bare HTTP
//! client: the token endpoint, SOQL and its pages, getDeleted, sObject
//! Collections, the daily allocation, error arrays, and the control knobs
//! tests rely on.

use journeyd_salesforce_emulator::{
    EmulatorConfig, SObject, SalesforceEmulator, TEST_JWT_PRIVATE_KEY_PEM,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const V: &str = "v62.0";

struct Org {
    emu: SalesforceEmulator,
    http: reqwest::Client,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// A small org (12 opportunities) with the daily allocation lifted.
fn small() -> EmulatorConfig {
    let mut config = EmulatorConfig::with_opportunities(12);
    config.knobs.daily_limit = None;
    config
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assertion(iss: &str, sub: &str, aud: &str, exp: u64, key_pem: &str) -> String {
    let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the emulator answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a whole body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    Reply {
        status,
        headers,
        body,
    }
}

impl Org {
    async fn start(config: EmulatorConfig) -> Self {
        let emu = SalesforceEmulator::start(config).expect("the emulator starts");
        let http = reqwest::Client::new();
        let mut org = Self {
            emu,
            http,
            token: String::new(),
        };
        let reply = org.jwt_login(org.good_assertion()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        org.token = reply.body["access_token"].as_str().unwrap().to_owned();
        org
    }

    fn good_assertion(&self) -> String {
        assertion(
            &self.emu.client_id(),
            &self.emu.username(),
            &self.emu.jwt_audience(),
            epoch_secs() + 180,
            TEST_JWT_PRIVATE_KEY_PEM,
        )
    }

    async fn token_call(&self, form: &[(&str, &str)]) -> Reply {
        send(self.http.post(self.emu.token_url()).form(form)).await
    }

    async fn jwt_login(&self, assertion: String) -> Reply {
        self.token_call(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ])
        .await
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.emu
            .base_url()
            .join(path.trim_start_matches('/'))
            .unwrap()
    }

    async fn get(&self, path: &str) -> Reply {
        send(self.http.get(self.url(path)).bearer_auth(&self.token)).await
    }

    async fn query(&self, route: &str, soql: &str, batch: Option<usize>) -> Reply {
        let mut request = self
            .http
            .get(self.url(&format!("/services/data/{V}/{route}")))
            .query(&[("q", soql)])
            .bearer_auth(&self.token);
        if let Some(n) = batch {
            request = request.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        send(request).await
    }

    async fn soql(&self, soql: &str) -> Reply {
        self.query("query", soql, None).await
    }

    async fn write(&self, method: reqwest::Method, path: &str, body: Value) -> Reply {
        send(
            self.http
                .request(method, self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    async fn collections(&self, method: reqwest::Method, body: Value) -> Reply {
        self.write(
            method,
            &format!("/services/data/{V}/composite/sobjects"),
            body,
        )
        .await
    }
}

fn field(reply: &Reply, name: &str) -> Vec<Value> {
    reply.body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("records in {}", reply.body))
        .iter()
        .map(|r| r[name].clone())
        .collect()
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body[0]["errorCode"], code, "{}", reply.body);
    assert!(
        reply.body[0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

fn task(subject: &str, what: &str) -> Value {
    json!({"attributes": {"type": "Task"}, "Subject": subject, "WhatId": what, "Status": "Not Started", "Priority": "Normal"})
}

// --- auth -----------------------------------------------------------------

#[tokio::test]
async fn a_jwt_assertion_signed_with_the_configured_key_gets_a_token_without_a_refresh_token() {
    let org = Org::start(small()).await;
    let reply = org.jwt_login(org.good_assertion()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = &reply.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["instance_url"],
        org.emu.base_url().as_str().trim_end_matches('/')
    );
    assert!(
        body["issued_at"].as_str().unwrap().parse::<i64>().is_ok(),
        "{body}"
    );
    assert!(body["id"].as_str().unwrap().contains("/id/00D"), "{body}");
    assert!(body["signature"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn a_jwt_assertion_with_a_foreign_signature_or_past_expiry_or_wrong_audience_is_invalid_grant()
 {
    let org = Org::start(small()).await;
    // The emulator trusts only the configured key; a signature replaced
    // by other bytes stands in for one made with a foreign key.
    let good = org.good_assertion();
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "A".repeat(342));
    let expired = assertion(
        &org.emu.client_id(),
        &org.emu.username(),
        &org.emu.jwt_audience(),
        epoch_secs() - 600,
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    let elsewhere = assertion(
        &org.emu.client_id(),
        &org.emu.username(),
        "https://login.example.com",
        epoch_secs() + 180,
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    for bad in [forged, expired, elsewhere] {
        let reply = org.jwt_login(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body["error"], "invalid_grant", "{}", reply.body);
        assert!(reply.body["error_description"].is_string());
    }
    let stranger = assertion(
        "someone-else",
        &org.emu.username(),
        &org.emu.jwt_audience(),
        epoch_secs() + 180,
        TEST_JWT_PRIVATE_KEY_PEM,
    );
    assert_eq!(
        org.jwt_login(stranger).await.body["error"],
        "invalid_client_id"
    );
}

#[tokio::test]
async fn a_refresh_keeps_the_refresh_token_unless_rotation_is_on_and_then_the_old_one_dies() {
    let org = Org::start(small()).await;
    let first = org.emu.refresh_token();
    let reply = refresh(&org, &first).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.get("refresh_token").is_none());
    assert_eq!(org.emu.refresh_token(), first);

    org.emu.update_knobs(|k| k.rotate_refresh_tokens = true);
    let reply = refresh(&org, &first).await;
    let second = reply.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(org.emu.refresh_token(), second);
    let stale = refresh(&org, &first).await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert_eq!(stale.body["error"], "invalid_grant");
    assert_eq!(
        stale.body["error_description"],
        "expired access/refresh token"
    );
}

async fn refresh(org: &Org, token: &str) -> Reply {
    let (id, secret) = (org.emu.client_id(), org.emu.client_secret());
    org.token_call(&[
        ("grant_type", "refresh_token"),
        ("client_id", &id),
        ("client_secret", &secret),
        ("refresh_token", token),
    ])
    .await
}

#[tokio::test]
async fn the_instance_url_knob_names_another_host_in_the_token_response() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|k| k.instance_url = Some("https://evil.example.com".into()));
    let reply = org.jwt_login(org.good_assertion()).await;
    assert_eq!(reply.body["instance_url"], "https://evil.example.com");
}

#[tokio::test]
async fn a_data_call_with_no_or_an_expired_token_is_401_with_an_error_array() {
    let org = Org::start(small()).await;
    let bare = send(org.http.get(org.url(&format!("/services/data/{V}/limits")))).await;
    assert_error(&bare, StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID");
    assert_eq!(bare.body[0]["message"], "Session expired or invalid");
    assert_eq!(
        org.get(&format!("/services/data/{V}/limits")).await.status,
        StatusCode::OK
    );
    org.emu.expire_tokens();
    assert_error(
        &org.get(&format!("/services/data/{V}/limits")).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
    );
}

#[tokio::test]
async fn tokens_expire_after_the_given_number_of_calls() {
    let org = Org::start(small()).await;
    org.emu.expire_after_requests(2);
    let path = format!("/services/data/{V}/limits");
    assert_eq!(org.get(&path).await.status, StatusCode::OK);
    assert_eq!(org.get(&path).await.status, StatusCode::OK);
    assert_eq!(org.get(&path).await.status, StatusCode::UNAUTHORIZED);
}

// --- SOQL -----------------------------------------------------------------

#[tokio::test]
async fn where_and_order_and_limit_are_applied() {
    let org = Org::start(small()).await;
    let reply = org
        .soql("SELECT Id, Name, Amount FROM Opportunity WHERE Amount >= 100000 AND IsClosed = false ORDER BY Amount DESC, Id LIMIT 3")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let amounts: Vec<f64> = field(&reply, "Amount")
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    assert!(amounts.len() <= 3 && !amounts.is_empty());
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "{amounts:?}");
    assert!(amounts.iter().all(|a| *a >= 100_000.0));
    // The same filter checked against the control API.
    let expected = org
        .emu
        .records(SObject::Opportunity)
        .iter()
        .filter(|r| {
            r.fields["Amount"].as_f64().unwrap() >= 100_000.0 && r.fields["IsClosed"] == false
        })
        .count();
    assert_eq!(reply.body["totalSize"], expected.min(3));
    let record = &reply.body["records"][0];
    assert_eq!(record["attributes"]["type"], "Opportunity");
    let id = record["Id"].as_str().unwrap();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("006"));
    assert_eq!(
        record["attributes"]["url"],
        format!("/services/data/{V}/sobjects/Opportunity/{id}")
    );
}

#[tokio::test]
async fn or_in_not_and_like_select_what_they_say() {
    let org = Org::start(small()).await;
    let stages = org
        .soql("SELECT StageName FROM Opportunity WHERE (StageName = 'Closed Won' OR StageName = 'Closed Lost') AND NOT StageName IN ('Closed Lost')")
        .await;
    let names = field(&stages, "StageName");
    assert!(!names.is_empty());
    assert!(names.iter().all(|s| s == "Closed Won"), "{names:?}");

    let opps: Vec<String> = org
        .emu
        .ids(SObject::Opportunity)
        .into_iter()
        .take(5)
        .collect();
    let list = opps
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let tasks = org
        .soql(&format!(
            "SELECT Id, WhatId, Subject FROM Task WHERE WhatId IN ({list}) AND IsClosed = false"
        ))
        .await;
    assert_eq!(tasks.status, StatusCode::OK, "{}", tasks.body);
    let expected = org
        .emu
        .tasks()
        .iter()
        .filter(|t| {
            opps.contains(&t.fields["WhatId"].as_str().unwrap().to_owned())
                && t.fields["IsClosed"] == false
        })
        .count();
    assert_eq!(tasks.body["totalSize"], expected);

    let like = org
        .soql("SELECT Subject FROM Task WHERE Subject LIKE '%onboard%'")
        .await;
    let subjects = field(&like, "Subject");
    assert!(!subjects.is_empty());
    assert!(
        subjects
            .iter()
            .all(|s| s.as_str().unwrap().contains("Onboarding"))
    );
}

#[tokio::test]
async fn datetime_literals_compare_against_system_modstamp() {
    let org = Org::start(small()).await;
    let touched = org.emu.touch(SObject::Opportunity, 2);
    let since = org.emu.now() - chrono::Duration::seconds(60);
    let literal = since.format("%Y-%m-%dT%H:%M:%S.000+0000");
    let reply = org
        .soql(&format!("SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp >= {literal} ORDER BY SystemModstamp"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let ids: BTreeSet<String> = field(&reply, "Id")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, touched.into_iter().collect());
    let stamp = field(&reply, "SystemModstamp")[0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stamp.ends_with("+0000") && stamp.len() == 28, "{stamp}");
}

#[tokio::test]
async fn a_stage_with_a_quote_and_a_backslash_round_trips_through_an_escaped_literal() {
    let org = Org::start(small()).await;
    let reply = org
        .soql(r"SELECT Id, StageName FROM Opportunity WHERE StageName = 'Won\'t Close \\ Parked'")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["totalSize"], 1);
    assert_eq!(
        reply.body["records"][0]["StageName"],
        r"Won't Close \ Parked"
    );
}

#[tokio::test]
async fn malformed_queries_and_unknown_fields_or_objects_are_400_arrays() {
    let org = Org::start(small()).await;
    assert_error(
        &org.soql("SELECT FROM Opportunity").await,
        StatusCode::BAD_REQUEST,
        "MALFORMED_QUERY",
    );
    assert_error(
        &org.soql("SELECT Id FROM Opportunity WHERE Name = 'open")
            .await,
        StatusCode::BAD_REQUEST,
        "MALFORMED_QUERY",
    );
    assert_error(
        &org.soql("SELECT Nope__c FROM Opportunity").await,
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD",
    );
    assert_error(
        &org.soql("SELECT Id FROM Widget__c").await,
        StatusCode::BAD_REQUEST,
        "INVALID_TYPE",
    );
    assert_eq!(org.emu.queries().len(), 4);
}

#[tokio::test]
async fn a_query_pages_by_next_records_url_in_batches_of_the_asked_size() {
    let mut config = small();
    config.sizes.contacts = 450;
    let org = Org::start(config).await;
    let mut reply = org
        .query("query", "SELECT Id FROM Contact", Some(200))
        .await;
    let mut seen = Vec::new();
    let mut pages = 1;
    loop {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["totalSize"], 450);
        let batch = field(&reply, "Id");
        seen.extend(batch.iter().map(|v| v.as_str().unwrap().to_owned()));
        if reply.body["done"] == true {
            assert!(reply.body.get("nextRecordsUrl").is_none());
            break;
        }
        assert_eq!(batch.len(), 200);
        let next = reply.body["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(
            next.starts_with(&format!("/services/data/{V}/query/01g")),
            "{next}"
        );
        assert!(pages < 5, "paging does not end");
        reply = org.get(&next).await;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, org.emu.ids(SObject::Contact));
    let asked_small = org.query("query", "SELECT Id FROM Contact", Some(10)).await;
    assert_eq!(
        field(&asked_small, "Id").len(),
        200,
        "batchSize under 200 is raised to 200"
    );
}

#[tokio::test]
async fn query_all_sees_deleted_rows_and_query_does_not() {
    let org = Org::start(small()).await;
    let gone = org.emu.ids(SObject::Account)[0].clone();
    org.emu.delete(SObject::Account, &gone).unwrap();
    let soql = format!("SELECT Id, IsDeleted FROM Account WHERE Id = '{gone}'");
    assert_eq!(org.query("query", &soql, None).await.body["totalSize"], 0);
    let all = org.query("queryAll", &soql, None).await;
    assert_eq!(all.body["totalSize"], 1);
    assert_eq!(all.body["records"][0]["IsDeleted"], true);
    assert!(org.emu.record(SObject::Account, &gone).unwrap().deleted);
}

#[tokio::test]
async fn get_deleted_lists_the_recycle_bin_within_its_window_and_refuses_an_older_start() {
    let org = Org::start(small()).await;
    let gone = org.emu.ids(SObject::Opportunity)[1].clone();
    let now = org.emu.now();
    org.emu.delete(SObject::Opportunity, &gone).unwrap();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let window = |start, end| {
        let url = org.url(&format!("/services/data/{V}/sobjects/Opportunity/deleted/"));
        send(
            org.http
                .get(url)
                .query(&[("start", start), ("end", end)])
                .bearer_auth(&org.token),
        )
    };
    let reply = window(
        fmt(now - chrono::Duration::days(1)),
        fmt(now + chrono::Duration::hours(1)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let ids: Vec<&str> = reply.body["deletedRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [gone.as_str()]);
    assert!(
        reply.body["earliestDateAvailable"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    assert!(reply.body["latestDateCovered"].is_string());
    let too_old = window(fmt(now - chrono::Duration::days(16)), fmt(now)).await;
    assert_error(
        &too_old,
        StatusCode::BAD_REQUEST,
        "INVALID_REPLICATION_DATE",
    );
}

#[tokio::test]
async fn a_record_emptied_from_the_bin_stays_in_the_delete_log_and_an_erased_one_leaves_no_trace() {
    let org = Org::start(small()).await;
    let ids = org.emu.ids(SObject::Opportunity);
    let (emptied, erased) = (ids[2].clone(), ids[3].clone());
    let now = org.emu.now();
    for id in [&emptied, &erased] {
        org.emu.delete(SObject::Opportunity, id).unwrap();
    }
    org.emu
        .empty_from_recycle_bin(SObject::Opportunity, &emptied)
        .unwrap();
    org.emu
        .empty_from_recycle_bin(SObject::Opportunity, &erased)
        .unwrap();
    org.emu.erase(SObject::Opportunity, &erased).unwrap();

    let bin = org
        .query(
            "queryAll",
            "SELECT Id FROM Opportunity WHERE IsDeleted = true",
            None,
        )
        .await;
    assert_eq!(bin.body["totalSize"], 0);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let url = org.url(&format!("/services/data/{V}/sobjects/Opportunity/deleted/"));
    let log = send(
        org.http
            .get(url)
            .query(&[
                ("start", fmt(now - chrono::Duration::days(1))),
                ("end", fmt(now + chrono::Duration::hours(1))),
            ])
            .bearer_auth(&org.token),
    )
    .await;
    let logged: Vec<&str> = log.body["deletedRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(logged, [emptied.as_str()]);
    assert!(org.emu.record(SObject::Opportunity, &erased).is_none());
}

#[tokio::test]
async fn a_corrupted_record_renders_unreadable_timestamps() {
    let org = Org::start(small()).await;
    let id = org.emu.ids(SObject::Opportunity)[0].clone();
    org.emu.corrupt(SObject::Opportunity, &id).unwrap();
    let reply = org
        .soql(&format!(
            "SELECT SystemModstamp FROM Opportunity WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(reply.body["records"][0]["SystemModstamp"], "not-a-date");
}

#[tokio::test]
async fn a_long_text_area_in_where_or_order_by_is_a_400_invalid_field() {
    let org = Org::start(small()).await;
    let like = org
        .soql("SELECT Id, Description FROM Task WHERE Description LIKE '%journeyd-action: k1%'")
        .await;
    assert_error(&like, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    assert_eq!(
        like.body[0]["message"],
        "field 'Description' can not be filtered in query call"
    );
    let sorted = org
        .soql("SELECT Id FROM Opportunity ORDER BY Description")
        .await;
    assert_error(&sorted, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    let selected = org
        .soql("SELECT Id, Description FROM Task WHERE Subject = 'Onboarding kickoff'")
        .await;
    assert_eq!(selected.status, StatusCode::OK, "{}", selected.body);
    assert!(!field(&selected, "Description").is_empty());
}

#[tokio::test]
async fn the_long_text_knob_off_lets_a_description_be_filtered() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|knobs| knobs.refuse_long_text_filters = false);
    let like = org
        .soql("SELECT Id FROM Task WHERE Description LIKE '%onboarding%'")
        .await;
    assert_eq!(like.status, StatusCode::OK, "{}", like.body);
    assert!(!field(&like, "Id").is_empty());
}

#[tokio::test]
async fn a_record_written_through_the_api_is_created_by_the_calling_user_at_server_time() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let before = org.emu.now();
    let reply = org
        .collections(
            reqwest::Method::POST,
            json!({"records": [task("mine", &opp)]}),
        )
        .await;
    let id = reply.body[0]["id"].as_str().expect("created").to_owned();
    let user = org.emu.integration_user_id();
    let since =
        (before - chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mine = org
        .soql(&format!(
            "SELECT Id, CreatedById, CreatedDate FROM Task WHERE CreatedById = '{user}' AND CreatedDate >= {since}"
        ))
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(
        field(&mine, "Id"),
        [json!(id)],
        "only the task just written"
    );
    assert_eq!(field(&mine, "CreatedById"), [json!(user)]);
    // The 15-character form of the user id matches too.
    let short = org
        .soql(&format!(
            "SELECT Id FROM Task WHERE CreatedById = '{}' AND CreatedDate >= {since}",
            &user[..15]
        ))
        .await;
    assert_eq!(field(&short, "Id"), [json!(id)]);
    // The seeded tasks were created by their owners, long before.
    let seeded = org
        .soql("SELECT Id, CreatedById, OwnerId FROM Task WHERE Subject = 'Follow up'")
        .await;
    for row in seeded.body["records"].as_array().unwrap() {
        assert_eq!(row["CreatedById"], row["OwnerId"], "{row}");
    }
    // Salesforce sets it: a write naming it is refused.
    let forged = org
        .collections(
            reqwest::Method::POST,
            json!({"records": [{"attributes": {"type": "Task"}, "Subject": "x", "WhatId": opp, "CreatedById": user}]}),
        )
        .await;
    assert_eq!(
        forged.body[0]["errors"][0]["statusCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
}

// --- writes ---------------------------------------------------------------

#[tokio::test]
async fn collections_create_answers_200_with_one_result_per_record_in_order() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let before = org.emu.tasks().len();
    let reply = org
        .collections(
            reqwest::Method::POST,
            json!({"allOrNone": false, "records": [
                task("Onboarding kickoff", &opp),
                {"attributes": {"type": "Task"}, "Subject": "x", "WhatId": opp, "Status": "Bogus"},
                task("Second", "006000000000000AAA"),
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let rows = reply.body.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["success"], true);
    assert!(rows[0]["id"].as_str().unwrap().starts_with("00T"));
    assert_eq!(rows[1]["success"], false);
    assert_eq!(
        rows[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(
        rows[2]["errors"][0]["statusCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    assert_eq!(org.emu.tasks().len(), before + 1);
    let created = org
        .emu
        .record(SObject::Task, rows[0]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(created.fields["WhatId"], opp.as_str());
    assert_eq!(
        created.fields["OwnerId"],
        org.emu.integration_user_id().as_str()
    );
}

#[tokio::test]
async fn all_or_none_rolls_every_good_row_back_when_one_fails() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let before = org.emu.tasks().len();
    let reply = org
        .collections(
            reqwest::Method::POST,
            json!({"allOrNone": true, "records": [task("a", &opp), task("b", "not-an-id")]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body[0]["success"], false);
    assert_eq!(
        reply.body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(reply.body[1]["errors"][0]["statusCode"], "MALFORMED_ID");
    assert_eq!(org.emu.tasks().len(), before);
}

#[tokio::test]
async fn more_records_than_the_collections_maximum_is_a_400() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let records: Vec<Value> = (0..201).map(|i| task(&format!("t{i}"), &opp)).collect();
    let reply = org
        .collections(
            reqwest::Method::POST,
            json!({"allOrNone": false, "records": records}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT");
    let ok: Vec<Value> = (0..200).map(|i| task(&format!("t{i}"), &opp)).collect();
    let reply = org
        .collections(
            reqwest::Method::POST,
            json!({"allOrNone": false, "records": ok}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(all_succeeded(&reply.body));
}

/// Whether every row of an sObject Collections answer succeeded.
fn all_succeeded(rows: &Value) -> bool {
    rows.as_array()
        .is_some_and(|rows| rows.iter().all(|r| r["success"] == true))
}

#[tokio::test]
async fn collections_update_needs_ids_and_sets_fields() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let reply = org
        .collections(
            reqwest::Method::PATCH,
            json!({"records": [
                {"attributes": {"type": "Opportunity"}, "id": opp, "Description": "Checked"},
                {"attributes": {"type": "Opportunity"}, "Description": "no id"},
            ]}),
        )
        .await;
    assert_eq!(reply.body[0]["success"], true, "{}", reply.body);
    assert_eq!(reply.body[1]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    assert_eq!(
        org.emu.record(SObject::Opportunity, &opp).unwrap().fields["Description"],
        "Checked"
    );
}

#[tokio::test]
async fn upsert_by_external_id_creates_then_updates_without_a_duplicate() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let path = format!("/services/data/{V}/composite/sobjects/Task/Journeyd_Key__c");
    let mut record = task("Onboarding kickoff", &opp);
    record["Journeyd_Key__c"] = json!("jd-123");
    let first = org
        .write(
            reqwest::Method::PATCH,
            &path,
            json!({"allOrNone": false, "records": [record.clone()]}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body[0]["created"], true);
    record["Status"] = json!("Completed");
    let second = org
        .write(
            reqwest::Method::PATCH,
            &path,
            json!({"allOrNone": false, "records": [record]}),
        )
        .await;
    assert_eq!(second.body[0]["created"], false);
    assert_eq!(second.body[0]["id"], first.body[0]["id"]);
    let keyed: Vec<_> = org
        .emu
        .tasks()
        .into_iter()
        .filter(|t| t.fields.get("Journeyd_Key__c") == Some(&json!("jd-123")))
        .collect();
    assert_eq!(keyed.len(), 1);
    assert_eq!(keyed[0].fields["IsClosed"], true);
    let not_external = org
        .write(
            reqwest::Method::PATCH,
            &format!("/services/data/{V}/composite/sobjects/Task/Subject"),
            json!({"records": []}),
        )
        .await;
    assert_error(&not_external, StatusCode::BAD_REQUEST, "INVALID_FIELD");
}

#[tokio::test]
async fn a_single_record_patch_is_204_and_stamps_system_modstamp() {
    let org = Org::start(small()).await;
    let id = org.emu.ids(SObject::Opportunity)[0].clone();
    let before =
        org.emu.record(SObject::Opportunity, &id).unwrap().fields["SystemModstamp"].clone();
    let reply = org
        .write(
            reqwest::Method::PATCH,
            &format!("/services/data/{V}/sobjects/Opportunity/{id}"),
            json!({"StageName": "Closed Won"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let after = org.emu.record(SObject::Opportunity, &id).unwrap();
    assert_eq!(after.fields["IsWon"], true);
    assert_ne!(after.fields["SystemModstamp"], before);
    let unknown = org
        .write(
            reqwest::Method::PATCH,
            &format!("/services/data/{V}/sobjects/Opportunity/{id}"),
            json!({"Nope__c": 1}),
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "INVALID_FIELD");
}

#[tokio::test]
async fn an_injected_row_failure_hits_the_first_rows_of_the_next_call_only() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    org.emu.fail_batch_rows(1);
    let body = json!({"records": [task("a", &opp), task("b", &opp)]});
    let reply = org.collections(reqwest::Method::POST, body.clone()).await;
    assert_eq!(
        reply.body[0]["errors"][0]["statusCode"],
        "UNABLE_TO_LOCK_ROW"
    );
    assert_eq!(reply.body[1]["success"], true);
    let again = org.collections(reqwest::Method::POST, body).await;
    assert!(all_succeeded(&again.body));
}

#[tokio::test]
async fn a_held_create_commits_before_it_answers() {
    let org = Org::start(small()).await;
    let before = org.emu.tasks().len();
    org.emu.hold_collections_create(Duration::from_secs(30));
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let request = org
        .http
        .post(org.url(&format!("/services/data/{V}/composite/sobjects")))
        .bearer_auth(&org.token)
        .json(&json!({"records": [task("held", &opp)]}));
    let pending = tokio::spawn(request.send());
    let mut committed = false;
    for _ in 0..500 {
        if org.emu.tasks().len() == before + 1 {
            committed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(committed, "the task is written while the reply is held");
    assert!(!pending.is_finished(), "the reply is still held");
    pending.abort();
}

/// Polls `done` every 10 ms until it holds, for at most `within`.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let tries = within.as_millis() / 10;
    for _ in 0..tries {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test]
async fn a_detached_write_goes_on_after_its_client_gave_up_and_writes_every_row_once() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|knobs| knobs.detached_row_delay = Some(Duration::from_millis(100)));
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let before = org.emu.tasks().len();
    let rows: Vec<Value> = (0..5).map(|i| task(&format!("row {i}"), &opp)).collect();
    let request = org
        .http
        .post(org.url(&format!("/services/data/{V}/composite/sobjects")))
        .bearer_auth(&org.token)
        .json(&json!({"records": rows}));
    let client = tokio::spawn(request.send());
    assert!(
        eventually(Duration::from_secs(5), || org.emu.tasks().len() > before).await,
        "the first row is written"
    );
    client.abort();
    assert!(
        org.emu.tasks().len() < before + 5,
        "the client gave up mid-way"
    );
    assert_eq!(org.emu.writes_in_flight(), 1);
    assert!(
        eventually(Duration::from_secs(5), || org.emu.writes_in_flight() == 0).await,
        "the server finished"
    );
    assert_eq!(org.emu.tasks().len(), before + 5, "every row is written");
    let written: Vec<String> = org
        .emu
        .tasks()
        .iter()
        .filter_map(|t| t.fields.get("Subject")?.as_str().map(str::to_owned))
        .filter(|subject| subject.starts_with("row "))
        .collect();
    assert_eq!(written.len(), 5, "each row once: {written:?}");
}

#[tokio::test]
async fn a_detached_write_answers_once_every_row_is_committed() {
    let org = Org::start(small()).await;
    org.emu
        .update_knobs(|knobs| knobs.detached_row_delay = Some(Duration::from_millis(20)));
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let before = org.emu.tasks().len();
    let reply = org
        .collections(
            reqwest::Method::POST,
            json!({"records": [task("a", &opp), {"attributes": {"type": "Task"}, "Subject": "b", "WhatId": "bad"}, task("c", &opp)]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let rows = reply.body.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["errors"][0]["statusCode"], "MALFORMED_ID");
    assert_eq!(org.emu.tasks().len(), before + 2);
}

#[tokio::test]
async fn a_malformed_write_is_carried_out_then_answered_200_with_a_body_that_is_no_json() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let before = org.emu.tasks().len();
    org.emu.malform_next_write();
    let response = org
        .http
        .post(org.url(&format!("/services/data/{V}/composite/sobjects")))
        .bearer_auth(&org.token)
        .json(&json!({"records": [task("garbled", &opp)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err(), "{body:?}");
    assert_eq!(org.emu.tasks().len(), before + 1, "the write was made");
    let next = org
        .collections(
            reqwest::Method::POST,
            json!({"records": [task("clean", &opp)]}),
        )
        .await;
    assert!(all_succeeded(&next.body), "only the next write is garbled");
}

#[tokio::test]
async fn updating_a_deleted_task_is_entity_is_deleted_and_an_unknown_one_invalid_cross_reference() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let created = org
        .collections(
            reqwest::Method::POST,
            json!({"records": [task("recycled", &opp), task("purged", &opp)]}),
        )
        .await;
    let ids: Vec<String> = created
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect();
    org.emu.delete(SObject::Task, &ids[0]).unwrap();
    org.emu.delete(SObject::Task, &ids[1]).unwrap();
    org.emu
        .empty_from_recycle_bin(SObject::Task, &ids[1])
        .unwrap();
    let complete =
        |id: &str| json!({"attributes": {"type": "Task"}, "id": id, "Status": "Completed"});
    let reply = org
        .collections(
            reqwest::Method::PATCH,
            json!({"records": [complete(&ids[0]), complete(&ids[1]), complete("00TDn0000ZZZZZZAAA")]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let codes: Vec<&Value> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["errors"][0]["statusCode"])
        .collect();
    assert_eq!(
        codes,
        [
            "ENTITY_IS_DELETED",
            "ENTITY_IS_DELETED",
            "INVALID_CROSS_REFERENCE_KEY"
        ]
    );
}

#[tokio::test]
async fn another_user_can_create_a_task_that_names_them_as_its_creator() {
    let org = Org::start(small()).await;
    let opp = org.emu.ids(SObject::Opportunity)[0].clone();
    let someone = org.emu.ids(SObject::User)[2].clone();
    let mut fields = serde_json::Map::new();
    fields.insert("Subject".into(), json!("theirs"));
    fields.insert("WhatId".into(), json!(opp));
    let id = org
        .emu
        .create_as(SObject::Task, &someone, fields)
        .expect("a user of the org");
    let task = org.emu.record(SObject::Task, &id).unwrap();
    assert_eq!(task.fields["CreatedById"], someone.as_str());
    let mut unknown = serde_json::Map::new();
    unknown.insert("Nope__c".into(), json!(1));
    assert!(org.emu.create_as(SObject::Task, &someone, unknown).is_err());
}

// --- limits and faults ----------------------------------------------------

#[tokio::test]
async fn the_daily_allocation_runs_out_as_a_403_with_no_retry_after() {
    let mut config = small();
    config.knobs.daily_limit = Some(3);
    let org = Org::start(config).await;
    let path = format!("/services/data/{V}/limits");
    let first = org.get(&path).await;
    assert_eq!(first.headers["sforce-limit-info"], "api-usage=1/3");
    assert_eq!(first.body["DailyApiRequests"]["Max"], 3);
    assert_eq!(first.body["DailyApiRequests"]["Remaining"], 2);
    org.soql("SELECT Id FROM Account").await;
    org.soql("SELECT Id FROM Account").await;
    let refused = org.soql("SELECT Id FROM Account").await;
    assert_error(&refused, StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(refused.body[0]["message"], "TotalRequests Limit exceeded.");
    assert!(refused.headers.get("retry-after").is_none());
    assert_eq!(refused.headers["sforce-limit-info"], "api-usage=3/3");
    assert_eq!(org.emu.api_usage(), (3, Some(3)));
    org.emu.set_daily_limit(10);
    assert_eq!(
        org.soql("SELECT Id FROM Account").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template() {
    let org = Org::start(small()).await;
    org.soql("SELECT Id FROM Account").await;
    org.soql("SELECT Id FROM Lead").await;
    org.get(&format!("/services/data/{V}/limits")).await;
    org.get("/nowhere").await;
    let counts = org.emu.counts();
    assert_eq!(counts.get("GET /services/data/{version}/query"), 2);
    assert_eq!(counts.get("GET /services/data/{version}/limits"), 1);
    assert_eq!(counts.get("POST /services/oauth2/token"), 1);
    assert_eq!(counts.get("GET <unmatched>"), 1);
}

#[tokio::test]
async fn an_unknown_api_version_is_a_404_array() {
    let org = Org::start(small()).await;
    assert_error(
        &org.get("/services/data/v20.0/limits").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn a_storm_is_503_with_retry_after_and_server_errors_are_salesforce_shaped() {
    let org = Org::start(small()).await;
    org.emu.faults().storm(1, Some(Duration::from_secs(2)));
    let stormed = org.soql("SELECT Id FROM Account").await;
    assert_error(
        &stormed,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
    );
    assert_eq!(stormed.headers["retry-after"], "2");
    org.emu.faults().fail_next(1);
    assert_error(
        &org.soql("SELECT Id FROM Account").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN_EXCEPTION",
    );
    assert_eq!(
        org.soql("SELECT Id FROM Account").await.status,
        StatusCode::OK
    );
    assert_eq!(org.emu.faults().injected().total(), 2);
}

#[tokio::test]
async fn the_seeded_org_holds_the_configured_users_and_stage_history() {
    let org = Org::start(small()).await;
    assert!(
        org.emu
            .ids(SObject::User)
            .contains(&"005Dn000003KxQ1IAK".to_owned())
    );
    let raj = org
        .soql("SELECT Id, Department FROM User WHERE Email = 'raj.patel@example.com'")
        .await;
    assert_eq!(raj.body["totalSize"], 1);
    let history = org.soql("SELECT OpportunityId, StageName, CreatedDate FROM OpportunityHistory ORDER BY CreatedDate").await;
    assert!(history.body["totalSize"].as_u64().unwrap() >= 12);
    let unmapped = org
        .soql("SELECT Id FROM Opportunity WHERE StageName = 'On Hold'")
        .await;
    assert_eq!(unmapped.body["totalSize"], 1);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_org() {
    let a = SalesforceEmulator::start(small()).unwrap();
    let b = SalesforceEmulator::start(small()).unwrap();
    for object in [SObject::Opportunity, SObject::Task, SObject::Contact] {
        assert_eq!(a.records(object), b.records(object));
    }
    assert!(!a.records(SObject::Opportunity).is_empty());
}

#[tokio::test]
async fn query_all_pages_under_query_all_and_a_stale_locator_is_a_400() {
    let mut config = small();
    config.sizes.contacts = 250;
    let org = Org::start(config).await;
    let first = org
        .query("queryAll", "SELECT Id FROM Contact", Some(200))
        .await;
    let next = first.body["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&format!("/services/data/{V}/queryAll/")),
        "{next}"
    );
    assert_eq!(field(&org.get(&next).await, "Id").len(), 50);
    let stale = org
        .get(&format!("/services/data/{V}/query/01gDn0000999999AAA-200"))
        .await;
    assert_error(&stale, StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn an_expired_query_locator_answers_invalid_query_locator() {
    let mut config = small();
    config.sizes.contacts = 250;
    let org = Org::start(config).await;
    let first = org
        .query("query", "SELECT Id FROM Contact", Some(200))
        .await;
    let next = first.body["nextRecordsUrl"].as_str().unwrap().to_owned();

    assert_eq!(org.emu.expire_query_locators(), 1);

    assert_error(
        &org.get(&next).await,
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY_LOCATOR",
    );
}

#[tokio::test]
async fn most_seeded_opportunities_have_one_to_three_contact_roles_one_of_them_primary() {
    let org = Org::start(small()).await;
    let opportunities = org.emu.records(SObject::Opportunity);
    let roles = org.emu.records(SObject::OpportunityContactRole);
    let contacts = org.emu.ids(SObject::Contact);
    let mut with_roles = 0;
    for opportunity in &opportunities {
        let own: Vec<_> = roles
            .iter()
            .filter(|role| role.fields["OpportunityId"] == opportunity.id.as_str())
            .collect();
        if own.is_empty() {
            continue;
        }
        with_roles += 1;
        assert!(own.len() <= 3, "{}: {own:?}", opportunity.id);
        let primaries = own.iter().filter(|r| r.fields["IsPrimary"] == true).count();
        assert_eq!(primaries, 1, "{}: {own:?}", opportunity.id);
        for role in &own {
            let contact = role.fields["ContactId"].as_str().expect("a contact");
            assert!(contacts.iter().any(|c| c == contact), "{contact}");
        }
    }
    assert!(
        with_roles * 4 >= opportunities.len() * 3,
        "{with_roles} of {} opportunities have contacts",
        opportunities.len()
    );
    assert!(roles.iter().any(|r| r.fields.contains_key("Role")));
}

#[tokio::test]
async fn contact_roles_nest_under_their_opportunity_as_a_sub_query_result() {
    let org = Org::start(small()).await;
    let reply = org
        .soql("SELECT Id, (SELECT ContactId, Role, IsPrimary FROM OpportunityContactRoles) FROM Opportunity ORDER BY Id")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let roles = org.emu.records(SObject::OpportunityContactRole);
    for opportunity in records(&reply.body) {
        let id = opportunity["Id"].as_str().unwrap();
        let expected = roles
            .iter()
            .filter(|r| r.fields["OpportunityId"] == id)
            .count();
        let nested = &opportunity["OpportunityContactRoles"];
        if expected == 0 {
            assert_eq!(nested, &Value::Null, "{id}");
            continue;
        }
        assert_eq!(nested["totalSize"], expected, "{id}");
        assert_eq!(nested["done"], true, "{id}");
        let rows = records(nested);
        assert_eq!(rows.len(), expected);
        assert_eq!(rows[0]["attributes"]["type"], "OpportunityContactRole");
        assert!(rows[0]["ContactId"].as_str().unwrap().starts_with("003"));
        assert!(rows[0].get("IsPrimary").is_some());
    }
}

// --- parent-to-child sub-queries -------------------------------------------

const HISTORY_AND_TASKS: &str = "SELECT Id, StageName, (SELECT StageName, CreatedDate FROM OpportunityHistories ORDER BY CreatedDate), (SELECT Id, Subject, WhatId FROM Tasks) FROM Opportunity ORDER BY Id";

fn records(body: &Value) -> &Vec<Value> {
    body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("records in {body}"))
}

/// The ids of an opportunity's live stage history rows, read with a plain
/// query on `OpportunityHistory`.
async fn history_of(org: &Org, opportunity: &str) -> Vec<Value> {
    let reply = org
        .soql(&format!(
            "SELECT StageName, CreatedDate FROM OpportunityHistory WHERE OpportunityId = '{opportunity}' ORDER BY CreatedDate"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    records(&reply.body).clone()
}

/// An opportunity of `stage`, by id order.
async fn opportunity_in(org: &Org, stage: &str) -> String {
    let reply = org
        .soql(&format!(
            "SELECT Id FROM Opportunity WHERE StageName = '{stage}' ORDER BY Id LIMIT 1"
        ))
        .await;
    field(&reply, "Id")[0].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sub_query_rows_nest_under_their_relationship_on_the_parent_they_belong_to() {
    let org = Org::start(small()).await;
    let reply = org.soql(HISTORY_AND_TASKS).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["totalSize"], 13,
        "parents only: twelve and the odd one"
    );
    let mut tasks_seen = 0;
    for parent in records(&reply.body) {
        let id = parent["Id"].as_str().unwrap();
        let history = &parent["OpportunityHistories"];
        let expected = history_of(&org, id).await;
        assert_eq!(history["totalSize"], expected.len(), "{parent}");
        assert_eq!(history["done"], true);
        assert_eq!(records(history).len(), expected.len());
        for (row, want) in records(history).iter().zip(&expected) {
            assert_eq!(row["attributes"]["type"], "OpportunityHistory");
            assert_eq!(row["StageName"], want["StageName"]);
            assert_eq!(row["CreatedDate"], want["CreatedDate"]);
        }
        let last = records(history).last().unwrap();
        assert_eq!(last["StageName"], parent["StageName"], "oldest first");
        if let Some(tasks) = parent["Tasks"].as_object() {
            for task in tasks["records"].as_array().unwrap() {
                assert_eq!(task["WhatId"], id);
                assert_eq!(task["attributes"]["type"], "Task");
                tasks_seen += 1;
            }
        }
    }
    let on_opportunities = org
        .emu
        .tasks()
        .iter()
        .filter(|t| t.fields["WhatId"].as_str().unwrap().starts_with("006"))
        .count();
    assert_eq!(tasks_seen, on_opportunities);
}

#[tokio::test]
async fn a_sub_query_applies_its_own_where_order_and_limit() {
    let org = Org::start(small()).await;
    let won = opportunity_in(&org, "Closed Won").await;
    let reply = org
        .soql(&format!(
            "SELECT Id, (SELECT StageName FROM OpportunityHistories WHERE StageName != 'Prospecting' ORDER BY CreatedDate DESC LIMIT 2) FROM Opportunity WHERE Id = '{won}'"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let history = &records(&reply.body)[0]["OpportunityHistories"];
    assert_eq!(history["totalSize"], 2);
    let stages: Vec<&Value> = records(history).iter().map(|r| &r["StageName"]).collect();
    assert_eq!(stages, [&json!("Closed Won"), &json!("Negotiation/Review")]);
}

#[tokio::test]
async fn a_parent_without_children_has_null_under_the_relationship_unless_the_knob_says_empty() {
    let org = Org::start(small()).await;
    let reply = org.soql(HISTORY_AND_TASKS).await;
    let bare = records(&reply.body)
        .iter()
        .find(|parent| parent["Tasks"].is_null())
        .expect("an opportunity without tasks");
    assert!(bare.as_object().unwrap().contains_key("Tasks"));
    let id = bare["Id"].as_str().unwrap().to_owned();

    org.emu
        .update_knobs(|knobs| knobs.empty_subquery_null = false);
    let reply = org
        .soql(&format!(
            "SELECT Id, (SELECT Id FROM Tasks) FROM Opportunity WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(
        records(&reply.body)[0]["Tasks"],
        json!({"totalSize": 0, "done": true, "records": []})
    );
}

/// The batch share of one parent row: itself and the child rows it carries.
fn weight(parent: &Value) -> usize {
    1 + ["OpportunityHistories", "Tasks"]
        .iter()
        .filter_map(|relationship| parent[relationship]["records"].as_array())
        .map(Vec::len)
        .sum::<usize>()
}

#[tokio::test]
async fn child_rows_count_toward_the_batch_and_a_page_holds_at_least_one_parent() {
    let org = Org::start(small()).await;
    org.emu.update_knobs(|knobs| knobs.min_batch_size = 1);
    let batch = 10;
    let mut reply = org.query("query", HISTORY_AND_TASKS, Some(batch)).await;
    let mut pages: Vec<Vec<Value>> = Vec::new();
    for _ in 0..20 {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        pages.push(records(&reply.body).clone());
        if reply.body["done"] == true {
            break;
        }
        let next = reply.body["nextRecordsUrl"].as_str().unwrap().to_owned();
        reply = org.get(&next).await;
    }
    assert_eq!(reply.body["done"], true, "paging ends");
    let parents: usize = pages.iter().map(Vec::len).sum();
    assert_eq!(parents, 13);
    for (k, page) in pages.iter().enumerate() {
        assert!(!page.is_empty());
        let taken: usize = page.iter().map(weight).sum();
        assert!(
            page.len() == 1 || taken <= batch,
            "page {k} holds {taken} rows"
        );
        if let Some(next) = pages.get(k + 1) {
            assert!(
                taken + weight(&next[0]) > batch,
                "page {k} ends with room for the next parent"
            );
        }
    }
    assert!(
        pages
            .iter()
            .any(|page| page.len() == 1 && weight(&page[0]) > batch),
        "a parent with more child rows than the batch still gets a page"
    );
}

#[tokio::test]
async fn a_child_result_past_the_child_batch_pages_through_its_own_next_records_url() {
    let org = Org::start(small()).await;
    org.emu.update_knobs(|knobs| knobs.child_batch_size = 4);
    let won = opportunity_in(&org, "Closed Won").await;
    let expected = history_of(&org, &won).await;
    assert_eq!(expected.len(), 9, "one row per stage reached");
    let reply = org
        .soql(&format!(
            "SELECT Id, (SELECT StageName, CreatedDate FROM OpportunityHistories ORDER BY CreatedDate) FROM Opportunity WHERE Id = '{won}'"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["done"], true, "one parent, one page");
    let history = &records(&reply.body)[0]["OpportunityHistories"];
    assert_eq!(history["totalSize"], 9);
    assert_eq!(history["done"], false);
    let mut rows = records(history).clone();
    assert_eq!(rows.len(), 4);
    let mut next = history["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&format!("/services/data/{V}/query/01g")) && next.ends_with("-4"),
        "{next}"
    );
    for _ in 0..5 {
        let page = org.get(&next).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["totalSize"], 9);
        rows.extend(records(&page.body).iter().cloned());
        match page.body["nextRecordsUrl"].as_str() {
            Some(more) => next = more.to_owned(),
            None => {
                assert_eq!(page.body["done"], true);
                break;
            }
        }
    }
    let stages =
        |rows: &[Value]| -> Vec<Value> { rows.iter().map(|r| r["StageName"].clone()).collect() };
    assert_eq!(stages(&rows), stages(&expected));
}

#[tokio::test]
async fn asking_for_the_parents_next_page_retires_the_child_cursors_of_earlier_pages() {
    let org = Org::start(small()).await;
    org.emu.update_knobs(|knobs| {
        knobs.min_batch_size = 1;
        knobs.child_batch_size = 2;
    });
    let first = org
        .query(
            "query",
            "SELECT Id, (SELECT StageName FROM OpportunityHistories) FROM Opportunity WHERE StageName IN ('Closed Won', 'Closed Lost', 'On Hold') ORDER BY Id",
            Some(3),
        )
        .await;
    let cut = records(&first.body)
        .iter()
        .find_map(|parent| parent["OpportunityHistories"]["nextRecordsUrl"].as_str())
        .expect("a cut child result on the first page")
        .to_owned();
    assert_eq!(org.get(&cut).await.status, StatusCode::OK);
    let parents = first.body["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert_eq!(org.get(&parents).await.status, StatusCode::OK);
    assert_error(
        &org.get(&cut).await,
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY_LOCATOR",
    );
}

#[tokio::test]
async fn an_unknown_relationship_is_a_400_invalid_type_and_child_fields_are_checked_on_the_child() {
    let org = Org::start(small()).await;
    let unknown = org
        .soql("SELECT Id, (SELECT Id FROM Widgets) FROM Opportunity")
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "INVALID_TYPE");
    assert!(
        unknown.body[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Didn't understand relationship 'Widgets' in FROM part of query call"),
        "{}",
        unknown.body
    );
    let not_on_accounts = org
        .soql("SELECT Id, (SELECT Id FROM OpportunityHistories) FROM Account")
        .await;
    assert_error(&not_on_accounts, StatusCode::BAD_REQUEST, "INVALID_TYPE");
    let parent_field = org
        .soql("SELECT Id, (SELECT Amount FROM Tasks) FROM Opportunity")
        .await;
    assert_error(&parent_field, StatusCode::BAD_REQUEST, "INVALID_FIELD");
    let unclosed = org
        .soql("SELECT Id, (SELECT Id FROM Tasks FROM Opportunity")
        .await;
    assert_error(&unclosed, StatusCode::BAD_REQUEST, "MALFORMED_QUERY");
}

#[tokio::test]
async fn query_all_includes_deleted_children_and_query_does_not() {
    let org = Org::start(small()).await;
    let task = org
        .emu
        .tasks()
        .into_iter()
        .find(|t| t.fields["WhatId"].as_str().unwrap().starts_with("006"))
        .expect("a task on an opportunity");
    let opportunity = task.fields["WhatId"].as_str().unwrap().to_owned();
    org.emu.delete(SObject::Task, &task.id).unwrap();
    let soql = format!(
        "SELECT Id, (SELECT Id, IsDeleted FROM Tasks) FROM Opportunity WHERE Id = '{opportunity}'"
    );
    let ids = |reply: &Reply| -> Vec<Value> {
        records(&reply.body)[0]["Tasks"]["records"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r["Id"].clone()).collect())
            .unwrap_or_default()
    };
    let live = org.query("query", &soql, None).await;
    assert!(!ids(&live).contains(&json!(task.id)), "{}", live.body);
    let all = org.query("queryAll", &soql, None).await;
    assert!(ids(&all).contains(&json!(task.id)), "{}", all.body);
    let deleted = records(&all.body)[0]["Tasks"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Id"] == json!(task.id))
        .unwrap()
        .clone();
    assert_eq!(deleted["IsDeleted"], true);
}

#[tokio::test]
async fn a_task_moved_to_another_opportunity_moves_with_it_in_sub_queries() {
    let org = Org::start(small()).await;
    let task = org
        .emu
        .tasks()
        .into_iter()
        .find(|t| t.fields["WhatId"].as_str().unwrap().starts_with("006"))
        .expect("a task on an opportunity");
    let from = task.fields["WhatId"].as_str().unwrap().to_owned();
    let to = org
        .emu
        .ids(SObject::Opportunity)
        .into_iter()
        .find(|id| *id != from)
        .unwrap();
    org.emu
        .set_field(SObject::Task, &task.id, "WhatId", json!(to))
        .unwrap();
    let tasks_of =
        |id: &str| format!("SELECT Id, (SELECT Id FROM Tasks) FROM Opportunity WHERE Id = '{id}'");
    let holds = |reply: &Reply| {
        records(&reply.body)[0]["Tasks"]["records"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["Id"] == json!(task.id)))
    };
    assert!(!holds(&org.soql(&tasks_of(&from)).await));
    assert!(holds(&org.soql(&tasks_of(&to)).await));
}

#[tokio::test]
async fn contacts_and_leads_reach_their_tasks_through_who_id() {
    let org = Org::start(small()).await;
    let contact = org.emu.ids(SObject::Contact)[0].clone();
    let created = org
        .write(
            reqwest::Method::POST,
            &format!("/services/data/{V}/sobjects/Task"),
            json!({"Subject": "Call", "WhoId": contact}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let reply = org
        .soql(&format!(
            "SELECT Id, (SELECT Id, Subject FROM Contact.Tasks) FROM Contact WHERE Id = '{contact}'"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let tasks = &records(&reply.body)[0]["Tasks"];
    assert_eq!(tasks["totalSize"], 1);
    assert_eq!(tasks["records"][0]["Id"], created.body["id"]);
}
