//! A loopback emulator of the Salesforce REST API, built from the published
//! API facts (`EMULATOR.md` in this crate lists each behaviour and its
//! source), a crate of its own that shares no code with the client crate
//! `journeyd-salesforce`: the compiler keeps the two apart.
//!
//! Map of the crate:
//! - [`config`]: [`EmulatorConfig`], its knobs and a throwaway JWT key pair;
//! - `object`: the sObjects, their key prefixes, fields and child
//!   relationships;
//! - `store`: the records, ids, writes, the recycle bin, and the index of
//!   children by parent that sub-queries read;
//! - `seed`: the deterministic seeded org;
//! - `clock`: the emulator's clock and Salesforce's date formats;
//! - `auth`: the token endpoint (JWT bearer, refresh token) and sessions;
//! - `soql`: the SOQL subset's parser and evaluator, sub-queries included;
//! - `write`: the checks a record body meets before it is written;
//! - `reply`: error arrays and injected fault replies;
//! - `router`: routes and the session/version/daily-limit guard; `query`,
//!   `sobjects`, `collections`: the handlers.
//!
//! Every request passes the contract's harness first (counting, then
//! injected faults), then the guard, then its handler.

mod auth;
mod clock;
mod collections;
pub mod config;
mod object;
mod query;
mod reply;
mod router;
mod seed;
mod sobjects;
mod soql;
mod store;
mod write;

pub use config::{
    Credentials, EmulatorConfig, Knobs, SeedSizes, TEST_JWT_PRIVATE_KEY_PEM,
    TEST_JWT_PUBLIC_KEY_PEM,
};
pub use object::SObject;

use auth::Tokens;
use chrono::{DateTime, Utc};
use journeyd_connector::emulator::{EmulatorServer, Faults, RequestCounts, instrument};
use router::{CollectionFaults, Shared, TOKEN_PATH, lock};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use url::Url;

/// A record as the emulator holds it, for tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatedRecord {
    pub id: String,
    pub object: SObject,
    /// Every field with a value, as it goes on the wire.
    pub fields: BTreeMap<String, Value>,
    /// In the recycle bin.
    pub deleted: bool,
}

/// A control call named a record or field the emulator does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("emulated {object} has no live record {id}")]
    UnknownRecord { object: SObject, id: String },
    #[error("emulated {object} has no field {name}")]
    UnknownField { object: SObject, name: String },
}

/// A running Salesforce emulator on `127.0.0.1`: login host and instance
/// host at once. Stops when dropped.
pub struct SalesforceEmulator {
    server: EmulatorServer,
    shared: Arc<Shared>,
    counts: RequestCounts,
    faults: Faults,
}

