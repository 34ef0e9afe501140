//! Starting the plane, and supervising it: a panic of the plane task is logged,
//! `/readyz` fails at once ([`PlaneMetrics::failed`]) and the service is told
//! ([`PlaneHandle::failed`]) so the process exits non-zero and systemd restarts it.
//! The supervisor's handle is what the service joins at shutdown, after the plane's
//! final save.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spacing::Spacing;
use super::{Plane, PlaneHandle, PlaneMetrics, Role, process_nonce, saving, state_file};
use crate::api::Status;
use crate::config::Config;
use crate::dns::SharedSnapshot;
use crate::dns::xfr::TransferState;
use crate::health::board::{Board, Restored};
use crate::health::overrides::OverrideSet;
use crate::health::{HealthSnapshot, published};
use crate::ops::changes::IsolationNotice;
use crate::policy::primary::PrimaryMemory;
use crate::probe::reporter::{LocalVerdicts, unix_ms};
use crate::probe::scheduler;
use crate::telemetry::events::EventLog;

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
            isolation: IsolationNotice::default(),
            impaired: false,
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
            steering: Default::default(),
        };
        plane.start_probes(&shutdown);
        // Status is readable from the first moment (a trial decision on a copy; the
        // plane's own first decision follows at once and publishes what it must).
        let (_, tally) = plane.board.clone().decide(plane.now(), unix_ms());
        plane
            .status
            .send_replace(Arc::new(plane.build_status(&tally)));
        let task = tokio::spawn(async move {
            plane.recompute().await;
            plane.run(inputs_rx, events_rx, shutdown).await;
        });
        let failed = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(task, metrics.clone(), failed.clone()));
        PlaneHandle {
            inputs: inputs_tx,
            status: status_rx,
            verdicts: verdicts_rx,
            metrics,
            overrides: overrides_rx,
            failed,
            task: Some(supervisor),
        }
    }

    /// (Re)starts the probers of the current config generation.
    pub(super) fn start_probes(&mut self, shutdown: &CancellationToken) {
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
}

/// Waits for the plane task; if it panicked, logs why, fails `/readyz` and tells
/// the service (a plane that stopped freezes health while DNS still answers).
async fn supervise(task: JoinHandle<()>, metrics: Arc<PlaneMetrics>, failed: CancellationToken) {
    let Err(error) = task.await else {
        return;
    };
    if !error.is_panic() {
        return; // cancelled: the runtime is going away
    }
    let payload = error.into_panic();
    let why = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    metrics.failed.store(true, Ordering::Relaxed);
    metrics.ready.store(false, Ordering::Relaxed);
    metrics.ready_changed.notify_waiters();
    tracing::error!(
        panic = %crate::logs::Escaped(&why),
        "the health plane panicked: health no longer changes, so /readyz fails and the process exits for its supervisor (systemd) to restart it"
    );
    failed.cancel();
}
