//! The contract between journeyd and its CRM connectors.
//!
//! Map of the crate:
//! - [`record`]: the connector-neutral [`CrmRecord`] every connector produces, and
//!   its parts (owners, tasks, stage changes, associations);
//! - [`ids`]: newtypes for the identifiers that cross the boundary;
//! - [`action`]: the corrective actions journeyd asks a connector to write back,
//!   and what became of each;
//! - [`page`]: one page of pulled data, with the records that had to be skipped;
//! - [`error`]: [`ConnectorError`], which says whether a retry can help;
//! - [`connector`]: the [`Connector`] trait itself;
//! - [`http`]: the one HTTP client (auth, rate limits, retries, telemetry);
//! - [`secret`]: the redacting type every credential is held in;
//! - [`traced`]: the `page` and `write` spans every connector's calls run in;
//! - `emulator` (feature `emulator`): the loopback server harness every
//!   connector's emulator is built on;
//! - `testkit` (feature `testkit`): the conformance suite.
//!
//! This crate knows no CRM: what differs between them is behind the
//! [`http::Dialect`] trait and in the connector crates.

pub mod action;
pub mod connector;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
pub mod http;
pub mod ids;
pub mod page;
pub mod record;
pub mod secret;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod traced;

pub use action::{ActionKey, ActionOutcome, ActionRequest, ActionResult, Priority};
pub use connector::{Connector, PullFrom, Recovery};
pub use error::{ConnectorError, Retry};
pub use ids::{ConnectorName, OwnerId, RecordId};
pub use page::{Page, Skipped, Watermark};
pub use record::{
    Associations, CrmRecord, ObjectKind, Owner, StageChange, System, TaskRef, TaskStatus,
};
