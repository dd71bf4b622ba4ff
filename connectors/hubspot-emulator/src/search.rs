//! `POST /crm/v3/objects/{type}/search` (facts 3.3): filter groups OR'ed,
//! filters within a group AND'ed, the first sort honoured, offset paging
//! up to the result cap.
//!
//! Search reads the index, not the records: a record written within the
//! search lag is found (and shown) as it was before that write, or not at
//! all if it is new (fact 6.14).
//!
//! A query's matches are filtered and sorted once, then kept (keyed by the
//! query, the table's write generation and the index's) so that paging
//! through them costs one page's work per page; any write to the table, or
//! any write reaching the index, starts afresh. Record ids
//! (`hs_object_id`) compare as text, as HubSpot's do.

use super::clock;
use super::config::{Knobs, TieOrder};
use super::object::{ObjectType, PropId, PropKind, Schema, Source};
use super::reply::ApiError;
use super::router::{Shared, json_body, object_type};
use super::store::{Lagging, Record, Selection, Store};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

/// A search request as received, for tests that check what a client asked.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedSearch {
    pub object: ObjectType,
    pub body: Value,
}

const LOG_CAPACITY: usize = 10_000;
const CACHE_CAPACITY: usize = 8;

/// Recently computed match lists.
#[derive(Debug, Default)]
pub(crate) struct SearchCache {
    entries: VecDeque<(String, Generation, Arc<Vec<u64>>)>,
}

/// The table's write generation and its index's.
type Generation = (u64, u64);

impl SearchCache {
    fn get(&mut self, key: &str, generation: Generation) -> Option<Arc<Vec<u64>>> {
        self.entries
            .iter()
            .find(|(k, g, _)| k == key && *g == generation)
            .map(|(_, _, ids)| ids.clone())
    }

    fn put(&mut self, key: String, generation: Generation, ids: Arc<Vec<u64>>) {
        self.entries.retain(|(k, _, _)| *k != key);
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back((key, generation, ids));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "EQ" => Self::Eq,
            "NEQ" => Self::Neq,
            "LT" => Self::Lt,
            "LTE" => Self::Lte,
            "GT" => Self::Gt,
            "GTE" => Self::Gte,
            "BETWEEN" => Self::Between,
            "IN" => Self::In,
            "NOT_IN" => Self::NotIn,
            "HAS_PROPERTY" => Self::HasProperty,
            "NOT_HAS_PROPERTY" => Self::NotHasProperty,
            "CONTAINS_TOKEN" => Self::ContainsToken,
            "NOT_CONTAINS_TOKEN" => Self::NotContainsToken,
            _ => return None,
        })
    }

    /// Whether a record without the property matches.
    fn matches_missing(self) -> bool {
        matches!(
            self,
            Self::Neq | Self::NotIn | Self::NotHasProperty | Self::NotContainsToken
        )
    }
}

/// A value reduced to how it compares.
#[derive(Debug, Clone)]
enum Typed<'a> {
    Millis(i64),
    Number(f64),
    Text(Cow<'a, str>),
}

fn compare(a: &Typed<'_>, b: &Typed<'_>) -> Option<Ordering> {
    match (a, b) {
        (Typed::Millis(a), Typed::Millis(b)) => Some(a.cmp(b)),
        (Typed::Number(a), Typed::Number(b)) => a.partial_cmp(b),
        (Typed::Text(a), Typed::Text(b)) => Some(
            a.chars()
                .flat_map(char::to_lowercase)
                .cmp(b.chars().flat_map(char::to_lowercase)),
        ),
        _ => None,
    }
}

/// How a property's values compare: ids as text, dates in ms, numbers as
/// numbers, everything else as case-insensitive text.
fn typed_value<'a>(schema: &Schema, record: &'a Record, prop: PropId) -> Option<Typed<'a>> {
    let def = schema.def(prop);
    match (def.source, def.kind) {
        (Source::Id, _) => Some(Typed::Text(Cow::Owned(record.id.to_string()))),
        (_, PropKind::DateTime | PropKind::Date) => record.millis(schema, prop).map(Typed::Millis),
        (_, PropKind::Number) => record
            .props
            .get(prop)
            .and_then(|v| v.trim().parse().ok())
            .map(Typed::Number),
        _ => record.value(schema, prop).map(Typed::Text),
    }
}

