//! Reading (brief, facts 2.3): a collection with `$select`, `$filter`,
//! `$orderby`, `$top`, `$count` and the teams `$expand`, paged by
//! `Prefer: odata.maxpagesize`; change tracking (the full set, then delta
//! links with changed rows and `$deletedEntity` rows); one row by key.
//!
//! Paging keeps no state: the `$skiptoken` paging cookie says where the
//! next page starts (the last key served, or for an ordered read the rows
//! already served; for tracked reads also the version the read stops at
//! and the last version served), and each page is cut from the store's
//! indexes (rows by key, keys by version, the deletion log) without copying
//! a table.

use super::cell::Guid;
use super::filter::{Filter, value_of};
use super::render::{Annotations, View};
use super::reply::{ApiError, Reply};
use super::router::{ApiRequest, Shared};
use super::store::{Row, Store};
use super::table::Table;
use axum::http::{HeaderName, StatusCode};
use chrono::{DateTime, NaiveDateTime, Utc};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::ops::Bound;

/// `$count` stops counting here (facts 2.3).
const COUNT_CAP: usize = 5000;
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The query options a collection read understands.
#[derive(Debug, Default)]
struct Options {
    select: Option<String>,
    filter: Option<String>,
    orderby: Option<String>,
    top: Option<usize>,
    count: bool,
    expand: Option<String>,
    skiptoken: Option<String>,
    deltatoken: Option<String>,
}

impl Options {
    fn parse(request: &ApiRequest) -> Result<Self, ApiError> {
        let mut options = Options::default();
        for (name, value) in request.options() {
            match name.as_str() {
                "$select" => options.select = Some(value),
                "$filter" => options.filter = Some(value),
                "$orderby" => options.orderby = Some(value),
                "$top" => {
                    options.top = Some(value.trim().parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Invalid value '{value}' for $top query option found."
                        ))
                    })?);
                }
                "$count" => options.count = value == "true",
                "$expand" => options.expand = Some(value),
                "$skiptoken" => options.skiptoken = Some(value),
                "$deltatoken" => options.deltatoken = Some(value),
                "$skip" => {
                    return Err(ApiError::bad_request(
                        "The query parameter $skip is not supported",
                    ));
                }
                other if other.starts_with('$') => {
                    return Err(ApiError::bad_request(format!(
                        "The query parameter {other} is not supported"
                    )));
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

/// Where a page starts, carried in the paging cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Cookie {
    /// The number of the page this cookie asks for (2 for the first
    /// nextLink).
    page: usize,
    /// The last key served (reads in key order).
    last: Option<Guid>,
    /// Rows served so far (ordered reads, and `$top`).
    served: usize,
    /// Tracked reads: the version the read stops at.
    upto: Option<u64>,
    /// Delta reads: the last change version served.
    after: Option<u64>,
    /// Delta reads: the changed rows are done; deletions are being served,
    /// the last one served at this version.
    deleted_after: Option<u64>,
}

impl Cookie {
    /// `<cookie pagenumber="2" pagingcookie="..." istracking="False" />`,
    /// the inner cookie percent-encoded as Dataverse does (facts 2.3).
    fn encode(&self, table: Table) -> String {
        let mut inner = format!("<cookie page=\"{}\"", self.page - 1);
        if let Some(upto) = self.upto {
            inner.push_str(&format!(" upto=\"{upto}\""));
        }
        if let Some(after) = self.after {
            inner.push_str(&format!(" after=\"{after}\""));
        }
        if let Some(deleted) = self.deleted_after {
            inner.push_str(&format!(" deletedafter=\"{deleted}\""));
        }
        inner.push_str(&format!(" served=\"{}\">", self.served));
        if let Some(last) = self.last {
            inner.push_str(&format!("<{} last=\"{{{last}}}\" />", table.key()));
        }
        inner.push_str("</cookie>");
        format!(
            "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"{}\" />",
            self.page,
            utf8_percent_encode(&inner, NON_ALPHANUMERIC),
            if self.upto.is_some() { "True" } else { "False" }
        )
    }

