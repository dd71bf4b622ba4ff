//! A loopback emulator of the Dataverse Web API, built from the published
//! API facts, never from this crate's client wire types.
