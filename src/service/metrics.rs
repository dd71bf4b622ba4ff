//! The daemon's Prometheus metrics: what each sync, audit and write-back
//! run did, how long it took, what is open in the violations log, and how
//! hard each connector leaned on its CRM's API.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client,
//! rather than the `metrics` facade and its Prometheus exporter: the daemon
//! owns one [`Metrics`] value and hands it to whatever records or serves
//! them, with no process-wide recorder to install (two daemons in one test
//! process, or tests running in parallel, never share counts), no HTTP
//! server of its own (the health listener serves the text), and label sets
//! that are typed structs, so the only labels a series can carry are the
//! ones written here: `connector`, `rule`, `kind`, `route`, `status`.
//! Connector names and rule ids come from the config, routes are the
//! connectors' route templates, kinds and statuses are fixed words: never a
//! record id, a URL, a query string or a secret.
//!
//! The text is OpenMetrics (served as such; Prometheus reads it): counters
//! end in `_total`, the duration histogram in `_seconds`, and every name
//! starts with `journeyd_`.
//!
//! The daemon calls, after each run, [`Metrics::record_sync`],
//! [`Metrics::record_audit`], [`Metrics::record_writeback`] and
//! [`Metrics::record_api`]; [`Metrics::refresh_open_violations`] once at
//! start, so that the open-violations gauges do not wait for the first
//! audit.

use crate::audit::AuditSummary;
use crate::rules::RuleId;
use crate::store::{RunKind, RunStatus, StoreError, StoreHandle};
use crate::sync::SyncSummary;
use crate::telemetry::ErrorChain;
use crate::writeback::WritebackReport;
use journeyd_connector::ConnectorName;
use journeyd_connector::http::CallStats;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What `/metrics` answers with: the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this, then `_`.
const PREFIX: &str = "journeyd";

/// Run durations from a quarter second (an incremental sync with nothing
/// new) to a little over two hours (a full pull of a large CRM).
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 16))
}

/// A connector and a fixed word: records by outcome, writes by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectorKind {
    connector: String,
    kind: &'static str,
}

/// A run's kind, and its connector where it has one (audits have none: the
/// label is then left out, not written empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RunLabels {
    kind: &'static str,
    connector: Option<String>,
}

impl EncodeLabelSet for RunLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        if let Some(connector) = &self.connector {
            ("connector", connector.as_str()).encode(encoder.encode_label())?;
        }
        ("kind", self.kind).encode(encoder.encode_label())
    }
}

/// [`RunLabels`] and how the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RunStatusLabels {
    run: RunLabels,
    status: &'static str,
}

impl EncodeLabelSet for RunStatusLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        self.run.encode(encoder)?;
        ("status", self.status).encode(encoder.encode_label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelSet)]
