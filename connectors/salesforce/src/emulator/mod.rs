//! A loopback emulator of the Salesforce REST API, built from the published
//! API facts, never from this crate's client wire types.
