//! The seeded portal: owners in teams, the deal pipelines, companies,
//! contacts, deals and a few tasks, drawn from one seeded generator so the
//! same seed always gives the same portal.
//!
//! About 60% of deals are clean; the rest carry the journey problems
//! journeyd looks for: no owner or a deactivated one, an owner from the
//! wrong team, exit criteria of an earlier stage unmet, stalled in a stage,
//! handoff data missing at closed-won, a stage of a second pipeline the
//! journey does not map, a skipped stage, a big deal with no executive
//! sponsor, and closed-won deals with no onboarding task. Several records
//! share one `hs_lastmodifieddate` millisecond on purpose.

use super::clock::{self, Clock};
use super::config::EmulatorConfig;
use super::object::{ANALYTICS_SOURCES, LIFECYCLE_STAGES, ObjectType, PropId, Schema, schemas};
use super::store::{Owner, Pipeline, PipelineStage, Record, Store, Table};
use fastrand::Rng;
use std::collections::{HashMap, HashSet};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// The default sales pipeline's stages: (id, label, probability, closed).
pub(crate) const DEFAULT_STAGES: [(&str, &str, &str, bool); 7] = [
    (
        "appointmentscheduled",
        "Appointment Scheduled",
        "0.2",
        false,
    ),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", false),
    (
        "presentationscheduled",
        "Presentation Scheduled",
        "0.6",
        false,
    ),
    (
        "decisionmakerboughtin",
        "Decision Maker Bought-In",
        "0.8",
        false,
    ),
    ("contractsent", "Contract Sent", "0.9", false),
    ("closedwon", "Closed Won", "1.0", true),
    ("closedlost", "Closed Lost", "0.0", true),
];

/// A second pipeline, whose stage ids no journey maps.
const RENEWALS: (&str, [(&str, &str, &str, bool); 3]) = (
    "31725849",
    [
        ("31725850", "Renewal Due", "0.5", false),
        ("31725851", "Renewed", "1.0", true),
        ("31725852", "Churned", "0.0", true),
    ],
);

const TEAMS: [(u64, &str); 5] = [
    (501, "Marketing"),
    (502, "Sales"),
    (503, "Onboarding"),
    (504, "Customer Success"),
    (505, "Account Management"),
];
const MARKETING: usize = 0;
const SALES: usize = 1;
const ONBOARDING: usize = 2;
const SUCCESS: usize = 3;
const ACCOUNTS: usize = 4;

/// The first owners, so that configs can name them: 101 marketing, 102
/// sales, 103 Ann Lee (onboarding), 112 in no team.
const NAMED_OWNERS: [(&str, &str, Option<usize>); 12] = [
    ("Maya", "Brooks", Some(MARKETING)),
    ("Liam", "Carter", Some(SALES)),
    ("Ann", "Lee", Some(ONBOARDING)),
    ("Noah", "Patel", Some(SALES)),
    ("Sofia", "Rossi", Some(SUCCESS)),
    ("Ethan", "Kim", Some(ACCOUNTS)),
    ("Olivia", "Chen", Some(SALES)),
    ("Lucas", "Meyer", Some(ONBOARDING)),
    ("Emma", "Dubois", Some(MARKETING)),
    ("Jonas", "Berg", Some(SALES)),
    ("Priya", "Nair", Some(SUCCESS)),
    ("Diego", "Alvarez", None),
];