fn typed_input(schema: &Schema, prop: PropId, text: &str) -> Result<Typed<'static>, ApiError> {
    let def = schema.def(prop);
    let bad = || {
        ApiError::validation(format!(
            "{text} is not a valid {} value for {}",
            def.kind.type_name(),
            def.name
        ))
    };
    match (def.source, def.kind) {
        (Source::Id, _) => Ok(Typed::Text(Cow::Owned(text.to_owned()))),
        (_, PropKind::DateTime | PropKind::Date) => {
            clock::parse_ms(text).map(Typed::Millis).ok_or_else(bad)
        }
        (_, PropKind::Number) => text.trim().parse().map(Typed::Number).map_err(|_| bad()),
        _ => Ok(Typed::Text(Cow::Owned(text.to_owned()))),
    }
}

struct Filter {
    prop: PropId,
    op: Op,
    value: Option<Typed<'static>>,
    high: Option<Typed<'static>>,
    values: Vec<Typed<'static>>,
    token: String,
}

struct Sort {
    prop: PropId,
    descending: bool,
}

struct Query {
    groups: Vec<Vec<Filter>>,
    sorts: Vec<Sort>,
    text: Option<String>,
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compile(schema: &Schema, body: &Value, knobs: &Knobs) -> Result<Query, ApiError> {
    let empty = Vec::new();
    let groups = body
        .get("filterGroups")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let caps = &knobs.search;
    if groups.len() > caps.max_groups {
        return Err(ApiError::validation(format!(
            "Too many filter groups: {} (the maximum is {})",
            groups.len(),
            caps.max_groups
        )));
    }
    let mut total = 0;
    let mut compiled = Vec::with_capacity(groups.len());
    for group in groups {
        let filters = group
            .get("filters")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        if filters.len() > caps.max_filters_per_group {
            return Err(ApiError::validation(format!(
                "Too many filters in a group: {} (the maximum is {})",
                filters.len(),
                caps.max_filters_per_group
            )));
        }
        total += filters.len();
        let mut out = Vec::with_capacity(filters.len());
        for filter in filters {
            out.push(compile_filter(schema, filter)?);
        }
        compiled.push(out);
    }
    if total > caps.max_filters_total {
        return Err(ApiError::validation(format!(
            "Too many filters: {total} (the maximum is {})",
            caps.max_filters_total
        )));
    }
    let mut sorts = Vec::new();
    if let Some(list) = body.get("sorts").and_then(Value::as_array) {
        for sort in list {
            let (name, direction) = match sort {
                Value::String(name) => (name.as_str(), "ASCENDING"),
                other => (
                    other
                        .get("propertyName")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    other
                        .get("direction")
                        .and_then(Value::as_str)
                        .unwrap_or("ASCENDING"),
                ),
            };
            let prop = schema
                .id(name)
                .ok_or_else(|| ApiError::validation(format!("Unknown sort property: {name}")))?;
            let descending = match direction {
                "ASCENDING" => false,
                "DESCENDING" => true,
                other => {
                    return Err(ApiError::validation(format!(
                        "Invalid sort direction: {other}"
                    )));
                }
            };
            sorts.push(Sort { prop, descending });
        }
    }
    if !caps.honour_all_sorts {
        sorts.truncate(1);
    }
    let text = body
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());
    Ok(Query {
        groups: compiled,
        sorts,
        text,
    })
}

