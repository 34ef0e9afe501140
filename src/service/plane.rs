//! The health plane of a running process: a thin actor around the pure
//! [`Board`](crate::health::board::Board). It moves messages — probe results, signed
//! reports, operator overrides, reloads — into the board, ticks, and publishes a new
//! answer snapshot when the decision changes. The DNS path never waits on it.
//!
//! ```text
//!  probers ──ProbeEvent──┐
//!  admin: POST report ───┼─▶ Plane ─▶ Board::decide ─▶ HealthSnapshot ─▶ Snapshot ─▶ DNS
//!  admin: force ─────────┤     │                        └─▶ events, state file, status
//!  reload ───────────────┘     └─ local verdicts ─▶ reporters ─▶ other servers
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::events::EventLog;
use crate::admin::api::{
    AnswerStatus, DampingStatus, EndpointStatus, HistoryStatus, IsolationStatus, PoolStatus,
    ProbeStatus, RecordStatus, ReloadStatus, Status, VantageStatus,
};
use crate::config::{Config, IsolationMode, Selection};
use crate::dns::xfr::TransferState;
use crate::dns::{SharedSnapshot, Snapshot};
use crate::health::board::{Board, LocalChange, LocalObservation, Restored};
use crate::health::overrides::{Change, Effects, Entry, OverrideError, OverrideSet};
use crate::health::persist::SavedState;
use crate::health::quorum::Tally;
use crate::health::report::{self, ReportError};
use crate::health::{EndpointHealth, HealthSnapshot, HealthSource, LocalFault, published};
use crate::model::{EndpointIndex, HealthState, RecordIndex};
use crate::policy::primary::PrimaryMemory;
use crate::probe::reporter::{LocalVerdicts, ReporterMetrics, unix_ms};
use crate::probe::scheduler::{self, ProbeEvent};
use crate::zone::ZoneSet;

/// How often the plane re-decides without input (staleness, isolation).
const TICK: Duration = Duration::from_millis(250);

/// Whether the process serves DNS or only probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `failoverd serve`.
    Server,
    /// `failoverd probe`.
    Agent,
}

/// Requests to the plane.
pub(crate) enum PlaneInput {
    /// A report body with its vantage and signature headers; the reply carries the
    /// outcome and the current challenge.
    Report {
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
        reply: oneshot::Sender<(Result<(), ReportError>, String)>,
    },
    /// An operator's override or release (made here, then shared with the peers).
    Override {
        change: Change,
        reply: oneshot::Sender<Result<Vec<Entry>, OverrideError>>,
    },
    /// A peer's overrides (signature already checked); the reply carries ours.
    PeerOverrides {
        from: String,
        entries: Vec<Entry>,
        reply: oneshot::Sender<Arc<Vec<Entry>>>,
    },
    /// Switch to a new configuration and zones (already loaded and validated).
    Reload {
        config: Arc<Config>,
        zones: ZoneSet,
        keys: Option<Arc<crate::dnssec::KeyRing>>,
        reply: oneshot::Sender<()>,
    },
    /// Record the outcome of a reload attempt; `shown` once status shows it.
    ReloadOutcome {
        outcome: ReloadStatus,
        shown: oneshot::Sender<()>,
    },
    /// A replacing process takes over: reply with the state to hand it, then change
    /// nothing and save nothing (changes get 503) until [`PlaneInput::Resume`].
    HandOver { reply: oneshot::Sender<SavedState> },
    /// The hand-over failed: this process carries on.
    Resume,
}

/// Counters of the plane.
#[derive(Debug, Default)]
pub(crate) struct PlaneMetrics {
    pub(crate) reports_accepted: AtomicU64,
    pub(crate) report_bytes: AtomicU64,
    pub(crate) reports_rejected: BTreeMap<&'static str, AtomicU64>,
    /// Override syncs from peers taken.
    pub(crate) override_syncs_accepted: AtomicU64,
    /// Override syncs refused, by [`crate::admin::SyncError::label`].
    pub(crate) override_syncs_refused: BTreeMap<&'static str, AtomicU64>,
    pub(crate) probes_ok: AtomicU64,
    pub(crate) probes_failed: AtomicU64,
    /// Probes that abstained, by [`LocalFault`] (in [`LocalFault::ALL`] order).
    pub(crate) abstentions: [AtomicU64; LocalFault::ALL.len()],
    /// This process abstained on an endpoint within the last staleness.
    pub(crate) impaired: AtomicBool,
    pub(crate) health_changes: AtomicU64,
    pub(crate) isolations: AtomicU64,
    /// Times two or more endpoints of a `primary` record began to claim primary.
    pub(crate) primary_conflicts: AtomicU64,
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
    pub(crate) ready: AtomicBool,
    /// Woken when `ready` changes.
    pub(crate) ready_changed: tokio::sync::Notify,
    pub(crate) reporter: Arc<ReporterMetrics>,
    /// Time from an input (probe verdict, report, override) to the published answers.
    pub(crate) decision_latency: crate::metrics::LatencyWindow,
    /// The same as a histogram.
    pub(crate) decision_histogram: crate::metrics::Histogram,
    /// This vantage point's probe durations.
    pub(crate) probe_latency: crate::metrics::Histogram,
    /// Peer override entries not merged, by reason.
    pub(crate) entries_refused: BTreeMap<&'static str, AtomicU64>,
    /// State-file saves that failed.
    pub(crate) state_save_failures: AtomicU64,
    /// The state file's last save.
    pub(crate) state_file: std::sync::Mutex<crate::admin::api::StateFileStatus>,
}

