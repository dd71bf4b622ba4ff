//! One batch of writes: recorded in the ledger as sent (with the records'
//! tasks they move) in one transaction before the call, sent in one call,
//! and each outcome recorded in another after it. A crash between the two
//! leaves the writes `sent`, for recovery; a write the ledger already holds
//! as applied or parked is never sent.

use super::{Halt, Refused, WritebackOptions, WritebackReport, Written};
use crate::store::{LedgerMark, LedgerState, StagedWrite, StoreHandle};
use chrono::Utc;
use journeyd_connector::{ActionKey, ActionOutcome, ActionResult, Connector};
use std::collections::HashMap;

/// Sends the planned `writes` as one batch.
pub(super) async fn send_batch<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
    writes: &[super::PlannedWrite],
    report: &mut WritebackReport,
) -> Result<(), Halt> {
    let staged = writes.iter().map(super::PlannedWrite::staged).collect();
    send_staged(store, connector, options, staged, report, false).await
}

/// Sends `writes` as one batch: new writes, or (`again`) writes recovery
/// found the CRM lacks, or whose every write is idempotent.
pub(super) async fn send_staged<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
    writes: Vec<StagedWrite>,
    report: &mut WritebackReport,
    again: bool,
) -> Result<(), Halt> {
    if writes.is_empty() {
        return Ok(());
    }
    if options.stopping() {
        return Err(Halt::Shutdown);
    }
    let name = options.connector.name.clone();
    let staged = {
        let (name, writes) = (name.clone(), writes.clone());
        store
            .call(move |s| s.ledger_send(&name, &writes, Utc::now()))
            .await?
    };
    let requests: Vec<_> = writes
        .into_iter()
        .map(|w| w.request)
        .filter(|r| staged.contains(r.key()))
        .collect();
    if requests.is_empty() {
        return Ok(());
    }
    report.counts.sent += requests.len() as u64;
    if again {
        report.counts.resent += requests.len() as u64;
    }
    let outcomes = connector.apply(&requests).await.map_err(Halt::Connector)?;
    let mut by_key: HashMap<ActionKey, ActionResult> = outcomes
        .into_iter()
        .map(|ActionOutcome { key, result }| (key, result))
        .collect();
    let mut marks = Vec::with_capacity(requests.len());
    for request in requests {
        let key = request.key().clone();
        // No word on an action proves nothing either way.
        let result = by_key.remove(&key).unwrap_or(ActionResult::Unknown {
            reason: "the connector reported no outcome for this action".into(),
        });
        match result {
            ActionResult::Applied { crm_id } => {
                report.counts.applied += 1;
                marks.push(LedgerMark {
                    crm_id: Some(crm_id.clone()),
                    ..LedgerMark::new(key.clone(), LedgerState::Applied)
                });
                report.written.push(Written {
                    key,
                    request,
                    crm_id,
                    recovered: false,
                });
            }
            ActionResult::Unknown { reason } => {
                // Left `sent`: the next run settles it the CRM's own way.
                report.counts.unknown += 1;
                tracing::warn!(connector = %name, key = %key, error = %reason, "write-back outcome unknown; settled by the next run");
            }
            ActionResult::Failed { reason, retryable } => {
                let state = if retryable {
                    report.counts.failed += 1;
                    LedgerState::Failed
                } else {
                    report.counts.parked += 1;
                    LedgerState::Parked
                };
                tracing::warn!(connector = %name, key = %key, error = %reason, retryable, "write-back action failed");
                marks.push(LedgerMark {
                    error: Some(reason.clone()),
                    ..LedgerMark::new(key.clone(), state)
                });
                report.refused.push(Refused {
                    key,
                    reason,
                    parked: !retryable,
                });
            }
        }
    }
    store
        .call(move |s| s.ledger_mark_all(&marks, Utc::now()))
        .await?;
    Ok(())
}
