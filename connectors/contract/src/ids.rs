//! Identifiers that cross the connector boundary, as newtypes so that a record
//! id can never be passed where an owner id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// A record's id in its CRM (HubSpot object id, Salesforce 18-char id,
    /// Dataverse GUID). Opaque: never parsed.
    RecordId
);
string_id!(
    /// A CRM user, queue or team that can own records.
    OwnerId
);
string_id!(
    /// The name an admin gave a connector in the config (`[connectors.<name>]`).
    /// It scopes every record, watermark and violation in the store.
    ConnectorName
);