impl PlaneMetrics {
    pub(crate) fn new() -> Self {
        let reports_rejected = ReportError::LABELS
            .into_iter()
            .map(|label| (label, AtomicU64::new(0)))
            .collect();
        let labels = |labels: &[&'static str]| {
            labels
                .iter()
                .map(|label| (*label, AtomicU64::new(0)))
                .collect()
        };
        Self {
            reports_rejected,
            entries_refused: labels(&crate::health::overrides::EntryRefusal::LABELS),
            override_syncs_refused: labels(&crate::admin::SyncError::LABELS),
            ..Self::default()
        }
    }
}

pub(crate) struct Plane {
    role: Role,
    config: Arc<Config>,
    shared: SharedSnapshot,
    generation: Arc<AtomicU64>,
    board: Board,
    published: HealthSnapshot,
    status: watch::Sender<Arc<Status>>,
    verdicts: watch::Sender<Arc<LocalVerdicts>>,
    metrics: Arc<PlaneMetrics>,
    started: Instant,
    probes: Option<(CancellationToken, JoinSet<()>)>,
    events_tx: mpsc::UnboundedSender<ProbeEvent>,
    dirty: bool,
    last_reload: Option<ReloadStatus>,
    /// Endpoints whose way back flap damping withholds (for events).
    suppressed: BTreeSet<String>,
    /// The isolation warning went out and no "ended" followed yet.
    isolation_announced: bool,
    /// This process's probes abstained within the last staleness (for events).
    impaired: bool,
    /// A quorum of vantage points was heard since start.
    quorum_heard: bool,
    /// When the oldest input not yet reflected in the published answers arrived.
    pending_since: Option<Instant>,
    /// Zone transfers: stamps each snapshot before it is published.
    transfer: Option<Arc<TransferState>>,
    /// Status rebuilds, spaced out when large.
    status_spacing: Spacing,
    /// A decision changed what the state file keeps; saves are spaced out when large.
    save_pending: bool,
    save_spacing: Spacing,
    saver: saving::Saver,
    /// A replacing process took this one's state: no more changes, no more saves.
    handing_over: bool,
    /// Operator overrides, what they do now, and every entry as peers and status see it.
    overrides: OverrideSet,
    effects: Effects,
    overrides_tx: watch::Sender<Arc<Vec<Entry>>>,
    /// Recent events, for `/v1/events`.
    events: Arc<EventLog>,
    /// `primary` records' last agreed primary and conflicts (fed every decision).
    primaries: PrimaryMemory,
    /// DNSSEC: jitter seed of the re-signing timer, and a retry after a failure.
    resign_seed: u64,
    resign_retry: Option<Instant>,
    /// Since when the endpoints' history counts (state file, else this start).
    counted_since_ms: u64,
    /// Overrides in force longer than `override_warn_after` at the last look (status
    /// calls them out; a change rebuilds it).
    old_overrides: usize,
    /// The board's decided version at the last decision (a change moves history,
    /// which status shows and the state file keeps, even behind an operator's force).
    decided_version: u64,
}

mod operator;
mod primaries;
mod resign;
mod saving;

/// Spaces out a job whose cost grows with the config (status, the state file): it
/// runs at once while cheap (under 1 ms), otherwise no sooner than `factor` times its
/// last cost after its last run (at most `longest`), so it never takes more than
/// 1/`factor` of a core.
#[derive(Clone, Copy, Debug)]
struct Spacing {
    factor: u32,
    longest: Duration,
    last: Instant,
    cost: Duration,
}

impl Spacing {
    fn new(factor: u32, longest: Duration) -> Self {
        Self {
            factor,
            longest,
            last: Instant::now(),
            cost: Duration::ZERO,
        }
    }

    fn due(&self) -> bool {
        let spacing = (self.cost * self.factor).clamp(TICK, self.longest);
        self.cost < Duration::from_millis(1) || self.last.elapsed() >= spacing
    }

    fn ran(&mut self, started: Instant) {
        self.cost = started.elapsed();
        self.last = Instant::now();
    }
}

/// What the service keeps to talk to the plane.
pub(crate) struct PlaneHandle {
    pub(crate) inputs: mpsc::Sender<PlaneInput>,
    pub(crate) status: watch::Receiver<Arc<Status>>,
    pub(crate) verdicts: watch::Receiver<Arc<LocalVerdicts>>,
    pub(crate) metrics: Arc<PlaneMetrics>,
    /// Every override and release this server knows.
    pub(crate) overrides: watch::Receiver<Arc<Vec<Entry>>>,
}

/// A random id for this process (challenges, report sessions): never the same in two
/// processes, drawn from the OS-seeded hasher keys, the clock and the pid.
pub(crate) fn process_nonce() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTimeNanos::now() ^ (u128::from(std::process::id()) << 64) ^ i as u128,
        );
        *half = hasher.finish();
    }
    (u128::from(halves[0]) << 64) | u128::from(halves[1])
}

/// Wall-clock nanoseconds (only mixed into [`process_nonce`]).
struct SystemTimeNanos;

impl SystemTimeNanos {
    fn now() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }
}

