//! `[connectors.NAME]`: the CRM kind, where its secret comes from, and the
//! maps from its native stages, owners, fields and lifecycle values to the
//! journey's.

use super::connection::{self, Derived};
use super::{Checker, Known, is_identifier, known_stage, object_kind};
use crate::config::raw::{RawConnector, RawSecret, Text, TextMap};
use crate::config::{ConnectorConfig, LifecycleMap, RoleMap, SecretRef};
use crate::journey::{RoleId, StageId};
use journeyd_connector::{ConnectorName, System};
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

/// The connectors, sorted by name, and every canonical field name they map to.
pub(super) fn connectors(
    raw: &BTreeMap<Text, Spanned<RawConnector>>,
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> (Vec<ConnectorConfig>, BTreeSet<String>) {
    let mut connectors = Vec::new();
    let mut canonical = BTreeSet::new();
    for (name, table) in raw {
        let context = format!("connector `{}`: ", name.get_ref());
        let name_ok = check.identifier(name, "", "connector name", true);
        let raw = table.get_ref();
        let system = check
            .require(&raw.kind, &table.span(), "kind", &context, "`hubspot`, `salesforce` or `dynamics`")
            .and_then(|kind| {
                let system = System::ALL.into_iter().find(|s| s.as_str() == kind.get_ref());
                if system.is_none() {
                    check.error(
                        kind.span().start,
                        format!(
                            "{context}unknown kind `{}` (use `hubspot`, `salesforce` or `dynamics`)",
                            kind.get_ref()
                        ),
                    );
                }
                system
            });
        let secret = match &raw.secret {
            Some(secret) => secret_ref(secret, "secret", &context, check).map(Some),
            None => Some(None),
        };

        let mut stages = BTreeMap::new();
        let mut outside = BTreeMap::new();
        for (kind, map) in &raw.stages {
            let kind_value = object_kind(check, kind, &context, "stages");
            let within = format!("stages.{}", kind.get_ref());
            // `"-"` marks a native stage that has left the journey
            // (closed-lost, disqualified): known, but not a journey stage.
            let (left, journey): (TextMap, TextMap) = map
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .partition(|(_, stage)| stage.get_ref() == OUTSIDE);
            let map = stage_map(&journey, &within, &context, known, check);
            if let Some(kind) = kind_value {
                stages.insert(kind, map);
                outside.insert(kind, left.into_keys().map(|k| k.into_inner()).collect());
            }
        }

        let roles = match &raw.roles {
            Some(roles) => RoleMap {
                users: role_map(&roles.users, "roles.users", true, &context, known, check),
                teams: role_map(&roles.teams, "roles.teams", false, &context, known, check),
            },
            None => RoleMap::default(),
        };

        let fallback_owners = fallback_owners(&raw.fallback_owners, &context, known, check);

        let mut fields = BTreeMap::new();
        for (crm, name) in &raw.fields {
            if crm.get_ref().trim().is_empty() {
                check.error(
                    crm.span().start,
                    format!("{context}a CRM field name in `fields` is empty"),
                );
            }
            if is_identifier(name.get_ref(), false) {
                canonical.insert(name.get_ref().clone());
                fields.insert(crm.get_ref().clone(), name.get_ref().clone());
            } else {
                check.error(
                    name.span().start,
                    format!(
                        "{context}canonical field name `{}` for `{}` is not allowed (use a lowercase letter, then lowercase letters, digits or `_`)",
                        name.get_ref(),
                        crm.get_ref()
                    ),
                );
            }
        }

        let lifecycle = raw.lifecycle.as_ref().map(|table| {
            let raw = table.get_ref();
            let field = check
                .require(
                    &raw.field,
                    &table.span(),
                    "field",
                    &context,
                    "the CRM field holding the lifecycle status",
                )
                .and_then(|field| {
                    if field.get_ref().trim().is_empty() {
                        check.error(
                            field.span().start,
                            format!("{context}`lifecycle.field` must not be empty"),
                        );
                        return None;
                    }
                    Some(field.get_ref().clone())
                });
            let values = stage_map(&raw.values, "lifecycle.values", &context, known, check);
            field.map(|field| LifecycleMap { field, values })
        });

        let reach = connection::reach(
            table,
            system,
            Derived {
                fields: &fields,
                lifecycle: lifecycle.as_ref().and_then(Option::as_ref),
            },
            &context,
            check,
        );

        if let (true, Some(system), Some(secret), Some(reach)) = (name_ok, system, secret, reach) {
            connectors.push(ConnectorConfig {
                name: ConnectorName::new(name.get_ref()),
                system,
                secret,
                stages,
                outside,
                roles,
                fallback_owners,
                fields: reach.fields.unwrap_or(fields),
                lifecycle: lifecycle.flatten(),
                objects: reach.objects,
                connection: reach.connection,
            });
        }
    }
    (connectors, canonical)
}

/// `fallback_owners`: journey role -> an owner id or email (lowercased).
fn fallback_owners(
    raw: &TextMap,
    context: &str,
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> BTreeMap<RoleId, String> {
    let mut map = BTreeMap::new();
    for (role, owner) in raw {
        if !known.is_none_or(|known| known.has_role(role.get_ref())) {
            let roles = known.map(Known::role_list).unwrap_or_default();
            check.error(
                role.span().start,
                format!(
                    "{context}`fallback_owners` names unknown role `{}` (the journey's roles: {roles})",
                    role.get_ref()
                ),
            );
            continue;
        }
        let owner = owner.get_ref().trim();
        if owner.is_empty() {
            check.error(
                role.span().start,
                format!(
                    "{context}the fallback owner of role `{}` is empty (give an owner id or email)",
                    role.get_ref()
                ),
            );
            continue;
        }
        let owner = if owner.contains('@') {
            owner.to_lowercase()
        } else {
            owner.to_owned()
        };
        map.insert(RoleId::new(role.get_ref()), owner);
    }
    map
}

/// Where `key` (`secret`, `refresh_token`) is read from.
pub(super) fn secret_ref(
    secret: &Spanned<RawSecret>,
    key: &str,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<SecretRef> {
    let raw = secret.get_ref();
    match (&raw.env, &raw.credential) {
        (Some(env), None) => {
            let name = env.get_ref();
            let mut chars = name.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                check.error(
                    env.span().start,
                    format!(
                        "{context}`{name}` is not an environment variable name (use letters, digits and `_`, not starting with a digit)"
                    ),
                );
            }
            ok.then(|| SecretRef::Env(name.clone()))
        }
        (None, Some(credential)) => {
            let name = credential.get_ref();
            // systemd credential names are file names in $CREDENTIALS_DIRECTORY.
            let ok = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
            if !ok {
                check.error(
                    credential.span().start,
                    format!(
                        "{context}`{name}` is not a credential name (use the name given to `LoadCredential=`, without `/`)"
                    ),
                );
            }
            ok.then(|| SecretRef::Credential(name.clone()))
        }
        (Some(_), Some(credential)) => {
            check.error(
                credential.span().start,
                format!("{context}`{key}` takes one of `env` or `credential`, not both"),
            );
            None
        }
        (None, None)
            if check.dropped(&secret.span(), "env")
                || check.dropped(&secret.span(), "credential") =>
        {
            None
        }
        (None, None) => {
            check.error(
                secret.span().start,
                format!(
                    "{context}`{key}` names no source: use `{key} = {{ env = \"NAME\" }}` or `{key} = {{ credential = \"NAME\" }}`"
                ),
            );
            None
        }
    }
}

/// The stage map value of a native stage outside the journey.
pub(super) const OUTSIDE: &str = "-";

/// Native value -> stage id, for `stages.KIND` and `lifecycle.values`.
fn stage_map(
    raw: &TextMap,
    within: &str,
    context: &str,
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> BTreeMap<String, StageId> {
    let mut map = BTreeMap::new();
    for (native, stage) in raw {
        let what = format!("`{}` in `{within}` maps to", native.get_ref());
        if known_stage(check, known, stage, context, &what) {
            map.insert(native.get_ref().clone(), StageId::new(stage.get_ref()));
        }
    }
    map
}

/// Owner or team -> role. Emails are compared lowercased when records are
/// mapped, so they are stored lowercased, and two spellings of one address
/// are one key.
fn role_map(
    raw: &TextMap,
    within: &str,
    users: bool,
    context: &str,
    known: Option<&Known>,
    check: &mut Checker<'_>,
) -> BTreeMap<String, RoleId> {
    let mut map = BTreeMap::new();
    let mut keys: BTreeMap<String, &Text> = BTreeMap::new();
    // In the order written, so the second spelling is the one reported.
    let mut entries: Vec<(&Text, &Text)> = raw.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    for (key, role) in entries {
        let name = if users && key.get_ref().contains('@') {
            key.get_ref().trim().to_lowercase()
        } else {
            key.get_ref().clone()
        };
        if let Some(first) = keys.get(&name) {
            check.error(
                key.span().start,
                format!(
                    "{context}`{}` in `{within}` is the same address as `{}` (emails are compared lowercased)",
                    key.get_ref(),
                    first.get_ref()
                ),
            );
            continue;
        }
        keys.insert(name.clone(), key);
        let role_ok = known.is_none_or(|known| known.has_role(role.get_ref()));
        if !role_ok {
            let roles = known.map(Known::role_list).unwrap_or_default();
            check.error(
                role.span().start,
                format!(
                    "{context}`{}` in `{within}` maps to unknown role `{}` (the journey's roles: {roles})",
                    key.get_ref(),
                    role.get_ref()
                ),
            );
            continue;
        }
        map.insert(name, RoleId::new(role.get_ref()));
    }
    map
}
