//! The demo's daemon config: the shipped `config/journeyd.toml`, edited as
//! an admin would edit it for their own CRMs (each connector's URL, the
//! Salesforce connected app and user), here pointed at the emulators.
//! Edited as a TOML document, so the comments that explain each key stay in
//! the file `--keep` leaves behind.

use anyhow::{Context as _, anyhow};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, InlineTable, Item, Table, Value, value};

const DAEMON_CONFIG: &str = include_str!("../../../config/journeyd.toml");
const JOURNEY: &str = include_str!("../../../config/journey.toml");

/// Where each emulator listens and what it expects, as the config needs it.
pub struct Targets {
    /// `api_url` of the HubSpot connector.
    pub hubspot_url: String,
    /// The environment variable the private app token is read from.
    pub hubspot_token_variable: &'static str,
    /// Burst limit of the emulated portal's tier, per 10 s.
    pub hubspot_requests_per_10s: u32,
    /// The emulated portal's account id: records link into it.
    pub hubspot_portal_id: u64,
    /// `login_url` of the Salesforce connector.
    pub salesforce_login_url: String,
    /// The connected app's consumer key and the integration user.
    pub salesforce_client_id: String,
    pub salesforce_username: String,
    /// The environment variable the Salesforce private key is read from
    /// (handed over in memory by the demo's secret resolver).
    pub salesforce_key_variable: &'static str,
    /// `api_url` and `authority_url` of the Dynamics connector: the
    /// emulator is the environment and its sign-in host at once.
    pub dynamics_url: String,
    /// The Entra tenant and app registration the emulator knows.
    pub dynamics_tenant: String,
    pub dynamics_client_id: String,
    /// The environment variable the client secret is read from.
    pub dynamics_secret_variable: &'static str,
}

/// Writes `journey.toml` and `journeyd.toml` into `dir`; write-back is
/// allowed when `apply` (with a cap high enough for every CRM's backlog).
/// Returns the daemon config's path.
pub fn write(dir: &Path, targets: &Targets, apply: bool) -> anyhow::Result<PathBuf> {
    let config = edit(targets, apply)?;
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
        Ok(path)
    };
    write("journey.toml", JOURNEY)?;
    write("journeyd.toml", &config)
}

fn edit(targets: &Targets, apply: bool) -> anyhow::Result<String> {
    let mut config: DocumentMut = DAEMON_CONFIG
        .parse()
        .context("the shipped config is not valid TOML")?;
    let connectors = table(config.as_table_mut(), "connectors")?;

    let hubspot = table(connectors, "hubspot")?;
    hubspot["api_url"] = noted(targets.hubspot_url.as_str(), "the demo's emulated portal");
    hubspot["portal_id"] = noted(
        targets.hubspot_portal_id.to_string(),
        "the emulated portal's account id, for links to its records",
    );
    table(hubspot, "limits")?["requests"] = noted(
        i64::from(targets.hubspot_requests_per_10s),
        "the emulated portal is a Professional account",
    );
    // The shipped config reads every secret from a systemd credential; the
    // demo hands its secrets over in memory instead, with no file.
    let mut secret = InlineTable::new();
    secret.insert("env", targets.hubspot_token_variable.into());
    hubspot["secret"] = noted(secret, "set by `journeyd demo` in memory only");

    let salesforce = table(connectors, "salesforce")?;
    salesforce["login_url"] = noted(
        targets.salesforce_login_url.as_str(),
        "the demo's emulated org",
    );
    salesforce["client_id"] = noted(
        targets.salesforce_client_id.as_str(),
        "the emulated org's connected app",
    );
    salesforce["username"] = noted(
        targets.salesforce_username.as_str(),
        "the emulated org's integration user",
    );
    let mut secret = InlineTable::new();
    secret.insert("env", targets.salesforce_key_variable.into());
    salesforce["secret"] = noted(secret, "set by `journeyd demo` in memory only");

    let dynamics = table(connectors, "dynamics")?;
    dynamics["api_url"] = noted(
        targets.dynamics_url.as_str(),
        "the demo's emulated environment",
    );
    dynamics["authority_url"] = noted(targets.dynamics_url.as_str(), "the emulator signs in too");
    dynamics["tenant"] = noted(targets.dynamics_tenant.as_str(), "the emulated tenant");
    dynamics["client_id"] = noted(
        targets.dynamics_client_id.as_str(),
        "the emulated app registration",
    );
    let mut secret = InlineTable::new();
    secret.insert("env", targets.dynamics_secret_variable.into());
    dynamics["secret"] = noted(secret, "set by `journeyd demo` in memory only");

    if apply {
        let writeback = table(config.as_table_mut(), "writeback")?;
        writeback["mode"] = value("apply");
        writeback["max_writes_per_run"] = value(10_000);
    }
    Ok(config.to_string())
}

