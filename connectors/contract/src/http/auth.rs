//! Bearer credentials: a fixed token, or OAuth2 access tokens obtained and
//! refreshed with the `oauth2` crate.

use crate::ids::ConnectorName;
use secrecy::SecretString;
use std::sync::Arc;
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
pub trait TokenStore: Send + Sync {
    fn save_refresh_token(
        &self,
        connector: &ConnectorName,
        token: &SecretString,
    ) -> Result<(), TokenStoreError>;
}
