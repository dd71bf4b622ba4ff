//! [`HttpClient`]: send one call, with auth, limits, retries and telemetry.

use super::auth::{AuthSettings, Authenticator, Credential};
use super::dialect::{Dialect, Failure, Verdict};
use super::limits::{Bucket, Limiters, RateLimits};
use super::retry::{Budget, RetryPolicy};
use crate::error::{ConnectorError, Retry};
use crate::ids::ConnectorName;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Timelike, Utc};
use reqwest::header::{ACCEPT, HeaderMap, HeaderName};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;
use url::{Host, Url};

/// The route template token endpoint requests are counted and logged under.
pub const TOKEN_ROUTE: &str = "token";

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connector: ConnectorName,
    /// Checked by [`HttpClient::new`]: https, or http to a loopback host.
    pub base_url: Url,
    pub auth: AuthSettings,
    pub limits: RateLimits,
    pub retry: RetryPolicy,
    /// When set, API calls go to the `instance_url` the token endpoint
    /// names (Salesforce), once it has passed this check; `base_url` then
    /// only serves until the first token arrives, and is never called.
    pub instance: Option<InstanceCheck>,
}

/// Which hosts a token response's `instance_url` may name. A forged or
/// tampered token response must not redirect the bearer token elsewhere:
/// the URL must be https and its host must match a pattern, or it is plain
/// loopback and so is the token URL (an emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCheck {
    /// Host names, or patterns with a leading `*.` matching any subdomain
    /// (`*.my.salesforce.com`), compared without regard to case.
    pub allowed_hosts: Vec<String>,
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
    /// A body sent as it is, with its content type (a multipart `$batch`);
    /// used when `json` is `None`.
    pub raw: Option<(String, Bytes)>,
    pub bucket: Bucket,
    pub resend: Resend,
    /// Extra request headers (`Sforce-Query-Options`); like every header,
    /// never logged.
    pub headers: Vec<(HeaderName, String)>,
}

/// When a failed call may be sent again within the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A read, or a write that may safely happen twice (setting a field).
    Always,
    /// A write that must not happen twice (creating a record): sent again
    /// only when the CRM certainly did not act on it (it answered 429 or
    /// 401, or no connection was made). After a timeout, a reset or a 5xx
    /// the outcome is unknown and the call ends, so that the caller can
    /// look up what was written before writing anything again.
    OnlyIfNotReceived,
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
    /// HTTP requests sent, retries included, by route template; token
    /// endpoint requests under [`TOKEN_ROUTE`].
    pub requests: BTreeMap<&'static str, u64>,
    /// Requests sent again after a retryable failure (not after a refresh).
    pub retries: u64,
    /// Access tokens obtained from the token endpoint, the first included.
    pub token_refreshes: u64,
    /// 429 answers received, token endpoint included: how often the CRM
    /// said to slow down, whether or not the call was then retried.
    pub throttled: u64,
}

/// The one HTTP client: cheap to clone (the clones share limiters, retry
/// budget, tokens and counts), and safe to use from many tasks at once.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
    /// Turns `true` to stop: see [`HttpClient::stop_on`].
    stop: Option<watch::Receiver<bool>>,
}

