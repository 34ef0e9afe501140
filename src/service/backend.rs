//! The admin API's view of a running service.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::plane::{PlaneHandle, PlaneInput, PlaneMetrics};
use crate::admin::explain::{ExplainError, ExplainQuery, Explanation};
use crate::admin::{AdminBackend, SyncError};
use crate::api::{
    EndpointState, EndpointStatus, HealthView, Identity, OverrideSync, OverridesView, PeerState,
    ReloadStatus, Status,
};
use crate::config::Secret;
use crate::dns::SharedSnapshot;
use crate::health::overrides::{Change, Entry, OverrideError, Target};
use crate::health::peering::{KnownServers, Standing, sign_peer, verify_peer};
use crate::health::report::ReportError;
use crate::metrics::{self, COUNTED_RCODES, DnsMetrics};
use crate::model::{EndpointIndex, HealthState};
use crate::probe::reporter::unix_ms;
use crate::telemetry::events::EventLog;

pub(crate) struct ServiceBackend {
    shared: SharedSnapshot,
    inputs: mpsc::Sender<PlaneInput>,
    status: watch::Receiver<Arc<Status>>,
    plane_metrics: Arc<PlaneMetrics>,
    dns_metrics: DnsMetrics,
    vantage: String,
    secret: Option<Secret>,
    overrides: watch::Receiver<Arc<Vec<Entry>>>,
    events: Arc<EventLog>,
    reloads: mpsc::Sender<super::ReloadRequest>,
    transfer: Option<Arc<crate::dns::xfr::TransferState>>,
    dnstap: Option<crate::dns::dnstap::Dnstap>,
    admin_stats: Option<Arc<crate::admin::ListenerStats>>,
    /// Vantage points seen answering at server URLs.
    known: Arc<KnownServers>,
    /// Wakes the override exchange to look at its peers again.
    nudge: Arc<tokio::sync::Notify>,
    /// Whether this process serves DNS (only servers answer `/v1/identity`).
    serves: bool,
}

/// How long a reload through the API may take.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How far a peer's override sync may be from this server's clock.
const MAX_SYNC_SKEW_MS: u64 = crate::health::overrides::MAX_SKEW_MS;

impl ServiceBackend {
    pub(crate) fn new(
        shared: SharedSnapshot,
        plane: &PlaneHandle,
        dns_metrics: DnsMetrics,
        vantage: String,
        secret: Option<Secret>,
        events: Arc<EventLog>,
        reloads: mpsc::Sender<super::ReloadRequest>,
    ) -> Self {
        Self {
            shared,
            inputs: plane.inputs.clone(),
            status: plane.status.clone(),
            plane_metrics: plane.metrics.clone(),
            dns_metrics,
            vantage,
            secret,
            overrides: plane.overrides.clone(),
            events,
            reloads,
            transfer: None,
            dnstap: None,
            admin_stats: None,
            known: KnownServers::new(),
            nudge: Arc::new(tokio::sync::Notify::new()),
            serves: false,
        }
    }

    /// Adds dnstap's counters to the metrics.
    pub(crate) fn with_dnstap(mut self, dnstap: Option<crate::dns::dnstap::Dnstap>) -> Self {
        self.dnstap = dnstap;
        self
    }

    /// Takes part in override exchange as a server: `known` and `nudge` are shared with
    /// the exchange task.
    pub(crate) fn for_a_server(
        mut self,
        known: Arc<KnownServers>,
        nudge: Arc<tokio::sync::Notify>,
    ) -> Self {
        self.known = known;
        self.nudge = nudge;
        self.serves = true;
        self
    }

    /// Adds the admin listeners' connection counters to the metrics.
    pub(crate) fn with_admin_stats(mut self, stats: Arc<crate::admin::ListenerStats>) -> Self {
        self.admin_stats = Some(stats);
        self
    }

    /// Adds the zone transfer counters to the metrics.
    pub(crate) fn with_transfer(
        mut self,
        transfer: Option<Arc<crate::dns::xfr::TransferState>>,
    ) -> Self {
        self.transfer = transfer;
        self
    }
}

