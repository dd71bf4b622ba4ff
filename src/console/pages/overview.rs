//! `/`: what the log holds now (open violations by rule, severity,
//! connector and stage), how the last audits went, and when each connector
//! last synced.

use super::super::Page;
use super::super::chart::{self, Bar};
use super::super::layout::{frame, when};
use super::super::memo::Memo;
use super::runs::outcome;
use crate::config::Config;
use crate::rules::Severity;
use crate::store::{CountBy, OpenCount, RunKind, Store, StoreError};
use maud::{Markup, html};

/// Audits in the trend chart.
const TREND: usize = 14;

pub(in super::super) fn render(
    store: &Store,
    config: &Config,
    memo: &Memo,
) -> Result<Page, StoreError> {
    let body = body(store, config, memo, true)?;
    Ok(Page::Found(frame("Overview", "/", body)))
}

/// The overview's content; `linked` for the console, where it links to
/// the log.
pub(in super::super) fn body(
    store: &Store,
    config: &Config,
    memo: &Memo,
    linked: bool,
) -> Result<Markup, StoreError> {
    let counts = memo.get(store, "open counts", |store| {
        Ok([
            store.open_counts(CountBy::Rule)?,
            store.open_counts(CountBy::Severity)?,
            store.open_counts(CountBy::Connector)?,
            store.open_counts(CountBy::Stage)?,
        ])
    })?;
    let [by_rule, by_severity, by_connector, by_stage] = &*counts;
    let open: u64 = by_rule.iter().map(|c| c.count).sum();
    let high = by_severity
        .iter()
        .find(|c| c.value.as_deref() == Some("2"))
        .map_or(0, |c| c.count);
    let mut audits = store.runs_of(RunKind::Audit, TREND)?;
    audits.reverse();
    let trend: Vec<Bar> = audits
        .iter()
        .filter(|run| run.finished_at.is_some())
        .map(|run| Bar {
            label: run.started_at.format("%m-%d").to_string(),
            value: count(run.counts.as_ref(), "violations"),
        })
        .collect();
    let stage_name = |id: &str| {
        config
            .journey
            .stages
            .iter()
            .find(|s| s.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |s| s.name.clone())
    };
    let severity_name = |rank: &str| match rank {
        "2" => Severity::High.as_str(),
        "1" => Severity::Medium.as_str(),
        _ => Severity::Low.as_str(),
    };
    // Most severe first, as the log reads, whatever the counts.
    let mut by_rank = by_severity.clone();
    by_rank.sort_by(|a, b| b.value.cmp(&a.value));
    let last_audit = audits.last();
    let body = html! {
        p.lead {
            strong { (open) } " open or acknowledged violations, "
            strong { (high) } " of them high."
            @if linked { " " a href="/violations" { "Review them" } }
        }
        div.grid {
            section.card {
                h2 { "Open by rule" }
                (chart::bars("Open violations by rule", &bars(by_rule, |v| v.to_owned())))
            }
            section.card {
                h2 { "Open by severity" }
                (chart::bars("Open violations by severity", &bars(&by_rank, |v| severity_name(v).to_owned())))
            }
            section.card {
                h2 { "Open by connector" }
                (chart::bars("Open violations by connector", &bars(by_connector, |v| v.to_owned())))
            }
            section.card {
                h2 { "Open by stage" }
                (chart::bars("Open violations by stage", &bars(by_stage, stage_name)))
            }
        }
        h2 { "Violations found by the last audits" }
        @if trend.is_empty() {
            p.muted { "No audit has finished yet." }
        } @else {
            (chart::columns("Violations found by each of the last audits", &trend))
        }
        h2 { "Connectors" }
        table {
            thead { tr { th { "Connector" } th { "CRM" } th { "Last sync" } th { "Outcome" } } }
            tbody {
                @for connector in &config.connectors {
                    @let sync = store.last_finished_run(RunKind::Sync, Some(&connector.name))?;
                    tr {
                        td { (connector.name) }
                        td { (connector.system.as_str()) }
                        @match &sync {
                            Some(run) => {
                                td { (run.finished_at.map(when).unwrap_or_default()) }
                                td { (outcome(run)) }
                            }
                            None => { td.muted colspan="2" { "never synced" } }
                        }
                    }
                }
            }
        }
        h2 { "Last audit" }
        @match last_audit {
            Some(run) => p {
                (run.finished_at.map(when).unwrap_or_else(|| "running".to_owned())) ": "
                (outcome(run))
            },
            None => p.muted { "No audit has run yet." },
        }
    };
    Ok(body)
}

fn bars(counts: &[OpenCount], name: impl Fn(&str) -> String) -> Vec<Bar> {
    counts
        .iter()
        .map(|c| Bar {
            label: c
                .value
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), &name),
            value: c.count,
        })
        .collect()
}

/// A number from a run's counts; 0 where it has none.
pub(in super::super) fn count(counts: Option<&serde_json::Value>, key: &str) -> u64 {
    counts
        .and_then(|c| c.get(key))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}
