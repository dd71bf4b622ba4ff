//! Configuration: the daemon config (`journeyd.toml`) and the journey it
//! names (`journey.toml`), parsed, then validated once into typed values.

pub mod model;

pub use model::*;