struct Inner {
    connector: ConnectorName,
    base_url: Url,
    http: reqwest::Client,
    auth: Authenticator,
    limits: Limiters,
    retry: RetryPolicy,
    budget: Budget,
    dialect: Box<dyn Dialect>,
    counters: Arc<Counters>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("connector", &self.inner.connector)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Checks the settings and builds the client; it sends nothing yet.
    ///
    /// Refuses, as a [`ConnectorError::Transport`] naming the setting, a base
    /// or token URL that is neither https nor plain http to a loopback host,
    /// a base URL with a query string, and a rate limit with a zero period.
    pub fn new(settings: HttpSettings, dialect: impl Dialect) -> Result<Self, ConnectorError> {
        let HttpSettings {
            connector,
            base_url,
            auth,
            limits,
            retry,
            instance,
        } = settings;
        let refuse = |setting: &str, reason: String| ConnectorError::Transport {
            connector: connector.to_string(),
            route: setting.into(),
            reason,
        };
        check_base_url(&base_url).map_err(|reason| refuse("base url", reason.into()))?;
        let limiters = Limiters::new(&limits).map_err(|reason| refuse("rate limits", reason))?;
        let http = reqwest::Client::builder()
            // A redirect could carry the Authorization header elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(retry.timeout)
            .user_agent(concat!("journeyd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| refuse("http client", describe(&err)))?;
        let counters = Arc::new(Counters::default());
        let auth = Authenticator::new(
            &connector,
            auth,
            instance,
            &http,
            retry.timeout,
            retry.max_body,
            &counters,
        )
        .map_err(|reason| refuse("token url", reason))?;
        Ok(Self {
            inner: Arc::new(Inner {
                connector,
                base_url,
                http,
                auth,
                limits: limiters,
                budget: Budget::new(retry.budget),
                retry,
                dialect: Box::new(dialect),
                counters,
            }),
            stop: None,
        })
    }

    /// From now on every wait of this client's calls (the rate limit, a
    /// backoff, a `Retry-After`) ends as soon as `stop` turns `true`, and a
    /// call that would wait, or start, after that ends with
    /// [`ConnectorError::Stopped`]. An attempt already on the wire is not
    /// cut short: its answer is read, so that what it did is known.
    pub fn stop_on(&mut self, stop: watch::Receiver<bool>) {
        self.stop = Some(stop);
    }

    pub fn connector(&self) -> &ConnectorName {
        &self.inner.connector
    }

    /// Sends `call`, retrying as the dialect and policy allow; returns the
    /// first 2xx response, or the error that ended the call.
    pub async fn send(&self, call: Call) -> Result<HttpResponse, ConnectorError> {
        let inner = &*self.inner;
        let mut backoff = inner.retry.backoff();
        let mut attempt = 0u32;
        let mut retries = 0u32;
        let mut reauthenticated = false;
        let started = Instant::now();
        // Why the call has not been answered yet, for a write the window
        // closes on.
        let mut held_back: Option<ConnectorError> = None;
        loop {
            let ready = inner.limits.ready(call.bucket, inner.retry.max_retry_after);
            if let Err(until) = self.unless_stopped(&call, ready).await? {
                return Err(inner.rate_limited_until(&call, until));
            }
            let (error, status, after) = match inner.auth.credential().await {
                // No answer from the token endpoint is as passing as none
                // from the API, and the API has not seen the call.
                Err(error @ ConnectorError::Transport { .. }) => (error, None, None),
                Err(error) => return Err(error),
                Ok(credential) => {
                    if call.resend == Resend::OnlyIfNotReceived
                        && started.elapsed() > inner.retry.send_window
                    {
                        // Sent this late, it could reach the CRM after a
                        // lookup for it has looked: it is not sent at all.
                        return Err(held_back.unwrap_or_else(|| ConnectorError::RateLimited {
                            connector: inner.connector.to_string(),
                            route: call.route.to_owned(),
                            retry: Retry::NextRun,
                        }));
                    }
                    // The instance a token names may change with the token.
                    let url = inner.url_for(&call, credential.instance.as_ref())?;
                    attempt += 1;
                    match inner.attempt(&call, url, &credential, attempt).await {
                        Attempt::Answered(answer) if answer.status.is_success() => {
                            if let Some(wait) = inner.dialect.pace(&answer.headers) {
                                inner.limits.hold(call.bucket, wait);
                            }
                            return Ok(HttpResponse {
                                status: answer.status.as_u16(),
                                headers: answer.headers,
                                body: answer.body,
                            });
                        }
                        Attempt::Answered(answer) => {
                            match inner.judge(&call, &answer, reauthenticated) {
                                Next::Stop(error) => return Err(error),
                                Next::Reauthenticate => {
                                    reauthenticated = true;
                                    inner.auth.reauthenticate(&credential).await?;
                                    continue;
                                }
                                Next::Retry { error, .. }
                                    if call.resend == Resend::OnlyIfNotReceived
                                        && answer.status.is_server_error() =>
                                {
                                    return Err(error);
                                }
                                Next::Retry { after, error } => {
                                    if let Some(wait) = after {
                                        // What one call learnt holds every
                                        // call of its bucket.
                                        inner.limits.hold(call.bucket, wait);
                                        if wait > inner.retry.max_retry_after {
                                            return Err(inner.rate_limited_until(&call, wait));
                                        }
                                    }
                                    (error, Some(answer.status.as_u16()), after)
                                }
                            }
                        }
                        Attempt::TooLarge => {
                            return Err(inner.malformed(&call, &too_large(inner.retry.max_body)));
                        }
                        Attempt::Broken {
                            reason,
                            retryable,
                            received,
                        } => {
                            let error = inner.transport_error(&call, reason);
                            if !retryable || (received && call.resend == Resend::OnlyIfNotReceived)
                            {
                                return Err(error);
                            }
                            (error, None, None)
                        }
                    }
                }
            };
            if retries + 1 >= inner.retry.max_attempts.get() {
                return Err(error);
            }
            let backoff = backoff.next().unwrap_or(inner.retry.max_delay);
            let wait = after.map_or(backoff, |after| after.max(backoff));
            if call.resend == Resend::OnlyIfNotReceived
                && started.elapsed() + wait > inner.retry.send_window
            {
                return Err(error);
            }
            if !inner.budget.take() {
                tracing::warn!(
                    connector = %inner.connector,
                    route = call.route,
                    status,
                    attempt,
                    "retry budget spent"
                );
                return Err(error);
            }
            retries += 1;
            inner.counters.retried();
            tracing::warn!(
                connector = %inner.connector,
                route = call.route,
                status,
                attempt,
                wait_ms = millis(wait),
                error = %error,
                "retrying"
            );
            self.unless_stopped(&call, tokio::time::sleep(wait)).await?;
            held_back = Some(error);
        }
    }

    /// Runs `wait` unless the stop comes first (or has come): then the
    /// call ends with [`ConnectorError::Stopped`].
    async fn unless_stopped<F: Future>(
        &self,
        call: &Call,
        wait: F,
    ) -> Result<F::Output, ConnectorError> {
        let Some(stop) = &self.stop else {
            return Ok(wait.await);
        };
        let mut stop = stop.clone();
        let stopped = async move {
            // A stop signal whose sender is gone can no longer stop anything.
            if stop.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            () = stopped => {
                tracing::info!(connector = %self.inner.connector, route = call.route, "call stopped by shutdown");
                Err(ConnectorError::Stopped {
                    connector: self.inner.connector.to_string(),
                    route: call.route.to_owned(),
                })
            }
            output = wait => Ok(output),
        }
    }

    pub fn stats(&self) -> CallStats {
        self.inner.counters.lock().clone()
    }

    /// The identity URL the token endpoint named with the access token in
    /// force (Salesforce's `id`: `https://login.salesforce.com/id/<org
    /// id>/<user id>`), obtaining a token first if none is held yet;
    /// `None` when the token endpoint named none.
    pub async fn identity(&self) -> Result<Option<String>, ConnectorError> {
        Ok(self.inner.auth.credential().await?.identity)
    }

    /// Where API calls go with the access token in force: the instance
    /// the token endpoint named (Salesforce's `instance_url`), after its
    /// check; `None` when it named none.
    pub async fn instance(&self) -> Result<Option<Url>, ConnectorError> {
        Ok(self.inner.auth.credential().await?.instance)
    }
}

/// A response of any status, as one attempt got it.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

enum Attempt {
    Answered(Answer),
    /// The body ran past `RetryPolicy::max_body`, and was dropped there.
    TooLarge,
    /// No complete response: timeout, refused or reset connection, a body
    /// that broke off. `retryable` is false for a request that could not
    /// even be built.
    Broken {
        reason: String,
        retryable: bool,
        /// Whether the request may have reached the server.
        received: bool,
    },
}

/// What to do after a non-2xx answer.
enum Next {
    Reauthenticate,
    Retry {
        after: Option<Duration>,
        /// The error to end the call with if no retry is left.
        error: ConnectorError,
    },
    Stop(ConnectorError),
}

impl Inner {
    /// The URL of `call`, under `instance` when the token named one (it
    /// has passed the [`InstanceCheck`]), else under the base URL.
    fn url_for(&self, call: &Call, instance: Option<&Url>) -> Result<Url, ConnectorError> {
        let base = instance.unwrap_or(&self.base_url);
        let mut url = match &call.target {
            Target::Path(path) => {
                // Appended, not joined: a base URL's own path (an API
                // version prefix) is kept.
                let mut url = base.clone();
                let joined = format!(
                    "{}/{}",
                    base.path().trim_end_matches('/'),
                    path.trim_start_matches('/')
                );
                url.set_path(&joined);
                url
            }
            Target::Absolute(link) => {
                let url = Url::parse(link)
                    .map_err(|_| self.malformed(call, "a link it sent is not a url"))?;
                if !same_origin(&url, base) {
                    return Err(
                        self.malformed(call, "a link it sent points away from its base url")
                    );
                }
                url
            }
        };
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    /// Sends one request and reads its whole body, within the timeout.
    async fn attempt(
        &self,
        call: &Call,
        url: Url,
        credential: &Credential,
        attempt: u32,
    ) -> Attempt {
        let span = tracing::info_span!(
            "http",
            connector = %self.connector,
            method = %call.method,
            route = call.route,
            status = Empty,
            attempt,
            ms = Empty,
        );
        let started = Instant::now();
        self.counters.request(call.route);
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(credential.token.expose_secret())
            .header(ACCEPT, "application/json");
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some(json) = &call.json {
            request = request.json(json);
        } else if let Some((content_type, body)) = &call.raw {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone());
        }
        // Reading the body is part of the attempt: a body that breaks off
        // is retried like a refused connection.
        let max_body = self.retry.max_body;
        let exchange = async move {
            let mut response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_body(&mut response, max_body).await?;
            Ok::<_, reqwest::Error>(body.map(|body| Answer {
                status,
                headers,
                body,
            }))
        };
        let outcome = tokio::time::timeout(self.retry.timeout, exchange)
            .instrument(span.clone())
            .await;
        span.record("ms", millis(started.elapsed()));
        match outcome {
            Ok(Ok(Some(answer))) => {
                span.record("status", answer.status.as_u16());
                self.counters.answered(answer.status.as_u16());
                Attempt::Answered(answer)
            }
            Ok(Ok(None)) => {
                tracing::warn!(parent: &span, max_body, "response body over the cap dropped");
                Attempt::TooLarge
            }
            Ok(Err(err)) => Attempt::Broken {
                reason: describe(&err),
                retryable: !err.is_builder(),
                received: !(err.is_builder() || err.is_connect()),
            },
            Err(_) => Attempt::Broken {
                reason: format!("no complete response within {:?}", self.retry.timeout),
                retryable: true,
                received: true,
            },
        }
    }

    fn judge(&self, call: &Call, answer: &Answer, reauthenticated: bool) -> Next {
        let status = answer.status;
        let verdict = self.dialect.classify(&Failure {
            status,
            headers: &answer.headers,
            body: &answer.body,
        });
        // A 401 means the token, whatever the dialect makes of it.
        if status == StatusCode::UNAUTHORIZED || verdict == Verdict::Reauthenticate {
            let message = match verdict {
                Verdict::Fail { message, .. } => message,
                _ => format!("the access token was refused ({status})"),
            };
            return Next::Stop(if !self.auth.refreshable() {
                self.auth.error(message)
            } else if reauthenticated {
                self.auth.error(format!(
                    "a freshly obtained access token was refused too: {message}"
                ))
            } else {
                return Next::Reauthenticate;
            });
        }
        let api = |message: String, retry: Retry| ConnectorError::Api {
            connector: self.connector.to_string(),
            route: call.route.into(),
            status: status.as_u16(),
            message,
            retry,
        };
        match verdict {
            Verdict::AllowanceExhausted => Next::Stop(ConnectorError::AllowanceExhausted {
                connector: self.connector.to_string(),
            }),
            Verdict::Retry(after) => Next::Retry {
                after,
                error: if status.is_server_error() {
                    api(reason_phrase(status), Retry::NextRun)
                } else {
                    ConnectorError::RateLimited {
                        connector: self.connector.to_string(),
                        route: call.route.into(),
                        retry: Retry::NextRun,
                    }
                },
            },
            // A server error the dialect deems passing is retried here and now.
            Verdict::Fail { message, retryable } if retryable && status.is_server_error() => {
                Next::Retry {
                    after: None,
                    error: api(message, Retry::NextRun),
                }
            }
            Verdict::Fail { message, retryable } => Next::Stop(api(
                message,
                if retryable {
                    Retry::NextRun
                } else {
                    Retry::Never
                },
            )),
            Verdict::Reauthenticate => unreachable!("handled above"),
        }
    }

    /// The error of a call the CRM holds back for `wait` from now, past
    /// what the client waits for.
    fn rate_limited_until(&self, call: &Call, wait: Duration) -> ConnectorError {
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let until = Utc::now()
            .checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // Whole seconds, rounded up: the time to come back at, not before.
        let until = until
            .with_nanosecond(0)
            .and_then(|at| at.checked_add_signed(chrono::Duration::seconds(1)))
            .unwrap_or(until);
        tracing::warn!(connector = %self.connector, route = call.route, until = %until,
            "rate limited for longer than limits.max_retry_after_seconds; stopping this run");
        ConnectorError::RateLimitedUntil {
            connector: self.connector.to_string(),
            route: call.route.into(),
            until,
        }
    }

    fn transport_error(&self, call: &Call, reason: String) -> ConnectorError {
        ConnectorError::Transport {
            connector: self.connector.to_string(),
            route: call.route.into(),
            reason,
        }
    }

    fn malformed(&self, call: &Call, reason: &str) -> ConnectorError {
        ConnectorError::Malformed {
            connector: self.connector.to_string(),
            route: call.route.into(),
            reason: reason.into(),
        }
    }
}

/// The client's counts, shared with the authenticator.
#[derive(Debug, Default)]
pub(super) struct Counters(Mutex<CallStats>);

impl Counters {
    pub(super) fn request(&self, route: &'static str) {
        *self.lock().requests.entry(route).or_default() += 1;
    }

    fn retried(&self) {
        self.lock().retries += 1;
    }

    /// Counts a response by its status: only 429s are counted for now.
    pub(super) fn answered(&self, status: u16) {
        if status == 429 {
            self.lock().throttled += 1;
        }
    }

    pub(super) fn token_refreshed(&self) {
        self.lock().token_refreshes += 1;
    }

    fn lock(&self) -> MutexGuard<'_, CallStats> {
        // Counts stay usable after a panic elsewhere: each update is one step.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// https, or plain http to a loopback host (an emulator, a test server).
pub(super) fn allowed_scheme(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

fn check_base_url(url: &Url) -> Result<(), &'static str> {
    if !allowed_scheme(url) {
        return Err("the base url must be https, or plain http to a loopback host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the base url must not carry a query string or fragment");
    }
    Ok(())
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Reads a response body as it streams in, `None` as soon as it would pass
/// `cap` bytes: an oversized body is never held whole.
pub(super) async fn read_body(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Option<Bytes>, reqwest::Error> {
    let announced = response.content_length().unwrap_or(0);
    if announced > cap as u64 {
        return Ok(None);
    }
    let mut body = BytesMut::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// Why a body over the cap was not read, naming the setting to raise.
pub(super) fn too_large(cap: usize) -> String {
    format!("its body is larger than the cap of {cap} bytes (limits.max_body_mb)")
}

/// A reqwest error in words that hold no URL (and so no query string): its
/// kind, and the innermost cause (an IO or protocol error, which knows no URL).
pub(super) fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the response broke off"
    } else if err.is_builder() {
        "the request could not be built"
    } else {
        "the exchange failed"
    };
    let mut cause = err.source();
    let mut innermost = None;
    while let Some(next) = cause {
        innermost = Some(next);
        cause = next.source();
    }
    match innermost {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}

fn reason_phrase(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("server error")
        .to_lowercase()
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}
    fn is_shareable<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn the_client_and_its_calls_can_cross_tasks() {
        is_shareable::<HttpClient>();
        // Never run: only its type matters.
        let _ = |client: HttpClient, call: Call| is_send(&client.send(call));
    }

    #[test]
    fn plain_http_is_allowed_to_loopback_hosts_only() {
        let allowed = |url: &str| allowed_scheme(&Url::parse(url).unwrap());
        assert!(allowed("https://api.example.com"));
        assert!(allowed("http://127.0.0.1:8080"));
        assert!(allowed("http://localhost:8080"));
        assert!(allowed("http://[::1]:8080"));
        assert!(!allowed("http://api.example.com"));
        assert!(!allowed("http://10.0.0.1"));
        assert!(!allowed("ftp://127.0.0.1"));
    }
}
