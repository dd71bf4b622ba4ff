//! Planning a write-back run: every write the violations log calls for
//! now, judged against the policy, the ledger and who can take a task; the
//! first that fit in the run's room, in the order the cap keeps; and the
//! rest counted. The store is read a page at a time, so planning takes
//! memory for the room and a page, whatever the size of the log.
//!
//! With `tasks = "per_record"` each record with open violations calling for
//! a task gets one task listing them all: created, updated when they
//! change, completed when none is left; and tasks an earlier mode made for
//! single violations are completed. With `tasks = "per_violation"` each
//! violation gets its own task, completed when it is resolved, and
//! records' tasks are completed. Field writes are per violation in both.

use super::keys::{
    completion_key, record_close_key, record_fingerprint, record_task_key, record_update_key,
};
use super::owners::{Assignee, Fallbacks, RecordOwner};
use super::policy::{Verdict, completion, judge};
use super::task_text::{Stages, priority, record_body, record_label, record_subject};
use super::{LISTED, MAX_ATTEMPTS};
use crate::config::{ConnectorConfig, TaskMode, WritebackPolicy};
use crate::journey::{RoleId, StageId};
use crate::rules::{Fingerprint, RuleId};
use crate::store::{
    LedgerEntry, LedgerState, PlanClass, RecordTaskCandidate, RecordTaskStage, StagedWrite, Store,
    StoreError, ViolationTask, WriteCandidate, WriteClass, WritebackFilter,
};
use chrono::{Days, NaiveDate};
use journeyd_connector::{ActionKey, ActionRequest, ObjectKind, OwnerId, RecordId};
use serde::Serialize;
use std::collections::HashMap;

/// Rows the planner reads per store query: with the room, what bounds the
/// memory of planning.
pub(super) const PAGE: usize = 500;

/// The rule name the writes of a record's task carry; `rules` names the
/// checks the task lists.
pub const RECORD_TASK_RULE: &str = "journey_checks";

/// One write, with what an admin needs to read about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    pub request: ActionRequest,
    /// The violation's fingerprint; for a record's task, the record's.
    pub fingerprint: Fingerprint,
    pub object: ObjectKind,
    pub record_id: RecordId,
    /// The record's name, or its id.
    pub record: String,
    /// Who a task is for.
    pub owner_id: Option<OwnerId>,
    /// Their name, where the store knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Why the task goes to a fallback owner rather than the record's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    pub rule: RuleId,
    /// The checks a record's task lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleId>,
    pub message: String,
    /// Times it was sent before (a retry when above 0).
    pub attempts: u32,
    /// How the ledger records it.
    #[serde(skip)]
    pub(super) task_key: Option<ActionKey>,
    #[serde(skip)]
    pub(super) record_task: Option<RecordTaskStage>,
}

impl PlannedWrite {
    /// The write as the ledger records it before it is sent.
    pub fn staged(&self) -> StagedWrite {
        let mut staged = StagedWrite::plain(self.request.clone(), self.fingerprint.clone());
        if self.task_key.is_some() {
            staged.task_key = self.task_key.clone();
        }
        staged.record_task = self.record_task.clone();
        staged
    }
}

/// A write the policy does not allow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotAllowed {
    pub fingerprint: Fingerprint,
    pub record: String,
    pub rule: RuleId,
    pub reason: String,
}

/// A task nobody can take: not created, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unassigned {
    pub object: ObjectKind,
    pub record_id: RecordId,
    pub record: String,
    /// The checks the task would list.
    pub rules: Vec<RuleId>,
    pub reason: String,
}

/// A write that failed [`MAX_ATTEMPTS`] times and is to be parked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToPark {
    pub key: ActionKey,
    pub attempts: u32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// To send this run, at most the run's room (`max_writes_per_run`, less
    /// what recovery sent again): most severe first, completions last.
    /// Empty in an applied run's report, which lists them as written or
    /// refused instead (`counts.planned` stays).
    pub writes: Vec<PlannedWrite>,
    /// Writes over the cap: they wait for the next run.
    pub deferred: u64,
    /// Writes that failed [`MAX_ATTEMPTS`] times: the first [`LISTED`].
    pub to_park: Vec<ToPark>,
    /// How many writes are to park.
    pub to_park_count: u64,
    /// Writes the policy does not allow: the first [`LISTED`].
    pub not_allowed: Vec<NotAllowed>,
    /// How many writes the policy does not allow.
    pub not_allowed_count: u64,
    /// Writes the ledger holds already: applied, in flight, or parked.
    pub known: u64,
    /// One task per record or per violation.
    pub tasks: TaskMode,
    /// Tasks nobody can take (no active owner, no fallback owner): not
    /// created; the first [`LISTED`].
    pub unassigned: Vec<Unassigned>,
    /// How many tasks nobody can take.
    pub unassigned_count: u64,
}

