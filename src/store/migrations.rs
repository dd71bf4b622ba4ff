//! The schema, as a list of versioned migrations.
//!
//! Migrations are append-only: once a version has shipped its SQL never
//! changes; a schema change is a new `M::up` at the end of the list.
//!
//! Conventions of every table: timestamps are RFC 3339 UTC text with nine
//! fractional digits (`2024-05-01T02:00:00.000000000Z`), fixed width so that
//! text order is time order; dates are `YYYY-MM-DD`; closed sets are their
//! lowercase names, checked by `CHECK` constraints; JSON is text.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first.
pub(super) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// The schema version a store has once every migration ran.
pub(super) fn latest_version() -> usize {
    MIGRATIONS.len()
}

/// Whether migrating a store from schema version `from` rebuilt the
/// violation tables (migration 7), leaving their old pages free in the
/// file. A new file (version 0) had none.
pub(super) fn rebuilt_violations(from: usize) -> bool {
    (1..7).contains(&from)
}

/// The `violations` view over `violation_rows` (V6), made again by every
/// migration that rebuilds the table under it.
macro_rules! violations_view {
    () => {
        r#"CREATE VIEW violations AS
SELECT v.id, v.fingerprint, v.connector, v.object, v.record_id, v.record_name, v.record_url,
    v.rule, v.severity, v.stage, v.owner_id, v.owner_role,
    CAST(CASE WHEN v.stage_since IS NULL THEN v.message
         ELSE replace(v.message, char(1) || 'days_in_stage' || char(1),
                      max(0, CAST(julianday('now') - julianday(v.stage_since) AS INTEGER)))
         END AS TEXT) AS message,
    v.action, v.status, v.status_reason, v.suppressed_until, v.first_seen,
    CAST(CASE WHEN s.at > v.last_seen AND v.status <> 'resolved' AND v.failing = 1
         THEN s.at ELSE v.last_seen END AS TEXT) AS last_seen,
    r.id AS last_run,
    v.resolved_at,
    -- internal: the message as stored, the date its count runs from, and
    -- the record's rowid
    v.message AS message_template, v.stage_since, v.record_rowid
FROM violation_rows v
LEFT JOIN audit_sightings s ON s.connector = v.connector
LEFT JOIN runs r ON r.id = CASE WHEN s.at > v.last_seen AND v.status <> 'resolved'
                                     AND v.failing = 1
                                THEN s.run_id ELSE v.last_run END"#
    };
}

const MIGRATIONS: &[M<'static>] = &[
    M::up(V1_INITIAL).comment("initial schema"),
    M::up(V2_RECONCILES).comment("full pulls that reconcile deletions"),
    M::up(V3_DELTA_LINKS).comment("delta links incremental pulls start from"),
    M::up(V4_RECORD_TASKS).comment("one task per record, and when each write was sent"),
    M::up(V5_RUN_PROCESSES)
        .comment("each run's process; runs interrupted")
        .foreign_key_check(),
    M::up(V6_VIOLATION_ROWS)
        .comment("violations stored by record, written only when they change")
        .foreign_key_check(),
    M::up(V7_CHECKS_AS_COMPARISONS)
        .comment("violation checks written as comparisons")
        .foreign_key_check(),
    M::up(V8_AUDIT_QUEUE).comment("the records an audit must judge again"),
    M::up(V9_PLAN_STATE).comment("what the write-back planner found per record"),
    M::up(V10_DEFERRED_INDEXES).comment("the log's indexes a first audit builds at its end"),
    M::up(V11_SEVERITY_ORDER).comment("the log in the order lists read it"),
];

const V1_INITIAL: &str = r#"
-- The latest snapshot of every CRM record ever synced. `rowid` is declared
-- so that it stays stable across VACUUM: the audit streams records by it.
CREATE TABLE records (
    rowid       INTEGER PRIMARY KEY,
    connector   TEXT NOT NULL,
    object      TEXT NOT NULL CHECK (object IN ('lead', 'contact', 'account', 'deal')),
    id          TEXT NOT NULL,
    -- the CRM's native stage value
    stage       TEXT,
    modified_at TEXT NOT NULL,
    owner_id    TEXT,
    -- duplicate keys: email for leads and contacts, domain for accounts
    email_key   TEXT,
    domain_key  TEXT,
    -- the CrmRecord as JSON, without its stage history (see stage_history)
    snapshot    TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    -- soft delete: set when the CRM reports the record gone
    deleted_at  TEXT,
    UNIQUE (connector, object, id)
);
CREATE INDEX records_email ON records (connector, email_key)
    WHERE email_key IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX records_domain ON records (connector, domain_key)
    WHERE domain_key IS NOT NULL AND deleted_at IS NULL;

