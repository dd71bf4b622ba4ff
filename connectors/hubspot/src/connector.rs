//! [`HubspotConnector`]: the contract's `Connector` for HubSpot.

use crate::settings::{HubspotCredentials, HubspotSettings};
use journeyd_connector::{ConnectorError, ConnectorName};

pub struct HubspotConnector {
    _private: (),
}

impl HubspotConnector {
    pub fn new(
        name: ConnectorName,
        settings: HubspotSettings,
        credentials: HubspotCredentials,
    ) -> Result<Self, ConnectorError> {
        let _ = (name, settings, credentials);
        todo!()
    }
}

impl journeyd_connector::Connector for HubspotConnector {
    fn name(&self) -> &ConnectorName {
        todo!()
    }

    fn objects(&self) -> &[journeyd_connector::ObjectKind] {
        todo!()
    }

    async fn owners(
        &self,
        cursor: Option<String>,
    ) -> Result<journeyd_connector::Page<journeyd_connector::Owner>, ConnectorError> {
        let _ = cursor;
        todo!()
    }

    async fn pull(
        &self,
        object: journeyd_connector::ObjectKind,
        from: journeyd_connector::connector::PullFrom,
    ) -> Result<journeyd_connector::Page<journeyd_connector::CrmRecord>, ConnectorError> {
        let _ = (object, from);
        todo!()
    }

    async fn deletions(
        &self,
        object: journeyd_connector::ObjectKind,
        cursor: Option<String>,
    ) -> Result<journeyd_connector::Page<journeyd_connector::RecordId>, ConnectorError> {
        let _ = (object, cursor);
        todo!()
    }

    async fn apply(
        &self,
        actions: &[journeyd_connector::ActionRequest],
    ) -> Result<Vec<journeyd_connector::ActionOutcome>, ConnectorError> {
        let _ = actions;
        todo!()
    }

    async fn find_applied(
        &self,
        keys: &[journeyd_connector::ActionKey],
    ) -> Result<Vec<journeyd_connector::ActionOutcome>, ConnectorError> {
        let _ = keys;
        todo!()
    }
}
