//! The violations page's query string, as typed values: the filters, the
//! page size and where the page starts. A value that names nothing is
//! dropped and said, never an error page.

use crate::journey::StageId;
use crate::rules::{RuleId, Severity};
use crate::store::{ListPosition, Sort, ViolationFilter, ViolationId, ViolationStatus};
use journeyd_connector::{ConnectorName, OwnerId};
use serde::Deserialize;
use std::num::NonZeroUsize;

/// Records per page: with their entries, about as many lines as an admin
/// reads at once, and a light page.
pub(super) const PAGE: usize = 25;

/// `/violations?connector=&rule=&severity=&status=&owner=&stage=&q=&sort=&after=`,
/// as written. Empty values are no filter (what an empty form sends).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ListQuery {
    pub connector: Option<String>,
    pub rule: Option<String>,
    /// The lowest severity shown: `low`, `medium` or `high`.
    pub severity: Option<String>,
    /// A status, `active` (open and acknowledged, the default) or `all`.
    pub status: Option<String>,
    pub owner: Option<String>,
    pub stage: Option<String>,
    /// Text in the record's name or the message, or a record id.
    pub q: Option<String>,
    /// `severity` (most severe first, the default), `newest` or `oldest`.
    pub sort: Option<String>,
    /// Where the page before ended: `SEVERITY-ID` of its last record's
    /// first violation, or the `ID` alone in the newest or oldest order.
    pub after: Option<String>,
    /// `all` to count every match, past [`COUNTED`].
    pub count: Option<String>,
    /// What the last bulk action did, to say above the list.
    pub done: Option<String>,
}

/// Matches counted by default: past this, the page says "more than", so
/// that it costs the same in a log of any size.
pub(super) const COUNTED: u64 = crate::store::RecordPage::COUNTED;

/// The filter a query asks for, and what in it named nothing.
pub(super) struct Parsed {
    pub filter: ViolationFilter,
    pub dropped: Vec<String>,
}

impl ListQuery {
    /// The value of a field, trimmed; `None` when empty.
    pub(super) fn value(field: &Option<String>) -> Option<&str> {
        field.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// The order asked for; the default for one that names none.
    pub(super) fn sort(&self) -> Sort {
        Self::value(&self.sort)
            .and_then(Sort::parse)
            .unwrap_or_default()
    }

    /// Whether every match is to be counted.
    pub(super) fn count_all(&self) -> bool {
        Self::value(&self.count) == Some("all")
    }

    pub(super) fn parse(&self) -> Parsed {
        let mut dropped = Vec::new();
        let statuses = match Self::value(&self.status) {
            None | Some("active") => vec![ViolationStatus::Open, ViolationStatus::Acknowledged],
            Some("all") => Vec::new(),
            Some(other) => match ViolationStatus::parse(other) {
                Some(status) => vec![status],
                None => {
                    dropped.push(format!("status `{other}`"));
                    vec![ViolationStatus::Open, ViolationStatus::Acknowledged]
                }
            },
        };
        let min_severity = Self::value(&self.severity).and_then(|s| {
            let found = parse_severity(s);
            if found.is_none() {
                dropped.push(format!("severity `{s}`"));
            }
            found
        });
        let sort = self.sort();
        if let Some(other) = Self::value(&self.sort).filter(|s| Sort::parse(s).is_none()) {
            dropped.push(format!("order `{other}`"));
        }
        let after = Self::value(&self.after).and_then(|a| {
            let found = parse_position(a, sort);
            if found.is_none() {
                dropped.push(format!("page position `{a}`"));
            }
            found
        });
        let filter = ViolationFilter {
            statuses,
            rule: Self::value(&self.rule).map(RuleId::new),
            stage: Self::value(&self.stage).map(StageId::new),
            owner_id: Self::value(&self.owner).map(OwnerId::new),
            connector: Self::value(&self.connector).map(ConnectorName::new),
            min_severity,
            text: Self::value(&self.q).map(str::to_owned),
            after,
            // One more than shown tells whether a next page exists.
            limit: NonZeroUsize::new(PAGE + 1),
            sort,
            ..ViolationFilter::default()
        };
        Parsed { filter, dropped }
    }

    /// This query's filters, on the page after `position` (the first page
    /// for `None`).
    pub(super) fn page_link(&self, after: Option<ListPosition>) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("connector", &self.connector),
            ("rule", &self.rule),
            ("severity", &self.severity),
            ("status", &self.status),
            ("owner", &self.owner),
            ("stage", &self.stage),
            ("q", &self.q),
            ("sort", &self.sort),
            ("count", &self.count),
        ] {
            if let Some(value) = Self::value(value) {
                pairs.append_pair(key, value);
            }
        }
        if let Some(position) = after {
            pairs.append_pair("after", &format_position(position, self.sort()));
        }
        format!("/violations?{}", pairs.finish())
    }
}

pub(super) fn parse_severity(value: &str) -> Option<Severity> {
    match value {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

fn format_position(position: ListPosition, sort: Sort) -> String {
    match sort {
        Sort::Severity => format!("{}-{}", position.severity.as_str(), position.id),
        Sort::Newest | Sort::Oldest => position.id.to_string(),
    }
}

fn parse_position(value: &str, sort: Sort) -> Option<ListPosition> {
    match sort {
        Sort::Severity => {
            let (severity, id) = value.split_once('-')?;
            Some(ListPosition {
                severity: parse_severity(severity)?,
                id: ViolationId(id.parse().ok()?),
            })
        }
        // The id orders read the id only.
        Sort::Newest | Sort::Oldest => Some(ListPosition {
            severity: Severity::Low,
            id: ViolationId(value.parse().ok()?),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_query_lists_open_and_acknowledged_violations() {
        let parsed = ListQuery::default().parse();
        assert_eq!(
            parsed.filter.statuses,
            vec![ViolationStatus::Open, ViolationStatus::Acknowledged]
        );
        assert!(parsed.dropped.is_empty());
    }

    #[test]
    fn empty_fields_are_no_filter() {
        let query = ListQuery {
            rule: Some(" ".into()),
            severity: Some(String::new()),
            ..ListQuery::default()
        };
        let parsed = query.parse();
        assert_eq!(parsed.filter.rule, None);
        assert_eq!(parsed.filter.min_severity, None);
    }

    #[test]
    fn values_that_name_nothing_are_dropped_and_said() {
        let query = ListQuery {
            severity: Some("urgent".into()),
            after: Some("x".into()),
            status: Some("gone".into()),
            ..ListQuery::default()
        };
        let parsed = query.parse();
        assert_eq!(parsed.filter.min_severity, None);
        assert_eq!(parsed.filter.after, None);
        assert_eq!(parsed.dropped.len(), 3);
    }

    #[test]
    fn the_next_page_keeps_the_filters_and_starts_after_the_last_row() {
        let query = ListQuery {
            rule: Some("stalled".into()),
            q: Some("acme & co".into()),
            ..ListQuery::default()
        };
        let position = ListPosition {
            severity: Severity::High,
            id: ViolationId(42),
        };
        let next = query.page_link(Some(position));
        assert_eq!(next, "/violations?rule=stalled&q=acme+%26+co&after=high-42");
        let again = ListQuery {
            after: Some("high-42".into()),
            ..query
        };
        assert_eq!(again.parse().filter.after, Some(position));
    }
}
