//! The deterministic seeded org: two business units; the application user
//! the app acts as (non-interactive), people, and one disabled user who
//! still owns records; five owner teams with members (the names the shipped
//! config maps); accounts across the custom customer stage; contacts;
//! leads across their status reasons; opportunities across sales stages
//! and states, some owned by a team or the disabled user, some missing
//! exit-criteria columns; and tasks regarding opportunities and accounts.

use super::cell::{Cell, DAY_MS, Guid, days_of, text};
use super::clock::Clock;
use super::config::EmulatorConfig;
use super::store::Store;
use super::table::{self, CUSTOMER_STAGES, LEAD_STATUSES, ODD_STAGE_VALUE, SALES_STAGES, Table};
use std::sync::Arc;

/// The owner teams, as the shipped config's `roles.teams` names them.
pub(crate) const TEAMS: [&str; 5] = [
    "Marketing",
    "Sales",
    "Onboarding",
    "Customer Success",
    "Account Management",
];

/// A user the shipped config maps by id.
const KNOWN_USER: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";

const FIRST: [&str; 10] = [
    "Ann", "Raj", "Mia", "Tom", "Lea", "Sam", "Ida", "Max", "Noor", "Eli",
];
const LAST: [&str; 10] = [
    "Lee", "Patel", "Schmidt", "Berg", "Costa", "Ito", "Kahn", "Ruiz", "Okafor", "Dahl",
];

/// A row under construction, its cells set by column name.
struct Builder {
    table: Table,
    cells: Vec<Cell>,
}

impl Builder {
    fn new(table: Table) -> Self {
        Self {
            table,
            cells: vec![Cell::Null; table.columns().len()],
        }
    }

    fn set(mut self, column: &str, cell: Cell) -> Self {
        self.cells[table::at(self.table, column)] = cell;
        self
    }
}

/// What the seed hands back besides the store: the application user.
pub(crate) struct Seeded {
    pub store: Store,
    pub application_user: Guid,
}

