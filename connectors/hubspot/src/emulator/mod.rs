//! A loopback emulator of the HubSpot CRM API, built from the published API
//! facts (see the crate README), never from this crate's client wire types.
