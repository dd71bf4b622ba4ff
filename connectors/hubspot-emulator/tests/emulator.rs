//! Specifications of the HubSpot emulator, spoken to with a bare HTTP
//! client: the paths, paging, auth, limits, error bodies and batch
//! semantics of the API facts, and the control knobs tests rely on.

use journeyd_hubspot_emulator::{
    EmulatorConfig, HubspotEmulator, MissingInUpdate, ObjectType, RateLimitKnobs, SeedSizes,
    TieOrder,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

struct Portal {
    emu: HubspotEmulator,
    http: reqwest::Client,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// A small portal (40 deals) with the request limits lifted, unless a
/// test sets them.
fn small() -> EmulatorConfig {
    let mut config = EmulatorConfig::with_deals(40);
    config.knobs.limits = RateLimitKnobs::unlimited();
    config
}

impl Portal {
    fn start(config: EmulatorConfig) -> Self {
        let emu = HubspotEmulator::start(config).expect("the emulator starts");
        let token = emu.private_app_token();
        Self {
            emu,
            http: reqwest::Client::new(),
            token,
        }
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.emu
            .base_url()
            .join(path.trim_start_matches('/'))
            .unwrap()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
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

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await
    }

    async fn get_url(&self, url: &str) -> Reply {
        self.send(self.http.get(url).bearer_auth(&self.token)).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    async fn search(&self, object: &str, body: Value) -> Reply {
        self.post(&format!("/crm/v3/objects/{object}/search"), body)
            .await
    }

    /// Every deal id and property, read through the control API.
    fn deals(&self) -> Vec<(u64, std::collections::BTreeMap<String, String>)> {
        self.emu
            .ids(ObjectType::Deals)
            .iter()
            .map(|id| {
                let record = self.emu.record(ObjectType::Deals, id).unwrap();
                (id.parse().unwrap(), record.properties)
            })
            .collect()
    }
}

fn ids(results: &Value) -> Vec<u64> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn assert_error_body(body: &Value, category: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["category"], category, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["correlationId"].as_str().map(str::len),
        Some(36),
        "{body}"
    );
}

#[tokio::test]
async fn a_list_pages_to_the_end_by_after_and_absolute_links() {
    let portal = Portal::start(small());
    let mut reply = portal
        .get("/crm/v3/objects/deals?limit=7&properties=dealname,amount")
        .await;
    let mut seen = Vec::new();
    let mut pages = 1;
    loop {
        assert_eq!(reply.status, StatusCode::OK);
        seen.extend(ids(&reply.body["results"]));
        let first = &reply.body["results"][0];
        assert!(first["properties"]["dealname"].is_string());
        assert!(
            first["properties"]["hs_object_id"].is_string(),
            "always returned"
        );
        assert!(
            first["properties"].get("pipeline").is_none(),
            "only what was asked"
        );
        let Some(link) = reply.body["paging"]["next"]["link"].as_str() else {
            break;
        };
        assert!(link.starts_with(portal.emu.base_url().as_str()), "{link}");
        assert!(
            link.contains("after=") && link.contains("limit=7"),
            "{link}"
        );
        reply = portal.get_url(link).await;
        pages += 1;
        assert!(pages < 20, "paging ends");
    }
    let expected: Vec<u64> = portal
        .emu
        .ids(ObjectType::Deals)
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(seen, expected, "every deal once, ids ascending");
    assert_eq!(pages, expected.len().div_ceil(7));
    assert_eq!(
        portal.emu.counts().get("GET /crm/v3/objects/{object_type}"),
        pages as u64
    );
}

#[tokio::test]
async fn a_list_defaults_to_ten_and_refuses_more_than_a_hundred() {
    let portal = Portal::start(small());
    let reply = portal.get("/crm/v3/objects/0-3").await;
    assert_eq!(
        reply.body["results"].as_array().unwrap().len(),
        10,
        "0-3 is deals"
    );
    let reply = portal.get("/crm/v3/objects/deals?limit=101").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_error_body(&reply.body, "VALIDATION_ERROR");
    let reply = portal
        .get("/crm/v3/objects/deals?limit=51&propertiesWithHistory=dealstage")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "history lowers the cap to 50"
    );
}

#[tokio::test]
async fn archived_true_lists_only_archived_records() {
    let portal = Portal::start(small());
    let all = portal.emu.ids(ObjectType::Deals);
    portal.emu.archive(ObjectType::Deals, &all[3]).unwrap();
    portal.emu.archive(ObjectType::Deals, &all[5]).unwrap();
    let archived = portal
        .get("/crm/v3/objects/deals?archived=true&limit=100")
        .await;
    let live = portal.get("/crm/v3/objects/deals?limit=100").await;
    let archived_ids = ids(&archived.body["results"]);
    assert_eq!(
        archived_ids,
        [all[3].parse::<u64>().unwrap(), all[5].parse().unwrap()]
    );
    assert!(archived.body["results"][0]["archived"].as_bool().unwrap());
    assert!(archived.body["results"][0]["archivedAt"].is_string());
    assert_eq!(ids(&live.body["results"]).len(), all.len() - 2);
}

#[tokio::test]
async fn associations_name_the_linked_records_and_their_type() {
    let portal = Portal::start(small());
    let reply = portal
        .get("/crm/v3/objects/deals?limit=100&associations=contacts,companies")
        .await;
    let with_company = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|deal| deal["associations"]["companies"].is_object())
        .expect("some deal has a company");
    let link = &with_company["associations"]["companies"]["results"][0];
    assert_eq!(link["type"], "deal_to_company");
    let company = link["id"].as_str().unwrap();
    assert!(portal.emu.record(ObjectType::Companies, company).is_some());
}

