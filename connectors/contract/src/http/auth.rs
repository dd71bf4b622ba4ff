//! Bearer credentials: a fixed token, or OAuth2 access tokens obtained and
//! refreshed from a token endpoint (refresh-token, client-credentials and
//! JWT bearer grants).
//!
//! The exchange is written here rather than left to the `oauth2` crate:
//! that crate has no JWT bearer grant (RFC 7523, Salesforce's server-to-
//! server sign-in), and its token response does not carry Salesforce's
//! `instance_url` and `id`, so one path had to be written here anyway, and
//! one path serves all three grants. It runs on the client's own reqwest
//! (no redirects), reads the answer within the response-size cap, and
//! reports the OAuth error code only, never the body.

use super::client::{Counters, InstanceCheck, TOKEN_ROUTE};
use crate::error::ConnectorError;
use crate::ids::ConnectorName;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::Instrument;
use url::{Host, Url};

/// How a connector authenticates.
#[derive(Clone)]
pub enum AuthSettings {
    /// A fixed bearer token (a HubSpot private app's access token).
    Bearer(SecretString),
    /// OAuth2 refresh-token grant. The access token is refreshed shortly
    /// before `expires_in` runs out, and once when the API answers 401.
    /// A rotated refresh token is handed to `store` before it is used.
    RefreshToken {
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
        store: Arc<dyn TokenStore>,
    },
    /// OAuth2 client-credentials grant.
    ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        scopes: Vec<String>,
    },
    /// OAuth2 JWT bearer grant (RFC 7523): an RS256 assertion with claims
    /// `iss` = `client_id`, `sub` = `subject`, `aud` = `audience`, valid
    /// for three minutes, is minted for every token request. No refresh
    /// token comes back; a new assertion is minted when the token nears its
    /// announced expiry, or, when none is announced, once on a 401.
    JwtBearer {
        token_url: Url,
        client_id: String,
        /// The user the token acts as (a Salesforce username).
        subject: String,
        audience: String,
        /// PEM of the RSA private key the assertion is signed with.
        private_key: SecretString,
    },
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthSettings::Bearer(_) => "Bearer(..)",
            AuthSettings::RefreshToken { .. } => "RefreshToken(..)",
            AuthSettings::ClientCredentials { .. } => "ClientCredentials(..)",
            AuthSettings::JwtBearer { .. } => "JwtBearer(..)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not save the rotated refresh token of {connector}: {reason}")]
pub struct TokenStoreError {
    pub connector: ConnectorName,
    pub reason: String,
}

/// Durable home of a rotated refresh token. The daemon implements it; the
/// client calls it, and waits for it to succeed, before using the new token,
/// so that a crash can never leave the only valid refresh token in memory.
/// It is called on a blocking thread, so it may block on IO.
pub trait TokenStore: Send + Sync {
    fn save_refresh_token(
        &self,
        connector: &ConnectorName,
        token: &SecretString,
    ) -> Result<(), TokenStoreError>;
}

/// How long before its announced expiry an access token is replaced: a tenth
/// of its lifetime, at most a minute, so that a call never sets out with a
/// token about to lapse.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// The access token one attempt sends, and which token it was, so that a
/// refusal refreshes it only if nobody has already.
pub(super) struct Credential {
    pub(super) token: SecretString,
    /// Where API calls go with this token, when the token endpoint named
    /// an instance that passed the [`InstanceCheck`].
    pub(super) instance: Option<Url>,
    /// The identity URL the token response named (Salesforce's `id`).
    pub(super) identity: Option<String>,
    generation: u64,
}

/// Hands out access tokens, obtaining and refreshing them as needed.
pub(super) struct Authenticator {
    connector: ConnectorName,
    kind: Kind,
}

enum Kind {
    Fixed(SecretString),
    OAuth(Box<OAuth>),
}

