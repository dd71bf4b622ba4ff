//! The org's records in memory: ids, writes with their system fields, the
//! recycle bin and its delete log, and an index of children by parent for
//! each lookup a relationship sub-query runs through.

use super::clock::{self, Clock};
use super::object::{INDEXED_LOOKUPS, SObject, TASK_STATUSES};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One record; field values are held as they go on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: String,
    pub fields: Map<String, Value>,
    /// When it went to the recycle bin.
    pub deleted_ms: Option<i64>,
    /// Rendered malformed from now on.
    pub corrupt: bool,
}

impl Record {
    pub(crate) fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|v| !v.is_null())
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    pub clock: Clock,
    tables: BTreeMap<SObject, BTreeMap<String, Record>>,
    next: BTreeMap<SObject, u64>,
    /// Records emptied from the recycle bin: gone from every query, still
    /// in getDeleted's log as (deleted at, id).
    delete_log: BTreeMap<SObject, Vec<(i64, String)>>,
    /// For each indexed lookup (object, field): the ids of the records
    /// whose field holds a given id, keyed by [`lookup_key`]; recycled
    /// records stay in it (`queryAll` reads them).
    children: HashMap<(SObject, &'static str), HashMap<String, BTreeSet<String>>>,
    pub rng: fastrand::Rng,
}

