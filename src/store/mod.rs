//! The one SQLite file that holds all of journeyd's state, and the only
//! module that speaks SQL.
//!
//! - [`Store`]: a sync type owning one connection; every query is a method;
//! - [`StoreHandle`]: the async face: a dedicated thread owns the `Store`,
//!   so SQLite never blocks the async runtime;
//! - `migrations`: the schema, versioned and append-only;
//! - `records`, `chunks`: CRM snapshots and stage history in, streamed out
//!   chunk by chunk (with duplicate peers) for the audit;
//! - `owners`, `runs`, `watermarks`, `ledger`: the other synced and
//!   operational state;
//! - `reconcile`: full pulls that mark what they did not see deleted;
//! - `writeback`: what the write-back planner reads; `record_tasks`: the
//!   one task journeyd keeps per record; `plan_state`: what the planner
//!   keeps between plans, so that a plan judges only what changed;
//! - `audit`: the [`AuditWriter`], one transaction per audit;
//! - `violations`: the violations log, its events, admin actions, listing;
//!   `log_indexes`: its lookup indexes, which a first audit builds at its
//!   end;
//! - `report`: raw per-stage figures for the report.
//!
//! The store never reads the clock: every `now` and `at` is passed in. It
//! does not know the journey's rules; it keeps what they found.

mod audit;
mod audit_queue;
mod by_record;
mod chunks;
mod columns;
mod console;
mod handle;
mod ledger;
mod log_indexes;
mod migrations;
mod owners;
mod plan_state;
mod reconcile;
mod record_tasks;
mod records;
mod report;
mod runs;
mod violations;
mod watermarks;
mod writeback;

pub use audit::{AuditDiff, AuditWriter, ChunkDiff, RecordState};
pub use audit_queue::{ConnectorBasis, QueueMark, QueuedChunk};
pub use by_record::{RecordGroup, RecordPage};
pub use chunks::{DuplicatePeer, KeptRecord, MAX_PEERS, StoredRecord};
pub use console::{
    CountBy, LastWrite, LogVersion, OpenCount, OwnerDirectory, OwnerLoad, OwnerName, TaskView,
};
pub use handle::StoreHandle;
pub use ledger::{LedgerCursor, LedgerEntry, LedgerMark, LedgerState, StagedWrite};
pub use plan_state::{PlanClass, PlanCounts, PlanCursor, PlanScope};
pub use reconcile::PendingReconcile;
pub use record_tasks::{
    RecordTask, RecordTaskCandidate, RecordTaskCursor, RecordTaskStage, ViolationTask,
};
pub use records::{PageWrite, UpsertCounts};
pub use report::{OwnerCount, StageFigures, StageRuleCount};
pub use runs::{RunId, RunKind, RunRow, RunStatus};
pub use violations::{
    EventKind, EventRow, FilterColumn, ListPosition, MIN_PREFIX, RunSummaryRow, Sort, SummaryRow,
    ViolationFilter, ViolationId, ViolationRow, ViolationStatus,
};
pub use watermarks::StoredWatermark;
pub use writeback::{
    CandidateCursor, FailedWrite, ResolvedTask, WriteCandidate, WriteClass, WritebackFilter,
    WritebackTally,
};

use journeyd_connector::{ActionKey, ConnectorName, ObjectKind, RecordId};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a statement waiting for the write lock tries again. SQLite's
/// own timeout backs off to a try every 100 ms, which can miss every gap a
/// busy writer leaves (an audit commits a second's chunks, pauses
/// [`audit::LOCK_GAP`], and goes on); a try this often takes the first.
const BUSY_POLL: Duration = Duration::from_millis(5);

