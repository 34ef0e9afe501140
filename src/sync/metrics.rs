//! Counters and gauges of the Route 53 agent, rendered in the Prometheus text format.
//! Labels are bounded (operation names, error codes, change actions).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// API requests sent, by `operation`.
pub const API_CALLS_TOTAL: &str = "failoverd_route53_api_calls_total";
/// Requests answered with a throttling error, by `code` (Throttling,
/// PriorRequestNotComplete).
pub const THROTTLES_TOTAL: &str = "failoverd_route53_throttles_total";
/// Requests that failed after retries, or with a non-retryable error.
pub const API_ERRORS_TOTAL: &str = "failoverd_route53_api_errors_total";
/// Record-set changes applied, by `action` (create, update, delete).
pub const CHANGES_APPLIED_TOTAL: &str = "failoverd_route53_changes_applied_total";
/// Record-set changes rejected (InvalidChangeBatch after bisection, or local rules).
pub const CHANGES_FAILED_TOTAL: &str = "failoverd_route53_changes_failed_total";
/// Health checks created, updated or deleted, by `action`.
pub const HEALTH_CHECK_CHANGES_TOTAL: &str = "failoverd_route53_health_check_changes_total";
/// Size of the last plan, by `kind` (create, update, delete, conflict, health_check).
pub const PLAN_CHANGES: &str = "failoverd_route53_plan_changes";
/// Reconcile runs, by `result` (ok, refused, error).
pub const RUNS_TOTAL: &str = "failoverd_route53_runs_total";
/// Unix time of the last run that ended with Route 53 in the desired state.
pub const LAST_SUCCESS_SECONDS: &str = "failoverd_route53_last_success_timestamp_seconds";
/// Seconds from submitting the last change to Route 53 reporting it INSYNC.
pub const PROPAGATION_SECONDS: &str = "failoverd_route53_propagation_seconds";

/// API operations, for the `operation` label.
pub const OPERATIONS: [&str; 11] = [
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
pub struct SyncMetrics {
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
pub struct MetricsSnapshot {
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
    pub fn api_call(&self, operation: &str) {
        let index = OPERATIONS
            .iter()
            .position(|o| *o == operation)
            .unwrap_or(OPERATIONS.len() - 1);
        self.api_calls[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a throttling answer.
    pub fn throttled(&self, prior_request_not_complete: bool) {
        let counter = if prior_request_not_complete {
            &self.prior_request_not_complete
        } else {
            &self.throttles
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed request.
    pub fn api_error(&self) {
        self.api_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts applied record-set changes by action (`create`, `update`, `delete`).
    pub fn changes_applied(&self, action: &str, count: u64) {
        if let Some(i) = ACTIONS.iter().position(|a| *a == action) {
            self.changes_applied[i].fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Counts rejected record-set changes.
    pub fn changes_failed(&self, count: u64) {
        self.changes_failed.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts a health-check change by action.
    pub fn health_check_changed(&self, action: &str) {
        if let Some(i) = ACTIONS.iter().position(|a| *a == action) {
            self.health_check_changes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the size of the last plan.
    pub fn plan_sizes(
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
    pub fn run(&self, result: &str, unix_seconds: u64) {
        if let Some(i) = RUN_RESULTS.iter().position(|r| *r == result) {
            self.runs[i].fetch_add(1, Ordering::Relaxed);
        }
        if result == "ok" {
            self.last_success_seconds
                .store(unix_seconds, Ordering::Relaxed);
        }
    }

    /// Records a propagation time.
    pub fn propagation(&self, elapsed: std::time::Duration) {
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.propagation_millis.store(millis, Ordering::Relaxed);
        self.propagation_count.fetch_add(1, Ordering::Relaxed);
        self.propagation_sum_millis
            .fetch_add(millis, Ordering::Relaxed);
    }

    /// Unix time of the last successful run (0: none yet).
    pub fn last_success_seconds(&self) -> u64 {
        self.last_success_seconds.load(Ordering::Relaxed)
    }

    /// A copy of the main counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
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
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let labelled =
            |label: &str, names: &[&str], counters: &[AtomicU64]| -> Vec<(String, String)> {
                names
                    .iter()
                    .zip(counters)
                    .map(|(n, c)| (format!("{{{label}=\"{n}\"}}"), load(c).to_string()))
                    .collect()
            };
        family(
            API_CALLS_TOTAL,
            "counter",
            "Route 53 API requests sent.",
            &labelled("operation", &OPERATIONS, &self.api_calls),
        );
        family(
            THROTTLES_TOTAL,
            "counter",
            "Route 53 requests answered with a throttling error.",
            &[
                (
                    "{code=\"Throttling\"}".into(),
                    load(&self.throttles).to_string(),
                ),
                (
                    "{code=\"PriorRequestNotComplete\"}".into(),
                    load(&self.prior_request_not_complete).to_string(),
                ),
            ],
        );
        family(
            API_ERRORS_TOTAL,
            "counter",
            "Route 53 requests that failed.",
            &[(String::new(), load(&self.api_errors).to_string())],
        );
        family(
            CHANGES_APPLIED_TOTAL,
            "counter",
            "Record-set changes applied.",
            &labelled("action", &ACTIONS, &self.changes_applied),
        );
        family(
            CHANGES_FAILED_TOTAL,
            "counter",
            "Record-set changes rejected.",
            &[(String::new(), load(&self.changes_failed).to_string())],
        );
        family(
            HEALTH_CHECK_CHANGES_TOTAL,
            "counter",
            "Health checks created, updated or deleted.",
            &labelled("action", &ACTIONS, &self.health_check_changes),
        );
        family(
            PLAN_CHANGES,
            "gauge",
            "Size of the last plan.",
            &labelled("kind", &PLAN_KINDS, &self.plan),
        );
        family(
            RUNS_TOTAL,
            "counter",
            "Reconcile runs.",
            &labelled("result", &RUN_RESULTS, &self.runs),
        );
        family(
            LAST_SUCCESS_SECONDS,
            "gauge",
            "Unix time of the last successful reconcile.",
            &[(String::new(), load(&self.last_success_seconds).to_string())],
        );
        family(
            PROPAGATION_SECONDS,
            "gauge",
            "Seconds from submitting the last change to INSYNC.",
            &[(
                String::new(),
                format!("{:.3}", load(&self.propagation_millis) as f64 / 1000.0),
            )],
        );
        family(
            &format!("{PROPAGATION_SECONDS}_sum"),
            "counter",
            "Total seconds changes took to become INSYNC.",
            &[(
                String::new(),
                format!("{:.3}", load(&self.propagation_sum_millis) as f64 / 1000.0),
            )],
        );
        family(
            &format!("{PROPAGATION_SECONDS}_count"),
            "counter",
            "Changes waited for until INSYNC.",
            &[(String::new(), load(&self.propagation_count).to_string())],
        );
        out
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
        assert!(text.contains("failoverd_route53_propagation_seconds 1.500"));
        assert!(text.contains("# TYPE failoverd_route53_runs_total counter"));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.api_calls, 2);
        assert_eq!(snapshot.throttles, 2);
    }
}