const FIRST: [&str; 24] = [
    "Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
    "Harper", "Rowan", "Elena", "Marco", "Yuki", "Amara", "Tomas", "Ines", "Kofi", "Leila",
    "Mateo", "Nina", "Omar", "Zoe",
];
const LAST: [&str; 24] = [
    "Smith",
    "Garcia",
    "Muller",
    "Nguyen",
    "Okafor",
    "Johansson",
    "Silva",
    "Kowalski",
    "Haddad",
    "Tanaka",
    "Novak",
    "Fischer",
    "Moreau",
    "Costa",
    "Larsen",
    "Ahmed",
    "Rossi",
    "Walsh",
    "Singh",
    "Petrov",
    "Lopez",
    "Becker",
    "Ito",
    "Murphy",
];
const COMPANY_A: [&str; 20] = [
    "Acme",
    "Northwind",
    "Bluepeak",
    "Silverline",
    "Redwood",
    "Brightpath",
    "Ironclad",
    "Lumen",
    "Quantum",
    "Evergreen",
    "Cobalt",
    "Summit",
    "Harbor",
    "Falcon",
    "Nimbus",
    "Orbit",
    "Pioneer",
    "Sterling",
    "Vertex",
    "Willow",
];
const COMPANY_B: [&str; 12] = [
    "Analytics",
    "Logistics",
    "Health",
    "Labs",
    "Systems",
    "Foods",
    "Energy",
    "Robotics",
    "Media",
    "Capital",
    "Software",
    "Retail",
];
const INDUSTRIES: [&str; 8] = [
    "COMPUTER_SOFTWARE",
    "HOSPITAL_HEALTH_CARE",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "FINANCIAL_SERVICES",
    "RETAIL",
    "FOOD_PRODUCTION",
    "RENEWABLES_ENVIRONMENT",
    "MARKETING_AND_ADVERTISING",
];
const CITIES: [&str; 8] = [
    "Boston", "Berlin", "London", "Austin", "Toronto", "Lyon", "Sydney", "Dublin",
];
const PRODUCTS: [&str; 6] = [
    "Platform licence",
    "Analytics add-on",
    "Enterprise plan",
    "Team plan",
    "Data migration",
    "Support renewal",
];
const PAINS: [&str; 5] = [
    "Manual reporting takes two days a month",
    "No single view of the customer",
    "Churn is noticed too late",
    "Spreadsheets break at scale",
    "Onboarding new staff takes weeks",
];
const CRITERIA: [&str; 4] = [
    "Reports ready by the 2nd of each month",
    "80% of reps active weekly",
    "Churn flagged 30 days ahead",
    "Go-live within 60 days",
];

/// How a deal is made to misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Clean,
    MissingOwner,
    ArchivedOwner,
    WrongTeam,
    ExitUnmet,
    Stalled,
    HandoffMissing,
    Unmapped,
    SkippedStage,
    BigNoSponsor,
}

fn profile(roll: u32) -> Profile {
    match roll {
        0..60 => Profile::Clean,
        60..65 => Profile::MissingOwner,
        65..68 => Profile::ArchivedOwner,
        68..74 => Profile::WrongTeam,
        74..82 => Profile::ExitUnmet,
        82..88 => Profile::Stalled,
        88..92 => Profile::HandoffMissing,
        92..95 => Profile::Unmapped,
        95..97 => Profile::SkippedStage,
        _ => Profile::BigNoSponsor,
    }
}

/// Days a deal may sit in a default-pipeline stage before it is stalled,
/// after the shipped journey (consideration 45, decision 60, onboarding 30).
fn max_days(stage: usize) -> i64 {
    match stage {
        0 | 1 => 45,
        2..=4 => 60,
        5 => 30,
        _ => 90,
    }
}

struct Seeder<'a> {
    rng: Rng,
    now: i64,
    store: &'a mut Store,
    /// Active owners per team.
    by_team: [Vec<u64>; 5],
    archived_owners: Vec<u64>,
    company_contacts: Vec<(u64, Vec<u64>)>,
    /// Contact id -> "First Last", for deal fields that name a person.
    contact_names: HashMap<u64, String>,
    /// A deal still owes the seed a tie with its predecessor.
    tie_pending: bool,
}

