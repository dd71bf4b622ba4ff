//! A `kind = "salesforce"` connector's connection keys: `login_url`,
//! `instance_hosts`, `api_version`, `auth` (`jwt` or `refresh_token`) and its
//! keys, the custom fields it reads and writes, `[limits]` and `[paging]`,
//! validated into the Salesforce crate's [`SalesforceSettings`].

use super::{
    ApiVersion, Derived, FieldNaming, MAX_SETTLE_SECONDS, Reach, account_stage_named, api_version,
    apply_common_limits, bounded, non_zero, object_fields, objects, url,
};
use crate::config::raw::{RawConnector, RawLimits, RawPaging, Text};
use crate::config::validate::Checker;
use crate::config::validate::connectors::secret_ref;
use crate::config::{Connection, SalesforceConnection, SecretRef};
use journeyd_connector::{ObjectKind, System};
use journeyd_salesforce::{SalesforceAuth, SalesforceSettings};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use url::Url;

const LOGIN_URL: &str = "https://login.salesforce.com";
/// `vNN.N`, as in `/services/data/v62.0/`.
const SALESFORCE_VERSION: ApiVersion = ApiVersion {
    crm: "a Salesforce API version (such as `v62.0`)",
    shaped: |text| {
        let bytes = text.as_bytes();
        bytes.len() == 5
            && bytes[0] == b'v'
            && bytes[1].is_ascii_digit()
            && bytes[2].is_ascii_digit()
            && bytes[3] == b'.'
            && bytes[4].is_ascii_digit()
    },
};
/// Rows per query page: Salesforce takes a `batchSize` from 200 to 2,000.
const QUERY_BATCH: (u32, u32) = (200, 2000);
/// Records per sObject Collections call: at most 200.
const MAX_BATCH_LIMIT: u32 = 200;

