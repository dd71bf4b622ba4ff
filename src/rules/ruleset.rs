//! Runs every enabled rule on one record and turns each finding into a
//! [`Violation`] with its fingerprint, severity and planned action.

use crate::config::{Checks, Config, ConnectorConfig, CustomRule};
use crate::journey::expr::{RecordKeys, Scope};
use crate::journey::record::cel_now;
use crate::journey::{Journey, JourneyRecord, RoleId, StageId};
use crate::rules::violation::{
    ActionKind, BuiltinRule, DAYS_IN_STAGE, Fingerprint, PlannedAction, RuleId, Severity, Violation,
};
use crate::rules::{
    custom, duplicate_record, exit_criteria, handoff, lifecycle, onboarding, owner, stage_history,
    stalled,
};
use chrono::{DateTime, NaiveDate, Utc};
use journeyd_connector::RecordId;
use std::cell::OnceCell;
use std::collections::BTreeMap;

/// Another record that shares a duplicate key (email or web domain) with the
/// one being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: RecordId,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The shared normalized email or domain.
    pub key: String,
}

/// What a rule found, before it is dressed as a violation.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The stage the problem belongs to; part of the fingerprint.
    pub stage: Option<StageId>,
    /// The role accountable at that stage.
    pub owner_role: Option<RoleId>,
    pub message: String,
    /// For `set_lifecycle`: the field and value that would fix it.
    pub set_field: Option<(String, String)>,
}

impl Finding {
    pub fn new(stage: Option<&StageId>, owner_role: Option<&RoleId>, message: String) -> Self {
        Finding {
            stage: stage.cloned(),
            owner_role: owner_role.cloned(),
            message,
            set_field: None,
        }
    }
}

/// The result of evaluating one record: its violations, the expressions
/// that could not be evaluated on it (counted, not fatal), and when time
/// alone may change them.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub violations: Vec<Violation>,
    pub expression_errors: Vec<String>,
    /// The first org date on which the same record may break other rules
    /// because days passed (it stalls, an onboarding task falls due) or
    /// because an expression read the clock (then the evaluation's own
    /// date: every later evaluation may differ). `None` when only a change
    /// to the record can.
    pub recheck_on: Option<NaiveDate>,
}

/// Everything the rules need from the config, borrowed for one audit.
pub struct RuleSet<'a> {
    pub journey: &'a Journey,
    pub checks: &'a Checks,
    pub custom: &'a [CustomRule],
    pub actions: &'a BTreeMap<RuleId, ActionKind>,
    /// The keys of `record` the criteria and custom rules can read.
    keys: RecordKeys,
}

/// The CEL scope of one record, built on first use: most records of a
/// healthy CRM need no expression at all.
pub struct LazyScope<'r> {
    record: &'r JourneyRecord,
    keys: &'r RecordKeys,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    scope: OnceCell<Scope>,
}

impl LazyScope<'_> {
    pub fn get(&self) -> &Scope {
        self.scope.get_or_init(|| {
            Scope::new(
                self.record.to_cel(self.now, self.tz, self.keys),
                cel_now(self.now),
            )
        })
    }

    /// Whether an expression evaluated so far read the clock.
    fn clock_read(&self) -> bool {
        self.scope.get().is_some_and(Scope::clock_read)
    }
}

impl<'a> RuleSet<'a> {
    pub fn from_config(config: &'a Config) -> Self {
        RuleSet::new(
            &config.journey,
            &config.checks,
            &config.custom_rules,
            &config.writeback.actions,
        )
    }

    pub fn new(
        journey: &'a Journey,
        checks: &'a Checks,
        custom: &'a [CustomRule],
        actions: &'a BTreeMap<RuleId, ActionKind>,
    ) -> Self {
        let criteria = journey
            .stages
            .iter()
            .flat_map(|stage| &stage.exit_criteria)
            .map(|criterion| &criterion.expr);
        let keys = RecordKeys::of(criteria.chain(custom.iter().map(|rule| &rule.condition)));
        RuleSet {
            journey,
            checks,
            custom,
            actions,
            keys,
        }
    }