pub(crate) fn seed(config: &EmulatorConfig) -> Store {
    let now = config.now.timestamp_millis();
    let mut rng = Rng::with_seed(config.seed);
    let owners = owners(config, now, &mut rng);
    let deal_pipelines = deal_pipelines(now);
    let stage_ids: Vec<String> = deal_pipelines
        .iter()
        .flat_map(|p| p.stages.iter().map(|s| s.id.clone()))
        .collect();
    let pipeline_ids: Vec<String> = deal_pipelines.iter().map(|p| p.id.clone()).collect();
    let owner_ids: Vec<String> = owners.iter().map(|o| o.id.to_string()).collect();
    let mut store = Store {
        schemas: schemas(&pipeline_ids, &stage_ids, &owner_ids),
        // Ids cross a digit boundary early, so that sorting them as text
        // and as numbers differ even in a small portal.
        tables: [
            Table::new(9_940),
            Table::new(960),
            Table::new(90),
            Table::new(99_950),
        ],
        owners,
        deal_pipelines,
        task_pipelines: vec![task_pipeline(now)],
        clock: Clock::new(config.now, config.clock),
        touch_rng: Rng::with_seed(config.seed ^ 0x70c4),
        touches: 0,
        search_lag: std::time::Duration::ZERO,
    };
    let mut by_team: [Vec<u64>; 5] = Default::default();
    let mut archived_owners = Vec::new();
    for owner in &store.owners {
        match (owner.archived, owner.team) {
            (true, _) => archived_owners.push(owner.id),
            (false, Some((team_id, _))) => by_team[(team_id - 501) as usize].push(owner.id),
            (false, None) => {}
        }
    }
    let mut seeder = Seeder {
        rng,
        now,
        store: &mut store,
        by_team,
        archived_owners,
        company_contacts: Vec::new(),
        contact_names: Default::default(),
        tie_pending: false,
    };
    seeder.companies(config.sizes.companies);
    seeder.contacts(config.sizes.contacts);
    seeder.deals(config.sizes.deals);
    // Creates after the seed take the next id; seeded ids have gaps.
    for table in &mut store.tables {
        table.generation = 0;
    }
    store
}

fn owners(config: &EmulatorConfig, now: i64, rng: &mut Rng) -> Vec<Owner> {
    let active = config.sizes.owners.max(6);
    let total = active + config.sizes.archived_owners;
    (0..total)
        .map(|i| {
            let id = 101 + i as u64;
            let (first, last, team) = match NAMED_OWNERS.get(i) {
                Some(&(first, last, team)) if i < active => {
                    (first.to_owned(), last.to_owned(), team)
                }
                _ if i < active => (
                    FIRST[i % FIRST.len()].to_owned(),
                    LAST[(i * 7) % LAST.len()].to_owned(),
                    Some(i % 5),
                ),
                _ => (
                    FIRST[(i * 5) % FIRST.len()].to_owned(),
                    LAST[(i * 3) % LAST.len()].to_owned(),
                    Some(if i % 2 == 0 { SALES } else { ONBOARDING }),
                ),
            };
            let created = now - rng.i64(400..1500) * DAY;
            Owner {
                id,
                email: format!(
                    "{}.{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase()
                ),
                first_name: first,
                last_name: last,
                user_id: 9_000_000 + id,
                team: team.map(|t| TEAMS[t]),
                archived: i >= active,
                created_ms: created,
                updated_ms: created + rng.i64(1..300) * DAY,
            }
        })
        .collect()
}

fn deal_pipelines(now: i64) -> Vec<Pipeline> {
    let stages = |list: &[(&str, &str, &str, bool)]| {
        list.iter()
            .map(|(id, label, probability, closed)| PipelineStage {
                id: (*id).to_owned(),
                label: (*label).to_owned(),
                metadata: vec![
                    ("isClosed", closed.to_string()),
                    ("probability", (*probability).to_owned()),
                ],
            })
            .collect()
    };
    vec![
        Pipeline {
            id: "default".into(),
            label: "Sales Pipeline".into(),
            display_order: 0,
            created_ms: now - 2000 * DAY,
            stages: stages(&DEFAULT_STAGES),
        },
        Pipeline {
            id: RENEWALS.0.into(),
            label: "Renewals".into(),
            display_order: 1,
            created_ms: now - 700 * DAY,
            stages: stages(&RENEWALS.1),
        },
    ]
}

