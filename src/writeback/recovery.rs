//! Recovery: settling the writes an earlier run left unconfirmed (a crash,
//! a lost answer, an answer that proved nothing) before anything new is
//! sent, each CRM's own way and never by a lookup that races the server:
//!
//! - a connector whose writes are idempotent by construction
//!   ([`Recovery::Resend`]: Dataverse's chosen primary key, Salesforce's
//!   external-id upsert) gets them sent again as they were;
//! - otherwise ([`Recovery::LookUp`]) a create is looked up by its key, but
//!   only once `settle` has passed since it was sent (the CRM may still be
//!   finishing a request whose client died, or its search index may not
//!   show it yet), asking only for what was created since; what the CRM
//!   holds is confirmed, the rest is sent again. Other writes set values,
//!   and are sent again.
//!
//! Writes never sent (`pending`) are sent; a create sent by an earlier
//! version, which recorded no time, is looked up whatever the connector.
//! What is sent again counts toward the run's cap. The wait ends early,
//! and the run stops, on shutdown.

use super::send::send_staged;
use super::{Halt, WritebackOptions, WritebackReport, Written};
use crate::store::{LedgerCursor, LedgerEntry, LedgerMark, LedgerState, StagedWrite, StoreHandle};
use chrono::{DateTime, Utc};
use journeyd_connector::{ActionKey, ActionResult, Connector, Recovery};
use std::collections::HashMap;
use std::time::Duration;

/// Settles every unconfirmed write of `options.connector`, a batch at a
/// time, sending again at most `cap` writes in all (with what this run
/// sent before).
pub(super) async fn recover<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
    report: &mut WritebackReport,
    cap: u64,
) -> Result<(), Halt> {
    let name = options.connector.name.clone();
    let batch = options.batch.get();
    let mode = connector.recovery();
    let mut after: Option<LedgerCursor> = None;
    let mut left = 0u64;
    loop {
        let page = {
            let (name, after) = (name.clone(), after.clone());
            store
                .call(move |s| s.ledger_unconfirmed(&name, after.as_ref(), batch))
                .await?
        };
        let Some(last) = page.last() else { break };
        after = Some(last.cursor());
        let full = page.len() == batch;
        let (look_up, mut again): (Vec<LedgerEntry>, Vec<LedgerEntry>) = page
            .into_iter()
            .partition(|entry| needs_lookup(entry, mode));
        if !look_up.is_empty() {
            let settle = match mode {
                Recovery::LookUp { settle } => settle,
                Recovery::Resend => Duration::ZERO,
            };
            again.extend(
                settle_by_lookup(store, connector, options, report, look_up, settle).await?,
            );
        }
        let room = usize::try_from(cap.saturating_sub(report.counts.sent)).unwrap_or(usize::MAX);
        if again.len() > room {
            left += (again.len() - room) as u64;
            again.truncate(room);
        }
        let staged: Vec<StagedWrite> = again
            .into_iter()
            .map(|entry| StagedWrite {
                request: entry.request,
                fingerprint: entry.fingerprint,
                task_key: entry.task_key,
                record_task: None,
            })
            .collect();
        send_staged(store, connector, options, staged, report, true).await?;
        if !full {
            break;
        }
    }
    if report.counts.recovered + report.counts.resent + left > 0 {
        tracing::warn!(
            connector = %name,
            recovered = report.counts.recovered,
            resent = report.counts.resent,
            left_for_next_run = left,
            "settled write-back actions an earlier run left unconfirmed"
        );
    }
    Ok(())
}

/// Whether `entry` must be looked up before it may be sent again.
fn needs_lookup(entry: &LedgerEntry, mode: Recovery) -> bool {
    if entry.state == LedgerState::Pending || !entry.request.creates() {
        return false;
    }
    matches!(mode, Recovery::LookUp { .. }) || entry.sent_at.is_none()
}

/// Waits out `settle` after the last of `entries` was sent, then asks the
/// CRM which it holds: those are confirmed; the rest are returned, to be
/// sent again.
async fn settle_by_lookup<C: Connector>(
    store: &StoreHandle,
    connector: &C,
    options: &WritebackOptions<'_>,
    report: &mut WritebackReport,
    entries: Vec<LedgerEntry>,
    settle: Duration,
) -> Result<Vec<LedgerEntry>, Halt> {
    let sent = |entry: &LedgerEntry| entry.sent_at.unwrap_or(entry.updated_at);
    let newest = entries.iter().map(sent).max().unwrap_or_else(Utc::now);
    wait_until(newest, settle, options).await?;
    // Sent by an earlier version, with no time recorded: anything since
    // the beginning may be it.
    let since = entries
        .iter()
        .map(|e| e.sent_at)
        .min()
        .flatten()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let keys: Vec<ActionKey> = entries.iter().map(|e| e.key.clone()).collect();
    let found: HashMap<ActionKey, String> = connector
        .find_applied(&keys, since)
        .await
        .map_err(Halt::Connector)?
        .into_iter()
        .filter_map(|outcome| match outcome.result {
            ActionResult::Applied { crm_id } => Some((outcome.key, crm_id)),
            ActionResult::Failed { .. } | ActionResult::Unknown { .. } => None,
        })
        .collect();
    let mut marks = Vec::new();
    let mut missing = Vec::new();
    for entry in entries {
        match found.get(&entry.key) {
            Some(crm_id) => {
                marks.push(LedgerMark {
                    crm_id: Some(crm_id.clone()),
                    ..LedgerMark::new(entry.key.clone(), LedgerState::Applied)
                });
                report.counts.recovered += 1;
                report.written.push(Written {
                    key: entry.key,
                    request: entry.request,
                    crm_id: crm_id.clone(),
                    recovered: true,
                });
            }
            None => missing.push(entry),
        }
    }
    store
        .call(move |s| s.ledger_mark_all(&marks, Utc::now()))
        .await?;
    Ok(missing)
}

/// Waits until `settle` after `sent` (at most `settle` from now, whatever
/// the clocks say), or until shutdown, which stops the run.
async fn wait_until(
    sent: DateTime<Utc>,
    settle: Duration,
    options: &WritebackOptions<'_>,
) -> Result<(), Halt> {
    let elapsed = (Utc::now() - sent).to_std().unwrap_or(Duration::ZERO);
    let wait = settle.saturating_sub(elapsed);
    if wait.is_zero() {
        return Ok(());
    }
    tracing::info!(
        connector = %options.connector.name,
        wait_ms = wait.as_millis() as u64,
        "waiting for the CRM to settle writes an earlier run left unconfirmed before looking them up"
    );
    let Some(stop) = options.shutdown else {
        tokio::time::sleep(wait).await;
        return Ok(());
    };
    let mut stop = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => Ok(()),
        // A dropped sender never stops the run: that branch is then off.
        Ok(_) = stop.wait_for(|stopping| *stopping) => Err(Halt::Shutdown),
    }
}
