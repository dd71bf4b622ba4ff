//! Specifications of the shared HTTP client, run against a small scripted
//! server on 127.0.0.1: each test lines up the answers the server gives, in
//! order, and reads back what the server was sent.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use journeyd_connector::ConnectorName;
use journeyd_connector::error::{ConnectorError, Retry};
use journeyd_connector::http::{
    AuthSettings, Bucket, Call, Dialect, Failure, HttpClient, HttpSettings, InstanceCheck,
    RateLimits, Resend, RetryPolicy, Target, TokenStore, TokenStoreError, Verdict, retry_after,
};
use journeyd_connector::secret::SecretString;
use reqwest::Method;
use reqwest::header::HeaderMap;
use std::collections::VecDeque;
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

// ---------------------------------------------------------------------------
// The scripted server

/// One answer of the scripted server.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Answer only after this long (a slow server).
    delay: Duration,
    /// Send the headers and part of the body, then drop the connection.
    break_off: bool,
    /// Instead of `body`, stream this many bytes of JSON-ish filler in
    /// 64 KiB chunks, counting in the counter what the client pulled.
    huge: Option<(usize, Arc<AtomicUsize>)>,
}

impl Reply {
    fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
            break_off: false,
            huge: None,
        }
    }

    /// A 200 whose body is `bytes` long, produced only as it is read.
    fn huge(bytes: usize, pulled: &Arc<AtomicUsize>) -> Self {
        Self {
            huge: Some((bytes, Arc::clone(pulled))),
            ..Self::ok()
        }
    }

    fn ok() -> Self {
        Self::json(200, r#"{"ok":true}"#)
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn broken() -> Self {
        Self {
            break_off: true,
            ..Self::ok()
        }
    }

    /// A token endpoint's grant.
    fn token(access: &str, expires_in: u64, refresh: Option<&str>) -> Self {
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": expires_in,
        });
        if let Some(refresh) = refresh {
            body["refresh_token"] = refresh.into();
        }
        Self::json(200, &body.to_string())
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    query_options: Option<String>,
    body: String,
    at: Instant,
}

impl Seen {
    fn form(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.into_owned())
    }
}

#[derive(Clone, Default)]
struct Script {
    api: Arc<Mutex<VecDeque<Reply>>>,
    token: Arc<Mutex<VecDeque<Reply>>>,
    api_seen: Arc<Mutex<Vec<Seen>>>,
    token_seen: Arc<Mutex<Vec<Seen>>>,
    /// Every request and every token save, in the order they happened.
    journal: Arc<Mutex<Vec<String>>>,
}

struct Server {
    base: Url,
    script: Script,
}

const TOKEN_PATH: &str = "/oauth/v3/token";

impl Server {
    /// Starts a server answering API calls with `api` in order (then 200),
    /// and token requests with `token` in order (then 418: unscripted).
    async fn start(api: Vec<Reply>, token: Vec<Reply>) -> Self {
        let script = Script::default();
        script.api.lock().unwrap().extend(api);
        script.token.lock().unwrap().extend(token);
        let app = Router::new()
            .route(TOKEN_PATH, axum::routing::post(answer_token))
            .fallback(answer_api)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: Url::parse(&format!("http://{addr}")).unwrap(),
            script,
        }
    }

    fn token_url(&self) -> Url {
        self.base.join(TOKEN_PATH).unwrap()
    }

    fn api_seen(&self) -> Vec<Seen> {
        self.script.api_seen.lock().unwrap().clone()
    }

    fn token_seen(&self) -> Vec<Seen> {
        self.script.token_seen.lock().unwrap().clone()
    }

    fn journal(&self) -> Vec<String> {
        self.script.journal.lock().unwrap().clone()
    }
}

async fn answer_api(State(script): State<Script>, request: Request) -> Response {
    let seen = see(request).await;
    let bearer = seen.authorization.clone().unwrap_or_default();
    script.journal.lock().unwrap().push(format!("api {bearer}"));
    script.api_seen.lock().unwrap().push(seen);
    let reply = script.api.lock().unwrap().pop_front();
    respond(reply.unwrap_or_else(Reply::ok)).await
}

async fn answer_token(State(script): State<Script>, request: Request) -> Response {
    let seen = see(request).await;
    let entry = match seen.form("refresh_token") {
        Some(refresh) => format!("token {refresh}"),
        None => format!("token {}", seen.form("grant_type").unwrap_or_default()),
    };
    script.journal.lock().unwrap().push(entry);
    script.token_seen.lock().unwrap().push(seen);
    let reply = script.token.lock().unwrap().pop_front();
    respond(reply.unwrap_or_else(|| Reply::json(418, r#"{"error":"unscripted"}"#))).await
}

async fn see(request: Request) -> Seen {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    Seen {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorization: header("authorization"),
        content_type: header("content-type"),
        query_options: header("sforce-query-options"),
        body: String::from_utf8(body.to_vec()).unwrap(),
        at: Instant::now(),
    }
}

async fn respond(reply: Reply) -> Response {
    // A slow server, not a test waiting for something.
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    let body = if let Some((total, pulled)) = reply.huge {
        const CHUNK: usize = 64 << 10;
        let chunks = futures_util::stream::unfold(0, move |sent| {
            let pulled = Arc::clone(&pulled);
            async move {
                if sent >= total {
                    return None;
                }
                let size = CHUNK.min(total - sent);
                pulled.fetch_add(size, Ordering::SeqCst);
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(vec![b' '; size])),
                    sent + size,
                ))
            }
        });
        Body::from_stream(chunks)
    } else if reply.break_off {
        // The first chunk goes out with the headers; a moment later the
        // stream fails and the server drops the connection mid-body.
        let chunks = futures_util::stream::unfold(0, |sent| async move {
            match sent {
                0 => Some((Ok(Bytes::from_static(b"{\"results\":[")), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Err(std::io::Error::other("dropped mid-body")), 2))
                }
                _ => None,
            }
        });
        Body::from_stream(chunks)
    } else {
        Body::from(reply.body)
    };
    response.body(body).unwrap()
}

// ---------------------------------------------------------------------------
// The client under test

/// A CRM that says what to do in plain terms: 429 waits as `Retry-After`
/// says, 5xx waits the policy's backoff, a 403 saying "daily" is the end of
/// the allowance, anything else fails with the body as its message. An
/// `x-pace-ms` header on a success holds the next call that long.
struct TestDialect;

