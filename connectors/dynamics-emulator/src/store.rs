//! The org's rows in memory, and the indexes every read pages through
//! without copying a table: rows by primary key, keys by version (what a
//! delta link reads), the log of deletions, task alternate key values, and
//! team members.
//!
//! Versions are one org-wide counter: every insert, update and delete takes
//! the next one, so "changed since version v" is a range of the version
//! index.

use super::cell::{Cell, Guid};
use super::clock::Clock;
use super::table::{self, Kind, Table};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// One row; its cells in the table's column order.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub cells: Box<[Cell]>,
    pub version: u64,
    /// Rendered in a shape no client can read, from now on.
    pub corrupt: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub by_key: BTreeMap<Guid, Row>,
    pub by_version: BTreeMap<u64, Guid>,
    /// (version of the deletion, key), in version order.
    pub deleted: Vec<(u64, Guid)>,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub clock: Clock,
    tables: [Rows; 7],
    version: u64,
    /// Owner team -> its members, in the order they joined.
    pub team_members: BTreeMap<Guid, Vec<Guid>>,
    /// Business unit -> name (the only table behind a lookup the emulator
    /// does not serve).
    pub business_units: BTreeMap<Guid, Arc<str>>,
    /// The label of the custom sales stage, when the org has one.
    pub odd_stage: Option<Arc<str>>,
    /// Task alternate key value -> task.
    alt_keys: HashMap<Arc<str>, Guid>,
    /// The record a task is regarding -> its tasks: what a page's task
    /// lookup (`_regardingobjectid_value eq … or …`) is answered from.
    regarding: HashMap<Guid, BTreeSet<Guid>>,
    /// Delta tokens of this version or older were expired by a control.
    pub delta_expired_through: u64,
    pub rng: fastrand::Rng,
}

fn slot(table: Table) -> usize {
    Table::ALL
        .iter()
        .position(|t| *t == table)
        .unwrap_or_default()
}

/// The alternate key cell position of a task row.
fn alt_slot() -> usize {
    Table::Task
        .columns()
        .iter()
        .position(|c| matches!(c.kind, Kind::AltKey))
        .unwrap_or_default()
}

fn alt_value(table: Table, row: &Row) -> Option<Arc<str>> {
    if table != Table::Task {
        return None;
    }
    match row.cells.get(alt_slot()) {
        Some(Cell::Text(value)) => Some(value.clone()),
        _ => None,
    }
}

/// The position of a task's `_regardingobjectid_value`.
pub(crate) fn regarding_slot() -> Option<usize> {
    Table::Task.column("_regardingobjectid_value", None)
}

fn regarding_of(table: Table, row: &Row) -> Option<Guid> {
    if table != Table::Task {
        return None;
    }
    match row.cells.get(regarding_slot()?) {
        Some(Cell::Ref(_, record) | Cell::Guid(record)) => Some(*record),
        _ => None,
    }
}

impl Store {
    pub(crate) fn new(clock: Clock, seed: u64) -> Self {
        Self {
            clock,
            tables: Default::default(),
            // Dataverse row versions are large numbers; start high so that
            // nothing reads them as small counters by accident.
            version: 1_000_000,
            team_members: BTreeMap::new(),
            business_units: BTreeMap::new(),
            odd_stage: None,
            alt_keys: HashMap::new(),
            regarding: HashMap::new(),
            delta_expired_through: 0,
            rng: fastrand::Rng::with_seed(seed ^ 0xd1a5),
        }
    }

    pub(crate) fn rows(&self, table: Table) -> &Rows {
        &self.tables[slot(table)]
    }

    fn rows_mut(&mut self, table: Table) -> &mut Rows {
        &mut self.tables[slot(table)]
    }

    pub(crate) fn get(&self, table: Table, key: &Guid) -> Option<&Row> {
        self.rows(table).by_key.get(key)
    }

    pub(crate) fn get_mut(&mut self, table: Table, key: &Guid) -> Option<&mut Row> {
        self.rows_mut(table).by_key.get_mut(key)
    }

    /// The newest version handed out.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Takes a version that no row carries (expiring delta tokens).
    pub(crate) fn bump_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// The tasks regarding any of `records`, in key order.
    pub(crate) fn tasks_regarding(&self, records: &[Guid]) -> BTreeSet<Guid> {
        records
            .iter()
            .filter_map(|record| self.regarding.get(record))
            .flatten()
            .copied()
            .collect()
    }

    pub(crate) fn task_by_alt_key(&self, value: &str) -> Option<Guid> {
        self.alt_keys.get(value).copied()
    }

    /// A fresh key no row of `table` has.
    pub(crate) fn new_key(&mut self, table: Table) -> Guid {
        loop {
            let key = Guid::random(&mut self.rng);
            if self.get(table, &key).is_none() {
                return key;
            }
        }
    }