impl ServiceBackend {
    /// Authenticates a peer's override sync, merges it and signs our set back.
    async fn exchange_overrides(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> Result<(Vec<u8>, Option<String>), SyncError> {
        self.take_sync(body, vantage, signature).await
    }
}

#[async_trait::async_trait]
impl AdminBackend for ServiceBackend {
    async fn submit_report(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> (Result<(), ReportError>, String) {
        let (reply, answer) = oneshot::channel();
        let input = PlaneInput::Report {
            body,
            vantage,
            signature,
            reply,
        };
        let shutting_down = (Err(ReportError::Malformed), String::new());
        if self.inputs.send(input).await.is_err() {
            return shutting_down;
        }
        answer.await.unwrap_or(shutting_down)
    }

    async fn change_override(&self, change: Change) -> Result<Vec<Entry>, OverrideError> {
        let (reply, answer) = oneshot::channel();
        let input = PlaneInput::Override { change, reply };
        if self.inputs.send(input).await.is_err() {
            return Err(OverrideError::ShuttingDown);
        }
        answer.await.unwrap_or(Err(OverrideError::ShuttingDown))
    }

    async fn sync_overrides(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> Result<(Vec<u8>, Option<String>), SyncError> {
        let sender = vantage.clone();
        let result = self.exchange_overrides(body, vantage, signature).await;
        match &result {
            Ok(_) => {
                self.plane_metrics
                    .override_syncs_accepted
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                if let Some(counter) = self.plane_metrics.override_syncs_refused.get(error.label())
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // Anyone can send one: at most a few lines (the metric counts each),
                // the sender's name from the request header escaped by Debug. A
                // server finding its own URL among the peers is no news.
                if *error != SyncError::Myself {
                    crate::log_limited!(
                        warn,
                        "override sync refused",
                        vantage = ?sender,
                        reason = %error
                    );
                }
            }
        }
        result
    }

    fn overrides(&self) -> OverridesView {
        let now = unix_ms();
        let entries = self.overrides.borrow().clone();
        let (active, ended) = entries.iter().cloned().partition(|e| e.active(now));
        OverridesView {
            server: self.vantage.clone(),
            active,
            ended,
        }
    }

    async fn reload(&self) -> Result<ReloadStatus, String> {
        let (reply, outcome) = oneshot::channel();
        self.reloads
            .try_send(reply)
            .map_err(|_| "a reload is already pending".to_owned())?;
        match tokio::time::timeout(RELOAD_TIMEOUT, outcome).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) => Err("this process does not take reloads through the API".to_owned()),
            Err(_) => Err(format!(
                "no answer within {} s: reload through the API needs `failoverd serve` (or SIGHUP)",
                RELOAD_TIMEOUT.as_secs()
            )),
        }
    }

    fn events(&self) -> Arc<EventLog> {
        self.events.clone()
    }

    fn explain(&self, query: &ExplainQuery) -> Result<Explanation, ExplainError> {
        let snapshot = self.shared.load_full();
        crate::admin::explain::explain(&snapshot, &self.status(), query)
    }

    fn status(&self) -> Arc<Status> {
        let status = self.status.borrow().clone();
        // The state file's last save, as of now (saves happen between rebuilds).
        let file = self
            .plane_metrics
            .state_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if status.state_file == file {
            return status;
        }
        let mut status = Status::clone(&status);
        status.state_file = file;
        Arc::new(status)
    }

    fn health(&self) -> HealthView {
        let snapshot = self.shared.load_full();
        HealthView {
            generation: snapshot.generation,
            endpoints: snapshot
                .health
                .endpoints()
                .iter()
                .enumerate()
                .map(|(i, h)| EndpointState {
                    endpoint: snapshot.config.endpoint_label(EndpointIndex(i as u32)),
                    state: h.state,
                    drained: snapshot.health.drained(EndpointIndex(i as u32)),
                    forced: (h.source == crate::health::HealthSource::Forced).then_some(h.state),
                })
                .collect(),
            failovers: snapshot
                .config
                .records
                .iter()
                .enumerate()
                .filter_map(|(r, record)| {
                    let pool = snapshot.health.pin(crate::model::RecordIndex(r as u32))?;
                    Some(crate::api::RecordFailover {
                        record: record.name.clone(),
                        record_type: record.record_type.to_string(),
                        pool: snapshot.config.pool(pool).name.clone(),
                    })
                })
                .collect(),
            primaries: snapshot
                .config
                .records
                .iter()
                .enumerate()
                .filter_map(|(r, record)| {
                    let endpoint = snapshot
                        .health
                        .last_primary(crate::model::RecordIndex(r as u32))?;
                    Some(crate::api::RecordPrimary {
                        record: record.name.clone(),
                        record_type: record.record_type.to_string(),
                        endpoint: snapshot.config.endpoint_label(endpoint),
                    })
                })
                .collect(),
        }
    }

    fn peer_state(&self, nonce: String) -> Option<(Vec<u8>, String)> {
        let secret = self.secret.as_ref()?;
        let snapshot = self.shared.load_full();
        let state = PeerState {
            vantage: self.vantage.clone(),
            nonce,
            sent_at_ms: unix_ms(),
            endpoints: snapshot
                .health
                .endpoints()
                .iter()
                .enumerate()
                .filter(|(_, h)| h.source != crate::health::HealthSource::Assumed)
                .map(|(i, h)| {
                    (
                        snapshot.config.endpoint_label(EndpointIndex(i as u32)),
                        h.state,
                    )
                })
                .collect(),
            overrides: self.overrides.borrow().as_ref().clone(),
        };
        let body = serde_json::to_vec(&state).ok()?;
        let signature = sign_peer(secret, &body);
        Some((body, signature))
    }