    fn decode(token: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::bad_request("The $skiptoken is not valid.");
        let page = attribute(token, "pagenumber")
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?;
        let inner = attribute(token, "pagingcookie").ok_or_else(bad)?;
        let inner = percent_decode_str(inner)
            .decode_utf8()
            .map_err(|_| bad())?
            .into_owned();
        let number = |name: &str| attribute(&inner, name).and_then(|v| v.parse::<u64>().ok());
        let last = match attribute(&inner, "last") {
            Some(text) => Some(
                Guid::parse(text.trim_start_matches('{').trim_end_matches('}')).ok_or_else(bad)?,
            ),
            None => None,
        };
        Ok(Self {
            page,
            last,
            served: number("served").unwrap_or(0) as usize,
            upto: number("upto"),
            after: number("after"),
            deleted_after: number("deletedafter"),
        })
    }
}

/// The value of `name="..."` in a cookie.
fn attribute<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!(" {name}=\"");
    let start = text.find(&pattern)? + pattern.len();
    let end = text[start..].find('"')? + start;
    Some(&text[start..end])
}

/// `<version>!<MM/dd/yyyy HH:mm:ss>` (facts 2.3).
fn delta_token(version: u64, now_ms: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or_default();
    format!("{version}!{}", at.format("%m/%d/%Y %H:%M:%S"))
}

fn parse_delta_token(token: &str) -> Option<(u64, i64)> {
    let (version, at) = token.split_once('!')?;
    let at = NaiveDateTime::parse_from_str(at, "%m/%d/%Y %H:%M:%S").ok()?;
    Some((version.parse().ok()?, at.and_utc().timestamp_millis()))
}

