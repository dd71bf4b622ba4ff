//! The violations log as an admin reads it: a record's violations as
//! entries, one per missing fact. Where a record left a stage with an exit
//! criterion unmet and was handed over without a field that criterion
//! reads, `exit_criteria_unmet` and `handoff_incomplete` flag the same
//! missing fact: one entry names both rules. The stored violations stay as
//! they are (each keeps its own status, history and fingerprint); this is
//! how the console, `violations list` and a record's write-back task show
//! them.

use crate::journey::record::label;
use crate::journey::{Journey, StageId};
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

/// Which exit criteria read which handoff fields: what decides that two
/// violations flag one missing fact. The journey answers it; so does the
/// owned summary of it that write-back plans with.
pub trait Facts {
    /// Whether `criterion`, an exit criterion of `stage`, reads the
    /// handoff field `field` of that stage.
    fn reads(&self, stage: &StageId, criterion: &str, field: &str) -> bool;
}

impl Facts for Journey {
    fn reads(&self, stage: &StageId, criterion: &str, field: &str) -> bool {
        self.stage(stage).is_some_and(|stage| {
            stage.handoff_fields.iter().any(|known| known == field)
                && stage
                    .exit_criteria
                    .iter()
                    .any(|c| c.name == criterion && c.reads(field))
        })
    }
}

/// `rows` as entries, in their order: each `handoff_incomplete` that
/// flags a missing fact of an `exit_criteria_unmet` of the same record,
/// stage and status joins that entry. Rows of several records may be
/// given; only a record's own rows join.
pub fn entries<'r>(facts: &(impl Facts + ?Sized), rows: &'r [ViolationRow]) -> Vec<Entry<'r>> {
    let mut joined = vec![false; rows.len()];
    let mut out = Vec::with_capacity(rows.len());
    for (at, row) in rows.iter().enumerate() {
        if joined[at] {
            continue;
        }
        let mut entry = Entry { rows: vec![row] };
        let partner = (at + 1..rows.len())
            .filter(|other| !joined[*other])
            .find(|other| same_fact(facts, row, &rows[*other]));
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
fn same_fact(facts: &(impl Facts + ?Sized), a: &ViolationRow, b: &ViolationRow) -> bool {
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
        || u.stage != h.stage
    {
        return false;
    }
    let Some(stage) = &u.stage else {
        return false;
    };
    let criteria = unmet_criteria(&u.message);
    missing_fields(&h.message).any(|field| {
        criteria
            .iter()
            .any(|criterion| facts.reads(stage, criterion, field))
    })
}

/// The names an `exit_criteria_unmet` message lists as unmet (each a
/// criterion's name, an error after it in brackets).
fn unmet_criteria(message: &str) -> Vec<&str> {
    let Some((_, listed)) = message.rsplit_once(UNMET) else {
        return Vec::new();
    };
    listed
        .split(", ")
        .map(|item| item.split(' ').next().unwrap_or(item))
        .collect()
}

/// The fields a `handoff_incomplete` message lists as missing.
fn missing_fields(message: &str) -> impl Iterator<Item = &str> {
    message
        .rsplit_once(WITHOUT)
        .map_or("", |(_, listed)| listed)
        .split(", ")
        .filter(|field| !field.is_empty())
}

#[cfg(test)]
mod tests;
