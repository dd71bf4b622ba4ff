//! `/runs`: the last syncs, audits and write-backs, with how long each
//! took, what it counted and why it failed.

use super::super::Page;
use super::super::layout::{frame, when};
use crate::store::{RunRow, RunStatus, Store, StoreError};
use maud::{Markup, html};

/// Runs listed.
const SHOWN: usize = 100;

pub(in super::super) fn render(store: &Store) -> Result<Page, StoreError> {
    let runs = store.runs(SHOWN)?;
    let body = html! {
        @if runs.is_empty() {
            p.muted { "Nothing has run yet." }
        } @else {
            table {
                thead { tr {
                    th.n { "Run" } th { "Kind" } th { "Connector" } th { "Started" }
                    th.n { "Took" } th { "Outcome" } th { "Counts" }
                } }
                tbody {
                    @for run in &runs {
                        tr {
                            td.n { (run.id.0) }
                            td { (run.kind.as_str()) }
                            td { (run.connector.as_ref().map(|c| c.as_str()).unwrap_or("all")) }
                            td { (when(run.started_at)) }
                            td.n { (took(run)) }
                            td { (outcome(run)) }
                            td { (counts(run)) }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::Found(frame("Runs", "/runs", body)))
}

/// A run's status, and its error when it failed.
pub(in super::super) fn outcome(run: &RunRow) -> Markup {
    let status = run.status.as_str();
    html! {
        span class={ "status " (status) } { (status) }
        @if let Some(error) = &run.error {
            " " span.error { (error) }
        } @else if run.status == RunStatus::Partial {
            " " span.muted { "some records skipped or writes failed" }
        }
    }
}

fn took(run: &RunRow) -> String {
    match run.finished_at {
        Some(end) => {
            let ms = (end - run.started_at).num_milliseconds().max(0);
            if ms < 10_000 {
                format!("{:.1} s", ms as f64 / 1000.0)
            } else {
                format!("{} s", ms / 1000)
            }
        }
        None => "–".to_owned(),
    }
}

/// The run's whole-number counts, `name n` each.
fn counts(run: &RunRow) -> Markup {
    let Some(serde_json::Value::Object(map)) = &run.counts else {
        return html! {};
    };
    let shown: Vec<String> = map
        .iter()
        .filter_map(|(key, value)| value.as_u64().map(|n| format!("{key} {n}")))
        .filter(|pair| !pair.starts_with("run ") && !pair.starts_with("ms "))
        .collect();
    html! { span.muted { (shown.join(", ")) } }
}
