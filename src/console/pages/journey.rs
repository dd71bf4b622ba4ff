//! `/journey`: the stages in order with their owners' roles, exit
//! criteria, handoff fields and time limits; how many records are in each
//! stage and have reached it (the funnel), and how long they have been in
//! it.

use super::super::Page;
use super::super::chart::{self, Bar};
use super::super::layout::frame;
use super::super::memo::Memo;
use crate::config::Config;
use crate::store::{StageFigures, Store, StoreError};
use maud::html;

pub(in super::super) fn render(
    store: &Store,
    config: &Config,
    memo: &Memo,
) -> Result<Page, StoreError> {
    let journey = &config.journey;
    let figures = memo.get(store, "stage figures", |store| {
        store.stage_figures(store.today())
    })?;
    let figure = |index: usize| figures.iter().find(|f| f.stage_index == index);
    // A bar per stage, in journey order, of one of its figures.
    let bars = |value: fn(&StageFigures) -> u64| -> Vec<Bar> {
        journey
            .stages
            .iter()
            .enumerate()
            .map(|(index, stage)| Bar {
                label: stage.name.clone(),
                value: figure(index).map_or(0, value),
            })
            .collect()
    };
    let funnel = bars(|f| f.reached);
    let in_stage = bars(|f| f.records);
    let body = html! {
        p { (journey.name) ": " (journey.stages.len()) " stages." }
        div.grid {
            section.card {
                h2 { "Funnel: records that reached each stage" }
                (chart::bars("Records that reached each stage or a later one", &funnel))
            }
            section.card {
                h2 { "Records in each stage now" }
                (chart::bars("Records in each stage now", &in_stage))
            }
        }
        h2 { "Stages" }
        table {
            thead { tr {
                th { "Stage" } th { "Owner role" } th { "Exit criteria" } th { "Handoff fields" }
                th.n { "Limit" } th.n { "In stage" } th.n { "Median days" } th.n { "p90 days" } th.n { "Stalled" }
            } }
            tbody {
                @for (index, stage) in journey.stages.iter().enumerate() {
                    @let f = figure(index);
                    tr {
                        td { strong { (stage.name) } br; span.muted { (stage.id) } }
                        td { (stage.owner_role) }
                        td {
                            @if stage.exit_criteria.is_empty() { span.muted { "none" } }
                            @for criterion in &stage.exit_criteria {
                                div { (criterion.name) ": " code { (criterion.expr.source()) } }
                            }
                        }
                        td { (stage.handoff_fields.join(", ")) }
                        td.n { (stage.max_days.map_or_else(|| "–".to_owned(), |d| format!("{d} days"))) }
                        td.n { (f.map_or(0, |f| f.records)) }
                        td.n { (f.and_then(|f| f.days_median).map_or_else(|| "–".to_owned(), |d| d.to_string())) }
                        td.n { (f.and_then(|f| f.days_p90).map_or_else(|| "–".to_owned(), |d| d.to_string())) }
                        td.n { (f.map_or(0, |f| f.stalled)) }
                    }
                }
            }
        }
    };
    Ok(Page::Found(frame("Journey", "/journey", body)))
}
