//! The deterministic seeded org: users in teams, accounts, contacts (some
//! sharing an email), leads, opportunities across the shipped config's
//! stages (plus one it does not map, and one whose name needs escaping),
//! their stage history and contact roles, and tasks on some of them.

use super::clock;
use super::clock::Clock;
use super::config::EmulatorConfig;
use super::object::{SObject, TASK_STATUSES};
use super::store::Store;
use serde_json::{Map, Value, json};

const DAY_MS: i64 = 86_400_000;

/// The teams, held in the user's `Department` (the shipped config maps
/// these names to journey roles).
pub(crate) const TEAMS: [&str; 5] = [
    "Marketing User",
    "Sales Rep",
    "Onboarding Specialist",
    "Customer Success Manager",
    "Account Manager",
];

/// Opportunity stages in order; the last two are off the journey
/// ("Closed Lost" maps to "-", "On Hold" is mapped by nothing).
pub(crate) const DEAL_STAGES: [&str; 10] = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
pub(crate) const UNMAPPED_STAGE: &str = "On Hold";

const LEAD_STATUSES: [&str; 4] = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];
const ACCOUNT_STAGES: [&str; 4] = ["Onboarding", "Adoption", "Renewal", "Expansion"];
/// `OpportunityContactRole.Role` values (the standard picklist, general
/// knowledge (?)).
pub(crate) const CONTACT_ROLES: [&str; 8] = [
    "Decision Maker",
    "Economic Buyer",
    "Evaluator",
    "Technical Buyer",
    "Influencer",
    "Business User",
    "Executive Sponsor",
    "Other",
];
const FIRST: [&str; 8] = ["Ann", "Raj", "Mia", "Tom", "Lea", "Sam", "Ida", "Max"];
const LAST: [&str; 8] = [
    "Lee", "Patel", "Novak", "Berg", "Costa", "Ito", "Kahn", "Ruiz",
];

/// Inserts a seeded record, created by its owner (a user, or a record
/// without an owner, by the org's first user).
fn seeded(store: &mut Store, object: SObject, fields: Map<String, Value>, at: i64) -> String {
    let by = fields
        .get("OwnerId")
        .and_then(Value::as_str)
        .map_or_else(super::store::first_user, str::to_owned);
    store.insert_at(object, fields, at, &by)
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => Map::new(),
    }
}