/// The health every endpoint starts with (before the first decision).
pub(crate) fn initial_snapshot(config: &Config, restored: &Restored) -> HealthSnapshot {
    let mut board = Board::new(config, 0, restored, unix_ms());
    let effects = OverrideSet::from_entries(restored.overrides.clone()).effects(config, unix_ms());
    board.set_forced(&effects.forced);
    let decided = board.decide(Duration::ZERO, unix_ms()).0;
    let mut primaries = PrimaryMemory::restored(restored.primaries.clone());
    published::compose(decided, &effects, |health| {
        primaries.observe(config, health);
        primaries.indices(config)
    })
}

impl Plane {
    /// Creates the plane and starts this process's probers. The snapshot in `shared`
    /// must already carry `initial_snapshot(config, restored)`.
    #[allow(clippy::too_many_arguments)] // wiring: each is a distinct shared handle
    pub(crate) fn start(
        role: Role,
        config: Arc<Config>,
        shared: SharedSnapshot,
        generation: Arc<AtomicU64>,
        restored: Restored,
        events: Arc<EventLog>,
        transfer: Option<Arc<TransferState>>,
        shutdown: CancellationToken,
    ) -> PlaneHandle {
        let (inputs_tx, inputs_rx) = mpsc::channel(1024);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(Arc::new(Status::default()));
        let (verdicts_tx, verdicts_rx) = watch::channel(Arc::new(LocalVerdicts::default()));
        let metrics = Arc::new(PlaneMetrics::new());
        let published = shared.load().health.as_ref().clone();
        let saver = saving::Saver::start(state_file(role, &config), metrics.clone());
        let mut board = Board::new(&config, process_nonce(), &restored, unix_ms());
        let overrides = OverrideSet::from_entries(restored.overrides.clone());
        let effects = overrides.effects(&config, unix_ms());
        board.set_forced(&effects.forced);
        let (overrides_tx, overrides_rx) =
            watch::channel(Arc::new(overrides.entries().cloned().collect::<Vec<_>>()));
        let mut plane = Self {
            role,
            config: config.clone(),
            shared,
            generation,
            board,
            published,
            status: status_tx,
            verdicts: verdicts_tx,
            metrics: metrics.clone(),
            started: Instant::now(),
            probes: None,
            events_tx,
            dirty: true,
            last_reload: None,
            suppressed: BTreeSet::new(),
            isolation_announced: false,
            impaired: false,
            quorum_heard: false,
            pending_since: None,
            transfer,
            // Status is for people (2 % of a core at most); the state file for a
            // restart (5 %, so a change is on disk within 2 s).
            status_spacing: Spacing::new(50, Duration::from_secs(5)),
            save_pending: false,
            save_spacing: Spacing::new(20, Duration::from_secs(2)),
            saver,
            handing_over: false,
            overrides,
            effects,
            overrides_tx,
            events,
            primaries: PrimaryMemory::restored(restored.primaries.clone()),
            resign_seed: process_nonce() as u64,
            resign_retry: None,
            counted_since_ms: restored.counted_since_ms.unwrap_or_else(unix_ms),
            old_overrides: 0,
            decided_version: 0,
        };
        plane.start_probes(&shutdown);
        // Status is readable from the first moment (a trial decision on a copy; the
        // plane's own first decision follows at once and publishes what it must).
        let (_, tally) = plane.board.clone().decide(plane.now(), unix_ms());
        plane
            .status
            .send_replace(Arc::new(plane.build_status(&tally)));
        tokio::spawn(async move {
            plane.recompute().await;
            plane.run(inputs_rx, events_rx, shutdown).await;
        });
        PlaneHandle {
            inputs: inputs_tx,
            status: status_rx,
            verdicts: verdicts_rx,
            metrics,
            overrides: overrides_rx,
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// (Re)starts the probers of the current config generation.
    fn start_probes(&mut self, shutdown: &CancellationToken) {
        if let Some((token, mut tasks)) = self.probes.take() {
            token.cancel();
            tasks.detach_all();
        }
        if !self.config.vantages.is_empty() && self.config.health.vantage.is_none() {
            // Not a configured vantage point: its verdicts would not count, so it
            // decides from the reports alone.
            return;
        }
        let token = shutdown.child_token();
        let tasks = scheduler::spawn(
            &self.config,
            self.board.generation(),
            self.events_tx.clone(),
            token.clone(),
            unix_ms(),
        );
        self.probes = Some((token, tasks));
    }

    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<PlaneInput>,
        mut events: mpsc::UnboundedReceiver<ProbeEvent>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // DNSSEC (issue 13): re-sign before expiry and at key events.
            let resign_at = self.resign_retry.or_else(|| self.resign_due());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(resign_at.unwrap_or_else(Instant::now)), if resign_at.is_some() => {
                    self.resign_retry = None;
                    self.resign().await;
                }
                Some(input) = inputs.recv() => {
                    let mut input = Some(input);
                    while let Some(next) = input.take() {
                        input = match next {
                            PlaneInput::Override { change, reply } => {
                                self.change_overrides((change, reply), &mut inputs).await
                            }
                            other => {
                                self.handle(other, &shutdown).await;
                                None
                            }
                        };
                    }
                }
                Some(event) = events.recv() => {
                    self.probe_event(event);
                    while let Ok(event) = events.try_recv() {
                        self.probe_event(event);
                    }
                }
                _ = tick.tick() => {
                    self.refresh_verdict_ages();
                    self.expire_overrides();
                    self.note_old_overrides();
                    if self.save_failed() {
                        self.save_state(); // until the disk takes it again
                    }
                }
            }
            self.recompute().await;
        }
        if let Some((token, _)) = self.probes.take() {
            token.cancel();
        }
        if self.save_pending {
            self.save_now();
        }
    }

    async fn handle(&mut self, input: PlaneInput, shutdown: &CancellationToken) {
        match input {
            PlaneInput::Report {
                body,
                vantage,
                signature,
                reply,
            } => {
                let result = self.report(&body, vantage.as_deref(), signature.as_deref());
                let _ = reply.send((result, self.board.challenge(self.now())));
            }
            PlaneInput::Override { change, reply } => {
                // Normally batched by the run loop; alone here.
                let (_, mut none) = mpsc::channel(1);
                let _ = self.change_overrides((change, reply), &mut none).await;
            }
            PlaneInput::PeerOverrides {
                from,
                entries,
                reply,
            } => {
                self.merge_overrides(&from, entries).await;
                let _ = reply.send(self.overrides_tx.borrow().clone());
            }
            PlaneInput::Reload {
                config,
                zones,
                keys,
                reply,
            } => {
                self.reload(config, zones, keys, shutdown).await;
                let _ = reply.send(());
            }
            PlaneInput::ReloadOutcome { outcome, shown } => {
                self.last_reload = Some(outcome);
                self.dirty = true;
                self.refresh_status();
                let _ = shown.send(());
            }
            PlaneInput::HandOver { reply } => {
                let state = self.hand_over();
                let _ = reply.send(state);
            }
            PlaneInput::Resume => self.handing_over = false,
        }
    }

    /// Adopts a new configuration: the board keeps state by label; the answers are
    /// rebuilt off the async workers; probers restart for the new generation (their
    /// queued results of the old one are ignored by the board).
    async fn reload(
        &mut self,
        config: Arc<Config>,
        zones: ZoneSet,
        keys: Option<Arc<crate::dnssec::KeyRing>>,
        shutdown: &CancellationToken,
    ) {
        let next = self.board.generation() + 1;
        self.board.adopt(&config, next);
        self.effects = self.overrides.effects(&config, unix_ms());
        self.board.set_forced(&self.effects.forced);
        let (decided, _) = self.board.decide(self.now(), unix_ms());
        let health = self.published(&config, decided);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let build_config = config.clone();
        let build_health = health.clone();
        let transfer = self.transfer.clone();
        let signing = keys.map(|keys| crate::dnssec::Signing {
            keys,
            now: crate::dnssec::keys::unix_now(),
        });
        let built = tokio::task::spawn_blocking(move || {
            Snapshot::build_signed(
                build_config,
                zones,
                build_health,
                generation,
                signing.as_ref(),
            )
            .map(|snapshot| stamp(transfer.as_deref(), snapshot))
        })
        .await;
        match built {
            Ok(Err(error)) => {
                tracing::error!(%error, "signing the reloaded zones failed; keeping the current answers");
                return;
            }
            Ok(Ok(snapshot)) => {
                self.shared.store(snapshot);
                self.transfer.as_deref().map(TransferState::announce);
            }
            Err(error) => {
                tracing::error!(%error, "building the reloaded answers failed");
                return;
            }
        }
        self.published = health;
        self.saver
            .configure(state_file(self.role, &config), &self.metrics);
        self.config = config;
        self.start_probes(shutdown);
        self.dirty = true;
        self.save_state();
    }

    fn probe_event(&mut self, event: ProbeEvent) {
        let counter = match event.outcome.fault {
            Some(fault) => {
                let i = LocalFault::ALL.iter().position(|f| *f == fault);
                i.map(|i| &self.metrics.abstentions[i])
            }
            None if event.outcome.ok => Some(&self.metrics.probes_ok),
            None => Some(&self.metrics.probes_failed),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let at = event.at.saturating_duration_since(self.started);
        let reason = event.outcome.reason.clone();
        let latency = event.outcome.latency;
        if event.outcome.fault.is_none() {
            self.metrics.probe_latency.observe(latency);
        }
        let observation = LocalObservation {
            generation: event.generation,
            endpoint: event.endpoint,
            outcome: event.outcome,
            at,
        };
        let change = self.board.observe_local(observation);
        if matches!(change, LocalChange::Verdict(_)) {
            self.pending(event.at);
        }
        if event.generation == self.board.generation() {
            let _ = event.pace.send(self.board.pace(event.endpoint));
        }
        match change {
            LocalChange::Ignored | LocalChange::Unchanged => {}
            LocalChange::Reason => self.dirty = true,
            LocalChange::Abstained => {
                self.dirty = true;
                // The reports say why this vantage point's verdict stops being fresh.
                self.publish_verdicts(false);
                self.note_impairment();
            }
            LocalChange::Verdict(state) => {
                crate::event!(
                    self.events,
                    info,
                    "probe_verdict",
                    "local verdict changed",
                    vantage = self.board.local_name(),
                    endpoint = self.config.endpoint_label(event.endpoint),
                    state = state,
                    reason = reason,
                    latency_ms = millis(latency),
                );
                self.dirty = true;
                self.publish_verdicts(true);
            }
        }
    }

    /// Announces, on the edge only, that this process's probes began abstaining (a
    /// local fault) or have not abstained for `staleness`.
    fn note_impairment(&mut self) {
        let impaired = self.board.impaired(self.now());
        if impaired == self.impaired {
            return;
        }
        self.impaired = impaired;
        self.metrics.impaired.store(impaired, Ordering::Relaxed);
        self.dirty = true;
        if impaired {
            let (endpoint, reason) = self
                .board
                .last_abstention()
                .map(|(e, o)| (self.config.endpoint_label(e), o.reason.clone()))
                .unwrap_or_default();
            crate::event!(
                self.events,
                warn,
                "probe_impaired",
                "this vantage point's own probes fail for a local fault: they abstain instead of voting, and its verdicts go stale",
                vantage = self.board.local_name(),
                endpoint = endpoint,
                reason = reason,
            );
        } else {
            crate::event!(
                self.events,
                info,
                "probe_recovered",
                "no local fault for the staleness window; this vantage point's probes vote again",
                vantage = self.board.local_name(),
            );
        }
    }

    /// Publishes this process's verdicts to the reporters; `notify` when a verdict
    /// or reason changed (an immediate push), silently when only ages moved on.
    fn publish_verdicts(&mut self, notify: bool) {
        let now = self.now();
        let (verdicts, bounds): (Vec<_>, Vec<_>) =
            self.board.local_verdicts(now).into_iter().unzip();
        let fresh = LocalVerdicts {
            verdicts,
            fresh_for_ms: bounds
                .into_iter()
                .map(|fresh_for: Duration| fresh_for.as_millis() as u64)
                .collect(),
            as_of: Instant::now(),
        };
        self.verdicts.send_if_modified(|current| {
            let changed = current.verdicts.len() != fresh.verdicts.len()
                || current.verdicts.iter().zip(&fresh.verdicts).any(|(a, b)| {
                    a.endpoint != b.endpoint || a.state != b.state || a.reason != b.reason
                });
            *current = Arc::new(fresh);
            changed || notify
        });
    }

    fn refresh_verdict_ages(&mut self) {
        self.publish_verdicts(false);
    }

    fn report(
        &mut self,
        body: &[u8],
        vantage: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(), ReportError> {
        let received = Instant::now();
        self.metrics
            .report_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let config = &self.config;
        let result = report::authenticate(body, vantage, signature, |name| {
            config
                .vantage_by_name(name)
                .and_then(|v| config.vantages[usize::from(v.0)].secret.clone())
        })
        .and_then(|report| self.board.accept_report(report, self.started.elapsed()));
        match result {
            Ok(changed) => {
                self.metrics
                    .reports_accepted
                    .fetch_add(1, Ordering::Relaxed);
                if changed {
                    self.pending(received);
                    self.dirty = true;
                }
                Ok(())
            }
            Err(error) => {
                if let Some(counter) = self.metrics.reports_rejected.get(error.label()) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // A restarted server re-challenges every sender once: not worth a warning.
                // Anyone can send one: at most a few lines (the metric counts each),
                // the vantage name from the request header escaped by Debug.
                if error == ReportError::Challenge {
                    tracing::debug!(vantage = ?vantage, reason = %error, "report re-challenged");
                } else {
                    crate::log_limited!(warn, "report rejected", vantage = ?vantage, reason = %error);
                }
                Err(error)
            }
        }
    }

    /// Decides when the board says a decision is due (an input changed, or time may
    /// have changed it), publishes what changed, refreshes status.
    async fn recompute(&mut self) {
        let now = self.now();
        if self.board.due(now) {
            let before = self
                .board
                .last_tally()
                .map(|t| (t.fresh.clone(), t.partitioned.clone(), t.isolated));
            let (decided, tally) = self.board.decide(now, unix_ms());
            let config = self.config.clone();
            let health = self.published(&config, decided);
            let vantages_changed = before
                .as_ref()
                .is_none_or(|(fresh, partitioned, isolated)| {
                    *fresh != tally.fresh
                        || *partitioned != tally.partitioned
                        || *isolated != tally.isolated
                });
            if vantages_changed {
                self.log_vantage_changes(before.as_ref(), &tally);
                self.dirty = true;
            }
            self.log_damping_changes();
            let decided = self.board.decided_version();
            if decided != std::mem::replace(&mut self.decided_version, decided) {
                self.dirty = true;
                self.save_pending = true;
            }
            if health != self.published {
                self.publish(health, &tally).await;
                self.dirty = true;
            }
            self.pending_since = None;
        }
        self.announce_isolation();
        self.note_impairment();
        let ready = self.board.ready();
        if self.metrics.ready.swap(ready, Ordering::Relaxed) != ready {
            self.metrics.ready_changed.notify_waiters();
            self.dirty = true;
            if ready {
                tracing::info!("first health decision made; ready");
            }
        }
        if self.dirty && self.status_spacing.due() {
            self.refresh_status();
        }
        if self.save_pending && self.save_spacing.due() {
            let started = Instant::now();
            self.save_state();
            self.save_spacing.ran(started);
            self.save_pending = false;
        }
    }

    /// Rebuilds status now if anything it shows changed (whatever its spacing).
    fn refresh_status(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(tally) = self.board.last_tally().cloned() {
            let started = Instant::now();
            self.status
                .send_replace(Arc::new(self.build_status(&tally)));
            self.status_spacing.ran(started);
        }
        self.dirty = false;
    }

    /// Notes that an input which may change the answers arrived at `at`.
    fn pending(&mut self, at: Instant) {
        self.pending_since = Some(self.pending_since.map_or(at, |p| p.min(at)));
    }

    /// Swaps in the new answers (built off the async workers) and records why.
    async fn publish(&mut self, health: HealthSnapshot, tally: &Tally) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let before = self.shared.load_full();
        let build_from = before.clone();
        let build_health = health.clone();
        let transfer = self.transfer.clone();
        let built = tokio::task::spawn_blocking(move || {
            stamp(
                transfer.as_deref(),
                build_from.with_health(build_health, generation),
            )
        })
        .await;
        let Ok(after) = built else {
            tracing::error!("building the answers failed; keeping the current ones");
            return;
        };
        for (i, (old, new)) in self
            .published
            .endpoints()
            .iter()
            .zip(health.endpoints())
            .enumerate()
        {
            if old.state != new.state {
                self.metrics.health_changes.fetch_add(1, Ordering::Relaxed);
                let votes = tally.describe_votes(i);
                let reason = self
                    .board
                    .local_probe(EndpointIndex(i as u32), self.now())
                    .and_then(|p| match (p.abstaining, p.abstained, p.last) {
                        (true, Some((abstention, _)), _) => Some(&abstention.reason),
                        (_, _, last) => last.map(|o| &o.reason),
                    })
                    .cloned()
                    .unwrap_or_default();
                crate::event!(
                    self.events,
                    info,
                    "endpoint",
                    "endpoint state changed",
                    endpoint = self.config.endpoint_label(EndpointIndex(i as u32)),
                    old = old.state,
                    new = new.state,
                    source = format!("{:?}", new.source).to_lowercase(),
                    votes = format!("{votes:?}"),
                    local_reason = reason,
                    generation = generation,
                );
            }
        }
        log_answer_changes(&self.events, &self.config, &before, &after);
        self.shared.store(after);
        self.transfer.as_deref().map(TransferState::announce);
        if let Some(since) = self.pending_since.take() {
            let latency = since.elapsed();
            self.metrics.decision_latency.record(latency);
            self.metrics.decision_histogram.observe(latency);
        }
        self.published = health;
        self.save_pending = true;
    }

    /// Logs endpoints whose way back flap damping starts or stops withholding.
    fn log_damping_changes(&mut self) {
        let now = self.now();
        let suppressed: BTreeSet<String> = (0..self.config.endpoints.len())
            .map(|i| EndpointIndex(i as u32))
            .filter(|&e| {
                self.board
                    .damping(e, now)
                    .is_some_and(|d| d.suppressed_until.is_some())
            })
            .map(|e| self.config.endpoint_label(e))
            .collect();
        if suppressed == self.suppressed {
            return;
        }
        for label in suppressed.difference(&self.suppressed) {
            let index = (0..self.config.endpoints.len())
                .map(|i| EndpointIndex(i as u32))
                .find(|&e| self.config.endpoint_label(e) == *label);
            let damping = index.and_then(|e| self.board.damping(e, now));
            crate::event!(
                self.events,
                warn,
                "damping_suppressed",
                "endpoint is flapping: it may go down at any time, but comes back only once its penalty decays",
                endpoint = label,
                penalty = damping.map_or(0.0, |d| d.penalty.round()),
                suppressed_for_ms = damping
                    .and_then(|d| d.suppressed_until)
                    .map_or(0, |until| until.saturating_sub(now).as_millis() as u64),
            );
        }
        for label in self.suppressed.difference(&suppressed) {
            crate::event!(
                self.events,
                info,
                "damping_released",
                "flap damping no longer withholds the endpoint",
                endpoint = label,
            );
        }
        self.suppressed = suppressed;
        self.dirty = true;
        self.save_pending = true;
    }

    /// `old`: the last decision's fresh and partitioned vantage points and isolation.
    fn log_vantage_changes(
        &self,
        old: Option<&(BTreeSet<String>, BTreeSet<String>, bool)>,
        tally: &Tally,
    ) {
        let old_partitioned = old.map(|t| t.1.clone()).unwrap_or_default();
        for name in tally.partitioned.difference(&old_partitioned) {
            crate::event!(
                self.events,
                warn,
                "vantage_partitioned",
                "vantage point reports every endpoint down while others see them up; ignoring its votes",
                vantage = name,
            );
        }
        for name in old_partitioned.difference(&tally.partitioned) {
            crate::event!(
                self.events,
                info,
                "vantage_recovered",
                "vantage point votes again",
                vantage = name
            );
        }
        let old_fresh: BTreeSet<String> = old.map(|t| t.0.clone()).unwrap_or_default();
        for name in old_fresh.difference(&tally.fresh) {
            crate::event!(
                self.events,
                warn,
                "vantage_stale",
                "no fresh report from vantage point",
                vantage = name
            );
        }
    }

    /// Warns once a server is isolated, and says when that ends. At start every
    /// server is isolated until the first reports arrive (its own probes included),
    /// so the warning waits for the report staleness window unless a quorum was
    /// heard before: a cold start is not an incident.
    fn announce_isolation(&mut self) {
        if self.role == Role::Agent {
            return; // an agent hears nobody by design; it decides nothing
        }
        let Some(tally) = self.board.last_tally() else {
            return;
        };
        if !tally.isolated {
            if std::mem::replace(&mut self.isolation_announced, false) {
                crate::event!(
                    self.events,
                    info,
                    "isolation_ended",
                    "a quorum of vantage points is heard again",
                    fresh = format!("{:?}", tally.fresh),
                );
            }
            self.quorum_heard = true;
            return;
        }
        let starting = !self.quorum_heard && self.now() < self.config.health.staleness;
        if self.isolation_announced || starting {
            return;
        }
        self.isolation_announced = true;
        self.metrics.isolations.fetch_add(1, Ordering::Relaxed);
        let isolation = self.board.isolation();
        crate::event!(
            self.events,
            warn,
            "isolated",
            (
                "isolated: fewer vantage points heard than a quorum; {}",
                match self.config.health.isolation {
                    IsolationMode::Hold => "holding every endpoint's last decided state",
                    IsolationMode::Local =>
                        "the vantage points still heard decide (isolation = local)",
                }
            ),
            mode = format!("{:?}", self.config.health.isolation).to_lowercase(),
            needed = isolation.needed,
            fresh = format!("{:?}", isolation.fresh),
            missing = format!("{:?}", isolation.missing),
        );
    }

    fn build_status(&self, tally: &Tally) -> Status {
        let snapshot = self.shared.load_full();
        let config = &self.config;
        let endpoints = (0..config.endpoints.len())
            .map(|i| {
                let index = EndpointIndex(i as u32);
                let health = snapshot
                    .health
                    .get(index)
                    .copied()
                    .unwrap_or(EndpointHealth {
                        state: HealthState::Up,
                        source: HealthSource::Assumed,
                    });
                let mut votes: BTreeMap<String, String> = tally
                    .describe_votes(i)
                    .into_iter()
                    .map(|(k, s)| (k, s.to_owned()))
                    .collect();
                for (name, state, reason) in self.board.remote_verdicts(index) {
                    let vote = votes
                        .entry(name.to_owned())
                        .or_insert_with(|| format!("{state} (not counted)"));
                    if !reason.is_empty() {
                        vote.push_str(&format!(": {reason}"));
                    }
                }
                EndpointStatus {
                    drained: self.effects.drained.get(i).copied().unwrap_or(false),
                    forced_by_operator: self.effects.forced.get(i).is_some_and(Option::is_some),
                    history: self.board.history(index).map(|h| HistoryStatus {
                        changed_at_ms: h.changed_at_ms,
                        changes: h.changes,
                        downs: h.downs,
                        down_ms: h.down_ms,
                    }),
                    endpoint: config.endpoint_label(index),
                    target: config.endpoint(index).target.to_string(),
                    state: health.state,
                    source: health.source,
                    votes,
                    local: self.board.local_probe(index, self.now()).map(|probe| {
                        let (ok, reason, latency_ms) = probe.last.map_or_else(
                            || (false, "no probe has voted yet".to_owned(), 0.0),
                            |o| (o.ok, o.reason.clone(), millis(o.latency)),
                        );
                        ProbeStatus {
                            verdict: probe.verdict,
                            ok,
                            reason,
                            latency_ms,
                            abstained: probe.abstained.map(|(o, _)| o.reason.clone()),
                            abstained_age_ms: probe
                                .abstained
                                .map(|(_, age)| age.as_millis() as u64),
                            abstaining: probe.abstaining,
                        }
                    }),
                    damping: self.board.damping(index, self.now()).map(|d| {
                        let now = self.now();
                        DampingStatus {
                            penalty: d.penalty.round(),
                            suppressed: d.suppressed_until.is_some(),
                            suppressed_until_ms: d.suppressed_until.map(|until| {
                                unix_ms() + until.saturating_sub(now).as_millis() as u64
                            }),
                        }
                    }),
                }
            })
            .collect();
        let mut pools: BTreeMap<String, PoolStatus> = BTreeMap::new();
        let mut records = Vec::new();
        for (r, answer) in snapshot.dynamic.iter().enumerate() {
            let record = &config.records[r];
            let pin = snapshot
                .health
                .pin(RecordIndex(r as u32))
                .filter(|_| record.selection != Selection::Primary);
            let mut answers = Vec::new();
            for (s, set) in answer.sets.iter().enumerate() {
                let decision = &set.decision;
                for verdict in &decision.pools {
                    let pool = &config.pool(verdict.pool).name;
                    pools.entry(pool.clone()).or_insert(PoolStatus {
                        pool: pool.clone(),
                        usable: verdict.usable,
                        needed: verdict.needed,
                        up: verdict.up,
                    });
                }
                let words = crate::policy::describe_outcome(
                    config,
                    answer.pools_of_set(s, config),
                    pin,
                    decision,
                );
                answers.push(AnswerStatus {
                    regions: answer.regions_of_set(s, config),
                    pools: decision
                        .pools
                        .iter()
                        .map(|v| config.pool(v.pool).name.clone())
                        .collect(),
                    outcome: words.outcome.to_owned(),
                    cause: words.cause,
                    pinned: pin.map(|p| config.pool(p).name.clone()),
                    pool: words.pool,
                    held_by_gate: decision
                        .pools
                        .iter()
                        .filter(|v| v.held())
                        .map(|v| config.pool(v.pool).name.clone())
                        .collect(),
                    ttl: set.ttl,
                    candidates: decision
                        .candidates
                        .iter()
                        .map(|c| config.endpoint_label(c.endpoint))
                        .collect(),
                });
            }
            records.push(RecordStatus {
                name: record.name.clone(),
                record_type: record.record_type.to_string(),
                answers,
            });
        }
        let mut vantages: Vec<VantageStatus> = self
            .board
            .remote_vantages(self.now(), unix_ms())
            .into_iter()
            .map(|(name, age, skew)| VantageStatus {
                fresh: tally.fresh.contains(&name),
                partitioned: tally.partitioned.contains(&name),
                last_report_age_ms: Some(age.as_millis() as u64),
                clock_offset_ms: skew,
                impaired: false,
                name,
            })
            .collect();
        let local = self.board.local_name().to_owned();
        // This process: listed while its verdicts are fresh, and while impaired (its
        // verdicts may be going stale because its probes abstain).
        if tally.fresh.contains(&local) || self.impaired {
            vantages.push(VantageStatus {
                fresh: tally.fresh.contains(&local),
                partitioned: tally.partitioned.contains(&local),
                last_report_age_ms: Some(0),
                clock_offset_ms: 0,
                impaired: self.impaired,
                name: local.clone(),
            });
        }
        let isolation = (self.role == Role::Server).then(|| {
            let isolation = self.board.isolation();
            IsolationStatus {
                isolated: isolation.isolated,
                mode: match config.health.isolation {
                    IsolationMode::Hold => "hold",
                    IsolationMode::Local => "local",
                }
                .to_owned(),
                needed: isolation.needed,
                fresh: isolation.fresh,
                missing: isolation.missing,
            }
        });
        let mut status = Status {
            generation: snapshot.generation,
            vantage: Some(local),
            ready: self.board.ready(),
            endpoints,
            pools: pools.into_values().collect(),
            records,
            vantages,
            isolation,
            last_reload: self.last_reload.clone(),
            overrides: self.overrides.active(unix_ms()).cloned().collect(),
            state_file: self
                .metrics
                .state_file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            attention: Vec::new(),
            counted_since_ms: self.counted_since_ms,
            override_warn_after_ms: config.health.override_warn_after.as_millis() as u64,
        };
        status.attention = crate::admin::attention::notices(&status, unix_ms());
        status
    }
}

