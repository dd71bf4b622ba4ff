//! Recovery: a write whose answer was lost, or proved nothing, is settled
//! the CRM's own way before anything is sent again, and never written
//! twice.

use super::*;
use crate::fake_connector::Answer;
use std::time::Duration;

/// A CRM whose lookups miss a new task for `lag`, and a connector that
/// waits `settle` before looking.
fn lagging(lag: Duration, settle: Duration) -> FakeConnector {
    FakeConnector::new(
        "hubspot",
        &[ObjectKind::Deal],
        FakeCrm {
            page_size: 10,
            lag,
            settle,
            ..FakeCrm::default()
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_looked_up_only_after_the_settle_time_and_never_sent_twice()
 {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1"), stalled("2")], day(2, 0));
    let connector = lagging(Duration::from_secs(9), Duration::from_secs(10));
    connector.with(|c| c.next_answer = Answer::Lost);

    let crashed = harness.apply(&connector).await;
    assert_eq!(crashed.status, RunStatus::Failed);
    assert_eq!(harness.ledger(LedgerState::Sent).len(), 2);
    let started = tokio::time::Instant::now();
    let rerun = harness.apply(&connector).await;

    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "looked up after {:?}",
        started.elapsed()
    );
    assert_eq!(rerun.status, RunStatus::Ok);
    assert_eq!((rerun.counts.recovered, rerun.counts.sent), (2, 0));
    assert!(tasks_by_key(&connector).values().all(|n| *n == 1));
    assert_eq!(tasks_by_key(&connector).len(), 2);
    let lookups = connector.with(|c| c.lookups.clone());
    assert_eq!(lookups.len(), 1);
    assert!(lookups[0].1 > day(2, 0), "asks only since it was sent");
}

#[tokio::test(start_paused = true)]
async fn looking_up_sooner_than_the_crm_shows_its_writes_would_duplicate_them() {
    // The failure the settle time exists for: a lookup inside the lag.
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = lagging(Duration::from_secs(10), Duration::ZERO);
    connector.with(|c| c.next_answer = Answer::Lost);
    harness.apply(&connector).await;

    harness.apply(&connector).await;

    assert_eq!(tasks_by_key(&connector).values().copied().max(), Some(2));
}

#[tokio::test]
async fn where_creates_are_idempotent_an_unconfirmed_write_is_sent_again_without_a_lookup() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    connector.with(|c| {
        c.idempotent_creates = true;
        c.next_answer = Answer::Lost;
    });
    harness.apply(&connector).await;

    let rerun = harness.apply(&connector).await;

    assert_eq!((rerun.counts.resent, rerun.counts.applied), (1, 1));
    assert!(connector.with(|c| c.lookups.is_empty()));
    assert_eq!(
        tasks_by_key(&connector)
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(harness.ledger(LedgerState::Applied).len(), 1);
}

#[tokio::test]
async fn an_answer_that_proves_nothing_leaves_the_write_for_recovery_never_for_a_blind_resend() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = crm();
    connector.with(|c| c.next_answer = Answer::Unreadable);

    let garbled = harness.apply(&connector).await;
    let rerun = harness.apply(&connector).await;

    assert_eq!(
        (
            garbled.status,
            garbled.counts.unknown,
            garbled.counts.failed
        ),
        (RunStatus::Partial, 1, 0)
    );
    assert_eq!((rerun.counts.recovered, rerun.counts.sent), (1, 0));
    assert_eq!(
        tasks_by_key(&connector)
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [1]
    );
}

#[tokio::test]
async fn a_create_the_crm_lacks_after_the_lookup_is_sent_again_and_counts_toward_the_cap() {
    let mut harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1"), stalled("2"), stalled("3")], day(2, 0));
    // Recorded as sent by a run that died before its request left.
    let plan = harness.plan();
    let staged: Vec<StagedWrite> = plan.writes.iter().map(PlannedWrite::staged).collect();
    assert_eq!(staged.len(), 3);
    harness
        .store
        .call_blocking(move |s| s.ledger_send(&hubspot(), &staged, day(2, 1)))
        .unwrap();
    harness.policy.max_writes_per_run = NonZeroU32::new(2).unwrap();
    let connector = crm();

    let first = harness.apply(&connector).await;
    let second = harness.apply(&connector).await;

    assert_eq!(
        (first.counts.resent, first.counts.sent, first.counts.planned),
        (2, 2, 0)
    );
    assert_eq!((second.counts.resent, second.counts.sent), (1, 1));
    assert_eq!(tasks_by_key(&connector).len(), 3);
    assert!(tasks_by_key(&connector).values().all(|n| *n == 1));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_settle_wait_stops_the_run_and_sends_nothing() {
    let harness = Harness::new(TaskMode::PerRecord);
    harness.audit(vec![stalled("1")], day(2, 0));
    let connector = lagging(Duration::from_secs(60), Duration::from_secs(60));
    connector.with(|c| c.next_answer = Answer::Lost);
    harness.apply(&connector).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let options = harness.options(Some(&shutdown));

    let (report, ()) = tokio::join!(
        async { run(&harness.store, &connector, &options).await.unwrap() },
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.send_replace(true);
        }
    );

    assert_eq!((report.status, report.counts.sent), (RunStatus::Partial, 0));
    assert!(connector.with(|c| c.lookups.is_empty()));
    assert_eq!(
        harness.ledger(LedgerState::Sent).len(),
        1,
        "left for the next run"
    );
}

#[tokio::test]
async fn a_create_an_earlier_version_left_unconfirmed_is_looked_up_even_where_creates_are_idempotent()
 {
    let harness = Harness::new(TaskMode::PerViolation);
    let v = stalled("1");
    harness.audit(vec![v.clone()], day(2, 0));
    let connector = crm();
    connector.with(|c| c.idempotent_creates = true);
    // Written by the earlier version, which recorded no time of sending.
    let request = harness.plan().writes[0].request.clone();
    connector.with(|c| {
        c.idempotent_creates = false;
    });
    let outcomes = connector
        .apply(std::slice::from_ref(&request))
        .await
        .unwrap();
    assert!(matches!(outcomes[0].result, ActionResult::Applied { .. }));
    connector.with(|c| c.idempotent_creates = true);
    harness.ledger_at(request, &v.fingerprint, LedgerState::Sent, 0);

    let rerun = harness.apply(&connector).await;

    assert_eq!((rerun.counts.recovered, rerun.counts.sent), (1, 0));
    assert_eq!(connector.with(|c| c.lookups.len()), 1);
}

#[tokio::test]
async fn a_write_recorded_but_never_sent_is_sent_without_a_lookup() {
    let harness = Harness::new(TaskMode::PerViolation);
    let v = stalled("1");
    harness.audit(vec![v.clone()], day(2, 0));
    let request = harness.plan().writes[0].request.clone();
    harness
        .store
        .call_blocking(move |s| {
            s.ledger_insert_pending(&request, &v.fingerprint, &hubspot(), day(2, 1))
                .map(|_| ())
        })
        .unwrap();
    let connector = crm();

    let report = harness.apply(&connector).await;

    assert_eq!((report.counts.resent, report.counts.planned), (1, 0));
    assert!(connector.with(|c| c.lookups.is_empty()));
    assert_eq!(harness.ledger(LedgerState::Applied).len(), 1);
}
