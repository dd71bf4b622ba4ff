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
use journeyd_connector::http::CallStats;
use journeyd_connector::{Connector, ConnectorError, ConnectorName};
use journeyd_dynamics::{DynamicsConnector, DynamicsCredentials};
use journeyd_hubspot::{HubspotAuth, HubspotConnector, HubspotCredentials};
use journeyd_salesforce::{SalesforceAuth, SalesforceConnector, SalesforceCredentials};
use std::sync::Arc;
use thiserror::Error;

/// A connector ready to talk to its CRM. Boxed: the connectors differ
/// widely in size, and one is held per configured CRM.
pub enum AnyConnector {
    Hubspot(Box<HubspotConnector>),
    Salesforce(Box<SalesforceConnector>),
    Dynamics(Box<DynamicsConnector>),
}

#[derive(Debug, Error)]
pub enum BuildError {
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
                    .map(|c| AnyConnector::Hubspot(Box::new(c)))
                    .map_err(|source| BuildError::Connector {
                        connector: name.clone(),
                        source,
                    })
            }
            Connection::Salesforce(salesforce) => {
                let settings = salesforce.settings.clone();
                let credentials = match &settings.auth {
                    SalesforceAuth::JwtBearer { .. } => SalesforceCredentials::JwtBearer {
                        private_key: secrets.require(name, "secret", config.secret.as_ref())?,
                    },
                    SalesforceAuth::RefreshToken { .. } => {
                        let client_secret =
                            secrets.require(name, "secret", config.secret.as_ref())?;
                        let configured = secrets.require(
                            name,
                            "refresh_token",
                            salesforce.refresh_token.as_ref(),
                        )?;
                        SalesforceCredentials::RefreshToken {
                            client_secret,
                            refresh_token: tokens.current(name, configured)?,
                            store: tokens.clone(),
                        }
                    }
                };
                SalesforceConnector::new(name.clone(), settings, credentials)
                    .map(|c| AnyConnector::Salesforce(Box::new(c)))
                    .map_err(|source| BuildError::Connector {
                        connector: name.clone(),
                        source,
                    })
            }
            Connection::Dynamics(dynamics) => {
                let credentials = DynamicsCredentials {
                    client_secret: secrets.require(name, "secret", config.secret.as_ref())?,
                };
                DynamicsConnector::new(name.clone(), dynamics.settings.clone(), credentials)
                    .map(|c| AnyConnector::Dynamics(Box::new(c)))
                    .map_err(|source| BuildError::Connector {
                        connector: name.clone(),
                        source,
                    })
            }
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
                sync::sync(store, c.as_ref(), config, options, progress, shutdown).await
            }
            AnyConnector::Salesforce(c) => {
                sync::sync(store, c.as_ref(), config, options, progress, shutdown).await
            }
            AnyConnector::Dynamics(c) => {
                sync::sync(store, c.as_ref(), config, options, progress, shutdown).await
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
            AnyConnector::Hubspot(c) => writeback::run(store, c.as_ref(), options).await,
            AnyConnector::Salesforce(c) => writeback::run(store, c.as_ref(), options).await,
            AnyConnector::Dynamics(c) => writeback::run(store, c.as_ref(), options).await,
        }
    }

    /// The daily API allowance the CRM last reported as (used, allowed),
    /// where it reports one (Salesforce).
    pub fn daily_usage(&self) -> Option<(u64, u64)> {
        match self {
            AnyConnector::Salesforce(c) => c.daily_usage(),
            AnyConnector::Hubspot(_) | AnyConnector::Dynamics(_) => None,
        }
    }

    /// What this connector's HTTP client has done since it was built:
    /// requests by route, retries, token refreshes, 429s. Cumulative.
    pub fn stats(&self) -> CallStats {
        match self {
            AnyConnector::Hubspot(c) => c.stats(),
            AnyConnector::Salesforce(c) => c.stats(),
            AnyConnector::Dynamics(c) => c.stats(),
        }
    }

    /// Ends every wait of this connector's calls (the rate limit, a
    /// backoff, a `Retry-After`) once `shutdown` turns `true`: the call
    /// then ends with [`ConnectorError::Stopped`], which a sync or a
    /// write-back takes as the stop it is.
    pub fn stop_waits_on(&mut self, shutdown: &Shutdown) {
        let stop = shutdown.clone();
        match self {
            AnyConnector::Hubspot(c) => c.stop_waits_on(stop),
            AnyConnector::Salesforce(c) => c.stop_waits_on(stop),
            AnyConnector::Dynamics(c) => c.stop_waits_on(stop),
        }
    }

    pub fn name(&self) -> &ConnectorName {
        match self {
            AnyConnector::Hubspot(c) => c.name(),
            AnyConnector::Salesforce(c) => c.name(),
            AnyConnector::Dynamics(c) => c.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HubspotConnection, RoleMap, SalesforceConnection, SecretRef};
    use journeyd_connector::{ObjectKind, System};
    use journeyd_hubspot::HubspotSettings;
    use journeyd_salesforce::SalesforceSettings;
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
            fallback_owners: BTreeMap::new(),
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

    fn salesforce(auth: SalesforceAuth, refresh_token: Option<SecretRef>) -> Connection {
        let url = url::Url::parse("http://127.0.0.1:9").unwrap();
        Connection::Salesforce(Box::new(SalesforceConnection {
            settings: SalesforceSettings::defaults(url, auth),
            refresh_token,
        }))
    }

    fn try_build(
        config: &ConnectorConfig,
        env: &'static [(&'static str, &'static str)],
    ) -> Result<AnyConnector, BuildError> {
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
        AnyConnector::build(config, &secrets, &tokens)
    }

    fn build(config: &ConnectorConfig, env: &'static [(&'static str, &'static str)]) -> String {
        match try_build(config, env) {
            Ok(_) => panic!("built"),
            Err(error) => error.to_string(),
        }
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

    fn jwt() -> SalesforceAuth {
        SalesforceAuth::JwtBearer {
            client_id: "consumer-key".into(),
            username: "journeyd@example.com".into(),
        }
    }

    fn refresh() -> SalesforceAuth {
        SalesforceAuth::RefreshToken {
            client_id: "consumer-key".into(),
        }
    }

    fn dynamics() -> Connection {
        let url = url::Url::parse("http://127.0.0.1:9").unwrap();
        Connection::Dynamics(Box::new(crate::config::DynamicsConnection {
            settings: journeyd_dynamics::DynamicsSettings::for_url(
                url,
                "contoso.onmicrosoft.com",
                "7d1b5c7e-2f0a-4c53-9a51-6f3b8e1d2c44",
            ),
        }))
    }

    #[test]
    fn a_dynamics_connector_reads_its_client_secret_and_names_it_when_missing() {
        let app = config(
            System::Dynamics,
            dynamics(),
            Some(SecretRef::Env("DYNAMICS_SECRET".into())),
        );
        assert_eq!(
            build(&app, &[("DYNAMICS_OTHER", "s3cr3t-value")]),
            "connector crm: environment variable DYNAMICS_SECRET is not set"
        );
        assert!(matches!(
            try_build(&app, &[("DYNAMICS_SECRET", "s3cr3t-value")]),
            Ok(AnyConnector::Dynamics(_))
        ));
    }

    #[test]
    fn a_salesforce_jwt_connector_reads_its_private_key_from_secret_and_names_it_when_missing() {
        let jwt = config(
            System::Salesforce,
            salesforce(jwt(), None),
            Some(SecretRef::Env("SF_PRIVATE_KEY".into())),
        );
        let error = build(&jwt, &[("SF_OTHER", "-----BEGIN PRIVATE KEY-----")]);
        assert_eq!(
            error,
            "connector crm: environment variable SF_PRIVATE_KEY is not set"
        );
        assert!(!error.contains("BEGIN PRIVATE KEY"));
    }

    /// A key no CRM trusts, kept for tests of the JWT bearer flow.
    const THROWAWAY_KEY: &str = include_str!("../connectors/contract/tests/keys/throwaway-rsa.pem");

    #[test]
    fn a_salesforce_jwt_connector_with_its_private_key_needs_no_other_secret() {
        let jwt = config(
            System::Salesforce,
            salesforce(jwt(), None),
            Some(SecretRef::Env("SF_PRIVATE_KEY".into())),
        );
        let result = try_build(&jwt, &[("SF_PRIVATE_KEY", THROWAWAY_KEY)]);
        assert!(
            matches!(result, Ok(AnyConnector::Salesforce(_))),
            "{}",
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }

    #[test]
    fn a_salesforce_jwt_connector_whose_private_key_is_not_a_key_names_the_connector_and_hides_it()
    {
        let jwt = config(
            System::Salesforce,
            salesforce(jwt(), None),
            Some(SecretRef::Env("SF_PRIVATE_KEY".into())),
        );
        let Err(error) = try_build(&jwt, &[("SF_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----")])
        else {
            panic!("built with a key that is not one");
        };
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        let said = format!("{error}: {}", cause.unwrap_or_default());
        assert!(said.starts_with("connector crm"), "{said}");
        assert!(said.contains("key"), "{said}");
        assert!(!said.contains("BEGIN PRIVATE KEY"), "{said}");
    }

    #[test]
    fn a_salesforce_refresh_token_connector_names_the_client_secret_then_the_refresh_token_and_never_their_values()
     {
        let flow = config(
            System::Salesforce,
            salesforce(refresh(), Some(SecretRef::Env("SF_REFRESH".into()))),
            Some(SecretRef::Env("SF_CLIENT_SECRET".into())),
        );
        assert_eq!(
            build(&flow, &[("SF_REFRESH", "5Aep861-refresh")]),
            "connector crm: environment variable SF_CLIENT_SECRET is not set"
        );
        let error = build(&flow, &[("SF_CLIENT_SECRET", "hunter2")]);
        assert_eq!(
            error,
            "connector crm: environment variable SF_REFRESH is not set"
        );
        assert!(!error.contains("hunter2"));
        let result = try_build(
            &flow,
            &[
                ("SF_CLIENT_SECRET", "hunter2"),
                ("SF_REFRESH", "5Aep861-refresh"),
            ],
        );
        let shown = result
            .as_ref()
            .err()
            .map(|e| format!("{e:?} {e}"))
            .unwrap_or_default();
        assert!(
            matches!(
                result,
                Ok(AnyConnector::Salesforce(_)) | Err(BuildError::Connector { .. })
            ),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("5Aep861"),
            "{shown}"
        );
    }
}
