//! A `kind = "dynamics"` connector's connection keys: the environment's
//! `api_url`, `api_version`, the Entra app (`tenant`, `client_id`, the
//! client secret in `secret`, `authority_url`, `scope`), the columns it
//! reads stages from and writes by, `change_tracking`, `[limits]` and
//! `[paging]`, validated into the Dynamics crate's [`DynamicsSettings`].

use super::{
    ApiVersion, Derived, FieldNaming, Reach, account_stage_named, api_version, apply_common_limits,
    bounded, non_zero, object_fields, objects, url,
};
use crate::config::raw::{RawConnector, RawLimits, RawPaging, Text};
use crate::config::validate::{Checker, object_kind};
use crate::config::{Connection, DynamicsConnection};
use journeyd_connector::{ObjectKind, System};
use journeyd_dynamics::DynamicsSettings;
use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::Duration;
use toml::Spanned;
use url::Url;

/// Rows per page: Dataverse honours `odata.maxpagesize` up to 5,000.
const MAX_PAGE_SIZE: u32 = 5000;
/// Requests per `$batch`: at most 1,000.
const MAX_BATCH_LIMIT: u32 = 1000;
/// `v9.N`, as in `/api/data/v9.2/`.
const DATAVERSE_VERSION: ApiVersion = ApiVersion {
    crm: "a Dataverse Web API version (such as `v9.2`)",
    shaped: |text| {
        text.strip_prefix("v9.")
            .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
    },
};
/// Where Entra ID issues tokens, unless a sovereign cloud says otherwise.
const AUTHORITY_URL: &str = "https://login.microsoftonline.com";
/// How Dataverse names columns, for the field map's messages.
const NAMING: FieldNaming = FieldNaming {
    crm: "Dataverse",
    rule: "a Dataverse column logical name (lowercase letters, digits and `_`, starting with a letter)",
    valid: is_logical_name,
};

pub(super) fn dynamics(
    table: &Spanned<RawConnector>,
    derived: Derived<'_>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<Reach> {
    let raw = table.get_ref();
    let span = table.span();
    let objects = objects(raw, &ObjectKind::ALL, System::Dynamics, context, check);
    let api_url = check
        .require(
            &raw.api_url,
            &span,
            "api_url",
            context,
            "the environment URL, such as `https://contoso.crm.dynamics.com`",
        )
        .and_then(|value| url(check, value, context, "api_url"));
    let authority = match &raw.authority_url {
        Some(value) => url(check, value, context, "authority_url"),
        None => Some(Url::parse(AUTHORITY_URL).expect("a valid literal URL")),
    };
    let tenant = check
        .require(
            &raw.tenant,
            &span,
            "tenant",
            context,
            "the Entra tenant id (a GUID) or its domain, such as `contoso.onmicrosoft.com`",
        )
        .and_then(|value| tenant(value, context, check));
    let client_id = check
        .require(
            &raw.client_id,
            &span,
            "client_id",
            context,
            "the Entra app registration's application (client) id",
        )
        .and_then(|value| guid(value, context, "client_id", check));
    // Without the client secret nothing can authenticate.
    let secret = check.require(
        &raw.secret,
        &span,
        "secret",
        context,
        "where the app registration's client secret is read from",
    );

    // Everything else is checked whatever is wrong above, on the defaults;
    // the URL and the app are filled in once they are known good.
    let mut settings = DynamicsSettings::for_url(
        Url::parse("https://example.crm.dynamics.com").expect("a valid literal URL"),
        String::new(),
        String::new(),
    );
    let mut ok = true;
    let mut column = |value: &Option<Text>, key: &str, check: &mut Checker<'_>| match value {
        Some(value) => {
            let name = logical_name(value, context, key, check);
            ok &= name.is_some();
            name
        }
        None => None,
    };
    let deal_stage = column(&raw.deal_stage_field, "deal_stage_field", check);
    let lead_stage = column(&raw.lead_stage_field, "lead_stage_field", check);
    let account_stage = column(&raw.account_stage_field, "account_stage_field", check);
    let alternate_key = column(&raw.task_alternate_key, "task_alternate_key", check);
    if let Some(field) = deal_stage {
        settings.deal_stage_field = field;
    }
    if let Some(field) = lead_stage {
        settings.lead_stage_field = field;
    }
    settings.account_stage_field = account_stage;
    settings.task_alternate_key = alternate_key;
    if let Some(version) = &raw.api_version {
        match api_version(version, &DATAVERSE_VERSION, context, check) {
            Some(version) => settings.api_version = version,
            None => ok = false,
        }
    }
    if let Some(scope) = &raw.scope {
        match non_blank(scope, context, "scope", check) {
            Some(scope) => settings.scope = Some(scope),
            None => ok = false,
        }
    }
    if let Some(list) = &raw.change_tracking {
        match change_tracking(list, context, check) {
            Some(tracked) => settings.change_tracking = tracked,
            None => ok = false,
        }
    }
    if let Some(limits) = &raw.limits {
        ok &= apply_limits(limits.get_ref(), &mut settings, context, check);
    }
    if let Some(paging) = &raw.paging {
        ok &= apply_paging(paging.get_ref(), &mut settings, context, check);
    }
    let properties = object_fields(&raw.fields, &NAMING, context, check);
    let (api_url, authority, tenant, client_id, objects, (properties, fields)) = (
        api_url?,
        authority?,
        tenant?,
        client_id?,
        objects?,
        properties?,
    );
    secret?;

    // A stock organization has no account stage: the journey's account
    // stages live in a custom column only the admin can name.
    ok &= account_stage_named(
        raw,
        &objects,
        "account column",
        "a custom choice such as `new_customerstage`",
        context,
        check,
    );

    settings.url = api_url;
    settings.authority = authority;
    settings.tenant = tenant;
    settings.client_id = client_id;
    settings.properties = properties;
    settings.lifecycle_field = derived.lifecycle.map(|map| map.field.clone());
    ok.then_some(Reach {
        objects,
        connection: Connection::Dynamics(Box::new(DynamicsConnection { settings })),
        fields: Some(fields),
    })
}

