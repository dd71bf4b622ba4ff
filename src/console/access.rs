//! Who is asking. Without a proxy, whoever reaches the console (on
//! loopback only) is its admin, named as the OS user running it. Behind a
//! proxy (`auth = "proxy"`), a request is taken only from a trusted
//! proxy's address and only with the proxy's user header; the user may act
//! if the config names them among `admins`, and otherwise only views.
//! With its own users (`auth = "users"`), a request needs the cookie of a
//! session [`super::login`] opened: without one, a page sends the browser
//! to `/login`, and a POST is refused.

use super::{Console, Viewer, layout, sessions};
use crate::config::ConsoleAuth;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Admits the request with its [`Viewer`], or refuses it.
pub(super) async fn admit(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let viewer = match &console.access.auth {
        ConsoleAuth::Loopback => Viewer {
            name: console.actor.clone(),
            admin: true,
            signed_in: false,
        },
        ConsoleAuth::Proxy(proxy) => {
            if !proxy.trusted.contains(&peer.ip().to_canonical()) {
                tracing::warn!(peer = %peer, "a console request not from a trusted proxy was refused");
                return refused(
                    StatusCode::FORBIDDEN,
                    "The console answers only through its proxy.",
                );
            }
            let named = request
                .headers()
                .get(proxy.user_header.as_str())
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|name| !name.is_empty());
            let Some(name) = named else {
                return refused(
                    StatusCode::UNAUTHORIZED,
                    "The proxy named no user: sign in through it.",
                );
            };
            Viewer {
                name: name.to_owned(),
                admin: proxy.admins.contains(name),
                signed_in: false,
            }
        }
        ConsoleAuth::Users(_) => {
            let path = request.uri().path();
            if path == "/login" || path.starts_with("/static/") {
                return next.run(request).await;
            }
            let session = request
                .headers()
                .get(header::COOKIE)
                .and_then(|value| value.to_str().ok())
                .and_then(sessions::session_of)
                .and_then(|id| console.sessions.get(id));
            match session {
                Some(viewer) => viewer,
                None if request.method() == Method::GET => {
                    let asked = request
                        .uri()
                        .path_and_query()
                        .map_or("/", |asked| asked.as_str());
                    let mut to = url::form_urlencoded::Serializer::new(String::new());
                    to.append_pair("next", asked);
                    return Redirect::to(&format!("/login?{}", to.finish())).into_response();
                }
                None => {
                    return refused(StatusCode::FORBIDDEN, "Sign in first. Nothing was changed.");
                }
            }
        }
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

fn refused(status: StatusCode, why: &str) -> Response {
    (status, layout::refused(why)).into_response()
}