-- Native stage changes: those the CRM reports ('crm') and those journeyd
-- saw happen between two syncs ('observed').
CREATE TABLE stage_history (
    connector TEXT NOT NULL,
    object    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    stage     TEXT NOT NULL,
    at        TEXT NOT NULL,
    owner_id  TEXT,
    source    TEXT NOT NULL CHECK (source IN ('crm', 'observed')),
    PRIMARY KEY (connector, object, record_id, at, stage),
    FOREIGN KEY (connector, object, record_id) REFERENCES records (connector, object, id)
) WITHOUT ROWID;

CREATE TABLE owners (
    connector TEXT NOT NULL,
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    email     TEXT,
    active    INTEGER NOT NULL CHECK (active IN (0, 1)),
    -- JSON array of team, role or profile names
    teams     TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (connector, id)
) WITHOUT ROWID;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('import', 'sync', 'audit', 'writeback')),
    connector   TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    -- JSON object of the run's counts
    counts      TEXT,
    error       TEXT
);
CREATE INDEX runs_kind ON runs (kind, id);

-- The violations log. Rows are never deleted: a fixed problem is 'resolved'.
-- `id` is what admins type, so AUTOINCREMENT: an id is never reused.
CREATE TABLE violations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint      TEXT NOT NULL UNIQUE,
    connector        TEXT NOT NULL,
    object           TEXT NOT NULL CHECK (object IN ('lead', 'contact', 'account', 'deal')),
    record_id        TEXT NOT NULL,
    record_name      TEXT,
    record_url       TEXT,
    rule             TEXT NOT NULL,
    -- 0 low, 1 medium, 2 high: a number so that lists order by it
    severity         INTEGER NOT NULL CHECK (severity IN (0, 1, 2)),
    stage            TEXT,
    owner_id         TEXT,
    owner_role       TEXT,
    message          TEXT NOT NULL,
    -- JSON of the PlannedAction
    action           TEXT NOT NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('open', 'acknowledged', 'suppressed', 'resolved')),
    -- why the violation has its status (the reason of the last event)
    status_reason    TEXT,
    suppressed_until TEXT,
    first_seen       TEXT NOT NULL,
    last_seen        TEXT NOT NULL,
    last_run         INTEGER REFERENCES runs (id),
    resolved_at      TEXT
);
-- Each index costs every audit a few microseconds per violation, so only
-- the selective list filters have one; stage and first_seen filters scan.
CREATE INDEX violations_status ON violations (status, severity);
CREATE INDEX violations_connector ON violations (connector, status);
CREATE INDEX violations_rule ON violations (rule, stage);
CREATE INDEX violations_owner ON violations (owner_id);

-- Every change of a violation's status: who, when, why.
CREATE TABLE violation_events (
    id           INTEGER PRIMARY KEY,
    violation_id INTEGER NOT NULL REFERENCES violations (id),
    at           TEXT NOT NULL,
    run_id       INTEGER REFERENCES runs (id),
    -- 'journeyd' for audits, the admin's name otherwise
    actor        TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN
        ('opened', 'reopened', 'resolved', 'acknowledged', 'suppressed', 'unsuppressed')),
    from_status  TEXT
        CHECK (from_status IN ('open', 'acknowledged', 'suppressed', 'resolved')),
    to_status    TEXT NOT NULL
        CHECK (to_status IN ('open', 'acknowledged', 'suppressed', 'resolved')),
    reason       TEXT
);
CREATE INDEX violation_events_violation ON violation_events (violation_id, id);

-- What the last audit derived of each record, for the stage report.
CREATE TABLE record_state (
    connector       TEXT NOT NULL,
    object          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    -- journey stage id; NULL when unmapped or outside the journey
    stage           TEXT,
    stage_index     INTEGER,
    -- the furthest stage the record reached, from its history
    max_stage_index INTEGER,
    days_in_stage   INTEGER,
    stalled         INTEGER NOT NULL CHECK (stalled IN (0, 1)),
    owner_id        TEXT,
    owner_role      TEXT,
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    PRIMARY KEY (connector, object, record_id),
    FOREIGN KEY (connector, object, record_id) REFERENCES records (connector, object, id)
) WITHOUT ROWID;

