//! What an emulator starts with: the seed and size of its data, its
//! credentials, and the knobs for every behaviour the facts leave open
//! (each (?) fact is a knob here, not a constant).

use super::object::ObjectType;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;
use std::time::Duration;

/// Everything [`super::HubspotEmulator::start`] needs. `Default` gives a
/// small portal (60 deals) with HubSpot's published limits.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Drives every random choice of the seeded data and of the fault
    /// injection: the same seed gives the same portal.
    pub seed: u64,
    /// "Now" for the seeded data: every date is placed relative to it.
    /// Default 2026-03-02T09:00:00Z; `journeyd demo` passes the real now.
    pub now: DateTime<Utc>,
    /// Whether the emulator's clock runs from `now` in real time (default)
    /// or stands still; writes stamp a strictly increasing time either way.
    pub clock: ClockMode,
    pub sizes: SeedSizes,
    pub credentials: Credentials,
    pub knobs: Knobs,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            now: Utc
                .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
                .single()
                .expect("a valid literal date"),
            clock: ClockMode::Running,
            sizes: SeedSizes::default(),
            credentials: Credentials::default(),
            knobs: Knobs::default(),
        }
    }
}

impl EmulatorConfig {
    /// The default portal with `deals` deals and contacts and companies in
    /// proportion (two contacts and half a company per deal).
    pub fn with_deals(deals: usize) -> Self {
        Self {
            sizes: SeedSizes::for_deals(deals),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// Time passes from `now` as it does on the wall.
    Running,
    /// Time stays at `now` (and whatever `set_clock` says) except that
    /// each write still moves it on by a millisecond.
    Frozen,
}

/// How much seeded data the portal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSizes {
    pub deals: usize,
    pub contacts: usize,
    pub companies: usize,
    /// Active owners; at least 6, so every team is staffed.
    pub owners: usize,
    /// Deactivated owners, listed only with `archived=true`; some deals
    /// still point at them.
    pub archived_owners: usize,
}

impl Default for SeedSizes {
    fn default() -> Self {
        Self::for_deals(60)
    }
}

impl SeedSizes {
    pub fn for_deals(deals: usize) -> Self {
        Self {
            deals,
            contacts: deals * 2,
            companies: deals.div_ceil(2).max(1),
            owners: 12,
            archived_owners: 2,
        }
    }
}

/// The secrets the emulator accepts. Fake, fixed values: the emulator runs
/// on loopback only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// A private app access token, valid for ever.
    pub private_app_token: String,
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token valid at start.
    pub refresh_token: String,
    /// The portal (hub) id returned with OAuth tokens.
    pub portal_id: u64,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            private_app_token: "pat-na1-11111111-2222-4333-8444-555555555555".into(),
            client_id: "0c7a1c9e-5f3b-4d2a-9e8f-1a2b3c4d5e6f".into(),
            client_secret: "3f6a2b1c-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into(),
            refresh_token: "na1-6d2f-41c8-9b7e-0a5c3e8f1d24".into(),
            portal_id: 4_242_424,
        }
    }
}

/// Behaviour switches. All can also be changed while the emulator runs
/// ([`super::HubspotEmulator::set_knobs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    pub limits: RateLimitKnobs,
    /// `expires_in` of OAuth access tokens (1800 s (?)).
    pub access_token_ttl: Duration,
    /// Each refresh issues a new refresh token and retires the old one.
    pub rotate_refresh_tokens: bool,
    pub list: ListKnobs,
    pub search: SearchKnobs,
    /// Inputs per batch call before the whole call is refused (100 (?)).
    pub batch_max: usize,
    /// Inputs per v4 association batch read before the call is refused
    /// (1,000 since the 2025-02 changelog, fact 6.14).
    pub associations_batch_max: usize,
    /// How long a write takes to reach the search index (fact 6.14: HubSpot
    /// search is eventually consistent; integrations wait about 10 s). A
    /// record created, changed or archived shows in `/search` as it was
    /// before, or not at all, until this much time has passed since its
    /// latest write; reads by id, lists and v4 association reads see every
    /// write at once. Zero: search is current.
    pub search_lag: Duration,
    /// `Some(pause)`: a batch create runs in a task of its own that
    /// outlives the request, committing one input at a time with `pause`
    /// after each, and answers when all are done. A client that gives up
    /// mid-way leaves the server finishing the rest, as HubSpot (like any
    /// server) goes on with a request its client abandoned.
    pub detached_batch_create: Option<Duration>,
    /// What a batch update naming an id the portal does not have (never
    /// created, or archived) gets.
    pub missing_in_batch_update: MissingInUpdate,
    /// Error rows of a batch create name the input's `objectWriteTraceId`
    /// in `context.objectWriteTraceId` (HubSpot's multi-status errors);
    /// off, a row names no input, as HubSpot's older batch answers did.
    pub trace_ids_in_errors: bool,
    /// Batch results come back in reverse input order (HubSpot does not
    /// promise any order).
    pub reverse_batch_results: bool,
    /// Setting an earlier lifecycle stage is silently ignored (facts 3.4;
    /// one source says v3 allows any direction).
    pub lifecycle_forward_only: bool,
    /// A requested property with no value comes back as `null` rather
    /// than being left out.
    pub null_for_unset: bool,
    /// The largest `limit` the owners list accepts (larger is refused).
    pub owners_max_limit: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            limits: RateLimitKnobs::default(),
            access_token_ttl: Duration::from_secs(1800),
            rotate_refresh_tokens: false,
            list: ListKnobs::default(),
            search: SearchKnobs::default(),
            batch_max: 100,
            associations_batch_max: 1000,
            search_lag: Duration::from_secs(1),
            detached_batch_create: None,
            missing_in_batch_update: MissingInUpdate::ErrorRow,
            trace_ids_in_errors: true,
            reverse_batch_results: false,
            lifecycle_forward_only: true,
            null_for_unset: true,
            owners_max_limit: 500,
        }
    }
}