/// An indexed lookup field of a record and the id it holds.
type Lookup = (&'static str, String);

/// The indexed lookups `fields` of an `object` record hold.
fn lookups(object: SObject, fields: &Map<String, Value>) -> Vec<Lookup> {
    INDEXED_LOOKUPS
        .iter()
        .filter(|(indexed, _)| *indexed == object)
        .filter_map(|(_, field)| {
            let parent = fields.get(*field)?.as_str()?;
            Some((*field, parent.to_owned()))
        })
        .collect()
}

/// How an index keys an id: its 18-character form, lowercased, since SOQL
/// compares an 18-character id literal case-insensitively.
pub(crate) fn lookup_key(id: &str) -> String {
    if id.len() == 15 {
        id18(id).to_ascii_lowercase()
    } else {
        id.to_ascii_lowercase()
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 18-character form of a 15-character id: three checksum characters
/// that make it case-insensitive.
pub(crate) fn id18(id15: &str) -> String {
    const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut out = id15.to_owned();
    for chunk in id15.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out.push(char::from(SUFFIX[bits]));
    }
    out
}

/// Whether `id` is shaped like a Salesforce id (15 or 18 alphanumerics).
pub(crate) fn well_formed_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The org's first user: the integration user of the seeded org.
pub(crate) fn first_user() -> String {
    id_of(SObject::User, first_number(SObject::User))
}

fn id_of(object: SObject, n: u64) -> String {
    let mut digits = [b'0'; 6];
    let mut rest = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let body = String::from_utf8_lossy(&digits);
    id18(&format!("{}Dn0000{body}", object.key_prefix()))
}

/// Where each object's counter starts: users at `03KxQ1`, so the first
/// user is `005Dn000003KxQ1IAK`, the id the shipped config names.
fn first_number(object: SObject) -> u64 {
    let from = |s: &str| {
        s.bytes().fold(0u64, |acc, b| {
            acc * 62 + BASE62.iter().position(|c| *c == b).unwrap_or(0) as u64
        })
    };
    match object {
        SObject::User => from("03KxQ1"),
        // Just below a digit-to-letter boundary, so that ids sort the same
        // as text either side of it (they are base 62 in ASCII order).
        _ => from("0ZZZZX") - 40,
    }
}

impl Store {
    pub(crate) fn new(clock: Clock, seed: u64) -> Self {
        Self {
            clock,
            tables: SObject::ALL.iter().map(|o| (*o, BTreeMap::new())).collect(),
            next: SObject::ALL
                .iter()
                .map(|o| (*o, first_number(*o)))
                .collect(),
            delete_log: BTreeMap::new(),
            children: INDEXED_LOOKUPS
                .iter()
                .map(|lookup| (*lookup, HashMap::new()))
                .collect(),
            rng: fastrand::Rng::with_seed(seed ^ 0x5f5f),
        }
    }

    /// Whether `object.field` is indexed.
    pub(crate) fn indexed(&self, object: SObject, field: &str) -> bool {
        INDEXED_LOOKUPS.contains(&(object, field))
    }

    /// The records of `object` whose indexed lookup `field` holds `id`
    /// (compared as SOQL compares ids), recycled ones too, in id order.
    /// Empty when the lookup is not indexed.
    pub(crate) fn children<'a>(
        &'a self,
        object: SObject,
        field: &str,
        id: &str,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        let table = self.table(object);
        INDEXED_LOOKUPS
            .iter()
            .find(|lookup| **lookup == (object, field))
            .and_then(|lookup| self.children.get(lookup))
            .and_then(|by_parent| by_parent.get(&lookup_key(id)))
            .into_iter()
            .flatten()
            .filter_map(move |child| table.get(child))
    }

    /// Files `record_id` under the parents `lookups` name, or with `add`
    /// false takes it out from under them.
    fn index(&mut self, object: SObject, record_id: &str, lookups: &[Lookup], add: bool) {
        for (field, parent) in lookups {
            let Some(by_parent) = self.children.get_mut(&(object, *field)) else {
                continue;
            };
            let key = lookup_key(parent);
            if add {
                by_parent
                    .entry(key)
                    .or_default()
                    .insert(record_id.to_owned());
            } else if let Some(ids) = by_parent.get_mut(&key) {
                ids.remove(record_id);
                if ids.is_empty() {
                    by_parent.remove(&key);
                }
            }
        }
    }

    pub(crate) fn table(&self, object: SObject) -> &BTreeMap<String, Record> {
        &self.tables[&object]
    }

    fn table_mut(&mut self, object: SObject) -> &mut BTreeMap<String, Record> {
        self.tables
            .get_mut(&object)
            .expect("every object has a table")
    }

    /// A record by its 15- or 18-character id, deleted or not.
    pub(crate) fn get(&self, object: SObject, id: &str) -> Option<&Record> {
        let table = self.table(object);
        table
            .get(id)
            .or_else(|| (id.len() == 15).then(|| table.get(&id18(id))).flatten())
    }

    /// A record to change in place; the change must leave its indexed
    /// lookups alone (those change through [`Store::update`]).
    pub(crate) fn get_mut(&mut self, object: SObject, id: &str) -> Option<&mut Record> {
        let key = if id.len() == 15 {
            id18(id)
        } else {
            id.to_owned()
        };
        self.table_mut(object).get_mut(&key)
    }

    /// A live record anywhere in the org by id (for lookups).
    pub(crate) fn live_anywhere(&self, id: &str) -> Option<(SObject, &Record)> {
        let object = SObject::of_id(id)?;
        self.get(object, id)
            .filter(|r| r.deleted_ms.is_none())
            .map(|r| (object, r))
    }

    /// Inserts a record created by the user `by`, stamped `at` (epoch ms),
    /// and returns its id.
    pub(crate) fn insert_at(
        &mut self,
        object: SObject,
        fields: Map<String, Value>,
        at: i64,
        by: &str,
    ) -> String {
        let n = self.next[&object];
        self.next.insert(object, n + 1);
        let id = id_of(object, n);
        let stamp = Value::String(clock::datetime(at));
        let mut record = Record {
            id: id.clone(),
            fields,
            deleted_ms: None,
            corrupt: false,
        };
        record.fields.insert("Id".into(), Value::String(id.clone()));
        record.fields.insert("IsDeleted".into(), Value::Bool(false));
        record
            .fields
            .insert("CreatedById".into(), Value::String(by.to_owned()));
        record.fields.insert("CreatedDate".into(), stamp.clone());
        if object != SObject::OpportunityHistory {
            record
                .fields
                .insert("LastModifiedDate".into(), stamp.clone());
        }
        record.fields.insert("SystemModstamp".into(), stamp);
        derive(object, &mut record.fields);
        self.index(object, &id, &lookups(object, &record.fields), true);
        self.table_mut(object).insert(id.clone(), record);
        id
    }

    /// Inserts a record created now by the user `by`.
    pub(crate) fn insert(
        &mut self,
        object: SObject,
        fields: Map<String, Value>,
        by: &str,
    ) -> String {
        let at = self.clock.tick();
        self.insert_at(object, fields, at, by)
    }

    /// Sets fields of a record and stamps it modified now.
    pub(crate) fn update(&mut self, object: SObject, id: &str, fields: Map<String, Value>) {
        let at = self.clock.tick();
        let Some((id, old)) = self
            .get(object, id)
            .map(|r| (r.id.clone(), lookups(object, &r.fields)))
        else {
            return;
        };
        self.index(object, &id, &old, false);
        if let Some(record) = self.get_mut(object, &id) {
            for (k, v) in fields {
                record.fields.insert(k, v);
            }
            let stamp = Value::String(clock::datetime(at));
            if object != SObject::OpportunityHistory {
                record
                    .fields
                    .insert("LastModifiedDate".into(), stamp.clone());
            }
            record.fields.insert("SystemModstamp".into(), stamp);
            derive(object, &mut record.fields);
        }
        let new = self
            .get(object, &id)
            .map(|r| lookups(object, &r.fields))
            .unwrap_or_default();
        self.index(object, &id, &new, true);
    }

    /// Empties a deleted record from the recycle bin: only getDeleted's log
    /// remembers it.
    pub(crate) fn empty_from_bin(&mut self, object: SObject, id: &str) -> bool {
        let key = self.get(object, id).map(|r| r.id.clone());
        match key.and_then(|key| self.table_mut(object).remove(&key)) {
            Some(Record {
                id,
                deleted_ms: Some(at),
                fields,
                ..
            }) => {
                self.index(object, &id, &lookups(object, &fields), false);
                self.delete_log.entry(object).or_default().push((at, id));
                true
            }
            Some(live) => {
                // Only a deleted record can leave the bin.
                self.table_mut(object).insert(live.id.clone(), live);
                false
            }
            None => false,
        }
    }

    /// Removes a record without a trace, as a deletion older than the
    /// delete log (or one Salesforce purged from it early) looks.
    pub(crate) fn erase(&mut self, object: SObject, id: &str) -> bool {
        let key = self.get(object, id).map(|r| r.id.clone());
        let removed = key.and_then(|key| self.table_mut(object).remove(&key));
        if let Some(record) = &removed {
            self.index(object, &record.id, &lookups(object, &record.fields), false);
        }
        let removed = removed.is_some();
        let mut unlogged = false;
        if let Some(log) = self.delete_log.get_mut(&object) {
            let before = log.len();
            log.retain(|(_, logged)| logged.get(..15) != id.get(..15));
            unlogged = log.len() < before;
        }
        removed || unlogged
    }

    /// Whether `id` was emptied from the recycle bin and its deletion is
    /// still logged.
    pub(crate) fn logged_deletion(&self, object: SObject, id: &str) -> bool {
        self.delete_log.get(&object).is_some_and(|log| {
            log.iter()
                .any(|(_, logged)| logged.get(..15) == id.get(..15))
        })
    }

    /// Every deletion getDeleted knows of: (deleted at, id), bin and log.
    pub(crate) fn deletions(&self, object: SObject) -> Vec<(i64, &str)> {
        let mut rows: Vec<(i64, &str)> = self
            .table(object)
            .values()
            .filter_map(|r| r.deleted_ms.map(|at| (at, r.id.as_str())))
            .chain(
                self.delete_log
                    .get(&object)
                    .into_iter()
                    .flatten()
                    .map(|(at, id)| (*at, id.as_str())),
            )
            .collect();
        rows.sort();
        rows
    }

    /// Moves a record to the recycle bin.
    pub(crate) fn delete(&mut self, object: SObject, id: &str) -> bool {
        let at = self.clock.tick();
        match self.get_mut(object, id) {
            Some(record) if record.deleted_ms.is_none() => {
                record.deleted_ms = Some(at);
                record.fields.insert("IsDeleted".into(), Value::Bool(true));
                record
                    .fields
                    .insert("SystemModstamp".into(), Value::String(clock::datetime(at)));
                true
            }
            _ => false,
        }
    }
}

/// Fields Salesforce computes from others.
fn derive(object: SObject, fields: &mut Map<String, Value>) {
    let text = |fields: &Map<String, Value>, name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match object {
        SObject::Contact | SObject::Lead => {
            let name = format!("{} {}", text(fields, "FirstName"), text(fields, "LastName"));
            fields.insert("Name".into(), Value::String(name.trim().to_owned()));
        }
        SObject::Task => {
            let status = text(fields, "Status");
            let closed = TASK_STATUSES
                .iter()
                .any(|(s, closed)| *closed && *s == status);
            fields.insert("IsClosed".into(), Value::Bool(closed));
        }
        SObject::Opportunity => {
            let stage = text(fields, "StageName");
            let closed = stage.starts_with("Closed");
            fields.insert("IsClosed".into(), Value::Bool(closed));
            fields.insert("IsWon".into(), Value::Bool(stage == "Closed Won"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighteen_character_ids_carry_the_case_checksum() {
        assert_eq!(id18("005Dn000003KxQ1"), "005Dn000003KxQ1IAK");
        assert_eq!(
            id_of(SObject::User, first_number(SObject::User)),
            "005Dn000003KxQ1IAK"
        );
    }
}