    /// Runs every enabled rule on `record`. `connector` is the config of the
    /// connector the record came from; `peers` are its duplicate candidates.
    pub fn evaluate(
        &self,
        connector: &ConnectorConfig,
        record: &JourneyRecord,
        peers: &[Peer],
        now: DateTime<Utc>,
    ) -> Evaluation {
        let mut out = Evaluation::default();
        let scope = LazyScope {
            record,
            keys: &self.keys,
            now,
            tz: self.journey.timezone,
            scope: OnceCell::new(),
        };
        let journey = self.journey;
        let mut builtin = |rule: BuiltinRule, findings: Vec<Finding>| {
            for finding in findings {
                let violation = self.violation(
                    rule.id(),
                    self.checks.severity_of(rule),
                    rule.default_action(),
                    record,
                    finding,
                );
                out.violations.push(violation);
            }
        };
        let enabled = |rule| self.checks.enabled(rule);
        let today = now.with_timezone(&journey.timezone).date_naive();
        let mut recheck_on = None;
        if record.in_journey {
            if enabled(BuiltinRule::MissingOwner) {
                builtin(
                    BuiltinRule::MissingOwner,
                    owner::missing_owner(journey, record),
                );
            }
            if enabled(BuiltinRule::OwnerRoleMismatch) {
                builtin(
                    BuiltinRule::OwnerRoleMismatch,
                    owner::owner_role_mismatch(journey, record),
                );
            }
            if enabled(BuiltinRule::UnmappedStage) {
                builtin(
                    BuiltinRule::UnmappedStage,
                    stage_history::unmapped_stage(record),
                );
            }
            if enabled(BuiltinRule::ExitCriteriaUnmet) {
                let (findings, errors) =
                    exit_criteria::exit_criteria_unmet(journey, record, &scope);
                builtin(BuiltinRule::ExitCriteriaUnmet, findings);
                out.expression_errors.extend(errors);
            }
            if enabled(BuiltinRule::StageSkipped) {
                builtin(
                    BuiltinRule::StageSkipped,
                    stage_history::stage_skipped(journey, record),
                );
            }
            if enabled(BuiltinRule::Stalled) {
                builtin(BuiltinRule::Stalled, stalled::stalled(journey, record, now));
                recheck_on = stalled::stalls_on(journey, record, today);
            }
            if enabled(BuiltinRule::HandoffIncomplete) {
                builtin(
                    BuiltinRule::HandoffIncomplete,
                    handoff::handoff_incomplete(journey, record),
                );
            }
            if enabled(BuiltinRule::LifecycleMismatch) {
                builtin(
                    BuiltinRule::LifecycleMismatch,
                    lifecycle::lifecycle_mismatch(journey, connector.lifecycle.as_ref(), record),
                );
            }
            if let Some(check) = &self.checks.onboarding
                && enabled(BuiltinRule::MissingOnboardingTask)
            {
                builtin(
                    BuiltinRule::MissingOnboardingTask,
                    onboarding::missing_onboarding_task(journey, check, record, now),
                );
                let due = onboarding::due_on(journey, check, record, today);
                recheck_on = recheck_on.into_iter().chain(due).min();
            }
        }
        if enabled(BuiltinRule::DuplicateRecord) {
            builtin(
                BuiltinRule::DuplicateRecord,
                duplicate_record::duplicate_record(journey, record, peers),
            );
        }
        for rule in self.custom {
            match custom::custom_rule(journey, rule, record, &scope) {
                Ok(Some(finding)) => {
                    let violation = self.violation(
                        rule.id.clone(),
                        rule.severity,
                        rule.action,
                        record,
                        finding,
                    );
                    out.violations.push(violation);
                }
                Ok(None) => {}
                Err(error) => out.expression_errors.push(error),
            }
        }
        if scope.clock_read() {
            recheck_on = Some(today);
        }
        out.recheck_on = recheck_on;
        out
    }

    fn violation(
        &self,
        rule: RuleId,
        severity: Severity,
        default_action: ActionKind,
        record: &JourneyRecord,
        finding: Finding,
    ) -> Violation {
        // The accountable owner is the record's, unless they are inactive.
        let owner_id = record
            .owner
            .as_ref()
            .filter(|o| o.active != Some(false))
            .map(|o| o.id.clone());
        let kind = self.actions.get(&rule).copied().unwrap_or(default_action);
        let action = match (kind, finding.set_field) {
            (ActionKind::Task, _) => PlannedAction::Task {
                subject: format!("Journey check: {rule} on {}", record.label()),
                owner_id: owner_id.clone(),
            },
            (ActionKind::SetLifecycle, Some((field, value))) => {
                PlannedAction::SetLifecycle { field, value }
            }
            // A rule configured to set the lifecycle that has no value to set
            // (nothing maps to the record's stage) can only be logged.
            (ActionKind::SetLifecycle, None) | (ActionKind::None, _) => PlannedAction::None,
        };
        Violation {
            fingerprint: Fingerprint::of(
                &record.connector,
                record.object,
                &record.id,
                &rule,
                finding.stage.as_ref(),
            ),
            connector: record.connector.clone(),
            object: record.object,
            record_id: record.id.clone(),
            record_name: record.name.clone(),
            record_url: record.url.clone(),
            rule,
            severity,
            stage: finding.stage,
            owner_id,
            owner_role: finding.owner_role,
            stage_since: finding
                .message
                .contains(DAYS_IN_STAGE)
                .then(|| record.stage_entered_on(self.journey.timezone))
                .flatten(),
            message: finding.message,
            action,
        }
    }
}

/// The stage a record is in, with its index, where it is mapped.
pub fn current_stage<'j>(
    journey: &'j Journey,
    record: &JourneyRecord,
) -> Option<(usize, &'j crate::journey::Stage)> {
    let (_, index) = record.stage.mapped()?;
    journey.stages.get(index).map(|stage| (index, stage))
}
