//! Bearer credentials: a fixed token, or OAuth2 access tokens obtained and
//! refreshed with the `oauth2` crate.

use super::client::{Counters, TOKEN_ROUTE};
use crate::error::ConnectorError;
use crate::ids::ConnectorName;
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

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
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthSettings::Bearer(_) => "Bearer(..)",
            AuthSettings::RefreshToken { .. } => "RefreshToken(..)",
            AuthSettings::ClientCredentials { .. } => "ClientCredentials(..)",
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

type OAuthClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

struct OAuth {
    client: OAuthClient,
    grant: Grant,
    http: reqwest::Client,
    timeout: Duration,
    counters: Arc<Counters>,
    // One lock for the token and its refresh: a caller that finds the token
    // stale refreshes it while the others wait, then they all use the new one.
    state: tokio::sync::Mutex<TokenState>,
}

enum Grant {
    RefreshToken { store: Arc<dyn TokenStore> },
    ClientCredentials { scopes: Vec<Scope> },
}

struct TokenState {
    access: Option<Access>,
    /// The refresh token in force (refresh-token grant only).
    refresh: Option<SecretString>,
    /// Bumped on every new access token.
    generation: u64,
}

struct Access {
    token: SecretString,
    /// When to replace it; `None`: the token endpoint gave no lifetime.
    renew_at: Option<Instant>,
}

/// Why a token request failed, in words that hold no secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TokenTransport(String);

impl Authenticator {
    /// `http` is the client's own reqwest client (no redirects, so a token
    /// request never follows a redirect with the client secret in it).
    pub(super) fn new(
        connector: &ConnectorName,
        settings: AuthSettings,
        http: &reqwest::Client,
        timeout: Duration,
        counters: &Arc<Counters>,
    ) -> Result<Self, String> {
        let oauth = |token_url: Url, client_id: String, secret: SecretString, grant, refresh| {
            check_token_url(&token_url)?;
            let client = BasicClient::new(ClientId::new(client_id))
                .set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
                .set_token_uri(TokenUrl::from_url(token_url))
                // All parameters in the form body, as HubSpot's v3 endpoint wants.
                .set_auth_type(AuthType::RequestBody);
            Ok::<_, String>(Kind::OAuth(Box::new(OAuth {
                client,
                grant,
                http: http.clone(),
                timeout,
                counters: Arc::clone(counters),
                state: tokio::sync::Mutex::new(TokenState {
                    access: None,
                    refresh,
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
                client_secret,
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
                client_secret,
                Grant::ClientCredentials {
                    scopes: scopes.into_iter().map(Scope::new).collect(),
                },
                None,
            )?,
        };
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
        if let (Grant::RefreshToken { store }, Some(rotated)) =
            (&oauth.grant, response.refresh_token())
        {
            let unchanged = state
                .refresh
                .as_ref()
                .is_some_and(|current| current.expose_secret() == rotated.secret().as_str());
            if !unchanged {
                let rotated = SecretString::from(rotated.secret().to_owned());
                // Saved before anything is used: if this fails, the whole
                // response is dropped and the old tokens stay in force.
                self.save(store, &rotated).await?;
                state.refresh = Some(rotated);
            }
        }
        let token = SecretString::from(response.access_token().secret().to_owned());
        state.access = Some(Access {
            token: token.clone(),
            // A lifetime too long to add up is as good as none.
            renew_at: response
                .expires_in()
                .and_then(|lifetime| asked_at.checked_add(lifetime - renewal_margin(lifetime))),
        });
        state.generation += 1;
        oauth.counters.token_refreshed();
        tracing::info!(connector = %self.connector, "token refreshed");
        Ok(Credential {
            token,
            generation: state.generation,
        })
    }

    async fn request_token(
        &self,
        oauth: &OAuth,
        state: &TokenState,
    ) -> Result<BasicTokenResponse, ConnectorError> {
        let status = Arc::new(AtomicU16::new(0));
        // Owns what it uses, so that its future borrows nothing and stays Send.
        let send = |request: oauth2::HttpRequest| {
            let status = Arc::clone(&status);
            let counters = Arc::clone(&oauth.counters);
            let http = oauth.http.clone();
            let timeout = oauth.timeout;
            async move {
                counters.request(TOKEN_ROUTE);
                let request = reqwest::Request::try_from(request)
                    .map_err(|_| TokenTransport("the token request could not be built".into()))?;
                let exchange = async {
                    let response = http.execute(request).await?;
                    status.store(response.status().as_u16(), Ordering::Relaxed);
                    let mut answer = oauth2::http::Response::builder().status(response.status());
                    for (name, value) in response.headers() {
                        answer = answer.header(name, value);
                    }
                    let body = response.bytes().await?;
                    Ok::<_, reqwest::Error>(answer.body(body.to_vec()))
                };
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(Ok(Ok(answer))) => Ok(answer),
                    Ok(Ok(Err(_))) => Err(TokenTransport(
                        "the token response could not be read".into(),
                    )),
                    Ok(Err(err)) => Err(TokenTransport(super::client::describe(&err))),
                    Err(_) => Err(TokenTransport(format!(
                        "no complete response within {timeout:?}"
                    ))),
                }
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
        let result = match &oauth.grant {
            Grant::RefreshToken { .. } => {
                let current = state
                    .refresh
                    .as_ref()
                    .map(|token| token.expose_secret().to_owned())
                    .unwrap_or_default();
                let refresh = RefreshToken::new(current);
                oauth
                    .client
                    .exchange_refresh_token(&refresh)
                    .request_async(&send)
                    .instrument(span.clone())
                    .await
            }
            Grant::ClientCredentials { scopes } => {
                oauth
                    .client
                    .exchange_client_credentials()
                    .add_scopes(scopes.iter().cloned())
                    .request_async(&send)
                    .instrument(span.clone())
                    .await
            }
        };
        let status = status.load(Ordering::Relaxed);
        if status != 0 {
            span.record("status", status);
        }
        span.record("ms", super::client::millis(started.elapsed()));
        result.map_err(|err| self.token_error(err, status))
    }

    /// A failed token request as an error naming the connector and the OAuth
    /// error code, never the body (which might hold a token).
    fn token_error(
        &self,
        err: RequestTokenError<TokenTransport, BasicErrorResponse>,
        status: u16,
    ) -> ConnectorError {
        let connector = self.connector.to_string();
        if status >= 500 {
            return ConnectorError::Api {
                connector,
                route: TOKEN_ROUTE.into(),
                status,
                message: "the token endpoint is unavailable".into(),
                retry: crate::error::Retry::NextRun,
            };
        }
        match err {
            RequestTokenError::ServerResponse(response) => self.error(format!(
                "the token endpoint answered {}",
                response.error().as_ref()
            )),
            RequestTokenError::Request(TokenTransport(reason)) => ConnectorError::Transport {
                connector,
                route: TOKEN_ROUTE.into(),
                reason,
            },
            RequestTokenError::Parse(..) | RequestTokenError::Other(_) if status == 200 => {
                ConnectorError::Malformed {
                    connector,
                    route: TOKEN_ROUTE.into(),
                    reason: "the token response is not a token".into(),
                }
            }
            RequestTokenError::Parse(..) | RequestTokenError::Other(_) => self.error(format!(
                "the token endpoint answered {status} without an error code"
            )),
        }
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
