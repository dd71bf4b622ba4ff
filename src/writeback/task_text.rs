//! What a corrective task says: its subject and its text, for the owner who
//! reads it in the CRM. The planner ends the text with the task's
//! `journeyd-action: KEY` line, which connectors write exactly once.
//!
//! A record's task lists its open violations as a checklist, each with what
//! to do (two that flag one missing fact as one item, as the log shows
//! them), then the exit criteria of the stage the record is in. Its subject
//! names the record and the count, so no two open tasks read the same.

use crate::journey::{Journey, RoleId, StageId};
use crate::log_entries::{Facts, entries};
use crate::rules::{BuiltinRule, RuleId, Severity};
use crate::store::ViolationRow;
use journeyd_connector::{ObjectKind, RecordId};
use std::collections::BTreeMap;

/// What tasks say of the journey's stages: names, accountable roles and
/// exit criteria. Owned, so that planning can run on the store's thread.
#[derive(Debug, Clone, Default)]
pub struct Stages(BTreeMap<StageId, StageText>);

#[derive(Debug, Clone)]
struct StageText {
    name: String,
    owner_role: RoleId,
    criteria: Vec<String>,
    /// (criterion, handoff field) where the criterion reads the field: a
    /// record without it breaks both, and its task lists it once.
    reads: Vec<(String, String)>,
}

impl Stages {
    pub fn of(journey: &Journey) -> Stages {
        Stages(
            journey
                .stages
                .iter()
                .map(|stage| {
                    let reads = stage
                        .exit_criteria
                        .iter()
                        .flat_map(|criterion| {
                            stage
                                .handoff_fields
                                .iter()
                                .filter(|field| criterion.reads(field))
                                .map(|field| (criterion.name.clone(), field.clone()))
                        })
                        .collect();
                    let text = StageText {
                        name: stage.name.clone(),
                        owner_role: stage.owner_role.clone(),
                        criteria: stage.exit_criteria.iter().map(|c| c.name.clone()).collect(),
                        reads,
                    };
                    (stage.id.clone(), text)
                })
                .collect(),
        )
    }

    /// The role accountable at `stage`.
    pub fn role(&self, stage: &StageId) -> Option<&RoleId> {
        self.0.get(stage).map(|s| &s.owner_role)
    }

    fn name<'a>(&'a self, stage: &'a StageId) -> &'a str {
        self.0.get(stage).map_or(stage.as_str(), |s| &s.name)
    }
}

impl Facts for Stages {
    fn reads(&self, stage: &StageId, criterion: &str, field: &str) -> bool {
        self.0.get(stage).is_some_and(|stage| {
            stage
                .reads
                .iter()
                .any(|(c, f)| c == criterion && f == field)
        })
    }
}

/// The record's name, or its id.
pub fn record_label(name: Option<&str>, id: &RecordId) -> String {
    match name {
        Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => id.to_string(),
    }
}

/// The subject of one violation's task.
pub fn violation_subject(rule: &RuleId, record: &str) -> String {
    format!("[journeyd] {rule}: {record}")
}

/// The text of one violation's task: its message, what to do about it,
/// and which check it is.
pub fn violation_body(row: &ViolationRow) -> String {
    let violation = &row.violation;
    let mut body = format!(
        "{}\n\nWhat to do: {}\n\nJourney check `{}` (severity {}",
        violation.message,
        advice(&violation.rule),
        violation.rule,
        violation.severity
    );
    if let Some(stage) = &violation.stage {
        body.push_str(&format!(", stage {stage}"));
    }
    body.push_str("); this task closes itself once the check passes.");
    body
}

/// The subject of a record's task: the record and how many checks it
/// fails; `disambiguate` adds the object and id, for a record whose name
/// another open task already carries.
pub fn record_subject(
    record: &str,
    object: ObjectKind,
    id: &RecordId,
    count: usize,
    disambiguate: bool,
) -> String {
    let checks = if count == 1 { "check" } else { "checks" };
    let mut subject = format!("[journeyd] {record}: {count} journey {checks} to fix");
    if disambiguate && record != id.as_str() {
        subject.push_str(&format!(" ({object} {id})"));
    }
    subject
}

