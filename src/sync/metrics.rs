//! Counters and gauges of the Route 53 agent, in the Prometheus text format through a
//! `prometheus-client` registry (names in [`crate::telemetry::names`]). Labels are
//! bounded (operation names, error codes, change actions).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::telemetry::names;
use crate::telemetry::registry::{self, Kind, labelled, single};

/// API operations, for the `operation` label.
pub(crate) const OPERATIONS: [&str; 11] = [
    "ListHostedZonesByName",
    "ListResourceRecordSets",
    "ListHealthChecks",
    "ListTagsForResources",
    "CreateHealthCheck",
    "UpdateHealthCheck",
    "DeleteHealthCheck",
    "ChangeTagsForResource",
    "ChangeResourceRecordSets",
    "GetChange",
    "other",
];

const ACTIONS: [&str; 3] = ["create", "update", "delete"];
const PLAN_KINDS: [&str; 5] = ["create", "update", "delete", "conflict", "health_check"];
const RUN_RESULTS: [&str; 3] = ["ok", "refused", "error"];

/// The agent's metrics. Cheap to update from any task.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SyncMetrics {
    api_calls: [AtomicU64; 11],
    throttles: AtomicU64,
    prior_request_not_complete: AtomicU64,
    api_errors: AtomicU64,
    changes_applied: [AtomicU64; 3],
    changes_failed: AtomicU64,
    health_check_changes: [AtomicU64; 3],
    plan: [AtomicU64; 5],
    runs: [AtomicU64; 3],
    last_success_seconds: AtomicU64,
    propagation_millis: AtomicU64,
    propagation_count: AtomicU64,
    propagation_sum_millis: AtomicU64,
}

/// A point-in-time copy of the counters the tests and logs look at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
#[cfg(feature = "testing")]
pub(crate) struct MetricsSnapshot {
    /// API requests sent.
    pub api_calls: u64,
    /// Throttling answers (Throttling + PriorRequestNotComplete).
    pub throttles: u64,
    /// Failed requests.
    pub api_errors: u64,
    /// Record-set changes applied.
    pub changes_applied: u64,
    /// Record-set changes rejected.
    pub changes_failed: u64,
    /// Health-check changes made.
    pub health_check_changes: u64,
}