-- How far incremental sync has read, per connector and object kind.
CREATE TABLE watermarks (
    connector   TEXT NOT NULL,
    object      TEXT NOT NULL CHECK (object IN ('lead', 'contact', 'account', 'deal')),
    modified_at TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    -- the CRM's opaque paging cursor, where a pull is between pages
    cursor      TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (connector, object)
) WITHOUT ROWID;

-- Every corrective write, recorded before it is sent and confirmed after.
CREATE TABLE writeback_ledger (
    action_key  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    connector   TEXT NOT NULL,
    -- JSON of the ActionRequest
    request     TEXT NOT NULL,
    state       TEXT NOT NULL
        CHECK (state IN ('pending', 'sent', 'applied', 'failed', 'parked')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    crm_id      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX writeback_ledger_state ON writeback_ledger (state, created_at);
CREATE INDEX writeback_ledger_fingerprint ON writeback_ledger (fingerprint);
"#;

const V2_RECONCILES: &str = r#"
-- A full pull under way, per connector and object kind: when it started and
-- how many records it could not read. At its end, live records it did not
-- see are gone from the CRM, provided it read every one it was given.
CREATE TABLE reconciles (
    connector  TEXT NOT NULL,
    object     TEXT NOT NULL CHECK (object IN ('lead', 'contact', 'account', 'deal')),
    started_at TEXT NOT NULL,
    skipped    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (connector, object)
) WITHOUT ROWID;
"#;

const V3_DELTA_LINKS: &str = r#"
-- Where the next incremental pull starts, for a CRM that hands out a link
-- for it (Dataverse change tracking) instead of being asked by time.
CREATE TABLE delta_links (
    connector  TEXT NOT NULL,
    object     TEXT NOT NULL CHECK (object IN ('lead', 'contact', 'account', 'deal')),
    link       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connector, object)
) WITHOUT ROWID;
"#;

const V4_RECORD_TASKS: &str = r#"
-- When each write was last sent. Recovery settles an unconfirmed write no
-- sooner than its CRM allows after this (a search index's lag, a request
-- the server finishes after its client died), and looks only at what the
-- CRM created since. NULL for writes sent by an earlier version.
ALTER TABLE writeback_ledger ADD COLUMN sent_at TEXT;
-- The key of the task a write creates, updates or completes (the key of its
-- create), so that every write of one task is found together.
ALTER TABLE writeback_ledger ADD COLUMN task_key TEXT;
UPDATE writeback_ledger SET task_key = action_key
    WHERE json_extract(request, '$.kind') = 'create_task';
UPDATE writeback_ledger SET task_key = 'jd' || fingerprint || 't'
    WHERE json_extract(request, '$.kind') = 'complete_task';
CREATE INDEX writeback_ledger_task ON writeback_ledger (task_key)
    WHERE task_key IS NOT NULL;
-- The audit asks which tasks of a record journeyd wrote.
CREATE INDEX writeback_ledger_crm_id ON writeback_ledger (crm_id)
    WHERE crm_id IS NOT NULL;
-- A record's open violations, for the one task that lists them.
CREATE INDEX violations_record ON violations (connector, object, record_id);

-- The one task journeyd keeps per record (`[writeback] tasks =
-- "per_record"`): which it is, what it last said, and whether it is open.
-- A record whose task was completed gets a new one, of the next
-- generation, when it breaks a rule again.
CREATE TABLE record_tasks (
    connector      TEXT NOT NULL,
    object         TEXT NOT NULL CHECK (object IN ('lead', 'contact', 'account', 'deal')),
    record_id      TEXT NOT NULL,
    generation     INTEGER NOT NULL,
    -- the ledger key of its create; the marker line of its text
    task_key       TEXT NOT NULL UNIQUE,
    -- the CRM's id of the task, once its create is confirmed
    task_id        TEXT,
    -- updates sent so far: the next update's number is one more
    updates        INTEGER NOT NULL DEFAULT 0,
    -- the subject last sent; no two open tasks of a connector share one
    subject        TEXT NOT NULL,
    -- digests of what was last sent and of what the CRM confirmed holding
    sent_digest    TEXT,
    written_digest TEXT,
    state          TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (connector, object, record_id)
) WITHOUT ROWID;
CREATE INDEX record_tasks_subject ON record_tasks (connector, subject) WHERE state = 'open';
"#;

const V5_RUN_PROCESSES: &str = r#"
-- A run whose process died stays 'running' no more: the process that runs
-- it is recorded (its pid, and its boot id and start time, which survive
-- pid reuse), and a later command marks the run 'interrupted' once that
-- process is gone. A CHECK constraint cannot be altered, so the table is
-- rebuilt; ids, the AUTOINCREMENT sequence and every reference stay.
CREATE TABLE runs_v5 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('import', 'sync', 'audit', 'writeback')),
    connector   TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted')),
    -- JSON object of the run's counts
    counts      TEXT,
    error       TEXT,
    -- the process running it: pid, and 'BOOT_ID/START_TICKS'
    pid         INTEGER,
    pid_started TEXT
);
INSERT INTO runs_v5 (id, kind, connector, started_at, finished_at, status, counts, error)
    SELECT id, kind, connector, started_at, finished_at, status, counts, error FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v5 RENAME TO runs;