#[tokio::test]
async fn owners_page_with_links_and_archived_lists_only_deactivated_owners() {
    let portal = Portal::start(small());
    let first = portal.get("/crm/v3/owners?limit=5").await;
    assert_eq!(first.body["results"][0]["id"], "101");
    assert_eq!(first.body["results"][2]["email"], "ann.lee@example.com");
    assert_eq!(first.body["results"][2]["teams"][0]["name"], "Onboarding");
    let link = first.body["paging"]["next"]["link"].as_str().unwrap();
    let second = portal.get_url(link).await;
    assert_eq!(second.body["results"][0]["id"], "106");

    let all = portal.get("/crm/v3/owners").await;
    assert_eq!(all.body["results"].as_array().unwrap().len(), 12);
    assert!(all.body.get("paging").is_none());
    let archived = portal.get("/crm/v3/owners?archived=true").await;
    let archived = archived.body["results"].as_array().unwrap();
    assert_eq!(archived.len(), 2);
    assert!(
        archived
            .iter()
            .all(|o| o["archived"] == true && o["userId"].is_null())
    );
}

#[tokio::test]
async fn pipelines_and_lifecycle_stages_describe_themselves() {
    let portal = Portal::start(small());
    let pipelines = portal.get("/crm/v3/pipelines/deals").await;
    let default = &pipelines.body["results"][0];
    assert_eq!(default["id"], "default");
    let stages: Vec<&str> = default["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "appointmentscheduled",
            "qualifiedtobuy",
            "presentationscheduled",
            "decisionmakerboughtin",
            "contractsent",
            "closedwon",
            "closedlost"
        ]
    );
    assert_eq!(default["stages"][5]["metadata"]["isClosed"], "true");
    assert_eq!(default["stages"][0]["metadata"]["probability"], "0.2");
    assert!(pipelines.body.get("paging").is_none());

    let lifecycle = portal
        .get("/crm/v3/properties/contacts/lifecyclestage")
        .await;
    assert_eq!(lifecycle.body["type"], "enumeration");
    let options: Vec<&str> = lifecycle.body["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        options[..3],
        ["subscriber", "lead", "marketingqualifiedlead"]
    );
    assert_eq!(options.len(), 8);
}

#[tokio::test]
async fn search_applies_and_within_groups_or_between_them_and_sorts() {
    let portal = Portal::start(small());
    let reply = portal
        .search(
            "deals",
            json!({
                "filterGroups": [
                    {"filters": [
                        {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"},
                        {"propertyName": "amount", "operator": "GT", "value": "20000"}
                    ]},
                    {"filters": [{"propertyName": "hubspot_owner_id", "operator": "NOT_HAS_PROPERTY"}]}
                ],
                "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}],
                "properties": ["amount", "dealstage", "hubspot_owner_id"],
                "limit": 200
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let expected: BTreeSet<u64> = portal
        .deals()
        .into_iter()
        .filter(|(_, p)| {
            let won_big = p.get("dealstage").map(String::as_str) == Some("closedwon")
                && p.get("amount")
                    .is_some_and(|a| a.parse::<f64>().unwrap() > 20000.0);
            won_big || !p.contains_key("hubspot_owner_id")
        })
        .map(|(id, _)| id)
        .collect();
    let got = ids(&reply.body["results"]);
    assert!(!expected.is_empty());
    assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), expected);
    assert_eq!(reply.body["total"], expected.len());
    let amounts: Vec<Option<f64>> = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["properties"]["amount"]
                .as_str()
                .map(|a| a.parse().unwrap())
        })
        .collect();
    let present: Vec<f64> = amounts.iter().flatten().copied().collect();
    assert!(
        present.windows(2).all(|w| w[0] >= w[1]),
        "amount descending: {amounts:?}"
    );
    assert!(
        reply.headers.get("x-hubspot-ratelimit-max").is_none(),
        "search carries no burst headers"
    );
    assert!(
        reply
            .headers
            .get("x-hubspot-ratelimit-daily-remaining")
            .is_none(),
        "daily limit lifted"
    );
}

#[tokio::test]
async fn search_compares_record_ids_as_text() {
    let portal = Portal::start(small());
    let all: Vec<u64> = portal
        .emu
        .ids(ObjectType::Deals)
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    assert!(all.iter().any(|id| *id >= 10_000) && all.iter().any(|id| *id < 9_990));
    let reply = portal
        .search(
            "deals",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "9990"}]}], "limit": 100}),
        )
        .await;
    let got = ids(&reply.body["results"]);
    let expected: Vec<u64> = all
        .iter()
        .copied()
        .filter(|id| (9_991..10_000).contains(id))
        .collect();
    assert_eq!(got, expected, "\"10012\" sorts before \"9990\"");
}

