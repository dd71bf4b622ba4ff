//! journeyd's Dynamics 365 connector, speaking the Dataverse Web API
//! (OData v4).
//!
//! Map of the crate:
//! - [`settings`]: what the daemon's config tells the connector (environment
//!   URL, Entra tenant and app, limits, paging and batch knobs, which tables
//!   are read by change tracking, stage and lifecycle columns); owned here,
//!   built by the daemon's config;
//! - [`connector`]: [`DynamicsConnector`], the contract's `Connector`, and
//!   the calls every part goes through (reads, `$batch`es, the teams and
//!   choice option sets it learns once);
//! - `odata`: `$filter` literals (quotes doubled, GUIDs checked), column
//!   names and query encoding;
//! - `wire`: Dataverse's JSON as the client reads it (pages, errors,
//!   annotations, choice metadata);
//! - `batch`: the multipart `$batch` body and its answer, part by part;
//! - `dialect`: how Dataverse's failures and service-protection limits read;
//! - `normalize`: annotated rows to records, tasks and owners;
//! - `pull`: pages of records (change tracking with delta links, or a
//!   `modifiedon` watermark; a page of deals gets its tasks in one
//!   `$batch`), and owners;
//! - [`task_id`](mod@task_id): the primary key journeyd gives each task it
//!   creates, a v5 UUID of the action key;
//! - `writeback`: tasks (created by that key, insert only), their updates
//!   and completions, and column values in `$batch`es; finding what
//!   earlier versions wrote;
//!
//! Call counts: a full read of N rows of a table is `ceil(N / page_size)`
//! GETs (5,000 rows a page at most); of N deals, twice that (each page's
//! tasks come in one `$batch`); owners are the users' pages plus one read
//! of the teams. A delta pull costs a call per page of changes, at least
//! one. Writes cost one `$batch` per `batch_limit` (at most 1,000) actions,
//! plus one metadata read per choice column written, once per connector,
//! plus, under a task alternate key, one `$batch` of reads per call in
//! which creates found their task already there (to read its id).
//!
//! The loopback emulator of this API is the crate `journeyd-dynamics-emulator`,
//! beside this one: it shares no code with this client, so that a mistake
//! in the client cannot be mirrored by the emulator its tests run against.

mod batch;
pub mod connector;
mod dialect;
mod normalize;
mod odata;
mod pull;
pub mod settings;
pub mod task_id;
mod wire;
mod writeback;

pub use connector::DynamicsConnector;
pub use settings::{DynamicsCredentials, DynamicsSettings};
pub use task_id::{TASK_NAMESPACE, task_id};
