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
//! - `emulator` (feature `emulator`): a loopback Salesforce built from the
//!   published API facts, never from this crate's client wire types.

pub mod connector;
mod dialect;
mod normalize;
mod pull;
pub mod settings;
mod soql;
mod wire;
mod writeback;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use connector::SalesforceConnector;
pub use settings::{SalesforceAuth, SalesforceCredentials, SalesforceSettings};
