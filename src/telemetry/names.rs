//! Every metric name this crate exposes, in one place: the name as it appears on
//! `/metrics` (a counter's with its `_total`). The collectors that write them are
//! beside the state they read (see [`super::registry`]).

// Answer path (`crate::telemetry::metrics::DnsCounters`).

/// Queries answered, by response code (`rcode` label).
pub(crate) const DNS_RESPONSES_TOTAL: &str = "failoverd_dns_responses_total";
/// Queries answered per zone, by response code (`zone`, `rcode` labels; zones past
/// the first [`ZONE_SLOTS`](super::metrics::ZONE_SLOTS)` - 1` share `zone="(other)"`).
pub(crate) const DNS_ZONE_RESPONSES_TOTAL: &str = "failoverd_dns_zone_responses_total";
/// Datagrams dropped without a response.
pub(crate) const DNS_DROPPED_TOTAL: &str = "failoverd_dns_dropped_total";
/// Responses truncated (TC set).
pub(crate) const DNS_TRUNCATED_TOTAL: &str = "failoverd_dns_truncated_total";
/// Internal errors caught on the answer path (should stay 0).
pub(crate) const DNS_INTERNAL_ERRORS_TOTAL: &str = "failoverd_dns_internal_errors_total";
/// UDP responses over their rate limit (slipped plus dropped).
pub(crate) const DNS_RRL_LIMITED_TOTAL: &str = "failoverd_dns_rrl_limited_total";
/// Rate-limited UDP responses sent truncated (TC, no records).
pub(crate) const DNS_RRL_SLIPPED_TOTAL: &str = "failoverd_dns_rrl_slipped_total";
/// Rate-limited UDP responses not sent.
pub(crate) const DNS_RRL_DROPPED_TOTAL: &str = "failoverd_dns_rrl_dropped_total";
/// TCP connections accepted.
pub(crate) const DNS_TCP_CONNECTIONS_TOTAL: &str = "failoverd_dns_tcp_connections_total";
/// TCP connections closed at once because a connection limit was reached.
pub(crate) const DNS_TCP_REJECTED_TOTAL: &str = "failoverd_dns_tcp_rejected_total";
/// TCP connections closed by the idle timeout (idle, partial or unread).
pub(crate) const DNS_TCP_TIMEOUTS_TOTAL: &str = "failoverd_dns_tcp_timeouts_total";
/// TCP connections open now.
pub(crate) const DNS_TCP_OPEN: &str = "failoverd_dns_tcp_open_connections";

// The published answers and the health plane (`crate::service`).

