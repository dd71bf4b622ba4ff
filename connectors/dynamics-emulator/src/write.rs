//! Writing (brief, facts 2.4): `POST /<set>` creates (204 +
//! `OData-EntityId`, or 201 with the row under `Prefer:
//! return=representation`); `PATCH /<set>(<guid>)` and, when the org has the
//! task alternate key, `PATCH /tasks(<key>='<value>')` upsert, with
//! `If-Match` and `If-None-Match` as conditions; lookups are bound through
//! `<navigation>@odata.bind`. Every write records how to undo it, so a
//! change set can be rolled back.

use super::cell::{Cell, Guid};
use super::query::{entity_body, keyed_path, split_keyed};
use super::render::{View, choice_options};
use super::reply::{ApiError, Reply};
use super::router::{ApiRequest, Shared};
use super::store::{Row, Store};
use super::table::{Kind, Table};
use axum::http::{HeaderName, StatusCode, header};
use serde_json::{Map, Value};

/// How to put a row back as it was before a write.
pub(crate) type Undo = (Table, Guid, Option<Row>);

const ENTITY_ID: HeaderName = HeaderName::from_static("odata-entityid");

fn invalid_property(table: Table, name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid property '{name}' was found in entity 'Microsoft.Dynamics.CRM.{}'.",
        table.logical_name()
    ))
}

fn undeclared(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "An undeclared property '{name}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values."
    ))
}

fn alt_key_name(shared: &Shared, table: Table) -> Option<String> {
    match table {
        Table::Task => shared.knobs().task_alternate_key,
        _ => None,
    }
}

/// Reads a create or update body into cell changes, checking every column,
/// type, length, choice value and bound record.
fn changes(
    store: &Store,
    table: Table,
    body: &[u8],
    alt_key: Option<&str>,
) -> Result<Vec<(usize, Cell)>, ApiError> {
    let json: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiError::bad_request(format!("The request body is not valid JSON: {err}"))
        })?
    };
    let Value::Object(fields) = json else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let mut out = Vec::new();
    for (name, value) in &fields {
        if let Some(nav) = name.strip_suffix("@odata.bind") {
            let (column, targets) = table.navigation(nav).ok_or_else(|| undeclared(nav))?;
            out.push((column, bind(store, nav, targets, value)?));
            continue;
        }
        if name.starts_with('@') || name.contains('@') {
            // Instance annotations (`@odata.type`, ...) carry no value.
            continue;
        }
        let column = table
            .column(name, alt_key)
            .ok_or_else(|| invalid_property(table, name))?;
        let spec = table.columns()[column];
        if !spec.writable() {
            return Err(invalid_property(table, name));
        }
        let cell = Cell::from_json(spec.kind, value).map_err(|expected| {
            ApiError::bad_request(format!(
                "Cannot convert the literal '{value}' to the expected type '{expected}'."
            ))
        })?;
        check(store, table, column, &cell)?;
        out.push((column, cell));
    }
    Ok(out)
}

