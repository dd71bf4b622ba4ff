//! The Entra ID token endpoint for the client-credentials grant (facts
//! 2.1): the secret in the form or as HTTP Basic, one `.default` scope;
//! AADSTS-shaped refusals; and the bearer check in front of the data routes
//! (401 with `WWW-Authenticate` naming the tenant's authorize URL).

use super::config::{Credentials, Knobs};
use super::reply::{ApiError, Reply};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;

#[derive(Debug)]
pub(crate) struct Tokens {
    credentials: Credentials,
    /// Access token -> when it expires (emulator clock, ms).
    issued: HashMap<String, i64>,
    rng: fastrand::Rng,
}

/// A refusal: the status, the OAuth error, the AADSTS number and message.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

fn refusal(
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: impl Into<String>,
) -> Refusal {
    Refusal {
        status,
        error,
        code,
        message: message.into(),
    }
}

fn missing(parameter: &str) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

impl Tokens {
    pub(crate) fn new(credentials: Credentials, seed: u64) -> Self {
        Self {
            credentials,
            issued: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed ^ 0x70c3),
        }
    }

    /// Every token issued so far stops working.
    pub(crate) fn expire_all(&mut self) {
        for expiry in self.issued.values_mut() {
            *expiry = i64::MIN;
        }
    }

    /// The client-credentials grant.
    pub(crate) fn grant(
        &mut self,
        tenant: &str,
        form: &HashMap<String, String>,
        basic: Option<&str>,
        scope: &str,
        knobs: &Knobs,
        now_ms: i64,
    ) -> Response {
        match self.check(tenant, form, basic, scope) {
            Ok(()) => {
                let token: String = format!(
                    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}",
                    (0..64).map(|_| self.rng.alphanumeric()).collect::<String>()
                );
                let ttl = knobs.token_ttl.as_secs();
                self.issued.insert(
                    token.clone(),
                    now_ms + i64::try_from(knobs.token_ttl.as_millis()).unwrap_or(i64::MAX / 4),
                );
                let mut body = json!({
                    "token_type": "Bearer",
                    "expires_in": ttl,
                    "access_token": token,
                });
                if knobs.ext_expires_in {
                    body["ext_expires_in"] = json!(ttl);
                }
                token_reply(StatusCode::OK, body.to_string())
            }
            Err(r) => {
                let trace = self.guid();
                let correlation = self.guid();
                let timestamp = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now_ms)
                    .unwrap_or_default()
                    .format("%Y-%m-%d %H:%M:%SZ")
                    .to_string();
                let description = format!(
                    "AADSTS{}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}",
                    r.code, r.message
                );
                let body = json!({
                    "error": r.error,
                    "error_description": description,
                    "error_codes": [r.code],
                    "timestamp": timestamp,
                    "trace_id": trace,
                    "correlation_id": correlation,
                    "error_uri": format!("https://login.microsoftonline.com/error?code={}", r.code),
                });
                token_reply(r.status, body.to_string())
            }
        }
    }

    fn guid(&mut self) -> String {
        super::cell::Guid::random(&mut self.rng).to_string()
    }

    fn check(
        &self,
        tenant: &str,
        form: &HashMap<String, String>,
        basic: Option<&str>,
        scope: &str,
    ) -> Result<(), Refusal> {
        let creds = &self.credentials;
        if !tenant.eq_ignore_ascii_case(&creds.tenant) {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90_002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let from_basic = basic.and_then(decode_basic);
        let grant = form
            .get("grant_type")
            .ok_or_else(|| missing("grant_type"))?;
        if grant != "client_credentials" {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70_003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let client_id = form
            .get("client_id")
            .cloned()
            .or_else(|| from_basic.as_ref().map(|(id, _)| id.clone()))
            .ok_or_else(|| missing("client_id"))?;
        if !client_id.eq_ignore_ascii_case(&creds.client_id) {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700_016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
            ));
        }
        let requested = form.get("scope").ok_or_else(|| missing("scope"))?;
        if requested != scope {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70_011,
                format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {requested} is not valid."
                ),
            ));
        }
        let secret = form
            .get("client_secret")
            .cloned()
            .or_else(|| from_basic.map(|(_, secret)| secret))
            .ok_or_else(|| {
                refusal(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_216,
                    "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
                )
            })?;
        if secret != creds.client_secret {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    creds.client_id
                ),
            ));
        }
        Ok(())
    }

    /// The bearer check: `Ok` for a live token; otherwise the 401 reply.
    pub(crate) fn authenticate(
        &self,
        authorization: Option<&str>,
        now_ms: i64,
        base: &str,
    ) -> Result<(), Reply> {
        let message = match authorization.and_then(|h| h.strip_prefix("Bearer ")) {
            None => "Bearer token is missing from the Authorization header.",
            Some(token) => match self.issued.get(token.trim()) {
                Some(expiry) if *expiry > now_ms => return Ok(()),
                Some(_) => "The access token has expired. Acquire a new access token.",
                None => "The access token is not valid.",
            },
        };
        let challenge = format!(
            "Bearer authorization_uri={base}/{}/oauth2/authorize, resource_id={base}/",
            self.credentials.tenant
        );
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "", message)
            .reply()
            .with(header::WWW_AUTHENTICATE, challenge))
    }
}

fn token_reply(status: StatusCode, body: String) -> Response {
    let mut reply = Reply::json(status, body);
    reply.content_type = Some("application/json; charset=utf-8".into());
    let mut response = reply.into_response();
    response.headers_mut().remove("odata-version");
    response
}

/// `Basic base64(client_id:client_secret)`, each part form-encoded.
fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?.trim();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_with_form_encoding() {
        // "my%20app:s3cr%3At" base64-encoded.
        assert_eq!(
            decode_basic("Basic bXklMjBhcHA6czNjciUzQXQ="),
            Some(("my app".to_owned(), "s3cr:t".to_owned()))
        );
        assert_eq!(decode_basic("Bearer x"), None);
    }
}