impl SyncMetrics {
    /// Counts a request to `operation` (one of [`OPERATIONS`]).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn api_call(&self, operation: &str) {
        let index = OPERATIONS
            .iter()
            .position(|o| *o == operation)
            .unwrap_or(OPERATIONS.len() - 1);
        self.api_calls[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a throttling answer.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn throttled(&self, prior_request_not_complete: bool) {
        let counter = if prior_request_not_complete {
            &self.prior_request_not_complete
        } else {
            &self.throttles
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed request.
    pub(crate) fn api_error(&self) {
        self.api_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts applied record-set changes by action (`create`, `update`, `delete`).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn changes_applied(&self, action: &str, count: u64) {
        if let Some(i) = ACTIONS.iter().position(|a| *a == action) {
            self.changes_applied[i].fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Counts rejected record-set changes.
    pub(crate) fn changes_failed(&self, count: u64) {
        self.changes_failed.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts a health-check change by action.
    pub(crate) fn health_check_changed(&self, action: &str) {
        if let Some(i) = ACTIONS.iter().position(|a| *a == action) {
            self.health_check_changes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the size of the last plan.
    pub(crate) fn plan_sizes(
        &self,
        creates: u64,
        updates: u64,
        deletes: u64,
        conflicts: u64,
        checks: u64,
    ) {
        for (slot, value) in self
            .plan
            .iter()
            .zip([creates, updates, deletes, conflicts, checks])
        {
            slot.store(value, Ordering::Relaxed);
        }
    }

    /// Counts a run by result (`ok`, `refused`, `error`); `ok` also sets the last
    /// success time.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn run(&self, result: &str, unix_seconds: u64) {
        if let Some(i) = RUN_RESULTS.iter().position(|r| *r == result) {
            self.runs[i].fetch_add(1, Ordering::Relaxed);
        }
        if result == "ok" {
            self.last_success_seconds
                .store(unix_seconds, Ordering::Relaxed);
        }
    }

    /// Records a propagation time.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn propagation(&self, elapsed: std::time::Duration) {
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.propagation_millis.store(millis, Ordering::Relaxed);
        self.propagation_count.fetch_add(1, Ordering::Relaxed);
        self.propagation_sum_millis
            .fetch_add(millis, Ordering::Relaxed);
    }

    /// Unix time of the last successful run (0: none yet).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn last_success_seconds(&self) -> u64 {
        self.last_success_seconds.load(Ordering::Relaxed)
    }

    /// A copy of the main counters.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let sum = |counters: &[AtomicU64]| counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        MetricsSnapshot {
            api_calls: sum(&self.api_calls),
            throttles: self.throttles.load(Ordering::Relaxed)
                + self.prior_request_not_complete.load(Ordering::Relaxed),
            api_errors: self.api_errors.load(Ordering::Relaxed),
            changes_applied: sum(&self.changes_applied),
            changes_failed: self.changes_failed.load(Ordering::Relaxed),
            health_check_changes: sum(&self.health_check_changes),
        }
    }

    /// Renders every metric in the Prometheus text exposition format.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn render_prometheus(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let loads = |c: &[AtomicU64; 3]| c.each_ref().map(load);
        let values = SyncValues {
            api_calls: self.api_calls.each_ref().map(load),
            throttles: [
                load(&self.throttles),
                load(&self.prior_request_not_complete),
            ],
            api_errors: load(&self.api_errors),
            changes_applied: loads(&self.changes_applied),
            changes_failed: load(&self.changes_failed),
            health_check_changes: loads(&self.health_check_changes),
            plan: self.plan.each_ref().map(load),
            runs: loads(&self.runs),
            last_success_seconds: load(&self.last_success_seconds),
            propagation_millis: load(&self.propagation_millis),
            propagation_count: load(&self.propagation_count),
            propagation_sum_millis: load(&self.propagation_sum_millis),
        };
        registry::encode_one(values)
    }
}

/// The agent's counters as read for one scrape.
#[derive(Debug)]
struct SyncValues {
    api_calls: [u64; 11],
    /// Throttling, then PriorRequestNotComplete.
    throttles: [u64; 2],
    api_errors: u64,
    changes_applied: [u64; 3],
    changes_failed: u64,
    health_check_changes: [u64; 3],
    plan: [u64; 5],
    runs: [u64; 3],
    last_success_seconds: u64,
    propagation_millis: u64,
    propagation_count: u64,
    propagation_sum_millis: u64,
}

impl Collector for SyncValues {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        labelled(
            e,
            names::ROUTE53_API_CALLS_TOTAL,
            "Route 53 API requests sent.",
            Kind::Counter,
            "operation",
            OPERATIONS.into_iter().zip(self.api_calls),
        )?;
        labelled(
            e,
            names::ROUTE53_THROTTLES_TOTAL,
            "Route 53 requests answered with a throttling error.",
            Kind::Counter,
            "code",
            ["Throttling", "PriorRequestNotComplete"]
                .into_iter()
                .zip(self.throttles),
        )?;
        single(
            e,
            names::ROUTE53_API_ERRORS_TOTAL,
            "Route 53 requests that failed.",
            Kind::Counter,
            self.api_errors,
        )?;
        labelled(
            e,
            names::ROUTE53_CHANGES_APPLIED_TOTAL,
            "Record-set changes applied.",
            Kind::Counter,
            "action",
            ACTIONS.into_iter().zip(self.changes_applied),
        )?;
        single(
            e,
            names::ROUTE53_CHANGES_FAILED_TOTAL,
            "Record-set changes rejected.",
            Kind::Counter,
            self.changes_failed,
        )?;
        labelled(
            e,
            names::ROUTE53_HEALTH_CHECK_CHANGES_TOTAL,
            "Health checks created, updated or deleted.",
            Kind::Counter,
            "action",
            ACTIONS.into_iter().zip(self.health_check_changes),
        )?;
        labelled(
            e,
            names::ROUTE53_PLAN_CHANGES,
            "Size of the last plan.",
            Kind::Gauge,
            "kind",
            PLAN_KINDS.into_iter().zip(self.plan),
        )?;
        labelled(
            e,
            names::ROUTE53_RUNS_TOTAL,
            "Reconcile runs.",
            Kind::Counter,
            "result",
            RUN_RESULTS.into_iter().zip(self.runs),
        )?;
        single(
            e,
            names::ROUTE53_LAST_SUCCESS_SECONDS,
            "Unix time of the last successful reconcile.",
            Kind::Gauge,
            self.last_success_seconds,
        )?;
        single(
            e,
            names::ROUTE53_PROPAGATION_SECONDS,
            "Seconds from submitting the last change to INSYNC.",
            Kind::Gauge,
            self.propagation_millis as f64 / 1000.0,
        )?;
        // A sum and a count beside the gauge, not a summary of it: counters by
        // nature, but a counter's name ends in `_total`, so they are untyped.
        single(
            e,
            names::ROUTE53_PROPAGATION_SECONDS_SUM,
            "Total seconds changes took to become INSYNC.",
            Kind::Untyped,
            self.propagation_sum_millis as f64 / 1000.0,
        )?;
        single(
            e,
            names::ROUTE53_PROPAGATION_SECONDS_COUNT,
            "Changes waited for until INSYNC.",
            Kind::Untyped,
            self.propagation_count,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = SyncMetrics::default();
        metrics.api_call("ChangeResourceRecordSets");
        metrics.api_call("Unknown");
        metrics.throttled(false);
        metrics.throttled(true);
        metrics.changes_applied("create", 3);
        metrics.run("ok", 1_700_000_000);
        metrics.propagation(std::time::Duration::from_millis(1500));
        let text = metrics.render_prometheus();
        assert!(text.contains(
            "failoverd_route53_api_calls_total{operation=\"ChangeResourceRecordSets\"} 1"
        ));
        assert!(text.contains("failoverd_route53_api_calls_total{operation=\"other\"} 1"));
        assert!(text.contains("failoverd_route53_throttles_total{code=\"Throttling\"} 1"));
        assert!(text.contains("failoverd_route53_changes_applied_total{action=\"create\"} 3"));
        assert!(text.contains("failoverd_route53_last_success_timestamp_seconds 1700000000"));
        assert!(text.contains("failoverd_route53_propagation_seconds 1.5\n"));
        assert!(text.contains("# TYPE failoverd_route53_runs_total counter"));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.api_calls, 2);
        assert_eq!(snapshot.throttles, 2);
    }
}