impl Dialect for TestDialect {
    fn classify(&self, failure: &Failure<'_>) -> Verdict {
        let body = String::from_utf8_lossy(failure.body).into_owned();
        match failure.status.as_u16() {
            429 => Verdict::Retry(retry_after(failure.headers)),
            403 if body.contains("daily") => Verdict::AllowanceExhausted,
            status if status >= 500 => Verdict::Retry(None),
            // 401 too: the client knows to refresh a refreshable token anyway.
            _ => Verdict::Fail {
                message: body,
                retryable: false,
            },
        }
    }

    fn pace(&self, headers: &HeaderMap) -> Option<Duration> {
        let millis = headers.get("x-pace-ms")?.to_str().ok()?.parse().ok()?;
        Some(Duration::from_millis(millis))
    }
}

const CONNECTOR: &str = "testcrm";
const ACCESS_TOKEN: &str = "access-SEKRIT-1";
const CLIENT_SECRET: &str = "client-SEKRIT-2";
const REFRESH_TOKEN: &str = "refresh-SEKRIT-3";
const ROTATED_REFRESH_TOKEN: &str = "refresh-SEKRIT-4";
const QUERY_SECRET: &str = "query-SEKRIT-5";
const SECRETS: [&str; 5] = [
    ACCESS_TOKEN,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    ROTATED_REFRESH_TOKEN,
    QUERY_SECRET,
];

fn nz(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap()
}

fn settings(base: &Url, auth: AuthSettings) -> HttpSettings {
    HttpSettings {
        connector: ConnectorName::new(CONNECTOR),
        base_url: base.clone(),
        auth,
        limits: RateLimits {
            general: (nz(1000), Duration::from_secs(1)),
            search: None,
        },
        retry: RetryPolicy {
            max_attempts: nz(3),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            budget: 20,
            timeout: Duration::from_secs(2),
            send_window: Duration::from_secs(20),
            max_retry_after: RetryPolicy::DEFAULT_MAX_RETRY_AFTER,
            max_body: RetryPolicy::DEFAULT_MAX_BODY,
        },
        instance: None,
    }
}

fn bearer() -> AuthSettings {
    AuthSettings::Bearer(SecretString::from(ACCESS_TOKEN))
}

/// Records every save in the server's journal, so that its order against
/// the requests shows; fails every save when `fail` is set.
struct JournalStore {
    journal: Arc<Mutex<Vec<String>>>,
    fail: bool,
}

impl TokenStore for JournalStore {
    fn save_refresh_token(
        &self,
        connector: &ConnectorName,
        token: &SecretString,
    ) -> Result<(), TokenStoreError> {
        use journeyd_connector::secret::ExposeSecret;
        if self.fail {
            return Err(TokenStoreError {
                connector: connector.clone(),
                reason: "disk full".into(),
            });
        }
        let entry = format!("saved {}", token.expose_secret());
        self.journal.lock().unwrap().push(entry);
        Ok(())
    }
}

fn refresh_grant(server: &Server, store_fails: bool) -> AuthSettings {
    AuthSettings::RefreshToken {
        token_url: server.token_url(),
        client_id: "client-1".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        refresh_token: SecretString::from(REFRESH_TOKEN),
        store: Arc::new(JournalStore {
            journal: Arc::clone(&server.script.journal),
            fail: store_fails,
        }),
    }
}

fn client(settings: HttpSettings) -> HttpClient {
    HttpClient::new(settings, TestDialect).unwrap()
}

fn get(path: &str) -> Call {
    Call {
        method: Method::GET,
        route: "/crm/v3/objects/{object}",
        target: Target::Path(path.into()),
        query: vec![("limit".into(), "10".into())],
        json: None,
        raw: None,
        bucket: Bucket::General,
        resend: Resend::Always,
        headers: Vec::new(),
    }
}

const ROUTE: &str = "/crm/v3/objects/{object}";

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked into: {text}");
    }
}

fn assert_no_secret_in(err: &ConnectorError) {
    assert_no_secret(&err.to_string());
    assert_no_secret(&format!("{err:?}"));
}

// ---------------------------------------------------------------------------
// Base URL and targets

#[test]
fn plain_http_to_a_host_that_is_not_loopback_is_refused() {
    let base = Url::parse(&format!("http://api.example.com/?key={QUERY_SECRET}")).unwrap();
    let err = HttpClient::new(settings(&base, bearer()), TestDialect).unwrap_err();
    assert!(err.to_string().contains(CONNECTOR), "{err}");
    assert!(err.to_string().contains("https"), "{err}");
    assert_no_secret_in(&err);
}

#[test]
fn https_is_accepted_and_so_is_plain_http_to_loopback() {
    for base in [
        "https://api.example.com",
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
    ] {
        let base = Url::parse(base).unwrap();
        assert!(HttpClient::new(settings(&base, bearer()), TestDialect).is_ok());
    }
}

#[test]
fn a_token_url_in_plain_http_to_a_remote_host_is_refused() {
    let base = Url::parse("https://api.example.com").unwrap();
    let auth = AuthSettings::ClientCredentials {
        token_url: Url::parse("http://login.example.com/token").unwrap(),
        client_id: "client-1".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        scopes: vec![],
    };
    let err = HttpClient::new(settings(&base, auth), TestDialect).unwrap_err();
    assert!(err.to_string().contains("token url"), "{err}");
    assert_no_secret_in(&err);
}

#[tokio::test]
async fn an_absolute_target_on_another_host_or_port_is_refused() {
    let server = Server::start(vec![], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let port = server.base.port().unwrap();
    for elsewhere in [
        format!("http://localhost:{port}/next?after={QUERY_SECRET}"),
        format!("http://127.0.0.1:{}/next", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}/next"),
    ] {
        let mut call = get("/ignored");
        call.target = Target::Absolute(elsewhere);
        let err = client.send(call).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Malformed { .. }), "{err}");
        assert_no_secret_in(&err);
    }
    assert!(server.api_seen().is_empty());
}