CREATE INDEX runs_kind ON runs (kind, id);
CREATE INDEX runs_running ON runs (id) WHERE status = 'running';
"#;

const V6_VIOLATION_ROWS: &str = concat!(
    r#"
-- A nightly audit that finds what it found yesterday writes no violation
-- row. What changed every night is kept apart from the rows:
-- - when a violation was last seen: an audit that finishes records when it
--   ran, per connector, in `audit_sightings`; a violation still failing
--   was seen then;
-- - a count of days in a message ("in stage decision for 41 days"): the
--   stored message holds a mark in its place and the date the count runs
--   from, and the count is made when the message is read.
-- The rows move to `violation_rows`; `violations` is a view of them with
-- the columns, types and values it always had. References to the table
-- (violation_events.violation_id) follow the rename.
ALTER TABLE violations RENAME TO violation_rows;
-- The records.rowid of the violation's record: the audit reads a chunk's
-- violations as one range of this index, in the order it reads records.
ALTER TABLE violation_rows ADD COLUMN record_rowid INTEGER;
-- The org's date the record entered its stage, where the message counts
-- the days since (where it holds the mark).
ALTER TABLE violation_rows ADD COLUMN stage_since TEXT;
-- 1 while the last audit to judge the record found the violation. An
-- audit marks the rows it no longer finds 0 as it goes, and resolves the
-- open and acknowledged ones when it finishes (an audit that stops first
-- resolves nothing); a suppressed one stays suppressed, and resolves at
-- the end of its suppression if its record still passes.
ALTER TABLE violation_rows ADD COLUMN failing INTEGER NOT NULL DEFAULT 1
    CHECK (failing IN (0, 1));
UPDATE violation_rows SET failing = 0 WHERE status = 'resolved';
-- What an audit's end resolves: few rows, so a partial index.
CREATE INDEX violation_rows_passing ON violation_rows (connector)
    WHERE failing = 0 AND status IN ('open', 'acknowledged');
UPDATE violation_rows SET record_rowid = (
    SELECT r.rowid FROM records r
    WHERE r.connector = violation_rows.connector AND r.object = violation_rows.object
      AND r.id = violation_rows.record_id);
CREATE INDEX violation_rows_record_rowid ON violation_rows (record_rowid);
-- An audit's end walks a connector's open violations for those whose
-- record it did not judge; the list filter by connector and status uses
-- it too.
DROP INDEX violations_connector;
CREATE INDEX violation_rows_connector ON violation_rows (connector, status, record_rowid);
-- The summary by rule, stage and status after each audit reads this index
-- in order instead of sorting every row; the list filter by rule uses it.
DROP INDEX violations_rule;
CREATE INDEX violation_rows_rule ON violation_rows (rule, stage, status);
-- A record's violations are found by its rowid now.
DROP INDEX violations_record;

-- The last audit of each connector that ran to its end, and when it
-- started: every open or acknowledged violation of the connector, and
-- every suppressed one still failing, was seen then.
CREATE TABLE audit_sightings (
    connector TEXT PRIMARY KEY,
    run_id    INTEGER NOT NULL REFERENCES runs (id),
    at        TEXT NOT NULL
) WITHOUT ROWID;

-- A CAST keeps each computed column's declared type; `last_run` is a
-- column of `runs`, so that it is declared INTEGER like the others.
"#,
    violations_view!(),
    r#";

-- What the last audit derived of each record: the day it entered its stage
-- rather than the days since, which change every day.
ALTER TABLE record_state ADD COLUMN stage_entered_on TEXT;
UPDATE record_state SET stage_entered_on = date('now', '-' || days_in_stage || ' days')
    WHERE days_in_stage IS NOT NULL;
UPDATE record_state SET days_in_stage = NULL;
"#
);