fn compile_filter(schema: &Schema, filter: &Value) -> Result<Filter, ApiError> {
    let name = filter
        .get("propertyName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let prop = schema
        .id(name)
        .ok_or_else(|| ApiError::validation(format!("Unknown filter property: {name}")))?;
    let op_text = filter.get("operator").and_then(Value::as_str).unwrap_or("");
    let op = Op::parse(op_text)
        .ok_or_else(|| ApiError::validation(format!("Unknown filter operator: {op_text}")))?;
    let raw_value = filter.get("value").and_then(text_of);
    let needs = |what: &str| ApiError::validation(format!("{op_text} on {name} needs {what}"));
    let mut compiled = Filter {
        prop,
        op,
        value: None,
        high: None,
        values: Vec::new(),
        token: String::new(),
    };
    match op {
        Op::HasProperty | Op::NotHasProperty => {}
        Op::In | Op::NotIn => {
            let values = filter
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| needs("values"))?;
            compiled.values = values
                .iter()
                .filter_map(text_of)
                .map(|v| typed_input(schema, prop, &v))
                .collect::<Result<_, _>>()?;
        }
        Op::ContainsToken | Op::NotContainsToken => {
            compiled.token = raw_value.ok_or_else(|| needs("a value"))?.to_lowercase();
        }
        Op::Between => {
            let low = raw_value.ok_or_else(|| needs("a value"))?;
            let high = filter
                .get("highValue")
                .and_then(text_of)
                .ok_or_else(|| needs("a highValue"))?;
            compiled.value = Some(typed_input(schema, prop, &low)?);
            compiled.high = Some(typed_input(schema, prop, &high)?);
        }
        _ => {
            let value = raw_value.ok_or_else(|| needs("a value"))?;
            compiled.value = Some(typed_input(schema, prop, &value)?);
        }
    }
    Ok(compiled)
}

/// Whether `token` (lowercase, `*` a wildcard) is one of the words of
/// `text`, or with wildcards matches it whole.
fn contains_token(text: &str, token: &str) -> bool {
    let text = text.to_lowercase();
    if token.contains('*') {
        return glob(&text, token);
    }
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word == token)
        || text == token
}

fn glob(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn matches(schema: &Schema, record: &Record, filter: &Filter) -> bool {
    let present = record.value(schema, filter.prop).filter(|v| !v.is_empty());
    let Some(text) = present else {
        return filter.op.matches_missing();
    };
    let equal = |other: &Typed<'_>| {
        typed_value(schema, record, filter.prop)
            .is_some_and(|value| compare(&value, other) == Some(Ordering::Equal))
    };
    let ordered = |wanted: fn(Ordering) -> bool| {
        let value = typed_value(schema, record, filter.prop);
        match (value, &filter.value) {
            (Some(value), Some(bound)) => compare(&value, bound).is_some_and(wanted),
            _ => false,
        }
    };
    match filter.op {
        Op::HasProperty => true,
        Op::NotHasProperty => false,
        Op::Eq => filter.value.as_ref().is_some_and(equal),
        Op::Neq => !filter.value.as_ref().is_some_and(equal),
        Op::Lt => ordered(Ordering::is_lt),
        Op::Lte => ordered(Ordering::is_le),
        Op::Gt => ordered(Ordering::is_gt),
        Op::Gte => ordered(Ordering::is_ge),
        Op::Between => {
            let value = typed_value(schema, record, filter.prop);
            match (value, &filter.value, &filter.high) {
                (Some(value), Some(low), Some(high)) => {
                    compare(&value, low).is_some_and(Ordering::is_ge)
                        && compare(&value, high).is_some_and(Ordering::is_le)
                }
                _ => false,
            }
        }
        Op::In => filter.values.iter().any(equal),
        Op::NotIn => !filter.values.iter().any(equal),
        Op::ContainsToken => contains_token(&text, &filter.token),
        Op::NotContainsToken => !contains_token(&text, &filter.token),
    }
}

fn matches_text(schema: &Schema, record: &Record, text: &str) -> bool {
    schema.defaults.iter().any(|&prop| {
        schema.def(prop).kind == PropKind::String
            && record
                .value(schema, prop)
                .is_some_and(|v| v.to_lowercase().contains(text))
    })
}

