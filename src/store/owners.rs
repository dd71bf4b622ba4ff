//! The CRM users, queues and teams that own records, per connector.
//!
//! Owners missing from a later list are kept: a user who left still owns
//! records until they are reassigned; `last_seen` tells when the CRM last
//! listed them.

use super::columns::ts;
use super::{SqlContext, Store, StoreError, json_error};
use chrono::{DateTime, Utc};
use journeyd_connector::{ConnectorName, Owner, OwnerId};
use rusqlite::params;

impl Store {
    /// Stores `owners` of `connector` in one transaction.
    pub fn upsert_owners(
        &mut self,
        connector: &ConnectorName,
        owners: &[Owner],
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().op("begin an owner upsert")?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO owners (connector, id, name, email, active, teams, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (connector, id) DO UPDATE SET
                         name = excluded.name, email = excluded.email, active = excluded.active,
                         teams = excluded.teams, last_seen = excluded.last_seen",
                )
                .op("prepare an owner upsert")?;
            let seen = ts(seen_at);
            for owner in owners {
                let teams = serde_json::to_string(&owner.teams)
                    .map_err(json_error(format!("the teams of owner {}", owner.id)))?;
                stmt.execute(params![
                    connector.as_str(),
                    owner.id.as_str(),
                    owner.name,
                    owner.email,
                    owner.active,
                    teams,
                    seen
                ])
                .op("upsert an owner")?;
            }
        }
        tx.commit().op("commit an owner upsert")
    }

    /// Every owner of `connector` the store knows, by id.
    pub fn owners(&self, connector: &ConnectorName) -> Result<Vec<Owner>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, name, email, active, teams FROM owners WHERE connector = ?1 ORDER BY id",
            )
            .op("prepare listing owners")?;
        let mut rows = stmt.query([connector.as_str()]).op("list owners")?;
        let mut owners = Vec::new();
        while let Some(row) = rows.next().op("list owners")? {
            let id = OwnerId::new(row.get::<_, String>(0).op("read an owner")?);
            let teams: String = row.get(4).op("read an owner")?;
            let teams = serde_json::from_str(&teams)
                .map_err(json_error(format!("the teams of owner {id}")))?;
            owners.push(Owner {
                name: row.get(1).op("read an owner")?,
                email: row.get(2).op("read an owner")?,
                active: row.get(3).op("read an owner")?,
                teams,
                id,
            });
        }
        Ok(owners)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestStore, day, hubspot};
    use super::*;

    #[test]
    fn owners_are_upserted_per_connector_and_kept_when_no_longer_listed() {
        let mut test = TestStore::new();
        let store = &mut test.store;
        let ann = Owner {
            id: OwnerId::new("u1"),
            name: "Ann".into(),
            email: Some("ann@example.com".into()),
            active: true,
            teams: vec!["Sales EMEA".into()],
        };
        let bob = Owner {
            id: OwnerId::new("u2"),
            name: "Bob".into(),
            email: None,
            active: true,
            teams: vec![],
        };
        store
            .upsert_owners(&hubspot(), &[ann.clone(), bob.clone()], day(1, 0))
            .unwrap();
        let left = Owner {
            active: false,
            ..ann
        };
        store
            .upsert_owners(&hubspot(), std::slice::from_ref(&left), day(2, 0))
            .unwrap();
        assert_eq!(store.owners(&hubspot()).unwrap(), vec![left, bob]);
        assert!(store.owners(&ConnectorName::new("eu")).unwrap().is_empty());
    }
}
