//! How a connector reaches its CRM: `api_url`, `auth`, the OAuth keys,
//! `objects`, `[connectors.NAME.limits]` and `[connectors.NAME.paging]`,
//! validated into the connector crate's own settings type.
//!
//! A key one kind of connector takes is refused by name on the others.
//! Salesforce's keys are checked in [`salesforce`], Dynamics 365's in
//! [`dynamics`].

use super::connectors::secret_ref;
use super::{Checker, object_kind, one_of};
use crate::config::raw::{RawConnector, RawLimits, RawPaging, Text, TextMap};
use crate::config::{Config, Connection, HubspotConnection, LifecycleMap};
use journeyd_connector::http::{RateLimits, RetryPolicy};
use journeyd_connector::{ObjectKind, System};
use journeyd_hubspot::{HubspotAuth, HubspotSettings, TaskReading};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use url::{Host, Url};

mod dynamics;
mod salesforce;

const HUBSPOT_API_URL: &str = "https://api.hubapi.com";
/// Appended to `api_url` when `token_url` is not given.
const HUBSPOT_TOKEN_PATH: &str = "/oauth/v3/token";
/// The object kinds HubSpot has (companies are accounts; it has no leads
/// object the journey uses).
const HUBSPOT_OBJECTS: [ObjectKind; 3] =
    [ObjectKind::Deal, ObjectKind::Contact, ObjectKind::Account];
/// HubSpot's search API refuses larger pages (published in its API spec).
const HUBSPOT_MAX_SEARCH_LIMIT: u32 = 200;
/// Records per v4 association batch read (HubSpot's cap since 2025-02).
const HUBSPOT_MAX_ASSOCIATION_BATCH: u32 = 1000;
/// The longest a write-back recovery may be told to wait before it looks a
/// write up: ten minutes, Salesforce's own limit on one request.
pub(super) const MAX_SETTLE_SECONDS: u32 = 600;

/// The validated share of a connector's table that `validate` does not
/// already cover.
pub(super) struct Reach {
    pub objects: BTreeSet<ObjectKind>,
    pub connection: Connection,
    /// CRM field name -> canonical name, where the connection reads the
    /// field map's keys differently from the CRM's field names (Salesforce's
    /// `"deal.Pain_Points__c"`); `None`: the keys are the field names.
    pub fields: Option<BTreeMap<String, String>>,
}

/// What the rest of the connector's table yielded, which the connection
/// settings are derived from.
pub(super) struct Derived<'a> {
    pub fields: &'a BTreeMap<String, String>,
    pub lifecycle: Option<&'a LifecycleMap>,
}

/// `None` when a problem was reported.
pub(super) fn reach(
    raw: &Spanned<RawConnector>,
    system: Option<System>,
    derived: Derived<'_>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<Reach> {
    let system = system?;
    let foreign = foreign_keys(raw.get_ref(), system);
    for (key, at, owners) in &foreign {
        let owners: Vec<String> = owners.iter().map(|s| format!("`{s}`")).collect();
        check.error(
            *at,
            format!(
                "{context}`{key}` is a setting of {} connectors; `{system}` connectors do not take it",
                owners.join(" and ")
            ),
        );
    }
    let reach = match system {
        System::Hubspot => hubspot(raw, derived, context, check),
        System::Salesforce => salesforce::salesforce(raw, derived, context, check),
        System::Dynamics => dynamics::dynamics(raw, derived, context, check),
    };
    reach.filter(|_| foreign.is_empty())
}

const HUBSPOT: &[System] = &[System::Hubspot];
const SALESFORCE: &[System] = &[System::Salesforce];
const DYNAMICS: &[System] = &[System::Dynamics];
const HUBSPOT_SALESFORCE: &[System] = &[System::Hubspot, System::Salesforce];
const HUBSPOT_DYNAMICS: &[System] = &[System::Hubspot, System::Dynamics];
const SALESFORCE_DYNAMICS: &[System] = &[System::Salesforce, System::Dynamics];
const ALL: &[System] = &System::ALL;

