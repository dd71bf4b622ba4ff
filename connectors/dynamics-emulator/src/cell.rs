//! One stored column value, kept compact (the benchmark org holds some
//! 400,000 rows), and its forms: on the wire, in formatted-value
//! annotations, read from a write body, and compared by `$filter` and
//! `$orderby`.

use super::table::{Kind, Table};
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A GUID; its byte order is its text order (lowercase hex), so a
/// `BTreeMap<Guid, _>` iterates in the order `$orderby` on the key gives.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Guid(pub [u8; 16]);

impl Guid {
    /// A version-4 GUID from the seeded generator.
    pub(crate) fn random(rng: &mut fastrand::Rng) -> Self {
        let mut bytes = rng.u128(..).to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// Reads `8-4-4-4-12` hex, either case.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let t = text.as_bytes();
        if t.len() != 36 || [8, 13, 18, 23].iter().any(|&i| t[i] != b'-') {
            return None;
        }
        let hex: Vec<u8> = t.iter().copied().filter(|b| *b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            bytes[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A stored value. Text shares its bytes (`Arc<str>`) so that seeded rows
/// repeating a phrase hold it once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Dec(f64),
    Text(Arc<str>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since the epoch.
    Time(i64),
    /// A lookup without a table of its own here (the business unit).
    Guid(Guid),
    /// A lookup to a row of `Table`.
    Ref(Table, Guid),
}

pub(crate) const DAY_MS: i64 = 86_400_000;

pub(crate) fn text(s: &str) -> Cell {
    Cell::Text(Arc::from(s))
}

/// `2026-03-02T09:00:00Z`: the wire form of `Edm.DateTimeOffset`.
pub(crate) fn datetime(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `2026-03-05`: the wire form of `Edm.Date`.
pub(crate) fn date(days: i32) -> String {
    DateTime::<Utc>::from_timestamp_millis(i64::from(days) * DAY_MS)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp_millis())
}

pub(crate) fn parse_date(text: &str) -> Option<i32> {
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((day - epoch).num_days()).ok()
}

pub(crate) fn days_of(ms: i64) -> i32 {
    i32::try_from(ms.div_euclid(DAY_MS)).unwrap_or_default()
}

impl Cell {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// The value as it goes on the wire.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Int(n) => Value::from(*n),
            Cell::Dec(x) => Value::from(*x),
            Cell::Text(s) => Value::String(s.to_string()),
            Cell::Date(d) => Value::String(date(*d)),
            Cell::Time(ms) => Value::String(datetime(*ms)),
            Cell::Guid(g) | Cell::Ref(_, g) => Value::String(g.to_string()),
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The formatted-value annotation of a value of this kind (choice
    /// labels come from the caller, which knows the org's extra options).
    pub(crate) fn formatted(&self, kind: Kind) -> Option<String> {
        match (self, kind) {
            (Cell::Bool(b), _) => Some(if *b { "Yes" } else { "No" }.to_owned()),
            (Cell::Dec(x), Kind::Money) => Some(money(*x)),
            (Cell::Int(n), Kind::Int) => Some(grouped(n.unsigned_abs(), *n < 0)),
            (Cell::Date(d), _) => {
                let at = DateTime::<Utc>::from_timestamp_millis(i64::from(*d) * DAY_MS)?;
                Some(format!("{}/{}/{}", at.month(), at.day(), at.year()))
            }
            (Cell::Time(ms), _) => {
                let at = DateTime::<Utc>::from_timestamp_millis(*ms)?;
                let (pm, hour) = at.hour12();
                Some(format!(
                    "{}/{}/{} {}:{:02} {}",
                    at.month(),
                    at.day(),
                    at.year(),
                    hour,
                    at.minute(),
                    if pm { "PM" } else { "AM" }
                ))
            }
            _ => None,
        }
    }

    /// Reads a write body's JSON value for a column of `kind`; `Err` holds
    /// the name of the type the value should have had.
    pub(crate) fn from_json(kind: Kind, value: &Value) -> Result<Cell, &'static str> {
        if value.is_null() {
            return Ok(Cell::Null);
        }
        match kind {
            Kind::Text { .. } | Kind::AltKey => value.as_str().map(text).ok_or("Edm.String"),
            Kind::Int | Kind::Choice(_) | Kind::State(_) | Kind::Status(_) => value
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(|n| Cell::Int(i64::from(n)))
                .ok_or("Edm.Int32"),
            Kind::Money => value.as_f64().map(Cell::Dec).ok_or("Edm.Decimal"),
            Kind::Bool => value.as_bool().map(Cell::Bool).ok_or("Edm.Boolean"),
            Kind::Date => value
                .as_str()
                .and_then(parse_date)
                .map(Cell::Date)
                .ok_or("Edm.Date"),
            Kind::DateTime => value
                .as_str()
                .and_then(parse_datetime)
                .map(Cell::Time)
                .ok_or("Edm.DateTimeOffset"),
            Kind::Key | Kind::Lookup(_) => value
                .as_str()
                .and_then(Guid::parse)
                .map(Cell::Guid)
                .ok_or("Edm.Guid"),
            Kind::Version => Err("Edm.Int64"),
        }
    }

    /// How two values order for `$filter` and `$orderby`: null first,
    /// text without regard to case (?), numbers across int and decimal,
    /// dates against datetimes at midnight UTC. `None`: not comparable.
    pub(crate) fn compare(&self, other: &Cell) -> Option<Ordering> {
        use Cell::*;
        match (self, other) {
            (Null, Null) => Some(Ordering::Equal),
            (Null, _) => Some(Ordering::Less),
            (_, Null) => Some(Ordering::Greater),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Int(a), Dec(b)) => (*a as f64).partial_cmp(b),
            (Dec(a), Int(b)) => a.partial_cmp(&(*b as f64)),
            (Dec(a), Dec(b)) => a.partial_cmp(b),
            (Text(a), Text(b)) => Some(fold(a).cmp(&fold(b))),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Time(a), Time(b)) => Some(a.cmp(b)),
            (Date(a), Time(b)) => Some((i64::from(*a) * DAY_MS).cmp(b)),
            (Time(a), Date(b)) => Some(a.cmp(&(i64::from(*b) * DAY_MS))),
            (Guid(a) | Ref(_, a), Guid(b) | Ref(_, b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Text folded for comparisons that ignore case.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// `$12,000.00`.
fn money(x: f64) -> String {
    let cents = (x.abs() * 100.0).round() as u64;
    let whole = grouped(cents / 100, false);
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}${whole}.{:02}", cents % 100)
}

/// `12,000`.
fn grouped(n: u64, negative: bool) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if negative { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_read_either_case_and_write_lowercase() {
        let g = Guid::parse("3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap();
        assert_eq!(g.to_string(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        assert!(Guid::parse("3f2504e0-4f89-11d3-9a0c-0305e82c330").is_none());
        assert!(Guid::parse("3f2504e0x4f89-11d3-9a0c-0305e82c3301").is_none());
    }

    #[test]
    fn formatted_values_read_as_a_us_english_org_shows_them() {
        assert_eq!(money(12_000.0), "$12,000.00");
        assert_eq!(money(1_234_567.5), "$1,234,567.50");
        let d = parse_date("2026-03-05").unwrap();
        assert_eq!(Cell::Date(d).formatted(Kind::Date).unwrap(), "3/5/2026");
        let t = parse_datetime("2026-03-02T13:05:00Z").unwrap();
        assert_eq!(
            Cell::Time(t).formatted(Kind::DateTime).unwrap(),
            "3/2/2026 1:05 PM"
        );
        assert_eq!(date(d), "2026-03-05");
        assert_eq!(datetime(t), "2026-03-02T13:05:00Z");
    }
}