struct OAuth {
    grant: Grant,
    token_url: Url,
    client_id: String,
    client_secret: Option<SecretString>,
    instance: Option<InstanceCheck>,
    http: reqwest::Client,
    timeout: Duration,
    /// The largest token response read (`RetryPolicy::max_body`).
    max_body: usize,
    counters: Arc<Counters>,
    // One lock for the token and its refresh: a caller that finds the token
    // stale refreshes it while the others wait, then they all use the new one.
    state: tokio::sync::Mutex<TokenState>,
}

enum Grant {
    RefreshToken {
        store: Arc<dyn TokenStore>,
    },
    ClientCredentials {
        scopes: Vec<String>,
    },
    JwtBearer {
        subject: String,
        audience: String,
        key: Box<jsonwebtoken::EncodingKey>,
    },
}

/// What a token endpoint handed out, whichever way it was asked.
struct Issued {
    access: SecretString,
    refresh: Option<SecretString>,
    lifetime: Option<Duration>,
    instance_url: Option<String>,
    identity: Option<String>,
}

/// A token response read field by field (Salesforce's carries
/// `instance_url` and the identity URL `id`, and no `expires_in`).
#[derive(serde::Deserialize)]
struct RawToken {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    instance_url: Option<String>,
    id: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawTokenError {
    error: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

/// How long a minted assertion is valid: what Salesforce's own clients use.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

struct TokenState {
    access: Option<Access>,
    /// The refresh token in force (refresh-token grant only).
    refresh: Option<SecretString>,
    /// The instance the last token response named, once checked.
    instance: Option<Url>,
    /// The identity URL the last token response that named one named.
    identity: Option<String>,
    /// Bumped on every new access token.
    generation: u64,
}

struct Access {
    token: SecretString,
    /// When to replace it; `None`: the token endpoint gave no lifetime.
    renew_at: Option<Instant>,
}

impl Authenticator {
    /// `http` is the client's own reqwest client (no redirects, so a token
    /// request never follows a redirect with the client secret in it).
    pub(super) fn new(
        connector: &ConnectorName,
        settings: AuthSettings,
        instance: Option<InstanceCheck>,
        http: &reqwest::Client,
        timeout: Duration,
        max_body: usize,
        counters: &Arc<Counters>,
    ) -> Result<Self, String> {
        let oauth =
            |token_url: Url, client_id: String, secret: Option<SecretString>, grant, refresh| {
                check_token_url(&token_url)?;
                Ok::<_, String>(Kind::OAuth(Box::new(OAuth {
                    grant,
                    token_url,
                    client_id,
                    client_secret: secret,
                    instance: instance.clone(),
                    http: http.clone(),
                    timeout,
                    max_body,
                    counters: Arc::clone(counters),
                    state: tokio::sync::Mutex::new(TokenState {
                        access: None,
                        refresh,
                        instance: None,
                        identity: None,
                        generation: 0,
                    }),
                })))
            };
        let kind = match settings {
            AuthSettings::Bearer(token) => Kind::Fixed(token),
            AuthSettings::RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                store,
            } => oauth(
                token_url,
                client_id,
                Some(client_secret),
                Grant::RefreshToken { store },
                Some(refresh_token),
            )?,
            AuthSettings::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            } => oauth(
                token_url,
                client_id,
                Some(client_secret),
                Grant::ClientCredentials { scopes },
                None,
            )?,
            AuthSettings::JwtBearer {
                token_url,
                client_id,
                subject,
                audience,
                private_key,
            } => {
                let key =
                    jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes())
                        .map_err(|_| "the jwt private key is not an rsa key in pem".to_owned())?;
                oauth(
                    token_url,
                    client_id,
                    None,
                    Grant::JwtBearer {
                        subject,
                        audience,
                        key: Box::new(key),
                    },
                    None,
                )?
            }
        };
        if instance.is_some() && matches!(kind, Kind::Fixed(_)) {
            return Err("an instance url can only come from a token endpoint".into());
        }
        Ok(Self {
            connector: connector.clone(),
            kind,
        })
    }

    /// Whether a refused token can be replaced (OAuth), or not (a fixed token).
    pub(super) fn refreshable(&self) -> bool {
        matches!(self.kind, Kind::OAuth(_))
    }

    /// The token to send now: the current one while it is fresh, else a new
    /// one from the token endpoint.
    pub(super) async fn credential(&self) -> Result<Credential, ConnectorError> {
        let oauth = match &self.kind {
            Kind::Fixed(token) => {
                return Ok(Credential {
                    token: token.clone(),
                    instance: None,
                    identity: None,
                    generation: 0,
                });
            }
            Kind::OAuth(oauth) => oauth,
        };
        let mut state = oauth.state.lock().await;
        match &state.access {
            Some(access) if access.renew_at.is_none_or(|at| Instant::now() < at) => {
                Ok(Credential {
                    token: access.token.clone(),
                    instance: state.instance.clone(),
                    identity: state.identity.clone(),
                    generation: state.generation,
                })
            }
            _ => self.obtain(oauth, &mut state).await,
        }
    }

    /// Replaces `refused`, unless another call already has.
    pub(super) async fn reauthenticate(&self, refused: &Credential) -> Result<(), ConnectorError> {
        let Kind::OAuth(oauth) = &self.kind else {
            return Err(self.error("a fixed access token cannot be refreshed".into()));
        };
        let mut state = oauth.state.lock().await;
        if state.generation == refused.generation {
            self.obtain(oauth, &mut state).await?;
        }
        Ok(())
    }

    /// Asks the token endpoint for a new access token (and, with the
    /// refresh-token grant, takes on a rotated refresh token once saved).
    async fn obtain(
        &self,
        oauth: &OAuth,
        state: &mut TokenState,
    ) -> Result<Credential, ConnectorError> {
        let asked_at = Instant::now();
        let response = self.request_token(oauth, state).await?;
        // Checked before anything is kept: a response naming a foreign
        // instance is dropped whole.
        let instance = match (&oauth.instance, &response.instance_url) {
            (None, _) => None,
            (Some(check), Some(named)) => Some(
                accept_instance(check, named, &oauth.token_url).map_err(|err| self.error(err))?,
            ),
            (Some(_), None) => match &state.instance {
                Some(known) => Some(known.clone()),
                None => return Err(self.error("the token response names no instance_url".into())),
            },
        };
        if let (Grant::RefreshToken { store }, Some(rotated)) = (&oauth.grant, &response.refresh) {
            let unchanged = state
                .refresh
                .as_ref()
                .is_some_and(|current| current.expose_secret() == rotated.expose_secret());
            if !unchanged {
                let rotated = rotated.clone();
                // Saved before anything is used: if this fails, the whole
                // response is dropped and the old tokens stay in force.
                self.save(store, &rotated).await?;
                state.refresh = Some(rotated);
            }
        }
        let token = response.access;
        state.access = Some(Access {
            token: token.clone(),
            // A lifetime too long to add up is as good as none.
            renew_at: response
                .lifetime
                .and_then(|lifetime| asked_at.checked_add(lifetime - renewal_margin(lifetime))),
        });
        state.instance = instance.clone();
        if response.identity.is_some() {
            state.identity = response.identity;
        }
        state.generation += 1;
        oauth.counters.token_refreshed();
        tracing::info!(connector = %self.connector, "token refreshed");
        Ok(Credential {
            token,
            instance,
            identity: state.identity.clone(),
            generation: state.generation,
        })
    }

    /// Asks the token endpoint for a token with the grant's form, every
    /// parameter in the body (as HubSpot's v3 endpoint wants), on the
    /// client's own reqwest (which follows no redirect).
    async fn request_token(
        &self,
        oauth: &OAuth,
        state: &TokenState,
    ) -> Result<Issued, ConnectorError> {
        let form: Vec<(&str, String)> = match &oauth.grant {
            Grant::JwtBearer {
                subject,
                audience,
                key,
            } => {
                let exp = (SystemTime::now() + ASSERTION_LIFETIME)
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs());
                let claims = Claims {
                    iss: &oauth.client_id,
                    sub: subject,
                    aud: audience,
                    exp,
                };
                let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                let assertion = jsonwebtoken::encode(&header, &claims, key)
                    .map_err(|_| self.error("the jwt assertion could not be signed".into()))?;
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    ("assertion", assertion),
                ]
            }
            Grant::RefreshToken { .. } => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    (
                        "refresh_token",
                        state
                            .refresh
                            .as_ref()
                            .map(|token| token.expose_secret().to_owned())
                            .unwrap_or_default(),
                    ),
                    ("client_id", oauth.client_id.clone()),
                ];
                if let Some(secret) = &oauth.client_secret {
                    form.push(("client_secret", secret.expose_secret().to_owned()));
                }
                form
            }
            Grant::ClientCredentials { scopes } => {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", oauth.client_id.clone()),
                ];
                if let Some(secret) = &oauth.client_secret {
                    form.push(("client_secret", secret.expose_secret().to_owned()));
                }
                if !scopes.is_empty() {
                    form.push(("scope", scopes.join(" ")));
                }
                form
            }
        };
        let span = tracing::info_span!(
            "http",
            connector = %self.connector,
            method = "POST",
            route = TOKEN_ROUTE,
            status = tracing::field::Empty,
            attempt = 1u32,
            ms = tracing::field::Empty,
        );
        let started = Instant::now();
        oauth.counters.request(TOKEN_ROUTE);
        let request = oauth
            .http
            .post(oauth.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        let max_body = oauth.max_body;
        let exchange = async move {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            let body = super::client::read_body(&mut response, max_body).await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let outcome = tokio::time::timeout(oauth.timeout, exchange)
            .instrument(span.clone())
            .await;
        span.record("ms", super::client::millis(started.elapsed()));
        let connector = self.connector.to_string();
        let (status, body) = match outcome {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => {
                return Err(ConnectorError::Transport {
                    connector,
                    route: TOKEN_ROUTE.into(),
                    reason: super::client::describe(&err),
                });
            }
            Err(_) => {
                return Err(ConnectorError::Transport {
                    connector,
                    route: TOKEN_ROUTE.into(),
                    reason: format!("no complete response within {:?}", oauth.timeout),
                });
            }
        };
        span.record("status", status);
        oauth.counters.answered(status);
        let Some(body) = body else {
            return Err(ConnectorError::Malformed {
                connector,
                route: TOKEN_ROUTE.into(),
                reason: super::client::too_large(max_body),
            });
        };
        if status >= 500 {
            return Err(ConnectorError::Api {
                connector,
                route: TOKEN_ROUTE.into(),
                status,
                message: "the token endpoint is unavailable".into(),
                retry: crate::error::Retry::NextRun,
            });
        }
        if (200..300).contains(&status) {
            let token: RawToken =
                serde_json::from_slice(&body).map_err(|_| ConnectorError::Malformed {
                    connector,
                    route: TOKEN_ROUTE.into(),
                    reason: "the token response is not a token".into(),
                })?;
            return Ok(Issued {
                access: SecretString::from(token.access_token),
                refresh: token.refresh_token.map(SecretString::from),
                lifetime: token.expires_in.map(Duration::from_secs),
                instance_url: token.instance_url,
                identity: token.id,
            });
        }
        Err(match serde_json::from_slice::<RawTokenError>(&body) {
            Ok(refusal) => self.error(format!(
                "the token endpoint answered {}",
                oauth_code(&refusal.error)
            )),
            Err(_) => self.error(format!(
                "the token endpoint answered {status} without an error code"
            )),
        })
    }

    async fn save(
        &self,
        store: &Arc<dyn TokenStore>,
        rotated: &SecretString,
    ) -> Result<(), ConnectorError> {
        let (store, connector, token) =
            (Arc::clone(store), self.connector.clone(), rotated.clone());
        let saved =
            tokio::task::spawn_blocking(move || store.save_refresh_token(&connector, &token)).await;
        match saved {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.error(format!(
                "the rotated refresh token could not be saved: {}",
                err.reason
            ))),
            Err(_) => Err(self.error(
                "the rotated refresh token could not be saved: the token store panicked".into(),
            )),
        }
    }

    pub(super) fn error(&self, reason: String) -> ConnectorError {
        ConnectorError::Auth {
            connector: self.connector.to_string(),
            reason,
        }
    }
}

