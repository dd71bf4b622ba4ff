//! How far incremental sync has read, per connector and object kind: the
//! last modification time and id seen, the CRM's cursor mid-pull, and,
//! for a CRM with change tracking, the delta link the next pull starts from.

use super::columns::{get_ts, ts};
use super::{SqlContext, Store, StoreError};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, ObjectKind, RecordId, Watermark};
use rusqlite::{Connection, OptionalExtension, params};

/// A watermark as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWatermark {
    pub watermark: Watermark,
    /// The CRM's paging cursor, when a pull stopped between pages.
    pub cursor: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub fn watermark(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
    ) -> Result<Option<StoredWatermark>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT modified_at, record_id, cursor, updated_at FROM watermarks
                 WHERE connector = ?1 AND object = ?2",
            )
            .op("prepare reading a watermark")?
            .query_row(params![connector.as_str(), object.as_str()], |row| {
                Ok(StoredWatermark {
                    watermark: Watermark {
                        modified_at: get_ts(row, 0)?,
                        id: RecordId::new(row.get::<_, String>(1)?),
                    },
                    cursor: row.get(2)?,
                    updated_at: get_ts(row, 3)?,
                })
            })
            .optional()
            .op("read a watermark")
    }

    /// Sets the watermark on its own. A sync that stores a page should use
    /// [`Store::store_page`], which moves the watermark with the data.
    pub fn set_watermark(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        watermark: &Watermark,
        cursor: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set(&self.conn, connector, object, watermark, cursor, at)
    }

    /// Forgets the cursor saved mid-pull of `object` (the CRM refused it),
    /// keeping the watermark.
    pub fn forget_cursor(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_cursor(&self.conn, connector, object, None, at)
    }
}

impl Store {
    /// The delta link the last complete pull of `object` ended with.
    pub fn delta_link(
        &self,
        connector: &ConnectorName,
        object: ObjectKind,
    ) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT link FROM delta_links WHERE connector = ?1 AND object = ?2")
            .op("prepare reading a delta link")?
            .query_row(params![connector.as_str(), object.as_str()], |row| {
                row.get(0)
            })
            .optional()
            .op("read a delta link")
    }

    /// Forgets the delta link of `object`: the CRM no longer honours it.
    pub fn drop_delta_link(
        &mut self,
        connector: &ConnectorName,
        object: ObjectKind,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM delta_links WHERE connector = ?1 AND object = ?2")
            .op("prepare dropping a delta link")?
            .execute(params![connector.as_str(), object.as_str()])
            .op("drop a delta link")?;
        Ok(())
    }
}

pub(super) fn set_delta_link(
    conn: &Connection,
    connector: &ConnectorName,
    object: ObjectKind,
    link: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO delta_links (connector, object, link, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (connector, object) DO UPDATE SET
             link = excluded.link, updated_at = excluded.updated_at",
    )
    .op("prepare setting a delta link")?
    .execute(params![connector.as_str(), object.as_str(), link, ts(at)])
    .op("set a delta link")?;
    Ok(())
}

pub(super) fn set(
    conn: &Connection,
    connector: &ConnectorName,
    object: ObjectKind,
    watermark: &Watermark,
    cursor: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO watermarks (connector, object, modified_at, record_id, cursor, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (connector, object) DO UPDATE SET
             modified_at = excluded.modified_at, record_id = excluded.record_id,
             cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .op("prepare setting a watermark")?
    .execute(params![
        connector.as_str(),
        object.as_str(),
        ts(watermark.modified_at),
        watermark.id.as_str(),
        cursor,
        ts(at)
    ])
    .op("set a watermark")?;
    Ok(())
}

/// Moves only the cursor of an existing watermark.
pub(super) fn set_cursor(
    conn: &Connection,
    connector: &ConnectorName,
    object: ObjectKind,
    cursor: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE watermarks SET cursor = ?3, updated_at = ?4 WHERE connector = ?1 AND object = ?2",
    )
    .op("prepare setting a sync cursor")?
    .execute(params![connector.as_str(), object.as_str(), cursor, ts(at)])
    .op("set a sync cursor")?;
    Ok(())
}
