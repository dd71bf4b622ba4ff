//! `journey.toml`: the journey's name, roles and stages, each stage's owner,
//! time limit, exit criteria (compiled here, once) and handoff fields.

use super::{Checker, Known, Seen, backticked, first_seen, label};
use crate::config::diagnostic::lowercase_first;
use crate::config::document::ROOT;
use crate::config::raw::{RawJourney, RawStage};
use crate::journey::record::ATTRIBUTES;
use crate::journey::{Criterion, Expr, Journey, RoleId, Stage, StageId};
use std::collections::BTreeSet;

pub(super) fn journey(raw: &RawJourney, check: &mut Checker<'_>) -> (Journey, Known) {
    let name = check
        .require(&raw.name, &ROOT, "name", "", "the journey's display name")
        .map(|name| name.get_ref().clone())
        .unwrap_or_default();

    let mut known = Known::default();
    let mut roles = Vec::new();
    if let Some(raw_roles) = check.require(
        &raw.roles,
        &ROOT,
        "roles",
        "",
        "the roles accountable for stages, e.g. `roles = [\"marketing\", \"sales\"]`",
    ) {
        if raw_roles.get_ref().is_empty() {
            check.error(
                raw_roles.span().start,
                "`roles` is empty: name every role accountable for a stage",
            );
        }
        let mut seen = Seen::new();
        for role in raw_roles.get_ref() {
            if let Some(first) = first_seen(&mut seen, role) {
                let line = check.line_of(first.start);
                check.error(
                    role.span().start,
                    format!(
                        "duplicate role `{}` (first given on line {line})",
                        role.get_ref()
                    ),
                );
                continue;
            }
            known.roles.push(role.get_ref().clone());
            if check.identifier(role, "", "role", false) {
                roles.push(RoleId::new(role.get_ref()));
            }
        }
    }

    let mut stages = Vec::new();
    match &raw.stage {
        None => check.error(
            ROOT.start,
            "the journey has no stages: add a `[[stage]]` table for each buyer decision",
        ),
        Some(raw_stages) if raw_stages.get_ref().is_empty() => check.error(
            raw_stages.span().start,
            "the journey has no stages: add a `[[stage]]` table for each buyer decision",
        ),
        Some(raw_stages) => {
            let mut seen = Seen::new();
            for raw_stage in raw_stages.get_ref() {
                if let Some(id) = &raw_stage.get_ref().id {
                    if let Some(first) = first_seen(&mut seen, id) {
                        let line = check.line_of(first.start);
                        check.error(
                            id.span().start,
                            format!(
                                "duplicate stage id `{}` (first defined on line {line})",
                                id.get_ref()
                            ),
                        );
                    } else {
                        known.stages.push(id.get_ref().clone());
                    }
                }
            }
            for (index, raw_stage) in raw_stages.get_ref().iter().enumerate() {
                let span = raw_stage.span();
                if let Some(stage) = stage(raw_stage.get_ref(), &span, index, &known, check) {
                    stages.push(stage);
                }
            }
        }
    }
    (
        Journey {
            name,
            roles,
            stages,
            // The daemon config's `[schedule] timezone`, set once both files are read.
            timezone: chrono_tz::UTC,
        },
        known,
    )
}

fn stage(
    raw: &RawStage,
    table: &std::ops::Range<usize>,
    index: usize,
    known: &Known,
    check: &mut Checker<'_>,
) -> Option<Stage> {
    let context = label("stage", raw.id.as_ref(), index);
    let id = check.require(
        &raw.id,
        table,
        "id",
        &context,
        "a stable stage id such as `decision`",
    );
    let id = id.filter(|id| check.identifier(id, "", "stage id", false));
    let name = check.require(
        &raw.name,
        table,
        "name",
        &context,
        "the stage's display name",
    );
    let owner_role = check.require(
        &raw.owner_role,
        table,
        "owner_role",
        &context,
        "the one role accountable for the stage",
    );
    let owner_role = owner_role.filter(|role| {
        let ok = known.has_role(role.get_ref());
        if !ok {
            check.error(
                role.span().start,
                format!(
                    "{context}owner role `{}` is not one of the journey's roles ({})",
                    role.get_ref(),
                    known.role_list()
                ),
            );
        }
        ok
    });
    // `None` when the limit is invalid; `Some(None)` when there is none.
    let max_days = match &raw.max_days {
        None => Some(None),
        Some(days) => check.count(days, 1, &context, "max_days").map(Some),
    };

    let mut exit_criteria = Vec::new();
    let mut seen = Seen::new();
    for (position, criterion) in raw.exit_criteria.iter().enumerate() {
        let span = criterion.span();
        let criterion = criterion.get_ref();
        let name = check.require(
            &criterion.name,
            &span,
            "name",
            &format!("{context}criterion {}: ", position + 1),
            "a short name such as `budget_confirmed`",
        );
        let name = name.filter(|name| {
            if let Some(first) = first_seen(&mut seen, name) {
                let line = check.line_of(first.start);
                check.error(
                    name.span().start,
                    format!(
                        "{context}duplicate criterion `{}` (first defined on line {line})",
                        name.get_ref()
                    ),
                );
                return false;
            }
            check.identifier(name, &context, "criterion name", false)
        });
        let criterion_context = match &criterion.name {
            Some(name) => format!("{context}criterion `{}`", name.get_ref()),
            None => format!("{context}criterion {}", position + 1),
        };
        let expr = check.require(
            &criterion.expr,
            &span,
            "expr",
            &format!("{criterion_context}: "),
            "a CEL expression over `record`, such as `has(record.email)`",
        );
        let expr = expr.and_then(|expr| match Expr::compile(expr.get_ref()) {
            Ok(compiled) => Some(compiled),
            Err(error) => {
                let at = check.inside(expr, error.offset.unwrap_or(0));
                check.error(
                    at,
                    format!(
                        "{criterion_context} does not compile: {}",
                        lowercase_first(&error.message)
                    ),
                );
                None
            }
        });
        if let (Some(name), Some(expr)) = (name, expr) {
            exit_criteria.push(Criterion {
                name: name.get_ref().clone(),
                expr,
            });
        }
    }

    Some(Stage {
        id: StageId::new(id?.get_ref()),
        name: name?.get_ref().clone(),
        owner_role: RoleId::new(owner_role?.get_ref()),
        exit_criteria,
        handoff_fields: raw
            .handoff_fields
            .iter()
            .map(|f| f.get_ref().clone())
            .collect(),
        max_days: max_days?,
    })
}

/// A handoff field must be something a record can carry: an attribute, or a
/// canonical name some connector's field map produces. Anything else would
/// make every handoff incomplete.
pub(super) fn handoff_fields(
    raw: &RawJourney,
    canonical: &BTreeSet<String>,
    check: &mut Checker<'_>,
) {
    let Some(stages) = &raw.stage else { return };
    for (index, stage) in stages.get_ref().iter().enumerate() {
        let stage = stage.get_ref();
        let context = label("stage", stage.id.as_ref(), index);
        for field in &stage.handoff_fields {
            let name = field.get_ref();
            if ATTRIBUTES.contains(&name.as_str()) || canonical.contains(name) {
                continue;
            }
            let canonical: Vec<&String> = canonical.iter().collect();
            let produced = if canonical.is_empty() {
                "no connector maps any field".to_owned()
            } else {
                format!("connectors map {}", backticked(&canonical))
            };
            check.error(
                field.span().start,
                format!(
                    "{context}handoff field `{name}` is neither a record attribute ({}) nor a canonical field ({produced})",
                    backticked(&ATTRIBUTES)
                ),
            );
        }
    }
}