/// A batch update naming an id the portal does not have. The sources do
/// not say which HubSpot does (?), so a client must read both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingInUpdate {
    /// A 207 whose `OBJECT_NOT_FOUND` error row names the id in
    /// `context.ids`; the other inputs are written.
    ErrorRow,
    /// The whole call is refused: 404 `OBJECT_NOT_FOUND` naming the ids in
    /// `context.ids`, and nothing is written.
    WholeBatch,
}

/// Request limits (facts 3.5); `None` lifts a limit, for benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitKnobs {
    /// Requests per rolling 10 seconds across every route but search (100).
    pub ten_secondly: Option<u32>,
    /// Search requests per second (5 (?); 4 historically).
    pub search_per_second: Option<u32>,
    /// Requests per day, search included (250,000); never resets by itself.
    pub daily: Option<u32>,
    /// Adds `Retry-After` to the emulator's own 429s (the recorded search
    /// 429 has none).
    pub retry_after: Option<Duration>,
}

impl Default for RateLimitKnobs {
    fn default() -> Self {
        Self {
            ten_secondly: Some(100),
            search_per_second: Some(5),
            daily: Some(250_000),
            retry_after: None,
        }
    }
}

impl RateLimitKnobs {
    /// No limit at all, for benchmarks.
    pub fn unlimited() -> Self {
        Self {
            ten_secondly: None,
            search_per_second: None,
            daily: None,
            retry_after: None,
        }
    }
}

/// `GET /crm/v3/objects/{type}` paging (facts 3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKnobs {
    /// `limit` when the request names none (10).
    pub default_limit: usize,
    /// The largest `limit` (100 (?)).
    pub max_limit: usize,
    /// The largest `limit` with `propertiesWithHistory` (50 (?)).
    pub history_max_limit: usize,
    /// What a larger `limit` gets.
    pub over_max: OverMax,
    /// Of these object types, every list request with an `after` is
    /// answered 400 `VALIDATION_ERROR`, as a refused cursor would be:
    /// HubSpot publishes neither an expiry of `after` nor how a stale one
    /// is refused (?).
    pub refuse_after: BTreeSet<ObjectType>,
    /// A faulty server, not a HubSpot behaviour: of these object types, a
    /// list page asked with an `after` names that same `after` as its
    /// next, so paging never ends.
    pub repeat_after: BTreeSet<ObjectType>,
}

impl Default for ListKnobs {
    fn default() -> Self {
        Self {
            default_limit: 10,
            max_limit: 100,
            history_max_limit: 50,
            over_max: OverMax::Reject,
            refuse_after: BTreeSet::new(),
            repeat_after: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverMax {
    /// 400 VALIDATION_ERROR.
    Reject,
    /// Served at the maximum.
    Clamp,
}

/// `POST /crm/v3/objects/{type}/search` (facts 3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchKnobs {
    /// The largest `limit`; larger is a 400 (200).
    pub max_limit: usize,
    /// Results one query can page through; `after` at or past it is a
    /// 400 (10,000).
    pub cap: usize,
    /// Filter groups per query (5; the spec says 6, the Node client 3).
    pub max_groups: usize,
    /// Filters per group (10; the Node client says 3).
    pub max_filters_per_group: usize,
    /// Filters across all groups (25).
    pub max_filters_total: usize,
    /// Honour every sort, not just the first (the Node client says only
    /// one is honoured).
    pub honour_all_sorts: bool,
    /// The order of results that tie on the sort.
    pub ties: TieOrder,
    /// Pages come back short (every odd page holds half the limit) and the
    /// last full page points at one more, empty, page: paging must go on
    /// until `paging` is absent.
    pub ragged_pages: bool,
}

impl Default for SearchKnobs {
    fn default() -> Self {
        Self {
            max_limit: 200,
            cap: 10_000,
            max_groups: 5,
            max_filters_per_group: 10,
            max_filters_total: 25,
            honour_all_sorts: false,
            ties: TieOrder::IdAscending,
            ragged_pages: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieOrder {
    IdAscending,
    IdDescending,
}
