//! The one HTTP client every connector talks through.
//!
//! It owns everything generic about speaking to a CRM's API: the base URL
//! (https, or plain http for loopback hosts only), bearer authentication
//! (a fixed token, or OAuth2 tokens refreshed before expiry and once on a
//! 401), a `governor` rate limiter per bucket, retry with backoff on 429,
//! 5xx and timeouts that honours the server's own wait hints within a retry
//! budget, and a tracing span per call. What differs between CRMs (how an
//! error body reads, which 429 means "wait" and which means "come back
//! tomorrow", which headers pace the next call) is a [`Dialect`]; dialects
//! read `Retry-After` with [`retry_after`].
//!
//! No header, token or query string ever reaches a span, a log line or an
//! error message: spans carry the route template, never the concrete URL.

mod auth;
mod client;
mod dialect;
mod limits;
mod retry;

pub use auth::{AuthSettings, TokenStore, TokenStoreError};
pub use client::{
    Call, CallStats, HttpClient, HttpResponse, HttpSettings, InstanceCheck, Resend, TOKEN_ROUTE,
    Target,
};
pub use dialect::{Dialect, Failure, Verdict, retry_after};
pub use limits::{Bucket, RateLimits};
pub use retry::RetryPolicy;