const V7_CHECKS_AS_COMPARISONS: &str = concat!(
    r#"
-- A CHECK's `IN` list of more than two values makes SQLite build a lookup
-- table each time the statement runs, and the audit runs one insert per
-- violation and per event: written out as comparisons, the checks cost
-- next to nothing. The two tables written a row per violation are rebuilt
-- with their checks so written; their columns and values stay.
--
-- The fingerprint, a random hex string, loses its UNIQUE index: every
-- insert landed on a random page of an index of the whole 32 characters,
-- larger than the page cache at a million records. An index of its first
-- 12 characters (48 bits) is under half the size; lookups by fingerprint
-- go through it and compare the whole. The audit keeps fingerprints
-- unique: it inserts only what its record's stored rows do not hold.
DROP VIEW violations;

CREATE TABLE violation_rows_v7 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint      TEXT NOT NULL,
    connector        TEXT NOT NULL,
    object           TEXT NOT NULL CHECK (object = 'lead' OR object = 'contact'
                                          OR object = 'account' OR object = 'deal'),
    record_id        TEXT NOT NULL,
    record_name      TEXT,
    record_url       TEXT,
    rule             TEXT NOT NULL,
    severity         INTEGER NOT NULL CHECK (severity = 0 OR severity = 1 OR severity = 2),
    stage            TEXT,
    owner_id         TEXT,
    owner_role       TEXT,
    message          TEXT NOT NULL,
    action           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status = 'open' OR status = 'acknowledged'
                                          OR status = 'suppressed' OR status = 'resolved'),
    status_reason    TEXT,
    suppressed_until TEXT,
    first_seen       TEXT NOT NULL,
    last_seen        TEXT NOT NULL,
    last_run         INTEGER REFERENCES runs (id),
    resolved_at      TEXT,
    record_rowid     INTEGER,
    stage_since      TEXT,
    failing          INTEGER NOT NULL DEFAULT 1 CHECK (failing = 0 OR failing = 1)
);
INSERT INTO violation_rows_v7 (id, fingerprint, connector, object, record_id, record_name,
    record_url, rule, severity, stage, owner_id, owner_role, message, action, status,
    status_reason, suppressed_until, first_seen, last_seen, last_run, resolved_at,
    record_rowid, stage_since, failing)
SELECT id, fingerprint, connector, object, record_id, record_name,
    record_url, rule, severity, stage, owner_id, owner_role, message, action, status,
    status_reason, suppressed_until, first_seen, last_seen, last_run, resolved_at,
    record_rowid, stage_since, failing
FROM violation_rows ORDER BY id;
-- An id is never reused: the new table counts on from where the old one
-- stopped, not from its largest id.
UPDATE sqlite_sequence
    SET seq = coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'violation_rows'), seq)
    WHERE name = 'violation_rows_v7';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'violation_rows_v7', seq FROM sqlite_sequence WHERE name = 'violation_rows'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'violation_rows_v7');
DROP TABLE violation_rows;
ALTER TABLE violation_rows_v7 RENAME TO violation_rows;
CREATE INDEX violation_rows_fingerprint ON violation_rows (substr(fingerprint, 1, 12));
CREATE INDEX violations_status ON violation_rows (status, severity);
CREATE INDEX violations_owner ON violation_rows (owner_id);
CREATE INDEX violation_rows_passing ON violation_rows (connector)
    WHERE failing = 0 AND status IN ('open', 'acknowledged');
CREATE INDEX violation_rows_record_rowid ON violation_rows (record_rowid);
-- A connector's violations by status and by the kind of write they call
-- for: write-back looks for open ones of a kind (a field's value, say, of
-- which there may be none) without reading every open violation; an
-- audit's end and the list filter by connector and status read its front.
CREATE INDEX violation_rows_connector ON violation_rows
    (connector, status, json_extract(action, '$.kind'), record_rowid);
CREATE INDEX violation_rows_rule ON violation_rows (rule, stage, status);

CREATE TABLE violation_events_v7 (
    id           INTEGER PRIMARY KEY,
    violation_id INTEGER NOT NULL REFERENCES violation_rows (id),
    at           TEXT NOT NULL,
    run_id       INTEGER REFERENCES runs (id),
    -- 'journeyd' for audits, the admin's name otherwise
    actor        TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind = 'opened' OR kind = 'reopened'
        OR kind = 'resolved' OR kind = 'acknowledged' OR kind = 'suppressed'
        OR kind = 'unsuppressed'),
    from_status  TEXT CHECK (from_status = 'open' OR from_status = 'acknowledged'
        OR from_status = 'suppressed' OR from_status = 'resolved'),
    to_status    TEXT NOT NULL CHECK (to_status = 'open' OR to_status = 'acknowledged'
        OR to_status = 'suppressed' OR to_status = 'resolved'),
    reason       TEXT
);
INSERT INTO violation_events_v7 (id, violation_id, at, run_id, actor, kind, from_status,
    to_status, reason)
