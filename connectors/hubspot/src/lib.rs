//! journeyd's HubSpot connector.
//!
//! Map of the crate:
//! - [`settings`]: what the daemon's config tells the connector (URLs, auth
//!   kind, limits, paging knobs); owned here, built by the daemon's config;
//! - `wire`: the HubSpot JSON shapes this client reads and writes;
//! - `dialect`: how HubSpot's error bodies and rate-limit headers read;
//! - `pull`: owners, pipelines, list and search paging (the 10,000-result
//!   window restart lives here), archived records;
//! - `normalize`: a HubSpot object -> [`journeyd_connector::CrmRecord`];
//! - `marker`: the action key a task carries on its body's last line;
//! - `writeback`: creating, rewriting and completing tasks, property
//!   updates, what each answer proves, `find_applied`;
//! - [`connector`]: [`HubspotConnector`], the contract's `Connector`;
//!
//! The loopback emulator of this API is the crate `journeyd-hubspot-emulator`,
//! beside this one: it shares no code with this client, so that a mistake
//! in the client cannot be mirrored by the emulator its tests run against.

pub mod connector;
mod dialect;
mod marker;
mod normalize;
mod pull;
pub mod settings;
mod wire;
mod writeback;

pub use connector::HubspotConnector;
pub use settings::{HubspotAuth, HubspotCredentials, HubspotSettings, TaskReading};
