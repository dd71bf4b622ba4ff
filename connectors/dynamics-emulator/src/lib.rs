//! A loopback emulator of the Dataverse Web API (Dynamics 365), built from
//! the published API facts and the shared specification (`EMULATOR.md` in
//! this crate lists each behaviour and its source). It is a crate of its
//! own that shares no code with the client crate `journeyd-dynamics`: the
//! compiler keeps the two apart.
//!
//! Map of the crate:
//! - [`config`]: [`EmulatorConfig`], [`SeedSizes`], [`Credentials`] and the
//!   [`Knobs`];
//! - `table`: the tables ([`Table`]), their columns, choices and
//!   navigation properties;
//! - `cell`: one stored value, compact, and its wire and formatted forms;
//! - `store`: rows by key, keys by version, the deletion log, alternate
//!   keys, team members;
//! - `seed`: the deterministic seeded org;
//! - `clock`: the emulator's clock;
//! - `auth`: the Entra ID token endpoint and the bearer check;
//! - `limits`: the service-protection window;
//! - `filter`: the `$filter` subset; `render`: rows on the wire;
//! - `query`: reads, paging cookies, change tracking; `write`: creates,
//!   upserts, binds; `batch`: `$batch`; `metadata`: choice metadata;
//! - `reply`: reply and error shapes, injected fault replies;
//! - `router`: routes, the guard, dispatch.
//!
//! Every request passes the contract's harness first (counting, then
//! injected faults), then, on `/api/data/v9.2/...`, the guard (token,
//! concurrency, window), then its handler.

mod auth;
mod batch;
mod cell;
mod clock;
pub mod config;
mod filter;
mod limits;
mod metadata;
mod query;
mod render;
mod reply;
mod router;
mod seed;
mod store;
mod table;
mod write;

pub use config::{Credentials, EmulatorConfig, Knobs, SeedSizes};
pub use table::Table;

use auth::Tokens;
use cell::{Cell, Guid};
use chrono::{DateTime, Utc};
use journeyd_connector::emulator::{EmulatorServer, Faults, RequestCounts, instrument};
use limits::Window;
use render::View;
use router::{Shared, TOKEN_ROUTE, lock};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use url::Url;

/// A row as the emulator holds it, for tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatedRecord {
    pub id: String,
    pub table: Table,
    /// Every column with a value, as it goes on the wire (the key and
    /// `versionnumber` included), without annotations.
    pub fields: BTreeMap<String, Value>,
}

/// A control call named a row or column the emulator does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("emulated {table} has no row {id}")]
    UnknownRecord { table: Table, id: String },
    #[error("emulated {table} has no column {name}")]
    UnknownField { table: Table, name: String },
}

/// A running Dataverse emulator on `127.0.0.1`: token endpoint and
/// environment at once. Stops when dropped.
pub struct DynamicsEmulator {
    server: EmulatorServer,
    shared: Arc<Shared>,
    counts: RequestCounts,
    faults: Faults,
}

impl DynamicsEmulator {
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
        let seeded = seed::seed(&config);
        let shared = Arc::new(Shared {
            store: RwLock::new(seeded.store),
            knobs: RwLock::new(config.knobs.clone()),
            tokens: Mutex::new(Tokens::new(config.credentials.clone(), config.seed)),
            window: Mutex::new(Window::default()),
            in_flight: AtomicUsize::new(0),
            filters: Mutex::new(Vec::new()),
            fail_batch_parts: Mutex::new(0),
            error_batch_parts: Mutex::new(0),
            malform_next_write: AtomicBool::new(false),
            batches_running: AtomicUsize::new(0),
            hold_batch: Mutex::default(),
            expire_after: Mutex::new(None),
            credentials: config.credentials.clone(),
            application_user: seeded.application_user.to_string(),
            base: OnceLock::new(),
        });
        let counts = RequestCounts::new();
        let faults = Faults::new(config.seed);
        // Token calls are left out of error injection unless a test asks.
        faults.exempt(TOKEN_ROUTE);
        let router = instrument(
            router::router(shared.clone()),
            counts.clone(),
            faults.clone(),
            reply::DataverseReplies,
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

    /// `http://127.0.0.1:<port>/`: the token host and the environment.
    pub fn base_url(&self) -> Url {
        self.server.base_url()
    }

    /// `http://127.0.0.1:<port>/api/data/v9.2/`.
    pub fn api_url(&self) -> Url {
        Url::parse(&self.shared.root()).expect("the API root is a valid URL")
    }

    /// `http://127.0.0.1:<port>/<tenant>/oauth2/v2.0/token`.
    pub fn token_url(&self) -> Url {
        self.base_url()
            .join(&format!("{}/oauth2/v2.0/token", self.tenant()))
            .expect("a valid token path")
    }

    /// The one scope the token endpoint grants: `http://127.0.0.1:<port>/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.shared.base())
    }