/// An OAuth error code as it may appear in an error message: the RFC 6749
/// alphabet only, so that nothing else the endpoint sent can slip through.
fn oauth_code(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if clean.is_empty() {
        "an unreadable error code".into()
    } else {
        clean
    }
}

/// The instance a token response named, if the check lets calls go there:
/// https to an allowed host, or plain loopback when the token URL is
/// loopback too. Only the origin is kept.
fn accept_instance(check: &InstanceCheck, named: &str, token_url: &Url) -> Result<Url, String> {
    const REFUSED: &str = "instance_url host not allowed";
    let url = Url::parse(named).map_err(|_| "instance_url is not a url".to_owned())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(REFUSED.into());
    }
    let loopback = |url: &Url| match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let allowed = if loopback(&url) {
        loopback(token_url) && matches!(url.scheme(), "http" | "https")
    } else {
        url.scheme() == "https"
            && matches!(url.host(), Some(Host::Domain(host)) if check
                .allowed_hosts
                .iter()
                .any(|pattern| host_matches(pattern, host)))
    };
    if !allowed {
        return Err(REFUSED.into());
    }
    let mut origin = url;
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    Ok(origin)
}

/// `pattern` is a host name, or `*.` and a suffix matching any subdomain
/// of it (not the suffix itself).
fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim().to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => host == pattern,
    }
}

