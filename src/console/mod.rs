//! The web console: pages rendered on the server over the state file and
//! the config, for the admin who reviews the violations log in a browser.
//! It holds no CRM secret and makes no CRM call; it reads the state file
//! through read-only connections, so it never holds up an audit or a sync.
//!
//! Pages have stable URLs (`/`, `/violations`, `/records/CONNECTOR/OBJECT/ID`,
//! `/owners`, `/journey`, `/runs`) and work without JavaScript. Templates
//! are compiled into the binary (maud, which escapes every value it is
//! given), charts are SVG drawn on the server, and the one stylesheet is
//! embedded: nothing is fetched from elsewhere. Every answer carries a
//! Content-Security-Policy that allows no script at all.
//!
//! It listens on loopback only: the log names customers and owners, and
//! the console has no sign-in of its own. Admins reach it from elsewhere
//! through a reverse proxy on the same host that authenticates them.

mod access;
mod actions;
mod chart;
mod csrf;
mod layout;
mod links;
mod login;
mod memo;
mod pages;
mod query;
mod readers;
mod sessions;
pub mod users;

use crate::config::{Config, ConsoleAuth, ConsoleConfig};
use crate::store::StoreError;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;
use readers::Readers;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use thiserror::Error;
use tokio::net::TcpListener;

/// Where `journeyd console` listens when neither its `--listen` nor the
/// config's `[console] listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8788";

/// Why the console cannot start.
#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error(
        "console: `{address}` is not a loopback address: without `auth = \"proxy\"` the console \
         has no sign-in, so it listens on 127.0.0.1 or ::1 only; put a reverse proxy that \
         authenticates admins in front of it to reach it from elsewhere"
    )]
    NotLoopback { address: SocketAddr },
    #[error("console: no randomness for its form tokens: {0}")]
    Random(String),
    #[error("console: {0} (`journeyd console user add NAME --role admin` writes it)")]
    Users(#[from] users::UsersError),
    #[error("console: cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Refuses an address the console may not listen on: any off loopback,
/// unless a proxy that authenticates admins stands in front of it.
pub fn check_listen(address: SocketAddr, auth: &ConsoleAuth) -> Result<(), ConsoleError> {
    let signs_in = matches!(auth, ConsoleAuth::Proxy(_) | ConsoleAuth::Users(_));
    if address.ip().to_canonical().is_loopback() || signs_in {
        Ok(())
    } else {
        Err(ConsoleError::NotLoopback { address })
    }
}

/// Binds the console's listener on `address`, after [`check_listen`].
pub async fn bind(address: SocketAddr, auth: &ConsoleAuth) -> Result<TcpListener, ConsoleError> {
    check_listen(address, auth)?;
    TcpListener::bind(address)
        .await
        .map_err(|source| ConsoleError::Listen { address, source })
}

/// What every page reads: the config and the state file.
pub struct Console {
    /// The journey, connectors and rules: replaced when the service's
    /// config is (SIGHUP).
    config: RwLock<Arc<Config>>,
    /// Where it listens and who may use it, as it started: a reload that
    /// changes them takes effect at the next start, never on a listener
    /// bound for other rules.
    access: ConsoleConfig,
    readers: Readers,
    memo: memo::Memo,
    csrf: csrf::Csrf,
    /// The users of `auth = "users"`, read at start.
    users: Option<Arc<users::Users>>,
    sessions: sessions::Sessions,
    /// Who the history names for a change made without a sign-in:
    /// the OS user running the console, as the CLI names its admin.
    actor: String,
}

/// Who is asking, as [`access::admit`] found: the name the history keeps,
/// and whether they may act.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub name: String,
    pub admin: bool,
    /// Signed in here (`auth = "users"`), so able to sign out.
    pub signed_in: bool,
}

impl Console {
    /// A console over `config`'s journey and connectors and the state
    /// file at `state` (which an earlier run created).
    pub fn new(
        config: Arc<Config>,
        state: std::path::PathBuf,
    ) -> Result<Arc<Console>, ConsoleError> {
        let timezone = config.schedule.timezone;
        let user = crate::process::os_user();
        let users = match &config.console.auth {
            ConsoleAuth::Users(file) => Some(Arc::new(users::Users::load(file)?)),
            _ => None,
        };
        Ok(Arc::new(Console {
            users,
            sessions: sessions::Sessions::new(),
            access: config.console.clone(),
            config: RwLock::new(config),
            readers: Readers::new(state, timezone),
            memo: memo::Memo::default(),
            csrf: csrf::Csrf::new().map_err(|error| ConsoleError::Random(error.to_string()))?,
            actor: format!("{user} (console)"),
        }))
    }

