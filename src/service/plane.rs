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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{ReloadStatus, Status};
use crate::config::Config;
use crate::dns::xfr::TransferState;
use crate::dns::{SharedSnapshot, Snapshot};
use crate::health::HealthSnapshot;
use crate::health::board::Board;
use crate::health::overrides::{Effects, Entry, OverrideSet};
use crate::health::quorum::Tally;
use crate::ops::changes::{IsolationNotice, VantageView};
use crate::ops::status::StatusInputs;
use crate::policy::primary::PrimaryMemory;
use crate::probe::reporter::{LocalVerdicts, unix_ms};
use crate::probe::scheduler::ProbeEvent;
use crate::telemetry::events::EventLog;

pub(crate) use self::handle::{PlaneHandle, PlaneInput, PlaneMetrics, process_nonce};
use self::spacing::Spacing;
pub(crate) use self::start::initial_snapshot;

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
    /// The isolation warning's state (for events).
    isolation: IsolationNotice,
    /// This process's probes abstained within the last staleness (for events).
    impaired: bool,
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
    /// Latency steering: RTT averages and reports, and the choices per region.
    steering: latency::Steering,
}

mod handle;
mod inputs;
mod latency;
mod narrate;
mod operator;
mod primaries;
mod resign;
mod saving;
mod spacing;
mod start;

impl Plane {
    fn now(&self) -> Duration {
        self.started.elapsed()
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
                    self.expire_rtts();
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
                // Tests of the supervision (debug builds only): a panic on reload.
                #[cfg(debug_assertions)]
                if std::env::var_os("FAILOVERD_TEST_PANIC_PLANE").is_some_and(|v| v == "1") {
                    panic!("FAILOVERD_TEST_PANIC_PLANE=1: a panic injected on reload");
                }
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

    /// Decides when the board says a decision is due (an input changed, or time may
    /// have changed it), publishes what changed, refreshes status.
    async fn recompute(&mut self) {
        let now = self.now();
        if self.board.due(now) {
            let before = self.board.last_tally().map(VantageView::of);
            let (decided, tally) = self.board.decide(now, unix_ms());
            let config = self.config.clone();
            let health = self.published(&config, decided);
            let now_view = VantageView::of(&tally);
            if before.as_ref() != Some(&now_view) {
                narrate::tell_vantage_changes(&self.events, before.as_ref(), &now_view);
                self.dirty = true;
            }
            self.tell_damping_changes();
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
        } else if self.steering_due(now) {
            // RTTs moved or a hold ended: only the latency choices may change.
            let config = self.config.clone();
            let health = self.steer(&config, self.published.clone());
            if health != self.published {
                if let Some(tally) = self.board.last_tally().cloned() {
                    self.publish(health, &tally).await;
                    self.dirty = true;
                }
            }
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
        self.tell_endpoint_changes(&self.published, &health, tally, generation);
        narrate::tell_answer_changes(&self.events, &self.config, &before, &after);
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

    /// Status as of now ([`crate::ops::status::build`]), with what needs attention.
    fn build_status(&self, tally: &Tally) -> Status {
        let snapshot = self.shared.load_full();
        let state_file = self
            .metrics
            .state_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now_ms = unix_ms();
        let mut status = crate::ops::status::build(&StatusInputs {
            config: &self.config,
            snapshot: &snapshot,
            board: &self.board,
            tally,
            effects: &self.effects,
            overrides: &self.overrides,
            impaired: self.impaired,
            server: self.role == Role::Server,
            last_reload: self.last_reload.as_ref(),
            state_file: &state_file,
            counted_since_ms: self.counted_since_ms,
            now: self.now(),
            now_ms,
        });
        status.attention = crate::admin::attention::notices(&status, now_ms);
        status.rtts = self.rtt_status();
        status
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