/// Gauge: answer snapshot generation.
pub(crate) const SNAPSHOT_GENERATION: &str = "failoverd_snapshot_generation";
/// Gauge by `version`, always 1: the running build.
pub(crate) const BUILD_INFO: &str = "failoverd_build_info";
/// Gauge by `pool` and `endpoint`: decided health (1 up, 0 down).
pub(crate) const ENDPOINT_UP: &str = "failoverd_endpoint_up";
/// Gauge by `pool` and `endpoint`: drained by an operator.
pub(crate) const ENDPOINT_DRAINED: &str = "failoverd_endpoint_drained";
/// Gauge by `pool` and `endpoint`: up but degraded (slow or flaky), answered with
/// its weight scaled by the check's `degraded_weight`.
pub(crate) const ENDPOINT_DEGRADED: &str = "failoverd_endpoint_degraded";
/// Gauge by `pool` and `endpoint`: way back withheld by flap damping.
pub(crate) const ENDPOINT_SUPPRESSED: &str = "failoverd_endpoint_suppressed";
/// Gauge by `pool` and `endpoint`: flap-damping penalty.
pub(crate) const ENDPOINT_DAMPING_PENALTY: &str = "failoverd_endpoint_damping_penalty";
/// Gauge by `record` and `type`: answering in an all-down mode for some clients.
pub(crate) const RECORD_ALL_DOWN: &str = "failoverd_record_all_down";
/// Gauge by `record`, `type` and `cause` (`health`, `operator`): a record answered by
/// another pool than its first (or degraded) for some clients.
pub(crate) const RECORD_FAILED_OVER: &str = "failoverd_record_failed_over";
/// Gauge by `record` and `type`: two or more endpoints claim primary.
pub(crate) const RECORD_PRIMARY_CONFLICT: &str = "failoverd_record_primary_conflict";
/// Gauge by `record` and `type`: a pool held back by its lag gate.
pub(crate) const RECORD_GATE_HELD: &str = "failoverd_record_gate_held";
/// Counter by `record` and `type`: answers given from a trickle pool (one after the
/// answering first pool of a record with `trickle`).
pub(crate) const RECORD_TRICKLE_ANSWERS_TOTAL: &str = "failoverd_record_trickle_answers_total";
/// Gauge by `record` and `type`: every pool of a spill-over record is at its limit.
pub(crate) const RECORD_OVERLOADED: &str = "failoverd_record_overloaded";
/// Gauge by `vantage`, `pool` and `endpoint`: smoothed round-trip time (latency
/// steering).
pub(crate) const ENDPOINT_RTT_SECONDS: &str = "failoverd_endpoint_rtt_seconds";
/// Gauge by `action`: operator overrides in force.
pub(crate) const OVERRIDES_ACTIVE: &str = "failoverd_overrides_active";
/// Gauge by `kind`, `target`, `type` (records of one type) and `action`: seconds each
/// operator override has been in force.
pub(crate) const OVERRIDE_AGE: &str = "failoverd_override_age_seconds";
/// Gauge: `[health] override_warn_after` in seconds (0: never).
pub(crate) const OVERRIDE_WARN_AFTER: &str = "failoverd_override_warn_after_seconds";
/// Gauge by `pool`: pool health (1 up, 0 down).
pub(crate) const POOL_UP: &str = "failoverd_pool_up";
/// Gauge by `pool`: the operator's traffic dial as a ratio (1: no dial, all it would
/// get; 0: dialled to 0 %).
pub(crate) const POOL_DIAL_RATIO: &str = "failoverd_pool_dial_ratio";
/// Gauge by `vantage`: votes ignored as partitioned.
pub(crate) const VANTAGE_PARTITIONED: &str = "failoverd_vantage_partitioned";
/// Gauge by `vantage`: a fresh report.
pub(crate) const VANTAGE_FRESH: &str = "failoverd_vantage_fresh";
/// Counter by `result`: reports received from vantage points.
pub(crate) const REPORTS_RECEIVED_TOTAL: &str = "failoverd_reports_received_total";
/// Counter by `reason`: override entries from peers (or the state file) not taken.
pub(crate) const OVERRIDE_ENTRIES_REFUSED_TOTAL: &str = "failoverd_override_entries_refused_total";
/// Counter: state-file saves that failed.
pub(crate) const STATE_SAVE_FAILURES_TOTAL: &str = "failoverd_state_save_failures_total";
/// Counter by `result`: override syncs received from peer servers.
pub(crate) const OVERRIDE_SYNCS_RECEIVED_TOTAL: &str = "failoverd_override_syncs_received_total";
/// Counter by `result` (`ok`, `failed`): probes run by this vantage point.
pub(crate) const PROBES_TOTAL: &str = "failoverd_probes_total";
/// Counter by `reason`: probes that abstained for a local fault.
pub(crate) const PROBE_ABSTENTIONS_TOTAL: &str = "failoverd_probe_abstentions_total";
/// Gauge: this process's probes abstained within the last staleness.
pub(crate) const VANTAGE_IMPAIRED: &str = "failoverd_vantage_impaired";
/// Counter by `server` and `result`: reports pushed to servers.
pub(crate) const REPORTS_SENT_TOTAL: &str = "failoverd_reports_sent_total";
/// Gauge by `server`: the last report to it was delivered.
pub(crate) const REPORT_SERVER_REACHABLE: &str = "failoverd_report_server_reachable";
/// Gauge: this server hears fewer vantage points than a quorum.
pub(crate) const ISOLATED: &str = "failoverd_isolated";
/// Gauge: votes needed to change an endpoint's state.
pub(crate) const QUORUM_NEEDED: &str = "failoverd_quorum_needed";
/// Counter: times this server became isolated.
pub(crate) const ISOLATIONS_TOTAL: &str = "failoverd_isolations_total";
/// Counter: times two or more endpoints of a primary record began to claim primary.
pub(crate) const PRIMARY_CONFLICTS_TOTAL: &str = "failoverd_primary_conflicts_total";
/// Counter by `result` (`ok`, `failed`): configuration reloads.
pub(crate) const CONFIG_RELOADS_TOTAL: &str = "failoverd_config_reloads_total";
/// Gauge: the last reload was taken (1 before any).
pub(crate) const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "failoverd_config_last_reload_successful";
/// Gauge: Unix time of the last reload tried (0: never).
pub(crate) const CONFIG_LAST_RELOAD_TIMESTAMP: &str =
    "failoverd_config_last_reload_timestamp_seconds";
/// Histogram: time from an input to the published answers.
pub(crate) const DECISION_LATENCY: &str = "failoverd_decision_latency_seconds";
/// Summary (exact quantiles over the latest publications) of the same.
pub(crate) const DECISION_LATENCY_RECENT: &str = "failoverd_decision_latency_recent_seconds";
/// Histogram: probes of this vantage point by duration.
pub(crate) const PROBE_DURATION: &str = "failoverd_probe_duration_seconds";
/// Gauge: the first health decision is made.
pub(crate) const READY: &str = "failoverd_ready";
/// Counter: bytes of report bodies received.
pub(crate) const REPORT_BYTES_TOTAL: &str = "failoverd_report_bytes_total";
/// Counter: decided endpoint state changes.
pub(crate) const ENDPOINT_CHANGES_TOTAL: &str = "failoverd_endpoint_changes_total";