/// The token endpoint receives the client secret: https only, or plain http
/// to a loopback host (an emulator).
fn check_token_url(url: &Url) -> Result<(), String> {
    if super::client::allowed_scheme(url) {
        Ok(())
    } else {
        Err("the token url must be https, or plain http to a loopback host".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_matches_subdomains_only() {
        assert!(host_matches(
            "*.my.salesforce.com",
            "acme.my.salesforce.com"
        ));
        assert!(host_matches(
            "*.my.salesforce.com",
            "ACME.my.salesforce.com"
        ));
        assert!(!host_matches("*.my.salesforce.com", "my.salesforce.com"));
        assert!(!host_matches(
            "*.my.salesforce.com",
            "acme.my.salesforce.com.evil.io"
        ));
        assert!(!host_matches(
            "*.my.salesforce.com",
            "evilmy.salesforce.com"
        ));
        assert!(host_matches("na1.salesforce.com", "na1.salesforce.com"));
    }

    #[test]
    fn an_instance_must_be_https_to_an_allowed_host_or_loopback_behind_a_loopback_login() {
        let check = InstanceCheck {
            allowed_hosts: vec!["*.my.salesforce.com".into()],
        };
        let remote = Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap();
        let local = Url::parse("http://127.0.0.1:9/services/oauth2/token").unwrap();
        assert_eq!(
            accept_instance(&check, "https://acme.my.salesforce.com/x?y", &remote)
                .unwrap()
                .as_str(),
            "https://acme.my.salesforce.com/"
        );
        for refused in [
            "http://acme.my.salesforce.com",
            "https://evil.example.com",
            "https://user@acme.my.salesforce.com",
            "http://127.0.0.1:8080",
            "not a url",
        ] {
            assert!(
                accept_instance(&check, refused, &remote).is_err(),
                "{refused}"
            );
        }
        assert!(accept_instance(&check, "http://127.0.0.1:8080", &local).is_ok());
        assert!(accept_instance(&check, "https://evil.example.com", &local).is_err());
    }

    #[test]
    fn an_oauth_error_code_keeps_only_its_alphabet() {
        assert_eq!(oauth_code("invalid_grant"), "invalid_grant");
        assert_eq!(oauth_code("bad <token abc>"), "badtokenabc");
        assert_eq!(oauth_code("!!"), "an unreadable error code");
    }

    #[test]
    fn a_token_is_renewed_a_tenth_of_its_lifetime_early_but_at_most_a_minute() {
        assert_eq!(
            renewal_margin(Duration::from_secs(1800)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(renewal_margin(Duration::ZERO), Duration::ZERO);
    }
}
