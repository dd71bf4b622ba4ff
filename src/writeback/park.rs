//! Parking: a write that failed [`MAX_ATTEMPTS`] times is set aside for an
//! admin instead of being tried forever. It stays in the ledger, `parked`,
//! with how often it failed and the last reason, and no run sends it again
//! (a record's task with a parked write waits for the admin too).

use super::MAX_ATTEMPTS;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use journeyd_connector::ConnectorName;

/// Parks every write of `connector` that failed [`MAX_ATTEMPTS`] times.
/// Returns how many it parked.
pub fn park_exhausted(
    store: &mut Store,
    connector: &ConnectorName,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let parked = store.ledger_park_exhausted(connector, MAX_ATTEMPTS, at)?;
    if parked > 0 {
        tracing::warn!(
            connector = %connector,
            parked,
            "write-back actions failed {MAX_ATTEMPTS} times and are parked for an admin"
        );
    }
    Ok(parked)
}