pub(super) fn salesforce(
    table: &Spanned<RawConnector>,
    derived: Derived<'_>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<Reach> {
    let raw = table.get_ref();
    let span = table.span();
    let objects = objects(raw, &ObjectKind::ALL, System::Salesforce, context, check);
    let login_url = match &raw.login_url {
        Some(value) => url(check, value, context, "login_url"),
        None => Some(Url::parse(LOGIN_URL).expect("a valid literal URL")),
    };
    let auth = auth(raw, &span, context, check);

    // Everything else is checked whatever is wrong above, on the defaults;
    // the login URL and auth are filled in once they are known good.
    let mut settings = SalesforceSettings::defaults(
        Url::parse(LOGIN_URL).expect("a valid literal URL"),
        SalesforceAuth::RefreshToken {
            client_id: String::new(),
        },
    );
    let mut ok = true;
    if let Some(hosts) = &raw.instance_hosts {
        match instance_hosts(hosts, context, check) {
            Some(hosts) => settings.instance_hosts = hosts,
            None => ok = false,
        }
    }
    if let Some(version) = &raw.api_version {
        match api_version(version, &SALESFORCE_VERSION, context, check) {
            Some(version) => settings.api_version = version,
            None => ok = false,
        }
    }
    if let Some(field) = &raw.task_external_id {
        match field_name(field, context, "task_external_id", true, check) {
            Some(field) => settings.task_external_id = Some(field),
            None => ok = false,
        }
    }
    if let Some(settle) = &raw.settle_seconds {
        match bounded(
            check,
            settle,
            0,
            Some(MAX_SETTLE_SECONDS),
            context,
            "settle_seconds",
        ) {
            Some(seconds) => settings.settle = Duration::from_secs(u64::from(seconds)),
            None => ok = false,
        }
    }
    if let Some(field) = &raw.account_stage_field {
        match field_name(field, context, "account_stage_field", false, check) {
            Some(field) => settings.account_stage_field = Some(field),
            None => ok = false,
        }
    }
    if let Some(audience) = &raw.jwt_audience {
        match url(check, audience, context, "jwt_audience") {
            // The claim is compared as text: `https://login.salesforce.com`,
            // without the slash a parsed URL gains.
            Some(parsed) => {
                settings.jwt_audience = Some(parsed.as_str().trim_end_matches('/').to_owned());
            }
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
    let (login_url, (auth, refresh_token), objects, (properties, fields)) =
        (login_url?, auth?, objects?, properties?);

    // Salesforce has no standard account stage: the journey's account
    // stages live in a custom field only the admin can name. No default, so
    // that a missing field is a config error now and not a failed query on
    // every sync.
    ok &= account_stage_named(
        raw,
        &objects,
        "account field",
        "a custom picklist such as `Customer_Stage__c`",
        context,
        check,
    );

    settings.login_url = login_url;
    settings.auth = auth;
    settings.properties = properties;
    settings.lifecycle_field = derived.lifecycle.map(|map| map.field.clone());
    ok.then_some(Reach {
        objects,
        connection: Connection::Salesforce(Box::new(SalesforceConnection {
            settings,
            refresh_token,
        })),
        fields: Some(fields),
    })
}

/// How Salesforce names fields, for the field map's messages.
const NAMING: FieldNaming = FieldNaming {
    crm: "Salesforce",
    rule: "a Salesforce field API name (letters, digits and `_`, starting with a letter)",
    valid: is_api_name,
};

fn is_api_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !text.ends_with('_')
}

/// `auth`, `client_id`, `username`, `refresh_token` and `secret`: what
/// each flow needs, and nothing the other flow takes.
fn auth(
    raw: &RawConnector,
    span: &Range<usize>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<(SalesforceAuth, Option<SecretRef>)> {
    let jwt = match raw.auth.as_ref().map(|a| a.get_ref().as_str()) {
        None | Some("jwt") => true,
        Some("refresh_token") => false,
        Some(other) => {
            let at = raw.auth.as_ref().map_or(span.start, |a| a.span().start);
            check.error(
                at,
                format!("{context}unknown auth `{other}` (use `jwt` or `refresh_token`)"),
            );
            return None;
        }
    };
    let client_id = check
        .require(
            &raw.client_id,
            span,
            "client_id",
            context,
            "the connected app's consumer key",
        )
        .and_then(|id| non_empty(id, context, "client_id", check));
    if jwt {
        let username = check
            .require(
                &raw.username,
                span,
                "username",
                context,
                "the integration user's Salesforce username, required with `auth = \"jwt\"`",
            )
            .and_then(|name| non_empty(name, context, "username", check));
        let private_key = check.require(
            &raw.secret,
            span,
            "secret",
            context,
            "where the connected app's private key (PEM) is read from, required with `auth = \"jwt\"`",
        );
        let stray = raw.refresh_token.as_ref().map(|token| {
            check.error(
                token.span().start,
                format!(
                    "{context}`refresh_token` is only used with `auth = \"refresh_token\"`: the JWT bearer flow has none"
                ),
            );
        });
        private_key?;
        if stray.is_some() {
            return None;
        }
        Some((
            SalesforceAuth::JwtBearer {
                client_id: client_id?,
                username: username?,
            },
            None,
        ))
    } else {
        let refresh_token = check
            .require(
                &raw.refresh_token,
                span,
                "refresh_token",
                context,
                "`{ env = \"NAME\" }` or `{ credential = \"NAME\" }`, required with `auth = \"refresh_token\"`",
            )
            .and_then(|secret| secret_ref(secret, "refresh_token", context, check));
        let client_secret = check.require(
            &raw.secret,
            span,
            "secret",
            context,
            "where the connected app's consumer secret is read from, required with `auth = \"refresh_token\"`",
        );
        let stray = [
            raw.username.as_ref().map(|name| {
                check.error(
                    name.span().start,
                    format!(
                        "{context}`username` is only used with `auth = \"jwt\"`: a refresh token already names its user"
                    ),
                );
            }),
            raw.jwt_audience.as_ref().map(|audience| {
                check.error(
                    audience.span().start,
                    format!(
                        "{context}`jwt_audience` is only used with `auth = \"jwt\"`"
                    ),
                );
            }),
        ]
        .into_iter()
        .flatten()
        .next();
        client_secret?;
        if stray.is_some() {
            return None;
        }
        Some((
            SalesforceAuth::RefreshToken {
                client_id: client_id?,
            },
            Some(refresh_token?),
        ))
    }
}

fn non_empty(value: &Text, context: &str, key: &str, check: &mut Checker<'_>) -> Option<String> {
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

/// Host names, each either exact (`acme.my.salesforce.com`) or a wildcard
/// over the subdomains of a name with at least two labels
/// (`*.my.salesforce.com`), lowercased.
fn instance_hosts(
    hosts: &Spanned<Vec<Text>>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<Vec<String>> {
    if hosts.get_ref().is_empty() {
        check.error(
            hosts.span().start,
            format!(
                "{context}`instance_hosts` is empty: name the hosts a token response's `instance_url` may point at"
            ),
        );
        return None;
    }
    let mut ok = true;
    let mut patterns = Vec::new();
    for host in hosts.get_ref() {
        let text = host.get_ref().trim().to_ascii_lowercase();
        let name = text.strip_prefix("*.").unwrap_or(&text);
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let wildcard_wide_enough = !text.starts_with("*.") || labels.len() >= 2;
        if labels.iter().all(label_ok) && wildcard_wide_enough {
            patterns.push(text);
        } else {
            check.error(
                host.span().start,
                format!(
                    "{context}`instance_hosts` entry `{}` is not a host name or `*.` and a domain of at least two labels (such as `*.my.salesforce.com`)",
                    host.get_ref()
                ),
            );
            ok = false;
        }
    }
    ok.then_some(patterns)
}

/// A field's API name: a letter, then letters, digits and single
/// underscores; with `custom`, ending in `__c` (a custom field, as an
/// external id on Task must be).
fn field_name(
    value: &Text,
    context: &str,
    key: &str,
    custom: bool,
    check: &mut Checker<'_>,
) -> Option<String> {
    let text = value.get_ref().trim();
    if !is_api_name(text) {
        check.error(
            value.span().start,
            format!(
                "{context}`{key}` `{}` is not a Salesforce field API name (letters, digits and `_`, starting with a letter)",
                value.get_ref()
            ),
        );
        return None;
    }
    if custom && !text.ends_with("__c") {
        check.error(
            value.span().start,
            format!(
                "{context}`{key}` `{text}` is not a custom field: an external id on Task is a custom field, ending in `__c`"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

fn apply_limits(
    raw: &RawLimits,
    settings: &mut SalesforceSettings,
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
    if let Some(share) = &raw.daily_stop_share {
        let value = *share.get_ref();
        if value > 0.0 && value <= 1.0 {
            settings.daily_stop_share = value;
        } else {
            check.error(
                share.span().start,
                format!(
                    "{context}`limits.daily_stop_share` must be more than 0 and at most 1 (a share of the daily API allowance), not `{value:?}`"
                ),
            );
            ok = false;
        }
    }
    ok
}

fn apply_paging(
    raw: &RawPaging,
    settings: &mut SalesforceSettings,
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
    let (min_batch, max_batch) = QUERY_BATCH;
    let query = number(
        &raw.query_batch,
        min_batch,
        Some(max_batch),
        "paging.query_batch",
    );
    let batch = number(
        &raw.batch_limit,
        1,
        Some(MAX_BATCH_LIMIT),
        "paging.batch_limit",
    );
    let overlap = number(&raw.overlap_seconds, 0, None, "paging.overlap_seconds");
    if let Some(query) = query {
        settings.query_batch = non_zero(query);
    }
    if let Some(batch) = batch {
        settings.batch_limit = NonZeroUsize::new(batch as usize).expect("checked to be at least 1");
    }
    if let Some(overlap) = overlap {
        settings.overlap = Duration::from_secs(u64::from(overlap));
    }
    ok
}
