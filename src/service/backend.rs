//! The admin API's view of a running service.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::collector::{
    AdminCollector, DnssecCollector, DnstapCollector, JournalCollector, PlaneCollector,
};
use super::plane::{PlaneHandle, PlaneInput, PlaneMetrics};
use crate::admin::explain::{ExplainError, ExplainQuery, Explanation};
use crate::admin::{AdminBackend, SyncError};
use crate::api::{
    EndpointState, HealthView, Identity, OverrideSync, OverridesView, PeerState, ReloadStatus,
    Status,
};
use crate::config::Secret;
use crate::dns::SharedSnapshot;
use crate::health::overrides::{Change, Entry, OverrideError};
use crate::health::peering::{KnownServers, Standing, sign_peer, verify_peer};
use crate::health::report::ReportError;
use crate::model::EndpointIndex;
use crate::probe::reporter::unix_ms;
use crate::telemetry::events::EventLog;
use crate::telemetry::metrics::{DnsCollector, DnsMetrics};
use crate::telemetry::registry::Registry;

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
    /// The collectors of `/metrics`, registered at the first scrape (once every
    /// `with_…` part is known).
    registry: OnceLock<Registry>,
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
            registry: OnceLock::new(),
        }
    }

    /// `/metrics`' collectors, in the order they are written: the answer path's
    /// counters, the plane, transfers, DNSSEC, the event journal, the admin
    /// listeners, dnstap.
    fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(DnsCollector(self.dns_metrics.clone())));
        registry.register_collector(Box::new(PlaneCollector {
            shared: self.shared.clone(),
            status: self.status.clone(),
            plane: self.plane_metrics.clone(),
        }));
        if let Some(transfer) = &self.transfer {
            registry.register_collector(Box::new(transfer.clone()));
        }
        registry.register_collector(Box::new(DnssecCollector(self.shared.clone())));
        registry.register_collector(Box::new(JournalCollector(self.events.clone())));
        if let Some(stats) = &self.admin_stats {
            registry.register_collector(Box::new(AdminCollector(stats.clone())));
        }
        if let Some(tap) = &self.dnstap {
            registry.register_collector(Box::new(DnstapCollector(tap.clone())));
        }
        registry
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
            dials: (0..snapshot.config.pools.len())
                .filter_map(|p| {
                    let pool = crate::model::PoolIndex(p as u32);
                    let dial = snapshot.health.dial(pool)?;
                    Some(crate::api::PoolDial {
                        pool: snapshot.config.pool(pool).name.clone(),
                        percent: dial.get(),
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
        let registry = self.registry.get_or_init(|| self.registry());
        let mut out = crate::telemetry::registry::encode(registry);
        super::collector::write_decision_summary(&mut out, &self.plane_metrics);
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