pub(crate) fn seed(config: &EmulatorConfig) -> Store {
    let mut store = Store::new(Clock::new(config.now), config.seed);
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let now = config.now.timestamp_millis();
    let sizes = config.sizes;
    let ago = |rng: &mut fastrand::Rng, max_days: i64| now - rng.i64(1..max_days.max(2) * DAY_MS);

    // Users: the first is the integration user; then a team each in turn;
    // the last one is inactive. Raj Patel is the second.
    let mut users = Vec::new();
    for i in 0..sizes.users.max(6) + 1 {
        let active = i < sizes.users.max(6);
        let (first, last) = (FIRST[i % 8], LAST[(i + i / 8) % 8]);
        let email = if i == 0 {
            config.credentials.username.clone()
        } else if i == 1 {
            "raj.patel@example.com".to_owned()
        } else {
            format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            )
        };
        let (first, last) = if i == 1 {
            ("Raj", "Patel")
        } else {
            (first, last)
        };
        let id = seeded(
            &mut store,
            SObject::User,
            fields(json!({
                "Name": format!("{first} {last}"),
                "Username": email,
                "Email": email,
                "IsActive": active,
                "Department": if i == 0 { Value::Null } else { json!(TEAMS[(i - 1) % TEAMS.len()]) },
                "Title": if i == 0 { "Integration" } else { "Staff" },
            })),
            now - 400 * DAY_MS,
        );
        users.push(id);
    }
    let owners = &users[1..];
    let pick = |rng: &mut fastrand::Rng| owners[rng.usize(0..owners.len())].clone();

    let mut accounts = Vec::new();
    for i in 0..sizes.accounts {
        let at = ago(&mut rng, 300);
        let id = seeded(
            &mut store,
            SObject::Account,
            fields(json!({
                "Name": format!("Account {i:03}"),
                "Website": format!("https://account{i}.example.com"),
                "OwnerId": pick(&mut rng),
                "Customer_Stage__c": if i % 5 == 4 { Value::Null } else { json!(ACCOUNT_STAGES[i % 4]) },
                "Kickoff_Date__c": if i % 3 != 2 { json!(clock::date(at - 90 * DAY_MS)) } else { Value::Null },
                "Go_Live_Date__c": if i % 4 != 3 { json!(clock::date(at - 60 * DAY_MS)) } else { Value::Null },
                "Active_Users__c": if i % 6 != 5 { json!(rng.u32(0..400) as f64) } else { Value::Null },
                "Health_Score__c": if i % 7 != 6 { json!(rng.u32(20..100) as f64) } else { Value::Null },
                "Success_Criteria_Met__c": i % 3 == 0,
                "Champion__c": if i % 4 != 0 { json!(format!("Champion {i:03}")) } else { Value::Null },
            })),
            at,
        );
        accounts.push(id);
    }

    let mut contacts = Vec::new();
    let mut previous_email = String::new();
    for i in 0..sizes.contacts {
        let at = ago(&mut rng, 200);
        let email = if i % 7 == 6 {
            previous_email.clone()
        } else {
            format!("contact{i}@example.com")
        };
        previous_email.clone_from(&email);
        let id = seeded(
            &mut store,
            SObject::Contact,
            fields(json!({
                "FirstName": FIRST[i % 8],
                "LastName": format!("{} {i}", LAST[(i / 8) % 8]),
                "Email": email,
                "AccountId": accounts.get(i % accounts.len().max(1)).cloned(),
                "OwnerId": pick(&mut rng),
            })),
            at,
        );
        contacts.push(id);
    }

    for i in 0..sizes.leads {
        let at = ago(&mut rng, 120);
        seeded(
            &mut store,
            SObject::Lead,
            fields(json!({
                "FirstName": FIRST[(i + 3) % 8],
                "LastName": format!("Lead {i}"),
                "Email": format!("lead{i}@prospect{}.example.com", i % 9),
                "Company": format!("Prospect {}", i % 9),
                "Website": format!("https://prospect{}.example.com", i % 9),
                "Status": LEAD_STATUSES[i % 4],
                "LeadSource": if i % 2 == 0 { "Web" } else { "Partner Referral" },
                "OwnerId": pick(&mut rng),
            })),
            at,
        );
    }

    // Opportunities. Every 7th shares its SystemModstamp with the one
    // before, on purpose, so watermark ties happen.
    let mut last_at = now - 5 * DAY_MS;
    let inactive = users.last().cloned().unwrap_or_default();
    // Contact roles draw from their own sequence, so that the rest of the
    // org is what it was before they were seeded.
    let mut roles_rng = fastrand::Rng::with_seed(config.seed ^ 0x0c0e);
    let mut extra: Vec<String> = Vec::new();
    let total = sizes.opportunities + usize::from(config.odd_stage.is_some());
    for i in 0..total {
        let odd = i == sizes.opportunities;
        let stage_at = i % (DEAL_STAGES.len() + 1);
        let stage = if odd {
            config.odd_stage.clone().unwrap_or_default()
        } else if stage_at == DEAL_STAGES.len() {
            UNMAPPED_STAGE.to_owned()
        } else {
            DEAL_STAGES[stage_at].to_owned()
        };
        let at = if i % 7 == 6 {
            last_at
        } else {
            ago(&mut rng, 90)
        };
        last_at = at;
        let created = at - rng.i64(1..60) * DAY_MS;
        let owner = if i % 13 == 12 {
            inactive.clone()
        } else {
            pick(&mut rng)
        };
        let reached = stage_at.min(7) >= 3 || stage == "Closed Won";
        let id = seeded(
            &mut store,
            SObject::Opportunity,
            fields(json!({
                "Name": format!("Opportunity {i:03}"),
                "StageName": stage,
                "Amount": (rng.u32(5..500) * 1000) as f64,
                "CloseDate": clock::date(now + rng.i64(-60..90) * DAY_MS),
                "AccountId": accounts.get(i % accounts.len().max(1)).cloned(),
                "OwnerId": owner,
                "LeadSource": if i % 3 == 0 { "Web" } else { "Partner Referral" },
                "Pain_Points__c": if reached && i % 5 != 0 { json!("Manual reporting") } else { Value::Null },
                "Discovery_Call_Date__c": if reached { json!(clock::date(created + DAY_MS)) } else { Value::Null },
                "Decision_Maker__c": if reached && i % 4 != 0 { json!("CFO") } else { Value::Null },
                "Budget_Confirmed__c": reached && i % 6 != 0,
                "Success_Criteria__c": if reached && i % 7 != 0 { json!("Reports ready by the 2nd") } else { Value::Null },
                "Executive_Sponsor__c": if reached && i % 3 != 0 { json!("VP Operations") } else { Value::Null },
            })),
            at,
        );
        if let Some(record) = store.get_mut(SObject::Opportunity, &id) {
            record
                .fields
                .insert("CreatedDate".into(), json!(clock::datetime(created)));
        }
        // Stage history: one row per stage reached, oldest first.
        let steps = if stage_at < DEAL_STAGES.len() - 1 {
            stage_at
        } else {
            8
        };
        let history: Vec<String> = DEAL_STAGES[..steps.min(8)]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(std::iter::once(stage.clone()))
            .collect();
        let span = (at - created).max(history.len() as i64);
        for (k, step) in history.iter().enumerate() {
            let when = created + span * k as i64 / history.len() as i64;
            seeded(
                &mut store,
                SObject::OpportunityHistory,
                fields(json!({"OpportunityId": id, "StageName": step})),
                when,
            );
        }
        if i % 5 != 4 {
            seed_contact_roles(
                &mut store,
                &mut roles_rng,
                &id,
                &account_contacts(&contacts, i, accounts.len()),
                created,
            );
        }
        if stage == "Closed Won" {
            extra.push(id);
        }
    }

    // Tasks: most closed-won opportunities have an onboarding task; a few
    // opportunities have a follow-up.
    for (k, opp) in extra.iter().enumerate() {
        if k % 4 == 3 {
            continue;
        }
        let (status, _) = TASK_STATUSES[k % 3];
        let at = ago(&mut rng, 30);
        seeded(
            &mut store,
            SObject::Task,
            fields(json!({
                "Subject": "Onboarding kickoff",
                "Description": format!("Kick off onboarding (seed {k})"),
                "Status": status,
                "Priority": "Normal",
                "ActivityDate": clock::date(at + 7 * DAY_MS),
                "WhatId": opp,
                "OwnerId": pick(&mut rng),
            })),
            at,
        );
    }
    let opportunities: Vec<String> = store.table(SObject::Opportunity).keys().cloned().collect();
    for opp in opportunities.iter().step_by(5) {
        let at = ago(&mut rng, 30);
        seeded(
            &mut store,
            SObject::Task,
            fields(json!({
                "Subject": "Follow up",
                "Status": "Not Started",
                "Priority": "Low",
                "ActivityDate": clock::date(at + 3 * DAY_MS),
                "WhatId": opp,
                "OwnerId": pick(&mut rng),
            })),
            at,
        );
    }
    store
}