/// What a plan is made from.
pub struct Planning<'a> {
    pub connector: &'a ConnectorConfig,
    pub policy: &'a WritebackPolicy,
    pub stages: &'a Stages,
    pub today: NaiveDate,
    /// Writes this run may still send.
    pub room: u64,
}

/// Plans a write-back run of `input.connector`; see the module docs.
pub fn plan(store: &Store, input: &Planning<'_>) -> Result<Plan, StoreError> {
    plan_paged(store, input, PAGE)
}

pub(super) fn plan_paged(
    store: &Store,
    input: &Planning<'_>,
    page: usize,
) -> Result<Plan, StoreError> {
    let owners = store.owners(&input.connector.name)?;
    let mut planner = Planner {
        store,
        input,
        page,
        fallbacks: Fallbacks::resolve(
            &input.connector.name,
            &input.connector.fallback_owners,
            &owners,
        ),
        out: Plan {
            tasks: input.policy.tasks,
            ..Plan::default()
        },
    };
    drop(owners);
    let per_record = input.policy.tasks == TaskMode::PerRecord;
    planner.record_tasks(per_record)?;
    planner.violation_writes(!per_record)?;
    if per_record {
        planner.violation_tasks_to_close()?;
    } else {
        planner.resolved_completions()?;
    }
    planner.refused_and_exhausted()?;
    Ok(planner.out)
}

/// Where a write stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Never sent.
    New,
    /// Failed fewer times than the limit: to send again.
    Retry { attempts: u32 },
    /// Sent, unconfirmed; applied; parked; or failed too often.
    Settled,
}

fn standing(entry: Option<&LedgerEntry>) -> Standing {
    match entry {
        None => Standing::New,
        Some(entry) => match entry.state {
            LedgerState::Failed if entry.attempts < MAX_ATTEMPTS => Standing::Retry {
                attempts: entry.attempts,
            },
            _ => Standing::Settled,
        },
    }
}

fn applied(entry: Option<&LedgerEntry>) -> bool {
    entry.is_some_and(|e| e.state == LedgerState::Applied)
}

struct Planner<'a> {
    store: &'a Store,
    input: &'a Planning<'a>,
    page: usize,
    fallbacks: Fallbacks,
    out: Plan,
}

/// The policy as the store's queries sort writes by it.
fn filter(policy: &WritebackPolicy, violation_tasks: bool) -> WritebackFilter<'_> {
    WritebackFilter {
        task_objects: &policy.task_objects,
        fields: &policy.fields,
        max_attempts: MAX_ATTEMPTS,
        violation_tasks,
    }
}