pub(crate) fn seed(config: &EmulatorConfig) -> Seeded {
    let mut store = Store::new(Clock::new(config.now), config.seed);
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let now = config.now.timestamp_millis();
    let sizes = config.sizes;
    let today = days_of(now);
    let ago =
        |rng: &mut fastrand::Rng, max_days: i64| now - rng.i64(DAY_MS..max_days.max(2) * DAY_MS);
    let shared = |s: &str| Cell::Text(Arc::from(s));

    let root_unit = Guid::random(&mut rng);
    let sales_unit = Guid::random(&mut rng);
    store
        .business_units
        .insert(root_unit, Arc::from("journeyd-org"));
    store
        .business_units
        .insert(sales_unit, Arc::from("Sales Europe"));
    let long_ago = now - 400 * DAY_MS;

    // Users: the application user first; then people (the second is the
    // one the shipped config maps by id, the third Mia Schmidt, whom it
    // maps by email); the last one is disabled.
    let application_user = Guid::random(&mut rng);
    store.insert_at(
        Table::SystemUser,
        application_user,
        Builder::new(Table::SystemUser)
            .set("fullname", text("# journeyd"))
            .set(
                "internalemailaddress",
                text("journeyd@emulated.onmicrosoft.com"),
            )
            .set("isdisabled", Cell::Bool(false))
            .set("accessmode", Cell::Int(4))
            .set("_businessunitid_value", Cell::Guid(root_unit))
            .cells,
        long_ago,
    );
    let people = sizes.users.max(2);
    let mut users = Vec::new();
    for i in 0..=people {
        let disabled = i == people;
        let key = if i == 0 {
            Guid::parse(KNOWN_USER).unwrap_or_else(|| Guid::random(&mut rng))
        } else {
            Guid::random(&mut rng)
        };
        let (first, last) = (FIRST[(i + 1) % 10], LAST[(i + 1 + i / 10) % 10]);
        let email = if i == 1 {
            "mia.schmidt@example.com".to_owned()
        } else {
            format!(
                "{}.{}{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            )
        };
        let (first, last) = if i == 1 {
            ("Mia", "Schmidt")
        } else {
            (first, last)
        };
        store.insert_at(
            Table::SystemUser,
            key,
            Builder::new(Table::SystemUser)
                .set("fullname", text(&format!("{first} {last}")))
                .set("internalemailaddress", text(&email))
                .set("isdisabled", Cell::Bool(disabled))
                .set("accessmode", Cell::Int(0))
                .set(
                    "_businessunitid_value",
                    Cell::Guid(if i % 3 == 2 { sales_unit } else { root_unit }),
                )
                .cells,
            long_ago + i as i64 * DAY_MS,
        );
        users.push(key);
    }
    let disabled = users.pop().unwrap_or(application_user);

    // Owner teams, each with members (every person in one team; the known
    // user in two).
    let mut teams = Vec::new();
    for i in 0..sizes.teams {
        let key = Guid::random(&mut rng);
        let name = TEAMS
            .get(i)
            .map(|n| (*n).to_owned())
            .unwrap_or_else(|| format!("Team {}", i + 1));
        store.insert_at(
            Table::Team,
            key,
            Builder::new(Table::Team)
                .set("name", text(&name))
                .set("teamtype", Cell::Int(0))
                .set("_businessunitid_value", Cell::Guid(root_unit))
                .cells,
            long_ago,
        );
        teams.push(key);
    }
    for (i, user) in users.iter().enumerate() {
        if let Some(team) = teams.get(i % teams.len().max(1)) {
            store.team_members.entry(*team).or_default().push(*user);
        }
    }
    if let (Some(sales), Some(known)) = (teams.get(1), users.first()) {
        let members = store.team_members.entry(*sales).or_default();
        if !members.contains(known) {
            members.push(*known);
        }
    }
    let user_ref =
        |rng: &mut fastrand::Rng| Cell::Ref(Table::SystemUser, users[rng.usize(0..users.len())]);

    let mut accounts = Vec::new();
    for i in 0..sizes.accounts {
        let at = ago(&mut rng, 300);
        let key = Guid::random(&mut rng);
        let kickoff = today - 200 + (i % 90) as i32;
        let stage = if i % 5 == 4 {
            Cell::Null
        } else {
            Cell::Int(CUSTOMER_STAGES[i % 4].0)
        };
        let owner = if i % 6 == 5 {
            Cell::Ref(Table::Team, teams[(2 + i) % teams.len().max(1)])
        } else {
            user_ref(&mut rng)
        };
        store.insert_at(
            Table::Account,
            key,
            Builder::new(Table::Account)
                .set("name", text(&format!("{} {} Ltd", LAST[i % 10], i)))
                .set("accountnumber", text(&format!("AC-{i:06}")))
                .set(
                    "websiteurl",
                    text(&format!("https://account{i}.example.com")),
                )
                .set("_ownerid_value", owner)
                .set("new_customerstage", stage)
                .set(
                    "new_kickoffdate",
                    if i % 3 != 2 {
                        Cell::Date(kickoff)
                    } else {
                        Cell::Null
                    },
                )
                .set(
                    "new_golivedate",
                    if i % 4 != 3 {
                        Cell::Date(kickoff + 30)
                    } else {
                        Cell::Null
                    },
                )
                .set(
                    "new_renewalquotedate",
                    if i % 4 == 2 {
                        Cell::Date(today - 20)
                    } else {
                        Cell::Null
                    },
                )
                .set(
                    "new_renewalsigneddate",
                    if i % 8 == 2 {
                        Cell::Date(today - 5)
                    } else {
                        Cell::Null
                    },
                )
                .set(
                    "new_activeusers",
                    if i % 6 != 5 {
                        Cell::Int(rng.i64(0..400))
                    } else {
                        Cell::Null
                    },
                )
                .set(
                    "new_healthscore",
                    if i % 7 != 6 {
                        Cell::Int(rng.i64(20..100))
                    } else {
                        Cell::Null
                    },
                )
                .set("new_successcriteriamet", Cell::Bool(i % 3 == 0))
                .set(
                    "new_expansionopportunity",
                    if i % 4 == 3 {
                        Cell::Bool(true)
                    } else {
                        Cell::Null
                    },
                )
                .set(
                    "new_champion",
                    if i % 4 != 0 {
                        text(&format!("Champion {i}"))
                    } else {
                        Cell::Null
                    },
                )
                .cells,
            at,
        );
        accounts.push(key);
    }

    let mut contacts = Vec::new();
    let mut previous_email = String::new();
    for i in 0..sizes.contacts {
        let at = ago(&mut rng, 200);
        let key = Guid::random(&mut rng);
        let email = if i % 7 == 6 {
            previous_email.clone()
        } else {
            format!("contact{i}@example.com")
        };
        previous_email.clone_from(&email);
        let (first, last) = (FIRST[i % 10], format!("{} {i}", LAST[(i / 10) % 10]));
        store.insert_at(
            Table::Contact,
            key,
            Builder::new(Table::Contact)
                .set("fullname", text(&format!("{first} {last}")))
                .set("firstname", shared(first))
                .set("lastname", text(&last))
                .set("emailaddress1", text(&email))
                .set(
                    "_parentcustomerid_value",
                    match accounts.get(i % accounts.len().max(1)) {
                        Some(a) if i % 9 != 8 => Cell::Ref(Table::Account, *a),
                        _ => Cell::Null,
                    },
                )
                .set("_ownerid_value", user_ref(&mut rng))
                .cells,
            at,
        );
        contacts.push(key);
    }

    for i in 0..sizes.leads {
        let at = ago(&mut rng, 120);
        let key = Guid::random(&mut rng);
        let (status, _, state) = LEAD_STATUSES[i % LEAD_STATUSES.len()];
        let first = FIRST[(i + 3) % 10];
        let last = format!("Prospect {i}");
        let company = format!("Prospect Co {}", i % 9);
        let owner = if i % 8 == 7 {
            Cell::Ref(Table::Team, teams[0])
        } else {
            user_ref(&mut rng)
        };
        store.insert_at(
            Table::Lead,
            key,
            Builder::new(Table::Lead)
                .set("fullname", text(&format!("{first} {last}")))
                .set("firstname", shared(first))
                .set("lastname", text(&last))
                .set("companyname", text(&company))
                .set(
                    "emailaddress1",
                    if i % 10 != 9 {
                        text(&format!("lead{i}@prospect{}.example.com", i % 9))
                    } else {
                        Cell::Null
                    },
                )
                .set("subject", text(&format!("Interest from {company}")))
                .set(
                    "leadsourcecode",
                    if i % 4 == 3 {
                        Cell::Null
                    } else {
                        Cell::Int([8, 4, 7][i % 3])
                    },
                )
                .set("statecode", Cell::Int(state))
                .set("statuscode", Cell::Int(status))
                .set("_ownerid_value", owner)
                .set(
                    "_parentaccountid_value",
                    match accounts.get(i % accounts.len().max(1)) {
                        Some(a) if state == 1 => Cell::Ref(Table::Account, *a),
                        _ => Cell::Null,
                    },
                )
                .cells,
            at,
        );
    }

    // Opportunities: stages in turn; every sixth won, every eleventh lost;
    // every ninth owned by a team and every thirteenth by the disabled user.
    let pains = shared("Manual reporting takes days");
    let criteria = shared("Board reports ready by month end");
    let sponsor = shared("VP Operations");
    let odd_stage = config.odd_stage.as_deref().map(Arc::<str>::from);
    store.odd_stage.clone_from(&odd_stage);
    let total = sizes.opportunities + usize::from(odd_stage.is_some());
    let mut won = Vec::new();
    let mut open = Vec::new();
    for i in 0..total {
        let odd = i == sizes.opportunities;
        let key = Guid::random(&mut rng);
        let at = ago(&mut rng, 90);
        let created = at - rng.i64(1..60) * DAY_MS;
        let (state, status, stage) = if odd {
            (0, 2, ODD_STAGE_VALUE)
        } else if i % 6 == 5 {
            (1, 3, 3)
        } else if i % 11 == 10 {
            (2, [4, 5][i % 2], (i % 4) as i64)
        } else {
            (0, if i % 10 == 7 { 2 } else { 1 }, (i % 4) as i64)
        };
        let step = match SALES_STAGES.iter().find(|(v, _)| *v == stage) {
            Some((v, label)) => text(&format!("{}-{label}", v + 1)),
            None => Cell::Null,
        };
        let owner = if i % 9 == 8 {
            Cell::Ref(Table::Team, teams[1 % teams.len().max(1)])
        } else if i % 13 == 12 {
            Cell::Ref(Table::SystemUser, disabled)
        } else {
            user_ref(&mut rng)
        };
        let name = match &odd_stage {
            Some(label) if odd => format!("O'Neil Freight ({label})"),
            _ => format!(
                "{} {} deal {i}",
                LAST[i % 10],
                ["renewal", "new business", "upsell"][i % 3]
            ),
        };
        // Past Qualify most exit-criteria columns are filled, with gaps.
        let past = stage >= 1;
        let late = stage >= 2;
        let row = Builder::new(Table::Opportunity)
            .set("name", text(&name))
            .set("_ownerid_value", owner)
            .set(
                "_parentaccountid_value",
                match accounts.get(i % accounts.len().max(1)) {
                    Some(a) if i % 17 != 16 => Cell::Ref(Table::Account, *a),
                    _ => Cell::Null,
                },
            )
            .set(
                "_parentcontactid_value",
                match contacts.get((i * 2) % contacts.len().max(1)) {
                    Some(c) if i % 5 != 4 => Cell::Ref(Table::Contact, *c),
                    _ => Cell::Null,
                },
            )
            .set(
                "estimatedvalue",
                if i % 12 == 11 {
                    Cell::Null
                } else {
                    Cell::Dec((rng.u32(5..500) * 1000) as f64)
                },
            )
            .set(
                "estimatedclosedate",
                if late && i % 8 == 7 {
                    Cell::Null
                } else {
                    Cell::Date(today + rng.i32(-60..90))
                },
            )
            .set("salesstage", Cell::Int(stage))
            .set("stepname", step)
            .set("statecode", Cell::Int(state))
            .set("statuscode", Cell::Int(status))
            .set(
                "customerpainpoints",
                if past && i % 5 != 0 {
                    pains.clone()
                } else {
                    Cell::Null
                },
            )
            .set(
                "decisionmaker",
                if late {
                    Cell::Bool(i % 4 != 0)
                } else {
                    Cell::Null
                },
            )
            .set(
                "new_discoverycalldate",
                if past && i % 7 != 3 {
                    Cell::Date(days_of(created) + 3)
                } else {
                    Cell::Null
                },
            )
            .set(
                "new_kickoffdate",
                if state == 1 && i % 3 != 0 {
                    Cell::Date(today - 10)
                } else {
                    Cell::Null
                },
            )
            .set(
                "new_golivedate",
                if state == 1 && i % 3 == 1 {
                    Cell::Date(today + 20)
                } else {
                    Cell::Null
                },
            )
            .set(
                "new_budgetconfirmed",
                if late {
                    Cell::Bool(i % 6 != 2)
                } else {
                    Cell::Null
                },
            )
            .set(
                "new_successcriteria",
                if late && i % 7 != 0 {
                    criteria.clone()
                } else {
                    Cell::Null
                },
            )
            .set(
                "new_executivesponsor",
                if late && i % 3 != 0 {
                    sponsor.clone()
                } else {
                    Cell::Null
                },
            )
            .set("createdon", Cell::Time(created));
        store.insert_at(Table::Opportunity, key, row.cells, at);
        if state == 1 {
            won.push(key);
        } else if state == 0 {
            open.push(key);
        }
    }

    // Tasks: three of four won opportunities have an onboarding kickoff
    // (some completed); every fifth open one a follow-up; every fourth
    // account a business review.
    let follow_up = shared("Follow up");
    let kickoff = shared("Onboarding kickoff");
    let review = shared("Quarterly business review");
    let task =
        |store: &mut Store, rng: &mut fastrand::Rng, subject: &Cell, regarding: Cell, k: usize| {
            let at = ago(rng, 30);
            let key = Guid::random(rng);
            let (status, state) = [(2, 0), (3, 0), (5, 1), (2, 0), (6, 2)][k % 5];
            store.insert_at(
                Table::Task,
                key,
                Builder::new(Table::Task)
                    .set("subject", subject.clone())
                    .set(
                        "description",
                        if k.is_multiple_of(2) {
                            text(&format!("Seeded task {k}"))
                        } else {
                            Cell::Null
                        },
                    )
                    .set("scheduledend", Cell::Time(at + 7 * DAY_MS))
                    .set("prioritycode", Cell::Int((k % 3) as i64))
                    .set("statecode", Cell::Int(state))
                    .set("statuscode", Cell::Int(status))
                    .set("_regardingobjectid_value", regarding)
                    .set(
                        "_ownerid_value",
                        Cell::Ref(Table::SystemUser, users[k % users.len()]),
                    )
                    .cells,
                at,
            );
        };
    let mut k = 0;
    for opp in won
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 4 != 3)
        .map(|(_, o)| o)
    {
        task(
            &mut store,
            &mut rng,
            &kickoff,
            Cell::Ref(Table::Opportunity, *opp),
            k,
        );
        k += 1;
    }
    for opp in open.iter().step_by(5) {
        task(
            &mut store,
            &mut rng,
            &follow_up,
            Cell::Ref(Table::Opportunity, *opp),
            k,
        );
        k += 1;
    }
    for account in accounts.iter().step_by(4) {
        task(
            &mut store,
            &mut rng,
            &review,
            Cell::Ref(Table::Account, *account),
            k,
        );
        k += 1;
    }
    Seeded {
        store,
        application_user,
    }
}