    /// The primary name of a row, for a lookup's formatted value.
    pub(crate) fn name_of(&self, table: Table, key: &Guid) -> Option<Arc<str>> {
        let at = table::at(table, table.primary_name());
        match self.get(table, key)?.cells.get(at)? {
            Cell::Text(name) => Some(name.clone()),
            _ => None,
        }
    }

    /// Which of `tables` holds a row with this key.
    pub(crate) fn find(&self, tables: &[Table], key: &Guid) -> Option<Table> {
        tables.iter().copied().find(|t| self.get(*t, key).is_some())
    }

    /// Inserts a row created and modified at `at` (epoch ms); its key,
    /// `createdon`, `modifiedon` and version are set here.
    pub(crate) fn insert_at(&mut self, table: Table, key: Guid, mut cells: Vec<Cell>, at: i64) {
        cells.resize(table.columns().len(), Cell::Null);
        cells[0] = Cell::Guid(key);
        if let Some(i) = table.column("createdon", None)
            && cells[i].is_null()
        {
            cells[i] = Cell::Time(at);
        }
        if let Some(i) = table.column("modifiedon", None) {
            cells[i] = Cell::Time(at);
        }
        let version = self.bump_version();
        let row = Row {
            cells: cells.into_boxed_slice(),
            version,
            corrupt: false,
        };
        self.put(table, key, row);
    }

    /// Inserts a row now.
    pub(crate) fn insert(&mut self, table: Table, key: Guid, cells: Vec<Cell>) {
        let at = self.clock.tick();
        self.insert_at(table, key, cells, at);
    }

    /// Sets cells of a row, stamps it modified at `at` with a new version,
    /// and returns the row as it was (for a change set's undo).
    pub(crate) fn update_at(
        &mut self,
        table: Table,
        key: &Guid,
        changes: Vec<(usize, Cell)>,
        at: i64,
    ) -> Option<Row> {
        let old = self.take(table, key)?;
        let mut row = old.clone();
        for (i, cell) in changes {
            if let Some(slot) = row.cells.get_mut(i) {
                *slot = cell;
            }
        }
        if let Some(i) = table.column("modifiedon", None) {
            row.cells[i] = Cell::Time(at);
        }
        row.version = self.bump_version();
        self.put(table, *key, row);
        Some(old)
    }

    pub(crate) fn update(
        &mut self,
        table: Table,
        key: &Guid,
        changes: Vec<(usize, Cell)>,
    ) -> Option<Row> {
        let at = self.clock.tick();
        self.update_at(table, key, changes, at)
    }

    /// Removes a row; change tracking reports it as deleted from now on.
    pub(crate) fn delete(&mut self, table: Table, key: &Guid) -> Option<Row> {
        let old = self.take(table, key)?;
        let version = self.bump_version();
        self.rows_mut(table).deleted.push((version, *key));
        self.team_members.remove(key);
        Some(old)
    }

    /// Puts a row back as it was before a write (`None`: the write created
    /// it, so it goes). Undoes a failed change set's earlier parts.
    pub(crate) fn restore(&mut self, table: Table, key: &Guid, before: Option<Row>) {
        let existed = self.take(table, key).is_some();
        // Undoing a delete takes its entry out of the deletion log too.
        let deleted = &mut self.rows_mut(table).deleted;
        if !existed && before.is_some() && deleted.last().is_some_and(|(_, k)| k == key) {
            deleted.pop();
        }
        if let Some(row) = before {
            self.put(table, *key, row);
        }
    }

    /// Takes a row out of every index.
    fn take(&mut self, table: Table, key: &Guid) -> Option<Row> {
        let rows = self.rows_mut(table);
        let row = rows.by_key.remove(key)?;
        rows.by_version.remove(&row.version);
        if let Some(value) = alt_value(table, &row)
            && self.alt_keys.get(&value) == Some(key)
        {
            self.alt_keys.remove(&value);
        }
        if let Some(record) = regarding_of(table, &row)
            && let Some(tasks) = self.regarding.get_mut(&record)
        {
            tasks.remove(key);
            if tasks.is_empty() {
                self.regarding.remove(&record);
            }
        }
        Some(row)
    }

    /// Files a row under every index.
    fn put(&mut self, table: Table, key: Guid, row: Row) {
        if let Some(value) = alt_value(table, &row) {
            self.alt_keys.insert(value, key);
        }
        if let Some(record) = regarding_of(table, &row) {
            self.regarding.entry(record).or_default().insert(key);
        }
        let rows = self.rows_mut(table);
        rows.by_version.insert(row.version, key);
        rows.by_key.insert(key, row);
    }
}
