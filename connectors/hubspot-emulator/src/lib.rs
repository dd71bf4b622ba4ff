//! A loopback emulator of the HubSpot CRM API, built from the published API
//! facts (`EMULATOR.md` in this crate lists each behaviour and its source),
//! a crate of its own that shares no code with the client crate
//! `journeyd-hubspot`: the compiler keeps the two apart.
//!
//! Map of the crate:
//! - [`config`]: [`EmulatorConfig`] and its knobs;
//! - `object`: object types, property definitions, association type ids;
//! - `store`: the in-memory records, owners and pipelines, and writes;
//! - `seed`: the deterministic seeded portal;
//! - `clock`: the emulator's clock and HubSpot's date formats;
//! - `auth`: private app token, OAuth token endpoint, 401s;
//! - `limits`: the 10-second, per-second search and daily limits;
//! - `reply`: error bodies, 429 shapes, injected fault replies;
//! - `router`: routes and the auth/limit guard; `objects`, `search`,
//!   `batch`, `associations`, `metadata`: the handlers.
//!
//! Every request passes the contract's harness first (counting, then
//! injected faults), then the guard, then its handler.

mod associations;
mod auth;
mod batch;
mod clock;
pub mod config;
mod limits;
mod metadata;
mod object;
mod objects;
mod reply;
mod router;
mod search;
mod seed;
mod store;

pub use config::{
    ClockMode, Credentials, EmulatorConfig, Knobs, ListKnobs, MissingInUpdate, OverMax,
    RateLimitKnobs, SearchKnobs, SeedSizes, TieOrder,
};
pub use object::ObjectType;
pub use search::LoggedSearch;

use auth::Tokens;
use chrono::{DateTime, Utc};
use journeyd_connector::emulator::{EmulatorServer, Faults, RequestCounts, instrument};
use limits::Limiter;
use router::{BatchFaults, Shared, TOKEN_PATH};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use url::Url;

/// A record as the emulator holds it, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedRecord {
    pub id: String,
    /// Every property with a value, the computed ones included.
    pub properties: BTreeMap<String, String>,
    /// Associated record ids by object type.
    pub associations: BTreeMap<ObjectType, Vec<String>>,
    pub archived: bool,
}

/// A task the emulator holds.
pub type EmulatedTask = EmulatedRecord;

/// A control call named a record or property the emulator does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("emulated {object} has no live record {id}")]
    UnknownRecord { object: ObjectType, id: String },
    #[error("emulated {object} have no property {name}")]
    UnknownProperty { object: ObjectType, name: String },
}

/// A running HubSpot emulator on `127.0.0.1`. Stops when dropped.
pub struct HubspotEmulator {
    server: EmulatorServer,
    shared: Arc<Shared>,
    counts: RequestCounts,
    faults: Faults,
}

impl HubspotEmulator {
    /// Seeds the portal and serves it on its own thread and runtime; works
    /// from any caller (any tokio runtime, or none).
    pub fn start(config: EmulatorConfig) -> io::Result<Self> {
        Self::launch(config, EmulatorServer::start)
    }

    /// As [`Self::start`], but served on `runtime` (so that injected delays
    /// follow a paused test clock).
    pub fn start_on(config: EmulatorConfig, runtime: &tokio::runtime::Handle) -> io::Result<Self> {
        Self::launch(config, |router| EmulatorServer::start_on(router, runtime))
    }

    fn launch(
        config: EmulatorConfig,
        serve: impl FnOnce(axum::Router) -> io::Result<EmulatorServer>,
    ) -> io::Result<Self> {
        let mut store = seed::seed(&config);
        store.set_search_lag(config.knobs.search_lag);
        let shared = Arc::new(Shared {
            store: RwLock::new(store),
            knobs: RwLock::new(config.knobs.clone()),
            tokens: Mutex::new(Tokens::new(config.credentials.clone(), config.seed)),
            limiter: Mutex::new(Limiter::default()),
            batch: Mutex::new(BatchFaults::default()),
            search_cache: Mutex::default(),
            search_log: Mutex::default(),
            base_url: OnceLock::new(),
            creates_running: Default::default(),
        });
        let counts = RequestCounts::new();
        let faults = Faults::new(config.seed);
        // Token calls are left out of error injection unless a test asks.
        faults.exempt(TOKEN_PATH);
        let router = instrument(
            router::router(shared.clone()),
            counts.clone(),
            faults.clone(),
            reply::HubspotReplies,
        );
        let server = serve(router)?;
        let _ = shared.base_url.set(server.base_url());
        Ok(Self {
            server,
            shared,
            counts,
            faults,
        })
    }

