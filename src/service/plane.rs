//! The health plane of a running server: one task owning every input that decides
//! endpoint health — this process's probe verdicts, reports from other vantage points,
//! operator overrides — and publishing a new answer snapshot when the decision
//! changes. The DNS path never waits on it.
//!
//! ```text
//!  probers ──LocalEvent──┐
//!  admin: POST report ───┼─▶ Plane ─ quorum::tally ─▶ HealthSnapshot ─▶ Snapshot::with_health ─▶ DNS
//!  admin: force ─────────┘     │                       └─▶ events (logs), state file, status
//!                              └─ local verdicts ─▶ reporter ─▶ other servers
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::api::{
    AnswerStatus, EndpointStatus, PoolStatus, ProbeStatus, RecordStatus, Status, VantageStatus,
};
use crate::config::{Config, Secret};
use crate::dns::{SharedSnapshot, Snapshot};
use crate::health::persist::{self, STATE_VERSION, SavedEndpoint, SavedState};
use crate::health::quorum::{self, Rules, Tally, VantageView};
use crate::health::report::{self, ReportError, Verdict};
use crate::health::{EndpointHealth, HealthSnapshot, HealthSource};
use crate::model::{EndpointIndex, HealthState, RegionIndex};
use crate::probe::ProbeOutcome;
use crate::probe::reporter::{ReporterMetrics, unix_ms};
use crate::probe::scheduler::{self, LocalEvent};
use crate::zone::ZoneSet;

/// Name used for this process's own verdicts when it has no configured vantage point.
pub const LOCAL_VANTAGE: &str = "local";

