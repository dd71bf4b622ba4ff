//! journeyd's Salesforce connector.
//!
//! Map of the crate:
//! - [`settings`]: what the daemon's config tells the connector (login host,
//!   API version, auth kind, limits, paging knobs); owned here, built by the
//!   daemon's config;
//! - [`connector`]: [`SalesforceConnector`], the contract's `Connector`;
//! - `emulator` (feature `emulator`): a loopback Salesforce built from the
//!   published API facts, never from this crate's client wire types.

pub mod connector;
pub mod settings;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use connector::SalesforceConnector;
pub use settings::{SalesforceAuth, SalesforceCredentials, SalesforceSettings};
