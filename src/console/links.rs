//! The console's own URLs for records and violations, and the link that
//! opens a record in its CRM.

use crate::rules::Violation;
use crate::store::ViolationId;
use journeyd_connector::{ConnectorName, ObjectKind, RecordId};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `/records/CONNECTOR/OBJECT/ID`, each part one encoded segment.
pub(super) fn record_path(connector: &ConnectorName, object: ObjectKind, id: &RecordId) -> String {
    format!(
        "/records/{}/{}/{}",
        utf8_percent_encode(connector.as_str(), SEGMENT),
        object.as_str(),
        utf8_percent_encode(id.as_str(), SEGMENT)
    )
}

/// The record page, at the violation's entry.
pub(super) fn violation_anchor(violation: &Violation, id: ViolationId) -> String {
    format!(
        "{}#v{id}",
        record_path(&violation.connector, violation.object, &violation.record_id)
    )
}

/// A link into a CRM: only web addresses, so that a stored value of
/// another scheme (`javascript:`) never becomes a link.
pub(super) fn crm_link(url: Option<&str>) -> Option<&str> {
    url.filter(|url| {
        let lower = url.trim_start().to_ascii_lowercase();
        lower.starts_with("https://") || lower.starts_with("http://")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_path_encodes_each_segment() {
        let path = record_path(
            &ConnectorName::new("hubspot"),
            ObjectKind::Deal,
            &RecordId::new("a/b c?"),
        );
        assert_eq!(path, "/records/hubspot/deal/a%2Fb%20c%3F");
    }

    #[test]
    fn only_web_addresses_become_crm_links() {
        assert_eq!(
            crm_link(Some("https://app.hubspot.com/contacts/1/record/0-3/9")),
            Some("https://app.hubspot.com/contacts/1/record/0-3/9")
        );
        assert_eq!(crm_link(Some("javascript:alert(1)")), None);
        assert_eq!(crm_link(Some(" JavaScript:alert(1)")), None);
        assert_eq!(crm_link(None), None);
    }
}