    pub fn tenant(&self) -> String {
        self.shared.credentials.tenant.clone()
    }

    pub fn client_id(&self) -> String {
        self.shared.credentials.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.shared.credentials.client_secret.clone()
    }

    /// The systemuser the application acts as (`accessmode` 4); new rows
    /// without an owner are its.
    pub fn application_user_id(&self) -> String {
        self.shared.application_user.clone()
    }

    pub fn counts(&self) -> RequestCounts {
        self.counts.clone()
    }

    /// The fault knobs; the token endpoint starts out exempt.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
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

    /// Every access token issued so far stops working.
    pub fn expire_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    /// After `n` more authenticated data requests, every access token
    /// issued so far stops working: a token that expires mid-run.
    pub fn expire_after_requests(&self, n: u64) {
        *lock(&self.shared.expire_after) = Some(n.max(1));
    }

    /// From now on each `$batch` makes its writes, then holds its answer
    /// back for `hold` (zero: answers at once), so that a test can stop the
    /// client between the writes and their confirmation.
    pub fn hold_batch(&self, hold: Duration) {
        *lock(&self.shared.hold_batch) = hold;
    }

    /// Every delta link handed out so far answers "expired" from now on.
    pub fn expire_delta_tokens(&self) {
        let mut store = self.shared.store_mut();
        store.delta_expired_through = store.version();
        store.bump_version();
    }

