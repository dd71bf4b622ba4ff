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
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

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

/// How a connector makes sure that a write whose outcome was never
/// confirmed (a crash, a lost answer, a server that went on after its
/// client died) is not made twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Every write is idempotent by construction: a create names the record
    /// it makes (Dataverse: a primary key journeyd chose, created with
    /// `If-None-Match: *`; Salesforce: an upsert by an external id), so an
    /// unconfirmed write is simply sent again, and sending it while an
    /// orphaned request still runs on the server cannot duplicate it.
    Resend,
    /// A create carries its key into the CRM and is looked up by it with
    /// [`Connector::find_applied`] before anything is sent again, but no
    /// sooner than `settle` after it was sent: the time within which the
    /// CRM may still be finishing the request, or its search index may not
    /// show it yet. Only creates are looked up; other writes are resent.
    LookUp { settle: Duration },
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

    /// Sends one batch of actions and reports each one's outcome, in order:
    /// `Applied`, `Failed` (certainly not written) or `Unknown` (the reply
    /// proves nothing). `Err` means no action's outcome is known.
    fn apply(
        &self,
        actions: &[ActionRequest],
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send;

    /// How an unconfirmed write of this connector is settled.
    fn recovery(&self) -> Recovery;

    /// Looks up, in the CRM, which of the creates `keys` were already
    /// written, so a create whose confirmation was lost is not sent twice.
    /// `since` is when the earliest of them was sent: what the CRM holds
    /// from before cannot be one of them. Reports an `Applied` outcome for
    /// each key found, and leaves out the rest. Only asked under
    /// [`Recovery::LookUp`], once its `settle` time has passed.
    fn find_applied(
        &self,
        keys: &[ActionKey],
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ActionOutcome>, ConnectorError>> + Send;
}
