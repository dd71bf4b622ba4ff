//! `/violations`: the log by record, most severe first (or newest or
//! oldest first), filtered by connector, rule, severity, status, owner,
//! stage and text, a page of records at a time. Each record is listed
//! once, with the violations the filter selects as entries. Pages continue
//! from the last record shown (no OFFSET): the hundredth page costs what
//! the first does.

use super::super::Page;
use super::super::layout::{self, frame, when};
use super::super::links::{record_path, violation_anchor};
use super::super::query::{COUNTED, ListQuery, PAGE};
use crate::config::Config;
use crate::log_entries::{Entry, entries};
use crate::rules::{BuiltinRule, Severity};
use crate::store::{ListPosition, Sort, Store, StoreError, ViolationStatus};
use maud::{Markup, html};
use std::num::NonZeroUsize;

pub(in super::super) fn render(
    store: &Store,
    config: &Config,
    query: &ListQuery,
    token: Option<&str>,
) -> Result<Page, StoreError> {
    let parsed = query.parse();
    let records = NonZeroUsize::new(PAGE + 1).expect("a page holds records");
    let page = store.list_by_record(&parsed.filter, records)?;
    let mut groups = page.groups;
    let more = groups.len() > PAGE;
    groups.truncate(PAGE);
    let unpaged = crate::store::ViolationFilter {
        after: None,
        limit: None,
        ..parsed.filter.clone()
    };
    // Records are counted only where violations are few (no more records
    // than violations): each row's record is checked, which costs more.
    let (total, on_records) = if query.count_all() {
        (
            Some(store.count_violations(&unpaged)?),
            Some(store.count_records(&unpaged)?),
        )
    } else {
        let total = match page.counted {
            // Counted to the same cap to choose how to read the page.
            Some(counted) => counted,
            _ => store.count_violations_upto(&unpaged, COUNTED)?,
        };
        let on_records = match total {
            Some(_) => store.count_records_upto(&unpaged, COUNTED)?,
            None => None,
        };
        (total, on_records)
    };
    let count_all = ListQuery {
        count: Some("all".to_owned()),
        ..query.clone()
    };
    let owners = store.owner_directory()?;
    let next = groups.last().filter(|_| more).map(|last| {
        query.page_link(Some(ListPosition {
            severity: last.first().violation.severity,
            id: last.first().id,
        }))
    });
    let counted = |n: Option<u64>, what: &str| -> Markup {
        html! {
            @match n {
                Some(n) => { strong { (n) } " " (what) }
                None => { "More than " strong { (COUNTED) } " " (what) }
            }
        }
    };
    let columns = if token.is_some() { 7 } else { 6 };
    let body = html! {
        (filters(config, &owners, query))
        @if !parsed.dropped.is_empty() {
            p.error { "Left out of the filter, as they name nothing: " (parsed.dropped.join(", ")) "." }
        }
        p {
            (counted(total, "violations"))
            @if total.is_some() { " on " (counted(on_records, "records")) }
            " match"
            @if total.is_none() {
                " (" a href=(count_all.page_link(None)) { "count them all" } ")"
            }
            ". " span.muted { "Each record is listed once, with its violations as entries; a handoff that missed what an unmet exit criterion reads is one entry naming both rules." }
        }
        @if let Some(done) = &query.done {
            p.notice { (done) }
        }
        @if groups.is_empty() {
            p.muted { "None." }
        } @else {
            // Admins pick entries and act on them all at once; the form
            // wraps the table, its controls above it.
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
            table.log {
                thead { tr {
                    @if token.is_some() { th { span.muted { "pick" } } }
                    th { "Severity" } th { "Status" } th { "Rule" } th { "Stage" }
                    th { "Message" } th { "First seen" }
                } }
                @for group in &groups {
                    @let lead = group.first();
                    @let v = &lead.violation;
                    tbody.record id={ "r" (lead.id) } {
                        tr.record {
                            th colspan=(columns) scope="rowgroup" {
                                a href=(record_path(&v.connector, v.object, &v.record_id)) {
                                    (v.record_name.as_deref().unwrap_or(v.record_id.as_str()))
                                }
                                " "
                                span.muted { (v.connector) " · " (v.object.as_str()) " · owner " }
                                (layout::owner(&owners, &v.connector, v.owner_id.as_ref()))
                            }
                        }
                        @for entry in entries(&config.journey, &group.rows) {
                            (entry_row(config, &entry, token.is_some()))
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

/// One entry of a record: one violation, or two that flag the same
/// missing fact, ticked and acted on together.
fn entry_row(config: &Config, entry: &Entry<'_>, pick: bool) -> Markup {
    let first = entry.first();
    let ids: Vec<String> = entry.ids().iter().map(ToString::to_string).collect();
    html! {
        tr id={ "v" (first.id) } {
            @if pick {
                td {
                    @if entry.status() != ViolationStatus::Resolved {
                        input type="checkbox" name="id" value=(ids.join(" "))
                            aria-label={ "pick violation " (entry.id_label()) };
                    }
                }
            }
            td { (layout::severity(entry.severity())) }
            td { (layout::status(entry.status())) }
            td {
                @for (at, row) in entry.rows.iter().enumerate() {
                    @if at > 0 { br; }
                    a href=(violation_anchor(&row.violation, row.id)) { (row.violation.rule) }
                }
            }
            td { (stage_name(config, first.violation.stage.as_ref().map(|s| s.as_str()))) }
            td.message { (entry.message_under_record()) }
            td { (when(first.first_seen)) }
        }
    }
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
    let parsed_sort = query.sort();
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
            label {
                "Order"
                select name="sort" {
                    @for sort in Sort::ALL {
                        option value=(sort.as_str()) selected[parsed_sort == sort] { (sort_name(sort)) }
                    }
                }
            }
            button type="submit" { "Filter" }
            a href="/violations" { "Clear" }
        }
    }
}

/// How the order is offered.
fn sort_name(sort: Sort) -> &'static str {
    match sort {
        Sort::Severity => "most severe first",
        Sort::Newest => "newest first",
        Sort::Oldest => "oldest first",
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
