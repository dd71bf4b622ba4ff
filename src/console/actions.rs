//! An admin's changes of a violation's status from the console, the CLI's
//! lifecycle: acknowledge, suppress (until a date, if given) and reopen.
//! Each is a POST of the record page's form, carrying its token, answered
//! with a redirect back to the violation; the change is recorded in the
//! violation's history with who made it and why. A POST without a token
//! this console made is refused with 403 and changes nothing.

use super::layout;
use super::links::violation_anchor;
use super::{Console, Shared, Viewer};
use crate::store::{Store, StoreError, ViolationId};
use axum::extract::{Extension, Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use std::sync::Arc;

/// The record page's form, as posted.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// For a suppression: the last day it holds (`YYYY-MM-DD`); empty for
    /// one without end.
    #[serde(default)]
    until: String,
}

/// What an admin can do to a violation.
#[derive(Debug, Clone, Copy)]
enum Action {
    Acknowledge,
    Suppress,
    Reopen,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        match name {
            "acknowledge" => Some(Action::Acknowledge),
            "suppress" => Some(Action::Suppress),
            "reopen" => Some(Action::Reopen),
            _ => None,
        }
    }
}

/// `POST /violations/{id}/{action}`.
pub(super) async fn act(
    State(console): Shared,
    Extension(viewer): Extension<Viewer>,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return (StatusCode::NOT_FOUND, layout::missing("no such action")).into_response();
    };
    let checked = match check(&console, &viewer, &form) {
        Ok(checked) => checked,
        Err((status, why)) => return refused(status, why),
    };
    let actor = viewer.name;
    let done = tokio::task::spawn_blocking({
        let console: Arc<Console> = console.clone();
        move || change(&console, ViolationId(id), action, &actor, &checked)
    })
    .await;
    match done {
        Ok(Ok(Some(anchor))) => Redirect::to(&anchor).into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            layout::missing("no violation has this id"),
        )
            .into_response(),
        Ok(Err(StoreError::InvalidTransition { .. } | StoreError::ViolationNotFound(_))) => {
            refused(
                StatusCode::CONFLICT,
                "The violation's status does not allow this any more (someone or an audit \
                 changed it): reload the page. Nothing was changed.",
            )
        }
        Ok(Err(error)) => {
            let message = crate::telemetry::chain(&error);
            tracing::error!(error = %message, violation = id, "a console action failed");
            (StatusCode::INTERNAL_SERVER_ERROR, layout::failed(&message)).into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            layout::failed("the action stopped before it ended"),
        )
            .into_response(),
    }
}

