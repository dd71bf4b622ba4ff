//! A row as it goes on the wire (brief, facts 2.3): `@odata.etag`, the
//! selected columns (the key always), lookups as `_x_value`, and, only when
//! `Prefer: odata.include-annotations` asks for them, formatted values and
//! lookup metadata. A corrupted row keeps its shape but carries values no
//! client can read.

use super::cell::{Cell, Guid};
use super::filter::value_of;
use super::reply::ApiError;
use super::store::{Row, Store};
use super::table::{Kind, ODD_STAGE_VALUE, Table};
use serde_json::{Map, Value};

const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";
const LOOKUP_NAME: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";
const NAVIGATION: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";

/// Which annotations a request asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Annotations {
    pub formatted: bool,
    pub lookup_name: bool,
    pub navigation: bool,
}

impl Annotations {
    /// From the value of `odata.include-annotations` (`"*"`, or a
    /// comma-separated list of names, each maybe ending in `.*`).
    pub(crate) fn from_prefer(value: &str) -> Self {
        let patterns: Vec<&str> = value.trim_matches('"').split(',').map(str::trim).collect();
        let wants = |name: &str| {
            patterns.iter().any(|p| {
                *p == "*"
                    || *p == name
                    || p.strip_suffix('*')
                        .is_some_and(|prefix| prefix.ends_with('.') && name.starts_with(prefix))
            })
        };
        Self {
            formatted: wants(FORMATTED),
            lookup_name: wants(LOOKUP_NAME),
            navigation: wants(NAVIGATION),
        }
    }

    fn any(&self) -> bool {
        self.formatted || self.lookup_name || self.navigation
    }
}

/// How rows of one read are written: the columns, the annotations, and
/// the team members expansion.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub table: Table,
    /// Column positions to write, the key first.
    pub columns: Vec<usize>,
    pub annotations: Annotations,
    /// `teams?$expand=teammembership_association($select=systemuserid)`.
    pub expand_members: bool,
    /// The name of the task alternate key column, when the org has one.
    pub alt_key: Option<String>,
}

