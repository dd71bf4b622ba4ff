//! SOQL text: every value placed in a query goes through here, quoted and
//! escaped per the SOQL reference ("Quoted String Escape Sequences"), and
//! every field name is checked to be a plain API name, so that no record
//! value, action key or config entry can change a query's meaning.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// `value` as a SOQL string literal: in single quotes, with `\`, `'`, `"`,
/// new line, carriage return, tab, bell and form feed escaped, and any other
/// control character written `\uXXXX`.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `(…)` of quoted values, for `IN`.
pub(crate) fn in_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = values.into_iter().map(quote).collect();
    format!("({})", quoted.join(", "))
}

/// A SOQL datetime literal (unquoted, UTC): `2011-07-07T00:37:00Z`.
pub(crate) fn datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Whether `name` is a plain field API name (`Amount`, `Customer_Stage__c`,
/// `Account.Name`): letters, digits, `_` and `.`, starting with a letter.
pub(crate) fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && name.len() <= 255
}

/// A datetime as Salesforce writes it, `2011-07-07T00:37:00.000+0000`
/// (no colon in the offset), or in RFC 3339.
pub(crate) fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// A date as Salesforce writes it: `YYYY-MM-DD`.
pub(crate) fn parse_date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a SOQL string literal back as the SOQL reference defines its
    /// escapes. `None` on anything else.
    fn unquote(literal: &str) -> Option<String> {
        let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => return None,
                '\\' => out.push(match chars.next()? {
                    '\\' => '\\',
                    '\'' => '\'',
                    '"' => '"',
                    'n' | 'N' => '\n',
                    'r' | 'R' => '\r',
                    't' | 'T' => '\t',
                    'b' | 'B' => '\u{7}',
                    'f' | 'F' => '\u{c}',
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                    }
                    _ => return None,
                }),
                c => out.push(c),
            }
        }
        Some(out)
    }

    const NASTY: &str =
        "Closed 'Won' \"big\" C:\\deals\\ 100%_sure\nnext\rline\tcol\u{7}\u{c}\u{1}";

    #[test]
    fn a_stage_name_with_quotes_and_backslashes_round_trips() {
        let literal = quote(NASTY);
        assert_eq!(unquote(&literal).as_deref(), Some(NASTY));
        assert_eq!(quote("Bob's BBQ"), r"'Bob\'s BBQ'");
    }

    #[test]
    fn no_quote_closes_a_literal_early() {
        let literal = quote("x' OR Name != 'y");
        let inner = &literal[1..literal.len() - 1];
        let unescaped_quote = inner
            .char_indices()
            .filter(|(_, c)| *c == '\'')
            .any(|(at, _)| inner[..at].chars().rev().take_while(|c| *c == '\\').count() % 2 == 0);
        assert!(!unescaped_quote, "{literal}");
    }

    #[test]
    fn an_in_list_quotes_every_value() {
        assert_eq!(in_list(["006A", "o'k"]), r"('006A', 'o\'k')");
    }

    #[test]
    fn field_names_are_plain_api_names_only() {
        for good in ["Amount", "Customer_Stage__c", "Account.Name"] {
            assert!(is_field_name(good), "{good}");
        }
        for bad in ["", "1x", "Name FROM User", "a,b", "x'", "Name--"] {
            assert!(!is_field_name(bad), "{bad}");
        }
    }

    #[test]
    fn salesforce_datetimes_read_with_an_offset_without_a_colon() {
        let at = parse_datetime("2011-07-07T00:37:00.000+0000").unwrap();
        assert_eq!(datetime(at), "2011-07-07T00:37:00Z");
        let shifted = parse_datetime("2011-07-07T02:37:00.000+0200").unwrap();
        assert_eq!(shifted, at);
        assert_eq!(parse_datetime("2011-07-07T00:37:00Z"), Some(at));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(
            parse_date("2026-03-01"),
            NaiveDate::from_ymd_opt(2026, 3, 1)
        );
    }
}