/// Lengths and choice values (codes and wording (?)).
fn check(store: &Store, table: Table, column: usize, cell: &Cell) -> Result<(), ApiError> {
    let spec = table.columns()[column];
    match (spec.kind, cell) {
        (Kind::Text { max }, Cell::Text(s)) if s.chars().count() > max => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80044331",
            format!(
                "A validation error occurred. The length of the '{}' attribute of the '{}' entity exceeded the maximum allowed length of '{max}'.",
                spec.name,
                table.logical_name()
            ),
        )),
        (Kind::Choice(_) | Kind::State(_) | Kind::Status(_), Cell::Int(v)) => {
            let options = choice_options(store, table, column).unwrap_or_default();
            if options.iter().any(|(o, _)| o == v) {
                Ok(())
            } else {
                let accepted: Vec<String> = options.iter().map(|(o, _)| o.to_string()).collect();
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "0x8004431a",
                    format!(
                        "A validation error occurred. The value {v} of '{}' on record of type '{}' is outside the valid range. Accepted Values: {}",
                        spec.name,
                        table.logical_name(),
                        accepted.join(",")
                    ),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// `"/opportunities(<guid>)"` (or the same without the slash, or as a full
/// URL) bound through `nav`: the target table must be one `nav` allows
/// (else 400) and the row must exist (else 404 (?)).
fn bind(store: &Store, nav: &str, targets: &[Table], value: &Value) -> Result<Cell, ApiError> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    let text = value.as_str().ok_or_else(|| {
        ApiError::bad_request(format!("The value of '{nav}@odata.bind' must be a URL."))
    })?;
    let path = text
        .rsplit_once("/api/data/v9.2/")
        .map_or(text, |(_, p)| p)
        .trim_start_matches('/');
    let bad_target = || {
        ApiError::bad_request(format!(
            "The reference '{text}' in '{nav}@odata.bind' does not name an entity the navigation property '{nav}' can refer to."
        ))
    };
    let (table, key) = keyed_path(path).map_err(|_| bad_target())?;
    if !targets.contains(&table) {
        return Err(bad_target());
    }
    if store.get(table, &key).is_none() {
        return Err(ApiError::missing(table.logical_name(), &key.to_string()));
    }
    Ok(Cell::Ref(table, key))
}

/// Keeps `statecode` and `statuscode` consistent: a state alone takes its
/// first status reason; a status reason of another state is a 400 (?).
fn settle_status(
    table: Table,
    before: Option<&Row>,
    changes: &mut Vec<(usize, Cell)>,
) -> Result<(), ApiError> {
    let (Some(state_at), Some(status_at)) = (
        table.column("statecode", None),
        table.column("statuscode", None),
    ) else {
        return Ok(());
    };
    let Kind::Status(statuses) = table.columns()[status_at].kind else {
        return Ok(());
    };
    let given = |at: usize| {
        changes
            .iter()
            .rev()
            .find(|(c, _)| *c == at)
            .map(|(_, v)| v.as_int())
    };
    let old = |at: usize| before.and_then(|r| r.cells.get(at)).and_then(Cell::as_int);
    let state = given(state_at)
        .unwrap_or_else(|| old(state_at))
        .unwrap_or(0);
    match given(status_at).flatten() {
        Some(status) => {
            let fits = statuses
                .iter()
                .any(|(s, _, st)| *s == status && *st == state);
            if !fits {
                return Err(ApiError::bad_request(format!(
                    "{status} is not a valid status code for state code {}State.{state} on {}.",
                    table.logical_name(),
                    table.logical_name()
                )));
            }
        }
        None if given(state_at).is_some() || before.is_none() => {
            if let Some((status, _, _)) = statuses.iter().find(|(_, _, st)| *st == state) {
                changes.push((state_at, Cell::Int(state)));
                changes.push((status_at, Cell::Int(*status)));
            }
        }
        None => {}
    }
    Ok(())
}

/// Defaults of a new row: owned by the application user; tasks open,
/// not started, normal priority (?).
fn defaults(shared: &Shared, table: Table, changes: &mut Vec<(usize, Cell)>) {
    let set = |changes: &mut Vec<(usize, Cell)>, name: &str, cell: Cell| {
        if let Some(at) = table.column(name, None)
            && !changes.iter().any(|(c, _)| *c == at)
        {
            changes.insert(0, (at, cell));
        }
    };
    if let Some(user) = Guid::parse(&shared.application_user) {
        set(
            changes,
            "_ownerid_value",
            Cell::Ref(Table::SystemUser, user),
        );
    }
    if table == Table::Task {
        set(changes, "prioritycode", Cell::Int(1));
    }
}

fn entity_id(shared: &Shared, table: Table, key: &Guid) -> String {
    format!("{}{}({key})", shared.root(), table.entity_set())
}

/// The reply to a successful write: 204 + `OData-EntityId`, or the row
/// (201 for a create, 200 for an update) under `return=representation`.
fn written(
    shared: &Shared,
    store: &Store,
    request: &ApiRequest,
    table: Table,
    key: &Guid,
    created: bool,
) -> Result<Reply, ApiError> {
    if request.prefer().return_representation {
        let select = request
            .options()
            .into_iter()
            .find(|(k, _)| k == "$select")
            .map(|(_, v)| v);
        let alt = alt_key_name(shared, table);
        let view = View::new(table, select.as_deref(), alt.as_deref())?;
        let row = store
            .get(table, key)
            .ok_or_else(|| ApiError::missing(table.logical_name(), &key.to_string()))?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok(Reply::json(
            status,
            entity_body(&shared.root(), store, &view, select.as_deref(), key, row),
        )
        .with(
            HeaderName::from_static("preference-applied"),
            "return=representation",
        ));
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT).with(ENTITY_ID, entity_id(shared, table, key)))
}

