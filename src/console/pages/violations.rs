//! `/violations`: the log, most severe first, filtered by connector, rule,
//! severity, status, owner, stage and text, a page at a time. Pages
//! continue from the last row shown (no OFFSET): the hundredth page costs
//! what the first does.

use super::super::Page;
use super::super::layout::{self, frame, when};
use super::super::links::violation_anchor;
use super::super::query::{COUNTED, ListQuery, PAGE};
use crate::config::Config;
use crate::rules::{BuiltinRule, Severity};
use crate::store::{ListPosition, Store, StoreError, ViolationRow};
use maud::{Markup, html};

pub(in super::super) fn render(
    store: &Store,
    config: &Config,
    query: &ListQuery,
    token: Option<&str>,
) -> Result<Page, StoreError> {
    let parsed = query.parse();
    let mut rows: Vec<ViolationRow> = Vec::with_capacity(PAGE + 1);
    store.list_violations(&parsed.filter, |row| -> Result<(), StoreError> {
        rows.push(row);
        Ok(())
    })?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let unpaged = crate::store::ViolationFilter {
        after: None,
        limit: None,
        ..parsed.filter.clone()
    };
    let total = if query.count_all() {
        Some(store.count_violations(&unpaged)?)
    } else {
        store.count_violations_upto(&unpaged, COUNTED)?
    };
    let count_all = ListQuery {
        count: Some("all".to_owned()),
        ..query.clone()
    };
    let owners = store.owner_directory()?;
    let next = rows.last().filter(|_| more).map(|last| {
        query.page_link(Some(ListPosition {
            severity: last.violation.severity,
            id: last.id,
        }))
    });
    let body = html! {
        (filters(config, &owners, query))
        @if !parsed.dropped.is_empty() {
            p.error { "Left out of the filter, as they name nothing: " (parsed.dropped.join(", ")) "." }
        }
        p {
            @match total {
                Some(total) => { strong { (total) } " violations match." }
                None => {
                    "More than " strong { (COUNTED) } " violations match ("
                    a href=(count_all.page_link(None)) { "count them all" } ")."
                }
            }
        }
        @if let Some(done) = &query.done {
            p.notice { (done) }
        }
        @if rows.is_empty() {
            p.muted { "None." }
        } @else {
            // Admins pick rows and act on them all at once; the form wraps
            // the table, its controls above it.
            form.bulk method="post" action="/violations/bulk/acknowledge" {
            @if let Some(token) = token {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="back" value=(query.page_link(parsed.filter.after));
                div.act {
                    label { "Why " input type="text" name="reason" required maxlength="500"; }
                    button type="submit" formaction="/violations/bulk/acknowledge" { "Acknowledge the ticked" }
                    label { " until " input type="date" name="until"; }
                    button type="submit" formaction="/violations/bulk/suppress" { "Suppress the ticked" }
                }
            }
            table {
                thead { tr {
                    @if token.is_some() { th { span.muted { "pick" } } }
                    th { "Severity" } th { "Status" } th { "Record" } th { "Owner" }
                    th { "Rule" } th { "Stage" } th { "Message" } th { "First seen" }
                } }
                tbody {
                    @for row in &rows {
                        @let v = &row.violation;
                        tr id={ "v" (row.id) } {
                            @if token.is_some() {
                                td {
                                    @if row.status != crate::store::ViolationStatus::Resolved {
                                        input type="checkbox" name="id" value=(row.id)
                                            aria-label={ "pick violation " (row.id) };
                                    }
                                }
                            }
                            td { (layout::severity(v.severity)) }
                            td { (layout::status(row.status)) }
                            td {
                                a href=(violation_anchor(v, row.id)) {
                                    (v.record_name.as_deref().unwrap_or(v.record_id.as_str()))
                                }
                                br;
                                span.muted { (v.connector) " · " (v.object.as_str()) }
                            }
                            td { (layout::owner(&owners, &v.connector, v.owner_id.as_ref())) }
                            td { (v.rule) }
                            td { (stage_name(config, v.stage.as_ref().map(|s| s.as_str()))) }
                            td.message { (v.message) }
                            td { (when(row.first_seen)) }
                        }
                    }
                }
            }
            }
        }
        nav.pager aria-label="Pages" {
            @if parsed.filter.after.is_some() {
                a href=(query.page_link(None)) { "First page" }
            }
            @if let Some(next) = &next {
                a href=(next) rel="next" { "Next page" }
            }
        }
    };
    Ok(Page::Found(frame("Violations", "/violations", body)))
}

