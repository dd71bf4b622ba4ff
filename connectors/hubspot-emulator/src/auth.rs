//! Who may call: the private app token, or OAuth access tokens issued by
//! `POST /oauth/v3/token` from the refresh token (facts 3.1).
//!
//! Expired OAuth tokens are remembered, so that a call with one gets the
//! `EXPIRED_AUTHENTICATION` reply rather than "not found".

use super::config::Credentials;
use super::reply::{ApiError, correlation_id, json_reply};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How a call authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    PrivateApp,
    OAuth,
}

#[derive(Debug)]
pub(crate) struct Tokens {
    pub credentials: Credentials,
    /// The refresh token that works now.
    pub refresh_token: String,
    access: HashMap<String, Instant>,
    /// Access tokens expire after this many more authenticated calls.
    expire_after: Option<u64>,
    rng: fastrand::Rng,
}

/// Why a token exchange failed, as HubSpot's OAuth endpoint words it (?):
/// its own `status` plus the standard OAuth2 `error` field.
fn oauth_error(status: &str, error: &str, message: &str) -> Response {
    let correlation = correlation_id();
    json_reply(
        StatusCode::BAD_REQUEST,
        json!({
            "status": status,
            "message": message,
            "correlationId": correlation,
            "error": error,
            "error_description": message,
        }),
        &correlation,
    )
}

impl Tokens {
    pub(crate) fn new(credentials: Credentials, seed: u64) -> Self {
        Self {
            refresh_token: credentials.refresh_token.clone(),
            credentials,
            access: HashMap::new(),
            expire_after: None,
            rng: fastrand::Rng::with_seed(seed ^ 0x0a07),
        }
    }

    /// The token endpoint's work: checks a form-encoded refresh request and
    /// issues an access token.
    pub(crate) fn exchange(
        &mut self,
        form: &HashMap<String, String>,
        ttl: Duration,
        rotate: bool,
    ) -> Response {
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
        if field("grant_type") != "refresh_token" {
            return oauth_error(
                "BAD_GRANT_TYPE",
                "unsupported_grant_type",
                "grant_type must be refresh_token",
            );
        }
        if field("client_id") != self.credentials.client_id {
            return oauth_error(
                "BAD_CLIENT_ID",
                "invalid_client",
                "missing or unknown client id",
            );
        }
        if field("client_secret") != self.credentials.client_secret {
            return oauth_error(
                "BAD_CLIENT_SECRET",
                "invalid_client",
                "missing or invalid client secret",
            );
        }
        if field("refresh_token") != self.refresh_token {
            return oauth_error(
                "BAD_REFRESH_TOKEN",
                "invalid_grant",
                "missing or unknown refresh token",
            );
        }
        let access = format!("CO{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..));
        self.access.insert(access.clone(), Instant::now() + ttl);
        if rotate {
            self.refresh_token = format!(
                "na1-{:04x}-{:04x}-{:08x}",
                self.rng.u16(..),
                self.rng.u16(..),
                self.rng.u32(..)
            );
        }
        let correlation = correlation_id();
        json_reply(
            StatusCode::OK,
            json!({
                "token_type": "bearer",
                "access_token": access,
                "refresh_token": self.refresh_token,
                "expires_in": ttl.as_secs(),
                "hub_id": self.credentials.portal_id,
                "user_id": 9_000_101,
                "scopes": ["crm.objects.deals.read", "crm.objects.deals.write", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.companies.read", "crm.objects.companies.write", "crm.objects.owners.read"],
                "token_use": "access_token",
            }),
            &correlation,
        )
    }

    /// Checks an `Authorization` header.
    pub(crate) fn authenticate(&mut self, header: Option<&str>) -> Result<Caller, ApiError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(not_found)?;
        if token == self.credentials.private_app_token {
            return Ok(Caller::PrivateApp);
        }
        let expires = *self.access.get(token).ok_or_else(not_found)?;
        let now = Instant::now();
        if now >= expires {
            let ago = now.duration_since(expires);
            let at = Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_AUTHENTICATION",
                format!(
                    "The OAuth token used to make this call expired {} second(s) ago.",
                    ago.as_secs()
                ),
            )
            .with_context(
                json!({"expire time": [at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)]}),
            ));
        }
        if let Some(left) = self.expire_after.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.expire_after = None;
                self.expire_all();
            }
        }
        Ok(Caller::OAuth)
    }

    /// Every access token issued so far expires now.
    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for expires in self.access.values_mut() {
            *expires = (*expires).min(now);
        }
    }

    /// Access tokens expire once `n` more OAuth calls have been let through.
    pub(crate) fn expire_after(&mut self, n: u64) {
        if n == 0 {
            self.expire_all();
        } else {
            self.expire_after = Some(n);
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}