/// `If-None-Match: *` on a row that exists: the conditional operations
/// doc's answer, its code empty as there.
fn already_exists() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "",
        "A record with matching key values already exists.",
    )
}

/// A `POST` naming a primary key a row already has: `DuplicateRecord`
/// (troubleshooting doc: "Cannot insert duplicate key", -2147220937); the
/// status is (?), 412 as facts 2.2 list for duplicates.
fn duplicate_key() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "0x80040237",
        "Cannot insert duplicate key.",
    )
}

/// A write that would give a second task the alternate key value `value`:
/// `DuplicateRecordEntityKey` (code and wording from third-party reports
/// (?); the status is the knob `alt_key_duplicate_status`, 412 there).
fn alt_key_taken(shared: &Shared, column: &str, value: &str) -> ApiError {
    let status = StatusCode::from_u16(shared.knobs().alt_key_duplicate_status)
        .unwrap_or(StatusCode::PRECONDITION_FAILED);
    ApiError::new(
        status,
        "0x80060892",
        format!(
            "A record that has the attribute values {value} already exists. The entity key {column}_key requires that this set of attributes contains unique values. Select unique values and try again."
        ),
    )
}

/// `POST /<set>`.
pub(crate) fn create(
    shared: &Shared,
    store: &mut Store,
    table: Table,
    request: &ApiRequest,
    undo: &mut Vec<Undo>,
) -> Result<Reply, ApiError> {
    let alt = alt_key_name(shared, table);
    let mut changes = parse_with_key(store, table, &request.body, alt.as_deref())?;
    let key = match changes.iter().position(|(c, _)| *c == 0) {
        Some(i) => match changes.remove(i).1 {
            Cell::Guid(g) => g,
            _ => return Err(invalid_property(table, table.key())),
        },
        None => store.new_key(table),
    };
    if store.get(table, &key).is_some() {
        return Err(duplicate_key());
    }
    insert(shared, store, table, key, changes, undo)?;
    written(shared, store, request, table, &key, true)
}

/// Like [`changes`], but the primary key may be given on a create.
fn parse_with_key(
    store: &Store,
    table: Table,
    body: &[u8],
    alt: Option<&str>,
) -> Result<Vec<(usize, Cell)>, ApiError> {
    let mut key = None;
    let mut body_value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiError::bad_request(format!("The request body is not valid JSON: {err}"))
        })?
    };
    if let Some(fields) = body_value.as_object_mut()
        && let Some(value) = fields.remove(table.key())
    {
        let guid = value.as_str().and_then(Guid::parse).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Cannot convert the literal '{value}' to the expected type 'Edm.Guid'."
            ))
        })?;
        key = Some(guid);
    }
    let mut out = changes(store, table, body_value.to_string().as_bytes(), alt)?;
    if let Some(key) = key {
        out.push((0, Cell::Guid(key)));
    }
    Ok(out)
}

fn insert(
    shared: &Shared,
    store: &mut Store,
    table: Table,
    key: Guid,
    mut changes: Vec<(usize, Cell)>,
    undo: &mut Vec<Undo>,
) -> Result<(), ApiError> {
    defaults(shared, table, &mut changes);
    settle_status(table, None, &mut changes)?;
    check_alt_unique(shared, store, table, &key, &changes)?;
    let mut cells = vec![Cell::Null; table.columns().len()];
    for (column, cell) in changes {
        cells[column] = cell;
    }
    store.insert(table, key, cells);
    undo.push((table, key, None));
    Ok(())
}

/// An alternate key value may belong to one task only.
fn check_alt_unique(
    shared: &Shared,
    store: &Store,
    table: Table,
    key: &Guid,
    changes: &[(usize, Cell)],
) -> Result<(), ApiError> {
    for (column, cell) in changes {
        if table.columns()[*column].kind.is_alt_key()
            && let Cell::Text(value) = cell
            && store
                .task_by_alt_key(value)
                .is_some_and(|owner| owner != *key)
        {
            let name = alt_key_name(shared, table).unwrap_or_default();
            return Err(alt_key_taken(shared, &name, value));
        }
    }
    Ok(())
}