/// The request's query string without `$skiptoken`, as the next link
/// repeats it.
fn query_without_skiptoken(query: &str) -> String {
    query
        .split('&')
        .filter(|part| {
            !part.is_empty()
                && !part.starts_with("$skiptoken=")
                && !part.starts_with("%24skiptoken=")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What one read is: plain, the full set of a tracked read, or a delta.
enum Mode {
    Plain {
        filter: Option<Filter>,
        order: Vec<(usize, bool)>,
        top: Option<usize>,
    },
    Tracked {
        upto: u64,
    },
    Delta {
        since: u64,
        upto: u64,
    },
}

/// `GET /<entityset>`.
pub(crate) fn collection(
    shared: &Shared,
    table: Table,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let options = Options::parse(request)?;
    let prefer = request.prefer();
    let knobs = shared.knobs();
    let alt_key = match table {
        Table::Task => knobs.task_alternate_key.as_deref(),
        _ => None,
    };
    let mut view = View::new(table, options.select.as_deref(), alt_key)?;
    if let Some(value) = &prefer.annotations {
        view.annotations = Annotations::from_prefer(value);
    }
    if let Some(expand) = &options.expand {
        view.expand_members = members_expand(table, expand)?;
    }
    if let Some(filter) = &options.filter {
        shared.log_filter(filter);
    }
    let cookie = match &options.skiptoken {
        Some(_) if knobs.refuse_skiptokens => {
            return Err(ApiError::bad_request("The $skiptoken is not valid."));
        }
        Some(token) => Some(Cookie::decode(token)?),
        None => None,
    };
    let page_size = prefer
        .max_page_size
        .unwrap_or(knobs.max_page_size)
        .clamp(1, knobs.max_page_size.max(1));
    let store = shared.store();
    let now_ms = store.clock.now_ms();
    let tracked = options.deltatoken.is_some()
        || cookie.as_ref().is_some_and(|c| c.upto.is_some())
        || (prefer.track_changes && cookie.is_none());
    if tracked {
        if !knobs.change_tracking.contains(&table) {
            return Err(ApiError::bad_request(format!(
                "Change tracking is not enabled for the entity '{}'.",
                table.logical_name()
            )));
        }
        for (name, given) in [
            ("$filter", options.filter.is_some()),
            ("$orderby", options.orderby.is_some()),
            ("$expand", options.expand.is_some()),
            ("$top", options.top.is_some()),
        ] {
            if given {
                return Err(ApiError::bad_request(format!(
                    "The query parameter {name} is not supported with change tracking"
                )));
            }
        }
    }
    let mode = if let Some(token) = &options.deltatoken {
        let (since, issued_ms) = parse_delta_token(token)
            .ok_or_else(|| ApiError::bad_request("The $deltatoken is not valid."))?;
        let ttl_ms = i64::try_from(knobs.delta_token_ttl.as_millis()).unwrap_or(i64::MAX / 4);
        // A token expires by age on the emulator clock (seconds on the
        // wire), or when a control expired every token handed out so far.
        if since <= store.delta_expired_through || issued_ms.saturating_add(ttl_ms) < now_ms - 999 {
            let status =
                StatusCode::from_u16(knobs.expired_delta_status).unwrap_or(StatusCode::BAD_REQUEST);
            return Err(ApiError::new(
                status,
                &knobs.expired_delta_code,
                "Version stamp associated with the client has expired. Please perform a full sync.",
            ));
        }
        let upto = cookie
            .as_ref()
            .and_then(|c| c.upto)
            .unwrap_or(store.version());
        Mode::Delta { since, upto }
    } else if tracked {
        let upto = cookie
            .as_ref()
            .and_then(|c| c.upto)
            .unwrap_or(store.version());
        Mode::Tracked { upto }
    } else {
        let filter = match &options.filter {
            Some(text) => Some(Filter::parse(text, table, alt_key)?),
            None => None,
        };
        let order = match &options.orderby {
            Some(text) => order_by(table, text, alt_key)?,
            None => Vec::new(),
        };
        // `$top` is ignored when a page size is asked for (facts 2.3).
        let top = options.top.filter(|_| prefer.max_page_size.is_none());
        Mode::Plain { filter, order, top }
    };
    let cookie = cookie.unwrap_or(Cookie {
        page: 1,
        ..Cookie::default()
    });
    let page = cut_page(&store, table, &mode, &cookie, page_size);
    let root = shared.root();
    let set = table.entity_set();
    let mut body = Map::new();
    let delta = matches!(mode, Mode::Delta { .. });
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{root}$metadata#{set}{}{}",
            view.context_columns(options.select.as_deref()),
            if delta { "/$delta" } else { "" }
        )),
    );
    if options.count {
        let total = count(&store, table, &mode);
        body.insert("@odata.count".into(), Value::from(total.min(COUNT_CAP)));
        if total > COUNT_CAP {
            body.insert(
                "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded".into(),
                Value::Bool(true),
            );
        }
    }
    let mut value = String::from("[");
    for key in &page.rows {
        if let Some(row) = store.get(table, key) {
            if value.len() > 1 {
                value.push(',');
            }
            view.write_row(&store, key, row, &mut value);
        }
    }
    for key in &page.deleted {
        if value.len() > 1 {
            value.push(',');
        }
        let entry = serde_json::json!({
            "@odata.context": format!("{root}$metadata#{set}/$deletedEntity"),
            "id": key.to_string(),
            "reason": "deleted",
        });
        value.push_str(&entry.to_string());
    }
    value.push(']');
    match page.next {
        Some(next) => {
            let query = query_without_skiptoken(&request.query);
            let token = utf8_percent_encode(&next.encode(table), NON_ALPHANUMERIC).to_string();
            let separator = if query.is_empty() { "" } else { "&" };
            body.insert(
                "@odata.nextLink".into(),
                Value::String(format!("{root}{set}?{query}{separator}$skiptoken={token}")),
            );
        }
        None if matches!(mode, Mode::Tracked { .. } | Mode::Delta { .. }) => {
            let upto = match mode {
                Mode::Tracked { upto } | Mode::Delta { upto, .. } => upto,
                Mode::Plain { .. } => 0,
            };
            let token =
                utf8_percent_encode(&delta_token(upto, now_ms), NON_ALPHANUMERIC).to_string();
            let select = options
                .select
                .as_deref()
                .map(|s| format!("$select={}&", utf8_percent_encode(s, NON_ALPHANUMERIC)))
                .unwrap_or_default();
            body.insert(
                "@odata.deltaLink".into(),
                Value::String(format!("{root}{set}?{select}$deltatoken={token}")),
            );
        }
        None => {}
    }
    let mut reply = Reply::json(StatusCode::OK, ordered(body, Some(&value)));
    if let Some(asked) = prefer.max_page_size {
        reply = reply.with(
            PREFERENCE_APPLIED,
            format!("odata.maxpagesize={}", asked.min(page_size)),
        );
    }
    if prefer.track_changes && matches!(mode, Mode::Tracked { .. } | Mode::Delta { .. }) {
        reply = reply.with(PREFERENCE_APPLIED, "odata.track-changes");
    }
    if prefer.annotations.is_some() {
        reply = reply.with(
            PREFERENCE_APPLIED,
            format!(
                "odata.include-annotations=\"{}\"",
                prefer.annotations.unwrap_or_default()
            ),
        );
    }
    Ok(reply)
}