/// The connection keys written in a connector's table that `system` does not
/// take, with where each is written and the kinds that do take it. A table
/// taken as a whole (`limits`, `paging`) is checked key by key where the
/// system takes the table.
fn foreign_keys(raw: &RawConnector, system: System) -> Vec<(String, usize, &'static [System])> {
    fn at<T>(value: &Option<Spanned<T>>) -> Option<usize> {
        value.as_ref().map(|v| v.span().start)
    }
    let mut keys: Vec<(String, Option<usize>, &'static [System])> = vec![
        ("api_url".into(), at(&raw.api_url), HUBSPOT_DYNAMICS),
        ("auth".into(), at(&raw.auth), HUBSPOT_SALESFORCE),
        ("client_id".into(), at(&raw.client_id), ALL),
        ("token_url".into(), at(&raw.token_url), HUBSPOT),
        ("portal_id".into(), at(&raw.portal_id), HUBSPOT),
        (
            "refresh_token".into(),
            at(&raw.refresh_token),
            HUBSPOT_SALESFORCE,
        ),
        ("limits".into(), at(&raw.limits), ALL),
        ("paging".into(), at(&raw.paging), ALL),
        (
            "lifecycle_forward_only".into(),
            at(&raw.lifecycle_forward_only),
            HUBSPOT,
        ),
        (
            "search_lag_seconds".into(),
            at(&raw.search_lag_seconds),
            HUBSPOT,
        ),
        ("settle_seconds".into(), at(&raw.settle_seconds), SALESFORCE),
        ("login_url".into(), at(&raw.login_url), SALESFORCE),
        ("instance_hosts".into(), at(&raw.instance_hosts), SALESFORCE),
        (
            "api_version".into(),
            at(&raw.api_version),
            SALESFORCE_DYNAMICS,
        ),
        ("username".into(), at(&raw.username), SALESFORCE),
        (
            "account_stage_field".into(),
            at(&raw.account_stage_field),
            SALESFORCE_DYNAMICS,
        ),
        (
            "task_external_id".into(),
            at(&raw.task_external_id),
            SALESFORCE,
        ),
        ("jwt_audience".into(), at(&raw.jwt_audience), SALESFORCE),
        ("tenant".into(), at(&raw.tenant), DYNAMICS),
        ("authority_url".into(), at(&raw.authority_url), DYNAMICS),
        ("scope".into(), at(&raw.scope), DYNAMICS),
        (
            "deal_stage_field".into(),
            at(&raw.deal_stage_field),
            DYNAMICS,
        ),
        (
            "lead_stage_field".into(),
            at(&raw.lead_stage_field),
            DYNAMICS,
        ),
        (
            "task_alternate_key".into(),
            at(&raw.task_alternate_key),
            DYNAMICS,
        ),
        ("change_tracking".into(), at(&raw.change_tracking), DYNAMICS),
    ];
    if let Some(limits) = &raw.limits {
        let limits = limits.get_ref();
        keys.extend([
            (
                "limits.search_per_second".into(),
                at(&limits.search_per_second),
                HUBSPOT,
            ),
            (
                "limits.daily_stop_share".into(),
                at(&limits.daily_stop_share),
                SALESFORCE,
            ),
            (
                "limits.max_concurrent".into(),
                at(&limits.max_concurrent),
                DYNAMICS,
            ),
        ]);
    }
    if let Some(paging) = &raw.paging {
        let paging = paging.get_ref();
        keys.extend([
            ("paging.list_limit".into(), at(&paging.list_limit), HUBSPOT),
            (
                "paging.search_limit".into(),
                at(&paging.search_limit),
                HUBSPOT,
            ),
            ("paging.search_cap".into(), at(&paging.search_cap), HUBSPOT),
            (
                "paging.association_batch".into(),
                at(&paging.association_batch),
                HUBSPOT,
            ),
            (
                "paging.query_batch".into(),
                at(&paging.query_batch),
                SALESFORCE,
            ),
            ("paging.page_size".into(), at(&paging.page_size), DYNAMICS),
            (
                "paging.task_lookup_ids".into(),
                at(&paging.task_lookup_ids),
                DYNAMICS,
            ),
        ]);
    }
    keys.into_iter()
        .filter(|(_, _, owners)| !owners.contains(&system))
        .filter_map(|(key, at, owners)| at.map(|at| (key, at, owners)))
        .collect()
}

