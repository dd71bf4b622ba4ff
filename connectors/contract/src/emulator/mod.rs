//! The loopback server harness every connector's emulator is built on.
//!
//! It knows no CRM. It serves an [`axum::Router`] on `127.0.0.1` ([`EmulatorServer`]),
//! counts every request by route template ([`RequestCounts`]) and injects
//! trouble on demand ([`Faults`]): 429 storms, 5xx, connections cut
//! mid-response, malformed bodies and slow responses. A CRM emulator shapes
//! its own 429 and 5xx replies through [`FaultReplies`] and wraps its router
//! with [`instrument`].
//!
//! Emulators are test and demo machinery: they hold everything in memory and
//! trust their caller.

mod counts;
mod faults;
mod instrument;
mod server;

pub use counts::RequestCounts;
pub use faults::{FaultReplies, Faults, InjectedFaults, PlainReplies, retry_after_value};
pub use instrument::instrument;
pub use server::EmulatorServer;

#[cfg(test)]
mod tests;