    /// Moves the emulator clock forward (token and delta token expiry, the
    /// request window, write stamps).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.store_mut().clock.advance(by);
    }

    /// Changes `n` live rows, the least recently modified first: each gets
    /// a new version and a `modifiedon` in a later second than any row
    /// before. Returns their ids in that order.
    pub fn touch(&self, table: Table, n: usize) -> Vec<String> {
        let mut store = self.shared.store_mut();
        let keys: Vec<Guid> = store
            .rows(table)
            .by_version
            .values()
            .take(n)
            .copied()
            .collect();
        for key in &keys {
            let at = store.clock.tick_second();
            store.update_at(table, key, Vec::new(), at);
        }
        keys.iter().map(Guid::to_string).collect()
    }

    /// Sets a column of a live row to `value`: converted to the column's
    /// type when it fits, kept as given otherwise (so tests can plant odd
    /// values); a lookup takes a GUID of a row of one of its tables. The
    /// row's `modifiedon` and version move as [`Self::touch`] moves them.
    pub fn set_field(
        &self,
        table: Table,
        id: &str,
        column: &str,
        value: Value,
    ) -> Result<(), ControlError> {
        let at = self.column(table, column)?;
        let mut store = self.shared.store_mut();
        let key = live_key(&store, table, id)?;
        let cell = control_cell(&store, table, at, &value);
        let stamp = store.clock.tick_second();
        store.update_at(table, &key, vec![(at, cell)], stamp);
        Ok(())
    }

    /// A new row from wire-named columns (unknown names are ignored; the
    /// key may be given); returns its id.
    pub fn insert(&self, table: Table, fields: BTreeMap<String, Value>) -> String {
        let alt = self.alt_key(table);
        let mut store = self.shared.store_mut();
        let mut key = None;
        let mut cells = vec![Cell::Null; table.columns().len()];
        for (name, value) in &fields {
            if name == table.key() {
                key = value.as_str().and_then(Guid::parse);
                continue;
            }
            if let Some(at) = table.column(name, alt.as_deref()) {
                cells[at] = control_cell(&store, table, at, value);
            }
        }
        let key = key.unwrap_or_else(|| store.new_key(table));
        store.insert(table, key, cells);
        key.to_string()
    }

    /// Deletes a row; change tracking reports it as `$deletedEntity`.
    pub fn delete(&self, table: Table, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let key = live_key(&store, table, id)?;
        store.delete(table, &key);
        Ok(())
    }

    /// From now on the row is served with a key that is not a GUID (a
    /// number) and `createdon`/`modifiedon` reading `"not a date"`; the
    /// rest of its page stays valid.
    pub fn corrupt(&self, table: Table, id: &str) -> Result<(), ControlError> {
        let mut store = self.shared.store_mut();
        let key = live_key(&store, table, id)?;
        if let Some(row) = store.get_mut(table, &key) {
            row.corrupt = true;
        }
        Ok(())
    }

    /// The next `$batch` refuses its first `n` write parts without running
    /// them: each answers 429 `0x80072321` with `Retry-After: 1` (without
    /// continue-on-error the batch stops at the first).
    pub fn fail_batch_parts(&self, n: usize) {
        *lock(&self.shared.fail_batch_parts) = n;
    }

    /// The next `$batch` carries out its first `n` top-level write parts,
    /// then answers each with 500 `0x80044150` "Generic SQL error.": a
    /// server error after the write was made.
    pub fn error_batch_parts(&self, n: usize) {
        *lock(&self.shared.error_batch_parts) = n;
    }

    /// The next write (a `$batch` holding one, or a `POST`, `PATCH` or
    /// `DELETE`) is carried out, then answered 200 with its body cut in
    /// half and ending in garbage.
    pub fn malform_next_write(&self) {
        self.shared.malform_next_write.store(true, Ordering::SeqCst);
    }

    /// `$batch`es running in a task of their own under the knob
    /// `batch_part_delay`, counting those whose client has gone.
    pub fn batches_running(&self) -> usize {
        self.shared.batches_running.load(Ordering::SeqCst)
    }

    /// Every live row of `table`, in key order.
    pub fn records(&self, table: Table) -> Vec<EmulatedRecord> {
        let store = self.shared.store();
        let view = self.view(table);
        store
            .rows(table)
            .by_key
            .iter()
            .map(|(key, row)| emulated(&store, &view, key, row))
            .collect()
    }

    /// One live row by id.
    pub fn record(&self, table: Table, id: &str) -> Option<EmulatedRecord> {
        let store = self.shared.store();
        let key = Guid::parse(id)?;
        let row = store.get(table, &key)?;
        Some(emulated(&store, &self.view(table), &key, row))
    }

    /// The ids of the live rows of `table`, ascending.
    pub fn ids(&self, table: Table) -> Vec<String> {
        let store = self.shared.store();
        store
            .rows(table)
            .by_key
            .keys()
            .map(Guid::to_string)
            .collect()
    }

    /// Every live task.
    pub fn tasks(&self) -> Vec<EmulatedRecord> {
        self.records(Table::Task)
    }

    /// Every `$filter` received (the latest 10,000), decoded, in order.
    pub fn filters(&self) -> Vec<String> {
        lock(&self.shared.filters).clone()
    }

    /// The emulator's "now".
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.shared.store().clock.now_ms()).unwrap_or_default()
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(self) {
        self.server.stop().await;
    }

    fn alt_key(&self, table: Table) -> Option<String> {
        match table {
            Table::Task => self.knobs().task_alternate_key,
            _ => None,
        }
    }

    fn column(&self, table: Table, name: &str) -> Result<usize, ControlError> {
        table
            .column(name, self.alt_key(table).as_deref())
            .filter(|at| *at != 0)
            .ok_or_else(|| ControlError::UnknownField {
                table,
                name: name.to_owned(),
            })
    }

    fn view(&self, table: Table) -> View {
        let alt = self.alt_key(table);
        View::new(table, None, alt.as_deref()).expect("every column exists")
    }
}

fn live_key(store: &store::Store, table: Table, id: &str) -> Result<Guid, ControlError> {
    Guid::parse(id)
        .filter(|key| store.get(table, key).is_some())
        .ok_or_else(|| ControlError::UnknownRecord {
            table,
            id: id.to_owned(),
        })
}

/// A control's value for a column: typed when it fits the column, as
/// given otherwise.
fn control_cell(store: &store::Store, table: Table, at: usize, value: &Value) -> Cell {
    let kind = table.columns()[at].kind;
    if let table::Kind::Lookup(navs) = kind
        && let Some(key) = value.as_str().and_then(Guid::parse)
    {
        let targets: Vec<Table> = navs.iter().flat_map(|(_, ts)| ts.iter().copied()).collect();
        return match store.find(&targets, &key) {
            Some(target) => Cell::Ref(target, key),
            None => Cell::Guid(key),
        };
    }
    Cell::from_json(kind, value).unwrap_or_else(|_| match value {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cell::Dec(n.as_f64().unwrap_or_default()), Cell::Int),
        Value::String(s) => cell::text(s),
        other => cell::text(&other.to_string()),
    })
}

fn emulated(store: &store::Store, view: &View, key: &Guid, row: &store::Row) -> EmulatedRecord {
    EmulatedRecord {
        id: key.to_string(),
        table: view.table,
        fields: view
            .row(store, key, row)
            .into_iter()
            .filter(|(k, v)| !v.is_null() && !k.starts_with('@'))
            .collect(),
    }
}