/// Every matching id the index holds, in result order.
fn run(
    store: &Store,
    index: &Lagging,
    object: ObjectType,
    query: &Query,
    ties: TieOrder,
) -> Vec<u64> {
    let schema = store.schema(object);
    let indexed = store
        .table(object)
        .live
        .values()
        .filter(|record| index.shown(record.id).is_none())
        .chain(index.stale());
    let matching = indexed.filter(|record| {
        (query.groups.is_empty()
            || query
                .groups
                .iter()
                .any(|group| group.iter().all(|f| matches(schema, record, f))))
            && query
                .text
                .as_deref()
                .is_none_or(|t| matches_text(schema, record, t))
    });
    let tie = |a: u64, b: u64| match ties {
        TieOrder::IdAscending => a.cmp(&b),
        TieOrder::IdDescending => b.cmp(&a),
    };
    if query.sorts.is_empty() {
        let mut ids: Vec<u64> = matching.map(|r| r.id).collect();
        ids.sort_unstable_by(|a, b| tie(*a, *b));
        return ids;
    }
    let mut keyed: Vec<(Vec<Option<Typed<'_>>>, u64)> = matching
        .map(|record| {
            let keys = query
                .sorts
                .iter()
                .map(|sort| typed_value(schema, record, sort.prop))
                .collect();
            (keys, record.id)
        })
        .collect();
    keyed.sort_unstable_by(|(a, a_id), (b, b_id)| {
        for (k, sort) in query.sorts.iter().enumerate() {
            // Records without the value come last either way.
            let order = match (&a[k], &b[k]) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => {
                    let order = compare(x, y).unwrap_or(Ordering::Equal);
                    if sort.descending {
                        order.reverse()
                    } else {
                        order
                    }
                }
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        tie(*a_id, *b_id)
    });
    keyed.into_iter().map(|(_, id)| id).collect()
}

pub(crate) async fn search(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = object_type(&segment)?;
    let body = json_body(&body)?;
    {
        let mut log = shared.search_log();
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(LoggedSearch {
            object,
            body: body.clone(),
        });
    }
    let knobs = shared.knobs();
    let caps = &knobs.search;
    let limit = match body.get("limit") {
        None | Some(Value::Null) => 10,
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ApiError::validation(format!("Invalid limit: {value}")))?,
    };
    if limit == 0 || limit > caps.max_limit {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {}, got {limit}",
            caps.max_limit
        )));
    }
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(value) => text_of(value)
            .and_then(|t| t.parse::<usize>().ok())
            .ok_or_else(|| ApiError::validation(format!("Invalid after: {value}")))?,
    };
    if after >= caps.cap {
        return Err(ApiError::validation(format!(
            "Paging is limited to the first {} results of a search; after was {after}",
            caps.cap
        ))
        .with_context(json!({"after": [after.to_string()]})));
    }
    let store = shared.store();
    let schema = store.schema(object);
    let query = compile(schema, &body, &knobs)?;
    let key = format!(
        "{object}|{}|{}|{}|{:?}|{}",
        body.get("filterGroups").unwrap_or(&Value::Null),
        body.get("sorts").unwrap_or(&Value::Null),
        body.get("query").unwrap_or(&Value::Null),
        caps.ties,
        caps.honour_all_sorts
    );
    let mut index = store.table(object).index();
    index.catch_up(std::time::Instant::now());
    let generation = (store.table(object).generation, index.generation);
    let cached = shared.search_cache().get(&key, generation);
    let ids = match cached {
        Some(ids) => ids,
        None => {
            let ids = Arc::new(run(&store, &index, object, &query, caps.ties));
            shared.search_cache().put(key, generation, ids.clone());
            ids
        }
    };
    let total = ids.len();
    let mut page_len = limit;
    if caps.ragged_pages && (after / limit) % 2 == 1 {
        page_len = limit.div_ceil(2);
    }
    let start = after.min(total);
    let end = (after + page_len).min(total).min(caps.cap);
    let names: Option<Vec<String>> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
    let selection = Selection {
        props: store.select(object, names.as_deref()),
        history: Vec::new(),
        assoc: Vec::new(),
        null_for_unset: knobs.null_for_unset,
    };
    let live = &store.table(object).live;
    let results: Vec<Value> = ids[start..end]
        .iter()
        .filter_map(|id| match index.shown(*id) {
            Some(shown) => shown,
            None => live.get(id),
        })
        .map(|record| store.render(object, record, &selection))
        .collect();
    let mut reply = json!({"total": total, "results": results});
    let trailing_empty_page = caps.ragged_pages && end == total && start < total;
    if end < total || trailing_empty_page {
        reply["paging"] = json!({"next": {"after": end.to_string()}});
    }
    Ok(Json(reply).into_response())
}