/// The body with `@odata.context` first and the links last, as Dataverse
/// writes them (a JSON map would sort `@odata.nextLink` before `value`).
fn ordered(mut body: Map<String, Value>, value: Option<&str>) -> String {
    let mut out = String::from("{");
    let mut first = true;
    let mut put = |out: &mut String, key: &str, value: &Value| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::String(key.to_owned()).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    };
    for key in [
        "@odata.context",
        "@odata.count",
        "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded",
        "value",
    ] {
        if let Some(value) = body.remove(key) {
            put(&mut out, key, &value);
        }
    }
    if let Some(value) = value {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str("\"value\":");
        out.push_str(value);
    }
    for (key, value) in &body {
        put(&mut out, key, value);
    }
    out.push('}');
    out
}

/// The only `$expand` served: team members' ids.
fn members_expand(table: Table, expand: &str) -> Result<bool, ApiError> {
    let compact: String = expand.chars().filter(|c| !c.is_whitespace()).collect();
    let ok = table == Table::Team
        && (compact == "teammembership_association"
            || compact == "teammembership_association($select=systemuserid)");
    if ok {
        Ok(true)
    } else {
        Err(ApiError::bad_request(format!(
            "The $expand '{expand}' is not supported on '{}'.",
            table.entity_set()
        )))
    }
}

fn order_by(
    table: Table,
    text: &str,
    alt_key: Option<&str>,
) -> Result<Vec<(usize, bool)>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|item| {
            let mut words = item.split_whitespace();
            let name = words.next().unwrap_or_default();
            let column = table
                .column(name, alt_key)
                .ok_or_else(|| ApiError::no_property(table.logical_name(), name))?;
            let descending = match words.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "Syntax error in $orderby: unexpected '{other}'"
                    )));
                }
            };
            if words.next().is_some() {
                return Err(ApiError::bad_request("Syntax error in $orderby"));
            }
            Ok((column, descending))
        })
        .collect()
}

/// One page: the keys of its rows, then of its deletions, and the cookie
/// of the next page if there is one.
struct Page {
    rows: Vec<Guid>,
    deleted: Vec<Guid>,
    next: Option<Cookie>,
}

