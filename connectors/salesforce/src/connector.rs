//! [`SalesforceConnector`]: the contract's `Connector` for Salesforce.

use crate::settings::{SalesforceCredentials, SalesforceSettings};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, Connector, ConnectorError, ConnectorName, CrmRecord,
    ObjectKind, Owner, Page, RecordId,
};

pub struct SalesforceConnector {
    name: ConnectorName,
}

impl SalesforceConnector {
    pub fn new(
        name: ConnectorName,
        settings: SalesforceSettings,
        credentials: SalesforceCredentials,
    ) -> Result<Self, ConnectorError> {
        let _ = (settings, credentials);
        Err(ConnectorError::Unsupported {
            connector: name.to_string(),
            object: ObjectKind::Deal,
        })
    }
}

impl Connector for SalesforceConnector {
    fn name(&self) -> &ConnectorName {
        &self.name
    }

    fn objects(&self) -> &[ObjectKind] {
        &ObjectKind::ALL
    }

    async fn owners(&self, cursor: Option<String>) -> Result<Page<Owner>, ConnectorError> {
        let _ = cursor;
        todo!()
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        let _ = (object, from);
        todo!()
    }

    async fn deletions(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> Result<Page<RecordId>, ConnectorError> {
        let _ = (object, cursor);
        todo!()
    }

    async fn apply(&self, actions: &[ActionRequest]) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let _ = actions;
        todo!()
    }

    async fn find_applied(&self, keys: &[ActionKey]) -> Result<Vec<ActionOutcome>, ConnectorError> {
        let _ = keys;
        todo!()
    }
}
