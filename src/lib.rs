//! journeyd keeps an existing CRM honest about the customer journey.
//!
//! Map of the crate (see ARCHITECTURE.md for the invariants):
//! - [`config`]: `journeyd.toml` + `journey.toml` -> a validated [`config::Config`];
//! - [`journey`]: the journey model, CEL criteria, CRM record -> journey record;
//! - [`rules`]: journey record -> violations; pure;
//! - [`store`]: the SQLite state file; the only module that speaks SQL.

pub mod config;
pub mod journey;
pub mod rules;
pub mod store;