impl SalesforceEmulator {
    /// Seeds the org and serves it on its own thread and runtime; works
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
        let store = seed::seed(&config);
        let integration_user = store
            .table(SObject::User)
            .keys()
            .next()
            .cloned()
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            store: RwLock::new(store),
            knobs: RwLock::new(config.knobs.clone()),
            tokens: Mutex::new(Tokens::new(config.credentials.clone(), integration_user)),
            used: Mutex::new(0),
            collections: Mutex::new(CollectionFaults::default()),
            in_flight: AtomicUsize::new(0),
            cursors: Mutex::default(),
            queries: Mutex::default(),
            base: OnceLock::new(),
        });
        let counts = RequestCounts::new();
        let faults = Faults::new(config.seed);
        // Token calls are left out of error injection unless a test asks.
        faults.exempt(TOKEN_PATH);
        let router = instrument(
            router::router(shared.clone()),
            counts.clone(),
            faults.clone(),
            reply::SalesforceReplies,
        );
        let server = serve(router)?;
        let base = server.base_url().as_str().trim_end_matches('/').to_owned();
        let _ = shared.base.set(base);
        Ok(Self {
            server,
            shared,
            counts,
            faults,
        })
    }

    /// `http://127.0.0.1:<port>/`: the login host, and the instance host
    /// the token response names (unless the `instance_url` knob says
    /// otherwise).
    pub fn base_url(&self) -> Url {
        self.server.base_url()
    }

    /// `<base>/services/oauth2/token`.
    pub fn token_url(&self) -> Url {
        self.base_url()
            .join(TOKEN_PATH.trim_start_matches('/'))
            .expect("a valid literal path")
    }

    /// The `aud` a JWT assertion must carry (the login URL, no trailing
    /// slash; one with a slash is accepted too).
    pub fn jwt_audience(&self) -> String {
        self.knobs()
            .jwt_audience
            .unwrap_or_else(|| self.shared.base())
    }

    pub fn counts(&self) -> RequestCounts {
        self.counts.clone()
    }

    /// The fault knobs; the token endpoint starts out exempt.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    pub fn client_id(&self) -> String {
        self.shared.tokens().credentials.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.shared.tokens().credentials.client_secret.clone()
    }

    /// The refresh token that works now (it changes on each refresh when
    /// refresh tokens rotate).
    pub fn refresh_token(&self) -> String {
        self.shared.tokens().refresh_token.clone()
    }

    pub fn username(&self) -> String {
        self.shared.tokens().credentials.username.clone()
    }

    /// The public key JWT assertions are verified with.
    pub fn jwt_public_key_pem(&self) -> String {
        self.shared.tokens().credentials.jwt_public_key_pem.clone()
    }

    /// The id of the user the integration runs as (and owns new records).
    pub fn integration_user_id(&self) -> String {
        self.shared.tokens().user_id.clone()
    }

    /// Every access token issued so far expires now.
    pub fn expire_tokens(&self) {
        self.shared.tokens().expire_all();
    }

    /// Access tokens issued so far expire once `n` more authenticated
    /// data calls went through.
    pub fn expire_after_requests(&self, n: u64) {
        self.shared.tokens().expire_after(n);
    }

    /// Every query locator handed out so far expires, as one left idle
    /// past its 15 minutes does (facts 6.11): following its
    /// `nextRecordsUrl` answers 400 `INVALID_QUERY_LOCATOR`. Returns how
    /// many were open.
    pub fn expire_query_locators(&self) -> usize {
        router::lock(&self.shared.cursors).expire_all()
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
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

    /// Sets the daily allocation to `max` metered calls.
    pub fn set_daily_limit(&self, max: u64) {
        self.update_knobs(|k| k.daily_limit = Some(max));
    }

    /// Metered calls used so far, and the allocation (`None`: unlimited).
    pub fn api_usage(&self) -> (u64, Option<u64>) {
        (*lock(&self.shared.used), self.knobs().daily_limit)
    }

    /// Forgets the metered calls (a new day).
    pub fn reset_usage(&self) {
        *lock(&self.shared.used) = 0;
    }

    /// Modifies `n` live records (deterministically chosen): `Description`
    /// changes and `LastModifiedDate`/`SystemModstamp` move to now,
    /// strictly increasing. Returns their ids in the order touched.
    pub fn touch(&self, object: SObject, n: usize) -> Vec<String> {
        let mut store = self.shared.store_mut();
        let live: Vec<String> = store
            .table(object)
            .values()
            .filter(|r| r.deleted_ms.is_none())
            .map(|r| r.id.clone())
            .collect();
        let mut picked = Vec::new();
        let n = n.min(live.len());
        while picked.len() < n {
            let id = &live[store.rng.usize(0..live.len())];
            if !picked.contains(id) {
                picked.push(id.clone());
            }
        }
        let field = ["Description", "Name", "Role"]
            .into_iter()
            .find(|field| object.field(field).is_some())
            .unwrap_or("Name");
        for (k, id) in picked.iter().enumerate() {
            let mut fields = serde_json::Map::new();
            if object != SObject::OpportunityHistory {
                fields.insert(field.into(), Value::String(format!("Reviewed ({k})")));
            }
            store.update(object, id, fields);
        }
        picked
    }

    /// Sets a field of a live record to `value` as given (no checks, so
    /// tests can plant odd values); `Value::Null` clears it. The record's
    /// modification time moves to now.
    pub fn set_field(
        &self,
        object: SObject,
        id: &str,
        field: &str,
        value: Value,
    ) -> Result<(), ControlError> {
        let (name, _) = object
            .field(field)
            .ok_or_else(|| ControlError::UnknownField {
                object,
                name: field.to_owned(),
            })?;
        let mut store = self.shared.store_mut();
        let id = live_id(&store, object, id)?;
        let mut fields = serde_json::Map::new();
        fields.insert(name.to_owned(), value);
        store.update(object, &id, fields);
        Ok(())
    }

    /// Moves a live record to the recycle bin: `IsDeleted` turns true, it
    /// leaves `query`, and shows in `queryAll` and getDeleted.
    pub fn delete(&self, object: SObject, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let id = live_id(&store, object, id)?;
        store.delete(object, &id);
        Ok(())
    }

    /// Empties a deleted record from the recycle bin (a hard delete): it
    /// leaves `queryAll`; getDeleted still lists it within its window.
    pub fn empty_from_recycle_bin(&self, object: SObject, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        if store.empty_from_bin(object, id) {
            Ok(())
        } else {
            Err(ControlError::UnknownRecord {
                object,
                id: id.to_owned(),
            })
        }
    }

    /// Removes a record, live or deleted, without a trace: no query and no
    /// delete log names it again, as with a deletion older than getDeleted's
    /// window or a log Salesforce purged early.
    pub fn erase(&self, object: SObject, id: &str) -> Result<(), ControlError> {
        if self.shared.store_mut().erase(object, id) {
            Ok(())
        } else {
            Err(ControlError::UnknownRecord {
                object,
                id: id.to_owned(),
            })
        }
    }

    /// From now on the record is rendered malformed (`SystemModstamp`,
    /// `LastModifiedDate` and `CreatedDate` read `"not-a-date"`, `Id` is a
    /// number); the rest of its page stays valid.
    pub fn corrupt(&self, object: SObject, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let id = live_id(&store, object, id)?;
        if let Some(record) = store.get_mut(object, &id) {
            record.corrupt = true;
        }
        Ok(())
    }

    /// The next sObject Collections call fails its first `n` records with
    /// a per-row `UNABLE_TO_LOCK_ROW` (nothing of those records written).
    pub fn fail_batch_rows(&self, n: usize) {
        lock(&self.shared.collections).fail_rows = n;
    }

    /// sObject Collections calls that create records commit, then hold
    /// their reply this long (zero: off).
    pub fn hold_collections_create(&self, hold: Duration) {
        lock(&self.shared.collections).hold_create = hold;
    }

    /// The next sObject Collections call is carried out, then answered 200
    /// with a body cut in half and garbled: a reply that proves nothing.
    pub fn malform_next_write(&self) {
        lock(&self.shared.collections).malform_next = true;
    }

    /// Someone in the CRM, the user `by`, creates a record of `object` now,
    /// with `fields` (API names) as given and no other checks: another
    /// user's task, say, that the integration's own lookups must not take
    /// for theirs. Returns its id.
    pub fn create_as(
        &self,
        object: SObject,
        by: &str,
        fields: serde_json::Map<String, Value>,
    ) -> Result<String, ControlError> {
        let mut store = self.shared.store_mut();
        let by = live_id(&store, SObject::User, by)?;
        let mut named = serde_json::Map::new();
        for (field, value) in fields {
            let (name, _) = object.field(&field).ok_or(ControlError::UnknownField {
                object,
                name: field,
            })?;
            named.insert(name.to_owned(), value);
        }
        Ok(store.insert(object, named, &by))
    }

    /// Collection writes still committing their rows in the background
    /// (see the `detached_row_delay` knob), answered or not: zero once the
    /// server has finished everything it was sent.
    pub fn writes_in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Every live task.
    pub fn tasks(&self) -> Vec<EmulatedRecord> {
        let store = self.shared.store();
        store
            .table(SObject::Task)
            .values()
            .filter(|r| r.deleted_ms.is_none())
            .map(|r| emulated(SObject::Task, r))
            .collect()
    }

    /// One record by its 15- or 18-character id, live or deleted.
    pub fn record(&self, object: SObject, id: &str) -> Option<EmulatedRecord> {
        let store = self.shared.store();
        store.get(object, id).map(|r| emulated(object, r))
    }

    /// The 18-character ids of the live records of `object`, ascending.
    pub fn ids(&self, object: SObject) -> Vec<String> {
        let store = self.shared.store();
        store
            .table(object)
            .values()
            .filter(|r| r.deleted_ms.is_none())
            .map(|r| r.id.clone())
            .collect()
    }

    /// Every live record of `object`, in id order.
    pub fn records(&self, object: SObject) -> Vec<EmulatedRecord> {
        let store = self.shared.store();
        store
            .table(object)
            .values()
            .filter(|r| r.deleted_ms.is_none())
            .map(|r| emulated(object, r))
            .collect()
    }

    /// Every SOQL query received (the latest 10,000), as sent.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.shared.queries).iter().cloned().collect()
    }

    /// The emulator's "now".
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.shared.store().clock.now_ms()).unwrap_or_default()
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn live_id(store: &store::Store, object: SObject, id: &str) -> Result<String, ControlError> {
    store
        .get(object, id)
        .filter(|r| r.deleted_ms.is_none())
        .map(|r| r.id.clone())
        .ok_or_else(|| ControlError::UnknownRecord {
            object,
            id: id.to_owned(),
        })
}

fn emulated(object: SObject, record: &store::Record) -> EmulatedRecord {
    EmulatedRecord {
        id: record.id.clone(),
        object,
        fields: record
            .fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        deleted: record.deleted_ms.is_some(),
    }
}