    /// `http://127.0.0.1:<port>/`: the API base URL.
    pub fn base_url(&self) -> Url {
        self.server.base_url()
    }

    /// `<base>/oauth/v3/token`.
    pub fn token_url(&self) -> Url {
        self.base_url()
            .join(TOKEN_PATH.trim_start_matches('/'))
            .expect("a valid literal path")
    }

    pub fn counts(&self) -> RequestCounts {
        self.counts.clone()
    }

    /// The fault knobs; `/oauth/v3/token` starts out exempt.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    pub fn private_app_token(&self) -> String {
        self.shared.tokens().credentials.private_app_token.clone()
    }

    pub fn oauth_client_id(&self) -> String {
        self.shared.tokens().credentials.client_id.clone()
    }

    pub fn oauth_client_secret(&self) -> String {
        self.shared.tokens().credentials.client_secret.clone()
    }

    /// The refresh token that works now (it changes on each refresh when
    /// refresh tokens rotate).
    pub fn oauth_refresh_token(&self) -> String {
        self.shared.tokens().refresh_token.clone()
    }

    pub fn portal_id(&self) -> u64 {
        self.shared.tokens().credentials.portal_id
    }

    /// Every OAuth access token issued so far expires now.
    pub fn expire_tokens(&self) {
        self.shared.tokens().expire_all();
    }

    /// OAuth access tokens expire once `n` more OAuth calls went through.
    pub fn expire_after_requests(&self, n: u64) {
        self.shared.tokens().expire_after(n);
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.store_mut().set_search_lag(knobs.search_lag);
        *self
            .shared
            .knobs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = knobs;
    }

    /// Changes some knobs in place.
    pub fn update_knobs(&self, change: impl FnOnce(&mut Knobs)) {
        let mut knobs = self.knobs();
        change(&mut knobs);
        self.set_knobs(knobs);
    }

    /// Forgets the calls counted against the request limits.
    pub fn reset_limits(&self) {
        self.shared.limiter().reset();
    }

    /// Modifies `n` live records (deterministically chosen from the seed):
    /// a harmless property changes and the modification time moves to now.
    /// Returns their ids.
    pub fn touch(&self, object: ObjectType, n: usize) -> Vec<String> {
        let mut store = self.shared.store_mut();
        let live = store.table(object).live.len();
        let n = n.min(live);
        let mut picked = std::collections::BTreeSet::new();
        while picked.len() < n {
            let at = store.touch_rng.usize(0..live);
            picked.insert(at);
        }
        let ids: Vec<u64> = {
            let keys = store.table(object).live.keys();
            let mut ids = Vec::with_capacity(n);
            let mut wanted = picked.iter().peekable();
            for (i, id) in keys.enumerate() {
                if wanted.peek() == Some(&&i) {
                    ids.push(*id);
                    wanted.next();
                }
            }
            ids
        };
        let name = match object {
            ObjectType::Deals | ObjectType::Companies => "description",
            ObjectType::Contacts => "jobtitle",
            ObjectType::Tasks => "hs_task_body",
        };
        let prop = store
            .schema(object)
            .id(name)
            .expect("a touched property is in the schema");
        for id in &ids {
            store.touches += 1;
            let value = format!("Reviewed ({})", store.touches);
            store.update(object, *id, &[(prop, value)], false);
        }
        ids.iter().map(u64::to_string).collect()
    }

    /// Sets a property of a live record to `value` as given (no checks, so
    /// tests can plant odd values); an empty value clears it. The
    /// modification time moves to now.
    pub fn set_property(
        &self,
        object: ObjectType,
        id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let prop = store
            .schema(object)
            .id(name)
            .ok_or_else(|| ControlError::UnknownProperty {
                object,
                name: name.to_owned(),
            })?;
        let id = live_id(&store, object, id)?;
        store.lag_search(object, id);
        let now = store.clock.tick();
        let table = store.table_mut(object);
        let record = table.live.get_mut(&id).expect("checked above");
        record.props.set(prop, value);
        record.updated_ms = now;
        table.generation += 1;
        Ok(())
    }

    /// Archives a live record (it leaves lists and searches and appears
    /// with `archived=true`).
    pub fn archive(&self, object: ObjectType, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let id = live_id(&store, object, id)?;
        store.archive(object, id);
        Ok(())
    }

    /// From now on the record is rendered malformed (`createdAt:
    /// "not-a-date"`, a non-string `hs_object_id`); the rest of its page
    /// stays valid.
    pub fn corrupt(&self, object: ObjectType, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let id = live_id(&store, object, id)?;
        store
            .table_mut(object)
            .live
            .get_mut(&id)
            .expect("checked above")
            .corrupt = true;
        Ok(())
    }

    /// The next batch create or update fails its first `n` inputs (207
    /// error rows; nothing of those inputs is written).
    pub fn fail_batch_inputs(&self, n: usize) {
        self.shared.batch().fail_inputs = n;
    }

    /// Batch creates commit, then hold their reply this long (zero: off).
    pub fn hold_batch_create(&self, hold: Duration) {
        self.shared.batch().hold_create = hold;
    }

    /// The next write (a create, update or archive, single or batch) is
    /// carried out, then answered with its status and a body cut short
    /// and garbled.
    pub fn malform_next_write(&self) {
        self.shared.batch().malform_next_write = true;
    }

    /// Someone deletes task `id` in HubSpot: it is archived, as HubSpot
    /// does with a deleted record.
    pub fn delete_task(&self, id: &str) -> Result<(), ControlError> {
        self.archive(ObjectType::Tasks, id)
    }

    /// Batch creates still committing in a task of their own
    /// (`detached_batch_create`), whether or not their client still waits.
    pub fn creates_running(&self) -> usize {
        self.shared
            .creates_running
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long until every write made so far shows in search (zero when
    /// search is current).
    pub fn search_settles_in(&self) -> Duration {
        let store = self.shared.store();
        let now = std::time::Instant::now();
        ObjectType::ALL
            .iter()
            .filter_map(|object| store.table(*object).index().settled_at())
            .max()
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// Every live task.
    pub fn tasks(&self) -> Vec<EmulatedTask> {
        let store = self.shared.store();
        store
            .table(ObjectType::Tasks)
            .live
            .values()
            .map(|record| emulated(&store, ObjectType::Tasks, record))
            .collect()
    }

    /// One record, live or archived.
    pub fn record(&self, object: ObjectType, id: &str) -> Option<EmulatedRecord> {
        let store = self.shared.store();
        let id: u64 = id.parse().ok()?;
        let table = store.table(object);
        let record = table.live.get(&id).or_else(|| table.archived.get(&id))?;
        Some(emulated(&store, object, record))
    }

    /// How many live records of `object` there are.
    pub fn records(&self, object: ObjectType) -> usize {
        self.shared.store().table(object).live.len()
    }

    /// The ids of the live records of `object`, ascending.
    pub fn ids(&self, object: ObjectType) -> Vec<String> {
        let store = self.shared.store();
        store
            .table(object)
            .live
            .keys()
            .map(u64::to_string)
            .collect()
    }

    /// Every search request received (the latest 10,000).
    pub fn search_queries(&self) -> Vec<LoggedSearch> {
        self.shared.search_log().iter().cloned().collect()
    }

    /// The emulator's "now".
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.shared.store().clock.now_ms()).unwrap_or_default()
    }

    /// Moves the emulator's clock; writes stay strictly increasing.
    pub fn set_clock(&self, now: DateTime<Utc>) {
        self.shared.store_mut().clock.set(now);
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn live_id(store: &store::Store, object: ObjectType, id: &str) -> Result<u64, ControlError> {
    id.parse::<u64>()
        .ok()
        .filter(|n| store.table(object).live.contains_key(n))
        .ok_or_else(|| ControlError::UnknownRecord {
            object,
            id: id.to_owned(),
        })
}

fn emulated(store: &store::Store, object: ObjectType, record: &store::Record) -> EmulatedRecord {
    let schema = store.schema(object);
    let properties = (0..schema.defs.len())
        .filter_map(|i| {
            let prop = u16::try_from(i).ok()?;
            let value = record.value(schema, prop)?;
            Some((schema.def(prop).name.clone(), value.into_owned()))
        })
        .collect();
    let mut associations: BTreeMap<ObjectType, Vec<String>> = BTreeMap::new();
    for (to, id) in &record.assoc {
        associations.entry(*to).or_default().push(id.to_string());
    }
    EmulatedRecord {
        id: record.id.to_string(),
        properties,
        associations,
        archived: record.archived_ms.is_some(),
    }
}
