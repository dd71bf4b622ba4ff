//! What a Dataverse emulator starts with: the seed and size of its org, the
//! app registration it accepts, and the knobs for every behaviour the facts
//! leave open (each (?) fact is a knob here, not a constant).

use super::table::Table;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;
use std::time::Duration;

/// Everything [`super::DynamicsEmulator::start`] needs. `Default` gives a
/// small org (40 opportunities) with Dataverse's default limits.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Drives every choice of the seeded data: the same seed, the same org.
    pub seed: u64,
    /// "Now" for the seeded data; the clock runs on from it in real time.
    pub now: DateTime<Utc>,
    pub sizes: SeedSizes,
    pub credentials: Credentials,
    pub knobs: Knobs,
    /// The label of one extra custom option of the opportunity `salesstage`
    /// choice (value 100000000), with one opportunity in it whose name
    /// carries the label too (default `Won't Close`, a quote to escape);
    /// `None` leaves both out.
    pub odd_stage: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            now: Utc
                .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
                .single()
                .expect("a valid literal date"),
            sizes: SeedSizes::default(),
            credentials: Credentials::default(),
            knobs: Knobs::default(),
            odd_stage: Some("Won't Close".into()),
        }
    }
}

impl EmulatorConfig {
    /// The default org with `n` opportunities and the other tables in
    /// proportion.
    pub fn with_opportunities(n: usize) -> Self {
        Self {
            sizes: SeedSizes::for_opportunities(n),
            ..Self::default()
        }
    }
}

/// How much seeded data the org holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSizes {
    pub opportunities: usize,
    pub accounts: usize,
    pub contacts: usize,
    pub leads: usize,
    /// Interactive users besides the application user and the disabled one.
    pub users: usize,
    /// Owner teams; the first five carry the names the shipped config maps.
    pub teams: usize,
}

impl SeedSizes {
    pub fn for_opportunities(n: usize) -> Self {
        Self {
            opportunities: n,
            accounts: (n / 2).max(1),
            contacts: n * 2,
            leads: n,
            users: 8,
            teams: 5,
        }
    }
}

impl Default for SeedSizes {
    fn default() -> Self {
        Self::for_opportunities(40)
    }
}

/// The Entra ID app registration the token endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The directory (tenant) id, a GUID.
    pub tenant: String,
    /// The application (client) id, a GUID.
    pub client_id: String,
    pub client_secret: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            tenant: "8c3dad1d-b6bc-4f8b-939b-8263372eced6".into(),
            client_id: "51f81489-12ee-4a9e-aaae-a2591f45987d".into(),
            client_secret: "emulated~client~secret".into(),
        }
    }
}

/// Behaviour the facts leave open, or limits a test wants lower; changeable
/// at runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// Largest `odata.maxpagesize` honoured, and the default page size
    /// (facts 2.3: 5,000); larger asks are clamped (?).
    pub max_page_size: usize,
    /// Requests per `$batch` (facts 2.4: 1,000); more: 400.
    pub batch_max: usize,
    /// Requests per user per sliding `window` (facts 2.5: 6,000); `None`
    /// lifts the limit.
    pub requests_per_window: Option<u64>,
    /// Execution time per user per `window`, in ms (facts 2.5: 1,200,000);
    /// `None` lifts it.
    pub execution_ms_per_window: Option<u64>,
    /// Execution time charged per request, in ms; a `$batch` is charged
    /// once per request inside it (facts 2.5 say batch execution time counts
    /// in full; the cost of one request is (?), default 1).
    pub request_cost_ms: u64,
    /// The sliding window (facts 2.5: 300 s), measured on the emulator clock.
    pub window: Duration,
    /// Data requests in flight at once (facts 2.5: 52); one more: 429 at once.
    pub concurrency: usize,
    /// How long a data request holds its concurrency slot before it is
    /// answered (?; zero by default; lets a test keep requests in flight).
    pub hold_requests: Duration,
    /// Access token lifetime (facts 2.1: `expires_in` 3599).
    pub token_ttl: Duration,
    /// Whether the token reply carries `ext_expires_in` (facts 2.1: "also
    /// appears in practice" (?)).
    pub ext_expires_in: bool,
    /// Tables whose "track changes" is on (brief: every table by default);
    /// `Prefer: odata.track-changes` on any other is 400 (?).
    pub change_tracking: BTreeSet<Table>,
    /// How long a delta token stays good (facts 2.3:
    /// `ExpireChangeTrackingInDays`, default 7 days), by the emulator clock.
    pub delta_token_ttl: Duration,
    /// The custom text column of an alternate key on tasks
    /// (`new_journeydkey` in tests); `None`: tasks have no alternate key and
    /// no such column (facts 2.4).
    pub task_alternate_key: Option<String>,
    /// Status of the reply to an expired delta token (?; 400).
    pub expired_delta_status: u16,
    /// Error code of that reply (?; `0x80044352`).
    pub expired_delta_code: String,
    /// Every `$skiptoken` (a next link's paging cookie) is refused with 400
    /// "The $skiptoken is not valid.": Dataverse publishes neither how
    /// long a paging cookie stays good nor how a stale one is refused (?).
    pub refuse_skiptokens: bool,
    /// Whether a data request without `OData-MaxVersion: 4.0` and
    /// `OData-Version: 4.0` is refused with 400 (facts 2.1 lists them as
    /// required; whether Dataverse refuses without them is (?); off).
    pub require_odata_headers: bool,
    /// Dataverse finishes a `$batch` after its client has gone (facts 13).
    /// Non-zero: each `$batch` runs in a task of its own, detached from the
    /// request (a client that disconnects does not stop it), one part (or
    /// change set) at a time, waiting this long before each and committing
    /// each as it goes, and answers when all are done. Zero: the batch runs
    /// at once, in the request.
    pub batch_part_delay: Duration,
    /// The largest `$batch` body answered; a larger one is refused whole,
    /// 413, and nothing of it runs. Dataverse publishes no byte limit for
    /// `$batch` (only 1,000 requests), so the size and the error code are
    /// unconfirmed (?).
    pub max_request_bytes: usize,
    /// Status of the refusal of a write that would give a second task the
    /// same alternate key value (`0x80060892`; 412 in third-party reports
    /// (?)).
    pub alt_key_duplicate_status: u16,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            max_page_size: 5_000,
            batch_max: 1_000,
            requests_per_window: Some(6_000),
            execution_ms_per_window: Some(1_200_000),
            request_cost_ms: 1,
            window: Duration::from_secs(300),
            concurrency: 52,
            hold_requests: Duration::ZERO,
            token_ttl: Duration::from_secs(3599),
            ext_expires_in: true,
            change_tracking: Table::ALL.into_iter().collect(),
            delta_token_ttl: Duration::from_secs(7 * 24 * 3600),
            task_alternate_key: None,
            expired_delta_status: 400,
            expired_delta_code: "0x80044352".into(),
            refuse_skiptokens: false,
            require_odata_headers: false,
            batch_part_delay: Duration::ZERO,
            max_request_bytes: 16 * 1024 * 1024,
            alt_key_duplicate_status: 412,
        }
    }
}