/// The text of a record's task: a checklist of `violations` (most severe
/// first), then the exit criteria of `stage`.
pub fn record_body(
    record: &str,
    object: ObjectKind,
    violations: &[ViolationRow],
    stages: &Stages,
    stage: Option<&StageId>,
) -> String {
    let count = violations.len();
    let checks = if count == 1 { "check" } else { "checks" };
    let mut body = format!(
        "{record} ({object}) fails {count} journey {checks}. Each item is one thing to fix; journeyd updates this task when they change and completes it once none is left.\n"
    );
    // Two checks that flag one missing fact are one thing to fix.
    for entry in entries(stages, violations) {
        let v = &entry.first().violation;
        let titles: Vec<String> = entry
            .rows
            .iter()
            .enumerate()
            .map(|(at, row)| {
                let title = title(&row.violation.rule);
                match at {
                    0 => title,
                    // Within the sentence the first title began.
                    _ => lower_first(&title),
                }
            })
            .collect();
        body.push_str(&format!(
            "\n[ ] {} ({}",
            titles.join(", and "),
            entry.severity()
        ));
        if let Some(stage) = &v.stage {
            body.push_str(&format!(", stage {}", stages.name(stage)));
        }
        body.push_str(&format!(
            "): {}\n    What to do: {}\n",
            entry.message(),
            advice(&v.rule)
        ));
    }
    if let Some(stage) = stage.and_then(|id| stages.0.get(id))
        && !stage.criteria.is_empty()
    {
        body.push_str(&format!(
            "\nBefore it leaves stage {}, the record needs:\n",
            stage.name
        ));
        for criterion in &stage.criteria {
            body.push_str(&format!("- {}\n", criterion.replace('_', " ")));
        }
    }
    body.trim_end().to_owned()
}

/// The priority a task of violations of `severity` at most gets.
pub fn priority(severity: Severity) -> journeyd_connector::Priority {
    use journeyd_connector::Priority;
    match severity {
        Severity::High => Priority::High,
        Severity::Medium => Priority::Normal,
        Severity::Low => Priority::Low,
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// A rule's name as a person reads it.
fn title(rule: &RuleId) -> String {
    let Some(rule) = BuiltinRule::parse(rule.as_str()) else {
        return rule.as_str().replace('_', " ");
    };
    match rule {
        BuiltinRule::MissingOwner => "No accountable owner",
        BuiltinRule::OwnerRoleMismatch => "Owner in the wrong role",
        BuiltinRule::ExitCriteriaUnmet => "Exit criteria not met",
        BuiltinRule::StageSkipped => "Stage skipped",
        BuiltinRule::Stalled => "Stalled",
        BuiltinRule::HandoffIncomplete => "Handoff without the data the next owner needs",
        BuiltinRule::UnmappedStage => "Stage not in the journey",
        BuiltinRule::LifecycleMismatch => "Lifecycle status out of step",
        BuiltinRule::DuplicateRecord => "Possible duplicate",
        BuiltinRule::MissingOnboardingTask => "No onboarding task",
    }
    .to_owned()
}

fn advice(rule: &RuleId) -> String {
    let Some(rule) = BuiltinRule::parse(rule.as_str()) else {
        return format!("fix the record so that the rule `{rule}` no longer applies.");
    };
    match rule {
        BuiltinRule::MissingOwner => "assign an active owner to the record.",
        BuiltinRule::OwnerRoleMismatch => {
            "hand the record to an owner in the role accountable for its stage."
        }
        BuiltinRule::ExitCriteriaUnmet => {
            "complete what the earlier stage required, or move the record back to the stage it is really in."
        }
        BuiltinRule::StageSkipped => {
            "record what was done in the skipped stage, or move the record back to it."
        }
        BuiltinRule::Stalled => "move the record forward, close it, or note why it is waiting.",
        BuiltinRule::HandoffIncomplete => "fill in the data the next owner needs.",
        BuiltinRule::UnmappedStage => "ask the journeyd admin to map this stage.",
        BuiltinRule::LifecycleMismatch => "set the lifecycle status to match the journey stage.",
        BuiltinRule::DuplicateRecord => "merge the duplicate records, or mark which one is right.",
        BuiltinRule::MissingOnboardingTask => "create the onboarding task and plan the kickoff.",
    }
    .to_owned()
}
