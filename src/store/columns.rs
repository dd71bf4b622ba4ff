//! How values cross the SQL boundary: timestamps, dates, severities and the
//! closed sets' names, written one way and read back with a clear error.

use crate::rules::Severity;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use journeyd_connector::ObjectKind;
use rusqlite::Row;
use rusqlite::types::{Type, ValueRef};

/// A timestamp as stored: RFC 3339 UTC with nine fractional digits. Fixed
/// width, so that text order is time order, and lossless.
pub(super) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A date as stored: `YYYY-MM-DD`.
pub(super) fn date(day: NaiveDate) -> String {
    day.format("%F").to_string()
}

pub(super) fn severity_rank(severity: Severity) -> i64 {
    match severity {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
    }
}

fn severity_of_rank(rank: i64) -> Option<Severity> {
    match rank {
        0 => Some(Severity::Low),
        1 => Some(Severity::Medium),
        2 => Some(Severity::High),
        _ => None,
    }
}

/// Reads column `idx` as a timestamp.
pub(super) fn get_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text = row.get_ref(idx)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(err)))
}

/// Reads nullable column `idx` as a timestamp.
pub(super) fn get_opt_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get_ref(idx)? {
        ValueRef::Null => Ok(None),
        _ => get_ts(row, idx).map(Some),
    }
}

pub(super) fn get_object(row: &Row<'_>, idx: usize) -> rusqlite::Result<ObjectKind> {
    get_named(row, idx, ObjectKind::parse)
}

pub(super) fn get_severity(row: &Row<'_>, idx: usize) -> rusqlite::Result<Severity> {
    let rank: i64 = row.get(idx)?;
    severity_of_rank(rank).ok_or_else(|| unknown_value(idx, Type::Integer, &rank.to_string()))
}

/// Reads column `idx` as one of a closed set of names.
pub(super) fn get_named<T>(
    row: &Row<'_>,
    idx: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text = row.get_ref(idx)?.as_str()?;
    parse(text).ok_or_else(|| unknown_value(idx, Type::Text, text))
}

fn unknown_value(idx: usize, ty: Type, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, format!("unknown value {value:?}").into())
}

/// Declares a closed set stored as its lowercase names: `as_str`, `parse`,
/// `Display`, and the rusqlite conversions.
macro_rules! sql_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {text:?}", stringify!($name)).into(),
                    )
                })
            }
        }
    };
}
pub(super) use sql_enum;

/// Wraps an integer id newtype for rusqlite.
macro_rules! sql_id {
    ($name:ident) => {
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.0))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value.as_i64().map($name)
            }
        }
    };
}
pub(super) use sql_id;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stored_timestamps_have_fixed_width_so_text_order_is_time_order() {
        let whole = Utc.with_ymd_and_hms(2024, 5, 1, 2, 0, 0).unwrap();
        let later = whole + chrono::Duration::milliseconds(500);
        assert_eq!(ts(whole), "2024-05-01T02:00:00.000000000Z");
        assert!(ts(whole) < ts(later));
    }
}