/// A column's logical name: a lowercase letter, then lowercase letters,
/// digits and `_`.
fn is_logical_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn logical_name(value: &Text, context: &str, key: &str, check: &mut Checker<'_>) -> Option<String> {
    let text = value.get_ref().trim();
    if !is_logical_name(text) {
        check.error(
            value.span().start,
            format!(
                "{context}`{key}` `{}` is not {}",
                value.get_ref(),
                NAMING.rule
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn guid(value: &Text, context: &str, key: &str, check: &mut Checker<'_>) -> Option<String> {
    let text = value.get_ref().trim();
    if !is_guid(text) {
        check.error(
            value.span().start,
            format!(
                "{context}`{key}` `{}` is not a GUID (such as `00000000-0000-0000-0000-000000000000`)",
                value.get_ref()
            ),
        );
        return None;
    }
    Some(text.to_ascii_lowercase())
}

/// A tenant id (GUID) or a verified domain: it becomes a path segment of
/// the token URL, so nothing that could change the path gets through.
fn tenant(value: &Text, context: &str, check: &mut Checker<'_>) -> Option<String> {
    let text = value.get_ref().trim();
    let domain = text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !is_guid(text) && !domain {
        check.error(
            value.span().start,
            format!(
                "{context}`tenant` `{}` is neither a tenant id (a GUID) nor a domain such as `contoso.onmicrosoft.com`",
                value.get_ref()
            ),
        );
        return None;
    }
    Some(text.to_ascii_lowercase())
}

fn non_blank(value: &Text, context: &str, key: &str, check: &mut Checker<'_>) -> Option<String> {
    let text = value.get_ref().trim();
    if text.is_empty() {
        check.error(
            value.span().start,
            format!("{context}`{key}` must not be empty"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// The object kinds read by change tracking; the others by modification
/// time. An empty list is allowed: every table without "Track changes".
fn change_tracking(
    list: &Spanned<Vec<Text>>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<BTreeSet<ObjectKind>> {
    let mut ok = true;
    let mut kinds = BTreeSet::new();
    for value in list.get_ref() {
        match object_kind(check, value, context, "change_tracking") {
            Some(kind) => {
                kinds.insert(kind);
            }
            None => ok = false,
        }
    }
    ok.then_some(kinds)
}

fn apply_limits(
    raw: &RawLimits,
    settings: &mut DynamicsSettings,
    context: &str,
    check: &mut Checker<'_>,
) -> bool {
    let mut ok = apply_common_limits(
        raw,
        &mut settings.limits,
        &mut settings.retry,
        context,
        check,
    );
    if let Some(value) = &raw.max_concurrent {
        match bounded(check, value, 1, None, context, "limits.max_concurrent") {
            Some(n) => {
                settings.max_concurrent =
                    NonZeroUsize::new(n as usize).expect("checked to be at least 1");
            }
            None => ok = false,
        }
    }
    ok
}

fn apply_paging(
    raw: &RawPaging,
    settings: &mut DynamicsSettings,
    context: &str,
    check: &mut Checker<'_>,
) -> bool {
    let mut ok = true;
    let mut number = |value: &Option<Spanned<i64>>, min, max, key| match value {
        Some(value) => {
            let n = bounded(check, value, min, max, context, key);
            ok &= n.is_some();
            n
        }
        None => None,
    };
    let page = number(&raw.page_size, 1, Some(MAX_PAGE_SIZE), "paging.page_size");
    let batch = number(
        &raw.batch_limit,
        1,
        Some(MAX_BATCH_LIMIT),
        "paging.batch_limit",
    );
    let lookup = number(&raw.task_lookup_ids, 1, None, "paging.task_lookup_ids");
    let overlap = number(&raw.overlap_seconds, 0, None, "paging.overlap_seconds");
    if let Some(page) = page {
        settings.page_size = non_zero(page);
    }
    if let Some(batch) = batch {
        settings.batch_limit = NonZeroUsize::new(batch as usize).expect("checked to be at least 1");
    }
    if let Some(lookup) = lookup {
        settings.task_lookup_ids =
            NonZeroUsize::new(lookup as usize).expect("checked to be at least 1");
    }
    if let Some(overlap) = overlap {
        settings.overlap = Duration::from_secs(u64::from(overlap));
    }
    ok
}
