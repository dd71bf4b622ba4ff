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
//! - [`connector`]: the [`Connector`] trait itself.
//!
//! This crate knows no CRM. It does no IO of its own: it only names the shapes
//! that flow between the daemon and the connector crates.

pub mod action;
pub mod connector;
pub mod error;
pub mod ids;
pub mod page;
pub mod record;

pub use action::{ActionKey, ActionOutcome, ActionRequest, ActionResult, Priority};
pub use connector::Connector;
pub use error::{ConnectorError, Retry};
pub use ids::{ConnectorName, OwnerId, RecordId};
pub use page::{Page, Skipped, Watermark};
pub use record::{
    Associations, CrmRecord, ObjectKind, Owner, StageChange, System, TaskRef, TaskStatus,
};
