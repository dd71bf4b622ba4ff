//! The portal's data, in memory: records by object type (live and
//! archived, each a `BTreeMap` by numeric id so a list page is a range
//! scan), owners, pipelines, and the writes that change them.
//!
//! Search reads an index that lags behind the writes (fact 6.14): each table
//! keeps, for the records written within the lag, the version search still
//! shows ([`Lagging`]), so the index costs memory only for recent writes.

use super::clock::{self, Clock};
use super::object::{ObjectType, PropDef, PropId, PropKind, Schema, Source, association_name};
use compact_str::CompactString;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A record's stored property values, sorted by property id. Short values
/// stay inline, which keeps 100,000 records small.
#[derive(Debug, Clone, Default)]
pub(crate) struct Props(Vec<(PropId, CompactString)>);

impl Props {
    pub(crate) fn get(&self, id: PropId) -> Option<&str> {
        self.0
            .binary_search_by_key(&id, |(k, _)| *k)
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets a value; an empty value clears the property, as in HubSpot.
    pub(crate) fn set(&mut self, id: PropId, value: &str) {
        match self.0.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = CompactString::new(value),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (id, CompactString::new(value))),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: u64,
    pub props: Props,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived_ms: Option<i64>,
    /// Associated records, both directions kept in step.
    pub assoc: Vec<(ObjectType, u64)>,
    /// Rendered malformed from now on.
    pub corrupt: bool,
}

impl Record {
    pub(crate) fn new(id: u64, created_ms: i64) -> Self {
        Self {
            id,
            props: Props::default(),
            created_ms,
            updated_ms: created_ms,
            archived_ms: None,
            assoc: Vec::new(),
            corrupt: false,
        }
    }

    /// A property's value as text, the computed ones included.
    pub(crate) fn value(&self, schema: &Schema, id: PropId) -> Option<Cow<'_, str>> {
        match schema.def(id).source {
            Source::Stored => self.props.get(id).map(Cow::Borrowed),
            Source::Id => Some(Cow::Owned(self.id.to_string())),
            Source::Created => Some(Cow::Owned(clock::iso(self.created_ms))),
            Source::Modified => Some(Cow::Owned(clock::iso(self.updated_ms))),
        }
    }

    /// A date or datetime property in epoch ms, without formatting the
    /// computed ones first.
    pub(crate) fn millis(&self, schema: &Schema, id: PropId) -> Option<i64> {
        match schema.def(id).source {
            Source::Created => Some(self.created_ms),
            Source::Modified => Some(self.updated_ms),
            Source::Id => None,
            Source::Stored => self.props.get(id).and_then(clock::parse_ms),
        }
    }

    fn associate(&mut self, object: ObjectType, id: u64) {
        let entry = (object, id);
        if let Err(i) = self.assoc.binary_search(&entry) {
            self.assoc.insert(i, entry);
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    pub live: BTreeMap<u64, Record>,
    pub archived: BTreeMap<u64, Record>,
    pub next_id: u64,
    /// Moves on with every write, so cached search results know when
    /// they are stale.
    pub generation: u64,
    /// What search still shows of the records written within the lag.
    /// Behind a mutex because a search, which holds the store only to
    /// read, is what notices that a write has reached the index.
    pub index: Mutex<Lagging>,
}

/// The writes the search index has not caught up with.
#[derive(Debug, Default)]
pub(crate) struct Lagging {
    /// Record id -> the version search shows (`None`: not in the index
    /// yet, a record created within the lag) and when the record's latest
    /// write becomes searchable.
    pending: HashMap<u64, (Option<Record>, Instant)>,
    /// Moves on whenever a write reaches the index, so cached search
    /// results know when they are stale.
    pub generation: u64,
}

impl Lagging {
    /// Lets every write whose time has come into the index.
    pub(crate) fn catch_up(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|_, (_, due)| *due > now);
        if self.pending.len() != before {
            self.generation += 1;
        }
    }

    /// How search sees record `id`: `None` if its latest write has reached
    /// the index (search shows the record as it is), else the version the
    /// index still holds (`Some(None)`: absent from search).
    pub(crate) fn shown(&self, id: u64) -> Option<Option<&Record>> {
        self.pending.get(&id).map(|(shown, _)| shown.as_ref())
    }

    /// The versions search still shows of the records written within the
    /// lag (a record created within it has none; one archived within it
    /// still has its last live version).
    pub(crate) fn stale(&self) -> impl Iterator<Item = &Record> {
        self.pending
            .values()
            .filter_map(|(shown, _)| shown.as_ref())
    }

    /// When the last pending write reaches the index.
    pub(crate) fn settled_at(&self) -> Option<Instant> {
        self.pending.values().map(|(_, due)| *due).max()
    }

    pub(crate) fn clear(&mut self) {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.generation += 1;
        }
    }
}