impl Planner<'_> {
    /// Reads `fetch` a page at a time, each starting after the `cursor` of
    /// the last row of the one before, to the end, and hands every page to
    /// `each`: memory for a page, whatever the size of the store.
    fn paged<T, C>(
        &mut self,
        fetch: impl Fn(&Store, Option<&C>, usize) -> Result<Vec<T>, StoreError>,
        cursor: impl Fn(&T) -> C,
        mut each: impl FnMut(&mut Self, &[T]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut after: Option<C> = None;
        loop {
            let page = fetch(self.store, after.as_ref(), self.page)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(cursor(last));
            let full = page.len() == self.page;
            each(self, &page)?;
            if !full {
                return Ok(());
            }
        }
    }

    fn has_room(&self) -> bool {
        (self.out.writes.len() as u64) < self.input.room
    }

    /// Takes `write` if the run has room for it, else counts it deferred.
    fn take(
        &mut self,
        write: impl FnOnce(&Self) -> Result<PlannedWrite, StoreError>,
    ) -> Result<(), StoreError> {
        if self.has_room() {
            let write = write(self)?;
            self.out.writes.push(write);
        } else {
            self.out.deferred += 1;
        }
        Ok(())
    }

    fn unassigned(
        &mut self,
        entry: impl FnOnce(&Self) -> Result<Unassigned, StoreError>,
    ) -> Result<(), StoreError> {
        self.out.unassigned_count += 1;
        if self.out.unassigned.len() < LISTED {
            let entry = entry(self)?;
            self.out.unassigned.push(entry);
        }
        Ok(())
    }

    fn due(&self) -> NaiveDate {
        let today = self.input.today;
        today
            .checked_add_days(Days::new(u64::from(self.input.policy.task_due_days)))
            .unwrap_or(today)
    }

    /// The role accountable at journey stage `stage`.
    fn role_of(&self, stage: Option<&str>) -> Option<RoleId> {
        self.input.stages.role(&StageId::new(stage?)).cloned()
    }

    // One task per record.

    /// Every record whose task may need a write: with open violations
    /// calling for a task (when `wanted`), or with an open task.
    ///
    /// The plan keeps what each record's task needs between plans
    /// ([`crate::store::PlanClass`]). While the config and owners are
    /// those it was judged under, only the records changed since are
    /// judged again, and the rest is read from what it kept: the writes to
    /// send now, in order, are then gathered and decided again as they are.
    fn record_tasks(&mut self, wanted: bool) -> Result<(), StoreError> {
        let input = self.input;
        let (name, objects) = (&input.connector.name, &input.policy.task_objects);
        let scope = self.store.begin_plan(name, &basis_digest(input))?;
        self.store
            .gather_record_task_candidates(name, objects, wanted, !scope.whole)?;
        let mut complete = true;
        self.paged(
            |store, after, limit| store.record_task_candidates(after, limit),
            RecordTaskCandidate::cursor,
            |planner, page| {
                let writes = planner.task_writes(page)?;
                let mut classes = Vec::with_capacity(page.len());
                for candidate in page {
                    let plan = planner.record_plan(candidate)?;
                    let need = need(&plan, &writes);
                    match (candidate.record_rowid, need.class()) {
                        (Some(rowid), Some(class)) => {
                            classes.push((rowid, class, candidate.rank()));
                        }
                        (None, Some(_)) => complete = false,
                        (_, None) => {}
                    }
                    if scope.whole {
                        planner.record_task(candidate, plan, need)?;
                    }
                }
                planner.store.note_plan_classes(&classes)
            },
        )?;
        self.store.keep_plan(name, &scope, complete)?;
        if !scope.whole {
            self.plan_kept(wanted)?;
        }
        Ok(())
    }

    /// The ledger's writes of the tasks of `page`'s records.
    fn task_writes(
        &self,
        page: &[RecordTaskCandidate],
    ) -> Result<HashMap<ActionKey, LedgerEntry>, StoreError> {
        let keys: Vec<ActionKey> = page
            .iter()
            .filter_map(|c| c.task.as_ref().map(|t| t.task_key.clone()))
            .collect();
        Ok(self
            .store
            .task_writes(&keys)?
            .into_iter()
            .map(|entry| (entry.key.clone(), entry))
            .collect())
    }

    /// Plans from the kept classes: the writes this run has room for and
    /// the first tasks nobody can take, each gathered and decided again;
    /// the rest counted.
    fn plan_kept(&mut self, wanted: bool) -> Result<(), StoreError> {
        let name = &self.input.connector.name;
        let counts = self.store.plan_counts(name)?;
        self.out.known += counts.known;
        let read = self.kept(PlanClass::Write, wanted, |p| {
            p.input.room.saturating_sub(p.out.writes.len() as u64)
        })?;
        self.out.deferred += counts.write.saturating_sub(read);
        let read = self.kept(PlanClass::Nobody, wanted, |p| {
            LISTED.saturating_sub(p.out.unassigned.len()) as u64
        })?;
        self.out.unassigned_count += counts.nobody.saturating_sub(read);
        Ok(())
    }

    /// Reads the records kept in `class`, as many at a time as the plan
    /// `wants` more of (at most a page), gathers them as they are now and
    /// plans each; returns how many records it read.
    fn kept(
        &mut self,
        class: PlanClass,
        wanted: bool,
        wants: impl Fn(&Self) -> u64,
    ) -> Result<u64, StoreError> {
        let input = self.input;
        let (name, objects) = (&input.connector.name, &input.policy.task_objects);
        let mut after = None;
        let mut read = 0;
        loop {
            let limit = usize::try_from(wants(self))
                .unwrap_or(usize::MAX)
                .min(self.page);
            if limit == 0 {
                break;
            }
            let page = self.store.plan_class_page(name, class, after, limit)?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            read += page.len() as u64;
            let rowids: Vec<i64> = page.iter().map(|(_, rowid)| *rowid).collect();
            self.store.pick_plan_records(&rowids)?;
            self.store
                .gather_record_task_candidates(name, objects, wanted, true)?;
            let candidates = self.store.record_task_candidates(None, page.len())?;
            let writes = self.task_writes(&candidates)?;
            for candidate in &candidates {
                let plan = self.record_plan(candidate)?;
                let need = need(&plan, &writes);
                self.record_task(candidate, plan, need)?;
            }
            if page.len() < limit {
                break;
            }
        }
        Ok(read)
    }

    /// Plans the one write `candidate`'s task needs now, if any.
    fn record_task(
        &mut self,
        candidate: &RecordTaskCandidate,
        plan: RecordPlan<'_>,
        need: Need,
    ) -> Result<(), StoreError> {
        match need {
            Need::Nothing => Ok(()),
            Need::Known => {
                self.out.known += 1;
                Ok(())
            }
            Need::Nobody => {
                let reason = plan.assignee.nobody().unwrap_or_default().to_owned();
                let name = &self.input.connector.name;
                self.unassigned(|p| {
                    let rows = p.store.record_task_violations(
                        name,
                        candidate.object,
                        &candidate.record_id,
                    )?;
                    Ok(Unassigned {
                        object: candidate.object,
                        record_id: candidate.record_id.clone(),
                        record: plan.label.clone(),
                        rules: rows.into_iter().map(|r| r.violation.rule).collect(),
                        reason,
                    })
                })
            }
            Need::Write(write, attempts) => {
                self.take(|p| p.record_task_write(&plan, write, attempts))
            }
        }
    }

    /// Who `candidate`'s task is for, and the digest of what it should say.
    fn record_plan<'c>(
        &self,
        candidate: &'c RecordTaskCandidate,
    ) -> Result<RecordPlan<'c>, StoreError> {
        let name = &self.input.connector.name;
        let label = record_label(candidate.record_name.as_deref(), &candidate.record_id);
        let owner = RecordOwner::of(
            candidate.owner_id.as_ref(),
            candidate.owner_active,
            candidate.owner_name.as_deref(),
        );
        let mut assignee = self.fallbacks.assign(
            owner.as_ref(),
            self.role_of(candidate.stage.as_deref()).as_ref(),
        );
        let wanted = candidate.severity.is_some();
        if assignee.nobody().is_some() && candidate.stage.is_none() && wanted {
            // Outside the journey's stages (an unmapped or closed stage):
            // the role its most severe violation holds accountable.
            if let Some(role) = &candidate.violation_role {
                assignee = self.fallbacks.assign(owner.as_ref(), Some(role));
            }
        }
        let digest = super::keys::digest(&[
            &candidate.items,
            assignee.owner_id().map_or("", OwnerId::as_str),
            &label,
        ]);
        Ok(RecordPlan {
            candidate,
            record: record_fingerprint(name, candidate.object, &candidate.record_id),
            label,
            assignee,
            digest,
        })
    }

    fn record_task_write(
        &self,
        plan: &RecordPlan<'_>,
        write: TaskWrite,
        attempts: u32,
    ) -> Result<PlannedWrite, StoreError> {
        let RecordPlan {
            candidate,
            record,
            label,
            assignee,
            digest,
        } = plan;
        let label = label.as_str();
        let name = &self.input.connector.name;
        let fallback = assignee.fallback_note();
        let mut planned = PlannedWrite {
            request: ActionRequest::CompleteTask {
                key: ActionKey::new(""),
                task_id: String::new(),
            },
            fingerprint: record.clone(),
            object: candidate.object,
            record_id: candidate.record_id.clone(),
            record: label.to_owned(),
            owner_id: assignee.owner_id().cloned(),
            owner: assignee.label(),
            fallback,
            rule: RuleId::new(RECORD_TASK_RULE),
            rules: Vec::new(),
            message: String::new(),
            attempts,
            task_key: None,
            record_task: None,
        };
        let (key, number, generation, task_key) = match &write {
            TaskWrite::Close { key } => {
                let task = candidate.task.as_ref();
                planned.request = ActionRequest::CompleteTask {
                    key: key.clone(),
                    task_id: task.and_then(|t| t.task_id.clone()).unwrap_or_default(),
                };
                planned.message = "no journey check is left to fix: the task is completed".into();
                planned.task_key = task.map(|t| t.task_key.clone());
                return Ok(planned);
            }
            TaskWrite::Create { generation, key } => (key.clone(), None, *generation, key.clone()),
            TaskWrite::Update {
                key,
                number,
                task_key,
                ..
            } => (
                key.clone(),
                Some(*number),
                candidate.task.as_ref().map_or(1, |t| t.generation),
                task_key.clone(),
            ),
        };
        let rows =
            self.store
                .record_task_violations(name, candidate.object, &candidate.record_id)?;
        let stage = candidate.stage.as_deref().map(StageId::new);
        let taken = self.store.record_task_subject_taken(
            name,
            &record_subject(
                label,
                candidate.object,
                &candidate.record_id,
                rows.len(),
                false,
            ),
            candidate.object,
            &candidate.record_id,
        )? || self.out.writes.iter().any(|w| {
            w.record == label
                && (w.object, &w.record_id) != (candidate.object, &candidate.record_id)
        });
        let subject = record_subject(
            label,
            candidate.object,
            &candidate.record_id,
            rows.len(),
            taken,
        );
        let body = record_body(
            label,
            candidate.object,
            &rows,
            self.input.stages,
            stage.as_ref(),
        );
        let severity = rows
            .iter()
            .map(|r| r.violation.severity)
            .max()
            .or(candidate.severity)
            .unwrap_or(crate::rules::Severity::Low);
        planned.rules = rows.iter().map(|r| r.violation.rule.clone()).collect();
        planned.message = format!(
            "{} journey check(s): {}",
            rows.len(),
            rules_counted(&planned.rules)
        );
        planned.request = match write {
            TaskWrite::Create { .. } => ActionRequest::CreateTask {
                body: key.in_text(&body),
                key,
                object: candidate.object,
                record_id: candidate.record_id.clone(),
                owner_id: assignee.owner_id().cloned(),
                subject: subject.clone(),
                due: self.due(),
                priority: priority(severity),
            },
            TaskWrite::Update { task_id, .. } => ActionRequest::UpdateTask {
                key,
                body: task_key.in_text(&body),
                task_key: task_key.clone(),
                task_id,
                owner_id: assignee.owner_id().cloned(),
                subject: subject.clone(),
                priority: priority(severity),
            },
            TaskWrite::Close { .. } => unreachable!("returned above"),
        };
        planned.task_key = Some(task_key);
        planned.record_task = Some(RecordTaskStage {
            object: candidate.object,
            record_id: candidate.record_id.clone(),
            generation,
            subject,
            digest: digest.to_owned(),
            update: number,
        });
        Ok(planned)
    }

    /// Tasks made for single violations, still open, while each record
    /// keeps one task: completed, as the record's own task replaces them.
    fn violation_tasks_to_close(&mut self) -> Result<(), StoreError> {
        let name = &self.input.connector.name;
        self.paged(
            |store, after, limit| store.open_violation_tasks(name, after, limit),
            |task| task.task_key.clone(),
            |planner, page| {
                for task in page {
                    let attempts = match &task.completion {
                        None => 0,
                        Some((state, attempts, _))
                            if state == "failed" && *attempts < MAX_ATTEMPTS =>
                        {
                            *attempts
                        }
                        Some(_) => {
                            planner.out.known += 1;
                            continue;
                        }
                    };
                    planner.take(|_| Ok(violation_task_close(task, attempts)))?;
                }
                Ok(())
            },
        )
    }

    // One write per violation.

    /// The open violations' own writes: their tasks (`tasks`), and field
    /// writes; most severe first, then by violation id.
    fn violation_writes(&mut self, tasks: bool) -> Result<(), StoreError> {
        let input = self.input;
        let name = &input.connector.name;
        let filter = filter(input.policy, tasks);
        let tally = self.store.writeback_tally(name, &filter)?;
        self.out.known += tally.known;
        self.out.not_allowed_count += tally.not_allowed;
        self.paged(
            |store, after, limit| {
                store.writeback_candidates(name, &filter, WriteClass::Due, after.copied(), limit)
            },
            WriteCandidate::cursor,
            |planner, page| {
                for candidate in page {
                    let due = planner.due();
                    match judge(candidate, input.policy, &planner.fallbacks, due) {
                        Verdict::Write(write) => planner.take(|_| Ok(*write))?,
                        // The store's sorting and the policy disagree: the
                        // policy wins, and the write is reported as refused.
                        Verdict::NotAllowed(refused) => {
                            planner.out.not_allowed_count += 1;
                            if planner.out.not_allowed.len() < LISTED {
                                planner.out.not_allowed.push(refused);
                            }
                        }
                        Verdict::Unassigned(entry) => planner.unassigned(|_| Ok(entry))?,
                        Verdict::Nothing => {}
                    }
                }
                Ok(())
            },
        )
    }

    /// The tasks of violations an audit resolved: completed.
    fn resolved_completions(&mut self) -> Result<(), StoreError> {
        let input = self.input;
        let name = &input.connector.name;
        let filter = filter(input.policy, true);
        self.paged(
            |store, after, limit| {
                store.resolved_tasks(name, &filter, WriteClass::Due, after.copied(), limit)
            },
            |task| task.violation.id,
            |planner, page| {
                for task in page {
                    planner.take(|_| Ok(completion(task)))?;
                }
                Ok(())
            },
        )
    }

    /// The first writes the policy refuses, and those to park.
    fn refused_and_exhausted(&mut self) -> Result<(), StoreError> {
        let input = self.input;
        let name = &input.connector.name;
        let more = LISTED.saturating_sub(self.out.not_allowed.len());
        if more > 0 {
            let filter = filter(input.policy, input.policy.tasks == TaskMode::PerViolation);
            let refused = self.store.writeback_candidates(
                name,
                &filter,
                WriteClass::NotAllowed,
                None,
                more,
            )?;
            for candidate in &refused {
                if let Verdict::NotAllowed(refused) =
                    judge(candidate, self.input.policy, &self.fallbacks, self.due())
                {
                    self.out.not_allowed.push(refused);
                }
            }
        }
        let (exhausted, count) = self.store.ledger_exhausted(name, MAX_ATTEMPTS, LISTED)?;
        self.out.to_park_count = count;
        self.out.to_park = exhausted
            .into_iter()
            .map(|entry| ToPark {
                key: entry.key,
                attempts: entry.attempts,
                error: entry.error,
            })
            .collect();
        Ok(())
    }
}

