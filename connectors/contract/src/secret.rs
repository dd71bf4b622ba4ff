//! Credentials are [`SecretString`]s: their `Debug` is redacted and reading
//! one takes an explicit [`ExposeSecret::expose_secret`], which only the HTTP
//! client's auth code calls.

pub use secrecy::{ExposeSecret, SecretString};