#[tokio::test]
async fn search_dates_compare_as_instants_given_epoch_ms_or_iso() {
    let portal = Portal::start(small());
    let deals = portal.deals();
    let mut stamps: Vec<&str> = deals
        .iter()
        .map(|(_, p)| p["hs_lastmodifieddate"].as_str())
        .collect();
    stamps.sort();
    let middle = stamps[stamps.len() / 2];
    let ms = chrono::DateTime::parse_from_rfc3339(middle)
        .unwrap()
        .timestamp_millis();
    let expected = stamps.iter().filter(|s| **s >= middle).count();
    for value in [json!(ms.to_string()), json!(middle), json!(ms)] {
        let reply = portal
            .search(
                "deals",
                json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": value}]}], "limit": 1}),
            )
            .await;
        assert_eq!(reply.body["total"], expected, "{value}");
    }
}

#[tokio::test]
async fn search_refuses_a_limit_over_200_and_too_many_filters() {
    let portal = Portal::start(small());
    let reply = portal.search("deals", json!({"limit": 201})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_error_body(&reply.body, "VALIDATION_ERROR");
    let group = json!({"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}]});
    let reply = portal
        .search("deals", json!({"filterGroups": vec![group; 6]}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "five groups at most");
    let filters = vec![json!({"propertyName": "amount", "operator": "HAS_PROPERTY"}); 11];
    let reply = portal
        .search("deals", json!({"filterGroups": [{"filters": filters}]}))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "ten filters per group at most"
    );
}

#[tokio::test]
async fn search_paging_past_the_result_cap_is_a_400() {
    let mut config = small();
    config.knobs.search.cap = 20;
    let portal = Portal::start(config);
    let mut after: Option<String> = None;
    let mut seen = 0;
    for _ in 0..2 {
        let mut body = json!({"limit": 10, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]});
        if let Some(after) = &after {
            body["after"] = json!(after);
        }
        let reply = portal.search("deals", body).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["total"], 40, "total counts past the cap");
        seen += reply.body["results"].as_array().unwrap().len();
        after = reply.body["paging"]["next"]["after"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(
        (seen, after.as_deref()),
        (20, Some("20")),
        "the cursor points past the cap"
    );
    let reply = portal
        .search("deals", json!({"limit": 10, "after": "20"}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_error_body(&reply.body, "VALIDATION_ERROR");
}

#[tokio::test]
async fn ties_on_the_sort_follow_the_tie_order_knob() {
    let portal = Portal::start(small());
    let body = json!({"sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}], "properties": ["hs_lastmodifieddate"], "limit": 200});
    let tied = |reply: &Reply| -> Vec<Vec<u64>> {
        let results = reply.body["results"].as_array().unwrap();
        let mut groups: Vec<Vec<u64>> = Vec::new();
        let mut last: Option<&str> = None;
        for r in results {
            let stamp = r["properties"]["hs_lastmodifieddate"].as_str().unwrap();
            let id = r["id"].as_str().unwrap().parse().unwrap();
            if last == Some(stamp) {
                groups.last_mut().unwrap().push(id);
            } else {
                groups.push(vec![id]);
            }
            last = Some(stamp);
        }
        groups.into_iter().filter(|g| g.len() > 1).collect()
    };
    let ascending = tied(&portal.search("deals", body.clone()).await);
    assert!(!ascending.is_empty(), "the seed plants ties");
    assert!(ascending.iter().all(|g| g.windows(2).all(|w| w[0] < w[1])));
    portal
        .emu
        .update_knobs(|k| k.search.ties = TieOrder::IdDescending);
    let descending = tied(&portal.search("deals", body).await);
    assert!(descending.iter().all(|g| g.windows(2).all(|w| w[0] > w[1])));
    assert_eq!(descending.len(), ascending.len());
}

#[tokio::test]
async fn ragged_pages_still_reach_every_result_until_paging_is_absent() {
    let mut config = small();
    config.knobs.search.ragged_pages = true;
    let portal = Portal::start(config);
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    let mut short_or_empty = 0;
    for _ in 0..20 {
        let mut body = json!({"limit": 8});
        if let Some(after) = &after {
            body["after"] = json!(after);
        }
        let reply = portal.search("contacts", body).await;
        let page = ids(&reply.body["results"]);
        short_or_empty += usize::from(page.len() < 8);
        seen.extend(page);
        after = reply.body["paging"]["next"]["after"]
            .as_str()
            .map(str::to_owned);
        if after.is_none() {
            break;
        }
    }
    assert!(after.is_none(), "paging ends");
    assert_eq!(seen.len(), portal.emu.records(ObjectType::Contacts));
    assert!(short_or_empty >= 2);
}

#[tokio::test]
async fn a_batch_of_more_than_100_inputs_is_refused_whole() {
    let portal = Portal::start(small());
    let before = portal.emu.tasks().len();
    let input =
        json!({"properties": {"hs_timestamp": "2026-03-05T00:00:00Z", "hs_task_subject": "x"}});
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": vec![input; 101]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_error_body(&reply.body, "VALIDATION_ERROR");
    assert_eq!(portal.emu.tasks().len(), before);
}

#[tokio::test]
async fn a_batch_create_commits_good_inputs_and_reports_bad_ones_in_a_207() {
    let portal = Portal::start(small());
    let deal = portal.emu.ids(ObjectType::Deals)[0].clone();
    let to_deal = |id: &str, type_id: u32| json!([{"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}]);
    let good = json!({"properties": {"hs_timestamp": "1772600000000", "hs_task_subject": "Call back", "hs_task_priority": "HIGH"}, "associations": to_deal(&deal, 216)});
    let no_due_date = json!({"properties": {"hs_task_subject": "No due date"}});
    let bad_priority =
        json!({"properties": {"hs_timestamp": "2026-03-05", "hs_task_priority": "URGENT"}});
    let missing_deal =
        json!({"properties": {"hs_timestamp": "2026-03-05"}, "associations": to_deal("1", 216)});
    let unknown_type =
        json!({"properties": {"hs_timestamp": "2026-03-05"}, "associations": to_deal(&deal, 999)});
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [good, no_due_date, bad_priority, missing_deal, unknown_type]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    assert_eq!(reply.body["status"], "COMPLETE");
    assert_eq!(reply.body["numErrors"], 4);
    assert!(
        reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "error" && e["category"].is_string())
    );
    let created = &reply.body["results"][0];
    assert_eq!(created["properties"]["hs_task_status"], "NOT_STARTED");
    assert_eq!(
        created["properties"]["hs_timestamp"],
        "2026-03-04T04:53:20.000Z"
    );
    let task = portal
        .emu
        .record(ObjectType::Tasks, created["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(task.associations[&ObjectType::Deals], [deal]);

    let clean = json!({"properties": {"hs_timestamp": "2026-03-05"}});
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [clean]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert!(reply.body.get("errors").is_none());
}

#[tokio::test]
async fn fail_batch_inputs_fails_the_first_inputs_of_the_next_batch_only() {
    let portal = Portal::start(small());
    portal.emu.fail_batch_inputs(2);
    let input = json!({"properties": {"hs_timestamp": "2026-03-05"}});
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": vec![input.clone(); 3]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    assert_eq!(reply.body["numErrors"], 2);
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [input]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_batch_update_of_an_unknown_id_is_an_error_row() {
    let portal = Portal::start(small());
    let deal = portal.emu.ids(ObjectType::Deals)[1].clone();
    let before = portal
        .emu
        .record(ObjectType::Deals, &deal)
        .unwrap()
        .properties["hs_lastmodifieddate"]
        .clone();
    let reply = portal
        .post(
            "/crm/v3/objects/deals/batch/update",
            json!({"inputs": [
                {"id": deal, "properties": {"description": "checked"}},
                {"id": "12", "properties": {"description": "nobody"}}
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    assert_eq!(reply.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(reply.body["errors"][0]["context"]["ids"], json!(["12"]));
    let after = portal.emu.record(ObjectType::Deals, &deal).unwrap();
    assert_eq!(after.properties["description"], "checked");
    assert!(
        after.properties["hs_lastmodifieddate"] > before,
        "a write moves the modification time"
    );
}

#[tokio::test]
async fn a_batch_read_of_missing_ids_is_a_207_naming_them() {
    let portal = Portal::start(small());
    let deal = portal.emu.ids(ObjectType::Deals)[0].clone();
    let reply = portal
        .post(
            "/crm/v3/objects/deals/batch/read",
            json!({"inputs": [{"id": deal}, {"id": "7"}], "properties": ["dealname"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    assert_eq!(ids(&reply.body["results"]), [deal.parse::<u64>().unwrap()]);
    assert_eq!(reply.body["errors"][0]["context"]["ids"], json!(["7"]));
}

#[tokio::test]
async fn a_v4_association_batch_read_lists_targets_and_names_records_without_any() {
    let portal = Portal::start(small());
    let with_contacts = portal
        .emu
        .ids(ObjectType::Deals)
        .into_iter()
        .find(|id| {
            portal
                .emu
                .record(ObjectType::Deals, id)
                .is_some_and(|r| r.associations.contains_key(&ObjectType::Contacts))
        })
        .expect("a deal with contacts");
    let contacts = portal
        .emu
        .record(ObjectType::Deals, &with_contacts)
        .unwrap()
        .associations[&ObjectType::Contacts]
        .clone();
    let reply = portal
        .post(
            "/crm/v4/associations/deals/contacts/batch/read",
            json!({"inputs": [{"id": with_contacts}, {"id": "7"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    let result = &reply.body["results"][0];
    assert_eq!(result["from"]["id"], json!(with_contacts));
    let targets: Vec<_> = result["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["toObjectId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(targets, contacts);
    assert_eq!(result["to"][0]["associationTypes"][0]["typeId"], json!(3));
    assert_eq!(
        reply.body["errors"][0]["context"]["fromObjectId"],
        json!(["7"])
    );
}

#[tokio::test]
async fn a_missing_token_and_an_expired_one_get_different_401s() {
    let mut config = small();
    config.knobs.access_token_ttl = Duration::from_secs(600);
    let portal = Portal::start(config);
    let reply = portal
        .send(portal.http.get(portal.url("/crm/v3/owners")))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_error_body(&reply.body, "INVALID_AUTHENTICATION");
    assert!(reply.headers.contains_key("x-hubspot-correlation-id"));

    let token = refresh(&portal, &portal.emu.oauth_refresh_token()).await;
    let access = token.body["access_token"].as_str().unwrap().to_owned();
    let ok = portal
        .send(
            portal
                .http
                .get(portal.url("/crm/v3/owners"))
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(
        ok.headers.get("x-hubspot-ratelimit-daily").is_none(),
        "no daily headers on OAuth calls"
    );
    portal.emu.expire_tokens();
    let expired = portal
        .send(
            portal
                .http
                .get(portal.url("/crm/v3/owners"))
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_error_body(&expired.body, "EXPIRED_AUTHENTICATION");
    assert!(
        expired.body["message"]
            .as_str()
            .unwrap()
            .starts_with("The OAuth token used to make this call expired")
    );
}

async fn refresh(portal: &Portal, refresh_token: &str) -> Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &portal.emu.oauth_client_id()),
        ("client_secret", &portal.emu.oauth_client_secret()),
        ("refresh_token", refresh_token),
    ];
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    portal
        .send(
            portal
                .http
                .post(portal.emu.token_url())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
}

#[tokio::test]
async fn rotated_refresh_tokens_retire_the_old_one() {
    let mut config = small();
    config.knobs.rotate_refresh_tokens = true;
    let portal = Portal::start(config);
    let first = portal.emu.oauth_refresh_token();
    let reply = refresh(&portal, &first).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(reply.body["expires_in"], 1800);
    let second = reply.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(portal.emu.oauth_refresh_token(), second);
    let stale = refresh(&portal, &first).await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert_eq!(stale.body["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(stale.body["error"], "invalid_grant");
    assert_eq!(refresh(&portal, &second).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_expire_after_the_set_number_of_calls() {
    let portal = Portal::start(small());
    let reply = refresh(&portal, &portal.emu.oauth_refresh_token()).await;
    let access = reply.body["access_token"].as_str().unwrap().to_owned();
    portal.emu.expire_after_requests(2);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = portal
            .send(
                portal
                    .http
                    .get(portal.url("/crm/v3/owners"))
                    .bearer_auth(&access),
            )
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 401]);
}

#[tokio::test]
async fn the_ten_second_limit_answers_429_naming_its_policy() {
    let mut config = small();
    config.knobs.limits.ten_secondly = Some(3);
    config.knobs.limits.daily = Some(1000);
    let portal = Portal::start(config);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = portal.get("/crm/v3/owners").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["x-hubspot-ratelimit-max"], "3");
        assert_eq!(
            reply.headers["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
        remaining.push(
            reply.headers["x-hubspot-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        assert!(
            reply
                .headers
                .contains_key("x-hubspot-ratelimit-daily-remaining")
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let limited = portal.get("/crm/v3/owners").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(limited.headers.get("retry-after").is_none());
    assert!(limited.headers.contains_key("x-hubspot-correlation-id"));

    portal
        .emu
        .update_knobs(|k| k.limits.retry_after = Some(Duration::from_secs(10)));
    let limited = portal.get("/crm/v3/owners").await;
    assert_eq!(limited.headers["retry-after"], "10");
    let search = portal.search("deals", json!({"limit": 1})).await;
    assert_eq!(
        search.status,
        StatusCode::OK,
        "search is outside the 10-second bucket"
    );
}

#[tokio::test]
async fn the_search_limit_answers_the_recorded_429() {
    let mut config = small();
    config.knobs.limits.search_per_second = Some(1);
    let portal = Portal::start(config);
    assert_eq!(
        portal.search("deals", json!({})).await.status,
        StatusCode::OK
    );
    let limited = portal.search("deals", json!({})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_error_body(&limited.body, "RATE_LIMITS");
    assert_eq!(
        limited.body["message"],
        "You have reached your secondly limit."
    );
    assert!(limited.body.get("policyName").is_none());
    assert!(limited.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn the_daily_limit_answers_429_daily() {
    let mut config = small();
    config.knobs.limits.daily = Some(2);
    let portal = Portal::start(config);
    portal.get("/crm/v3/owners").await;
    let last = portal.get("/crm/v3/owners").await;
    assert_eq!(last.headers["x-hubspot-ratelimit-daily-remaining"], "0");
    let limited = portal.search("deals", json!({})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["policyName"], "DAILY");
}

#[tokio::test]
async fn an_earlier_lifecycle_stage_is_ignored_until_the_stage_is_cleared() {
    let portal = Portal::start(small());
    let contact = portal
        .emu
        .ids(ObjectType::Contacts)
        .into_iter()
        .find(|id| {
            let record = portal.emu.record(ObjectType::Contacts, id).unwrap();
            record.properties.get("lifecyclestage").map(String::as_str) == Some("customer")
        })
        .expect("a seeded customer");
    let set =
        |stage: &str| json!({"inputs": [{"id": contact, "properties": {"lifecyclestage": stage}}]});
    let stage = || {
        portal
            .emu
            .record(ObjectType::Contacts, &contact)
            .unwrap()
            .properties
            .get("lifecyclestage")
            .cloned()
    };

    let reply = portal
        .post("/crm/v3/objects/contacts/batch/update", set("lead"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "silently ignored");
    assert_eq!(stage().as_deref(), Some("customer"));
    portal
        .post("/crm/v3/objects/contacts/batch/update", set(""))
        .await;
    assert_eq!(stage(), None);
    portal
        .post("/crm/v3/objects/contacts/batch/update", set("lead"))
        .await;
    assert_eq!(stage().as_deref(), Some("lead"));
    let reply = portal
        .send(
            portal
                .http
                .patch(portal.url(&format!("/crm/v3/objects/contacts/{contact}")))
                .bearer_auth(&portal.token)
                .json(&json!({"properties": {"lifecyclestage": "evangelist"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["properties"]["lifecyclestage"], "evangelist");
}

#[tokio::test]
async fn requests_are_counted_by_route_template() {
    let portal = Portal::start(small());
    portal.get("/crm/v3/owners").await;
    portal.get("/crm/v3/objects/deals").await;
    portal.get("/crm/v3/objects/contacts").await;
    portal.search("deals", json!({})).await;
    portal.get("/crm/v3/nowhere").await;
    let counts = portal.emu.counts();
    assert_eq!(counts.get("GET /crm/v3/owners"), 1);
    assert_eq!(counts.get("GET /crm/v3/objects/{object_type}"), 2);
    assert_eq!(counts.get("POST /crm/v3/objects/{object_type}/search"), 1);
    assert_eq!(counts.get("GET <unmatched>"), 1);
    assert_eq!(counts.total(), 5);
}

#[tokio::test]
async fn injected_faults_speak_hubspot_and_spare_the_token_endpoint() {
    let portal = Portal::start(small());
    portal.emu.faults().storm(2, Some(Duration::from_secs(3)));
    assert_eq!(
        refresh(&portal, &portal.emu.oauth_refresh_token())
            .await
            .status,
        StatusCode::OK
    );
    let limited = portal.get("/crm/v3/owners").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(limited.headers["retry-after"], "3");
    portal.emu.faults().clear();
    portal.emu.faults().fail_next(1);
    let failed = portal.get("/crm/v3/owners").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error_body(&failed.body, "INTERNAL_ERROR");
}

#[tokio::test]
async fn a_corrupt_record_is_malformed_while_its_page_stays_valid() {
    let portal = Portal::start(small());
    let bad = portal.emu.ids(ObjectType::Deals)[2].clone();
    portal.emu.corrupt(ObjectType::Deals, &bad).unwrap();
    let reply = portal.get("/crm/v3/objects/deals?limit=5").await;
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[2]["createdAt"], "not-a-date");
    assert!(!results[2]["properties"]["hs_object_id"].is_string());
    assert!(results[1]["createdAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn touched_records_come_back_in_an_incremental_search() {
    let portal = Portal::start(small());
    let since = portal.emu.now().timestamp_millis();
    let touched: BTreeSet<String> = portal.emu.touch(ObjectType::Deals, 3).into_iter().collect();
    assert_eq!(touched.len(), 3);
    tokio::time::sleep(portal.emu.search_settles_in()).await;
    let reply = portal
        .search(
            "deals",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.to_string()}]}]}),
        )
        .await;
    let got: BTreeSet<String> = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, touched);
}

#[tokio::test]
async fn a_held_batch_create_has_committed_when_the_client_gives_up() {
    let portal = Portal::start(small());
    portal.emu.hold_batch_create(Duration::from_secs(30));
    let before = portal.emu.tasks().len();
    let outcome = portal
        .http
        .post(portal.url("/crm/v3/objects/tasks/batch/create"))
        .bearer_auth(&portal.token)
        .timeout(Duration::from_secs(1))
        .json(&json!({"inputs": [{"properties": {"hs_timestamp": "2026-03-05", "hs_task_subject": "Onboarding kickoff"}}]}))
        .send()
        .await;
    assert!(outcome.is_err_and(|err| err.is_timeout()));
    assert_eq!(portal.emu.tasks().len(), before + 1);
}

fn new_task(subject: &str) -> Value {
    json!({"properties": {"hs_timestamp": "2026-03-05", "hs_task_subject": subject}})
}

/// Ids of the search results for tasks whose subject holds `token`.
async fn tasks_found(portal: &Portal, token: &str) -> Vec<u64> {
    let reply = portal
        .search(
            "tasks",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_task_subject", "operator": "CONTAINS_TOKEN", "value": token}]}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    ids(&reply.body["results"])
}

#[tokio::test]
async fn search_shows_a_new_task_only_after_the_lag_while_reads_by_id_see_it_at_once() {
    let mut config = small();
    config.knobs.search_lag = Duration::from_millis(400);
    let portal = Portal::start(config);
    let deal = portal.emu.ids(ObjectType::Deals)[0].clone();
    let mut input = new_task("Lagging kickoff");
    input["associations"] = json!([{"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}]}]);
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [input]}),
        )
        .await;
    let id = reply.body["results"][0]["id"].as_str().unwrap().to_owned();
    assert!(tasks_found(&portal, "lagging").await.is_empty());
    let read = portal
        .post(
            "/crm/v3/objects/tasks/batch/read",
            json!({"inputs": [{"id": id}]}),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "a read by id sees the task");
    let linked = portal
        .post(
            "/crm/v4/associations/deals/tasks/batch/read",
            json!({"inputs": [{"id": deal}]}),
        )
        .await;
    assert!(
        linked.body["results"][0]["to"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["toObjectId"] == json!(id)),
        "an association read sees the task: {}",
        linked.body
    );
    tokio::time::sleep(portal.emu.search_settles_in()).await;
    assert_eq!(
        tasks_found(&portal, "lagging").await,
        [id.parse::<u64>().unwrap()]
    );
}

#[tokio::test]
async fn search_shows_a_changed_record_as_it_was_until_the_lag_has_passed() {
    let mut config = small();
    config.knobs.search_lag = Duration::from_millis(400);
    let portal = Portal::start(config);
    let deal = portal.emu.ids(ObjectType::Deals)[3].clone();
    let named = |name: &str| {
        json!({"filterGroups": [{"filters": [
                   {"propertyName": "hs_object_id", "operator": "EQ", "value": deal},
                   {"propertyName": "dealname", "operator": "EQ", "value": name}]}],
               "properties": ["dealname"]})
    };
    let old = portal
        .emu
        .record(ObjectType::Deals, &deal)
        .unwrap()
        .properties["dealname"]
        .clone();
    portal
        .post(
            "/crm/v3/objects/deals/batch/update",
            json!({"inputs": [{"id": deal, "properties": {"dealname": "Renamed deal"}}]}),
        )
        .await;
    let by_old = portal.search("deals", named(&old)).await;
    assert_eq!(ids(&by_old.body["results"]), [deal.parse::<u64>().unwrap()]);
    assert_eq!(
        by_old.body["results"][0]["properties"]["dealname"],
        json!(old)
    );
    assert!(ids(&portal.search("deals", named("Renamed deal")).await.body["results"]).is_empty());
    tokio::time::sleep(portal.emu.search_settles_in()).await;
    assert!(ids(&portal.search("deals", named(&old)).await.body["results"]).is_empty());
    assert_eq!(
        ids(&portal.search("deals", named("Renamed deal")).await.body["results"]),
        [deal.parse::<u64>().unwrap()]
    );
}

#[tokio::test]
async fn with_no_search_lag_search_is_current() {
    let mut config = small();
    config.knobs.search_lag = Duration::ZERO;
    let portal = Portal::start(config);
    portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [new_task("Current kickoff")]}),
        )
        .await;
    assert_eq!(portal.emu.search_settles_in(), Duration::ZERO);
    assert_eq!(tasks_found(&portal, "current").await.len(), 1);
}

#[tokio::test]
async fn a_v4_association_batch_read_takes_1000_inputs_and_refuses_more() {
    let portal = Portal::start(small());
    let thousand: Vec<Value> = (0..1000)
        .map(|i| json!({"id": (9_940 + i).to_string()}))
        .collect();
    let reply = portal
        .post(
            "/crm/v4/associations/deals/contacts/batch/read",
            json!({ "inputs": thousand }),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let mut more = thousand.clone();
    more.push(json!({"id": "1"}));
    let reply = portal
        .post(
            "/crm/v4/associations/deals/contacts/batch/read",
            json!({ "inputs": more }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_error_body(&reply.body, "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_batch_create_echoes_each_inputs_trace_id_on_its_result_or_its_error_row() {
    let portal = Portal::start(small());
    let mut good = new_task("Traced kickoff");
    good["objectWriteTraceId"] = json!("trace-good");
    let bad = json!({"properties": {"hs_task_subject": "No due date"}, "objectWriteTraceId": "trace-bad"});
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [good, bad]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    assert_eq!(reply.body["results"][0]["objectWriteTraceId"], "trace-good");
    assert_eq!(
        reply.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["trace-bad"])
    );
}

#[tokio::test]
async fn a_detached_batch_create_finishes_after_its_client_gave_up() {
    let mut config = small();
    config.knobs.detached_batch_create = Some(Duration::from_millis(100));
    let portal = Portal::start(config);
    let before = portal.emu.tasks().len();
    let outcome = portal
        .http
        .post(portal.url("/crm/v3/objects/tasks/batch/create"))
        .bearer_auth(&portal.token)
        .timeout(Duration::from_millis(150))
        .json(&json!({"inputs": vec![new_task("Orphaned kickoff"); 5]}))
        .send()
        .await;
    assert!(outcome.is_err_and(|err| err.is_timeout()));
    assert!(
        portal.emu.tasks().len() < before + 5,
        "the batch was not done when the client gave up"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while portal.emu.tasks().len() < before + 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        portal.emu.tasks().len(),
        before + 5,
        "the server finished the batch without its client"
    );
}

#[tokio::test]
async fn malform_next_write_carries_out_the_write_then_garbles_its_answer() {
    let portal = Portal::start(small());
    let before = portal.emu.tasks().len();
    portal.emu.malform_next_write();
    let search = portal.search("tasks", json!({"limit": 1})).await;
    assert_eq!(search.status, StatusCode::OK, "a search is not a write");
    let response = portal
        .http
        .post(portal.url("/crm/v3/objects/tasks/batch/create"))
        .bearer_auth(&portal.token)
        .json(&json!({"inputs": [new_task("Garbled kickoff")]}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = response.bytes().await.expect("a whole body");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert_eq!(portal.emu.tasks().len(), before + 1, "the task was written");
    let next = portal
        .post(
            "/crm/v3/objects/tasks/batch/create",
            json!({"inputs": [new_task("Clean kickoff")]}),
        )
        .await;
    assert_eq!(next.status, StatusCode::CREATED, "only the next write");
}

#[tokio::test]
async fn a_deleted_task_is_archived_and_a_batch_update_naming_it_can_be_refused_whole() {
    let mut config = small();
    config.knobs.missing_in_batch_update = MissingInUpdate::WholeBatch;
    let portal = Portal::start(config);
    let tasks = portal.emu.ids(ObjectType::Tasks);
    let (gone, kept) = (tasks[0].clone(), tasks[1].clone());
    portal.emu.delete_task(&gone).unwrap();
    assert!(
        portal
            .emu
            .record(ObjectType::Tasks, &gone)
            .unwrap()
            .archived
    );
    let reply = portal
        .post(
            "/crm/v3/objects/tasks/batch/update",
            json!({"inputs": [
                {"id": kept, "properties": {"hs_task_status": "COMPLETED"}},
                {"id": gone, "properties": {"hs_task_status": "COMPLETED"}}
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_error_body(&reply.body, "OBJECT_NOT_FOUND");
    assert_eq!(reply.body["context"]["ids"], json!([gone]));
    assert_ne!(
        portal
            .emu
            .record(ObjectType::Tasks, &kept)
            .unwrap()
            .properties["hs_task_status"],
        "COMPLETED",
        "nothing was written"
    );
}

#[test]
fn the_same_seed_gives_the_same_portal_and_a_mix_of_journey_problems() {
    let config = EmulatorConfig {
        sizes: SeedSizes::for_deals(300),
        ..EmulatorConfig::default()
    };
    let a = HubspotEmulator::start(config.clone()).unwrap();
    let b = HubspotEmulator::start(config.clone()).unwrap();
    let c = HubspotEmulator::start(EmulatorConfig { seed: 2, ..config }).unwrap();
    let deals = |emu: &HubspotEmulator| -> Vec<_> {
        emu.ids(ObjectType::Deals)
            .iter()
            .map(|id| emu.record(ObjectType::Deals, id).unwrap())
            .collect()
    };
    assert_eq!(deals(&a), deals(&b));
    assert_eq!(a.tasks(), b.tasks());
    assert_ne!(deals(&a), deals(&c));

    let deals = deals(&a);
    let has = |pred: &dyn Fn(&std::collections::BTreeMap<String, String>) -> bool| {
        deals.iter().filter(|d| pred(&d.properties)).count()
    };
    let archived_owners = ["113", "114"];
    assert!(
        has(&|p| !p.contains_key("hubspot_owner_id")) > 0,
        "deals with no owner"
    );
    assert!(
        has(&|p| p
            .get("hubspot_owner_id")
            .is_some_and(|o| archived_owners.contains(&o.as_str())))
            > 0
    );
    assert!(
        has(&|p| p["pipeline"] != "default") > 0,
        "deals in a stage the journey does not map"
    );
    assert!(
        has(&|p| p["dealstage"] == "closedwon") > 0
            && has(&|p| p
                .get("amount")
                .is_some_and(|a| a.parse::<f64>().unwrap() > 100_000.0)
                && !p.contains_key("executive_sponsor")
                && [
                    "presentationscheduled",
                    "decisionmakerboughtin",
                    "contractsent"
                ]
                .contains(&p["dealstage"].as_str()))
                > 0
    );
    let won_with_task: BTreeSet<String> = a
        .tasks()
        .iter()
        .filter(|t| t.properties["hs_task_subject"].contains("Onboarding"))
        .flat_map(|t| {
            t.associations
                .get(&ObjectType::Deals)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let won: Vec<_> = deals
        .iter()
        .filter(|d| d.properties["dealstage"] == "closedwon")
        .collect();
    assert!(won.iter().any(|d| won_with_task.contains(&d.id)));
    assert!(
        won.iter().any(|d| !won_with_task.contains(&d.id)),
        "won deals without an onboarding task"
    );
    let emails: Vec<String> = a
        .ids(ObjectType::Contacts)
        .iter()
        .map(|id| a.record(ObjectType::Contacts, id).unwrap().properties["email"].clone())
        .collect();
    let distinct: BTreeSet<&String> = emails.iter().collect();
    assert!(
        distinct.len() < emails.len(),
        "some contacts share an email"
    );
}
