//! The CRM connectors journeyd can run, as a closed set: one enum variant per
//! connector crate, built from a connector's config and its secrets, and
//! matched once per operation. Sync and write-back are generic over
//! [`Connector`]; this is the one place that knows which connectors exist.
//!
//! The `Connector` trait returns `impl Future`, so it is not object-safe: an
//! enum, not `dyn`, is how the daemon holds "some connector".

use crate::config::{Connection, ConnectorConfig};
use crate::secrets::{RefreshTokenFile, SecretError, SecretResolver};
use crate::store::StoreHandle;
use crate::sync::{self, Shutdown, SyncError, SyncOptions, SyncProgress, SyncSummary};
use crate::writeback::{self, WritebackError, WritebackOptions, WritebackReport};
use journeyd_connector::{Connector, ConnectorError, ConnectorName, System};
use journeyd_hubspot::{HubspotAuth, HubspotConnector, HubspotCredentials};
use std::sync::Arc;
use thiserror::Error;

/// A connector ready to talk to its CRM.
pub enum AnyConnector {
    Hubspot(HubspotConnector),
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(
        "connector {connector}: connector kind {system} is not supported yet (only `journeyd import` can feed it)"
    )]
    Unsupported {
        connector: ConnectorName,
        system: System,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("connector {connector} could not be set up")]
    Connector {
        connector: ConnectorName,
        #[source]
        source: ConnectorError,
    },
}

impl AnyConnector {
    /// Builds the connector `config` describes, reading its secrets now, so
    /// that a missing secret stops the command before any work starts.
    /// `tokens` is where a rotated OAuth refresh token is saved, and read
    /// back from at the next start.
    pub fn build(
        config: &ConnectorConfig,
        secrets: &SecretResolver,
        tokens: &Arc<RefreshTokenFile>,
    ) -> Result<AnyConnector, BuildError> {
        let name = &config.name;
        match &config.connection {
            Connection::Hubspot(hubspot) => {
                let settings = hubspot.settings.clone();
                let credentials = match &settings.auth {
                    HubspotAuth::PrivateApp => HubspotCredentials::PrivateApp {
                        token: secrets.require(name, "secret", config.secret.as_ref())?,
                    },
                    HubspotAuth::OAuth { .. } => {
                        let client_secret =
                            secrets.require(name, "secret", config.secret.as_ref())?;
                        let configured = secrets.require(
                            name,
                            "refresh_token",
                            hubspot.refresh_token.as_ref(),
                        )?;
                        HubspotCredentials::OAuth {
                            client_secret,
                            refresh_token: tokens.current(name, configured)?,
                            store: tokens.clone(),
                        }
                    }
                };
                HubspotConnector::new(name.clone(), settings, credentials)
                    .map(AnyConnector::Hubspot)
                    .map_err(|source| BuildError::Connector {
                        connector: name.clone(),
                        source,
                    })
            }
            Connection::Other => Err(BuildError::Unsupported {
                connector: name.clone(),
                system: config.system,
            }),
        }
    }

    /// One sync of this connector; see [`sync::sync`].
    pub async fn sync(
        &self,
        store: &StoreHandle,
        config: &ConnectorConfig,
        options: &SyncOptions,
        progress: &dyn SyncProgress,
        shutdown: &Shutdown,
    ) -> Result<SyncSummary, SyncError> {
        match self {
            AnyConnector::Hubspot(c) => {
                sync::sync(store, c, config, options, progress, shutdown).await
            }
        }
    }

    /// One write-back run of this connector, writing to its CRM; see
    /// [`writeback::run`].
    pub async fn writeback(
        &self,
        store: &StoreHandle,
        options: &WritebackOptions<'_>,
    ) -> Result<WritebackReport, WritebackError> {
        match self {
            AnyConnector::Hubspot(c) => writeback::run(store, c, options).await,
        }
    }

    pub fn name(&self) -> &ConnectorName {
        match self {
            AnyConnector::Hubspot(c) => c.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HubspotConnection, RoleMap, SecretRef};
    use journeyd_connector::ObjectKind;
    use journeyd_hubspot::HubspotSettings;
    use std::collections::BTreeMap;

    fn config(
        system: System,
        connection: Connection,
        secret: Option<SecretRef>,
    ) -> ConnectorConfig {
        ConnectorConfig {
            name: ConnectorName::new("crm"),
            system,
            secret,
            stages: BTreeMap::new(),
            outside: BTreeMap::new(),
            roles: RoleMap::default(),
            fields: BTreeMap::new(),
            lifecycle: None,
            objects: ObjectKind::ALL.into_iter().collect(),
            connection,
        }
    }

    fn hubspot(auth: HubspotAuth, refresh_token: Option<SecretRef>) -> Connection {
        let url = url::Url::parse("http://127.0.0.1:9").unwrap();
        Connection::Hubspot(Box::new(HubspotConnection {
            settings: HubspotSettings::defaults(url, auth),
            refresh_token,
        }))
    }

    fn build(config: &ConnectorConfig, env: &'static [(&'static str, &'static str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretResolver::new(
            move |name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).into())
            },
            None,
        );
        let tokens = Arc::new(RefreshTokenFile::beside(&dir.path().join("j.sqlite")));
        match AnyConnector::build(config, &secrets, &tokens) {
            Ok(_) => panic!("built"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_kind_without_a_connector_yet_is_refused_by_name() {
        let salesforce = config(System::Salesforce, Connection::Other, None);
        assert_eq!(
            build(&salesforce, &[]),
            "connector crm: connector kind salesforce is not supported yet (only `journeyd import` can feed it)"
        );
    }

    #[test]
    fn a_missing_secret_stops_the_build_naming_the_variable_and_never_the_others_values() {
        let private_app = config(
            System::Hubspot,
            hubspot(HubspotAuth::PrivateApp, None),
            Some(SecretRef::Env("HS_TOKEN".into())),
        );
        assert_eq!(
            build(&private_app, &[("OTHER", "hunter2")]),
            "connector crm: environment variable HS_TOKEN is not set"
        );

        let oauth = config(
            System::Hubspot,
            hubspot(
                HubspotAuth::OAuth {
                    client_id: "app".into(),
                    token_url: url::Url::parse("http://127.0.0.1:9/oauth/v3/token").unwrap(),
                },
                Some(SecretRef::Env("HS_REFRESH".into())),
            ),
            Some(SecretRef::Env("HS_CLIENT_SECRET".into())),
        );
        let error = build(&oauth, &[("HS_CLIENT_SECRET", "hunter2")]);
        assert_eq!(
            error,
            "connector crm: environment variable HS_REFRESH is not set"
        );
        assert!(!error.contains("hunter2"));
    }
}
