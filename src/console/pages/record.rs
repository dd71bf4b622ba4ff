//! `/records/CONNECTOR/OBJECT/ID`: one record as the journey sees it (its
//! stage, owner by name and role, fields under their canonical names),
//! its stage history, its violations with their history (as the log's
//! entries: two that flag one missing fact side by side), the task
//! journeyd keeps on it, and a link that opens it in its CRM.

use super::super::Page;
use super::super::layout::{self, frame, when};
use super::super::links::crm_link;
use super::violations::stage_name;
use crate::config::Config;
use crate::journey::normalize::{OwnerIndex, normalize};
use crate::journey::record::StageRef;
use crate::log_entries::entries;
use crate::store::{Store, StoreError, TaskView, ViolationId, ViolationRow, ViolationStatus};
use chrono::Utc;
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, System};
use maud::{Markup, html};

pub(in super::super) fn render(
    store: &Store,
    config: &Config,
    token: Option<&str>,
    connector: &str,
    object: &str,
    id: &str,
) -> Result<Page, StoreError> {
    let Some(object) = ObjectKind::parse(object) else {
        return Ok(Page::Missing(format!(
            "`{object}` is not an object kind (lead, contact, account, deal)"
        )));
    };
    let connector = ConnectorName::new(connector);
    let id = RecordId::new(id);
    let Some(kept) = store.stored_record(&connector, object, &id)? else {
        return Ok(Page::Missing(format!(
            "connector {connector} holds no {object} {id}",
            object = object.as_str()
        )));
    };
    let owners = store.owner_directory()?;
    let violations = store.record_violations(&connector, object, &id)?;
    let task = store.record_task(&connector, object, &id)?;
    let mut events = std::collections::HashMap::with_capacity(violations.len());
    for row in &violations {
        events.insert(row.id, store.violation_events(row.id)?);
    }
    let history_of = |id: ViolationId| events.get(&id).map_or(&[][..], Vec::as_slice);
    let crm = kept.stored.record;
    let system = crm.system;
    let title = crm.name.clone().unwrap_or_else(|| id.to_string());
    let seen = match config.connector(&connector) {
        Some(settings) => {
            let index: OwnerIndex = store
                .owners(&connector)?
                .into_iter()
                .map(|owner| (owner.id.clone(), owner))
                .collect();
            Some(normalize(&config.journey, settings, &index, crm.clone()))
        }
        None => None,
    };
    let now = Utc::now();
    let tz = config.journey.timezone;
    let body = html! {
        p.muted {
            (connector) " · " (object.as_str()) " · " (id)
            @if let Some(deleted) = kept.deleted_at {
                " · " span.flag { "deleted in the CRM " (when(deleted)) }
            }
        }
        @if let Some(link) = crm_link(crm.url.as_deref()) {
            p { a href=(link) rel="noopener noreferrer" target="_blank" { "Open in " (crm_name(system)) } }
        } @else {
            p.muted { (crm_name(system)) " gave no link to this record." }
        }
        div.grid {
            section.card {
                h2 { "As the journey sees it" }
                @match &seen {
                    Some(record) => dl.facts {
                        dt { "Stage" }
                        dd { (stage(config, &record.stage, record.in_journey)) }
                        dt { "Days in stage" }
                        dd { (record.days_in_stage(now, tz).map_or_else(|| "–".to_owned(), |d| d.to_string())) }
                        dt { "Owner" }
                        dd {
                            (layout::owner(&owners, &connector, record.owner.as_ref().map(|o| &o.id)))
                            @if let Some(role) = record.owner.as_ref().and_then(|o| o.role.as_ref()) {
                                " · " (role)
                            }
                        }
                        @if let Some(amount) = record.amount {
                            dt { "Amount" }
                            dd { (amount) " " (record.currency.as_deref().unwrap_or("")) }
                        }
                        @if let Some(date) = record.close_date { dt { "Close date" } dd { (date) } }
                        @if let Some(email) = &record.email { dt { "Email" } dd { (email) } }
                        @if let Some(domain) = &record.domain { dt { "Domain" } dd { (domain) } }
                        dt { "Created" } dd { (when(record.created_at)) }
                        dt { "Modified" } dd { (when(record.modified_at)) }
                    },
                    None => p.muted { "The config has no connector " (connector) " any more: shown as stored." },
                }
            }
            section.card {
                h2 { "Fields" }
                @let fields = seen.as_ref().map_or_else(|| crm.fields.clone().into_iter().collect(), |r| r.fields.clone());
                @if fields.is_empty() {
                    p.muted { "None." }
                } @else {
                    dl.facts {
                        @for (name, value) in &fields {
                            dt { (name) }
                            dd { (shown(value)) }
                        }
                    }
                }
            }
        }
        h2 { "Stage history" }
        @match &seen {
            Some(record) if !record.history.is_empty() => ol.history {
                @for step in &record.history {
                    li { (when(step.at)) ": " (stage(config, &step.stage, true)) }
                }
            },
            _ => p.muted { "No stage change is known." },
        }
        h2 { "Violations" }
        @if violations.is_empty() {
            p.muted { "None: the record keeps every rule." }
        } @else {
            @for entry in entries(&config.journey, &violations) {
                @if entry.rows.len() > 1 {
                    // As the log shows it: one entry, each violation still
                    // with its own history and form.
                    section.entry {
                        p {
                            strong { "One missing fact, " (entry.rows.len()) " rules: " }
                            (entry.rules().replace('+', " and "))
                            span.muted { " (one entry on the log)" }
                        }
                        @for row in &entry.rows {
                            (violation(config, row, history_of(row.id), token))
                        }
                    }
                } @else {
                    (violation(config, entry.first(), history_of(entry.first().id), token))
                }
            }
        }
        h2 { "Task" }
        (task_view(task.as_ref()))
    };
    Ok(Page::Found(frame(&title, "", body)))
}