SELECT id, violation_id, at, run_id, actor, kind, from_status, to_status, reason
FROM violation_events ORDER BY id;
DROP TABLE violation_events;
ALTER TABLE violation_events_v7 RENAME TO violation_events;
CREATE INDEX violation_events_violation ON violation_events (violation_id, id);

"#,
    violations_view!(),
    ";\n"
);

const V8_AUDIT_QUEUE: &str = r#"
-- The records an audit must judge again: those whose inputs changed since
-- they were last judged. Triggers fill it; the audit takes a record out
-- when it has judged it, if its `mark` is still the one it read, so that a
-- change made while the audit ran is judged by the next one. A nightly
-- audit judges these and leaves every other record's violations as they
-- are.
CREATE TABLE audit_queue (
    record_rowid INTEGER PRIMARY KEY,
    mark         INTEGER NOT NULL
);

-- A record's own row, and the live records that share a duplicate key
-- with it (their peers changed).
CREATE TRIGGER audit_queue_record_inserted AFTER INSERT ON records
BEGIN
    INSERT INTO audit_queue (record_rowid, mark) VALUES (new.rowid, random())
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector AND email_key = new.email_key
          AND email_key IS NOT NULL AND deleted_at IS NULL
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector AND domain_key = new.domain_key
          AND domain_key IS NOT NULL AND deleted_at IS NULL
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
END;
CREATE TRIGGER audit_queue_record_changed AFTER UPDATE ON records
WHEN old.snapshot IS NOT new.snapshot OR old.deleted_at IS NOT new.deleted_at
  OR old.email_key IS NOT new.email_key OR old.domain_key IS NOT new.domain_key
BEGIN
    INSERT INTO audit_queue (record_rowid, mark) VALUES (new.rowid, random())
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector AND email_key IN (old.email_key, new.email_key)
          AND email_key IS NOT NULL AND deleted_at IS NULL
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector AND domain_key IN (old.domain_key, new.domain_key)
          AND domain_key IS NOT NULL AND deleted_at IS NULL
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
END;
CREATE TRIGGER audit_queue_stage_history AFTER INSERT ON stage_history
BEGIN
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector AND object = new.object AND id = new.record_id
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
END;
-- A task journeyd created is never evidence for a rule: once the CRM's id
-- of the task is known, its record is judged again.
CREATE TRIGGER audit_queue_own_task_created AFTER INSERT ON writeback_ledger
WHEN new.crm_id IS NOT NULL AND json_extract(new.request, '$.kind') = 'create_task'
BEGIN
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector
          AND object = json_extract(new.request, '$.object')
          AND id = json_extract(new.request, '$.record_id')
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
END;
CREATE TRIGGER audit_queue_own_task_confirmed AFTER UPDATE OF crm_id ON writeback_ledger
WHEN new.crm_id IS NOT NULL AND old.crm_id IS NOT new.crm_id
  AND json_extract(new.request, '$.kind') = 'create_task'
BEGIN
    INSERT INTO audit_queue (record_rowid, mark)
        SELECT rowid, random() FROM records
        WHERE connector = new.connector
          AND object = json_extract(new.request, '$.object')
          AND id = json_extract(new.request, '$.record_id')
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
END;