/// What a CRM's API version looks like.
pub(super) struct ApiVersion {
    /// What a version is, as a message says it.
    pub crm: &'static str,
    pub shaped: fn(&str) -> bool,
}

/// `api_version`, checked against the CRM's shape.
pub(super) fn api_version(
    value: &Text,
    version: &ApiVersion,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<String> {
    let text = value.get_ref().trim();
    if !(version.shaped)(text) {
        check.error(
            value.span().start,
            format!(
                "{context}`api_version` `{}` is not {}",
                value.get_ref(),
                version.crm
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// How a CRM names fields, for the messages of [`object_fields`].
pub(super) struct FieldNaming {
    /// The CRM as a message names it.
    pub crm: &'static str,
    /// What a field name must look like, as a message says it.
    pub rule: &'static str,
    pub valid: fn(&str) -> bool,
}

/// The fields to read per object, and field name -> canonical name.
type FieldMap = (BTreeMap<ObjectKind, Vec<String>>, BTreeMap<String, String>);

/// A field map whose keys name the object and the field,
/// `"deal.Pain_Points__c"`: Salesforce and Dataverse refuse a whole query
/// that names a field its object lacks, so each object is asked only for
/// its own fields. Returns the fields per object, and the map from the
/// field's own name (as records carry it) to its canonical name.
pub(super) fn object_fields(
    raw: &TextMap,
    naming: &FieldNaming,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<FieldMap> {
    let mut ok = true;
    let mut properties: BTreeMap<ObjectKind, Vec<String>> = BTreeMap::new();
    let mut plain: BTreeMap<String, (String, &Text)> = BTreeMap::new();
    for (key, canonical) in raw {
        let written = key.get_ref().trim();
        let at = key.span().start;
        let Some((kind, field)) = written.split_once('.') else {
            check.error(
                at,
                format!(
                    "{context}`fields` key `{written}` does not name its object: write `\"deal.{written}\"` (or `lead.`, `contact.`, `account.`), since {} refuses a query naming a field its object lacks",
                    naming.crm
                ),
            );
            ok = false;
            continue;
        };
        let Some(kind) = ObjectKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
            check.error(
                at,
                format!(
                    "{context}`fields` key `{written}`: unknown object kind `{kind}` (use `lead`, `contact`, `account` or `deal`)"
                ),
            );
            ok = false;
            continue;
        };
        if !(naming.valid)(field) {
            check.error(
                at,
                format!(
                    "{context}`fields` key `{written}`: `{field}` is not {}",
                    naming.rule
                ),
            );
            ok = false;
            continue;
        }
        if let Some((other, first)) = plain.get(field)
            && other != canonical.get_ref()
        {
            check.error(
                at,
                format!(
                    "{context}`fields` maps `{field}` to `{}` here but to `{other}` at `{}`: records carry the field by its own name, so it means one thing on every object",
                    canonical.get_ref(),
                    first.get_ref()
                ),
            );
            ok = false;
            continue;
        }
        plain.insert(field.to_owned(), (canonical.get_ref().clone(), key));
        properties.entry(kind).or_default().push(field.to_owned());
    }
    let plain = plain
        .into_iter()
        .map(|(field, (canonical, _))| (field, canonical))
        .collect();
    ok.then_some((properties, plain))
}

/// Whether `account_stage_field` names where the account stages that
/// `stages.account` maps are held, when accounts are synced; reported
/// against `stages.account` when it does not. `holder` and `example` say
/// what the CRM calls such a field.
pub(super) fn account_stage_named(
    raw: &RawConnector,
    objects: &BTreeSet<ObjectKind>,
    holder: &str,
    example: &str,
    context: &str,
    check: &mut Checker<'_>,
) -> bool {
    let account_stages = raw
        .stages
        .keys()
        .find(|kind| kind.get_ref() == ObjectKind::Account.as_str());
    match account_stages {
        Some(kind)
            if objects.contains(&ObjectKind::Account) && raw.account_stage_field.is_none() =>
        {
            check.error(
                kind.span().start,
                format!(
                    "{context}`stages.account` maps account stages, but `account_stage_field` does not say which {holder} holds them ({example})"
                ),
            );
            false
        }
        _ => true,
    }
}

pub(super) fn objects(
    raw: &RawConnector,
    supported: &[ObjectKind],
    system: System,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<BTreeSet<ObjectKind>> {
    let Some(list) = &raw.objects else {
        return Some(supported.iter().copied().collect());
    };
    let mut ok = true;
    let mut objects = BTreeSet::new();
    for value in list.get_ref() {
        match object_kind(check, value, context, "objects") {
            Some(kind) if supported.contains(&kind) => {
                objects.insert(kind);
            }
            Some(kind) => {
                let names: Vec<&str> = supported.iter().map(|k| k.as_str()).collect();
                check.error(
                    value.span().start,
                    format!(
                        "{context}`{system}` has no `{kind}` objects to sync (use {})",
                        one_of(&names)
                    ),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if ok && objects.is_empty() {
        check.error(
            list.span().start,
            format!("{context}`objects` is empty: name at least one object kind to sync"),
        );
        ok = false;
    }
    ok.then_some(objects)
}

fn hubspot(
    table: &Spanned<RawConnector>,
    derived: Derived<'_>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<Reach> {
    let raw = table.get_ref();
    let span = table.span();
    let objects = objects(raw, &HUBSPOT_OBJECTS, System::Hubspot, context, check);
    let api_url = match &raw.api_url {
        Some(value) => url(check, value, context, "api_url"),
        None => Some(Url::parse(HUBSPOT_API_URL).expect("a valid literal URL")),
    };

    let oauth = match raw.auth.as_ref().map(|a| a.get_ref().as_str()) {
        None | Some("private_app") => Some(false),
        Some("oauth") => Some(true),
        Some(other) => {
            let at = raw.auth.as_ref().map_or(span.start, |a| a.span().start);
            check.error(
                at,
                format!("{context}unknown auth `{other}` (use `private_app` or `oauth`)"),
            );
            None
        }
    };
    let auth = match oauth {
        Some(true) => oauth_auth(raw, &span, api_url.as_ref(), context, check),
        Some(false) => {
            for (key, at) in [
                ("client_id", raw.client_id.as_ref().map(|v| v.span().start)),
                ("token_url", raw.token_url.as_ref().map(|v| v.span().start)),
                (
                    "refresh_token",
                    raw.refresh_token.as_ref().map(|v| v.span().start),
                ),
            ] {
                if let Some(at) = at {
                    check.error(
                        at,
                        format!("{context}`{key}` is only used with `auth = \"oauth\"`"),
                    );
                }
            }
            let clean =
                raw.client_id.is_none() && raw.token_url.is_none() && raw.refresh_token.is_none();
            clean.then_some((HubspotAuth::PrivateApp, None))
        }
        None => None,
    };

    let portal_id = raw.portal_id.as_ref().and_then(|value| {
        let id = value.get_ref().trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            check.error(
                value.span().start,
                format!(
                    "{context}`portal_id` `{}` is not a HubSpot account id (digits only)",
                    value.get_ref()
                ),
            );
            return None;
        }
        Some(Some(id.to_owned()))
    });
    let portal_id = match (&raw.portal_id, portal_id) {
        (None, _) => Some(None),
        (Some(_), found) => found,
    };

    // Limits and paging are checked whatever else is wrong, on the
    // defaults; the URL and auth are filled in once they are known good.
    let mut settings = HubspotSettings::defaults(
        Url::parse(HUBSPOT_API_URL).expect("a valid literal URL"),
        HubspotAuth::PrivateApp,
    );
    let mut ok = true;
    if let Some(limits) = &raw.limits {
        ok &= apply_limits(limits.get_ref(), &mut settings, context, check);
    }
    if let Some(paging) = &raw.paging {
        ok &= apply_paging(paging.get_ref(), &mut settings, context, check);
    }
    if let Some(lag) = &raw.search_lag_seconds {
        match bounded(
            check,
            lag,
            0,
            Some(MAX_SETTLE_SECONDS),
            context,
            "search_lag_seconds",
        ) {
            Some(seconds) => settings.search_lag = Duration::from_secs(u64::from(seconds)),
            None => ok = false,
        }
    }
    let (api_url, (auth, refresh_token), objects, portal_id) =
        (api_url?, auth?, objects?, portal_id?);
    settings.api_url = api_url;
    settings.auth = auth;
    settings.portal_id = portal_id;
    if let Some(forward_only) = &raw.lifecycle_forward_only {
        settings.lifecycle_forward_only = *forward_only.get_ref();
    }
    settings.properties = derived.fields.keys().cloned().collect();
    settings.lifecycle_property = derived.lifecycle.map(|map| map.field.clone());
    ok.then_some(Reach {
        objects,
        connection: Connection::Hubspot(Box::new(HubspotConnection {
            settings,
            refresh_token,
        })),
        fields: None,
    })
}

fn oauth_auth(
    raw: &RawConnector,
    span: &Range<usize>,
    api_url: Option<&Url>,
    context: &str,
    check: &mut Checker<'_>,
) -> Option<(HubspotAuth, Option<crate::config::SecretRef>)> {
    let client_id = check
        .require(
            &raw.client_id,
            span,
            "client_id",
            context,
            "the OAuth app's client id, required with `auth = \"oauth\"`",
        )
        .and_then(|id| {
            if id.get_ref().trim().is_empty() {
                check.error(
                    id.span().start,
                    format!("{context}`client_id` must not be empty"),
                );
                return None;
            }
            Some(id.get_ref().trim().to_owned())
        });
    let refresh_token = check
        .require(
            &raw.refresh_token,
            span,
            "refresh_token",
            context,
            "`{ env = \"NAME\" }` or `{ credential = \"NAME\" }`, required with `auth = \"oauth\"`",
        )
        .and_then(|secret| secret_ref(secret, "refresh_token", context, check));
    // With OAuth, `secret` is the client secret: without it nothing can
    // authenticate, so it is required here though optional for import-only
    // connectors.
    let client_secret = check.require(
        &raw.secret,
        span,
        "secret",
        context,
        "the OAuth app's client secret, required with `auth = \"oauth\"`",
    );
    let token_url = match &raw.token_url {
        Some(value) => url(check, value, context, "token_url"),
        None => api_url.map(|api| {
            let base = api.as_str().trim_end_matches('/');
            Url::parse(&format!("{base}{HUBSPOT_TOKEN_PATH}")).expect("a checked URL plus a path")
        }),
    };
    client_secret?;
    Some((
        HubspotAuth::OAuth {
            client_id: client_id?,
            token_url: token_url?,
        },
        Some(refresh_token?),
    ))
}

/// An https URL, or http to a loopback host (an emulator, a tunnel); no
/// credentials, query or fragment in it.
pub(super) fn url(check: &mut Checker<'_>, value: &Text, context: &str, key: &str) -> Option<Url> {
    let text = value.get_ref().trim();
    let at = value.span().start;
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(error) => {
            check.error(
                at,
                format!("{context}`{key}` `{text}` is not a URL: {error}"),
            );
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        check.mask(value.span());
        check.error(
            at,
            format!(
                "{context}`{key}` must not hold a user name or password: secrets are never written in the config file"
            ),
        );
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        check.error(
            at,
            format!("{context}`{key}` `{text}` must not have a query or a fragment"),
        );
        return None;
    }
    match url.scheme() {
        "https" => Some(url),
        "http" if is_loopback(&url) => Some(url),
        "http" => {
            check.error(
                at,
                format!(
                    "{context}`{key}` `{text}` uses plain http: only loopback hosts (`127.0.0.1`, `::1`, `localhost`) may; use https"
                ),
            );
            None
        }
        scheme => {
            check.error(
                at,
                format!("{context}`{key}` must be an https URL, not `{scheme}`"),
            );
            None
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A whole number in `min..=max`, reported against `key`.
pub(super) fn bounded(
    check: &mut Checker<'_>,
    value: &Spanned<i64>,
    min: u32,
    max: Option<u32>,
    context: &str,
    key: &str,
) -> Option<u32> {
    let number = check.count(value, min, context, key)?;
    if let Some(max) = max
        && number > max
    {
        check.error(
            value.span().start,
            format!("{context}`{key}` must be at most {max}, not `{number}`"),
        );
        return None;
    }
    Some(number)
}

/// A day: a `Retry-After` longer than that is the CRM saying "tomorrow".
const MAX_RETRY_AFTER_SECONDS: u32 = 86_400;
/// 4 GiB: far past any page a CRM serves.
const MAX_BODY_MB: u32 = 4096;

pub(super) fn non_zero(number: u32) -> NonZeroU32 {
    NonZeroU32::new(number).expect("checked to be at least 1")
}

fn apply_limits(
    raw: &RawLimits,
    settings: &mut HubspotSettings,
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
    if let Some(value) = &raw.search_per_second {
        match bounded(check, value, 1, None, context, "limits.search_per_second") {
            Some(search) => {
                settings.limits.search = Some((non_zero(search), Duration::from_secs(1)));
            }
            None => ok = false,
        }
    }
    ok
}

/// The limits every connector's HTTP client has: `requests` per
/// `per_seconds`, `retry_budget` (retries per run), `max_attempts` (per
/// call), `send_window_seconds` (how late a create may still be sent),
/// `max_retry_after_seconds` (the longest `Retry-After` waited out) and
/// `max_body_mb` (the largest response read).
pub(super) fn apply_common_limits(
    raw: &RawLimits,
    limits: &mut RateLimits,
    retry: &mut RetryPolicy,
    context: &str,
    check: &mut Checker<'_>,
) -> bool {
    let mut ok = true;
    let mut number = |value: &Option<Spanned<i64>>, min, key| match value {
        Some(value) => {
            let n = bounded(check, value, min, None, context, key);
            ok &= n.is_some();
            n
        }
        None => None,
    };
    let requests = number(&raw.requests, 1, "limits.requests");
    let per_seconds = number(&raw.per_seconds, 1, "limits.per_seconds");
    let budget = number(&raw.retry_budget, 0, "limits.retry_budget");
    let attempts = number(&raw.max_attempts, 1, "limits.max_attempts");
    let window = match &raw.send_window_seconds {
        Some(value) => {
            let n = bounded(
                check,
                value,
                1,
                Some(MAX_SETTLE_SECONDS),
                context,
                "limits.send_window_seconds",
            );
            ok &= n.is_some();
            n
        }
        None => None,
    };
    if let Some(window) = window {
        retry.send_window = Duration::from_secs(u64::from(window));
    }
    let mut capped = |value: &Option<Spanned<i64>>, max, key| match value {
        Some(value) => {
            let n = bounded(check, value, 1, Some(max), context, key);
            ok &= n.is_some();
            n
        }
        None => None,
    };
    let retry_after = capped(
        &raw.max_retry_after_seconds,
        MAX_RETRY_AFTER_SECONDS,
        "limits.max_retry_after_seconds",
    );
    let body = capped(&raw.max_body_mb, MAX_BODY_MB, "limits.max_body_mb");
    if let Some(seconds) = retry_after {
        retry.max_retry_after = Duration::from_secs(u64::from(seconds));
    }
    if let Some(mb) = body {
        retry.max_body = (mb as usize) << 20;
    }
    let (default_requests, default_per) = limits.general;
    limits.general = (
        requests.map_or(default_requests, non_zero),
        per_seconds.map_or(default_per, |s| Duration::from_secs(u64::from(s))),
    );
    if let Some(budget) = budget {
        retry.budget = budget;
    }
    if let Some(attempts) = attempts {
        retry.max_attempts = non_zero(attempts);
    }
    ok
}

fn apply_paging(
    raw: &RawPaging,
    settings: &mut HubspotSettings,
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
    let list = number(&raw.list_limit, 1, None, "paging.list_limit");
    let search = number(
        &raw.search_limit,
        1,
        Some(HUBSPOT_MAX_SEARCH_LIMIT),
        "paging.search_limit",
    );
    let cap = number(&raw.search_cap, 1, None, "paging.search_cap");
    let batch = number(&raw.batch_limit, 1, None, "paging.batch_limit");
    let overlap = number(&raw.overlap_seconds, 0, None, "paging.overlap_seconds");
    let associations = number(
        &raw.association_batch,
        1,
        Some(HUBSPOT_MAX_ASSOCIATION_BATCH),
        "paging.association_batch",
    );
    if let Some(associations) = associations {
        settings.association_batch_limit =
            NonZeroUsize::new(associations as usize).expect("checked to be at least 1");
    }
    if let Some(list) = list {
        settings.list_limit = non_zero(list);
    }
    if let Some(search) = search {
        settings.search_limit = non_zero(search);
    }
    if let Some(cap) = cap {
        settings.search_cap = non_zero(cap);
    }
    if let Some(batch) = batch {
        settings.batch_limit = NonZeroUsize::new(batch as usize).expect("checked to be at least 1");
    }
    if let Some(overlap) = overlap {
        settings.overlap = Duration::from_secs(u64::from(overlap));
    }
    ok
}

/// Which deals a HubSpot pull reads tasks for: every deal when a criterion
/// or custom rule looks at tasks (`open_tasks`, `task_subjects`), only the
/// deals in the onboarding check's stage when only that check does, and
/// none otherwise. A task read costs a call per page, so the daemon asks
/// only for what its rules can see.
pub(super) fn settle_task_reading(config: &mut Config) {
    let mentions_tasks =
        |source: &str| source.contains("open_tasks") || source.contains("task_subjects");
    let every = config
        .journey
        .stages
        .iter()
        .flat_map(|stage| &stage.exit_criteria)
        .any(|criterion| mentions_tasks(criterion.expr.source()))
        || config
            .custom_rules
            .iter()
            .any(|rule| mentions_tasks(rule.condition.source()));
    let onboarding = config.checks.onboarding.as_ref().map(|check| &check.stage);
    for connector in &mut config.connectors {
        let Connection::Hubspot(hubspot) = &mut connector.connection else {
            continue;
        };
        hubspot.settings.read_tasks = match (every, onboarding) {
            (true, _) => TaskReading::Every,
            (false, Some(stage)) => TaskReading::InStages(
                connector
                    .stages
                    .get(&ObjectKind::Deal)
                    .into_iter()
                    .flatten()
                    .filter(|(_, mapped)| *mapped == stage)
                    .map(|(native, _)| native.clone())
                    .collect(),
            ),
            (false, None) => TaskReading::Never,
        };
    }
}