fn crm_name(system: System) -> &'static str {
    match system {
        System::Hubspot => "HubSpot",
        System::Salesforce => "Salesforce",
        System::Dynamics => "Dynamics 365",
    }
}

fn stage(config: &Config, stage: &StageRef, in_journey: bool) -> Markup {
    match stage {
        StageRef::Mapped { id, .. } if in_journey => {
            html! { (stage_name(config, Some(id.as_str()))) }
        }
        StageRef::Mapped { id, .. } => html! { (id) " " span.muted { "(outside the journey)" } },
        StageRef::Unmapped(native) => html! { (native) " " span.flag { "not mapped" } },
        StageRef::None => html! { span.muted { "none" } },
    }
}

/// A field's value as text: strings bare, anything else as JSON.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "–".to_owned(),
        other => other.to_string(),
    }
}

fn violation(
    config: &Config,
    row: &ViolationRow,
    history: &[crate::store::EventRow],
    token: Option<&str>,
) -> Markup {
    let v = &row.violation;
    html! {
        section.card id={ "v" (row.id) } {
            p {
                (layout::severity(v.severity)) " " (layout::status(row.status)) " "
                strong { (v.rule) } " · " (stage_name(config, v.stage.as_ref().map(|s| s.as_str())))
                " · " span.muted { "#" (row.id) " · " (v.fingerprint.as_str()) }
            }
            p.message { (v.message) }
            @if let Some(reason) = &row.status_reason {
                p.muted { "Why " (row.status.as_str()) ": " (reason) }
            }
            ol.history {
                @for event in history {
                    li {
                        (when(event.at)) ": " (event.kind.as_str()) " by " (event.actor)
                        @if let Some(reason) = &event.reason { " (" (reason) ")" }
                    }
                }
            }
            @if let Some(token) = token {
                (actions(row.id, row.status, token))
            }
        }
    }
}

/// The form that changes a violation's status: one reason, a button per
/// change its status allows (the CLI's lifecycle), and the day a
/// suppression ends. Nothing for a resolved violation: an audit reopens it
/// if it comes back.
fn actions(id: ViolationId, status: ViolationStatus, token: &str) -> Markup {
    if status == ViolationStatus::Resolved {
        return html! {};
    }
    let to = |action: &str| format!("/violations/{id}/{action}");
    html! {
        form.act method="post" action=(to("acknowledge")) {
            input type="hidden" name="csrf" value=(token);
            label { "Why " input type="text" name="reason" required maxlength="500"; }
            @if status != ViolationStatus::Acknowledged {
                button type="submit" formaction=(to("acknowledge")) { "Acknowledge" }
            }
            label { " until " input type="date" name="until"; }
            button type="submit" formaction=(to("suppress")) { "Suppress" }
            @if status != ViolationStatus::Open {
                button type="submit" formaction=(to("reopen")) { "Reopen" }
            }
        }
    }
}

fn task_view(task: Option<&TaskView>) -> Markup {
    let Some(task) = task else {
        return html! { p.muted { "journeyd keeps no task on this record." } };
    };
    html! {
        dl.facts {
            dt { "Subject" } dd { (task.subject) }
            dt { "State" } dd { (if task.open { "open" } else { "closed" }) }
            dt { "CRM id" } dd { (task.task_id.as_deref().unwrap_or("not confirmed yet")) }
            dt { "Updates sent" } dd { (task.updates) }
            @if let Some(write) = &task.last_write {
                dt { "Last write" }
                dd {
                    (write.state) " · " (when(write.updated_at))
                    @if write.attempts > 1 { " · " (write.attempts) " attempts" }
                    @if let Some(error) = &write.error { " · " span.error { (error) } }
                }
            }
        }
    }
}