/// Requests to the plane.
pub(crate) enum PlaneInput {
    /// A report body with its signature header.
    Report {
        body: Bytes,
        signature: Option<String>,
        reply: oneshot::Sender<Result<(), ReportError>>,
    },
    /// Set or clear an operator override.
    Force {
        endpoint: String,
        state: Option<HealthState>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Switch to a new configuration and zones.
    Reload {
        config: Arc<Config>,
        zones: ZoneSet,
        reply: oneshot::Sender<()>,
    },
}

/// Counters of the plane.
#[derive(Debug, Default)]
pub(crate) struct PlaneMetrics {
    pub(crate) reports_accepted: AtomicU64,
    pub(crate) reports_rejected: BTreeMap<&'static str, AtomicU64>,
    pub(crate) probes_ok: AtomicU64,
    pub(crate) probes_failed: AtomicU64,
    pub(crate) health_changes: AtomicU64,
    pub(crate) reporter: Arc<ReporterMetrics>,
}

impl PlaneMetrics {
    pub(crate) fn new() -> Self {
        let reports_rejected = [
            "malformed",
            "unknown_vantage",
            "bad_signature",
            "stale",
            "replay",
        ]
        .into_iter()
        .map(|label| (label, AtomicU64::new(0)))
        .collect();
        Self {
            reports_rejected,
            ..Self::default()
        }
    }
}

/// Where health starts before any probe or report (state file, peers).
#[derive(Clone, Debug, Default)]
pub(crate) struct Initial {
    /// Decided state per endpoint label.
    pub(crate) states: BTreeMap<String, HealthState>,
    /// Runtime overrides per endpoint label.
    pub(crate) forced: BTreeMap<String, HealthState>,
    /// Last accepted report sequence per vantage point.
    pub(crate) sequences: BTreeMap<String, u64>,
}

/// A remote vantage point's latest accepted report.
struct RemoteView {
    received_at: Duration,
    verdicts: Vec<Option<HealthState>>,
    reasons: Vec<String>,
}

pub(crate) struct Plane {
    config: Arc<Config>,
    shared: SharedSnapshot,
    generation: Arc<AtomicU64>,
    vantage: String,
    local: Vec<Option<(HealthState, ProbeOutcome)>>,
    remote: BTreeMap<String, RemoteView>,
    decided: Vec<Option<HealthState>>,
    restored: Vec<bool>,
    changed_at_ms: Vec<u64>,
    forced: Vec<Option<HealthState>>,
    sequences: BTreeMap<String, u64>,
    tally: Option<Tally>,
    published: HealthSnapshot,
    status: watch::Sender<Arc<Status>>,
    verdicts: watch::Sender<Arc<Vec<Verdict>>>,
    metrics: Arc<PlaneMetrics>,
    started: Instant,
    probes: Option<(CancellationToken, JoinSet<()>)>,
    events_tx: mpsc::UnboundedSender<LocalEvent>,
    dirty: bool,
    saver: watch::Sender<Option<(PathBuf, Arc<SavedState>)>>,
}

/// What the service keeps to talk to the plane.
pub(crate) struct PlaneHandle {
    pub(crate) inputs: mpsc::Sender<PlaneInput>,
    pub(crate) status: watch::Receiver<Arc<Status>>,
    pub(crate) verdicts: watch::Receiver<Arc<Vec<Verdict>>>,
    pub(crate) metrics: Arc<PlaneMetrics>,
}

/// Which vantage this process is, and its secret.
pub(crate) fn local_vantage(config: &Config) -> (String, Option<RegionIndex>, Option<Secret>) {
    match config.health.vantage {
        Some(v) => {
            let vantage = &config.vantages[usize::from(v.0)];
            (vantage.name.clone(), vantage.region, vantage.secret.clone())
        }
        None => (LOCAL_VANTAGE.to_owned(), None, None),
    }
}

/// The health every endpoint starts with: overrides, then restored state, then up.
pub(crate) fn initial_snapshot(config: &Config, initial: &Initial) -> HealthSnapshot {
    HealthSnapshot::from_health(
        (0..config.endpoints.len())
            .map(|i| {
                let index = EndpointIndex(i as u32);
                let label = config.endpoint_label(index);
                if let Some(state) = initial
                    .forced
                    .get(&label)
                    .copied()
                    .or(config.endpoint(index).forced)
                {
                    EndpointHealth {
                        state,
                        source: HealthSource::Forced,
                    }
                } else if let Some(&state) = initial.states.get(&label) {
                    EndpointHealth {
                        state,
                        source: HealthSource::Restored,
                    }
                } else {
                    EndpointHealth {
                        state: HealthState::Up,
                        source: HealthSource::Assumed,
                    }
                }
            })
            .collect(),
    )
}

impl Plane {
    /// Creates the plane and starts this process's probers. The snapshot in `shared`
    /// must already carry `initial_snapshot(config, initial)`.
    pub(crate) fn start(
        config: Arc<Config>,
        shared: SharedSnapshot,
        generation: Arc<AtomicU64>,
        initial: Initial,
        shutdown: CancellationToken,
    ) -> PlaneHandle {
        let (inputs_tx, inputs_rx) = mpsc::channel(1024);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(Arc::new(Status::default()));
        let (verdicts_tx, verdicts_rx) = watch::channel(Arc::new(Vec::new()));
        let metrics = Arc::new(PlaneMetrics::new());
        let (vantage, _, _) = local_vantage(&config);
        let published = shared.load().health.as_ref().clone();
        let (saver, saves) = watch::channel(None);
        tokio::spawn(save_latest(saves));
        let mut plane = Self {
            config: config.clone(),
            shared,
            generation,
            vantage,
            local: Vec::new(),
            remote: BTreeMap::new(),
            decided: Vec::new(),
            restored: Vec::new(),
            changed_at_ms: Vec::new(),
            forced: Vec::new(),
            sequences: initial.sequences.clone(),
            tally: None,
            published,
            status: status_tx,
            verdicts: verdicts_tx,
            metrics: metrics.clone(),
            started: Instant::now(),
            probes: None,
            events_tx,
            dirty: true,
            saver,
        };
        plane.adopt(config, &initial, &shutdown);
        plane.recompute(); // status is readable from the first moment
        tokio::spawn(plane.run(inputs_rx, events_rx, shutdown));
        PlaneHandle {
            inputs: inputs_tx,
            status: status_rx,
            verdicts: verdicts_rx,
            metrics,
        }
    }