impl Table {
    pub(crate) fn index(&self) -> MutexGuard<'_, Lagging> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn new(first_id: u64) -> Self {
        Self {
            next_id: first_id,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub user_id: u64,
    pub team: Option<(u64, &'static str)>,
    pub archived: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Owner {
    pub(crate) fn render(&self) -> Value {
        let teams: Vec<Value> = self
            .team
            .iter()
            .map(|(id, name)| json!({"id": id.to_string(), "name": name, "primary": true}))
            .collect();
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            // A deactivated user keeps only userIdIncludingInactive.
            "userId": if self.archived { Value::Null } else { json!(self.user_id) },
            "userIdIncludingInactive": self.user_id,
            "createdAt": clock::iso(self.created_ms),
            "updatedAt": clock::iso(self.updated_ms),
            "archived": self.archived,
            "teams": teams,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub created_ms: i64,
    pub stages: Vec<PipelineStage>,
}

#[derive(Debug, Clone)]
pub(crate) struct PipelineStage {
    pub id: String,
    pub label: String,
    /// `metadata` as HubSpot returns it: every value a string.
    pub metadata: Vec<(&'static str, String)>,
}

impl Pipeline {
    pub(crate) fn render(&self) -> Value {
        let at = clock::iso(self.created_ms);
        let stages: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(order, stage)| {
                let metadata: Map<String, Value> = stage
                    .metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
                    .collect();
                json!({
                    "id": stage.id,
                    "label": stage.label,
                    "displayOrder": order,
                    "metadata": metadata,
                    "createdAt": at,
                    "updatedAt": at,
                    "archived": false,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                })
            })
            .collect();
        json!({
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "createdAt": at,
            "updatedAt": at,
            "archived": false,
            "stages": stages,
        })
    }
}

/// What a rendered record carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    pub props: Vec<PropId>,
    pub history: Vec<PropId>,
    pub assoc: Vec<ObjectType>,
    pub null_for_unset: bool,
}

/// Why one property value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub name: String,
    pub code: &'static str,
    pub message: String,
}

pub(crate) struct Store {
    pub schemas: [Schema; 4],
    pub tables: [Table; 4],
    pub owners: Vec<Owner>,
    pub deal_pipelines: Vec<Pipeline>,
    pub task_pipelines: Vec<Pipeline>,
    pub clock: Clock,
    pub touch_rng: fastrand::Rng,
    pub touches: u64,
    /// The search index's lag ([`super::Knobs::search_lag`]); zero while
    /// seeding, so the seeded portal is searchable at once.
    pub search_lag: Duration,
}

impl Store {
    pub(crate) fn schema(&self, object: ObjectType) -> &Schema {
        &self.schemas[object.index()]
    }

    pub(crate) fn table(&self, object: ObjectType) -> &Table {
        &self.tables[object.index()]
    }

    pub(crate) fn table_mut(&mut self, object: ObjectType) -> &mut Table {
        &mut self.tables[object.index()]
    }

    /// Properties named in a request, in the schema's terms; unknown names
    /// are dropped, the id, created and modified dates always added.
    /// `None` (nothing named) means the type's defaults.
    pub(crate) fn select(&self, object: ObjectType, names: Option<&[String]>) -> Vec<PropId> {
        let schema = self.schema(object);
        let mut ids: Vec<PropId> = match names {
            Some(names) => names.iter().filter_map(|n| schema.id(n)).collect(),
            None => schema.defaults.clone(),
        };
        ids.extend(schema.always.iter().copied());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub(crate) fn named(&self, object: ObjectType, names: &[String]) -> Vec<PropId> {
        let schema = self.schema(object);
        names.iter().filter_map(|n| schema.id(n)).collect()
    }

    /// A record as the v3 object APIs return it.
    pub(crate) fn render(
        &self,
        object: ObjectType,
        record: &Record,
        selection: &Selection,
    ) -> Value {
        let schema = self.schema(object);
        let mut properties = Map::new();
        for &id in &selection.props {
            let name = schema.def(id).name.clone();
            match record.value(schema, id) {
                Some(value) => {
                    properties.insert(name, Value::String(value.into_owned()));
                }
                None if selection.null_for_unset => {
                    properties.insert(name, Value::Null);
                }
                None => {}
            }
        }
        let mut out = Map::new();
        out.insert("id".into(), Value::String(record.id.to_string()));
        if record.corrupt {
            // One bad record on an otherwise good page.
            properties.insert("hs_object_id".into(), json!({"value": record.id}));
            out.insert("createdAt".into(), Value::String("not-a-date".into()));
        } else {
            out.insert(
                "createdAt".into(),
                Value::String(clock::iso(record.created_ms)),
            );
        }
        out.insert("properties".into(), Value::Object(properties));
        if !selection.history.is_empty() {
            let history: Map<String, Value> = selection
                .history
                .iter()
                .map(|&id| {
                    (
                        schema.def(id).name.clone(),
                        self.history(object, record, id),
                    )
                })
                .collect();
            out.insert("propertiesWithHistory".into(), Value::Object(history));
        }
        out.insert(
            "updatedAt".into(),
            Value::String(clock::iso(record.updated_ms)),
        );
        out.insert("archived".into(), Value::Bool(record.archived_ms.is_some()));
        if let Some(at) = record.archived_ms {
            out.insert("archivedAt".into(), Value::String(clock::iso(at)));
        }
        if !selection.assoc.is_empty() {
            let mut assoc = Map::new();
            for &to in &selection.assoc {
                let results: Vec<Value> = record
                    .assoc
                    .iter()
                    .filter(|(t, _)| *t == to)
                    .map(|(_, id)| json!({"id": id.to_string(), "type": association_name(object, to)}))
                    .collect();
                if !results.is_empty() {
                    assoc.insert(to.plural().into(), json!({ "results": results }));
                }
            }
            if !assoc.is_empty() {
                out.insert("associations".into(), Value::Object(assoc));
            }
        }
        Value::Object(out)
    }

    /// A property's value history, newest first. A deal's stage history is
    /// read off its `hs_date_entered_<stage>` dates.
    fn history(&self, object: ObjectType, record: &Record, id: PropId) -> Value {
        let schema = self.schema(object);
        let def = schema.def(id);
        let entry = |value: &str, at: i64| json!({"value": value, "timestamp": clock::iso(at), "sourceType": "CRM_UI", "sourceId": "userId:0"});
        if object == ObjectType::Deals && def.name == "dealstage" {
            let mut entered: Vec<(i64, &str)> = def
                .options
                .iter()
                .filter_map(|(stage, _)| {
                    let prop = schema.id(&format!("hs_date_entered_{stage}"))?;
                    Some((record.millis(schema, prop)?, stage.as_str()))
                })
                .collect();
            entered.sort_unstable_by(|a, b| b.cmp(a));
            return Value::Array(
                entered
                    .into_iter()
                    .map(|(at, stage)| entry(stage, at))
                    .collect(),
            );
        }
        match record.value(schema, id) {
            Some(value) => Value::Array(vec![entry(&value, record.updated_ms)]),
            None => Value::Array(Vec::new()),
        }
    }

    /// Checks and normalizes the property values of a write. Unknown and
    /// read-only properties, values of the wrong type and options that do
    /// not exist are refused, every problem at once.
    pub(crate) fn prepare(
        &self,
        object: ObjectType,
        input: &Map<String, Value>,
    ) -> Result<Vec<(PropId, String)>, Vec<Problem>> {
        let schema = self.schema(object);
        let mut values = Vec::with_capacity(input.len());
        let mut problems = Vec::new();
        for (name, raw) in input {
            let Some(id) = schema.id(name) else {
                problems.push(Problem {
                    name: name.clone(),
                    code: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                });
                continue;
            };
            let def = schema.def(id);
            if def.read_only {
                problems.push(Problem {
                    name: name.clone(),
                    code: "READ_ONLY_VALUE",
                    message: format!(
                        "\"{name}\" is a read only property; its value cannot be set."
                    ),
                });
                continue;
            }
            let text = match raw {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    problems.push(invalid(def, &other.to_string(), "INVALID_PROPERTY_VALUE"));
                    continue;
                }
            };
            match normalize(def, &text) {
                Ok(value) => values.push((id, value)),
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(values)
        } else {
            Err(problems)
        }
    }

    /// Keeps what search shows of record `id` as it is before this write
    /// (nothing, for a record being created) until `search_lag` has passed
    /// from now: the write is about to change it.
    pub(crate) fn lag_search(&mut self, object: ObjectType, id: u64) {
        if self.search_lag.is_zero() {
            return;
        }
        let now = Instant::now();
        let due = now + self.search_lag;
        let table = &mut self.tables[object.index()];
        let index = table
            .index
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        index.catch_up(now);
        let current = &table.live;
        index
            .pending
            .entry(id)
            .or_insert_with(|| (current.get(&id).cloned(), due))
            .1 = due;
    }

    /// Sets the search index's lag; with none, search catches up at once.
    pub(crate) fn set_search_lag(&mut self, lag: Duration) {
        self.search_lag = lag;
        if lag.is_zero() {
            for table in &mut self.tables {
                table
                    .index
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
            }
        }
    }

    /// Creates a live record with these (checked) values and associations
    /// to live records; returns its id.
    pub(crate) fn create(
        &mut self,
        object: ObjectType,
        values: &[(PropId, String)],
        assoc: &[(ObjectType, u64)],
    ) -> u64 {
        let now = self.clock.tick();
        let id = self.table(object).next_id;
        self.lag_search(object, id);
        let table = self.table_mut(object);
        table.next_id += 1;
        let mut record = Record::new(id, now);
        for (prop, value) in values {
            record.props.set(*prop, value);
        }
        self.stamp_stage_entry(object, &mut record, values, now);
        let table = self.table_mut(object);
        table.live.insert(id, record);
        table.generation += 1;
        for &(to, target) in assoc {
            self.associate(object, id, to, target);
        }
        id
    }

    /// Applies (checked) values to a live record; `None` if there is none.
    /// With `forward_only`, an earlier lifecycle stage is silently kept out.
    pub(crate) fn update(
        &mut self,
        object: ObjectType,
        id: u64,
        values: &[(PropId, String)],
        forward_only: bool,
    ) -> Option<()> {
        if !self.table(object).live.contains_key(&id) {
            return None;
        }
        self.lag_search(object, id);
        let now = self.clock.tick();
        let schema = self.schemas[object.index()].clone_lifecycle();
        let table = &mut self.tables[object.index()];
        let mut record = table.live.remove(&id)?;
        for (prop, value) in values {
            if forward_only && schema.is_backwards(*prop, record.props.get(*prop), value) {
                continue;
            }
            record.props.set(*prop, value);
        }
        record.updated_ms = now;
        self.stamp_stage_entry(object, &mut record, values, now);
        let table = self.table_mut(object);
        table.live.insert(id, record);
        table.generation += 1;
        Some(())
    }

    /// Moves a live record to the archive; `false` if there is none.
    pub(crate) fn archive(&mut self, object: ObjectType, id: u64) -> bool {
        if self.table(object).live.contains_key(&id) {
            self.lag_search(object, id);
        }
        let now = self.clock.tick();
        let table = self.table_mut(object);
        let Some(mut record) = table.live.remove(&id) else {
            return false;
        };
        record.archived_ms = Some(now);
        record.updated_ms = now;
        table.archived.insert(id, record);
        table.generation += 1;
        true
    }

    pub(crate) fn associate(&mut self, from: ObjectType, from_id: u64, to: ObjectType, to_id: u64) {
        if let Some(record) = self.table_mut(from).live.get_mut(&from_id) {
            record.associate(to, to_id);
        }
        let table = self.table_mut(to);
        if let Some(record) = table.live.get_mut(&to_id) {
            record.associate(from, from_id);
            table.generation += 1;
        }
    }

    /// HubSpot stamps `hs_date_entered_<stage>` when a deal enters a stage.
    fn stamp_stage_entry(
        &self,
        object: ObjectType,
        record: &mut Record,
        values: &[(PropId, String)],
        now: i64,
    ) {
        if object != ObjectType::Deals {
            return;
        }
        let schema = self.schema(object);
        let Some(stage_prop) = schema.id("dealstage") else {
            return;
        };
        for (prop, value) in values {
            if *prop == stage_prop
                && !value.is_empty()
                && let Some(entered) = schema.id(&format!("hs_date_entered_{value}"))
            {
                record.props.set(entered, &clock::iso(now));
            }
        }
    }
}

/// Just what a lifecycle check needs from a schema, so that the check can
/// run while the table is borrowed mutably.
pub(crate) struct LifecycleRule {
    prop: Option<PropId>,
    def: Option<PropDef>,
}

impl Schema {
    fn clone_lifecycle(&self) -> LifecycleRule {
        let prop = match self.object {
            ObjectType::Contacts | ObjectType::Companies => self.id("lifecyclestage"),
            _ => None,
        };
        LifecycleRule {
            prop,
            def: prop.map(|p| self.def(p).clone()),
        }
    }
}

impl LifecycleRule {
    /// Whether writing `new` over `current` moves the lifecycle stage back.
    fn is_backwards(&self, prop: PropId, current: Option<&str>, new: &str) -> bool {
        let (Some(lifecycle), Some(def)) = (self.prop, &self.def) else {
            return false;
        };
        if prop != lifecycle || new.is_empty() {
            return false;
        }
        match (
            current.and_then(|c| def.option_rank(c)),
            def.option_rank(new),
        ) {
            (Some(current), Some(new)) => new < current,
            _ => false,
        }
    }
}

fn invalid(def: &PropDef, value: &str, code: &'static str) -> Problem {
    Problem {
        name: def.name.clone(),
        code,
        message: format!(
            "{value} was not a valid {} value for property {}",
            def.kind.type_name(),
            def.name
        ),
    }
}

/// A value as HubSpot stores it: numbers as given, datetimes as ISO with
/// milliseconds, dates as `YYYY-MM-DD`, booleans lowercase, options exact.
fn normalize(def: &PropDef, text: &str) -> Result<String, Problem> {
    if text.is_empty() {
        return Ok(String::new());
    }
    match def.kind {
        PropKind::String => Ok(text.to_owned()),
        PropKind::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|_| text.trim().to_owned())
            .ok_or_else(|| invalid(def, text, "INVALID_PROPERTY_VALUE")),
        PropKind::DateTime => clock::parse_ms(text)
            .map(clock::iso)
            .ok_or_else(|| invalid(def, text, "INVALID_DATE")),
        PropKind::Date => clock::parse_ms(text)
            .map(clock::date)
            .ok_or_else(|| invalid(def, text, "INVALID_DATE")),
        PropKind::Bool => match text.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_owned()),
            _ => Err(invalid(def, text, "INVALID_BOOLEAN")),
        },
        PropKind::Enumeration => {
            if def.option_rank(text).is_some() {
                Ok(text.to_owned())
            } else {
                Err(invalid(def, text, "INVALID_OPTION"))
            }
        }
    }
}