fn task_pipeline(now: i64) -> Pipeline {
    let stage = |id: &str, label: &str, closed: bool, state: &str| PipelineStage {
        id: id.into(),
        label: label.into(),
        metadata: vec![("isClosed", closed.to_string()), ("state", state.into())],
    };
    Pipeline {
        id: "default".into(),
        label: "Task pipeline".into(),
        display_order: 0,
        created_ms: now - 2000 * DAY,
        stages: vec![
            stage("NOT_STARTED", "Not Started", false, "OPEN"),
            stage("IN_PROGRESS", "In Progress", false, "OPEN"),
            stage("WAITING", "Waiting", false, "OPEN"),
            stage("COMPLETED", "Completed", true, "CLOSED"),
            stage("DEFERRED", "Deferred", false, "OPEN"),
        ],
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// Sets `name` on `record` if the schema has it.
fn put(schema: &Schema, record: &mut Record, name: &str, value: &str) {
    let id: PropId = schema
        .id(name)
        .unwrap_or_else(|| panic!("seeded property {name} is in the schema"));
    record.props.set(id, value);
}

fn clear(schema: &Schema, record: &mut Record, name: &str) {
    put(schema, record, name, "");
}

impl Seeder<'_> {
    fn chance(&mut self, percent: u32) -> bool {
        self.rng.u32(0..100) < percent
    }

    fn pick<'s, T>(&mut self, items: &'s [T]) -> &'s T {
        &items[self.rng.usize(0..items.len())]
    }

    fn next_id(&mut self, object: ObjectType) -> u64 {
        let gap = self.rng.u64(1..=3);
        let table = self.store.table_mut(object);
        let id = table.next_id;
        table.next_id += gap;
        id
    }

    fn owner_in(&mut self, team: usize) -> Option<u64> {
        let owners = &self.by_team[team];
        (!owners.is_empty()).then(|| owners[self.rng.usize(0..owners.len())])
    }

    /// A creation time up to `max_days` ago and a modification after it.
    fn lifetime(&mut self, min_days: i64, max_days: i64) -> (i64, i64) {
        let created = self.now - self.rng.i64(min_days..max_days) * DAY - self.rng.i64(0..DAY);
        let modified = created + self.rng.i64(0..=(self.now - created));
        (created, modified)
    }

    fn lifecycle(&mut self, weights: [u32; 8]) -> &'static str {
        let total: u32 = weights.iter().sum();
        let mut roll = self.rng.u32(0..total);
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return LIFECYCLE_STAGES[i].0;
            }
            roll -= w;
        }
        LIFECYCLE_STAGES[0].0
    }

    fn companies(&mut self, n: usize) {
        let mut domains: Vec<String> = Vec::with_capacity(n);
        let mut taken = HashSet::with_capacity(n);
        for i in 0..n {
            let id = self.next_id(ObjectType::Companies);
            let name = format!("{} {}", self.pick(&COMPANY_A), self.pick(&COMPANY_B));
            let domain = if i > 3 && self.chance(4) {
                // The same company entered twice.
                domains[self.rng.usize(0..domains.len())].clone()
            } else {
                let mut domain = format!("{}.com", slug(&name));
                let mut suffix = 2;
                while taken.contains(&domain) {
                    domain = format!("{}{suffix}.com", slug(&name));
                    suffix += 1;
                }
                domain
            };
            taken.insert(domain.clone());
            let (created, modified) = self.lifetime(30, 1000);
            let stage = self.lifecycle([0, 10, 5, 10, 20, 45, 5, 5]);
            let owner = if stage == "customer" || stage == "evangelist" {
                self.owner_in(ACCOUNTS)
            } else {
                self.owner_in(SALES)
            };
            let industry = *self.pick(&INDUSTRIES);
            let city = *self.pick(&CITIES);
            let source = self.pick(&ANALYTICS_SOURCES).0;
            let schema = self.store.schema(ObjectType::Companies);
            let mut record = Record::new(id, created);
            record.updated_ms = modified;
            put(schema, &mut record, "name", &name);
            put(schema, &mut record, "domain", &domain);
            put(schema, &mut record, "industry", industry);
            put(schema, &mut record, "city", city);
            put(schema, &mut record, "lifecyclestage", stage);
            put(schema, &mut record, "hs_analytics_source", source);
            if let Some(owner) = owner {
                put(schema, &mut record, "hubspot_owner_id", &owner.to_string());
            }
            domains.push(domain);
            self.company_contacts.push((id, Vec::new()));
            self.store
                .table_mut(ObjectType::Companies)
                .live
                .insert(id, record);
        }
    }

    fn contacts(&mut self, n: usize) {
        let mut emails: Vec<String> = Vec::with_capacity(n);
        let mut seen = HashSet::with_capacity(n);
        for i in 0..n {
            let id = self.next_id(ObjectType::Contacts);
            let first = *self.pick(&FIRST);
            let last = *self.pick(&LAST);
            let company = if !self.company_contacts.is_empty() && self.chance(90) {
                Some(self.rng.usize(0..self.company_contacts.len()))
            } else {
                None
            };
            let domain = match company {
                Some(c) => {
                    let company_id = self.company_contacts[c].0;
                    let schema = self.store.schema(ObjectType::Companies);
                    let record = &self.store.table(ObjectType::Companies).live[&company_id];
                    record
                        .props
                        .get(schema.id("domain").expect("companies have a domain"))
                        .unwrap_or("example.org")
                        .to_owned()
                }
                None => "gmail.com".to_owned(),
            };
            let email = if i > 3 && self.chance(3) {
                // The same person entered twice.
                emails[self.rng.usize(0..emails.len())].clone()
            } else {
                let mut email =
                    format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase());
                let mut suffix = 2;
                while seen.contains(&email) {
                    email = format!(
                        "{}.{}{suffix}@{domain}",
                        first.to_lowercase(),
                        last.to_lowercase()
                    );
                    suffix += 1;
                }
                email
            };
            seen.insert(email.clone());
            let (created, modified) = self.lifetime(1, 700);
            let stage = self.lifecycle([10, 30, 15, 12, 10, 15, 3, 5]);
            let owner = match stage {
                "salesqualifiedlead" | "opportunity" => self.owner_in(SALES),
                "customer" => self.owner_in(SUCCESS),
                "evangelist" => self.owner_in(ACCOUNTS),
                _ => self.owner_in(MARKETING),
            };
            let owner = if self.chance(5) { None } else { owner };
            let with_stage = self.chance(95);
            let source = self.pick(&ANALYTICS_SOURCES).0;
            let phone = format!("+1 555 {:04}", self.rng.u32(0..10_000));
            let title = *self.pick(&[
                "CFO",
                "Head of Sales",
                "Operations Manager",
                "CTO",
                "Analyst",
            ]);
            let schema = self.store.schema(ObjectType::Contacts);
            let mut record = Record::new(id, created);
            record.updated_ms = modified;
            put(schema, &mut record, "firstname", first);
            put(schema, &mut record, "lastname", last);
            put(schema, &mut record, "email", &email);
            put(schema, &mut record, "phone", &phone);
            put(schema, &mut record, "jobtitle", title);
            put(schema, &mut record, "hs_analytics_source", source);
            if with_stage {
                put(schema, &mut record, "lifecyclestage", stage);
            }
            if let Some(owner) = owner {
                put(schema, &mut record, "hubspot_owner_id", &owner.to_string());
            }
            self.contact_names.insert(id, format!("{first} {last}"));
            emails.push(email);
            self.store
                .table_mut(ObjectType::Contacts)
                .live
                .insert(id, record);
            if let Some(c) = company {
                let company_id = self.company_contacts[c].0;
                self.company_contacts[c].1.push(id);
                let name = {
                    let schema = self.store.schema(ObjectType::Companies);
                    let company = &self.store.table(ObjectType::Companies).live[&company_id];
                    company
                        .props
                        .get(schema.id("name").expect("companies have a name"))
                        .unwrap_or("")
                        .to_owned()
                };
                let schema = self.store.schemas[ObjectType::Contacts.index()].clone_id("company");
                if let Some(record) = self.store.table_mut(ObjectType::Contacts).live.get_mut(&id) {
                    record.props.set(schema, &name);
                }
                self.store
                    .associate(ObjectType::Contacts, id, ObjectType::Companies, company_id);
            }
        }
    }

    fn deals(&mut self, n: usize) {
        let mut previous_modified: Option<i64> = None;
        for i in 0..n {
            let modified = self.deal(i, previous_modified);
            previous_modified = Some(modified);
        }
    }

    /// Seeds one deal; returns its modification time.
    fn deal(&mut self, i: usize, previous_modified: Option<i64>) -> i64 {
        let id = self.next_id(ObjectType::Deals);
        let profile = profile(self.rng.u32(0..100));
        let weights = [14u32, 14, 12, 10, 8, 26, 16];
        let mut stage = {
            let mut roll = self.rng.u32(0..weights.iter().sum());
            let mut chosen = 0;
            for (s, w) in weights.iter().enumerate() {
                if roll < *w {
                    chosen = s;
                    break;
                }
                roll -= w;
            }
            chosen
        };
        match profile {
            Profile::ExitUnmet => stage = self.rng.usize(2..=5),
            Profile::HandoffMissing => stage = 5,
            Profile::BigNoSponsor => stage = self.rng.usize(2..=4),
            Profile::SkippedStage => stage = self.rng.usize(2..=5),
            Profile::Stalled => stage = self.rng.usize(0..=5),
            _ => {}
        }
        // The stages reached, in order.
        let mut path: Vec<usize> = match stage {
            6 => {
                let lost_after = self.rng.usize(0..=4);
                (0..=lost_after).chain([6]).collect()
            }
            s => (0..=s).collect(),
        };
        if profile == Profile::SkippedStage && path.len() >= 3 {
            let skipped = self.rng.usize(1..path.len() - 1);
            path.remove(skipped);
        }
        let days_in_stage = if profile == Profile::Stalled {
            max_days(stage) + self.rng.i64(5..150)
        } else {
            self.rng.i64(0..(max_days(stage) / 2).max(1))
        };
        let mut entered = vec![0i64; path.len()];
        let last = path.len() - 1;
        entered[last] = self.now - days_in_stage * DAY - self.rng.i64(0..DAY);
        for k in (0..last).rev() {
            entered[k] = entered[k + 1] - self.rng.i64(2..25) * DAY - self.rng.i64(0..DAY);
        }
        let created = entered[0] - self.rng.i64(0..3 * HOUR);
        let last_entered = entered[last];
        let mut modified = last_entered + self.rng.i64(0..=((self.now - last_entered) / 2).max(0));
        if i % 9 == 4 {
            self.tie_pending = true;
        }
        if self.tie_pending
            && let Some(previous) = previous_modified
            && previous >= last_entered
        {
            // A deliberate tie with the previous deal, to the millisecond.
            modified = previous;
            self.tie_pending = false;
        }

        let company = (!self.company_contacts.is_empty())
            .then(|| self.rng.usize(0..self.company_contacts.len()));
        let company_id = company.map(|c| self.company_contacts[c].0);
        let contacts: Vec<u64> = match company {
            Some(c) if !self.company_contacts[c].1.is_empty() => {
                let pool = self.company_contacts[c].1.clone();
                let take = self.rng.usize(1..=pool.len().min(3));
                pool[..take].to_vec()
            }
            _ => Vec::new(),
        };
        let company_name = company_id
            .map(|c| {
                let schema = self.store.schema(ObjectType::Companies);
                let record = &self.store.table(ObjectType::Companies).live[&c];
                record
                    .props
                    .get(schema.id("name").expect("companies have a name"))
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_else(|| "Unnamed prospect".to_owned());
        let product = *self.pick(&PRODUCTS);
        let big = self.chance(10) || profile == Profile::BigNoSponsor;
        let amount = if big {
            self.rng.i64(200..800) * 500
        } else {
            self.rng.i64(10..180) * 500
        };
        let has_amount = stage >= 1 || self.chance(50);
        let currency = *self.pick(&[
            "USD", "USD", "USD", "USD", "USD", "USD", "USD", "EUR", "EUR", "GBP",
        ]);
        let source = self.pick(&ANALYTICS_SOURCES).0;
        let role_team = if stage == 5 { ONBOARDING } else { SALES };
        let owner = match profile {
            Profile::MissingOwner => None,
            Profile::ArchivedOwner if !self.archived_owners.is_empty() => {
                Some(self.archived_owners[self.rng.usize(0..self.archived_owners.len())])
            }
            Profile::WrongTeam => {
                let wrong = if stage == 5 {
                    SALES
                } else {
                    *self.pick(&[MARKETING, SUCCESS, ACCOUNTS])
                };
                self.owner_in(wrong)
            }
            _ => self.owner_in(role_team),
        };
        let contact_name = contacts
            .first()
            .and_then(|c| self.contact_names.get(c).cloned())
            .unwrap_or_else(|| format!("{} {}", self.pick(&FIRST), self.pick(&LAST)));
        let sponsor = format!("{} {}", self.pick(&FIRST), self.pick(&LAST));
        let champion = contacts
            .last()
            .and_then(|c| self.contact_names.get(c).cloned())
            .unwrap_or_else(|| contact_name.clone());
        let pain = *self.pick(&PAINS);
        let criteria = *self.pick(&CRITERIA);
        let coin: [bool; 12] = std::array::from_fn(|_| self.rng.bool());
        let with_source = self.chance(92);
        let with_close = self.chance(80);
        let close_in = self.rng.i64(7..120) * DAY;
        let unmet = self.rng.usize(0..4);
        let handoff_gap = self.rng.usize(0..3);
        let unmapped_stage = self.rng.usize(0..3);
        let users = self.rng.u32(5..400);
        let health = self.rng.u32(35..100);
        let onboarding_task = stage == 5 && self.chance(75);
        let follow_up_task = stage < 5 && self.chance(8);
        let task_owner = self.owner_in(ONBOARDING);

        let schema = self.store.schema(ObjectType::Deals);
        let mut record = Record::new(id, created);
        record.updated_ms = modified;
        let stage_id = DEFAULT_STAGES[stage].0;
        put(
            schema,
            &mut record,
            "dealname",
            &format!("{company_name} - {product}"),
        );
        put(schema, &mut record, "pipeline", "default");
        put(schema, &mut record, "dealstage", stage_id);
        for (k, s) in path.iter().enumerate() {
            put(
                schema,
                &mut record,
                &format!("hs_date_entered_{}", DEFAULT_STAGES[*s].0),
                &clock::iso(entered[k]),
            );
        }
        if has_amount {
            put(schema, &mut record, "amount", &amount.to_string());
        }
        put(schema, &mut record, "deal_currency_code", currency);
        if with_source {
            put(schema, &mut record, "hs_analytics_source", source);
        }
        if let Some(owner) = owner {
            put(schema, &mut record, "hubspot_owner_id", &owner.to_string());
        }
        if stage >= 5 {
            put(schema, &mut record, "closedate", &clock::iso(last_entered));
        } else if with_close {
            put(
                schema,
                &mut record,
                "closedate",
                &clock::iso(self.now + close_in),
            );
        }
        // Consideration's exit criteria hold once a deal is past it.
        let discovery = entered[0] + (entered.get(1).copied().unwrap_or(self.now) - entered[0]) / 2;
        let past_consideration = (2..=5).contains(&stage);
        if past_consideration || coin[0] {
            put(schema, &mut record, "pain_points", pain);
        }
        if past_consideration || coin[1] {
            put(
                schema,
                &mut record,
                "discovery_call_date",
                &clock::date(discovery),
            );
        }
        // Decision's exit criteria hold once a deal is won.
        let won = stage == 5;
        let deciding = (2..=4).contains(&stage);
        if won || (deciding && coin[2]) {
            put(schema, &mut record, "decision_maker_contact", &contact_name);
        }
        if won || (deciding && coin[3]) {
            put(
                schema,
                &mut record,
                "budget_approved",
                if won || coin[4] { "true" } else { "false" },
            );
        }
        if won || (deciding && coin[5]) {
            put(schema, &mut record, "success_criteria", criteria);
        }
        if (big && past_consideration) || (coin[6] && coin[7]) {
            put(schema, &mut record, "executive_sponsor", &sponsor);
        }
        if won {
            let days_won = (self.now - last_entered) / DAY;
            if days_won > 5 || coin[8] {
                put(
                    schema,
                    &mut record,
                    "kickoff_meeting_date",
                    &clock::date(last_entered + 4 * DAY),
                );
            }
            if (days_won > 25 && coin[9]) || days_won > 40 {
                put(
                    schema,
                    &mut record,
                    "go_live_date",
                    &clock::date(last_entered + 24 * DAY),
                );
            }
            if days_won > 20 {
                put(
                    schema,
                    &mut record,
                    "weekly_active_users",
                    &users.to_string(),
                );
                put(
                    schema,
                    &mut record,
                    "customer_health_score",
                    &health.to_string(),
                );
                put(schema, &mut record, "champion_contact", &champion);
            }
            if days_won > 20 && coin[10] {
                put(
                    schema,
                    &mut record,
                    "success_criteria_met",
                    if health >= 70 { "true" } else { "false" },
                );
            }
            if days_won > 25 && coin[11] {
                put(
                    schema,
                    &mut record,
                    "expansion_opportunity",
                    "Add the analytics add-on for a second team",
                );
            }
        }
        match profile {
            Profile::ExitUnmet => match unmet {
                0 => clear(schema, &mut record, "pain_points"),
                1 => clear(schema, &mut record, "discovery_call_date"),
                2 if won => put(schema, &mut record, "budget_approved", "false"),
                _ if won => clear(schema, &mut record, "success_criteria"),
                _ => clear(schema, &mut record, "pain_points"),
            },
            Profile::HandoffMissing => {
                let field =
                    ["success_criteria", "decision_maker_contact", "closedate"][handoff_gap];
                clear(schema, &mut record, field);
            }
            Profile::BigNoSponsor => clear(schema, &mut record, "executive_sponsor"),
            Profile::Unmapped => {
                let (renewal_stage, _, _, _) = RENEWALS.1[unmapped_stage];
                put(schema, &mut record, "pipeline", RENEWALS.0);
                put(schema, &mut record, "dealstage", renewal_stage);
                put(
                    schema,
                    &mut record,
                    &format!("hs_date_entered_{renewal_stage}"),
                    &clock::iso(last_entered),
                );
            }
            _ => {}
        }
        let dealname = format!("{company_name} - {product}");
        self.store
            .table_mut(ObjectType::Deals)
            .live
            .insert(id, record);
        if let Some(company) = company_id
            && !(profile == Profile::ExitUnmet && unmet == 3 && !won)
        {
            self.store
                .associate(ObjectType::Deals, id, ObjectType::Companies, company);
        }
        for contact in &contacts {
            self.store
                .associate(ObjectType::Deals, id, ObjectType::Contacts, *contact);
        }
        if onboarding_task && profile != Profile::Unmapped {
            let due = last_entered + 3 * DAY;
            let status = if self.now - last_entered > 10 * DAY {
                "COMPLETED"
            } else {
                "NOT_STARTED"
            };
            self.task(
                &format!("Onboarding kickoff: {dealname}"),
                "Schedule the kickoff call and share the onboarding plan.",
                status,
                due,
                task_owner.or(owner),
                (last_entered + HOUR).min(self.now),
                id,
                contacts.first().copied(),
            );
        }
        if follow_up_task {
            let due = (last_entered + 5 * DAY).min(self.now + 5 * DAY);
            self.task(
                &format!("Follow up: {dealname}"),
                "Check in after the last meeting.",
                "NOT_STARTED",
                due,
                owner,
                (last_entered + HOUR).min(self.now),
                id,
                None,
            );
        }
        modified
    }

    #[expect(clippy::too_many_arguments, reason = "one seeded task, spelled out")]
    fn task(
        &mut self,
        subject: &str,
        body: &str,
        status: &str,
        due: i64,
        owner: Option<u64>,
        created: i64,
        deal: u64,
        contact: Option<u64>,
    ) {
        let id = self.next_id(ObjectType::Tasks);
        let modified = created + self.rng.i64(0..=((self.now - created) / 3).max(0));
        let priority = *self.pick(&["MEDIUM", "HIGH", "LOW"]);
        let schema = self.store.schema(ObjectType::Tasks);
        let mut record = Record::new(id, created);
        record.updated_ms = modified;
        put(schema, &mut record, "hs_task_subject", subject);
        put(schema, &mut record, "hs_task_body", body);
        put(schema, &mut record, "hs_task_status", status);
        put(schema, &mut record, "hs_task_priority", priority);
        put(schema, &mut record, "hs_task_type", "TODO");
        put(schema, &mut record, "hs_timestamp", &clock::iso(due));
        if let Some(owner) = owner {
            put(schema, &mut record, "hubspot_owner_id", &owner.to_string());
        }
        self.store
            .table_mut(ObjectType::Tasks)
            .live
            .insert(id, record);
        self.store
            .associate(ObjectType::Tasks, id, ObjectType::Deals, deal);
        if let Some(contact) = contact {
            self.store
                .associate(ObjectType::Tasks, id, ObjectType::Contacts, contact);
        }
    }
}

impl Schema {
    fn clone_id(&self, name: &str) -> PropId {
        self.id(name)
            .unwrap_or_else(|| panic!("seeded property {name} is in the schema"))
    }
}