/// A digest of what, besides the store, decides what a record's task
/// needs: the policy's task mode and objects, the fallback owners, the
/// journey's stages and roles, and this version of journeyd. The kept
/// classes hold while it is the same.
pub(super) fn basis_digest(input: &Planning<'_>) -> String {
    let policy = input.policy;
    super::keys::digest(&[
        &format!(
            "{:?}",
            (
                policy.tasks,
                &policy.task_objects,
                &input.connector.fallback_owners,
                input.stages,
                MAX_ATTEMPTS,
            )
        ),
        env!("CARGO_PKG_VERSION"),
    ])
}

/// A record's task as this plan sees it: whom it is for and a digest of
/// what it should say.
struct RecordPlan<'c> {
    candidate: &'c RecordTaskCandidate,
    record: Fingerprint,
    label: String,
    assignee: Assignee,
    digest: String,
}

/// What a record's task needs now.
enum Need {
    Nothing,
    /// A write of it is in flight, or waits for an admin.
    Known,
    /// A create nobody can take: not sent.
    Nobody,
    /// This write, sent this many times before.
    Write(TaskWrite, u32),
}

impl Need {
    /// How the plan keeps it between plans.
    fn class(&self) -> Option<PlanClass> {
        match self {
            Need::Nothing => None,
            Need::Known => Some(PlanClass::Known),
            Need::Nobody => Some(PlanClass::Nobody),
            Need::Write(..) => Some(PlanClass::Write),
        }
    }
}