fn cut_page(store: &Store, table: Table, mode: &Mode, cookie: &Cookie, size: usize) -> Page {
    let rows = store.rows(table);
    let next_cookie = |cookie: &Cookie| Cookie {
        page: cookie.page + 1,
        ..cookie.clone()
    };
    match mode {
        Mode::Plain { filter, order, top } => {
            let limit = top.map(|t| t.saturating_sub(cookie.served));
            let take = limit.map_or(size, |l| l.min(size));
            let matches =
                |key: &Guid, row: &Row| filter.as_ref().is_none_or(|f| f.matches(table, key, row));
            let mut keys: Vec<Guid>;
            let more;
            let regarding = filter
                .as_ref()
                .filter(|_| table == Table::Task && order.is_empty())
                .and_then(|f| f.guids_of(super::store::regarding_slot()?));
            if let Some(records) = regarding {
                let candidates = store.tasks_regarding(&records);
                let start = cookie.last.map_or(Bound::Unbounded, Bound::Excluded);
                let mut iter = candidates
                    .range((start, Bound::Unbounded))
                    .filter(|k| rows.by_key.get(*k).is_some_and(|r| matches(k, r)))
                    .copied();
                keys = iter.by_ref().take(take).collect();
                more = iter.next().is_some();
            } else if order.is_empty() {
                let start = cookie.last.map_or(Bound::Unbounded, Bound::Excluded);
                let mut iter = rows
                    .by_key
                    .range((start, Bound::Unbounded))
                    .filter(|(k, r)| matches(k, r))
                    .map(|(k, _)| *k);
                keys = iter.by_ref().take(take).collect();
                more = iter.next().is_some();
            } else {
                // An ordered read sorts the matching keys each page; the
                // cookie says how many were served before.
                let mut all: Vec<(&Guid, &Row)> =
                    rows.by_key.iter().filter(|(k, r)| matches(k, r)).collect();
                all.sort_by(|(ka, ra), (kb, rb)| {
                    for (column, descending) in order {
                        let a = value_of(table, ka, ra, *column);
                        let b = value_of(table, kb, rb, *column);
                        let o = a.compare(&b).unwrap_or(Ordering::Equal);
                        let o = if *descending { o.reverse() } else { o };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    ka.cmp(kb)
                });
                keys = all
                    .iter()
                    .skip(cookie.served)
                    .take(take)
                    .map(|(k, _)| **k)
                    .collect();
                more = all.len() > cookie.served + keys.len();
            }
            let served = cookie.served + keys.len();
            let more = more && limit.is_none_or(|l| l > keys.len());
            let next = more.then(|| Cookie {
                last: keys.last().copied(),
                served,
                ..next_cookie(cookie)
            });
            keys.shrink_to_fit();
            Page {
                rows: keys,
                deleted: Vec::new(),
                next,
            }
        }
        Mode::Tracked { upto } => {
            let start = cookie.last.map_or(Bound::Unbounded, Bound::Excluded);
            let mut iter = rows
                .by_key
                .range((start, Bound::Unbounded))
                .map(|(k, _)| *k);
            let keys: Vec<Guid> = iter.by_ref().take(size).collect();
            let more = iter.next().is_some();
            let next = more.then(|| Cookie {
                last: keys.last().copied(),
                served: cookie.served + keys.len(),
                upto: Some(*upto),
                ..next_cookie(cookie)
            });
            Page {
                rows: keys,
                deleted: Vec::new(),
                next,
            }
        }
        Mode::Delta { since, upto } => {
            let mut keys = Vec::new();
            let mut deleted = Vec::new();
            let mut last_change = cookie.after.unwrap_or(*since);
            if cookie.deleted_after.is_none() {
                let mut changes = rows
                    .by_version
                    .range((Bound::Excluded(last_change), Bound::Included(*upto)));
                for (version, key) in changes.by_ref().take(size) {
                    keys.push(*key);
                    last_change = *version;
                }
                if changes.next().is_some() {
                    let next = Cookie {
                        upto: Some(*upto),
                        after: Some(last_change),
                        served: cookie.served + keys.len(),
                        ..next_cookie(cookie)
                    };
                    return Page {
                        rows: keys,
                        deleted,
                        next: Some(next),
                    };
                }
            }
            // Deletions last (facts 2.3), after the changed rows.
            let from = cookie.deleted_after.unwrap_or(*since);
            let start = rows.deleted.partition_point(|(v, _)| *v <= from);
            let end = rows.deleted.partition_point(|(v, _)| *v <= *upto);
            let room = size - keys.len();
            let slice = &rows.deleted[start..end];
            let mut last_deleted = from;
            for (version, key) in slice.iter().take(room) {
                deleted.push(*key);
                last_deleted = *version;
            }
            let next = (slice.len() > room).then(|| Cookie {
                upto: Some(*upto),
                after: Some(last_change),
                deleted_after: Some(last_deleted),
                served: cookie.served + keys.len() + deleted.len(),
                ..next_cookie(cookie)
            });
            Page {
                rows: keys,
                deleted,
                next,
            }
        }
    }
}

/// `@odata.count`: every row the read would return over all its pages.
fn count(store: &Store, table: Table, mode: &Mode) -> usize {
    let rows = store.rows(table);
    match mode {
        Mode::Plain { filter, top, .. } => {
            let n = rows
                .by_key
                .iter()
                .filter(|(k, r)| filter.as_ref().is_none_or(|f| f.matches(table, k, r)))
                .count();
            top.map_or(n, |t| t.min(n))
        }
        Mode::Tracked { .. } => rows.by_key.len(),
        Mode::Delta { since, upto } => {
            let changed = rows
                .by_version
                .range((Bound::Excluded(*since), Bound::Included(*upto)))
                .count();
            let start = rows.deleted.partition_point(|(v, _)| *v <= *since);
            let end = rows.deleted.partition_point(|(v, _)| *v <= *upto);
            changed + end.saturating_sub(start)
        }
    }
}

/// `GET /<entityset>(<guid>)`.
pub(crate) fn single(shared: &Shared, request: &ApiRequest) -> Result<Reply, ApiError> {
    let (table, key) = keyed_path(&request.path)?;
    let options = Options::parse(request)?;
    let knobs = shared.knobs();
    let alt_key = match table {
        Table::Task => knobs.task_alternate_key.as_deref(),
        _ => None,
    };
    let mut view = View::new(table, options.select.as_deref(), alt_key)?;
    if let Some(value) = &request.prefer().annotations {
        view.annotations = Annotations::from_prefer(value);
    }
    let store = shared.store();
    let row = store
        .get(table, &key)
        .ok_or_else(|| ApiError::missing(table.logical_name(), &key.to_string()))?;
    Ok(Reply::json(
        StatusCode::OK,
        entity_body(
            &shared.root(),
            &store,
            &view,
            options.select.as_deref(),
            &key,
            row,
        ),
    ))
}

/// One row as a single-entity body (with its `@odata.context`).
pub(crate) fn entity_body(
    root: &str,
    store: &Store,
    view: &View,
    select: Option<&str>,
    key: &Guid,
    row: &Row,
) -> String {
    let mut body = view.row(store, key, row);
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{root}$metadata#{}{}/$entity",
            view.table.entity_set(),
            view.context_columns(select)
        )),
    );
    ordered(body, None)
}