// Zone transfers (`crate::dns::xfr`).

/// Zone transfers served (`kind`: axfr, ixfr, ixfr_as_axfr, ixfr_current,
/// ixfr_udp_soa_only).
pub(crate) const TRANSFERS_TOTAL: &str = "failoverd_transfers_total";
/// Transfer requests refused (`reason`: acl, tsig, zone, malformed).
pub(crate) const TRANSFERS_REFUSED_TOTAL: &str = "failoverd_transfers_refused_total";
/// NOTIFY messages (`outcome`: sent, acked, failed).
pub(crate) const NOTIFY_TOTAL: &str = "failoverd_notify_total";

// DNSSEC, the event journal, the admin listeners, dnstap.

/// Gauge per signed zone: Unix time its signatures were made.
pub(crate) const DNSSEC_SIGNED: &str = "failoverd_dnssec_signed_timestamp_seconds";
/// Gauge per signed zone: Unix time its signatures expire (alert well before).
pub(crate) const DNSSEC_EXPIRATION: &str =
    "failoverd_dnssec_signature_expiration_timestamp_seconds";
/// Counter: events not written to the event journal (its queue was full, or the
/// write failed).
pub(crate) const EVENT_JOURNAL_DROPPED_TOTAL: &str = "failoverd_event_journal_dropped_total";
/// Counter by `reason`: admin connections refused or closed early.
pub(crate) const ADMIN_CONNECTIONS_REFUSED_TOTAL: &str =
    "failoverd_admin_connections_refused_total";
/// Gauge: admin connections open now.
pub(crate) const ADMIN_CONNECTIONS_OPEN: &str = "failoverd_admin_connections_open";
/// dnstap messages written.
pub(crate) const DNSTAP_WRITTEN_TOTAL: &str = "failoverd_dnstap_written_total";
/// dnstap messages dropped.
pub(crate) const DNSTAP_DROPPED_TOTAL: &str = "failoverd_dnstap_dropped_total";
/// Whether a dnstap consumer is connected.
pub(crate) const DNSTAP_CONNECTED: &str = "failoverd_dnstap_connected";

// The Route 53 sync agent (`crate::sync::metrics`).

/// API requests sent, by `operation`.
pub(crate) const ROUTE53_API_CALLS_TOTAL: &str = "failoverd_route53_api_calls_total";
/// Requests answered with a throttling error, by `code` (Throttling,
/// PriorRequestNotComplete).
pub(crate) const ROUTE53_THROTTLES_TOTAL: &str = "failoverd_route53_throttles_total";
/// Requests that failed after retries, or with a non-retryable error.
pub(crate) const ROUTE53_API_ERRORS_TOTAL: &str = "failoverd_route53_api_errors_total";
/// Record-set changes applied, by `action` (create, update, delete).
pub(crate) const ROUTE53_CHANGES_APPLIED_TOTAL: &str = "failoverd_route53_changes_applied_total";
/// Record-set changes rejected (InvalidChangeBatch after bisection, or local rules).
pub(crate) const ROUTE53_CHANGES_FAILED_TOTAL: &str = "failoverd_route53_changes_failed_total";
/// Health checks created, updated or deleted, by `action`.
pub(crate) const ROUTE53_HEALTH_CHECK_CHANGES_TOTAL: &str =
    "failoverd_route53_health_check_changes_total";
/// Size of the last plan, by `kind` (create, update, delete, conflict, health_check).
pub(crate) const ROUTE53_PLAN_CHANGES: &str = "failoverd_route53_plan_changes";
/// Reconcile runs, by `result` (ok, refused, error).
pub(crate) const ROUTE53_RUNS_TOTAL: &str = "failoverd_route53_runs_total";
/// Unix time of the last run that ended with Route 53 in the desired state.
pub(crate) const ROUTE53_LAST_SUCCESS_SECONDS: &str =
    "failoverd_route53_last_success_timestamp_seconds";
/// Seconds from submitting the last change to Route 53 reporting it INSYNC.
pub(crate) const ROUTE53_PROPAGATION_SECONDS: &str = "failoverd_route53_propagation_seconds";
/// Total seconds changes took to become INSYNC (untyped: see `crate::sync::metrics`).
pub(crate) const ROUTE53_PROPAGATION_SECONDS_SUM: &str =
    "failoverd_route53_propagation_seconds_sum";
/// Changes waited for until INSYNC (untyped: see `crate::sync::metrics`).
pub(crate) const ROUTE53_PROPAGATION_SECONDS_COUNT: &str =
    "failoverd_route53_propagation_seconds_count";