/// `POST /violations/bulk/{action}`: the violations ticked on the list
/// (`id`, repeated; an entry's holds its violations' ids, spaced), each changed as one would be; then back to the list
/// (`back`), saying how many changed and how many their status did not
/// allow.
pub(super) async fn act_on_many(
    State(console): Shared,
    Extension(viewer): Extension<Viewer>,
    Path(action): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return (StatusCode::NOT_FOUND, layout::missing("no such action")).into_response();
    };
    let mut form = ActionForm {
        csrf: String::new(),
        reason: String::new(),
        until: String::new(),
    };
    let (mut ids, mut back) = (Vec::new(), String::from("/violations"));
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "csrf" => form.csrf = value.into_owned(),
            "reason" => form.reason = value.into_owned(),
            "until" => form.until = value.into_owned(),
            "back" if value.starts_with("/violations") => back = value.into_owned(),
            // An entry that stands for two violations ticks both.
            "id" => {
                for id in value.split_whitespace() {
                    match id.parse::<i64>() {
                        Ok(id) => ids.push(ViolationId(id)),
                        Err(_) => {
                            return refused(
                                StatusCode::BAD_REQUEST,
                                "A ticked id is not a number. Nothing was changed.",
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let checked = match check(&console, &viewer, &form) {
        Ok(checked) => checked,
        Err((status, why)) => return refused(status, why),
    };
    if ids.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Tick the violations to change first. Nothing was changed.",
        );
    }
    let actor = viewer.name;
    let done = tokio::task::spawn_blocking(move || -> Result<(usize, usize), StoreError> {
        let mut store = Store::open(console.readers.path())?;
        let now = Utc::now();
        let (mut changed, mut kept) = (0, 0);
        for id in ids {
            match apply(&mut store, id, action, &actor, &checked, now) {
                Ok(()) => changed += 1,
                Err(StoreError::InvalidTransition { .. } | StoreError::ViolationNotFound(_)) => {
                    kept += 1
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(
            changed,
            kept,
            actor,
            "violations' statuses changed from the console"
        );
        Ok((changed, kept))
    })
    .await;
    match done {
        Ok(Ok((changed, kept))) => {
            let mut said = url::form_urlencoded::Serializer::new(String::new());
            said.append_pair(
                "done",
                &format!(
                    "{changed} changed; {kept} left as they were (their status does not allow it)"
                ),
            );
            let join = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{back}{join}{}", said.finish())).into_response()
        }
        Ok(Err(error)) => {
            let message = crate::telemetry::chain(&error);
            tracing::error!(error = %message, "a console bulk action failed");
            (StatusCode::INTERNAL_SERVER_ERROR, layout::failed(&message)).into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            layout::failed("the action stopped before it ended"),
        )
            .into_response(),
    }
}

/// A form's reason and date, once the asker, the token and the fields
/// passed.
struct Checked {
    reason: String,
    until: Option<NaiveDate>,
}

/// Why a form is refused: the answer's status and what it says.
type Refusal = (StatusCode, &'static str);

/// Refuses a form of a viewer, without this console's token, without a
/// reason or with a date that is not one.
fn check(console: &Console, viewer: &Viewer, form: &ActionForm) -> Result<Checked, Refusal> {
    if !viewer.admin {
        return Err((
            StatusCode::FORBIDDEN,
            "Viewers cannot change a violation's status: ask an admin. Nothing was changed.",
        ));
    }
    if !console.csrf.holds(&form.csrf, Utc::now().timestamp()) {
        return Err((
            StatusCode::FORBIDDEN,
            "This form did not come from this console, or it has expired: reload the page and \
             try again. Nothing was changed.",
        ));
    }
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "Say why: the reason is kept in the violation's history. Nothing was changed.",
        ));
    }
    let until = match form.until.trim() {
        "" => None,
        day => Some(day.parse::<NaiveDate>().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "The date to suppress until is not a date (YYYY-MM-DD). Nothing was changed.",
            )
        })?),
    };
    Ok(Checked { reason, until })
}

fn apply(
    store: &mut Store,
    id: ViolationId,
    action: Action,
    actor: &str,
    checked: &Checked,
    now: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    match action {
        Action::Acknowledge => store.acknowledge(id, actor, &checked.reason, now),
        Action::Suppress => store.suppress(id, actor, &checked.reason, checked.until, now),
        Action::Reopen => store.reopen(id, actor, &checked.reason, now),
    }
}

/// Makes the change through a connection of its own; the violation's
/// place on its record page, or `None` when there is no such violation.
fn change(
    console: &Console,
    id: ViolationId,
    action: Action,
    actor: &str,
    checked: &Checked,
) -> Result<Option<String>, StoreError> {
    let mut store = Store::open(console.readers.path())?;
    let Some(row) = store.violation_by_id(id)? else {
        return Ok(None);
    };
    apply(&mut store, id, action, actor, checked, Utc::now())?;
    tracing::info!(
        violation = id.0,
        actor,
        "a violation's status changed from the console"
    );
    Ok(Some(violation_anchor(&row.violation, row.id)))
}

fn refused(status: StatusCode, why: &str) -> Response {
    (status, layout::refused(why)).into_response()
}
