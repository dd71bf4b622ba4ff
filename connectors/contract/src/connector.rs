//! The one trait every CRM connector implements.
//!
//! The caller drives: each method does one bounded piece of work (one page,
//! one batch) and returns, so the sync loop can store what it got and advance
//! its watermark in one transaction before asking for more, and can stop
//! between pages on shutdown.

use crate::action::{ActionKey, ActionOutcome, ActionRequest};
use crate::error::ConnectorError;
use crate::ids::{ConnectorName, RecordId};
use crate::page::{Page, Watermark};
use crate::record::{CrmRecord, ObjectKind, Owner};
use std::future::Future;

/// Where a pull starts: from the beginning, from a watermark, from the
/// opaque cursor the previous page handed back, or from the delta link the
/// last pull ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum PullFrom {
    Start,
    Since(Watermark),
    Cursor(String),
    /// The [`Page::delta`](crate::Page::delta) the last completed pull of
    /// this object ended with. A connector that cannot resume from it (it
    /// expired, or it is not one of its own) answers
    /// [`ConnectorError::ChangesExpired`], and the caller pulls from the
    /// start and reconciles.
    Delta(String),
}

pub trait Connector: Send + Sync {
    /// The admin's name for this connector.
    fn name(&self) -> &ConnectorName;

    /// The object kinds this CRM has and the connector can pull.
    fn objects(&self) -> &[ObjectKind];

    /// One page of owners (users, queues, teams), active and inactive.
    fn owners(
        &self,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Page<Owner>, ConnectorError>> + Send;

    /// One page of records of `object` changed since `from`, oldest change first.
    fn pull(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> impl Future<Output = Result<Page<CrmRecord>, ConnectorError>> + Send;

    /// One page of ids of `object` records deleted or archived in the CRM.
    fn deletions(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Page<RecordId>, ConnectorError>> + Send;

    /// Sends one batch of actions and reports each one's outcome, in order.
    fn apply(
        &self,
        actions: &[ActionRequest],
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send;

    /// Looks up, in the CRM, which of `keys` were already written, so an action
    /// whose confirmation was lost in a crash is not sent twice.
    fn find_applied(
        &self,
        keys: &[ActionKey],
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send;
}