/// Milliseconds, rounded to 10 µs for readable logs and status.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Logs every pool and record whose answer changed between two snapshots.
fn log_answer_changes(events: &EventLog, config: &Config, before: &Snapshot, after: &Snapshot) {
    // Unchanged records share their answers with the old snapshot: skip them.
    let rebuilt: Vec<usize> = (0..before.dynamic.len().min(after.dynamic.len()))
        .filter(|&r| !Arc::ptr_eq(&before.dynamic[r], &after.dynamic[r]))
        .collect();
    let pool_states = |snapshot: &Snapshot| {
        let mut states = BTreeMap::new();
        for answer in rebuilt.iter().map(|&r| &snapshot.dynamic[r]) {
            for set in &answer.sets {
                for v in &set.decision.pools {
                    states.entry(v.pool).or_insert((v.up, v.usable));
                }
            }
        }
        states
    };
    let (old_pools, new_pools) = (pool_states(before), pool_states(after));
    for (pool, (up, usable)) in &new_pools {
        if let Some((was_up, was_usable)) = old_pools.get(pool) {
            let state = |up: bool| if up { "up" } else { "down" };
            if was_up != up {
                crate::event!(
                    events,
                    info,
                    "pool",
                    "pool state changed",
                    pool = config.pool(*pool).name,
                    old = state(*was_up),
                    new = state(*up),
                    usable_before = was_usable,
                    usable_after = usable,
                );
            } else if was_usable != usable {
                crate::event!(
                    events,
                    info,
                    "pool_capacity",
                    "pool capacity changed",
                    pool = config.pool(*pool).name,
                    state = state(*up),
                    usable_before = was_usable,
                    usable_after = usable,
                );
            }
        }
    }
    for (old, new) in rebuilt
        .iter()
        .map(|&r| (&before.dynamic[r], &after.dynamic[r]))
    {
        let record = &config.records[new.record.0 as usize];
        let pin = |snapshot: &Snapshot| {
            snapshot
                .health
                .pin(new.record)
                .filter(|_| record.selection != Selection::Primary)
        };
        let (pin_before, pin_after) = (pin(before), pin(after));
        for (s, (a, b)) in old.sets.iter().zip(&new.sets).enumerate() {
            let answers = |set: &crate::dns::answers::VariantSet| -> Vec<String> {
                set.decision
                    .candidates
                    .iter()
                    .map(|c| config.endpoint(c.endpoint).target.to_string())
                    .collect()
            };
            let same_candidates = a.decision.candidates.len() == b.decision.candidates.len()
                && a.decision
                    .candidates
                    .iter()
                    .zip(&b.decision.candidates)
                    .all(|(x, y)| x.endpoint == y.endpoint);
            let pools = new.pools_of_set(s, config);
            let was = crate::policy::describe_outcome(config, pools, pin_before, &a.decision);
            let is = crate::policy::describe_outcome(config, pools, pin_after, &b.decision);
            if was != is || !same_candidates {
                crate::event!(
                    events,
                    info,
                    "record",
                    ("answer changed: {is}"),
                    record = record.name,
                    record_type = record.record_type,
                    regions = format!("{:?}", new.regions_of_set(s, config)),
                    old_outcome = was,
                    new_outcome = is,
                    before = format!("{:?}", answers(a)),
                    after = format!("{:?}", answers(b)),
                );
            }
        }
    }
}

/// The state file this process writes: none for an agent, which decides nothing and
/// restores nothing (the file of a config it shares with the servers is theirs, and
/// its unit cannot write it anyway).
pub(super) fn state_file(role: Role, config: &Config) -> Option<&std::path::Path> {
    match role {
        Role::Server => config.health.state_file.as_deref(),
        Role::Agent => None,
    }
}

/// Gives a snapshot about to be published its zone transfer serials (blocking).
fn stamp(transfer: Option<&TransferState>, snapshot: Snapshot) -> Snapshot {
    match transfer {
        Some(transfer) => transfer.stamp(snapshot),
        None => snapshot,
    }
}
