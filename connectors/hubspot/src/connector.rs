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