struct ConnectorRule {
    connector: String,
    rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectorRoute {
    connector: String,
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectorOnly {
    connector: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindOnly {
    kind: &'static str,
}

/// The daemon's metrics. Cheap to clone: the clones share every series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    sync_records: Family<ConnectorKind, Counter>,
    runs: Family<RunStatusLabels, Counter>,
    run_duration: Family<RunLabels, Histogram, fn() -> Histogram>,
    audit_records: Counter,
    audit_violations: Family<KindOnly, Counter>,
    violations_open: Family<ConnectorRule, Gauge>,
    /// Every (connector, rule) given a gauge so far: one that has no open
    /// violation any more is set to zero, not left at its old count.
    open_seen: Mutex<BTreeSet<ConnectorRule>>,
    writeback_writes: Family<ConnectorKind, Counter>,
    api_requests: Family<ConnectorRoute, Counter>,
    api_retries: Family<ConnectorOnly, Counter>,
    api_throttled: Family<ConnectorOnly, Counter>,
    api_limit_requests: Family<ConnectorOnly, Gauge>,
    api_limit_period: Family<ConnectorOnly, Gauge>,
    api_daily_used: Family<ConnectorOnly, Gauge>,
    api_daily_allowed: Family<ConnectorOnly, Gauge>,
    /// Each connector's client counts as last recorded: the client's counts
    /// are cumulative, the counters here grow by the difference.
    api_last: Mutex<BTreeMap<ConnectorName, CallStats>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, none with a series yet.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let sync_records = Family::<ConnectorKind, Counter>::default();
        registry.register(
            "sync_records",
            "Records a sync pulled, by connector and what became of them (new, changed, unchanged, skipped as unreadable, deleted)",
            sync_records.clone(),
        );
        let runs = Family::<RunStatusLabels, Counter>::default();
        registry.register(
            "runs",
            "Runs finished, by kind (sync, audit, writeback), connector and status (ok, partial, failed)",
            runs.clone(),
        );
        let run_duration: Family<RunLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "run_duration",
            "How long runs took, by kind and connector",
            Unit::Seconds,
            run_duration.clone(),
        );
        let audit_records = Counter::default();
        registry.register(
            "audit_records",
            "Records evaluated by audits",
            audit_records.clone(),
        );
        let audit_violations = Family::<KindOnly, Counter>::default();
        registry.register(
            "audit_violations",
            "Changes audits made to the violations log, by kind (opened, reopened, resolved, unsuppressed)",
            audit_violations.clone(),
        );
        let violations_open = Family::<ConnectorRule, Gauge>::default();
        registry.register(
            "violations_open",
            "Open violations by connector and rule, as of the last audit",
            violations_open.clone(),
        );
        let writeback_writes = Family::<ConnectorKind, Counter>::default();
        registry.register(
            "writeback_writes",
            "Writes of applied write-back runs, by connector and outcome: applied; deduplicated (not sent: found already written in the CRM after a crash, or already in the ledger, counted at each run that would have sent it again); failed; parked; unknown (sent, but the answer proved nothing: settled by the next run)",
            writeback_writes.clone(),
        );
        let api_requests = Family::<ConnectorRoute, Counter>::default();
        registry.register(
            "api_requests",
            "HTTP requests sent to a CRM, retries included, by connector and route template",
            api_requests.clone(),
        );
        let api_retries = Family::<ConnectorOnly, Counter>::default();
        registry.register(
            "api_retries",
            "Requests sent again after a retryable failure, by connector",
            api_retries.clone(),
        );
        let api_throttled = Family::<ConnectorOnly, Counter>::default();
        registry.register(
            "api_throttled",
            "429 answers received from a CRM, by connector",
            api_throttled.clone(),
        );
        let api_limit_requests = Family::<ConnectorOnly, Gauge>::default();
        registry.register(
            "api_limit_requests",
            "The requests each connector's client lets through per period (its rate limiter)",
            api_limit_requests.clone(),
        );
        let api_limit_period = Family::<ConnectorOnly, Gauge>::default();
        registry.register_with_unit(
            "api_limit_period",
            "The period of each connector's rate limiter",
            Unit::Seconds,
            api_limit_period.clone(),
        );
        let api_daily_used = Family::<ConnectorOnly, Gauge>::default();
        registry.register(
            "api_daily_used",
            "Calls of the CRM's daily API allowance used, as the CRM last reported (Salesforce)",
            api_daily_used.clone(),
        );
        let api_daily_allowed = Family::<ConnectorOnly, Gauge>::default();
        registry.register(
            "api_daily_allowed",
            "The CRM's daily API allowance, as it last reported (Salesforce)",
            api_daily_allowed.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                sync_records,
                runs,
                run_duration,
                audit_records,
                audit_violations,
                violations_open,
                open_seen: Mutex::default(),
                writeback_writes,
                api_requests,
                api_retries,
                api_throttled,
                api_limit_requests,
                api_limit_period,
                api_daily_used,
                api_daily_allowed,
                api_last: Mutex::default(),
            }),
        }
    }

    /// Counts one sync's records and its run.
    pub fn record_sync(&self, summary: &SyncSummary) {
        let inner = &*self.inner;
        let connector = summary.connector.as_str();
        for (kind, count) in [
            ("new", summary.records_new),
            ("changed", summary.records_changed),
            ("unchanged", summary.records_unchanged),
            ("skipped", summary.skipped),
            ("deleted", summary.deleted),
        ] {
            inner
                .sync_records
                .get_or_create(&ConnectorKind {
                    connector: connector.to_owned(),
                    kind,
                })
                .inc_by(count);
        }
        self.record_run(
            RunKind::Sync,
            Some(&summary.connector),
            summary.status,
            summary.ms,
        );
    }

    /// Counts one audit and its changes to the log, then reads the open
    /// violations by rule from the store. The run is counted even when the
    /// store cannot be read.
    pub async fn record_audit(
        &self,
        summary: &AuditSummary,
        store: &StoreHandle,
    ) -> Result<(), StoreError> {
        self.record_audit_run(summary);
        self.refresh_open_violations(store).await
    }

    fn record_audit_run(&self, summary: &AuditSummary) {
        let inner = &*self.inner;
        inner.audit_records.inc_by(summary.records);
        for (kind, count) in [
            ("opened", summary.chunks.new),
            ("reopened", summary.chunks.reopened),
            ("resolved", summary.finish.resolved),
            ("unsuppressed", summary.finish.unsuppressed),
        ] {
            inner
                .audit_violations
                .get_or_create(&KindOnly { kind })
                .inc_by(count);
        }
        let status = if summary.interrupted {
            RunStatus::Interrupted
        } else {
            RunStatus::Ok
        };
        self.record_run(RunKind::Audit, None, status, summary.ms);
    }

    /// Sets the open-violations gauges from the store.
    pub async fn refresh_open_violations(&self, store: &StoreHandle) -> Result<(), StoreError> {
        let open = store.call(|store| store.open_violations_by_rule()).await?;
        self.set_open_violations(&open);
        Ok(())
    }

    /// Sets the open-violations gauges to `open` (as
    /// [`crate::store::Store::open_violations_by_rule`] counts them); a
    /// connector and rule not in it has none open now.
    pub fn set_open_violations(&self, open: &[(ConnectorName, RuleId, u64)]) {
        let inner = &*self.inner;
        let mut seen = lock(&inner.open_seen);
        let mut now = BTreeSet::new();
        for (connector, rule, count) in open {
            let labels = ConnectorRule {
                connector: connector.as_str().to_owned(),
                rule: rule.as_str().to_owned(),
            };
            inner
                .violations_open
                .get_or_create(&labels)
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
            now.insert(labels);
        }
        for gone in seen.difference(&now) {
            inner.violations_open.get_or_create(gone).set(0);
        }
        seen.extend(now);
    }

    /// Counts one write-back run. A dry run is counted as a run, but its
    /// writes are not: it wrote nothing. Deduplicated writes are the run's
    /// `recovered` (found in the CRM, not sent again) and `known` (already
    /// in the ledger): a write the ledger holds is counted again at each
    /// run whose plan meets it.
    pub fn record_writeback(&self, report: &WritebackReport) {
        let inner = &*self.inner;
        if report.applied {
            let counts = &report.counts;
            for (kind, count) in [
                ("applied", counts.applied),
                ("deduplicated", counts.recovered + counts.known),
                ("failed", counts.failed),
                ("parked", counts.parked),
                ("unknown", counts.unknown),
            ] {
                inner
                    .writeback_writes
                    .get_or_create(&ConnectorKind {
                        connector: report.connector.as_str().to_owned(),
                        kind,
                    })
                    .inc_by(count);
            }
        }
        self.record_run(
            RunKind::Writeback,
            Some(&report.connector),
            report.status,
            report.ms,
        );
    }

    /// Brings the API counters of `connector` up to `stats`, its client's
    /// cumulative counts. Call it as often as convenient (after each run):
    /// only what happened since the last call is added. Counts lower than
    /// last time mean a new client (the connector was built again): all of
    /// its counts are new then.
    pub fn record_api(&self, connector: &ConnectorName, stats: &CallStats) {
        let inner = &*self.inner;
        let mut last = lock(&inner.api_last);
        let before = last.get(connector).cloned().unwrap_or_default();
        let restarted = stats.retries < before.retries
            || stats.throttled < before.throttled
            || before
                .requests
                .iter()
                .any(|(route, count)| stats.requests.get(route).copied().unwrap_or(0) < *count);
        let before = if restarted {
            CallStats::default()
        } else {
            before
        };
        let name = connector.as_str();
        for (route, count) in &stats.requests {
            let since = count.saturating_sub(before.requests.get(route).copied().unwrap_or(0));
            inner
                .api_requests
                .get_or_create(&ConnectorRoute {
                    connector: name.to_owned(),
                    route: (*route).to_owned(),
                })
                .inc_by(since);
        }
        let labels = ConnectorOnly {
            connector: name.to_owned(),
        };
        inner
            .api_retries
            .get_or_create(&labels)
            .inc_by(stats.retries.saturating_sub(before.retries));
        inner
            .api_throttled
            .get_or_create(&labels)
            .inc_by(stats.throttled.saturating_sub(before.throttled));
        last.insert(connector.clone(), stats.clone());
    }

    /// A connector's API budget, all in one place: its rate limiter
    /// (`requests` per `period`) and, where the CRM reports one, how much
    /// of its daily allowance is used.
    pub fn record_budget(
        &self,
        connector: &ConnectorName,
        requests: u32,
        period: Duration,
        daily: Option<(u64, u64)>,
    ) {
        let inner = &*self.inner;
        let labels = ConnectorOnly {
            connector: connector.as_str().to_owned(),
        };
        inner
            .api_limit_requests
            .get_or_create(&labels)
            .set(i64::from(requests));
        inner
            .api_limit_period
            .get_or_create(&labels)
            .set(i64::try_from(period.as_secs()).unwrap_or(i64::MAX));
        if let Some((used, allowed)) = daily {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            inner.api_daily_used.get_or_create(&labels).set(gauge(used));
            inner
                .api_daily_allowed
                .get_or_create(&labels)
                .set(gauge(allowed));
        }
    }

    fn record_run(
        &self,
        kind: RunKind,
        connector: Option<&ConnectorName>,
        status: RunStatus,
        ms: u64,
    ) {
        let run = RunLabels {
            kind: kind.as_str(),
            connector: connector.map(|c| c.as_str().to_owned()),
        };
        let seconds = Duration::from_millis(ms).as_secs_f64();
        self.inner.run_duration.get_or_create(&run).observe(seconds);
        self.inner
            .runs
            .get_or_create(&RunStatusLabels {
                run,
                status: status.as_str(),
            })
            .inc();
    }

    /// Every metric in the OpenMetrics text format, `# EOF` included.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, and every label value here is
        // plain text.
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
        {
            tracing::error!(error = %ErrorChain(&error), "cannot encode the metrics");
        }
        text
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update leaves the value whole: usable after a panic elsewhere.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditSummary;
    use crate::store::{AuditDiff, ChunkDiff};
    use crate::writeback::{Plan, WritebackCounts};

    fn hubspot() -> ConnectorName {
        ConnectorName::new("hubspot")
    }

    fn sync(connector: &str, ms: u64) -> SyncSummary {
        SyncSummary {
            connector: ConnectorName::new(connector),
            run: 1,
            status: RunStatus::Ok,
            pages: 2,
            records_new: 3,
            records_changed: 2,
            records_unchanged: 10,
            skipped: 1,
            deleted: 4,
            owners: 5,
            ms,
            stopped: false,
            error: None,
            failed: Vec::new(),
        }
    }

    fn audit() -> AuditSummary {
        AuditSummary {
            run: 7,
            records: 120,
            whole: Vec::new(),
            violations: 9,
            chunks: ChunkDiff {
                new: 4,
                reopened: 1,
                still_failing: 4,
            },
            finish: AuditDiff {
                resolved: 2,
                unsuppressed: 0,
            },
            expression_errors: 0,
            expression_error_samples: Vec::new(),
            ms: 2_500,
            interrupted: false,
        }
    }

    fn writeback(applied: bool) -> WritebackReport {
        WritebackReport {
            connector: hubspot(),
            run: applied.then_some(3),
            applied,
            status: RunStatus::Partial,
            counts: WritebackCounts {
                planned: 9,
                sent: 7,
                applied: 5,
                failed: 2,
                parked: 1,
                recovered: 1,
                known: 6,
                ..WritebackCounts::default()
            },
            plan: Plan::default(),
            written: Vec::new(),
            refused: Vec::new(),
            error: None,
            ms: 800,
        }
    }

    fn stats(requests: &[(&'static str, u64)], retries: u64, throttled: u64) -> CallStats {
        CallStats {
            requests: requests.iter().copied().collect(),
            retries,
            token_refreshes: 0,
            throttled,
        }
    }

    /// The sample lines of the text, without comments.
    fn samples(metrics: &Metrics) -> Vec<String> {
        metrics
            .render()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn has(metrics: &Metrics, line: &str) -> bool {
        samples(metrics).iter().any(|sample| sample == line)
    }

    #[track_caller]
    fn assert_has(metrics: &Metrics, lines: &[&str]) {
        let samples = samples(metrics);
        for line in lines {
            assert!(
                samples.iter().any(|sample| sample == line),
                "no `{line}` in:\n{}",
                samples.join("\n")
            );
        }
    }

    #[test]
    fn the_text_is_openmetrics_and_every_name_starts_with_journeyd() {
        let metrics = Metrics::new();
        metrics.record_sync(&sync("hubspot", 1_500));
        metrics.record_audit_run(&audit());
        metrics.set_open_violations(&[(hubspot(), RuleId::new("stalled"), 1)]);
        metrics.record_writeback(&writeback(true));
        metrics.record_api(&hubspot(), &stats(&[("deals.list", 1)], 0, 0));
        let text = metrics.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let types: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(types.len(), 10, "{text}");
        let samples = samples(&metrics);
        for line in types
            .iter()
            .copied()
            .chain(samples.iter().map(String::as_str))
        {
            assert!(line.starts_with("journeyd_"), "{line}");
        }
        assert!(types.contains(&"journeyd_run_duration_seconds histogram"));
        assert!(types.contains(&"journeyd_violations_open gauge"));
    }

    #[test]
    fn each_connectors_rate_limit_and_daily_allowance_read_in_one_place() {
        let metrics = Metrics::new();
        metrics.record_budget(&hubspot(), 100, Duration::from_secs(10), None);
        metrics.record_budget(
            &ConnectorName::new("salesforce"),
            25,
            Duration::from_secs(1),
            Some((7_100, 15_000)),
        );
        assert_has(
            &metrics,
            &[
                r#"journeyd_api_limit_requests{connector="hubspot"} 100"#,
                r#"journeyd_api_limit_period_seconds{connector="hubspot"} 10"#,
                r#"journeyd_api_limit_requests{connector="salesforce"} 25"#,
                r#"journeyd_api_daily_used{connector="salesforce"} 7100"#,
                r#"journeyd_api_daily_allowed{connector="salesforce"} 15000"#,
            ],
        );
        assert!(!has(
            &metrics,
            r#"journeyd_api_daily_used{connector="hubspot"} 0"#
        ));
    }

    #[test]
    fn a_sync_counts_its_records_by_connector_and_kind_and_its_run_and_duration() {
        let metrics = Metrics::new();
        metrics.record_sync(&sync("hubspot", 1_500));
        metrics.record_sync(&sync("hubspot", 500));
        metrics.record_sync(&sync("salesforce", 100));
        assert_has(
            &metrics,
            &[
                r#"journeyd_sync_records_total{connector="hubspot",kind="new"} 6"#,
                r#"journeyd_sync_records_total{connector="hubspot",kind="changed"} 4"#,
                r#"journeyd_sync_records_total{connector="hubspot",kind="unchanged"} 20"#,
                r#"journeyd_sync_records_total{connector="hubspot",kind="skipped"} 2"#,
                r#"journeyd_sync_records_total{connector="hubspot",kind="deleted"} 8"#,
                r#"journeyd_sync_records_total{connector="salesforce",kind="new"} 3"#,
                r#"journeyd_runs_total{connector="hubspot",kind="sync",status="ok"} 2"#,
                r#"journeyd_run_duration_seconds_sum{connector="hubspot",kind="sync"} 2.0"#,
                r#"journeyd_run_duration_seconds_count{connector="hubspot",kind="sync"} 2"#,
                r#"journeyd_run_duration_seconds_bucket{le="1.0",connector="hubspot",kind="sync"} 1"#,
                r#"journeyd_run_duration_seconds_count{connector="salesforce",kind="sync"} 1"#,
            ],
        );
    }

    #[test]
    fn an_audit_counts_its_records_and_changes_and_its_run_has_no_connector_label() {
        let metrics = Metrics::new();
        metrics.record_audit_run(&audit());
        assert_has(
            &metrics,
            &[
                "journeyd_audit_records_total 120",
                r#"journeyd_audit_violations_total{kind="opened"} 4"#,
                r#"journeyd_audit_violations_total{kind="reopened"} 1"#,
                r#"journeyd_audit_violations_total{kind="resolved"} 2"#,
                r#"journeyd_runs_total{kind="audit",status="ok"} 1"#,
                r#"journeyd_run_duration_seconds_sum{kind="audit"} 2.5"#,
            ],
        );
    }

    #[test]
    fn open_violations_are_gauges_by_connector_and_rule_and_a_rule_with_none_left_reads_zero() {
        let metrics = Metrics::new();
        let rule = |id: &str| RuleId::new(id);
        metrics.set_open_violations(&[
            (hubspot(), rule("missing_owner"), 3),
            (hubspot(), rule("stalled"), 2),
        ]);
        assert_has(
            &metrics,
            &[
                r#"journeyd_violations_open{connector="hubspot",rule="missing_owner"} 3"#,
                r#"journeyd_violations_open{connector="hubspot",rule="stalled"} 2"#,
            ],
        );
        metrics.set_open_violations(&[(hubspot(), rule("stalled"), 5)]);
        assert_has(
            &metrics,
            &[
                r#"journeyd_violations_open{connector="hubspot",rule="missing_owner"} 0"#,
                r#"journeyd_violations_open{connector="hubspot",rule="stalled"} 5"#,
            ],
        );
    }

    #[tokio::test]
    async fn recording_an_audit_reads_the_open_violations_from_the_store() {
        use crate::rules::BuiltinRule;
        use crate::store::{RunKind, Store};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("journeyd.sqlite")).unwrap();
        let found = [
            crate::store::testkit::violation("1", BuiltinRule::MissingOwner, None),
            crate::store::testkit::violation("2", BuiltinRule::MissingOwner, None),
        ];
        let at = crate::store::testkit::day(1, 0);
        let records: Vec<_> = ["1", "2"]
            .map(|id| crate::store::testkit::record(journeyd_connector::ObjectKind::Deal, id))
            .into();
        store.upsert_records(&hubspot(), &records, at).unwrap();
        let run = store.begin_run(RunKind::Audit, None, at).unwrap();
        let mut writer = store
            .begin_audit(run, &[hubspot()], at, at.date_naive())
            .unwrap();
        writer.record(&found).unwrap();
        writer.finish().unwrap();
        let handle = StoreHandle::spawn(store).unwrap();

        let metrics = Metrics::new();
        metrics.record_audit(&audit(), &handle).await.unwrap();
        assert_has(
            &metrics,
            &[
                r#"journeyd_violations_open{connector="hubspot",rule="missing_owner"} 2"#,
                r#"journeyd_runs_total{kind="audit",status="ok"} 1"#,
            ],
        );
    }

    #[test]
    fn an_applied_write_back_counts_applied_deduplicated_failed_and_parked_writes() {
        let metrics = Metrics::new();
        metrics.record_writeback(&writeback(true));
        assert_has(
            &metrics,
            &[
                r#"journeyd_writeback_writes_total{connector="hubspot",kind="applied"} 5"#,
                r#"journeyd_writeback_writes_total{connector="hubspot",kind="deduplicated"} 7"#,
                r#"journeyd_writeback_writes_total{connector="hubspot",kind="failed"} 2"#,
                r#"journeyd_writeback_writes_total{connector="hubspot",kind="parked"} 1"#,
                r#"journeyd_runs_total{connector="hubspot",kind="writeback",status="partial"} 1"#,
            ],
        );
    }

    #[test]
    fn a_dry_run_write_back_counts_its_run_but_no_writes() {
        let metrics = Metrics::new();
        metrics.record_writeback(&writeback(false));
        assert!(
            !samples(&metrics)
                .iter()
                .any(|line| line.starts_with("journeyd_writeback_writes_total")),
            "{}",
            metrics.render()
        );
        assert!(has(
            &metrics,
            r#"journeyd_runs_total{connector="hubspot",kind="writeback",status="partial"} 1"#
        ));
    }

    #[test]
    fn api_counters_grow_by_what_the_client_did_since_the_last_record() {
        let metrics = Metrics::new();
        metrics.record_api(&hubspot(), &stats(&[("deals.list", 4), ("token", 1)], 1, 1));
        metrics.record_api(
            &hubspot(),
            &stats(&[("deals.list", 10), ("token", 1)], 3, 2),
        );
        assert_has(
            &metrics,
            &[
                r#"journeyd_api_requests_total{connector="hubspot",route="deals.list"} 10"#,
                r#"journeyd_api_requests_total{connector="hubspot",route="token"} 1"#,
                r#"journeyd_api_retries_total{connector="hubspot"} 3"#,
                r#"journeyd_api_throttled_total{connector="hubspot"} 2"#,
            ],
        );
    }

    #[test]
    fn api_counts_that_went_down_come_from_a_new_client_and_are_all_added() {
        let metrics = Metrics::new();
        metrics.record_api(&hubspot(), &stats(&[("deals.list", 10)], 0, 4));
        metrics.record_api(&hubspot(), &stats(&[("deals.list", 3)], 0, 1));
        assert_has(
            &metrics,
            &[
                r#"journeyd_api_requests_total{connector="hubspot",route="deals.list"} 13"#,
                r#"journeyd_api_throttled_total{connector="hubspot"} 5"#,
            ],
        );
    }

    #[test]
    fn clones_share_their_series() {
        let metrics = Metrics::new();
        metrics.clone().record_sync(&sync("hubspot", 10));
        assert!(has(
            &metrics,
            r#"journeyd_runs_total{connector="hubspot",kind="sync",status="ok"} 1"#
        ));
    }
}
