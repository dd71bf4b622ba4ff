//! The spans every connector wraps its contract calls in: `page` for a page
//! of owners, records or deletions, `write` for a batch of write-backs,
//! each with the fixed fields `connector`, `object`, `records`, `ms` and
//! `error`, so that logs read the same whichever CRM they came from.

use crate::error::ConnectorError;
use crate::ids::ConnectorName;
use std::future::Future;
use std::time::Instant;
use tracing::{Instrument, Span, field};

/// The span of one page of `object` (`owner` for owners).
pub fn page_span(connector: &ConnectorName, object: &dyn std::fmt::Display) -> Span {
    tracing::info_span!("page", connector = %connector, object = %object,
        records = field::Empty, ms = field::Empty, error = field::Empty)
}

/// The span of one write-back call.
pub fn write_span(connector: &ConnectorName) -> Span {
    tracing::info_span!("write", connector = %connector,
        records = field::Empty, ms = field::Empty, error = field::Empty)
}

/// Runs `work` in `span`, recording how many items it handled (`count`)
/// and how long it took, or the error that ended it.
pub async fn traced<T>(
    span: Span,
    work: impl Future<Output = Result<T, ConnectorError>>,
    count: impl FnOnce(&T) -> usize,
) -> Result<T, ConnectorError> {
    async move {
        let started = Instant::now();
        let result = work.await;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let span = Span::current();
        span.record("ms", ms);
        match &result {
            Ok(done) => {
                let records = count(done);
                span.record("records", records);
                tracing::debug!(records, ms, "done");
            }
            Err(err) => {
                span.record("error", field::display(err));
                tracing::warn!(ms, error = %err, "failed");
            }
        }
        result
    }
    .instrument(span)
    .await
}
