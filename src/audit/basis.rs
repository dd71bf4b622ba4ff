//! What a connector's records are judged under beside their own data: a
//! digest of every config value the rules and the normalizer read for it,
//! and of journeyd's version (the rules themselves). An audit that finds a
//! connector's digest changed since its last whole audit judges every
//! record of the connector again (see [`crate::store::ConnectorBasis`]).
//!
//! The digest covers the values' `Debug` text: every type it reads keeps
//! its fields in declaration order or in ordered maps, so the same config
//! gives the same digest in every process. What only reaches the CRM (the
//! connection, the credential) is left out.

use crate::config::{Config, ConnectorConfig};
use crate::store::ConnectorBasis;
use sha2::{Digest, Sha256};

/// The basis of each of `config`'s connectors.
pub fn bases(config: &Config) -> Vec<ConnectorBasis> {
    config
        .connectors
        .iter()
        .map(|connector| ConnectorBasis {
            connector: connector.name.clone(),
            digest: digest(config, connector),
        })
        .collect()
}

fn digest(config: &Config, connector: &ConnectorConfig) -> String {
    let mut hash = Sha256::new();
    let mut part = |name: &str, value: &dyn std::fmt::Debug| {
        hash.update(name.as_bytes());
        hash.update(format!("{value:?}").as_bytes());
        hash.update([0]);
    };
    part("version", &env!("CARGO_PKG_VERSION"));
    part("journey", &config.journey);
    part("checks", &config.checks);
    part("rules", &config.custom_rules);
    part("actions", &config.writeback.actions);
    part("timezone", &config.schedule.timezone);
    part("connector", &connector.name);
    part("system", &connector.system);
    part("stages", &connector.stages);
    part("outside", &connector.outside);
    part("roles", &connector.roles);
    part("fallback_owners", &connector.fallback_owners);
    part("fields", &connector.fields);
    part("lifecycle", &connector.lifecycle);
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> Config {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::config::load(&repo.join("config/journeyd.toml")).unwrap()
    }

    #[test]
    fn the_same_config_loaded_twice_has_the_same_bases() {
        assert_eq!(bases(&shipped()), bases(&shipped()));
    }

    #[test]
    fn a_changed_stage_limit_changes_every_connectors_digest() {
        let before = bases(&shipped());
        let mut config = shipped();
        config.journey.stages[0].max_days = Some(7);
        let after = bases(&config);
        for (a, b) in before.iter().zip(&after) {
            assert_ne!(a.digest, b.digest, "{}", a.connector);
        }
    }

    #[test]
    fn a_changed_field_map_changes_only_its_connectors_digest() {
        let before = bases(&shipped());
        let mut config = shipped();
        config.connectors[0]
            .fields
            .insert("new_field".into(), "pain_points".into());
        let after = bases(&config);
        assert_ne!(before[0].digest, after[0].digest);
        assert_eq!(before[1..], after[1..]);
    }
}
