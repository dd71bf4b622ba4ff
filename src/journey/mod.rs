//! The journey: its stages, the roles accountable for them, and the records
//! as the journey sees them.
//!
//! - [`model`]: [`Journey`], [`Stage`], [`StageId`], [`RoleId`], exit criteria;
//! - [`expr`]: CEL expressions, compiled once at config load;
//! - [`record`]: [`JourneyRecord`], a CRM record with the journey's maps applied;
//! - [`normalize`]: turns a `CrmRecord` into a `JourneyRecord` under a
//!   connector's maps.
//!
//! This module does no IO and never reads the clock: `now` is passed in.

pub mod expr;
pub mod model;
pub mod normalize;
pub mod record;

pub use expr::{Expr, ExprError};
pub use model::{Criterion, Journey, RoleId, Stage, StageId};
pub use record::{JourneyRecord, OwnerInfo, StageRef, Step};