    fn check_peer_request(
        &self,
        vantage: Option<String>,
        signature: Option<String>,
        text: &[u8],
    ) -> Result<(), SyncError> {
        self.authenticate_peer(vantage.as_deref(), signature.as_deref(), text)
            .map(|_| ())
    }

    fn identity(&self, nonce: String) -> Option<(Vec<u8>, String)> {
        if !self.serves {
            return None;
        }
        let secret = self.secret.as_ref()?;
        let identity = Identity {
            vantage: self.vantage.clone(),
            nonce,
        };
        let body = serde_json::to_vec(&identity).ok()?;
        let signature = sign_peer(secret, &body);
        Some((body, signature))
    }

    fn metrics(&self) -> String {
        let mut out = render_metrics(
            &self.shared,
            &self.status(),
            &self.plane_metrics,
            &self.dns_metrics,
        );
        if let Some(transfer) = &self.transfer {
            transfer.metrics().render(&mut out);
        }
        render_dnssec(&self.shared.load_full(), &mut out);
        let name = metrics::EVENT_JOURNAL_DROPPED_TOTAL;
        let _ = writeln!(
            out,
            "# HELP {name} Events not written to the event journal (queue full, a write failed, or handed to a replacing process).\n# TYPE {name} counter\n{name} {}",
            self.events.journal_dropped()
        );
        if let Some(stats) = &self.admin_stats {
            render_admin_connections(stats, &mut out);
        }
        if let Some(tap) = &self.dnstap {
            let stats = tap.stats();
            for (name, kind, help, value) in [
                (
                    metrics::DNSTAP_WRITTEN_TOTAL,
                    "counter",
                    "dnstap messages written to the consumer.",
                    stats.written,
                ),
                (
                    metrics::DNSTAP_DROPPED_TOTAL,
                    "counter",
                    "dnstap messages dropped (queue full or no consumer).",
                    stats.dropped,
                ),
                (
                    metrics::DNSTAP_CONNECTED,
                    "gauge",
                    "Whether a dnstap consumer is connected.",
                    u64::from(stats.connected),
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                let _ = writeln!(out, "{name} {value}");
            }
        }
        out
    }

    fn zone_text(&self, zone: &str) -> Result<String, crate::dns::zone_text::ZoneReadError> {
        crate::dns::zone_text::render(&self.shared.load_full(), zone)
    }

    fn ready(&self) -> Result<(), String> {
        if self.plane_metrics.failed.load(Ordering::Relaxed) {
            return Err(
                "the health plane stopped (a panic, see the log): answers no longer follow health; the process exits so its supervisor restarts it"
                    .to_owned(),
            );
        }
        if !self.plane_metrics.ready.load(Ordering::Relaxed) {
            return Err("starting: no health decision yet".to_owned());
        }
        let file = self
            .plane_metrics
            .state_file
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &file.error {
            Some(error) => Err(format!(
                "the state file cannot be written, so overrides cannot be kept: {error}"
            )),
            None => Ok(()),
        }
    }
}

/// The admin listeners' connections: open now, refused or closed early by reason.
fn render_admin_connections(stats: &crate::admin::ListenerStats, out: &mut String) {
    let name = metrics::ADMIN_CONNECTIONS_REFUSED_TOTAL;
    let _ = writeln!(
        out,
        "# HELP {name} Admin connections refused or closed early, by reason (limit, source_limit, evicted, handshake_timeout, handshake_failed, header_timeout, idle_timeout)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (reason, count) in stats.refusals() {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
    }
    let name = metrics::ADMIN_CONNECTIONS_OPEN;
    let _ = writeln!(out, "# HELP {name} Admin connections open now.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {}", stats.open());
}

impl ServiceBackend {
    /// Checks who signed a peer message: a configured vantage point's peer key, and a
    /// server. Returns the sender's config. An unknown standing sends this server to
    /// look at its peers' URLs again (the sender may be a server it has not met yet).
    fn authenticate_peer(
        &self,
        vantage: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Arc<crate::config::Config>, SyncError> {
        let vantage = vantage.ok_or(SyncError::Unauthenticated)?;
        if vantage == self.vantage {
            return Err(SyncError::Myself);
        }
        let config = self.shared.load().config.clone();
        let secret = config
            .vantage_by_name(vantage)
            .and_then(|v| config.vantages[usize::from(v.0)].secret.clone())
            .ok_or(SyncError::Unauthenticated)?;
        if !signature.is_some_and(|s| verify_peer(&secret, body, s)) {
            return Err(SyncError::Unauthenticated);
        }
        match self.known.standing(&config, vantage) {
            Standing::Server => Ok(config),
            Standing::Agent => Err(SyncError::NotAServer(format!(
                "{vantage} is a probe agent (role = \"agent\"): override exchange and peer state are for servers only"
            ))),
            Standing::Unknown => {
                self.nudge.notify_waiters();
                Err(SyncError::NotAServer(format!(
                    "{vantage} is not known as a server: give it role = \"server\" in [vantages.{vantage}], or list its admin URL in [health] servers"
                )))
            }
        }
    }

    /// A peer's override sync: authenticated, from a server, sent recently; its
    /// entries go to the plane (which checks each one); the answer is ours, signed.
    async fn take_sync(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> Result<(Vec<u8>, Option<String>), SyncError> {
        let vantage = vantage.ok_or(SyncError::Unauthenticated)?;
        self.authenticate_peer(Some(&vantage), signature.as_deref(), &body)?;
        let sync: OverrideSync = serde_json::from_slice(&body).map_err(|_| SyncError::Malformed)?;
        if sync.vantage != vantage {
            return Err(SyncError::Unauthenticated);
        }
        if unix_ms().abs_diff(sync.sent_at_ms) > MAX_SYNC_SKEW_MS {
            return Err(SyncError::Stale);
        }
        let (reply, answer) = oneshot::channel();
        let input = PlaneInput::PeerOverrides {
            from: vantage,
            entries: sync.entries,
            reply,
        };
        let ours = match self.inputs.send(input).await {
            Ok(()) => answer.await.unwrap_or_default(),
            Err(_) => self.overrides.borrow().clone(),
        };
        let answer = OverrideSync {
            vantage: self.vantage.clone(),
            sent_at_ms: unix_ms(),
            entries: ours.as_ref().clone(),
        };
        let body = serde_json::to_vec(&answer).map_err(|_| SyncError::Malformed)?;
        let signature = self.secret.as_ref().map(|secret| sign_peer(secret, &body));
        Ok((body, signature))
    }
}

/// When each signed zone's signatures were made and when they expire: a refresh that
/// keeps failing shows as an expiry drawing near.
fn render_dnssec(snapshot: &crate::dns::Snapshot, out: &mut String) {
    let signed: Vec<(String, &crate::dnssec::SignedZone)> = snapshot
        .zones
        .zones()
        .iter()
        .enumerate()
        .filter_map(|(i, zone)| Some((zone.origin_text(), snapshot.signed_zone(i)?)))
        .collect();
    // Declared even with nothing signed, like the other labelled metrics.
    type Gauge = (
        &'static str,
        &'static str,
        fn(&crate::dnssec::SignedZone) -> u64,
    );
    let gauges: [Gauge; 2] = [
        (
            metrics::DNSSEC_SIGNED,
            "Unix time the zone's signatures were made.",
            |s| s.signed_at,
        ),
        (
            metrics::DNSSEC_EXPIRATION,
            "Unix time the zone's signatures expire.",
            |s| u64::from(s.window.expiration),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (zone, signature) in &signed {
            let _ = writeln!(out, "{name}{{zone=\"{zone}\"}} {}", value(signature));
        }
    }
}

/// Prometheus text exposition of every counter and gauge.
fn render_metrics(
    shared: &SharedSnapshot,
    status: &Status,
    plane: &PlaneMetrics,
    dns: &DnsMetrics,
) -> String {
    let mut out = String::with_capacity(4096);
    let totals = dns.totals();
    let _ = writeln!(
        out,
        "# HELP {} DNS responses by response code.",
        metrics::DNS_RESPONSES_TOTAL
    );
    let _ = writeln!(out, "# TYPE {} counter", metrics::DNS_RESPONSES_TOTAL);
    for (i, (_, label)) in COUNTED_RCODES.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}{{rcode=\"{label}\"}} {}",
            metrics::DNS_RESPONSES_TOTAL,
            totals.responses[i]
        );
    }
    let _ = writeln!(
        out,
        "{}{{rcode=\"other\"}} {}",
        metrics::DNS_RESPONSES_TOTAL,
        totals.responses[7]
    );
    let _ = writeln!(
        out,
        "# HELP {0} DNS responses per zone, by response code.\n# TYPE {0} counter",
        metrics::DNS_ZONE_RESPONSES_TOTAL
    );
    for (slot, counts) in totals.zones.iter().enumerate() {
        if counts.iter().all(|&c| c == 0) {
            continue;
        }
        let Some(zone) = metrics::zone_slot_name(slot) else {
            continue;
        };
        let labels = COUNTED_RCODES
            .iter()
            .map(|(_, label)| *label)
            .chain(std::iter::once("other"));
        for (label, count) in labels.zip(counts) {
            let _ = writeln!(
                out,
                "{}{{zone=\"{}\",rcode=\"{label}\"}} {count}",
                metrics::DNS_ZONE_RESPONSES_TOTAL,
                escape(&zone)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {0} Answers given from a trickle pool (after the answering first pool) of records with trickle.\n# TYPE {0} counter",
        metrics::RECORD_TRICKLE_ANSWERS_TOTAL
    );
    for (slot, &count) in totals.trickle.iter().enumerate() {
        let Some((record, rtype)) = metrics::trickle_slot_record(slot) else {
            continue;
        };
        if count == 0 && slot == metrics::TRICKLE_SLOTS - 1 {
            continue;
        }
        let _ = writeln!(
            out,
            "{}{{record=\"{}\",type=\"{}\"}} {count}",
            metrics::RECORD_TRICKLE_ANSWERS_TOTAL,
            escape(&record),
            escape(&rtype)
        );
    }
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        &mut out,
        metrics::DNS_DROPPED_TOTAL,
        "Datagrams dropped without a response.",
        totals.dropped,
    );
    counter(
        &mut out,
        metrics::DNS_TRUNCATED_TOTAL,
        "UDP responses truncated (TC).",
        totals.truncated,
    );
    counter(
        &mut out,
        metrics::DNS_INTERNAL_ERRORS_TOTAL,
        "Internal errors on the answer path.",
        totals.internal_errors,
    );
    counter(
        &mut out,
        metrics::DNS_RRL_LIMITED_TOTAL,
        "UDP responses over their rate limit (slipped plus dropped).",
        totals.rrl_limited(),
    );
    counter(
        &mut out,
        metrics::DNS_RRL_SLIPPED_TOTAL,
        "Rate-limited UDP responses sent truncated (TC, no records).",
        totals.rrl_slipped,
    );
    counter(
        &mut out,
        metrics::DNS_RRL_DROPPED_TOTAL,
        "Rate-limited UDP responses not sent.",
        totals.rrl_dropped,
    );
    counter(
        &mut out,
        metrics::DNS_TCP_CONNECTIONS_TOTAL,
        "TCP connections accepted.",
        totals.tcp_accepted,
    );
    counter(
        &mut out,
        metrics::DNS_TCP_REJECTED_TOTAL,
        "TCP connections closed at once by a connection limit.",
        totals.tcp_rejected,
    );
    counter(
        &mut out,
        metrics::DNS_TCP_TIMEOUTS_TOTAL,
        "TCP connections closed by the idle timeout.",
        totals.tcp_timeouts,
    );
    let _ = writeln!(
        out,
        "# HELP {name} TCP connections open now.\n# TYPE {name} gauge\n{name} {}",
        totals.tcp_open(),
        name = metrics::DNS_TCP_OPEN
    );
    let snapshot = shared.load_full();
    let _ = writeln!(
        out,
        "# HELP failoverd_snapshot_generation Answer snapshot generation.\n# TYPE failoverd_snapshot_generation gauge\nfailoverd_snapshot_generation {}",
        snapshot.generation
    );
    let _ = writeln!(
        out,
        "# HELP failoverd_build_info The running build.\n# TYPE failoverd_build_info gauge\nfailoverd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    // Endpoints carry `pool` and `endpoint` (its name in the pool) as two labels.
    let endpoint_gauge =
        |out: &mut String, name: &str, help: &str, value: &dyn Fn(&EndpointStatus) -> f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for e in &status.endpoints {
                let (pool, endpoint) = e.endpoint.split_once('/').unwrap_or(("", &e.endpoint));
                let _ = writeln!(
                    out,
                    "{name}{{pool=\"{}\",endpoint=\"{}\"}} {}",
                    escape(pool),
                    escape(endpoint),
                    value(e)
                );
            }
        };
    let flag = |on: bool| f64::from(u8::from(on));
    endpoint_gauge(
        &mut out,
        "failoverd_endpoint_up",
        "Decided endpoint health (1 up, 0 down).",
        &|e| flag(e.state == HealthState::Up),
    );
    endpoint_gauge(
        &mut out,
        "failoverd_endpoint_drained",
        "Endpoints an operator drained.",
        &|e| flag(e.drained),
    );
    endpoint_gauge(
        &mut out,
        "failoverd_endpoint_suppressed",
        "Endpoints whose way back flap damping withholds.",
        &|e| flag(e.damping.as_ref().is_some_and(|d| d.suppressed)),
    );
    endpoint_gauge(
        &mut out,
        "failoverd_endpoint_damping_penalty",
        "Flap-damping penalty of the decided state.",
        &|e| e.damping.as_ref().map_or(0.0, |d| d.penalty),
    );
    let name = metrics::ENDPOINT_RTT_SECONDS;
    let _ = writeln!(
        out,
        "# HELP {name} Round-trip time from a vantage point to an endpoint, smoothed over [health] rtt_window (latency steering).\n# TYPE {name} gauge"
    );
    for rtt in &status.rtts {
        let (pool, endpoint) = rtt.endpoint.split_once('/').unwrap_or(("", &rtt.endpoint));
        let _ = writeln!(
            out,
            "{name}{{vantage=\"{}\",pool=\"{}\",endpoint=\"{}\"}} {}",
            escape(&rtt.vantage),
            escape(pool),
            escape(endpoint),
            rtt.rtt_ms / 1000.0
        );
    }
    // Records: in an all-down mode, or answered by another pool than their first.
    let record_gauge = |out: &mut String, name: &str, help: &str, outcomes: &[&str]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for record in &status.records {
            let on = record
                .answers
                .iter()
                .any(|a| outcomes.contains(&a.outcome.as_str()));
            let _ = writeln!(
                out,
                "{name}{{record=\"{}\",type=\"{}\"}} {}",
                escape(&record.name),
                record.record_type,
                u8::from(on)
            );
        }
    };
    record_gauge(
        &mut out,
        "failoverd_record_all_down",
        "Records answering in an all-down mode (fail-open, fallback, nodata) for some clients.",
        &["fail-open", "fallback", "nodata"],
    );
    let name = metrics::RECORD_FAILED_OVER;
    let _ = writeln!(
        out,
        "# HELP {name} Records answered by another pool than their first, or degraded, for some clients, by cause: health (the pools before are down) or operator (a manual failover).\n# TYPE {name} gauge"
    );
    for record in &status.records {
        for cause in crate::policy::FailoverCause::ALL {
            let on = record.answers.iter().any(|a| {
                matches!(a.outcome.as_str(), "failover" | "degraded") && a.cause == Some(cause)
            });
            let _ = writeln!(
                out,
                "{name}{{record=\"{}\",type=\"{}\",cause=\"{cause}\"}} {}",
                escape(&record.name),
                record.record_type,
                u8::from(on)
            );
        }
    }
    let name = metrics::RECORD_OVERLOADED;
    let _ = writeln!(
        out,
        "# HELP {name} Spill-over records whose pools are all at their limit (capacity x max_load) for some clients: the rest is answered by the plain policy.\n# TYPE {name} gauge"
    );
    for record in &status.records {
        let overloaded = record.answers.iter().any(|a| a.overloaded);
        let _ = writeln!(
            out,
            "{name}{{record=\"{}\",type=\"{}\"}} {}",
            escape(&record.name),
            record.record_type,
            u8::from(overloaded)
        );
    }
    record_gauge(
        &mut out,
        "failoverd_record_primary_conflict",
        "Primary records with two or more endpoints claiming primary (split brain).",
        &["conflict"],
    );
    let name = "failoverd_record_gate_held";
    let _ = writeln!(
        out,
        "# HELP {name} Failover records with a pool their lag gate holds (traffic does not move to it).\n# TYPE {name} gauge"
    );
    for record in &status.records {
        let held = record.answers.iter().any(|a| !a.held_by_gate.is_empty());
        let _ = writeln!(
            out,
            "{name}{{record=\"{}\",type=\"{}\"}} {}",
            escape(&record.name),
            record.record_type,
            u8::from(held)
        );
    }
    let _ = writeln!(
        out,
        "# HELP failoverd_overrides_active Operator overrides in force, by action.\n# TYPE failoverd_overrides_active gauge"
    );
    for action in ["drain", "force_up", "force_down", "failover"] {
        let count = status
            .overrides
            .iter()
            .filter(|o| o.action.as_ref().is_some_and(|a| action_name(a) == action))
            .count();
        let _ = writeln!(
            out,
            "failoverd_overrides_active{{action=\"{action}\"}} {count}"
        );
    }
    let now_ms = unix_ms();
    let name = metrics::OVERRIDE_AGE;
    let _ = writeln!(
        out,
        "# HELP {name} Seconds each operator override has been in force, by kind (endpoint, pool, record), target as ctl names it (POOL/NAME, POOL, a record name; type for a record of one type) and action.\n# TYPE {name} gauge"
    );
    for entry in &status.overrides {
        let Some(action) = &entry.action else {
            continue;
        };
        let (kind, target, record_type) = match &entry.target {
            Target::Endpoint(label) => ("endpoint", label.as_str(), None),
            Target::Pool(pool) => ("pool", pool.as_str(), None),
            Target::Record { name, record_type } => ("record", name.as_str(), *record_type),
            // Expanded into concrete targets before it is held; kept for completeness.
            Target::Region(region) => ("region", region.as_str(), None),
        };
        let record_type = record_type.map_or_else(String::new, |t| format!(",type=\"{t}\""));
        let _ = writeln!(
            out,
            "{name}{{kind=\"{kind}\",target=\"{}\"{record_type},action=\"{}\"}} {:.3}",
            escape(target),
            action_name(action),
            now_ms.saturating_sub(entry.at_ms) as f64 / 1000.0
        );
    }
    let name = metrics::OVERRIDE_WARN_AFTER;
    let _ = writeln!(
        out,
        "# HELP {name} [health] override_warn_after: an override in force longer is called out (0: never).\n# TYPE {name} gauge\n{name} {}",
        status.override_warn_after_ms as f64 / 1000.0
    );
    flag_gauge(
        &mut out,
        "failoverd_pool_up",
        "Pool health (1 up, 0 down).",
        "pool",
        status.pools.iter().map(|p| (p.pool.as_str(), p.up)),
    );
    flag_gauge(
        &mut out,
        "failoverd_vantage_partitioned",
        "Vantage points whose votes are ignored as partitioned.",
        "vantage",
        status
            .vantages
            .iter()
            .map(|v| (v.name.as_str(), v.partitioned)),
    );
    flag_gauge(
        &mut out,
        "failoverd_vantage_fresh",
        "Vantage points with a fresh report.",
        "vantage",
        status.vantages.iter().map(|v| (v.name.as_str(), v.fresh)),
    );
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP failoverd_reports_received_total Reports from vantage points by result.\n# TYPE failoverd_reports_received_total counter"
    );
    let _ = writeln!(
        out,
        "failoverd_reports_received_total{{result=\"accepted\"}} {}",
        load(&plane.reports_accepted)
    );
    for (label, count) in &plane.reports_rejected {
        let _ = writeln!(
            out,
            "failoverd_reports_received_total{{result=\"{label}\"}} {}",
            load(count)
        );
    }
    for (name, help, counts) in [(
        metrics::OVERRIDE_ENTRIES_REFUSED_TOTAL,
        "Override entries from peers or the state file not taken, by reason.",
        &plane.entries_refused,
    )] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (label, count) in counts {
            let _ = writeln!(out, "{name}{{reason=\"{label}\"}} {}", load(count));
        }
    }
    let name = metrics::STATE_SAVE_FAILURES_TOTAL;
    let _ = writeln!(
        out,
        "# HELP {name} State-file saves that failed (a change that could not be saved was refused).\n# TYPE {name} counter\n{name} {}",
        load(&plane.state_save_failures)
    );
    let _ = writeln!(
        out,
        "# HELP failoverd_override_syncs_received_total Override syncs from peer servers by result.\n# TYPE failoverd_override_syncs_received_total counter"
    );
    let _ = writeln!(
        out,
        "failoverd_override_syncs_received_total{{result=\"accepted\"}} {}",
        load(&plane.override_syncs_accepted)
    );
    for (label, count) in &plane.override_syncs_refused {
        let _ = writeln!(
            out,
            "failoverd_override_syncs_received_total{{result=\"{label}\"}} {}",
            load(count)
        );
    }
    let _ = writeln!(
        out,
        "# HELP failoverd_probes_total Probes run by this vantage point.\n# TYPE failoverd_probes_total counter"
    );
    let _ = writeln!(
        out,
        "failoverd_probes_total{{result=\"ok\"}} {}",
        load(&plane.probes_ok)
    );
    let _ = writeln!(
        out,
        "failoverd_probes_total{{result=\"failed\"}} {}",
        load(&plane.probes_failed)
    );
    let _ = writeln!(
        out,
        "# HELP failoverd_probe_abstentions_total Probes of this vantage point that failed for a local fault and abstained (no vote), by reason.\n# TYPE failoverd_probe_abstentions_total counter"
    );
    for (fault, count) in crate::health::LocalFault::ALL
        .iter()
        .zip(&plane.abstentions)
    {
        let _ = writeln!(
            out,
            "failoverd_probe_abstentions_total{{reason=\"{}\"}} {}",
            fault.label(),
            load(count)
        );
    }
    let _ = writeln!(
        out,
        "# HELP failoverd_vantage_impaired Whether this process's probes abstained on an endpoint (a local fault) within the last staleness.\n# TYPE failoverd_vantage_impaired gauge\nfailoverd_vantage_impaired {}",
        u8::from(plane.impaired.load(Ordering::Relaxed))
    );
    let servers = plane.reporter.snapshot();
    let _ = writeln!(
        out,
        "# HELP failoverd_reports_sent_total Reports pushed to servers, by server and result.\n# TYPE failoverd_reports_sent_total counter"
    );
    for (server, stats) in &servers {
        for (result, count) in [
            ("delivered", &stats.delivered),
            ("refused", &stats.refused),
            ("failed", &stats.failed),
        ] {
            let _ = writeln!(
                out,
                "failoverd_reports_sent_total{{server=\"{server}\",result=\"{result}\"}} {}",
                load(count)
            );
        }
    }
    flag_gauge(
        &mut out,
        "failoverd_report_server_reachable",
        "Whether the last report to the server was delivered.",
        "server",
        servers
            .iter()
            .map(|(server, stats)| (server.as_str(), stats.reachable.load(Ordering::Relaxed))),
    );
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    if let Some(isolation) = &status.isolation {
        gauge(
            &mut out,
            "failoverd_isolated",
            "Whether this server hears fewer vantage points than a quorum.",
            u64::from(isolation.isolated),
        );
        gauge(
            &mut out,
            "failoverd_quorum_needed",
            "Votes needed to change an endpoint's state.",
            u64::from(isolation.needed),
        );
        counter(
            &mut out,
            "failoverd_isolations_total",
            "Times this server became isolated.",
            load(&plane.isolations),
        );
        counter(
            &mut out,
            "failoverd_primary_conflicts_total",
            "Times two or more endpoints of a primary record began to claim primary.",
            load(&plane.primary_conflicts),
        );
    }
    let _ = writeln!(
        out,
        "# HELP failoverd_config_reloads_total Configuration reloads by result.\n# TYPE failoverd_config_reloads_total counter\nfailoverd_config_reloads_total{{result=\"ok\"}} {}\nfailoverd_config_reloads_total{{result=\"failed\"}} {}",
        load(&plane.reloads_ok),
        load(&plane.reloads_failed)
    );
    let reload = status.last_reload.as_ref();
    gauge(
        &mut out,
        "failoverd_config_last_reload_successful",
        "Whether the last reload was taken (1 before any reload: the configuration started with).",
        u64::from(reload.is_none_or(|r| r.ok)),
    );
    let _ = writeln!(
        out,
        "# HELP failoverd_config_last_reload_timestamp_seconds When the last reload was tried (Unix time; 0: never).\n# TYPE failoverd_config_last_reload_timestamp_seconds gauge\nfailoverd_config_last_reload_timestamp_seconds {:.3}",
        reload.map_or(0.0, |r| r.at_ms as f64 / 1000.0)
    );
    let _ = writeln!(
        out,
        "# HELP failoverd_decision_latency_seconds Time from an input (probe verdict, report, override) to the published answers.\n# TYPE failoverd_decision_latency_seconds histogram"
    );
    plane
        .decision_histogram
        .render(&mut out, "failoverd_decision_latency_seconds", "");
    let (quantiles, count, sum) = plane.decision_latency.summary(&[0.5, 0.9, 0.99, 1.0]);
    let _ = writeln!(
        out,
        "# HELP failoverd_decision_latency_recent_seconds The same over the last 4096 publications, as exact quantiles.\n# TYPE failoverd_decision_latency_recent_seconds summary"
    );
    for (q, value) in quantiles {
        let _ = writeln!(
            out,
            "failoverd_decision_latency_recent_seconds{{quantile=\"{q}\"}} {value:.6}"
        );
    }
    let _ = writeln!(
        out,
        "failoverd_decision_latency_recent_seconds_sum {sum:.6}\nfailoverd_decision_latency_recent_seconds_count {count}"
    );
    let _ = writeln!(
        out,
        "# HELP failoverd_probe_duration_seconds Probes of this vantage point, by how long they took.\n# TYPE failoverd_probe_duration_seconds histogram"
    );
    plane
        .probe_latency
        .render(&mut out, "failoverd_probe_duration_seconds", "");
    gauge(
        &mut out,
        "failoverd_ready",
        "Whether the first health decision is made.",
        u64::from(plane.ready.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "failoverd_report_bytes_total",
        "Bytes of report bodies received.",
        load(&plane.report_bytes),
    );
    counter(
        &mut out,
        "failoverd_endpoint_changes_total",
        "Decided endpoint state changes.",
        load(&plane.health_changes),
    );
    out
}

/// Writes a 0/1 gauge with one labelled sample per item.
/// A label value with backslashes, quotes and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn action_name(action: &crate::health::overrides::Action) -> &'static str {
    use crate::health::overrides::Action;
    match action {
        Action::Drain => "drain",
        Action::ForceUp => "force_up",
        Action::ForceDown => "force_down",
        Action::Failover(_) => "failover",
    }
}

fn flag_gauge<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl Iterator<Item = (&'a str, bool)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (value, on) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", u8::from(on));
    }
}