    /// The config pages read now.
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `config`'s journey, connectors and rules from the next page
    /// on. Its `[console]` section is kept as the console started (a
    /// change to it is logged, and takes effect at the next start).
    pub fn reload(&self, config: Arc<Config>) {
        if config.console != self.access {
            tracing::warn!(
                "the console keeps the [console] settings it started with until the service restarts"
            );
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        // Figures are summed per stage and connector of the config.
        self.memo.clear();
    }

    /// A token for the forms of a page rendered now.
    fn form_token(&self) -> String {
        self.csrf.token(chrono::Utc::now().timestamp())
    }
}

/// The overview as one self-contained HTML page, its style inside and
/// linking nowhere: `journeyd report --html`.
pub fn overview_file(store: &crate::store::Store, config: &Config) -> Result<String, StoreError> {
    let body = pages::overview::body(store, config, &memo::Memo::default(), false)?;
    Ok(layout::standalone("Overview", body).into_string())
}

/// Serves the console on `listener` until `shutdown` completes, then lets
/// the requests in hand finish.
pub async fn serve(
    listener: TcpListener,
    console: Arc<Console>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "console up");
    }
    axum::serve(
        listener,
        router(console).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/violations", get(violations))
        .route("/violations/{id}", get(violation))
        .route(
            "/violations/bulk/{action}",
            axum::routing::post(actions::act_on_many),
        )
        .route(
            "/violations/{id}/{action}",
            axum::routing::post(actions::act),
        )
        .route("/records/{connector}/{object}/{id}", get(record))
        .route("/owners", get(owners))
        .route("/journey", get(journey))
        .route("/runs", get(runs))
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", axum::routing::post(login::sign_out))
        .route("/static/console.css", get(stylesheet))
        .route("/static/favicon.svg", get(icon))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            access::admit,
        ))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

/// No script runs, no frame holds a page, nothing loads from elsewhere,
/// and a link into the CRM does not tell it where the admin came from.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

type Shared = State<Arc<Console>>;

/// Renders a page from the state file, on a reader's thread: a page that
/// cannot be read says what failed, with status 500.
async fn page(
    console: Arc<Console>,
    viewer: Viewer,
    render: impl FnOnce(&crate::store::Store, &Console) -> Result<Page, StoreError> + Send + 'static,
) -> Response {
    let shared = console.clone();
    match console
        .readers
        .read(move |store| layout::as_asker(viewer, || render(store, &shared)))
        .await
    {
        Ok(Page::Found(markup)) => markup.into_response(),
        Ok(Page::Missing(what)) => (StatusCode::NOT_FOUND, layout::missing(&what)).into_response(),
        Err(error) => {
            let message = crate::telemetry::chain(&error);
            tracing::error!(error = %message, "a console page could not be read");
            (StatusCode::INTERNAL_SERVER_ERROR, layout::failed(&message)).into_response()
        }
    }
}

/// A page, or what was not there.
pub(crate) enum Page {
    Found(Markup),
    Missing(String),
}

async fn overview(
    State(console): Shared,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    page(console, viewer, |store, console| {
        pages::overview::render(store, &console.config(), &console.memo)
    })
    .await
}

async fn violations(
    State(console): Shared,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Query(query): Query<query::ListQuery>,
) -> Response {
    let admin = viewer.admin;
    page(console, viewer, move |store, console| {
        let token = admin.then(|| console.form_token());
        pages::violations::render(store, &console.config(), &query, token.as_deref())
    })
    .await
}

async fn violation(State(console): Shared, Path(id): Path<String>) -> Response {
    let found = console
        .readers
        .read(move |store| store.violation(&id))
        .await;
    match found {
        Ok(Some(row)) => {
            Redirect::to(&links::violation_anchor(&row.violation, row.id)).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            layout::missing("no violation has this id or fingerprint"),
        )
            .into_response(),
        // Digits that are one's id and another's fingerprint prefix, or a
        // prefix two share, name no one violation.
        Err(error @ (StoreError::IdOrFingerprint { .. } | StoreError::AmbiguousPrefix(_))) => {
            (StatusCode::NOT_FOUND, layout::missing(&error.to_string())).into_response()
        }
        Err(error) => {
            let message = crate::telemetry::chain(&error);
            tracing::error!(error = %message, "a violation could not be looked up");
            (StatusCode::INTERNAL_SERVER_ERROR, layout::failed(&message)).into_response()
        }
    }
}

async fn record(
    State(console): Shared,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path((connector, object, id)): Path<(String, String, String)>,
) -> Response {
    let admin = viewer.admin;
    page(console, viewer, move |store, console| {
        // Forms only for those who may act.
        let token = admin.then(|| console.form_token());
        pages::record::render(
            store,
            &console.config(),
            token.as_deref(),
            &connector,
            &object,
            &id,
        )
    })
    .await
}

async fn owners(
    State(console): Shared,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    page(console, viewer, |store, console| {
        pages::owners::render(store, &console.memo)
    })
    .await
}

async fn journey(
    State(console): Shared,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    page(console, viewer, |store, console| {
        pages::journey::render(store, &console.config(), &console.memo)
    })
    .await
}

async fn runs(
    State(console): Shared,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    page(console, viewer, |store, _| pages::runs::render(store)).await
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        layout::STYLESHEET,
    )
        .into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], layout::ICON).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, layout::missing("no such page")).into_response()
}