/// The busy handler of every connection: waits [`BUSY_POLL`] and tries
/// again, for [`BUSY_TIMEOUT`] in all.
fn wait_for_lock(tries: i32) -> bool {
    let waited = BUSY_POLL * u32::try_from(tries).unwrap_or(u32::MAX);
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// Page cache per connection. The audit updates indexes keyed by
/// fingerprint, which are random: with SQLite's 2 MiB default a large audit
/// spends its time re-reading index pages.
pub(super) const CACHE_KIB: i64 = 32 * 1024;

/// Page cache of a read-only connection. Its reads walk tables and indexes
/// in order (the audit's records, a list, an export), which the OS's cache
/// serves as well: a large cache here only adds to the audit's memory.
const READER_CACHE_KIB: i64 = 8 * 1024;

/// Enough for every distinct statement the store prepares.
const STATEMENT_CACHE: usize = 64;

/// What went wrong in the store, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state file {} does not exist", path.display())]
    Missing { path: PathBuf },
    /// The file's schema is older than this journeyd's: a command that
    /// writes to the store migrates it; one that only reads does not.
    #[error("state file {} has schema version {found}, older than this journeyd's {latest}", path.display())]
    Outdated {
        path: PathBuf,
        found: usize,
        latest: usize,
    },
    #[error("state file {} has schema version {found}, newer than this journeyd's {latest}: it was written by a newer journeyd", path.display())]
    TooNew {
        path: PathBuf,
        found: usize,
        latest: usize,
    },
    #[error("store {} cannot use write-ahead logging (journal mode stays {mode})", path.display())]
    JournalMode { path: PathBuf, mode: String },
    #[error("cannot restrict permissions of store {}", path.display())]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot migrate store {}", path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("store is busy (another process holds the write lock) while trying to {op}")]
    Busy {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store failed to {op}")]
    Sql {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot store {object} {id} of connector {connector}")]
    Record {
        connector: ConnectorName,
        object: ObjectKind,
        id: RecordId,
        #[source]
        source: Box<StoreError>,
    },
    #[error("cannot encode or decode {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot record violation {fingerprint}")]
    RecordViolation {
        fingerprint: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("violation {0} not found")]
    ViolationNotFound(ViolationId),
    #[error("fingerprint prefix {0:?} matches more than one violation")]
    AmbiguousPrefix(String),
    /// Digits that are one violation's id and start another's fingerprint.
    #[error(
        "`{key}` could be violation {} (by its id; fingerprint {}) or violation {} (fingerprint {}): give the fingerprint of the one you mean",
        id.0, id.1, fingerprint.0, fingerprint.1
    )]
    IdOrFingerprint {
        key: String,
        /// The violation whose id it is, with its fingerprint.
        id: (ViolationId, String),
        /// The violation whose fingerprint it starts, with that fingerprint.
        fingerprint: (ViolationId, String),
    },
    #[error("cannot {action} violation {id}: it is {status}")]
    InvalidTransition {
        id: ViolationId,
        action: &'static str,
        status: ViolationStatus,
    },
    #[error("a reason is required to {action} violation {id}")]
    ReasonRequired {
        id: ViolationId,
        action: &'static str,
    },
    #[error("run {0} not found")]
    RunNotFound(RunId),
    #[error("write-back action {0} is not in the ledger")]
    LedgerKeyNotFound(ActionKey),
    #[error("cannot start the store thread")]
    Thread(#[source] std::io::Error),
    /// The store thread is gone, or the job panicked (and was rolled back).
    #[error("the store job did not complete")]
    Closed,
}

impl StoreError {
    pub(crate) fn record(
        connector: &ConnectorName,
        object: ObjectKind,
        id: &RecordId,
        source: StoreError,
    ) -> StoreError {
        StoreError::Record {
            connector: connector.clone(),
            object,
            id: id.clone(),
            source: Box::new(source),
        }
    }
}

/// Names the operation a rusqlite error happened in.
pub(crate) trait SqlContext<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy { op, source }
            }
            _ => StoreError::Sql { op, source },
        })
    }
}

pub(crate) fn json_error(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Json { what, source }
}