/// `PATCH /<set>(<guid>)` or `PATCH /tasks(<altkey>='<value>')`.
pub(crate) fn upsert(
    shared: &Shared,
    store: &mut Store,
    request: &ApiRequest,
    undo: &mut Vec<Undo>,
) -> Result<Reply, ApiError> {
    let decoded = percent_encoding::percent_decode_str(&request.path)
        .decode_utf8_lossy()
        .into_owned();
    let (table, inside) = split_keyed(&decoded)?;
    let alt = alt_key_name(shared, table);
    let bad_key = || {
        ApiError::bad_request(format!(
            "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{}'. Ensure that the names and number of key properties are correct.",
            table.logical_name()
        ))
    };
    // The row the URL names: by primary key, or by the alternate key.
    let (key, alt_value) = match Guid::parse(inside) {
        Some(key) => (Some(key), None),
        None => {
            let (name, quoted) = inside.split_once('=').ok_or_else(bad_key)?;
            let value = quoted
                .trim()
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .ok_or_else(bad_key)?
                .replace("''", "'");
            if alt.as_deref() != Some(name.trim()) {
                return Err(bad_key());
            }
            (store.task_by_alt_key(&value), Some(value))
        }
    };
    let exists = key.is_some_and(|k| store.get(table, &k).is_some());
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let shown = key.map_or_else(|| inside.to_owned(), |k| k.to_string());
    match header("if-match") {
        Some("*") if !exists => return Err(ApiError::missing(table.logical_name(), &shown)),
        Some(tag) if tag != "*" => {
            let Some(row) = key.and_then(|k| store.get(table, &k)) else {
                return Err(ApiError::missing(table.logical_name(), &shown));
            };
            let version = tag.trim_start_matches("W/").trim_matches('"');
            if version != row.version.to_string() {
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80060882",
                    "The version of the existing record doesn't match the RowVersion property provided.",
                ));
            }
        }
        _ => {}
    }
    // `If-None-Match: null` is what clients send to defeat caching (facts
    // 2.1); only `*` is a condition.
    if header("if-none-match") == Some("*") && exists {
        return Err(already_exists());
    }
    let mut changes = changes(store, table, &request.body, alt.as_deref())?;
    if let Some(value) = &alt_value {
        let at = table
            .column(alt.as_deref().unwrap_or_default(), alt.as_deref())
            .ok_or_else(bad_key)?;
        changes.retain(|(c, _)| *c != at);
        changes.push((at, Cell::Text(value.as_str().into())));
    }
    match key.filter(|_| exists) {
        Some(key) => {
            let before = store.get(table, &key).cloned();
            settle_status(table, before.as_ref(), &mut changes)?;
            check_alt_unique(shared, store, table, &key, &changes)?;
            let old = store.update(table, &key, changes);
            undo.push((table, key, old));
            written(shared, store, request, table, &key, false)
        }
        None => {
            let key = match key {
                Some(k) => k,
                None => store.new_key(table),
            };
            insert(shared, store, table, key, changes, undo)?;
            let mut reply = written(shared, store, request, table, &key, true)?;
            if reply.status == StatusCode::NO_CONTENT {
                reply = reply.with(header::LOCATION, entity_id(shared, table, &key));
            }
            Ok(reply)
        }
    }
}

/// `DELETE /<set>(<guid>)`: 204, or 404 when there is no such row.
pub(crate) fn delete(
    _shared: &Shared,
    store: &mut Store,
    request: &ApiRequest,
    undo: &mut Vec<Undo>,
) -> Result<Reply, ApiError> {
    let (table, key) = keyed_path(&request.path)?;
    let old = store
        .delete(table, &key)
        .ok_or_else(|| ApiError::missing(table.logical_name(), &key.to_string()))?;
    undo.push((table, key, Some(old)));
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

impl Kind {
    pub(crate) fn is_alt_key(&self) -> bool {
        matches!(self, Kind::AltKey)
    }
}