/// Owners offered by name in the filter; past this many the filter takes
/// an id, so that the page stays light in a CRM of thousands of users.
const LISTED_OWNERS: usize = 300;

/// A stage by its name in the journey; its id where the journey no longer
/// has it.
pub(in super::super) fn stage_name(config: &Config, stage: Option<&str>) -> String {
    match stage {
        None => "–".to_owned(),
        Some(id) => config
            .journey
            .stages
            .iter()
            .find(|s| s.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |s| s.name.clone()),
    }
}

/// The filter form, holding what the query holds. Choices come from the
/// config and the owners table: no query over the log.
fn filters(config: &Config, owners: &crate::store::OwnerDirectory, query: &ListQuery) -> Markup {
    let chosen = |field: &Option<String>| ListQuery::value(field).unwrap_or("").to_owned();
    let mut rules: Vec<String> = BuiltinRule::ALL
        .iter()
        .filter(|rule| config.checks.enabled(**rule))
        .map(|rule| rule.as_str().to_owned())
        .chain(config.custom_rules.iter().map(|rule| rule.id.to_string()))
        .collect();
    rules.sort();
    let mut people: Vec<(String, String)> = owners
        .iter()
        .map(|((connector, id), owner)| {
            (
                id.as_str().to_owned(),
                format!("{} ({connector})", owner.name),
            )
        })
        .collect();
    people.sort_by(|a, b| a.1.cmp(&b.1));
    let statuses = [
        ("active", "open and acknowledged"),
        ("open", "open"),
        ("acknowledged", "acknowledged"),
        ("suppressed", "suppressed"),
        ("resolved", "resolved"),
        ("all", "all"),
    ];
    let status = chosen(&query.status);
    html! {
        form.filters method="get" action="/violations" {
            (select("Connector", "connector", &chosen(&query.connector),
                config.connectors.iter().map(|c| (c.name.to_string(), c.name.to_string()))))
            (select("Rule", "rule", &chosen(&query.rule), rules.iter().map(|r| (r.clone(), r.clone()))))
            (select("Stage", "stage", &chosen(&query.stage),
                config.journey.stages.iter().map(|s| (s.id.to_string(), s.name.clone()))))
            (select("Severity at least", "severity", &chosen(&query.severity),
                Severity::ALL.iter().rev().map(|s| (s.as_str().to_owned(), s.as_str().to_owned()))))
            label {
                "Status"
                select name="status" {
                    @for (value, name) in statuses {
                        option value=(value) selected[status == value || (status.is_empty() && value == "active")] { (name) }
                    }
                }
            }
            @if people.len() <= LISTED_OWNERS {
                (select("Owner", "owner", &chosen(&query.owner), people.into_iter()))
            } @else {
                label { "Owner id" input type="text" name="owner" value=(chosen(&query.owner)); }
            }
            label { "Record or message" input type="search" name="q" value=(chosen(&query.q)); }
            button type="submit" { "Filter" }
            a href="/violations" { "Clear" }
        }
    }
}

/// A labelled select with an empty "any" choice first.
fn select(
    label: &str,
    name: &str,
    chosen: &str,
    choices: impl Iterator<Item = (String, String)>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { "any" }
                @for (value, shown) in choices {
                    option value=(value) selected[chosen == value] { (shown) }
                }
            }
        }
    }
}