/// What a record's task needs: [`task_need`], and a create only when
/// someone can take the task.
fn need(plan: &RecordPlan<'_>, writes: &HashMap<ActionKey, LedgerEntry>) -> Need {
    match task_need(plan, writes) {
        Need::Write(TaskWrite::Create { .. }, _) if plan.assignee.nobody().is_some() => {
            Need::Nobody
        }
        need => need,
    }
}

/// Decides what a record's task needs, from its row, the ledger's
/// `writes` of it, and the digest of what it should say: one write at a
/// time per task; a create while the record has violations and no open
/// task, an update when what it should say changed, a completion when
/// nothing is left.
fn task_need(plan: &RecordPlan<'_>, writes: &HashMap<ActionKey, LedgerEntry>) -> Need {
    let candidate = plan.candidate;
    let wanted = candidate.severity.is_some();
    // A write never sent is due; one that failed is due again; any other
    // is in flight, applied or parked.
    let due = |key: &ActionKey, write: TaskWrite| match standing(writes.get(key)) {
        Standing::New => Need::Write(write, 0),
        Standing::Retry { attempts } => Need::Write(write, attempts),
        Standing::Settled => Need::Known,
    };
    let Some(task) = candidate.task.as_ref().filter(|t| t.open) else {
        if !wanted {
            return Need::Nothing;
        }
        let generation = candidate.task.as_ref().map_or(1, |t| t.generation + 1);
        let key = record_task_key(&plan.record, generation);
        return due(&key.clone(), TaskWrite::Create { generation, key });
    };
    if !applied(writes.get(&task.task_key)) || task.task_id.is_none() {
        // Opened, never confirmed: the create is retried while the record
        // still needs a task.
        let create = TaskWrite::Create {
            generation: task.generation,
            key: task.task_key.clone(),
        };
        return match due(&task.task_key, create) {
            Need::Write(..) if !wanted => Need::Nothing,
            need => need,
        };
    }
    let close_key = record_close_key(&task.task_key);
    let update_key = (task.updates > 0).then(|| record_update_key(&task.task_key, task.updates));
    let in_flight = |key: Option<&ActionKey>| {
        key.and_then(|key| writes.get(key))
            .is_some_and(|e| matches!(e.state, LedgerState::Pending | LedgerState::Sent))
    };
    if in_flight(Some(&close_key)) || in_flight(update_key.as_ref()) {
        return Need::Known;
    }
    if !wanted {
        return due(&close_key.clone(), TaskWrite::Close { key: close_key });
    }
    if task.written_digest.as_deref() == Some(plan.digest.as_str()) {
        return Need::Nothing;
    }
    let task_id = task.task_id.clone().unwrap_or_default();
    let update = |number: u32| TaskWrite::Update {
        key: record_update_key(&task.task_key, number),
        number,
        task_key: task.task_key.clone(),
        task_id: task_id.clone(),
    };
    match update_key.as_ref().map(|key| (key, writes.get(key))) {
        // The last update failed: sent again, saying what is due now.
        Some((key, entry)) if !applied(entry) => due(key, update(task.updates)),
        _ => Need::Write(update(task.updates + 1), 0),
    }
}

