//! journeyd's Dynamics 365 connector, speaking the Dataverse Web API
//! (OData v4).
//!
//! Map of the crate:
//! - `emulator` (feature `emulator`): a loopback Dataverse built from the
//!   published API facts, never from this crate's client wire types.

#[cfg(feature = "emulator")]
pub mod emulator;
