//! One page of pulled data.
//!
//! A page carries its good items and, separately, what had to be skipped and
//! why: one malformed record never fails the page it came in.

use crate::ids::RecordId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How far a sync has read: the last modification time seen and, to break
/// ties on that time, the id of the last record at it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Watermark {
    pub modified_at: DateTime<Utc>,
    pub id: RecordId,
}

/// A record the connector could not turn into a [`crate::CrmRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The record's id where it could be read, else a position in the page.
    pub id: String,
    pub reason: String,
}

/// One page of items of a pull, plus the opaque cursor for the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub skipped: Vec<Skipped>,
    /// `None` when this was the last page.
    pub next: Option<String>,
    /// Records the CRM reported deleted among these changes: a change feed
    /// (Dataverse change tracking) sends deletions in line with the
    /// changed records. Only record pulls fill it.
    pub removed: Vec<RecordId>,
    /// Where the next incremental pull of this object starts, for a CRM
    /// that hands out such a link (a Dataverse delta link) instead of
    /// being asked by modification time; set on the last page of a pull.
    pub delta: Option<String>,
    /// How many items the query this page belongs to holds, where the CRM
    /// says (Salesforce's `totalSize`, a HubSpot search's `total`): what
    /// bounds the pages a pull may take before it is deemed endless.
    pub total: Option<u64>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            skipped: Vec::new(),
            next: None,
            removed: Vec::new(),
            delta: None,
            total: None,
        }
    }
}
