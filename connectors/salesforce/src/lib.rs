//! journeyd's Salesforce connector.
//!
//! Map of the crate:
//! - [`settings`]: what the daemon's config tells the connector (login host,
//!   API version, auth kind, limits, paging knobs); owned here, built by the
//!   daemon's config;
//! - [`connector`]: [`SalesforceConnector`], the contract's `Connector`, and
//!   the calls every part goes through (queries, next pages, writes, the
//!   daily-allowance check);
//! - `soql`: query text, with every literal escaped;
//! - `wire`: Salesforce's JSON as the client reads it;
//! - `dialect`: how Salesforce's failures and `Sforce-Limit-Info` read;
//! - `normalize`: rows to records (a deal's stage history, tasks and
//!   contact roles come nested in its row, by sub-queries), owners, stage
//!   changes and tasks;
//! - `pull`: pages of records (each cut child result followed to its end),
//!   owners and deletions;
//! - `writeback`: tasks (created, updated in place, completed) and field
//!   values, what a reply that proves nothing leaves unknown, and finding
//!   what was already written;
//!
//! The loopback emulator of this API is the crate `journeyd-salesforce-emulator`,
//! beside this one: it shares no code with this client, so that a mistake
//! in the client cannot be mirrored by the emulator its tests run against.

pub mod connector;
mod dialect;
mod normalize;
mod pull;
pub mod settings;
mod soql;
mod wire;
mod writeback;

pub use connector::SalesforceConnector;
pub use settings::{SalesforceAuth, SalesforceCredentials, SalesforceSettings};