    /// Takes on a configuration: state by endpoint label from `initial`, probers
    /// restarted from those states.
    fn adopt(&mut self, config: Arc<Config>, initial: &Initial, shutdown: &CancellationToken) {
        let n = config.endpoints.len();
        let label = |i: usize| config.endpoint_label(EndpointIndex(i as u32));
        self.decided = (0..n)
            .map(|i| initial.states.get(&label(i)).copied())
            .collect();
        self.restored = self.decided.iter().map(Option::is_some).collect();
        self.changed_at_ms = vec![unix_ms(); n];
        self.forced = (0..n)
            .map(|i| initial.forced.get(&label(i)).copied())
            .collect();
        self.local = vec![None; n];
        self.remote.clear();
        self.tally = None;
        if let Some((token, mut tasks)) = self.probes.take() {
            token.cancel();
            tasks.detach_all();
        }
        let token = shutdown.child_token();
        let start_state = |i: EndpointIndex| {
            self.decided
                .get(i.0 as usize)
                .copied()
                .flatten()
                .unwrap_or(HealthState::Up)
        };
        match scheduler::spawn(
            &config,
            start_state,
            self.events_tx.clone(),
            token.clone(),
            unix_ms(),
        ) {
            Ok(tasks) => self.probes = Some((token, tasks)),
            Err(error) => {
                tracing::error!(%error, "probes could not start; health comes from reports only")
            }
        }
        let (vantage, _, _) = local_vantage(&config);
        self.vantage = vantage;
        self.config = config;
        self.dirty = true;
    }

    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<PlaneInput>,
        mut events: mpsc::UnboundedReceiver<LocalEvent>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(input) = inputs.recv() => self.handle(input, &shutdown),
                Some(event) = events.recv() => {
                    self.local_event(event);
                    while let Ok(event) = events.try_recv() {
                        self.local_event(event);
                    }
                }
                _ = tick.tick() => {}
            }
            self.recompute();
        }
        if let Some((token, _)) = self.probes.take() {
            token.cancel();
        }
    }

    fn handle(&mut self, input: PlaneInput, shutdown: &CancellationToken) {
        match input {
            PlaneInput::Report {
                body,
                signature,
                reply,
            } => {
                let _ = reply.send(self.report(&body, signature.as_deref()));
            }
            PlaneInput::Force {
                endpoint,
                state,
                reply,
            } => {
                let found = (0..self.config.endpoints.len())
                    .find(|&i| self.config.endpoint_label(EndpointIndex(i as u32)) == endpoint);
                let result = match found {
                    Some(i) => {
                        self.forced[i] = state;
                        tracing::info!(
                            target: "failoverd::event",
                            event = "override",
                            endpoint = %endpoint,
                            state = ?state,
                            "operator override"
                        );
                        self.dirty = true;
                        Ok(())
                    }
                    None => Err(format!("no endpoint {endpoint}")),
                };
                let _ = reply.send(result);
            }
            PlaneInput::Reload {
                config,
                zones,
                reply,
            } => {
                let initial = Initial {
                    states: self.states_by_label(),
                    forced: self.forced_by_label(),
                    sequences: self.sequences.clone(),
                };
                let health = initial_snapshot(&config, &initial);
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                self.shared.store(Snapshot::build(
                    config.clone(),
                    zones,
                    health.clone(),
                    generation,
                ));
                self.published = health;
                self.adopt(config, &initial, shutdown);
                let _ = reply.send(());
            }
        }
    }

    fn states_by_label(&self) -> BTreeMap<String, HealthState> {
        self.decided
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.map(|s| (self.config.endpoint_label(EndpointIndex(i as u32)), s))
            })
            .collect()
    }

    fn forced_by_label(&self) -> BTreeMap<String, HealthState> {
        self.forced
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.map(|s| (self.config.endpoint_label(EndpointIndex(i as u32)), s))
            })
            .collect()
    }

    fn local_event(&mut self, event: LocalEvent) {
        let i = event.endpoint.0 as usize;
        let counter = if event.outcome.ok {
            &self.metrics.probes_ok
        } else {
            &self.metrics.probes_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if event.changed {
            tracing::info!(
                target: "failoverd::event",
                event = "probe_verdict",
                vantage = %self.vantage,
                endpoint = %self.config.endpoint_label(event.endpoint),
                state = %event.state,
                reason = %event.outcome.reason,
                latency_ms = millis(event.outcome.latency),
                "local verdict changed"
            );
            self.dirty = true;
        }
        if let Some(slot) = self.local.get_mut(i) {
            // Status shows the last reason: refresh it when the reason changes.
            let news = slot.as_ref().is_none_or(|(_, last)| {
                last.ok != event.outcome.ok || last.reason != event.outcome.reason
            });
            *slot = Some((event.state, event.outcome));
            self.dirty |= news;
        }
    }

    fn report(&mut self, body: &[u8], signature: Option<&str>) -> Result<(), ReportError> {
        let config = &self.config;
        let result = report::authenticate(
            body,
            signature,
            |name| {
                config
                    .vantage_by_name(name)
                    .and_then(|v| config.vantages[usize::from(v.0)].secret.clone())
            },
            |name| self.sequences.get(name).copied(),
            unix_ms(),
        );
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                if let Some(counter) = self.metrics.reports_rejected.get(error.label()) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(reason = %error, "report rejected");
                return Err(error);
            }
        };
        self.metrics
            .reports_accepted
            .fetch_add(1, Ordering::Relaxed);
        self.sequences
            .insert(report.vantage.clone(), report.sequence);
        if report.vantage == self.vantage {
            return Ok(()); // our own verdicts come straight from our probers
        }
        let n = self.config.endpoints.len();
        let mut verdicts = vec![None; n];
        let mut reasons = vec![String::new(); n];
        let index: BTreeMap<String, usize> = (0..n)
            .map(|i| (self.config.endpoint_label(EndpointIndex(i as u32)), i))
            .collect();
        for verdict in report.verdicts {
            // Endpoints unknown here (a vantage on another config version) are ignored.
            if let Some(&i) = index.get(&verdict.endpoint) {
                verdicts[i] = Some(verdict.state);
                reasons[i] = verdict.reason;
            }
        }
        let changed = self
            .remote
            .get(&report.vantage)
            .is_none_or(|view| view.verdicts != verdicts || view.reasons != reasons);
        self.remote.insert(
            report.vantage,
            RemoteView {
                received_at: self.started.elapsed(),
                verdicts,
                reasons,
            },
        );
        self.dirty |= changed;
        Ok(())
    }

    fn views(&self, now: Duration) -> Vec<VantageView> {
        let (_, local_region, _) = local_vantage(&self.config);
        let mut views = Vec::with_capacity(self.remote.len() + 1);
        if self.local.iter().any(Option::is_some) {
            views.push(VantageView {
                name: self.vantage.clone(),
                region: local_region,
                received_at: now,
                verdicts: self
                    .local
                    .iter()
                    .map(|l| l.as_ref().map(|(s, _)| *s))
                    .collect(),
            });
        }
        for (name, view) in &self.remote {
            let region = self
                .config
                .vantage_by_name(name)
                .and_then(|v| self.config.vantages[usize::from(v.0)].region);
            views.push(VantageView {
                name: name.clone(),
                region,
                received_at: view.received_at,
                verdicts: view.verdicts.clone(),
            });
        }
        views
    }

    fn recompute(&mut self) {
        let now = self.started.elapsed();
        let rules = Rules {
            down_votes: self.config.health.down_votes,
            down_regions: self.config.health.down_regions,
            staleness: self.config.health.staleness,
        };
        let views = self.views(now);
        let tally = quorum::tally(
            &views,
            &self.decided,
            self.config.endpoints.len(),
            &rules,
            now,
        );
        let staleness_changed = self
            .tally
            .as_ref()
            .is_none_or(|t| t.fresh != tally.fresh || t.partitioned != tally.partitioned);
        if staleness_changed {
            self.log_vantage_changes(&tally);
        }
        for (i, state) in tally.states.iter().enumerate() {
            if !tally.votes[i].up.is_empty() || !tally.votes[i].down.is_empty() {
                self.restored[i] = false;
            }
            if *state != self.decided[i] {
                self.changed_at_ms[i] = unix_ms();
            }
        }
        self.decided = tally.states.clone();
        let health = self.health_snapshot(&tally);
        let verdicts = self.local_verdicts();
        if *self.verdicts.borrow() != verdicts {
            self.verdicts.send_replace(verdicts);
        }
        let publish = health != self.published;
        if publish {
            self.publish(health, &tally);
        }
        let refresh_status = publish || self.dirty || staleness_changed;
        self.tally = Some(tally);
        if refresh_status {
            self.status.send_replace(Arc::new(self.build_status()));
            self.dirty = false;
        }
    }

    fn health_snapshot(&self, tally: &Tally) -> HealthSnapshot {
        HealthSnapshot::from_health(
            (0..self.config.endpoints.len())
                .map(|i| {
                    let forced = self.forced[i].or(self.config.endpoints[i].forced);
                    match (forced, tally.states[i]) {
                        (Some(state), _) => EndpointHealth {
                            state,
                            source: HealthSource::Forced,
                        },
                        (None, Some(state)) => EndpointHealth {
                            state,
                            source: if self.restored[i] {
                                HealthSource::Restored
                            } else {
                                HealthSource::Observed
                            },
                        },
                        (None, None) => EndpointHealth {
                            state: HealthState::Up,
                            source: HealthSource::Assumed,
                        },
                    }
                })
                .collect(),
        )
    }

    fn local_verdicts(&self) -> Arc<Vec<Verdict>> {
        Arc::new(
            self.local
                .iter()
                .enumerate()
                .filter_map(|(i, local)| {
                    local.as_ref().map(|(state, outcome)| Verdict {
                        endpoint: self.config.endpoint_label(EndpointIndex(i as u32)),
                        state: *state,
                        reason: outcome.reason.clone(),
                    })
                })
                .collect(),
        )
    }

    /// Swaps in the new answers and records why.
    fn publish(&mut self, health: HealthSnapshot, tally: &Tally) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let before = self.shared.load_full();
        let after = before.with_health(health.clone(), generation);
        for (i, (old, new)) in self
            .published
            .endpoints()
            .iter()
            .zip(health.endpoints())
            .enumerate()
        {
            if old.state != new.state {
                self.metrics.health_changes.fetch_add(1, Ordering::Relaxed);
                let votes = quorum::describe_votes(&tally.votes[i]);
                let reason = self
                    .local
                    .get(i)
                    .and_then(|l| l.as_ref())
                    .map(|(_, o)| o.reason.clone())
                    .unwrap_or_default();
                tracing::info!(
                    target: "failoverd::event",
                    event = "endpoint",
                    endpoint = %self.config.endpoint_label(EndpointIndex(i as u32)),
                    old = %old.state,
                    new = %new.state,
                    source = ?new.source,
                    votes = ?votes,
                    local_reason = %reason,
                    generation,
                    "endpoint state changed"
                );
            }
        }
        log_answer_changes(&self.config, &before, &after);
        self.shared.store(after);
        self.published = health;
        self.save_state();
    }

    fn log_vantage_changes(&self, tally: &Tally) {
        let old_partitioned = self
            .tally
            .as_ref()
            .map(|t| t.partitioned.clone())
            .unwrap_or_default();
        for name in tally.partitioned.difference(&old_partitioned) {
            tracing::warn!(
                target: "failoverd::event",
                event = "vantage_partitioned",
                vantage = %name,
                "vantage point reports every endpoint down while others see them up; ignoring its votes"
            );
        }
        for name in old_partitioned.difference(&tally.partitioned) {
            tracing::info!(target: "failoverd::event", event = "vantage_recovered", vantage = %name, "vantage point votes again");
        }
        let old_fresh: BTreeSet<String> = self
            .tally
            .as_ref()
            .map(|t| t.fresh.clone())
            .unwrap_or_default();
        for name in old_fresh.difference(&tally.fresh) {
            tracing::warn!(target: "failoverd::event", event = "vantage_stale", vantage = %name, "no fresh report from vantage point");
        }
    }

    fn save_state(&self) {
        let Some(path) = self.config.health.state_file.clone() else {
            return;
        };
        let state = SavedState {
            version: STATE_VERSION,
            saved_at_ms: unix_ms(),
            endpoints: self
                .decided
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.map(|state| {
                        (
                            self.config.endpoint_label(EndpointIndex(i as u32)),
                            SavedEndpoint {
                                state,
                                changed_at_ms: self.changed_at_ms[i],
                            },
                        )
                    })
                })
                .collect(),
            forced: self.forced_by_label(),
            sequences: self.sequences.clone(),
        };
        self.saver.send_replace(Some((path, Arc::new(state))));
    }

    fn build_status(&self) -> Status {
        let snapshot = self.shared.load_full();
        let config = &self.config;
        let now = self.started.elapsed();
        let votes = self
            .tally
            .as_ref()
            .map(|t| t.votes.clone())
            .unwrap_or_default();
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
                let mut endpoint_votes: BTreeMap<String, String> = votes
                    .get(i)
                    .map(|v| {
                        quorum::describe_votes(v)
                            .into_iter()
                            .map(|(k, s)| (k, s.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (name, view) in &self.remote {
                    if let Some(Some(state)) = view.verdicts.get(i) {
                        let vote = endpoint_votes
                            .entry(name.clone())
                            .or_insert_with(|| format!("{state} (not counted)"));
                        if let Some(reason) = view.reasons.get(i).filter(|r| !r.is_empty()) {
                            vote.push_str(&format!(": {reason}"));
                        }
                    }
                }
                EndpointStatus {
                    endpoint: config.endpoint_label(index),
                    target: config.endpoint(index).target.to_string(),
                    state: health.state,
                    source: health.source,
                    votes: endpoint_votes,
                    local: self.local[i]
                        .as_ref()
                        .map(|(verdict, outcome)| ProbeStatus {
                            verdict: *verdict,
                            ok: outcome.ok,
                            reason: outcome.reason.clone(),
                            latency_ms: millis(outcome.latency),
                        }),
                }
            })
            .collect();
        let mut pools: BTreeMap<String, PoolStatus> = BTreeMap::new();
        let mut records = Vec::new();
        for (r, answer) in snapshot.dynamic.iter().enumerate() {
            let record = &config.records[r];
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
                let (outcome, pool) = describe_outcome(config, decision);
                answers.push(AnswerStatus {
                    regions: answer.regions_of_set(s, config),
                    pools: decision
                        .pools
                        .iter()
                        .map(|v| config.pool(v.pool).name.clone())
                        .collect(),
                    outcome,
                    pool,
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
        let partitioned = self
            .tally
            .as_ref()
            .map(|t| t.partitioned.clone())
            .unwrap_or_default();
        let fresh = self
            .tally
            .as_ref()
            .map(|t| t.fresh.clone())
            .unwrap_or_default();
        let mut vantages: Vec<VantageStatus> = self
            .remote
            .iter()
            .map(|(name, view)| VantageStatus {
                name: name.clone(),
                fresh: fresh.contains(name),
                partitioned: partitioned.contains(name),
                last_report_age_ms: Some(now.saturating_sub(view.received_at).as_millis() as u64),
            })
            .collect();
        if self.local.iter().any(Option::is_some) {
            vantages.push(VantageStatus {
                name: self.vantage.clone(),
                fresh: true,
                partitioned: partitioned.contains(&self.vantage),
                last_report_age_ms: Some(0),
            });
        }
        Status {
            generation: snapshot.generation,
            vantage: Some(self.vantage.clone()),
            ready: true,
            endpoints,
            pools: pools.into_values().collect(),
            records,
            vantages,
        }
    }
}

/// `(outcome, pool)` in words for status output.
fn describe_outcome(
    config: &Config,
    decision: &crate::policy::Decision,
) -> (String, Option<String>) {
    use crate::policy::Outcome;
    match decision.outcome {
        Outcome::Healthy { pool: Some(pool) } => {
            let first = decision.pools.first().map(|v| v.pool) == Some(pool);
            (
                if first { "healthy" } else { "failover" }.to_owned(),
                Some(config.pool(pool).name.clone()),
            )
        }
        Outcome::Healthy { pool: None } => ("healthy".to_owned(), None),
        Outcome::Degraded => ("degraded".to_owned(), None),
        Outcome::FailOpen => ("fail-open".to_owned(), None),
        Outcome::Fallback { pool } => ("fallback".to_owned(), Some(config.pool(pool).name.clone())),
        Outcome::NoData => ("nodata".to_owned(), None),
    }
}

/// Milliseconds, rounded to 10 µs for readable logs and status.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Logs every pool and record whose answer changed between two snapshots.
fn log_answer_changes(config: &Config, before: &Snapshot, after: &Snapshot) {
    let pool_states = |snapshot: &Snapshot| {
        let mut states = BTreeMap::new();
        for answer in &snapshot.dynamic {
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
                tracing::info!(
                    target: "failoverd::event",
                    event = "pool",
                    pool = %config.pool(*pool).name,
                    old = state(*was_up),
                    new = state(*up),
                    usable_before = was_usable,
                    usable_after = usable,
                    "pool state changed"
                );
            } else if was_usable != usable {
                tracing::info!(
                    target: "failoverd::event",
                    event = "pool_capacity",
                    pool = %config.pool(*pool).name,
                    state = state(*up),
                    usable_before = was_usable,
                    usable_after = usable,
                    "pool capacity changed"
                );
            }
        }
    }
    for (old, new) in before.dynamic.iter().zip(&after.dynamic) {
        let record = &config.records[new.record.0 as usize];
        for (s, (a, b)) in old.sets.iter().zip(&new.sets).enumerate() {
            let answers = |set: &crate::dns::snapshot::VariantSet| -> Vec<String> {
                set.decision
                    .candidates
                    .iter()
                    .map(|c| config.endpoint(c.endpoint).target.to_string())
                    .collect()
            };
            if a.decision.outcome != b.decision.outcome || answers(a) != answers(b) {
                tracing::info!(
                    target: "failoverd::event",
                    event = "record",
                    record = %record.name,
                    r#type = %record.record_type,
                    regions = ?new.regions_of_set(s, config),
                    old_outcome = %a.decision.outcome,
                    new_outcome = %b.decision.outcome,
                    before = ?answers(a),
                    after = ?answers(b),
                    "answer changed"
                );
            }
        }
    }
}

/// Writes the newest state off the async runtime, one save at a time (a burst of
/// changes ends with the last state on disk); failures are logged, never fatal.
async fn save_latest(mut saves: watch::Receiver<Option<(PathBuf, Arc<SavedState>)>>) {
    while saves.changed().await.is_ok() {
        let Some((path, state)) = saves.borrow_and_update().clone() else {
            continue;
        };
        let result = tokio::task::spawn_blocking(move || persist::save(&path, &state)).await;
        if let Ok(Err(error)) = result {
            tracing::error!(%error, "cannot save the health state file");
        }
    }
}
