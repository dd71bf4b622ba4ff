//! OData text: every value placed in a `$filter` or a key segment goes
//! through here. A text literal is quoted with its single quotes doubled
//! (the OData ABNF's `SQUOTE-in-string`); a GUID is placed unquoted only
//! after it has been checked to be one; a column name is checked to be a
//! plain logical name. Query values are then percent-encoded with `%20`
//! for a space, so no record value, action key or config entry can change
//! a query's meaning.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// `value` as an OData string literal: in single quotes, each quote inside
/// doubled.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Whether `value` is a GUID in its `8-4-4-4-12` hex form.
pub(crate) fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `value` as an unquoted GUID literal (lowercased), or `None` when it is
/// no GUID and must not be placed in a query.
pub(crate) fn guid(value: &str) -> Option<String> {
    is_guid(value).then(|| value.to_ascii_lowercase())
}

/// Whether `name` is a plain column logical name (`salesstage`,
/// `new_customerstage`, `_ownerid_value`): ASCII letters, digits and `_`,
/// not starting with a digit.
pub(crate) fn is_column(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// An unquoted `Edm.DateTimeOffset` literal: `2026-03-02T09:00:00Z`.
pub(crate) fn datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An `Edm.DateTimeOffset` as Dataverse writes it.
pub(crate) fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// An `Edm.Date` (`2026-03-05`), or the date of an `Edm.DateTimeOffset`.
pub(crate) fn parse_date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime(value).map(|at| at.date_naive()))
}

/// What a query value (or key segment) must not hold as it is: besides
/// controls and non-ASCII, whatever would end the value (`&`, `#`), be read
/// as a space (`+`), start an escape (`%`), or break a request line.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `value` percent-encoded for a query value or a key segment.
pub(crate) fn encode(value: &str) -> String {
    utf8_percent_encode(value, VALUE).to_string()
}

/// `$name=value&…`, each value encoded.
pub(crate) fn query_string(options: &[(&str, String)]) -> String {
    options
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an OData string literal back: `None` if a lone quote would
    /// have ended it early.
    fn unquote(literal: &str) -> Option<String> {
        let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\'' && chars.next() != Some('\'') {
                return None;
            }
            out.push(c);
        }
        Some(out)
    }

    #[test]
    fn an_injection_attempt_stays_inside_its_literal() {
        let attack = "' or 1 eq 1 or name eq '";
        let literal = quote(attack);
        assert_eq!(literal, "''' or 1 eq 1 or name eq '''");
        assert_eq!(unquote(&literal).as_deref(), Some(attack));
    }

    #[test]
    fn a_label_with_quotes_round_trips() {
        let label = "Won't Close \"soon\" \\ 100%";
        assert_eq!(unquote(&quote(label)).as_deref(), Some(label));
        assert_eq!(quote("Bob's BBQ"), "'Bob''s BBQ'");
    }

    #[test]
    fn only_guids_are_placed_unquoted() {
        assert_eq!(
            guid("A1B2C3D4-0000-4000-8000-00000000000F").as_deref(),
            Some("a1b2c3d4-0000-4000-8000-00000000000f")
        );
        for bad in [
            "",
            "a1b2c3d4-0000-4000-8000-00000000000",
            "a1b2c3d4-0000-4000-8000-00000000000g",
            "a1b2c3d4-0000-4000-8000-00000000000f or 1 eq 1",
            "a1b2c3d40000-4000-8000-00000000000f0",
            "' or 1 eq 1 or name eq '",
        ] {
            assert_eq!(guid(bad), None, "{bad}");
        }
    }

    #[test]
    fn column_names_are_plain_logical_names_only() {
        for good in ["salesstage", "new_customerstage", "_ownerid_value"] {
            assert!(is_column(good), "{good}");
        }
        for bad in ["", "1x", "name eq 'x'", "a,b", "x'", "name)", "a/b"] {
            assert!(!is_column(bad), "{bad}");
        }
    }

    #[test]
    fn a_query_value_is_encoded_so_that_nothing_in_it_ends_it() {
        let filter = format!("name eq {}", quote("A&B #1 + 50% ok?"));
        let encoded = encode(&filter);
        assert!(!encoded.contains([' ', '&', '#', '+', '?']), "{encoded}");
        let decoded: String = percent_encoding::percent_decode_str(&encoded)
            .decode_utf8()
            .unwrap()
            .into();
        assert_eq!(decoded, filter);
        assert_eq!(
            query_string(&[("$select", "a,b".into()), ("$top", "5".into())]),
            "$select=a,b&$top=5"
        );
    }

    #[test]
    fn dates_and_datetimes_read_as_dataverse_writes_them() {
        let at = parse_datetime("2026-03-02T09:00:00Z").unwrap();
        assert_eq!(datetime(at), "2026-03-02T09:00:00Z");
        assert_eq!(
            parse_date("2026-03-05"),
            NaiveDate::from_ymd_opt(2026, 3, 5)
        );
        assert_eq!(
            parse_date("2026-03-05T12:00:00Z"),
            NaiveDate::from_ymd_opt(2026, 3, 5)
        );
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_date("05/03/2026"), None);
    }
}