#[tokio::test]
async fn an_absolute_target_on_the_base_url_is_followed_with_its_query() {
    let server = Server::start(vec![], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let mut call = get("/ignored");
    call.target = Target::Absolute(server.base.join("/next?after=42").unwrap().to_string());
    client.send(call).await.unwrap();
    let seen = server.api_seen();
    assert_eq!(seen[0].path, "/next");
    assert_eq!(seen[0].query.as_deref(), Some("after=42&limit=10"));
}

#[tokio::test]
async fn a_path_keeps_the_base_urls_own_path_and_a_json_body_is_sent_as_json() {
    let server = Server::start(vec![], vec![]).await;
    let base = server.base.join("/api/v9.2/").unwrap();
    let client = client(settings(&base, bearer()));
    let mut call = get("/accounts");
    call.method = Method::POST;
    call.json = Some(serde_json::json!({"name": "Acme"}));
    let response = client.send(call).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
    let seen = &server.api_seen()[0];
    assert_eq!(seen.path, "/api/v9.2/accounts");
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.body, r#"{"name":"Acme"}"#);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let redirect = Reply::json(302, "moved").header("location", "http://127.0.0.1:9/elsewhere");
    let server = Server::start(vec![redirect], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Api { status: 302, .. }),
        "{err}"
    );
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn a_207_is_a_success() {
    let server = Server::start(vec![Reply::json(207, r#"{"numErrors":1}"#)], vec![]).await;
    let response = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap();
    assert_eq!(response.status, 207);
    assert_eq!(&response.body[..], br#"{"numErrors":1}"#);
}

// ---------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_then_succeeds() {
    let limited = Reply::json(429, "slow down").header("retry-after", "1");
    let server = Server::start(vec![limited, Reply::ok()], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let start = Instant::now();
    client.send(get("/deals")).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let seen = server.api_seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1));
    let stats = client.stats();
    assert_eq!(stats.requests.get(ROUTE), Some(&2));
    assert_eq!(stats.retries, 1);
}

#[tokio::test]
async fn a_retry_after_holds_the_other_calls_of_the_bucket_too() {
    let limited = Reply::json(429, "slow down").header("retry-after", "1");
    let server = Server::start(vec![limited], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.send(get("/deals")).await }
    });
    // Once the first call has read its 429 (and so scheduled its retry)...
    for _ in 0..500 {
        if client.stats().retries == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        client.stats().retries,
        1,
        "the first call never got its 429"
    );
    // ...a call of the same bucket waits as well.
    client.send(get("/contacts")).await.unwrap();
    first.await.unwrap().unwrap();
    let seen = server.api_seen();
    assert_eq!(seen.len(), 3);
    for later in &seen[1..] {
        assert!(later.at - seen[0].at >= Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_paced_success_holds_the_next_call() {
    let paced = Reply::ok().header("x-pace-ms", "300");
    let server = Server::start(vec![paced], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    client.send(get("/deals")).await.unwrap();
    client.send(get("/deals")).await.unwrap();
    let seen = server.api_seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(300));
}

#[tokio::test]
async fn server_errors_are_retried_until_one_succeeds() {
    let server = Server::start(
        vec![
            Reply::json(503, "busy"),
            Reply::json(500, "oops"),
            Reply::ok(),
        ],
        vec![],
    )
    .await;
    let client = client(settings(&server.base, bearer()));
    client.send(get("/deals")).await.unwrap();
    assert_eq!(server.api_seen().len(), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn a_persistent_503_ends_after_max_attempts_with_an_api_error() {
    let server = Server::start(vec![Reply::json(503, "busy"); 10], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    match &err {
        ConnectorError::Api {
            connector,
            route,
            status,
            retry,
            ..
        } => {
            assert_eq!(connector, CONNECTOR);
            assert_eq!(route, ROUTE);
            assert_eq!(*status, 503);
            assert_eq!(*retry, Retry::NextRun);
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert_eq!(server.api_seen().len(), 3);
}

#[tokio::test]
async fn a_persistent_429_ends_as_rate_limited_until_the_next_run() {
    let server = Server::start(vec![Reply::json(429, "slow down"); 10], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::RateLimited {
                retry: Retry::NextRun,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.api_seen().len(), 3);
}

/// Held by the tests whose client retries and by the one that reads the
/// logs: tracing caches whether a log line is wanted per line of code, and
/// a retry logged on a thread with no subscriber while the log test runs
/// can leave that line cached as unwanted.
static LOGGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn every_429_answer_is_counted_as_throttled_and_no_other_status_is() {
    let _serial = LOGGING.lock().await;
    let limited = Reply::json(429, "slow down");
    let server = Server::start(
        vec![
            limited.clone(),
            Reply::json(503, "busy"),
            limited,
            Reply::ok(),
        ],
        vec![],
    )
    .await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_attempts = nz(5);
    let client = client(settings);
    client.send(get("/deals")).await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.requests.get(ROUTE), Some(&4));
    assert_eq!(stats.retries, 3);
    assert_eq!(stats.throttled, 2);
}

#[tokio::test]
async fn a_429_from_the_token_endpoint_is_counted_as_throttled() {
    let _serial = LOGGING.lock().await;
    let server = Server::start(vec![], vec![Reply::json(429, "slow down")]).await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    client.send(get("/deals")).await.unwrap_err();
    let stats = client.stats();
    assert_eq!(stats.requests.get("token"), Some(&1));
    assert_eq!(stats.throttled, 1);
}

#[tokio::test]
async fn a_spent_retry_budget_ends_calls_early() {
    let server = Server::start(vec![Reply::json(503, "busy"); 10], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_attempts = nz(5);
    settings.retry.budget = 1;
    let client = client(settings);
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Api { status: 503, .. }),
        "{err}"
    );
    assert_eq!(
        server.api_seen().len(),
        2,
        "one try and the budget's one retry"
    );
    client.send(get("/deals")).await.unwrap_err();
    assert_eq!(
        server.api_seen().len(),
        3,
        "no retry left for the next call"
    );
}

#[tokio::test]
async fn a_body_that_breaks_off_is_retried() {
    let server = Server::start(vec![Reply::broken(), Reply::ok()], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let response = client.send(get("/deals")).await.unwrap();
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
    assert_eq!(server.api_seen().len(), 2);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn a_connection_that_keeps_breaking_ends_as_a_transport_error() {
    let server = Server::start(vec![Reply::broken(); 10], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Transport { .. }), "{err}");
    assert!(err.to_string().contains(ROUTE), "{err}");
    assert!(err.to_string().contains("broke off"), "{err}");
    assert!(!err.to_string().contains("127.0.0.1"), "no url in {err}");
    assert_eq!(server.api_seen().len(), 3);
}

#[tokio::test]
async fn an_attempt_that_times_out_is_retried() {
    let slow = Reply::ok().after(Duration::from_secs(5));
    let server = Server::start(vec![slow, Reply::ok()], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.timeout = Duration::from_millis(200);
    let start = Instant::now();
    client(settings).send(get("/deals")).await.unwrap();
    // Waiting the slow answer out would take 5 s.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.api_seen().len(), 2);
}

fn create_once() -> Call {
    let mut call = get("/tasks/batch/create");
    call.method = Method::POST;
    call.json = Some(serde_json::json!({"inputs": []}));
    call.resend = Resend::OnlyIfNotReceived;
    call
}

#[tokio::test]
async fn a_write_that_must_not_happen_twice_is_not_resent_after_a_timeout() {
    let slow = Reply::ok().after(Duration::from_secs(5));
    let server = Server::start(vec![slow, Reply::ok()], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.timeout = Duration::from_millis(200);
    let err = client(settings).send(create_once()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Transport { .. }), "{err}");
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn a_write_that_must_not_happen_twice_is_not_resent_after_a_5xx_or_a_reset() {
    let server = Server::start(vec![Reply::json(503, "busy"), Reply::broken()], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let err = client.send(create_once()).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Api { status: 503, .. }),
        "{err}"
    );
    let err = client.send(create_once()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Transport { .. }), "{err}");
    assert_eq!(server.api_seen().len(), 2);
}

#[tokio::test]
async fn a_write_that_must_not_happen_twice_is_resent_after_a_429() {
    let limited = Reply::json(429, "slow down").header("retry-after", "1");
    let server = Server::start(vec![limited, Reply::ok()], vec![]).await;
    client(settings(&server.base, bearer()))
        .send(create_once())
        .await
        .unwrap();
    assert_eq!(server.api_seen().len(), 2);
}

#[tokio::test]
async fn a_write_that_must_not_happen_twice_is_not_sent_past_its_send_window() {
    // Retry-After would send it 3 s after its call began: later than a
    // lookup for it, counted from then, may look.
    let limited = Reply::json(429, "slow down").header("retry-after", "3");
    let server = Server::start(vec![limited, Reply::ok()], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.send_window = Duration::from_secs(1);
    let start = Instant::now();
    let err = client(settings).send(create_once()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::RateLimited { .. }), "{err}");
    assert_eq!(server.api_seen().len(), 1, "sent once, never again");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_read_waits_out_a_retry_after_longer_than_the_send_window() {
    let limited = Reply::json(429, "slow down").header("retry-after", "1");
    let server = Server::start(vec![limited, Reply::ok()], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.send_window = Duration::from_millis(100);
    client(settings).send(get("/deals")).await.unwrap();
    assert_eq!(server.api_seen().len(), 2);
}

#[tokio::test]
async fn a_client_error_fails_at_once_with_the_crms_message() {
    let server = Server::start(vec![Reply::json(400, "unknown property foo")], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    match err {
        ConnectorError::Api {
            status,
            message,
            retry,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(message, "unknown property foo");
            assert_eq!(retry, Retry::Never);
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn an_exhausted_allowance_stops_at_once() {
    let server = Server::start(vec![Reply::json(403, "daily limit reached")], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::AllowanceExhausted { .. }),
        "{err}"
    );
    assert_eq!(server.api_seen().len(), 1);
}

// ---------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn calls_beyond_the_quota_wait_for_it() {
    let server = Server::start(vec![], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    // 3 per 300 ms: a burst of 3, then one every 100 ms.
    settings.limits.general = (nz(3), Duration::from_millis(300));
    let client = client(settings);
    let start = Instant::now();
    for _ in 0..6 {
        client.send(get("/deals")).await.unwrap();
    }
    assert!(
        start.elapsed() >= Duration::from_millis(290),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.stats().requests.get(ROUTE), Some(&6));
}

#[tokio::test]
async fn search_calls_draw_from_their_own_bucket() {
    let server = Server::start(vec![], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.limits.general = (nz(1), Duration::from_secs(60));
    settings.limits.search = Some((nz(5), Duration::from_secs(1)));
    let client = client(settings);
    let start = Instant::now();
    client.send(get("/deals")).await.unwrap();
    for _ in 0..3 {
        let mut search = get("/deals/search");
        search.bucket = Bucket::Search;
        client.send(search).await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.api_seen().len(), 4);
}

// ---------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn the_bearer_token_is_sent() {
    let server = Server::start(vec![], vec![]).await;
    client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap();
    let expected = format!("Bearer {ACCESS_TOKEN}");
    assert_eq!(
        server.api_seen()[0].authorization.as_deref(),
        Some(&*expected)
    );
}

#[tokio::test]
async fn a_401_with_a_fixed_token_is_an_auth_error_without_the_token() {
    let server = Server::start(vec![Reply::json(401, "token expired")], vec![]).await;
    let err = client(settings(&server.base, bearer()))
        .send(get("/deals"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert!(err.to_string().contains(CONNECTOR), "{err}");
    assert!(err.to_string().contains("token expired"), "{err}");
    assert_no_secret_in(&err);
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn the_token_endpoint_gets_every_parameter_in_the_form_body() {
    let server = Server::start(vec![], vec![Reply::token("tok-1", 1800, None)]).await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    client.send(get("/deals")).await.unwrap();
    let seen = &server.token_seen()[0];
    assert_eq!(seen.form("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(seen.form("client_id").as_deref(), Some("client-1"));
    assert_eq!(seen.form("client_secret").as_deref(), Some(CLIENT_SECRET));
    assert_eq!(seen.form("refresh_token").as_deref(), Some(REFRESH_TOKEN));
    assert_eq!(seen.authorization, None, "no basic auth: all in the body");
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        server.api_seen()[0].authorization.as_deref(),
        Some("Bearer tok-1")
    );
    let stats = client.stats();
    assert_eq!(stats.requests.get("token"), Some(&1));
    assert_eq!(stats.token_refreshes, 1);
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_and_the_call_sent_again() {
    let server = Server::start(
        vec![Reply::ok(), Reply::json(401, "token expired"), Reply::ok()],
        vec![
            Reply::token("tok-1", 1800, None),
            Reply::token("tok-2", 1800, None),
        ],
    )
    .await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    client.send(get("/deals")).await.unwrap();
    client.send(get("/deals")).await.unwrap();
    assert_eq!(
        server.journal(),
        [
            format!("token {REFRESH_TOKEN}"),
            "api Bearer tok-1".into(),
            "api Bearer tok-1".into(),
            format!("token {REFRESH_TOKEN}"),
            "api Bearer tok-2".into(),
        ]
    );
    assert_eq!(client.stats().token_refreshes, 2);
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_call() {
    let server = Server::start(
        vec![],
        vec![
            Reply::token("tok-1", 1, None),
            Reply::token("tok-2", 1800, None),
        ],
    )
    .await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    client.send(get("/deals")).await.unwrap();
    // Letting the clock run is the behaviour under test: tok-1 has 1 s to
    // live and is replaced a tenth of that before it ends.
    tokio::time::sleep(Duration::from_millis(950)).await;
    client.send(get("/deals")).await.unwrap();
    assert_eq!(
        server.journal(),
        [
            format!("token {REFRESH_TOKEN}"),
            "api Bearer tok-1".into(),
            format!("token {REFRESH_TOKEN}"),
            "api Bearer tok-2".into(),
        ]
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_before_it_is_used() {
    let server = Server::start(
        vec![Reply::json(401, "token expired")],
        vec![
            Reply::token("tok-1", 1800, Some(ROTATED_REFRESH_TOKEN)),
            Reply::token("tok-2", 1800, Some(ROTATED_REFRESH_TOKEN)),
        ],
    )
    .await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    client.send(get("/deals")).await.unwrap();
    assert_eq!(
        server.journal(),
        [
            format!("token {REFRESH_TOKEN}"),
            format!("saved {ROTATED_REFRESH_TOKEN}"),
            "api Bearer tok-1".into(),
            format!("token {ROTATED_REFRESH_TOKEN}"),
            // The same refresh token again: nothing new to save.
            "api Bearer tok-2".into(),
        ]
    );
}

#[tokio::test]
async fn a_failing_token_store_aborts_and_the_new_tokens_are_not_used() {
    let server = Server::start(
        vec![],
        vec![
            Reply::token("tok-1", 1800, Some(ROTATED_REFRESH_TOKEN)),
            Reply::token("tok-2", 1800, Some(ROTATED_REFRESH_TOKEN)),
        ],
    )
    .await;
    let client = client(settings(&server.base, refresh_grant(&server, true)));
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_no_secret_in(&err);
    client.send(get("/deals")).await.unwrap_err();
    assert_eq!(
        server.journal(),
        [
            format!("token {REFRESH_TOKEN}"),
            format!("token {REFRESH_TOKEN}"),
        ],
        "neither the rotated refresh token nor the access token was used"
    );
}

#[tokio::test]
async fn a_second_401_right_after_a_refresh_is_an_auth_error() {
    let server = Server::start(
        vec![
            Reply::json(401, "token expired"),
            Reply::json(401, "token expired"),
        ],
        vec![
            Reply::token("tok-1", 1800, None),
            Reply::token("tok-2", 1800, None),
        ],
    )
    .await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("token expired"), "{err}");
    assert_eq!(server.api_seen().len(), 2);
    assert_eq!(server.token_seen().len(), 2);
}

#[tokio::test]
async fn a_refused_grant_is_an_auth_error_with_the_oauth_code_only() {
    let refusal = Reply::json(
        400,
        &format!(
            r#"{{"error":"invalid_grant","error_description":"unknown token {REFRESH_TOKEN}"}}"#
        ),
    );
    let server = Server::start(vec![], vec![refusal]).await;
    let err = client(settings(&server.base, refresh_grant(&server, false)))
        .send(get("/deals"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert_no_secret_in(&err);
    assert!(server.api_seen().is_empty());
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    let slow_grant = Reply::token("tok-1", 1800, None).after(Duration::from_millis(100));
    let server = Server::start(vec![], vec![slow_grant]).await;
    let client = client(settings(&server.base, refresh_grant(&server, false)));
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send(get("/deals")).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.token_seen().len(), 1);
    assert_eq!(server.api_seen().len(), 5);
}

#[tokio::test]
async fn client_credentials_are_exchanged_for_a_token_with_their_scopes() {
    let server = Server::start(vec![], vec![Reply::token("tok-cc", 1800, None)]).await;
    let auth = AuthSettings::ClientCredentials {
        token_url: server.token_url(),
        client_id: "client-1".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        scopes: vec!["crm.read".into(), "crm.write".into()],
    };
    client(settings(&server.base, auth))
        .send(get("/deals"))
        .await
        .unwrap();
    let seen = &server.token_seen()[0];
    assert_eq!(
        seen.form("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(seen.form("client_secret").as_deref(), Some(CLIENT_SECRET));
    assert_eq!(seen.form("scope").as_deref(), Some("crm.read crm.write"));
    assert_eq!(
        server.api_seen()[0].authorization.as_deref(),
        Some("Bearer tok-cc")
    );
}

// ---------------------------------------------------------------------------
// Secrets

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_an_error() {
    let _serial = LOGGING.lock().await;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    // The test runtime has one thread: the server and the client both log here.
    let _default = tracing::subscriber::set_default(subscriber);

    let server = Server::start(
        vec![
            Reply::json(401, "token expired"),
            Reply::json(503, "busy"),
            Reply::json(429, "slow down").header("retry-after", "0"),
            Reply::broken(),
            Reply::ok(),
            Reply::json(400, "bad request"),
            Reply::json(401, "token expired"),
            Reply::json(401, "token expired"),
        ],
        vec![
            Reply::token(ACCESS_TOKEN, 1800, Some(ROTATED_REFRESH_TOKEN)),
            Reply::token(ACCESS_TOKEN, 1800, Some(ROTATED_REFRESH_TOKEN)),
            Reply::token(ACCESS_TOKEN, 1800, Some(ROTATED_REFRESH_TOKEN)),
        ],
    )
    .await;
    let mut settings = settings(&server.base, refresh_grant(&server, false));
    settings.retry.max_attempts = nz(5);
    assert_no_secret(&format!("{settings:?}"));
    let client = client(settings);
    assert_no_secret(&format!("{client:?}"));

    let mut call = get("/deals");
    call.query.push(("key".into(), QUERY_SECRET.into()));
    // 401, refresh, 503, 429, broken body, then success.
    client.send(call.clone()).await.unwrap();
    let mut errors = vec![client.send(call.clone()).await.unwrap_err()];
    errors.push(client.send(call.clone()).await.unwrap_err());
    call.target = Target::Absolute(format!("http://localhost:9/?key={QUERY_SECRET}"));
    errors.push(client.send(call).await.unwrap_err());
    let base = Url::parse(&format!("http://example.com/?key={QUERY_SECRET}")).unwrap();
    errors.push(HttpClient::new(self::settings(&base, bearer()), TestDialect).unwrap_err());
    for err in &errors {
        assert_no_secret_in(err);
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for expected in ["http{", "token refreshed", "retrying", "wait_ms", ROUTE] {
        assert!(logs.contains(expected), "no {expected} in the logs: {logs}");
    }
    assert_no_secret(&logs);
    // Hosts may show (the connection pool names them); queries may not.
    assert!(!logs.contains("key="), "a query string in the logs: {logs}");
}

// ---------------------------------------------------------------------------
// JWT bearer grant and the instance a token names

/// A key made for these tests only: it signs nothing anywhere else.
const TEST_PRIVATE_KEY: &str = include_str!("keys/throwaway-rsa.pem");
const TEST_PUBLIC_KEY: &str = include_str!("keys/throwaway-rsa.pub.pem");

/// Nothing listens on the discard port: a call sent there fails.
const NOWHERE: &str = "http://127.0.0.1:9";

fn jwt_grant(server: &Server) -> AuthSettings {
    AuthSettings::JwtBearer {
        token_url: server.token_url(),
        client_id: "consumer-key-1".into(),
        subject: "ops@example.com".into(),
        audience: "https://login.salesforce.com".into(),
        private_key: SecretString::from(TEST_PRIVATE_KEY),
    }
}

/// A Salesforce token response: no `expires_in`, an `instance_url`.
fn instance_token(access: &str, instance: &str) -> Reply {
    let body = serde_json::json!({
        "access_token": access,
        "instance_url": instance,
        "id": "https://login.salesforce.com/id/00Dx/005x",
        "token_type": "Bearer",
        "issued_at": "1278448101416",
        "signature": "c2lnbmF0dXJl",
    });
    Reply::json(200, &body.to_string())
}

fn instance_settings(auth: AuthSettings, allowed: &[&str]) -> HttpSettings {
    let mut settings = settings(&Url::parse(NOWHERE).unwrap(), auth);
    settings.instance = Some(InstanceCheck {
        allowed_hosts: allowed.iter().map(|host| (*host).to_owned()).collect(),
    });
    settings
}

#[derive(serde::Deserialize)]
struct SeenClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
}

#[tokio::test]
async fn the_jwt_grant_posts_an_rs256_assertion_with_the_configured_claims() {
    let server = Server::start(vec![], vec![Reply::token("tok-1", 1800, None)]).await;
    let client = client(settings(&server.base, jwt_grant(&server)));
    client.send(get("/deals")).await.unwrap();
    let seen = &server.token_seen()[0];
    assert_eq!(
        seen.form("grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let assertion = seen.form("assertion").unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://login.salesforce.com"]);
    let claims = jsonwebtoken::decode::<SeenClaims>(&assertion, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.iss, "consumer-key-1");
    assert_eq!(claims.sub, "ops@example.com");
    assert_eq!(claims.aud, "https://login.salesforce.com");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 170..=now + 181).contains(&claims.exp),
        "exp {}",
        claims.exp
    );
    assert_eq!(seen.form("client_secret"), None);
    assert_eq!(
        server.api_seen()[0].authorization.as_deref(),
        Some("Bearer tok-1")
    );
    assert_eq!(client.stats().requests.get("token"), Some(&1));
}

#[tokio::test]
async fn a_jwt_token_without_a_lifetime_is_reminted_once_on_a_401() {
    let server = Server::start(
        vec![
            Reply::ok(),
            Reply::json(
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            ),
            Reply::ok(),
        ],
        vec![],
    )
    .await;
    let instance = server.base.as_str().trim_end_matches('/').to_owned();
    server.script.token.lock().unwrap().extend([
        instance_token("tok-1", &instance),
        instance_token("tok-2", &instance),
    ]);
    let client = client(instance_settings(jwt_grant(&server), &[]));
    client.send(get("/deals")).await.unwrap();
    client.send(get("/deals")).await.unwrap();
    let journal = server.journal();
    let grant = "token urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned();
    assert_eq!(
        journal,
        [
            grant.clone(),
            "api Bearer tok-1".into(),
            "api Bearer tok-1".into(),
            grant,
            "api Bearer tok-2".into(),
        ]
    );
}

#[tokio::test]
async fn the_identity_url_a_token_response_names_is_handed_out_with_its_token() {
    let server = Server::start(vec![], vec![]).await;
    let instance = server.base.as_str().trim_end_matches('/').to_owned();
    server
        .script
        .token
        .lock()
        .unwrap()
        .push_back(instance_token("tok-1", &instance));
    let client = client(instance_settings(jwt_grant(&server), &[]));
    // Asked before any call: the token is obtained for it.
    let identity = client.identity().await.unwrap();
    assert_eq!(
        identity.as_deref(),
        Some("https://login.salesforce.com/id/00Dx/005x")
    );
    assert_eq!(server.token_seen().len(), 1);
    client.send(get("/deals")).await.unwrap();
    client.identity().await.unwrap();
    assert_eq!(server.token_seen().len(), 1, "the token in force is reused");
}

#[tokio::test]
async fn a_token_response_naming_no_identity_leaves_it_unknown() {
    let server = Server::start(vec![], vec![Reply::token("tok-1", 1800, None)]).await;
    let client = client(settings(&server.base, jwt_grant(&server)));
    assert_eq!(client.identity().await.unwrap(), None);
}

#[tokio::test]
async fn calls_go_to_the_instance_the_token_response_names() {
    let server = Server::start(vec![], vec![]).await;
    let instance = server.base.as_str().trim_end_matches('/').to_owned();
    server
        .script
        .token
        .lock()
        .unwrap()
        .push_back(instance_token("tok-1", &instance));
    // The base URL points nowhere: only the instance can have answered.
    let client = client(instance_settings(
        refresh_grant(&server, false),
        &["*.my.salesforce.com"],
    ));
    let mut call = get("/services/data/v62.0/query");
    call.headers = vec![(
        reqwest::header::HeaderName::from_static("sforce-query-options"),
        "batchSize=200".into(),
    )];
    client.send(call).await.unwrap();
    let seen = &server.api_seen()[0];
    assert_eq!(seen.path, "/services/data/v62.0/query");
    assert_eq!(seen.authorization.as_deref(), Some("Bearer tok-1"));
    let token = &server.token_seen()[0];
    assert_eq!(token.form("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(token.form("client_secret").as_deref(), Some(CLIENT_SECRET));
    assert_eq!(token.form("refresh_token").as_deref(), Some(REFRESH_TOKEN));
}

#[tokio::test]
async fn a_call_carries_its_extra_headers() {
    let server = Server::start(vec![], vec![]).await;
    let client = client(settings(&server.base, bearer()));
    let mut call = get("/deals");
    call.headers = vec![(
        reqwest::header::HeaderName::from_static("sforce-query-options"),
        "batchSize=200".into(),
    )];
    client.send(call).await.unwrap();
    assert_eq!(
        server.api_seen()[0].query_options.as_deref(),
        Some("batchSize=200")
    );
}

#[tokio::test]
async fn an_instance_on_a_host_not_allowed_is_refused_and_never_called() {
    for forged in [
        "https://evil.example.com",
        "http://acme.my.salesforce.com",
        "https://my.salesforce.com.evil.example.com",
    ] {
        let server = Server::start(vec![], vec![instance_token(ACCESS_TOKEN, forged)]).await;
        let client = client(instance_settings(
            jwt_grant(&server),
            &["*.my.salesforce.com"],
        ));
        let err = client.send(get("/deals")).await.unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Auth { reason, .. } if reason.contains("instance_url host not allowed")),
            "{forged}: {err:?}"
        );
        assert_no_secret_in(&err);
        assert!(server.api_seen().is_empty());
    }
}

#[tokio::test]
async fn a_token_response_without_an_instance_is_refused_when_one_is_expected() {
    let server = Server::start(vec![], vec![Reply::token(ACCESS_TOKEN, 1800, None)]).await;
    let client = client(instance_settings(
        jwt_grant(&server),
        &["*.my.salesforce.com"],
    ));
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert_no_secret_in(&err);
}

#[tokio::test]
async fn a_refused_jwt_grant_is_an_auth_error_with_the_oauth_code_only() {
    let server = Server::start(
        vec![],
        vec![Reply::json(
            400,
            &format!(
                r#"{{"error":"invalid_grant","error_description":"user hasn't approved {CLIENT_SECRET}"}}"#
            ),
        )],
    )
    .await;
    let client = client(settings(&server.base, jwt_grant(&server)));
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Auth { reason, .. } if reason.contains("invalid_grant")),
        "{err:?}"
    );
    assert_no_secret_in(&err);
}

#[test]
fn a_jwt_grant_with_a_key_that_is_not_rsa_pem_is_refused() {
    let auth = AuthSettings::JwtBearer {
        token_url: Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
        client_id: "c".into(),
        subject: "s".into(),
        audience: "a".into(),
        private_key: SecretString::from("not a key"),
    };
    let base = Url::parse("https://acme.my.salesforce.com").unwrap();
    let err = HttpClient::new(settings(&base, auth), TestDialect).unwrap_err();
    assert!(err.to_string().contains("rsa"), "{err}");
}

// ---------------------------------------------------------------------------
// Response size

#[tokio::test]
async fn a_body_over_the_cap_fails_the_call_naming_the_route_and_the_cap() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = Server::start(vec![Reply::huge(3 << 20, &pulled)], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_body = 1 << 20;
    let err = client(settings).send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Malformed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(CONNECTOR), "{message}");
    assert!(message.contains(ROUTE), "{message}");
    assert!(message.contains("1048576 bytes"), "{message}");
    assert!(message.contains("limits.max_body_mb"), "{message}");
    assert_eq!(server.api_seen().len(), 1, "too large is not retried");
}

#[tokio::test]
async fn a_body_over_the_cap_is_dropped_as_it_streams_in_not_read_to_its_end() {
    // A gigabyte, of which the client may hold one megabyte: what it pulls
    // past the cap is what sockets buffer, nowhere near the rest.
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = Server::start(vec![Reply::huge(1 << 30, &pulled)], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_body = 1 << 20;
    settings.retry.timeout = Duration::from_secs(60);
    let result = client(settings).send(get("/deals")).await;
    assert!(result.is_err(), "a gigabyte was read whole");
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled < 64 << 20,
        "{pulled} bytes were produced for the client"
    );
}

#[tokio::test]
async fn a_body_under_the_cap_is_read_whole() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let server = Server::start(vec![Reply::huge(900 << 10, &pulled)], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_body = 1 << 20;
    let response = client(settings).send(get("/deals")).await.unwrap();
    assert_eq!(response.body.len(), 900 << 10);
}

#[tokio::test]
async fn a_token_response_over_the_cap_fails_naming_the_token_route_and_the_cap() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let cc = |server: &Server| AuthSettings::ClientCredentials {
        token_url: server.token_url(),
        client_id: "client-1".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        scopes: vec![],
    };
    for grant in ["refresh token", "client credentials", "jwt bearer"] {
        let server = Server::start(vec![], vec![Reply::huge(3 << 20, &pulled)]).await;
        let auth = match grant {
            "refresh token" => refresh_grant(&server, false),
            "client credentials" => cc(&server),
            _ => jwt_grant(&server),
        };
        let mut settings = settings(&server.base, auth);
        settings.retry.max_body = 1 << 20;
        let err = client(settings).send(get("/deals")).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("on token") && message.contains("1048576 bytes"),
            "{grant}: {message}"
        );
        assert!(server.api_seen().is_empty(), "{grant}");
    }
}

// ---------------------------------------------------------------------------
// Long waits

#[tokio::test]
async fn a_retry_after_beyond_the_cap_ends_the_call_as_rate_limited_until_then() {
    let limited = Reply::json(429, "slow down").header("retry-after", "7200");
    let server = Server::start(vec![limited], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_retry_after = Duration::from_secs(60);
    let asked = chrono::Utc::now();
    let client = client(settings);
    let call = client.send(get("/deals"));
    // Obeyed, the wait would be two hours.
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends instead of sleeping")
        .unwrap_err();
    let ConnectorError::RateLimitedUntil { until, route, .. } = &err else {
        panic!("expected rate limited until, got {err:?}");
    };
    assert_eq!(route, ROUTE);
    let waited = (*until - asked).num_seconds();
    assert!((7195..=7210).contains(&waited), "until {until}, {waited} s");
    assert!(
        err.to_string()
            .contains(&format!("rate limited until {until}")),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::NextRun);
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn after_a_retry_after_beyond_the_cap_the_buckets_next_call_ends_at_once_unsent() {
    let limited = Reply::json(429, "slow down").header("retry-after", "7200");
    let server = Server::start(vec![limited], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_retry_after = Duration::from_secs(60);
    let client = client(settings);
    tokio::time::timeout(Duration::from_secs(10), client.send(get("/deals")))
        .await
        .expect("the first call ends instead of sleeping")
        .unwrap_err();
    let err = tokio::time::timeout(Duration::from_secs(10), client.send(get("/contacts")))
        .await
        .expect("the call ends instead of sleeping")
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::RateLimitedUntil { .. }),
        "{err:?}"
    );
    assert_eq!(server.api_seen().len(), 1, "the second call was not sent");
}

#[tokio::test]
async fn a_retry_after_within_the_cap_is_waited_out() {
    let limited = Reply::json(429, "slow down").header("retry-after", "1");
    let server = Server::start(vec![limited, Reply::ok()], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_retry_after = Duration::from_secs(1);
    client(settings).send(get("/deals")).await.unwrap();
    assert_eq!(server.api_seen().len(), 2);
}

// ---------------------------------------------------------------------------
// Connection trouble

/// A port nothing listens on: bound, then let go.
async fn refusing() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Url::parse(&format!("http://{addr}")).unwrap()
}

/// A server that resets its first `resets` connections as soon as they
/// are made, then answers every request `200 {"ok":true}`; counts the
/// connections it took.
async fn resetting(resets: usize) -> (Url, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&taken);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            if count.fetch_add(1, Ordering::SeqCst) < resets {
                // Linger zero: closing sends RST, not FIN.
                socket.set_zero_linger().unwrap();
                drop(socket);
                continue;
            }
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"ok":true}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
            });
        }
    });
    (Url::parse(&format!("http://{addr}")).unwrap(), taken)
}

#[tokio::test]
async fn a_refused_connection_is_retried_with_the_backoff_then_ends_as_a_transport_error() {
    let base = refusing().await;
    let client = client(settings(&base, bearer()));
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("could not connect"), "{err}");
    let stats = client.stats();
    assert_eq!(stats.requests.get(ROUTE), Some(&3), "max_attempts tries");
    assert_eq!(stats.retries, 2);
}

#[tokio::test]
async fn a_reset_connection_is_retried_with_the_backoff() {
    let (base, taken) = resetting(2).await;
    let client = client(settings(&base, bearer()));
    let response = client.send(get("/deals")).await.unwrap();
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
    assert_eq!(taken.load(Ordering::SeqCst), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn a_token_endpoint_refusing_connections_is_retried_with_the_backoff() {
    let nowhere = refusing().await;
    let server = Server::start(vec![], vec![]).await;
    let auth = AuthSettings::ClientCredentials {
        token_url: nowhere.join(TOKEN_PATH).unwrap(),
        client_id: "client-1".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        scopes: vec![],
    };
    let client = client(settings(&server.base, auth));
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Transport { .. }), "{err:?}");
    assert_eq!(client.stats().requests.get("token"), Some(&3));
    assert!(server.api_seen().is_empty());
}

#[tokio::test]
async fn a_token_endpoint_resetting_connections_is_retried_with_the_backoff() {
    let (token_base, taken) = resetting(1).await;
    let server = Server::start(vec![], vec![]).await;
    let auth = AuthSettings::ClientCredentials {
        token_url: token_base.join(TOKEN_PATH).unwrap(),
        client_id: "client-1".into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        scopes: vec![],
    };
    let client = client(settings(&server.base, auth));
    // The second connection is answered `{"ok":true}`: not a token.
    let err = client.send(get("/deals")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Malformed { .. }), "{err:?}");
    assert_eq!(taken.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------
// Stopping

/// A client that stops when the returned sender sends `true`.
fn stoppable(settings: HttpSettings) -> (HttpClient, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut client = client(settings);
    client.stop_on(stopped);
    (client, stop)
}

/// Sends `call` on a task, waits (bounded) until `ready` holds, stops the
/// client, and returns how the call ended: within a second, or the test fails.
async fn stop_during(
    client: &HttpClient,
    stop: &tokio::sync::watch::Sender<bool>,
    call: Call,
    ready: impl Fn(&HttpClient) -> bool,
) -> ConnectorError {
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(call).await }
    });
    for _ in 0..500 {
        if ready(client) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(ready(client), "the call never reached its wait");
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(1), sending)
        .await
        .expect("the call ends within a second of the stop")
        .unwrap()
        .unwrap_err()
}

fn assert_stopped(err: &ConnectorError) {
    match err {
        ConnectorError::Stopped { connector, route } => {
            assert_eq!(connector, CONNECTOR);
            assert_eq!(route, ROUTE);
        }
        other => panic!("expected stopped, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stop_ends_a_retry_after_wait_at_once() {
    let limited = Reply::json(429, "slow down").header("retry-after", "600");
    let server = Server::start(vec![limited], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.max_retry_after = Duration::from_secs(3600);
    let (client, stop) = stoppable(settings);
    let err = stop_during(&client, &stop, get("/deals"), |c| c.stats().retries == 1).await;
    assert_stopped(&err);
    assert_eq!(err.retry(), Retry::NextRun);
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn a_stop_ends_a_backoff_wait_at_once() {
    let server = Server::start(vec![Reply::json(503, "busy")], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    settings.retry.base_delay = Duration::from_secs(600);
    settings.retry.max_delay = Duration::from_secs(600);
    let (client, stop) = stoppable(settings);
    let err = stop_during(&client, &stop, get("/deals"), |c| c.stats().retries == 1).await;
    assert_stopped(&err);
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn a_stop_ends_a_wait_for_the_rate_limit_at_once() {
    let server = Server::start(vec![], vec![]).await;
    let mut settings = settings(&server.base, bearer());
    // One call an hour: the first goes, the second waits.
    settings.limits.general = (nz(1), Duration::from_secs(3600));
    let (client, stop) = stoppable(settings);
    client.send(get("/deals")).await.unwrap();
    let err = stop_during(&client, &stop, get("/deals"), |_| true).await;
    assert_stopped(&err);
    assert_eq!(server.api_seen().len(), 1);
}

#[tokio::test]
async fn a_call_made_after_the_stop_is_not_sent() {
    let server = Server::start(vec![], vec![]).await;
    let (client, stop) = stoppable(settings(&server.base, bearer()));
    stop.send_replace(true);
    let err = client.send(create_once()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Stopped { .. }), "{err:?}");
    assert!(server.api_seen().is_empty());
}

#[tokio::test]
async fn an_attempt_on_the_wire_when_the_stop_comes_is_answered() {
    let slow = Reply::ok().after(Duration::from_millis(300));
    let server = Server::start(vec![slow], vec![]).await;
    let (client, stop) = stoppable(settings(&server.base, bearer()));
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(create_once()).await }
    });
    for _ in 0..500 {
        if !server.api_seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send_replace(true);
    let response = sending.await.unwrap().unwrap();
    assert_eq!(response.status, 200, "its answer was read");
}
