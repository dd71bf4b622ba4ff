//! [`HttpClient`]: send one call, with auth, limits, retries and telemetry.

use super::auth::AuthSettings;
use super::dialect::Dialect;
use super::limits::{Bucket, RateLimits};
use super::retry::RetryPolicy;
use crate::error::ConnectorError;
use crate::ids::ConnectorName;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::HeaderMap;
use std::collections::BTreeMap;
use url::Url;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connector: ConnectorName,
    /// Checked by [`HttpClient::new`]: https, or http to a loopback host.
    pub base_url: Url,
    pub auth: AuthSettings,
    pub limits: RateLimits,
    pub retry: RetryPolicy,
}

/// Where a call goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A path under the base URL, e.g. `/crm/v3/objects/deals`.
    Path(String),
    /// An absolute URL the CRM handed back (a next-page link). Refused
    /// unless it has the base URL's scheme, host and port.
    Absolute(String),
}

/// One API call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// The route template (`/crm/v3/objects/{object}/search`): what spans
    /// and call counts name, since it holds no ids and no query.
    pub route: &'static str,
    pub target: Target,
    pub query: Vec<(String, String)>,
    /// A JSON body, sent with `Content-Type: application/json`.
    pub json: Option<serde_json::Value>,
    pub bucket: Bucket,
}

/// A 2xx response (207 included: partial success is the caller's to read).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Counts of what the client did, for run rows and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP requests sent, retries included, by route template.
    pub requests: BTreeMap<&'static str, u64>,
    pub retries: u64,
    pub token_refreshes: u64,
}

#[derive(Clone)]
pub struct HttpClient {
    _private: (),
}

impl HttpClient {
    pub fn new(settings: HttpSettings, dialect: impl Dialect) -> Result<Self, ConnectorError> {
        let _ = (settings, dialect);
        todo!()
    }

    pub fn connector(&self) -> &ConnectorName {
        todo!()
    }

    /// Sends `call`, retrying as the dialect and policy allow; returns the
    /// first 2xx response, or the error that ended the call.
    pub async fn send(&self, call: Call) -> Result<HttpResponse, ConnectorError> {
        let _ = call;
        todo!()
    }

    pub fn stats(&self) -> CallStats {
        todo!()
    }
}
