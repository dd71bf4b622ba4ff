//! The OAuth token endpoint (facts 1.1): the JWT bearer and refresh token
//! grants, their success and failure bodies, and the access tokens the data
//! routes check.

use super::config::Credentials;
use super::reply::{ApiError, json_reply};
use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub(crate) const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug)]
pub(crate) struct Tokens {
    pub credentials: Credentials,
    /// The refresh token that works now.
    pub refresh_token: String,
    /// The user the integration runs as.
    pub user_id: String,
    issued: BTreeMap<String, Instant>,
    issued_count: u64,
    /// Expire every token once this many more authenticated calls passed.
    countdown: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
}

/// What the token endpoint needs to know about this server and its knobs.
pub(crate) struct Exchange<'a> {
    pub form: &'a HashMap<String, String>,
    /// This server, without a trailing slash.
    pub login_url: &'a str,
    pub instance_url: &'a str,
    pub audience: &'a str,
    pub ttl: Duration,
    pub rotate: bool,
    pub now_ms: i64,
}

fn denied(error: &str, description: &str) -> Response {
    json_reply(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

impl Tokens {
    pub(crate) fn new(credentials: Credentials, user_id: String) -> Self {
        Self {
            refresh_token: credentials.refresh_token.clone(),
            credentials,
            user_id,
            issued: BTreeMap::new(),
            issued_count: 0,
            countdown: None,
        }
    }

    /// Checks a data call's `Authorization` header.
    pub(crate) fn authenticate(&mut self, authorization: Option<&str>) -> Result<(), ApiError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::session)?;
        match self.issued.get(token) {
            Some(expires) if Instant::now() < *expires => {}
            _ => return Err(ApiError::session()),
        }
        if let Some(left) = self.countdown.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.countdown = None;
                self.expire_all();
            }
        }
        Ok(())
    }

    pub(crate) fn expire_all(&mut self) {
        self.issued.clear();
    }

    pub(crate) fn expire_after(&mut self, n: u64) {
        if n == 0 {
            self.expire_all();
        } else {
            self.countdown = Some(n);
        }
    }

    pub(crate) fn exchange(&mut self, ex: &Exchange<'_>) -> Response {
        let grant = ex.form.get("grant_type").map(String::as_str);
        let mut new_refresh = None;
        match grant {
            Some(JWT_GRANT) => {
                if let Err((error, description)) = self.check_assertion(ex) {
                    return denied(error, description);
                }
            }
            Some("refresh_token") => {
                let field = |name: &str| ex.form.get(name).map(String::as_str).unwrap_or_default();
                if field("client_id") != self.credentials.client_id {
                    return denied("invalid_client_id", "client identifier invalid");
                }
                if field("client_secret") != self.credentials.client_secret {
                    return denied("invalid_client", "invalid client credentials");
                }
                if field("refresh_token") != self.refresh_token {
                    return denied("invalid_grant", "expired access/refresh token");
                }
                if ex.rotate {
                    let next = format!("5Aep861emulated.refresh.token.{}", self.issued_count + 1);
                    self.refresh_token.clone_from(&next);
                    new_refresh = Some(next);
                }
            }
            _ => return denied("unsupported_grant_type", "grant type not supported"),
        }
        self.issued_count += 1;
        let access_token = format!(
            "{}!AQ{:0>8}.emulated.session.{}",
            &self.credentials.org_id[..15],
            self.issued_count,
            ex.now_ms
        );
        self.issued
            .insert(access_token.clone(), Instant::now() + ex.ttl);
        let mut body = json!({
            "access_token": access_token,
            "instance_url": ex.instance_url,
            "id": format!("{}/id/{}/{}", ex.login_url, self.credentials.org_id, self.user_id),
            "token_type": "Bearer",
            "issued_at": ex.now_ms.to_string(),
            "signature": format!("ZW11bGF0ZWQtc2lnbmF0dXJl{:04}=", self.issued_count % 10_000),
        });
        if let Some(refresh) = new_refresh {
            body["refresh_token"] = json!(refresh);
        }
        json_reply(StatusCode::OK, &body)
    }

    /// Verifies an RS256 assertion: signature, `exp` (no leeway), `aud`,
    /// then `iss` and `sub`.
    fn check_assertion(&self, ex: &Exchange<'_>) -> Result<(), (&'static str, &'static str)> {
        let assertion = ex
            .form
            .get("assertion")
            .ok_or(("invalid_request", "assertion missing"))?;
        let key = DecodingKey::from_rsa_pem(self.credentials.jwt_public_key_pem.as_bytes())
            .map_err(|_| ("invalid_grant", "invalid assertion"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.set_audience(&[ex.audience, &format!("{}/", ex.audience)]);
        let data =
            jsonwebtoken::decode::<Claims>(assertion, &key, &validation).map_err(
                |err| match err.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        ("invalid_grant", "audience is invalid")
                    }
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        ("invalid_grant", "expired authorization code")
                    }
                    _ => ("invalid_grant", "invalid assertion"),
                },
            )?;
        if data.claims.iss != self.credentials.client_id {
            return Err(("invalid_client_id", "client identifier invalid"));
        }
        if data.claims.sub != self.credentials.username {
            return Err(("invalid_grant", "user hasn't approved this consumer"));
        }
        Ok(())
    }
}