-- Owners feed every record of their connector (names, roles, who is
-- active): a change counts up the connector's generation, and an audit
-- that finds it moved judges the whole connector again.
CREATE TABLE owner_generations (
    connector  TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER owner_generation_inserted AFTER INSERT ON owners
BEGIN
    INSERT INTO owner_generations (connector, generation) VALUES (new.connector, 1)
        ON CONFLICT (connector) DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER owner_generation_changed AFTER UPDATE ON owners
WHEN (old.name, old.email, old.active, old.teams) IS NOT (new.name, new.email, new.active, new.teams)
BEGIN
    INSERT INTO owner_generations (connector, generation) VALUES (new.connector, 1)
        ON CONFLICT (connector) DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER owner_generation_deleted AFTER DELETE ON owners
BEGIN
    INSERT INTO owner_generations (connector, generation) VALUES (old.connector, 1)
        ON CONFLICT (connector) DO UPDATE SET generation = generation + 1;
END;

-- What the last whole audit of each connector judged its records under: a
-- digest of the config the rules read, and the owners' generation. An
-- audit that finds either changed, or no row, judges the whole connector.
CREATE TABLE audit_basis (
    connector        TEXT PRIMARY KEY,
    digest           TEXT NOT NULL,
    owner_generation INTEGER NOT NULL,
    run_id           INTEGER NOT NULL REFERENCES runs (id)
) WITHOUT ROWID;

-- The org's date from which time alone may change what the rules find on
-- a record (it stalls that day; an expression reads the clock): an audit
-- from that date judges it again. NULL when only a change can.
ALTER TABLE record_state ADD COLUMN recheck_on TEXT;
CREATE INDEX record_state_recheck ON record_state (recheck_on) WHERE recheck_on IS NOT NULL;
"#;

/// The trigger that notes a record whose task row moved (`$event` is
/// INSERT, UPDATE or DELETE; `$row` the row's name in it). A task whose
/// record is not stored takes the basis away: its record cannot be noted.
macro_rules! plan_dirty_task_trigger {
    ($name:literal, $event:literal, $row:literal) => {
        concat!(
            "CREATE TRIGGER plan_dirty_task_",
            $name,
            " AFTER ",
            $event,
            " ON record_tasks\n",
            "WHEN EXISTS (SELECT 1 FROM plan_basis WHERE connector = ",
            $row,
            ".connector)\n",
            "BEGIN\n",
            "    INSERT INTO plan_dirty (record_rowid, mark)\n",
            "        SELECT rowid, random() FROM records\n",
            "        WHERE connector = ",
            $row,
            ".connector AND object = ",
            $row,
            ".object\n",
            "          AND id = ",
            $row,
            ".record_id\n",
            "        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;\n",
            "    DELETE FROM plan_basis WHERE connector = ",
            $row,
            ".connector\n",
            "        AND NOT EXISTS (SELECT 1 FROM records WHERE connector = ",
            $row,
            ".connector\n",
            "                        AND object = ",
            $row,
            ".object AND id = ",
            $row,
            ".record_id);\n",
            "END;\n"
        )
    };
}

/// The trigger that notes the record of a task whose write moved in the
/// ledger on `$event`, when `$when` holds.
macro_rules! plan_dirty_ledger_trigger {
    ($name:literal, $event:literal, $when:literal) => {
        concat!(
            "CREATE TRIGGER ",
            $name,
            " AFTER ",
            $event,
            " ON writeback_ledger\n",
            "WHEN ",
            $when,
            "\n",
            "BEGIN\n",
            "    INSERT INTO plan_dirty (record_rowid, mark)\n",
            "        SELECT r.rowid, random() FROM record_tasks t\n",
            "        JOIN records r ON r.connector = t.connector AND r.object = t.object\n",
            "            AND r.id = t.record_id\n",
            "        WHERE t.task_key = new.task_key\n",
            "          AND EXISTS (SELECT 1 FROM plan_basis WHERE connector = t.connector)\n",
            "        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;\n",
            "END;\n"
        )
    };
}

const V9_PLAN_STATE: &str = concat!(
    r#"
-- What the write-back planner found for each record whose task needs a
-- write, so that a plan judges only the records whose inputs changed since
-- the last one (`src/store/plan_state.rs`). Internal: derived from the
-- tables above, and remade whole whenever its basis does not match.
--
-- The config the classes were judged under (a digest of the write-back
-- policy, the journey's roles, the fallback owners and journeyd's version)
-- and the owners' generation they saw. No row: the next plan judges every
-- record of the connector. A digest of '' marks a whole plan under way:
-- the triggers below already note changes for it.
CREATE TABLE plan_basis (
    connector        TEXT PRIMARY KEY,
    digest           TEXT NOT NULL,
    owner_generation INTEGER NOT NULL
) WITHOUT ROWID;
-- Records whose task needs a write (class 1), has a write in flight or
-- waiting for an admin (2), or would be created but nobody can take it
-- (3), by the rank of their most severe violation calling for a task (-1:
-- none left). A record that needs nothing has no row.
CREATE TABLE plan_records (
    record_rowid INTEGER PRIMARY KEY,
    connector    TEXT NOT NULL,
    class        INTEGER NOT NULL CHECK (class = 1 OR class = 2 OR class = 3),
    rank         INTEGER NOT NULL
);
CREATE INDEX plan_records_class ON plan_records (connector, class, rank DESC, record_rowid);
-- Records whose inputs changed since the last plan; a plan takes a record
-- out only if its `mark` is still the one it read.
CREATE TABLE plan_dirty (
    record_rowid INTEGER PRIMARY KEY,
    mark         INTEGER NOT NULL
);

-- What a record's task says and whom it is for: its open violations (their
-- fingerprints, severities, roles and action), its name, its owner and
-- stage, its task row and that task's writes. Noted only while the
-- connector has a basis: without one, the next plan judges everything.
-- A violation stored without its record cannot be noted by record: the
-- basis goes, and the next plan judges every record.
-- The audit notes the violations it inserts and the stages it changes
-- itself (`src/store/audit.rs`): a trigger on those inserts would make
-- each of them open a statement journal, the costliest part of a first
-- audit.
CREATE TRIGGER plan_dirty_violation_changed
AFTER UPDATE OF status, severity, action, fingerprint, record_name, owner_role, rule, stage,
    record_rowid ON violation_rows
WHEN (old.status, old.severity, old.action, old.fingerprint, old.record_name, old.owner_role,
      old.rule, old.stage, old.record_rowid)
  IS NOT (new.status, new.severity, new.action, new.fingerprint, new.record_name,
          new.owner_role, new.rule, new.stage, new.record_rowid)
  AND EXISTS (SELECT 1 FROM plan_basis WHERE connector = new.connector)
BEGIN
    INSERT INTO plan_dirty (record_rowid, mark)
        SELECT rowid, random() FROM (SELECT old.record_rowid AS rowid UNION SELECT new.record_rowid)
        WHERE rowid IS NOT NULL
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
    DELETE FROM plan_basis WHERE connector = new.connector
        AND (old.record_rowid IS NULL OR new.record_rowid IS NULL);
END;
CREATE TRIGGER plan_dirty_violation_deleted AFTER DELETE ON violation_rows
WHEN EXISTS (SELECT 1 FROM plan_basis WHERE connector = old.connector)
BEGIN
    INSERT INTO plan_dirty (record_rowid, mark)
        SELECT old.record_rowid, random() WHERE old.record_rowid IS NOT NULL
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
    DELETE FROM plan_basis WHERE connector = old.connector AND old.record_rowid IS NULL;
END;
CREATE TRIGGER plan_dirty_record_changed AFTER UPDATE OF owner_id, snapshot, deleted_at ON records
WHEN (old.owner_id IS NOT new.owner_id OR old.deleted_at IS NOT new.deleted_at
      OR json_extract(old.snapshot, '$.name') IS NOT json_extract(new.snapshot, '$.name'))
  AND EXISTS (SELECT 1 FROM plan_basis WHERE connector = new.connector)
BEGIN
    INSERT INTO plan_dirty (record_rowid, mark) VALUES (new.rowid, random())
        ON CONFLICT (record_rowid) DO UPDATE SET mark = excluded.mark;
END;
"#,
    plan_dirty_task_trigger!("inserted", "INSERT", "new"),
    plan_dirty_task_trigger!("changed", "UPDATE", "new"),
    plan_dirty_task_trigger!("deleted", "DELETE", "old"),
    r#"
-- A task's writes move through the ledger (staged, sent, applied, failed,
-- parked): each move may change what its record's task needs.
"#,
    plan_dirty_ledger_trigger!(
        "plan_dirty_task_write",
        "INSERT",
        "new.task_key IS NOT NULL"
    ),
    plan_dirty_ledger_trigger!(
        "plan_dirty_task_write_moved",
        "UPDATE OF state, attempts",
        "new.task_key IS NOT NULL AND (old.state, old.attempts) IS NOT (new.state, new.attempts)"
    ),
);

const V10_DEFERRED_INDEXES: &str = r#"
-- The violations log's lookup indexes a first audit set aside, to build
-- them from the full log at its end (`src/store/log_indexes.rs`): each
-- one's definition, until it is built again. Internal.
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY,
    sql  TEXT NOT NULL
) WITHOUT ROWID;
"#;

const V11_SEVERITY_ORDER: &str = r#"
-- Lists read the log most severe first, newest first within a severity,
-- one severity at a time: these indexes hold that order (severity, then
-- the id; a rule's by rule first), so a page of a list, or the page after
-- a given row, is a seek and a short walk however large the log. A rule's
-- violations all have the rule's severity, bar a change of config: without
-- the second index, a page of a low rule would walk every row of higher
-- severity first. Internal.
CREATE INDEX violation_rows_severity ON violation_rows (severity);
CREATE INDEX violation_rows_rule_severity ON violation_rows (rule, severity);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }
}
