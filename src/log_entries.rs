//! The violations log as an admin reads it: a record's violations as
//! entries, one per missing fact. Where a record left a stage with an exit
//! criterion unmet and was handed over without a field that criterion
//! reads, `exit_criteria_unmet` and `handoff_incomplete` flag the same
//! missing fact: one entry names both rules. The stored violations stay as
//! they are (each keeps its own status, history and fingerprint); this is
//! how the console, `violations list` and the report show them.

use crate::journey::record::label;
use crate::journey::{Journey, Stage};
use crate::rules::{BuiltinRule, Severity};
use crate::store::{ViolationId, ViolationRow, ViolationStatus};

/// One line of a record's list: one violation, or two that flag the same
/// missing fact.
#[derive(Debug, Clone)]
pub struct Entry<'r> {
    /// The violations it stands for; the first is the one it is listed by.
    pub rows: Vec<&'r ViolationRow>,
}

impl<'r> Entry<'r> {
    /// The violation it is listed by.
    pub fn first(&self) -> &'r ViolationRow {
        self.rows[0]
    }

    pub fn severity(&self) -> Severity {
        self.rows
            .iter()
            .map(|row| row.violation.severity)
            .max()
            .unwrap_or(Severity::Low)
    }

    /// Merged violations share their status.
    pub fn status(&self) -> ViolationStatus {
        self.first().status
    }

    pub fn ids(&self) -> Vec<ViolationId> {
        self.rows.iter().map(|row| row.id).collect()
    }

    /// The ids as one word: `12+13`.
    pub fn id_label(&self) -> String {
        join(self.rows.iter().map(|row| row.id.to_string()), "+")
    }

    /// The rules as one word: `exit_criteria_unmet+handoff_incomplete`.
    pub fn rules(&self) -> String {
        join(
            self.rows.iter().map(|row| row.violation.rule.to_string()),
            "+",
        )
    }

    /// [`Entry::message`] where it is shown under its record: without the
    /// record's name it begins with (`is in stage decision but ...`).
    pub fn message_under_record(&self) -> String {
        let v = &self.first().violation;
        let message = self.message();
        let label = label(v.object, v.record_name.as_deref(), &v.record_id);
        match message.strip_prefix(&label) {
            Some(rest) if rest.starts_with(' ') => rest.trim_start().to_owned(),
            _ => message,
        }
    }

    /// What is wrong, in one sentence: a merged entry says what the record
    /// left the stage without, then how it was handed over.
    pub fn message(&self) -> String {
        match self.rows.as_slice() {
            [unmet, handoff] => {
                let handoff = &handoff.violation.message;
                match handoff.find(HANDED) {
                    Some(at) => format!("{}; it{}", unmet.violation.message, &handoff[at..]),
                    None => format!("{}; {handoff}", unmet.violation.message),
                }
            }
            rows => join(rows.iter().map(|row| row.violation.message.clone()), "; "),
        }
    }
}

fn join(parts: impl Iterator<Item = String>, between: &str) -> String {
    parts.collect::<Vec<_>>().join(between)
}

/// `rows` as entries, in their order: each `handoff_incomplete` that
/// flags a missing fact of an `exit_criteria_unmet` of the same record,
/// stage and status joins that entry. Rows of several records may be
/// given; only a record's own rows join.
pub fn entries<'r>(journey: &Journey, rows: &'r [ViolationRow]) -> Vec<Entry<'r>> {
    let mut joined = vec![false; rows.len()];
    let mut out = Vec::with_capacity(rows.len());
    for (at, row) in rows.iter().enumerate() {
        if joined[at] {
            continue;
        }
        let mut entry = Entry { rows: vec![row] };
        let partner = (at + 1..rows.len())
            .filter(|other| !joined[*other])
            .find(|other| same_fact(journey, row, &rows[*other]));
        if let Some(other) = partner {
            joined[other] = true;
            entry.rows.push(&rows[other]);
            // The unmet criteria first: the handoff adds to what they say.
            if is(row, BuiltinRule::HandoffIncomplete) {
                entry.rows.swap(0, 1);
            }
        }
        out.push(entry);
    }
    out
}

/// `rows` with each record's rows together, records in the order their
/// first row comes, and each record's rows in their order.
pub fn by_record(rows: Vec<ViolationRow>) -> Vec<Vec<ViolationRow>> {
    let mut groups: Vec<Vec<ViolationRow>> = Vec::new();
    let mut index: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    for row in rows {
        let v = &row.violation;
        let key = (v.connector.clone(), v.object, v.record_id.clone());
        match index.get(&key) {
            Some(&at) => groups[at].push(row),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![row]);
            }
        }
    }
    groups
}

/// How a `handoff_incomplete` message goes on after its record.
const HANDED: &str = " was handed from ";
/// Where the `exit_criteria_unmet` message lists the unmet criteria.
const UNMET: &str = " are unmet: ";
/// Where the `handoff_incomplete` message lists the missing fields.
const WITHOUT: &str = " without: ";

fn is(row: &ViolationRow, rule: BuiltinRule) -> bool {
    row.violation.rule.as_str() == rule.as_str()
}

/// Whether `a` and `b` are an unmet exit criterion and an incomplete
/// handoff, in either order, of one record at one stage with one status,
/// and some field the handoff missed is read by a criterion left unmet.
fn same_fact(journey: &Journey, a: &ViolationRow, b: &ViolationRow) -> bool {
    let (unmet, handoff) = if is(a, BuiltinRule::ExitCriteriaUnmet) {
        (a, b)
    } else {
        (b, a)
    };
    if !is(unmet, BuiltinRule::ExitCriteriaUnmet) || !is(handoff, BuiltinRule::HandoffIncomplete) {
        return false;
    }
    let (u, h) = (&unmet.violation, &handoff.violation);
    if (&u.connector, u.object, &u.record_id) != (&h.connector, h.object, &h.record_id)
        || unmet.status != handoff.status
        || u.stage.is_none()
        || u.stage != h.stage
    {
        return false;
    }
    let Some(stage) = u.stage.as_ref().and_then(|id| journey.stage(id)) else {
        return false;
    };
    let criteria = unmet_criteria(stage, &u.message);
    missing_fields(stage, &h.message)
        .any(|field| criteria.iter().any(|criterion| criterion.reads(field)))
}

/// The criteria of `stage` an `exit_criteria_unmet` message names as unmet
/// (each listed by name, an error after it in brackets).
fn unmet_criteria<'s>(stage: &'s Stage, message: &str) -> Vec<&'s crate::journey::Criterion> {
    let Some((_, listed)) = message.rsplit_once(UNMET) else {
        return Vec::new();
    };
    listed
        .split(", ")
        .filter_map(|item| {
            let name = item.split(' ').next().unwrap_or(item);
            stage.exit_criteria.iter().find(|c| c.name == name)
        })
        .collect()
}

/// The handoff fields of `stage` a `handoff_incomplete` message names as
/// missing.
fn missing_fields<'m>(stage: &'m Stage, message: &'m str) -> impl Iterator<Item = &'m str> {
    let listed = message
        .rsplit_once(WITHOUT)
        .map_or("", |(_, listed)| listed);
    listed
        .split(", ")
        .filter(|field| stage.handoff_fields.iter().any(|known| known == field))
}

#[cfg(test)]
mod tests;