/// The contacts of the account opportunity `i` belongs to (contact `j`
/// belongs to account `j % accounts`, as opportunity `i` to `i % accounts`),
/// or, when that account has none, every contact.
fn account_contacts(contacts: &[String], i: usize, accounts: usize) -> Vec<String> {
    let accounts = accounts.max(1);
    let own: Vec<String> = contacts
        .iter()
        .skip(i % accounts)
        .step_by(accounts)
        .cloned()
        .collect();
    if own.is_empty() {
        contacts.to_vec()
    } else {
        own
    }
}

/// One to three contact roles on `opportunity`, from `candidates`, the
/// first of them primary; one role in nine has no `Role` value.
fn seed_contact_roles(
    store: &mut Store,
    rng: &mut fastrand::Rng,
    opportunity: &str,
    candidates: &[String],
    at: i64,
) {
    if candidates.is_empty() {
        return;
    }
    let wanted = rng.usize(1..=3).min(candidates.len());
    let first = rng.usize(0..candidates.len());
    for k in 0..wanted {
        let contact = &candidates[(first + k) % candidates.len()];
        let role = rng.usize(0..=CONTACT_ROLES.len());
        seeded(
            store,
            SObject::OpportunityContactRole,
            fields(json!({
                "OpportunityId": opportunity,
                "ContactId": contact,
                "Role": CONTACT_ROLES.get(role).copied(),
                "IsPrimary": k == 0,
            })),
            at + k as i64,
        );
    }
}