/// A write of a record's task.
enum TaskWrite {
    Create {
        generation: u32,
        key: ActionKey,
    },
    Update {
        key: ActionKey,
        number: u32,
        task_key: ActionKey,
        task_id: String,
    },
    Close {
        key: ActionKey,
    },
}

/// Completing a task made for one violation.
fn violation_task_close(task: &ViolationTask, attempts: u32) -> PlannedWrite {
    let fingerprint = Fingerprint::from_stored(task.fingerprint.clone());
    let record_id = task.record_id.clone().unwrap_or_else(|| RecordId::new(""));
    PlannedWrite {
        request: ActionRequest::CompleteTask {
            key: completion_key(&fingerprint),
            task_id: task.task_id.clone(),
        },
        object: task.object.unwrap_or(ObjectKind::Deal),
        record: record_label(task.record_name.as_deref(), &record_id),
        record_id,
        fingerprint,
        owner_id: None,
        owner: None,
        fallback: None,
        rule: RuleId::new(task.rule.clone().unwrap_or_else(|| RECORD_TASK_RULE.into())),
        rules: Vec::new(),
        message: "replaced by the record's one task: completed".into(),
        attempts,
        task_key: Some(task.task_key.clone()),
        record_task: None,
    }
}

/// Each rule once, in the order first named, with how many times where more
/// than once: `exit_criteria_unmet (2), handoff_incomplete`.
fn rules_counted(rules: &[RuleId]) -> String {
    let mut counted: Vec<(&RuleId, usize)> = Vec::new();
    for rule in rules {
        match counted.iter_mut().find(|(seen, _)| *seen == rule) {
            Some((_, n)) => *n += 1,
            None => counted.push((rule, 1)),
        }
    }
    counted
        .into_iter()
        .map(|(rule, n)| match n {
            1 => rule.to_string(),
            n => format!("{rule} ({n})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