/// The state file, with one open connection. Sync: use it from one thread,
/// or through a [`StoreHandle`] from async code.
pub struct Store {
    conn: Connection,
    /// The org's time zone: day counts in messages read from this store
    /// count to its date. UTC unless [`Store::set_timezone`] says otherwise.
    timezone: chrono_tz::Tz,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl Store {
    fn with(conn: Connection) -> Store {
        Store {
            conn,
            timezone: chrono_tz::UTC,
        }
    }

    /// Sets the org's time zone (`[schedule] timezone`), whose date the
    /// day counts in messages read from now on count to.
    pub fn set_timezone(&mut self, timezone: chrono_tz::Tz) {
        self.timezone = timezone;
    }

    /// The org's date now.
    pub(crate) fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.timezone)
            .date_naive()
    }

    /// Opens (creating it if need be) the store at `path` and brings its
    /// schema up to date. The parent directory must exist. On unix the file
    /// is readable by its owner only; SQLite gives its `-wal` and `-shm`
    /// files the same mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        restrict_permissions(path)?;
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        conn.busy_handler(Some(wait_for_lock)).map_err(open_error)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::JournalMode {
                path: path.to_owned(),
                mode,
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(open_error)?;
        // Sorts and temp tables over the whole log (a summary's GROUP BY, a
        // plan's gathered candidates) spill to a temp file past a small
        // cache rather than grow with the log; a statement journal stays in
        // memory up to SQLite's spill size either way.
        conn.pragma_update(None, "temp_store", "FILE")
            .map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", false)
            .map_err(open_error)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_error)?;
        migrations::migrations()
            .to_latest(&mut conn)
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        if migrations::rebuilt_violations(usize::try_from(found).unwrap_or(0)) {
            // The rebuild left the old tables' pages free inside the file
            // (a third of it, or more): given back once, now.
            tracing::info!(path = %path.display(), "compacting the state file after its upgrade");
            conn.execute_batch("VACUUM").map_err(open_error)?;
        }
        // Only now: a migration that rebuilds a table others reference
        // (as SQLite's ALTER TABLE recipe does) runs without the checks.
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        audit::create_temp_tables(&conn).map_err(open_error)?;
        Ok(Store::with(conn))
    }

    /// Opens a read-only connection to the store at `path`, which an
    /// earlier [`Store::open`] created and migrated. In WAL mode its reads
    /// neither wait for nor hold up writers on other connections: the
    /// audit reads its records through one.
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        let conn = read_only_connection(path)?;
        audit::create_temp_tables(&conn).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Store::with(conn))
    }

    /// Opens the existing store at `path` for reading only: a missing file
    /// is not created, and a file of another schema version is not migrated
    /// but refused ([`StoreError::Missing`], [`StoreError::Outdated`],
    /// [`StoreError::TooNew`]). Writes through this store fail.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        match std::fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    path: path.to_owned(),
                });
            }
            _ => {}
        }
        let store = Store::with(read_only_connection(path)?);
        let found = store.schema_version()?;
        let latest = migrations::latest_version();
        let path = path.to_owned();
        match found.cmp(&latest) {
            std::cmp::Ordering::Less => Err(StoreError::Outdated {
                path,
                found,
                latest,
            }),
            std::cmp::Ordering::Greater => Err(StoreError::TooNew {
                path,
                found,
                latest,
            }),
            std::cmp::Ordering::Equal => Ok(store),
        }
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .op("read the schema version")?;
        Ok(usize::try_from(version).unwrap_or(0))
    }
}

/// Creates the file owner-only before SQLite does, so that it is never
/// readable by others, and tightens the mode of an existing one.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io_error = |source| StoreError::Permissions {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    let mode = file.metadata().map_err(io_error)?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(io_error)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
pub(crate) mod testkit;