/// `value` with a trailing comment saying why the demo set it.
fn noted(value: impl Into<Value>, note: &str) -> Item {
    let mut value = value.into();
    value.decor_mut().set_suffix(format!("   # {note}"));
    Item::Value(value)
}

/// The table `key` of `parent`, which the shipped config must have.
fn table<'a>(parent: &'a mut Table, key: &str) -> anyhow::Result<&'a mut Table> {
    parent
        .get_mut(key)
        .and_then(Item::as_table_mut)
        .ok_or_else(|| anyhow!("the shipped config has no table `{key}` for the demo to edit"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Connection, SecretRef, WritebackMode};
    use journeyd_salesforce::SalesforceAuth;

    fn targets() -> Targets {
        Targets {
            hubspot_url: "http://127.0.0.1:4001".into(),
            hubspot_token_variable: "DEMO_TOKEN",
            hubspot_requests_per_10s: 190,
            hubspot_portal_id: 4242,
            salesforce_login_url: "http://127.0.0.1:4002".into(),
            salesforce_client_id: "demo-consumer-key".into(),
            salesforce_username: "integration@demo.example".into(),
            salesforce_key_variable: "DEMO_KEY",
            dynamics_url: "http://127.0.0.1:4003".into(),
            dynamics_tenant: "5f0e6d0c-58a9-4c29-9a3e-0d8c2f1b7a64".into(),
            dynamics_client_id: "7d1b5c7e-2f0a-4c53-9a51-6f3b8e1d2c44".into(),
            dynamics_secret_variable: "DEMO_SECRET",
        }
    }

    fn load(apply: bool) -> crate::config::Config {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &targets(), apply).unwrap();
        crate::config::load(&path).unwrap_or_else(|errors| panic!("{errors}"))
    }

    #[test]
    fn the_edited_shipped_config_points_every_connector_at_the_emulators_and_passes_validation() {
        let config = load(false);
        let names: Vec<&str> = config.connectors.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["dynamics", "hubspot", "salesforce"]);
        let Connection::Dynamics(dynamics) = &config.connectors[0].connection else {
            panic!("dynamics is a Dynamics connection");
        };
        assert_eq!(dynamics.settings.url.as_str(), "http://127.0.0.1:4003/");
        assert_eq!(
            dynamics.settings.authority.as_str(),
            "http://127.0.0.1:4003/"
        );
        assert_eq!(
            config.connectors[0].secret,
            Some(SecretRef::Env("DEMO_SECRET".into()))
        );
        let Connection::Hubspot(hubspot) = &config.connectors[1].connection else {
            panic!("hubspot is a HubSpot connection");
        };
        assert_eq!(hubspot.settings.api_url.as_str(), "http://127.0.0.1:4001/");
        assert_eq!(hubspot.settings.limits.general.0.get(), 190);
        assert_eq!(
            config.connectors[1].secret,
            Some(SecretRef::Env("DEMO_TOKEN".into()))
        );
        let salesforce = &config.connectors[2];
        let Connection::Salesforce(connection) = &salesforce.connection else {
            panic!("salesforce is a Salesforce connection");
        };
        assert_eq!(
            connection.settings.login_url.as_str(),
            "http://127.0.0.1:4002/"
        );
        assert_eq!(
            connection.settings.auth,
            SalesforceAuth::JwtBearer {
                client_id: "demo-consumer-key".into(),
                username: "integration@demo.example".into(),
            }
        );
        assert_eq!(salesforce.secret, Some(SecretRef::Env("DEMO_KEY".into())));
        assert_eq!(config.writeback.mode, WritebackMode::DryRun);
    }

    #[test]
    fn with_apply_the_edited_config_allows_writes_beyond_the_shipped_cap() {
        let config = load(true);
        assert_eq!(config.writeback.mode, WritebackMode::Apply);
        assert_eq!(config.writeback.max_writes_per_run.get(), 10_000);
    }

    #[test]
    fn the_edited_config_keeps_the_shipped_comments() {
        let text = edit(&targets(), false).unwrap();
        assert!(text.contains("# Dynamics 365 connectors take (defaults shown):"));
    }
}