/// `tasks(<guid>)` -> the table and key.
pub(crate) fn keyed_path(path: &str) -> Result<(Table, Guid), ApiError> {
    let (table, inside) = split_keyed(path)?;
    let key = Guid::parse(inside).ok_or_else(|| {
        ApiError::bad_request(format!(
            "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{}'. Ensure that the names and number of key properties are correct.",
            table.logical_name()
        ))
    })?;
    Ok((table, key))
}

/// `tasks(...)` -> the table and what is inside the parentheses (decoded).
pub(crate) fn split_keyed(path: &str) -> Result<(Table, &str), ApiError> {
    let not_found = || ApiError::no_resource(path);
    let (set, rest) = path.split_once('(').ok_or_else(not_found)?;
    let inside = rest.strip_suffix(')').ok_or_else(not_found)?;
    let table = Table::by_entity_set(set).ok_or_else(not_found)?;
    Ok((table, inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paging_cookie_survives_its_round_trip() {
        let cookie = Cookie {
            page: 3,
            last: Guid::parse("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
            served: 10,
            upto: Some(1_000_123),
            after: Some(1_000_100),
            deleted_after: None,
        };
        let text = cookie.encode(Table::Opportunity);
        assert!(text.starts_with("<cookie pagenumber=\"3\" pagingcookie=\"%3Ccookie"));
        assert!(text.ends_with("istracking=\"True\" />"));
        assert_eq!(Cookie::decode(&text).unwrap(), cookie);
    }

    #[test]
    fn delta_tokens_carry_a_version_and_a_us_timestamp() {
        let token = delta_token(919_042, 1_503_389_444_000);
        assert_eq!(token, "919042!08/22/2017 08:10:44");
        assert_eq!(
            parse_delta_token(&token),
            Some((919_042, 1_503_389_444_000))
        );
    }
}
