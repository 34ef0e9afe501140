//! How the service talks to the plane: its inputs, its counters, the handle it
//! keeps, and the process nonce.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{ReloadStatus, Status};
use crate::config::Config;
use crate::health::LocalFault;
use crate::health::overrides::{Change, Entry, OverrideError};
use crate::health::persist::SavedState;
use crate::health::report::ReportError;
use crate::probe::reporter::{LocalVerdicts, ReporterMetrics};
use crate::zone::ZoneSet;

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
    /// The plane task panicked: health is frozen (`/readyz` fails).
    pub(crate) failed: AtomicBool,
    /// Woken when `ready` changes.
    pub(crate) ready_changed: tokio::sync::Notify,
    pub(crate) reporter: Arc<ReporterMetrics>,
    /// Time from an input (probe verdict, report, override) to the published answers.
    pub(crate) decision_latency: crate::telemetry::metrics::LatencyWindow,
    /// The same as a histogram.
    pub(crate) decision_histogram: crate::telemetry::metrics::Histogram,
    /// This vantage point's probe durations.
    pub(crate) probe_latency: crate::telemetry::metrics::Histogram,
    /// Peer override entries not merged, by reason.
    pub(crate) entries_refused: BTreeMap<&'static str, AtomicU64>,
    /// State-file saves that failed.
    pub(crate) state_save_failures: AtomicU64,
    /// The state file's last save.
    pub(crate) state_file: std::sync::Mutex<crate::api::StateFileStatus>,
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

/// What the service keeps to talk to the plane.
pub(crate) struct PlaneHandle {
    pub(crate) inputs: mpsc::Sender<PlaneInput>,
    pub(crate) status: watch::Receiver<Arc<Status>>,
    pub(crate) verdicts: watch::Receiver<Arc<LocalVerdicts>>,
    pub(crate) metrics: Arc<PlaneMetrics>,
    /// Every override and release this server knows.
    pub(crate) overrides: watch::Receiver<Arc<Vec<Entry>>>,
    /// Cancelled if the plane task panicked (the process should exit non-zero).
    pub(crate) failed: tokio_util::sync::CancellationToken,
    /// The plane's supervisor: ends once the plane ended (after its final save).
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
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
