//! `/owners`: per owner, the records they own and the open violations
//! they are accountable for; owners the CRM marks inactive are flagged.

use super::super::Page;
use super::super::layout::frame;
use super::super::memo::Memo;
use crate::store::{Store, StoreError};
use maud::html;

pub(in super::super) fn render(store: &Store, memo: &Memo) -> Result<Page, StoreError> {
    let loads = memo.get(store, "owner loads", Store::owner_loads)?;
    let body = html! {
        @if loads.is_empty() {
            p.muted { "No owner is known yet: sync a connector first." }
        } @else {
            table {
                thead { tr {
                    th { "Owner" } th { "Connector" } th.n { "Records" } th.n { "Open violations" }
                } }
                tbody {
                    @for load in loads.iter() {
                        tr {
                            td {
                                @match &load.name {
                                    Some(name) => span title=(load.owner_id) { (name) },
                                    None => span.unknown title="not among the CRM's owners" { (load.owner_id) },
                                }
                                @if load.active == Some(false) { " " span.flag { "inactive" } }
                            }
                            td { (load.connector) }
                            td.n { (load.records) }
                            td.n {
                                @if load.open_violations > 0 {
                                    a href={ "/violations?connector=" (load.connector) "&owner=" (load.owner_id) } {
                                        (load.open_violations)
                                    }
                                } @else { "0" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::Found(frame("Owners", "/owners", body)))
}
