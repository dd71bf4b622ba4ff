//! `/login` and `/logout`, for `auth = "users"`: a form of name and
//! password (with the console's form token), checked against the users
//! file; a session cookie on success, and back to the page asked for.

use super::sessions;
use super::users::Role;
use super::{Shared, Viewer, layout};
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Next {
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `GET /login`.
pub(super) async fn form(State(console): Shared, Query(next): Query<Next>) -> Response {
    page(&console.form_token(), &next.next, None).into_response()
}

/// `POST /login`.
pub(super) async fn sign_in(
    State(console): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<SignIn>,
) -> Response {
    let retry = |status: StatusCode, why: &str| {
        (status, page(&console.form_token(), &form.next, Some(why))).into_response()
    };
    if !console.sessions.may_try(peer.ip().to_canonical()) {
        return retry(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins from this address: wait a minute.",
        );
    }
    if !console.csrf.holds(&form.csrf, Utc::now().timestamp()) {
        return retry(StatusCode::FORBIDDEN, "The form has expired: try again.");
    }
    let Some(users) = console.users.clone() else {
        return retry(StatusCode::NOT_FOUND, "This console has no users.");
    };
    let (name, password) = (form.name.trim().to_owned(), form.password.clone());
    // Checking a password is slow on purpose: off the async threads.
    let checked = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || users.check(&name, &password)).await
    };
    let Ok(Some(role)) = checked else {
        tracing::warn!(peer = %peer, "a console sign-in failed");
        return retry(
            StatusCode::UNAUTHORIZED,
            "The name or the password is wrong.",
        );
    };
    let viewer = Viewer {
        name,
        admin: role == Role::Admin,
        signed_in: true,
    };
    let Ok(id) = console.sessions.open(viewer) else {
        return retry(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No randomness for a session: try again.",
        );
    };
    let mut answer = Redirect::to(safe_next(&form.next)).into_response();
    if let Ok(cookie) = sessions::cookie(&id).parse() {
        answer.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    answer
}

/// `POST /logout`.
pub(super) async fn sign_out(State(console): Shared, headers: HeaderMap) -> Response {
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if let Some(id) = sessions::session_of(cookies) {
        console.sessions.close(id);
    }
    let mut answer = Redirect::to("/login").into_response();
    if let Ok(cookie) = sessions::cookie("").parse() {
        answer.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    answer
}

/// Where to go after signing in: a path of this console, never another
/// site (`//host` or `https://…`).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/"
    }
}

fn page(token: &str, next: &str, why: Option<&str>) -> Markup {
    layout::frame(
        "Sign in",
        "",
        html! {
            @if let Some(why) = why { p.error { (why) } }
            form.act method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(safe_next(next));
                label { "Name " input type="text" name="name" required autocomplete="username"; }
                label { "Password " input type="password" name="password" required autocomplete="current-password"; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_signing_in_only_a_path_of_this_console_is_followed() {
        assert_eq!(
            safe_next("/violations?rule=stalled"),
            "/violations?rule=stalled"
        );
        for elsewhere in ["//evil.example", "https://evil.example", "/\\evil", ""] {
            assert_eq!(safe_next(elsewhere), "/", "{elsewhere}");
        }
    }
}