/// A read-only connection to the store file at `path`. Writes through it
/// fail; in WAL mode its reads neither wait for nor hold up writers.
fn read_only_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_handler(Some(wait_for_lock)).map_err(open_error)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
        .map_err(open_error)?;
    // As the writer's: a sort over the whole log spills to a temp file.
    conn.pragma_update(None, "temp_store", "FILE")
        .map_err(open_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::testkit::TestStore;
    use super::*;
    use rusqlite::params;

    /// The README's list of public tables and columns, `(table, [(column,
    /// type)])`, from its "The state file" section.
    fn documented_tables() -> Vec<(String, Vec<(String, String)>)> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### The state file")
            .nth(1)
            .and_then(|rest| rest.split("\n#").next())
            .expect("the README documents the state file");
        section
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                let table = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
                let columns = cells
                    .get(1)?
                    .trim_end_matches(" |")
                    .split(", ")
                    .map(|column| {
                        let (name, kind) = column.split_once(' ').expect("`name` TYPE");
                        (name.trim_matches('`').to_owned(), kind.to_owned())
                    })
                    .collect();
                Some((table.to_owned(), columns))
            })
            .collect()
    }

    #[test]
    fn the_public_tables_have_the_columns_and_types_the_readme_documents() {
        let test = TestStore::new();
        let documented = documented_tables();
        let names: Vec<&str> = documented.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "records",
                "owners",
                "violations",
                "violation_events",
                "runs",
                "writeback_ledger"
            ]
        );
        for (table, columns) in documented {
            let mut stmt = test
                .store
                .conn
                .prepare("SELECT name, type FROM pragma_table_info(?1)")
                .unwrap();
            let actual: Vec<(String, String)> = stmt
                .query_map([&table], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for column in &columns {
                assert!(
                    actual.contains(column),
                    "{table}.{} {} is documented, the schema has {actual:?}",
                    column.0,
                    column.1
                );
            }
        }
    }

    /// Every documented column of every public table, row by row, as text.
    fn public_rows(conn: &Connection) -> Vec<String> {
        let mut rows = Vec::new();
        for (table, columns) in documented_tables() {
            let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {} FROM {table} ORDER BY 1, 2, 3",
                    names.join(", ")
                ))
                .unwrap();
            let mut query = stmt.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let values: Vec<String> = (0..names.len())
                    .map(|i| match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(text) => {
                            format!("{:?}", String::from_utf8_lossy(text))
                        }
                        other => format!("{other:?}"),
                    })
                    .collect();
                rows.push(format!("{table}: {}", values.join(" | ")));
            }
        }
        rows
    }

    /// A copy of `tests/fixtures/state-v5.sqlite`: made by the release
    /// before the violations view (schema 5) from the sample portal: one
    /// audit, an acknowledgement, two suppressions, a fix and a second
    /// audit that resolved it.
    fn previous_release_state() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v5.sqlite"),
            &path,
        )
        .unwrap();
        (dir, path)
    }

    #[test]
    fn a_state_file_of_the_previous_release_reads_the_same_after_its_migration() {
        let (_dir, path) = previous_release_state();
        let before = public_rows(&Connection::open(&path).unwrap());
        assert!(before.iter().any(|row| row.contains("\"acknowledged\"")));
        assert!(before.iter().any(|row| row.contains("\"resolved\"")));
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            migrations::latest_version()
        );
        assert_eq!(public_rows(&store.conn), before);
    }

    #[test]
    fn a_state_file_whose_violation_tables_were_rebuilt_keeps_no_free_pages() {
        let (_dir, path) = previous_release_state();
        let store = Store::open(&path).unwrap();
        let free: i64 = store
            .conn
            .pragma_query_value(None, "freelist_count", |row| row.get(0))
            .unwrap();
        assert_eq!(free, 0);
    }

    #[test]
    fn a_migrated_state_file_never_reuses_a_violation_id() {
        let (_dir, path) = previous_release_state();
        let raw = Connection::open(&path).unwrap();
        let max: i64 = raw
            .query_row("SELECT max(id) FROM violations", [], |row| row.get(0))
            .unwrap();
        // Ids above the largest row's were handed out once (a transaction
        // that rolled back its insert keeps them spent).
        raw.execute(
            "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'violations'",
            [max + 50],
        )
        .unwrap();
        drop(raw);
        let store = Store::open(&path).unwrap();
        let seq: i64 = store
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'violation_rows'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(seq, max + 50);
    }

    #[test]
    fn the_violation_tables_refuse_values_outside_their_sets() {
        let test = TestStore::new();
        let conn = &test.store.conn;
        let row = |object: &str, severity: i64, status: &str| {
            conn.execute(
                "INSERT INTO violation_rows (fingerprint, connector, object, record_id, rule,
                     severity, message, action, status, first_seen, last_seen)
                 VALUES (?1, 'hubspot', ?2, '1', 'r', ?3, 'm', '{}', ?4, 't', 't')",
                params![
                    format!("{object}{severity}{status}"),
                    object,
                    severity,
                    status
                ],
            )
        };
        assert!(row("deal", 2, "open").is_ok());
        assert!(row("ticket", 2, "open").is_err());
        assert!(row("deal", 3, "open").is_err());
        assert!(row("deal", 2, "closed").is_err());
        let event = |kind: &str, from: Option<&str>, to: &str| {
            conn.execute(
                "INSERT INTO violation_events (violation_id, at, actor, kind, from_status,
                     to_status)
                 VALUES ((SELECT max(id) FROM violation_rows), 't', 'a', ?1, ?2, ?3)",
                params![kind, from, to],
            )
        };
        assert!(event("opened", None, "open").is_ok());
        assert!(event("acknowledged", Some("open"), "acknowledged").is_ok());
        assert!(event("closed", None, "open").is_err());
        assert!(event("opened", Some("gone"), "open").is_err());
        assert!(event("opened", None, "gone").is_err());
    }

    #[test]
    fn opening_an_empty_file_migrates_it_to_the_latest_schema() {
        let test = TestStore::new();
        let latest = migrations::migrations();
        assert_eq!(latest.pending_migrations(&test.store.conn).ok(), Some(0));
        assert_eq!(
            test.store.schema_version().ok(),
            Some(migrations::latest_version())
        );
        let tables: Vec<String> = test
            .store
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for table in [
            "audit_sightings",
            "delta_links",
            "owners",
            "reconciles",
            "record_state",
            "record_tasks",
            "records",
            "runs",
            "stage_history",
            "violation_events",
            "violation_rows",
            "violations",
            "watermarks",
            "writeback_ledger",
        ] {
            assert!(tables.iter().any(|t| t == table), "missing {table}");
        }
    }

    #[test]
    fn a_state_file_of_the_previous_schema_keeps_its_ledger_and_learns_each_writes_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journeyd.db");
        let fp = "ab".repeat(16);
        {
            // A state file as the previous release left it: a task and its
            // completion, one task unconfirmed, and a field write.
            let mut conn = Connection::open(&path).unwrap();
            migrations::migrations().to_version(&mut conn, 3).unwrap();
            for (key, kind, state) in [
                (format!("jd{fp}t"), "create_task", "applied"),
                (format!("jd{fp}c"), "complete_task", "sent"),
                ("jdffl".to_owned(), "set_field", "applied"),
            ] {
                conn.execute(
                    "INSERT INTO writeback_ledger (action_key, fingerprint, connector, request,
                         state, attempts, crm_id, created_at, updated_at)
                     VALUES (?1, ?2, 'hubspot', json_object('kind', ?3), ?4, 1, 'x',
                         '2024-05-01T00:00:00.000000000Z', '2024-05-01T00:00:00.000000000Z')",
                    rusqlite::params![key, fp, kind, state],
                )
                .unwrap();
            }
        }

        let store = Store::open(&path).unwrap();

        let task_keys: Vec<(String, Option<String>, Option<String>)> = store
            .conn
            .prepare(
                "SELECT action_key, task_key, sent_at FROM writeback_ledger ORDER BY action_key",
            )
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let task = format!("jd{fp}t");
        assert_eq!(
            task_keys,
            [
                (format!("jd{fp}c"), Some(task.clone()), None),
                (task.clone(), Some(task.clone()), None),
                ("jdffl".to_owned(), None, None),
            ]
        );
        assert_eq!(
            store.ledger_unconfirmed_count(&testkit::hubspot()).unwrap(),
            1
        );
    }

    #[test]
    fn reopening_a_store_keeps_its_data_and_schema() {
        let mut test = TestStore::new();
        test.store
            .upsert_records(
                &testkit::hubspot(),
                &[testkit::record(ObjectKind::Deal, "1")],
                testkit::day(1, 0),
            )
            .unwrap();
        let path = test.path();
        drop(std::mem::replace(
            &mut test.store,
            Store::open(&path).unwrap(),
        ));
        assert_eq!(test.store.record_count().unwrap(), 1);
        assert_eq!(
            test.store.schema_version().unwrap(),
            migrations::latest_version()
        );
    }

    #[test]
    fn the_store_uses_wal_and_foreign_keys() {
        let test = TestStore::new();
        let conn = &test.store.conn;
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 1, 1));
    }

    #[test]
    fn a_write_gets_the_lock_in_the_gap_a_busy_writer_leaves() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let test = TestStore::new();
        let path = test.path();
        let busy = Store::open(&path).unwrap();
        // The other writer holds the lock as an audit does, a second at a
        // time with the audit's gap between, for longer than a write waits
        // in all.
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (started, holding) = std::sync::mpsc::channel();
        let writer = {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..8 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    busy.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    if i == 0 {
                        started.send(()).unwrap();
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    busy.conn.execute_batch("COMMIT").unwrap();
                    std::thread::sleep(audit::LOCK_GAP);
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        holding.recv().unwrap();
        let mut admin = Store::open(&path).unwrap();
        let run = admin.begin_run(RunKind::Audit, None, chrono::Utc::now());
        let while_busy = !done.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(run.is_ok(), "{run:?}");
        assert!(while_busy, "the write waited for the other writer to end");
    }

    #[cfg(unix)]
    #[test]
    fn the_store_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let test = TestStore::new();
        for name in ["journeyd.db", "journeyd.db-wal"] {
            let mode = std::fs::metadata(test.dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn opening_tightens_a_store_file_others_could_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journeyd.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn opening_in_a_missing_directory_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("journeyd.db");
        let err = Store::open(&path).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn opening_a_missing_store_read_only_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journeyd.db");
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(&err, StoreError::Missing { path: p } if *p == path),
            "{err}"
        );
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn a_store_of_an_older_schema_is_refused_read_only_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journeyd.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrations::migrations().to_version(&mut conn, 3).unwrap();
        }
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::Outdated { found: 3, latest, .. } if latest == migrations::latest_version()),
            "{err}"
        );
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3, "not migrated");
    }

    #[test]
    fn a_current_store_opens_read_only_and_refuses_writes() {
        let mut test = TestStore::new();
        test.store
            .upsert_records(
                &testkit::hubspot(),
                &[testkit::record(ObjectKind::Deal, "1")],
                testkit::day(1, 0),
            )
            .unwrap();
        let mut reader = Store::open_read_only(&test.path()).unwrap();
        assert_eq!(reader.record_count().unwrap(), 1);
        assert!(
            reader
                .upsert_records(
                    &testkit::hubspot(),
                    &[testkit::record(ObjectKind::Deal, "2")],
                    testkit::day(1, 0),
                )
                .is_err()
        );
    }
}