impl View {
    /// The columns `$select` names (`None`: every column), checked
    /// against the table.
    pub(crate) fn new(
        table: Table,
        select: Option<&str>,
        alt_key: Option<&str>,
    ) -> Result<Self, ApiError> {
        let mut columns = vec![0];
        match select {
            Some(list) => {
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let at = table
                        .column(name, alt_key)
                        .ok_or_else(|| ApiError::no_property(table.logical_name(), name))?;
                    if !columns.contains(&at) {
                        columns.push(at);
                    }
                }
            }
            None => {
                columns = table
                    .columns()
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !matches!(c.kind, Kind::AltKey) || alt_key.is_some())
                    .map(|(i, _)| i)
                    .collect();
            }
        }
        Ok(Self {
            table,
            columns,
            annotations: Annotations::default(),
            expand_members: false,
            alt_key: alt_key.map(str::to_owned),
        })
    }

    /// The names after the entity set in `@odata.context`
    /// (`opportunities(name,salesstage)`).
    pub(crate) fn context_columns(&self, select: Option<&str>) -> String {
        match select {
            Some(list) => format!("({list})"),
            None => String::new(),
        }
    }

    fn name(&self, column: usize) -> &str {
        let c = &self.table.columns()[column];
        match c.kind {
            Kind::AltKey => self.alt_key.as_deref().unwrap_or(c.name),
            _ => c.name,
        }
    }

    /// One row as a JSON object.
    pub(crate) fn row(&self, store: &Store, key: &Guid, row: &Row) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert(
            "@odata.etag".into(),
            Value::String(format!("W/\"{}\"", row.version)),
        );
        for &column in &self.columns {
            let name = self.name(column).to_owned();
            let kind = self.table.columns()[column].kind;
            let cell = value_of(self.table, key, row, column);
            let mut value = match kind {
                Kind::Version => Value::String(row.version.to_string()),
                _ => cell.to_json(),
            };
            if row.corrupt && matches!(name.as_str(), "modifiedon" | "createdon") {
                value = Value::from("not a date");
            }
            if self.annotations.any() && !cell.is_null() {
                self.annotate(store, kind, &name, &cell, &mut |suffix, text| {
                    out.insert(format!("{name}@{suffix}"), Value::String(text));
                });
            }
            out.insert(name, value);
        }
        if self.expand_members {
            let members: Vec<Value> = store
                .team_members
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|user| {
                    let version = store.get(Table::SystemUser, user)?.version;
                    let mut m = Map::new();
                    m.insert(
                        "@odata.etag".into(),
                        Value::String(format!("W/\"{version}\"")),
                    );
                    m.insert("systemuserid".into(), Value::String(user.to_string()));
                    Some(Value::Object(m))
                })
                .collect();
            out.insert("teammembership_association".into(), Value::Array(members));
        }
        out
    }

    /// One row written straight into `out` as JSON: the same object as
    /// [`Self::row`], without building it first (a page of 5,000 rows is
    /// written in milliseconds).
    pub(crate) fn write_row(&self, store: &Store, key: &Guid, row: &Row, out: &mut String) {
        out.push_str("{\"@odata.etag\":\"W/\\\"");
        out.push_str(&row.version.to_string());
        out.push_str("\\\"\"");
        for &column in &self.columns {
            let name = self.name(column);
            let kind = self.table.columns()[column].kind;
            let cell = value_of(self.table, key, row, column);
            if self.annotations.any() && !cell.is_null() {
                self.annotate(store, kind, name, &cell, &mut |suffix, text| {
                    out.push(',');
                    push_json_str(out, &format!("{name}@{suffix}"));
                    out.push(':');
                    push_json_str(out, &text);
                });
            }
            out.push(',');
            push_json_str(out, name);
            out.push(':');
            match (kind, &cell) {
                (_, Cell::Time(_)) if row.corrupt && matches!(name, "modifiedon" | "createdon") => {
                    out.push_str("\"not a date\"");
                }
                (Kind::Version, _) => {
                    out.push('"');
                    out.push_str(&row.version.to_string());
                    out.push('"');
                }
                (_, Cell::Null) => out.push_str("null"),
                (_, Cell::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
                (_, Cell::Int(n)) => out.push_str(&n.to_string()),
                (_, Cell::Text(t)) => push_json_str(out, t),
                (_, Cell::Guid(g) | Cell::Ref(_, g)) => {
                    out.push('"');
                    out.push_str(&g.to_string());
                    out.push('"');
                }
                _ => out.push_str(&cell.to_json().to_string()),
            }
        }
        if self.expand_members {
            let members = self
                .row(store, key, row)
                .remove("teammembership_association");
            out.push_str(",\"teammembership_association\":");
            out.push_str(&members.unwrap_or(Value::Array(Vec::new())).to_string());
        }
        out.push('}');
    }

    /// Hands each annotation a value of this column carries to `put`
    /// (suffix, text).
    fn annotate(
        &self,
        store: &Store,
        kind: Kind,
        name: &str,
        cell: &Cell,
        put: &mut dyn FnMut(&str, String),
    ) {
        match (kind, cell) {
            (Kind::Lookup(navs), Cell::Ref(target, g)) => {
                if self.annotations.formatted
                    && let Some(label) = store.name_of(*target, g)
                {
                    put(FORMATTED, label.to_string());
                }
                if self.annotations.navigation
                    && let Some((nav, _)) = navs.iter().find(|(_, ts)| ts.contains(target))
                {
                    put(NAVIGATION, (*nav).to_owned());
                }
                if self.annotations.lookup_name {
                    put(LOOKUP_NAME, target.logical_name().to_owned());
                }
            }
            (Kind::Lookup(navs), Cell::Guid(g)) => {
                if self.annotations.formatted
                    && let Some(label) = store.business_units.get(g)
                {
                    put(FORMATTED, label.to_string());
                }
                if self.annotations.navigation
                    && let Some((nav, _)) = navs.first()
                {
                    put(NAVIGATION, (*nav).to_owned());
                }
                if self.annotations.lookup_name {
                    put(LOOKUP_NAME, "businessunit".to_owned());
                }
            }
            (Kind::Choice(_) | Kind::State(_) | Kind::Status(_), Cell::Int(v)) => {
                if self.annotations.formatted
                    && let Some(label) = choice_label(store, self.table, name, *v)
                {
                    put(FORMATTED, label);
                }
            }
            _ => {
                if self.annotations.formatted
                    && let Some(text) = cell.formatted(kind)
                {
                    put(FORMATTED, text);
                }
            }
        }
    }
}

/// The label of a choice value, the org's custom sales stage included.
pub(crate) fn choice_label(
    store: &Store,
    table: Table,
    column: &str,
    value: i64,
) -> Option<String> {
    if table == Table::Opportunity && column == "salesstage" && value == ODD_STAGE_VALUE {
        return store.odd_stage.as_deref().map(str::to_owned);
    }
    let at = table.column(column, None)?;
    table.columns()[at]
        .options()?
        .into_iter()
        .find(|(v, _)| *v == value)
        .map(|(_, label)| label.to_owned())
}

/// The options of a choice column, the org's custom sales stage included.
pub(crate) fn choice_options(
    store: &Store,
    table: Table,
    column: usize,
) -> Option<Vec<(i64, String)>> {
    let c = table.columns().get(column)?;
    let mut options: Vec<(i64, String)> = c
        .options()?
        .into_iter()
        .map(|(v, l)| (v, l.to_owned()))
        .collect();
    if table == Table::Opportunity
        && c.name == "salesstage"
        && let Some(odd) = &store.odd_stage
    {
        options.push((ODD_STAGE_VALUE, odd.to_string()));
    }
    Some(options)
}

/// A JSON string literal, escaped.
fn push_json_str(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
}
