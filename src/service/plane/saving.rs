//! The plane's state file: decided health is saved in the background (the newest
//! state wins), operator overrides are saved **before** they are confirmed or adopted.
//!
//! A change to the override set — an operator's (batched: every change waiting in the
//! inbox goes into one save) or a peer's — is made on a copy, the copy is written and
//! fsynced (file and directory), and only then does it become the set the answers,
//! status and peers see. A save that fails refuses the operator's change (503,
//! nothing changed) and leaves a peer's entries to its next round; it is counted
//! (`failoverd_state_save_failures_total`), shown in `/status` and makes `/readyz`
//! fail until a save succeeds again (retried every tick).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::{Plane, PlaneInput, PlaneMetrics, state_file};
use crate::api::StateFileStatus;
use crate::health::overrides::{Change, Entry, OverrideError, OverrideSet};
use crate::health::persist::{STATE_VERSION, SavedEndpoint, SavedState, StateWriter};
use crate::probe::reporter::unix_ms;

/// Most operator changes saved together.
const MAX_BATCH: usize = 64;

/// One save for the background writer.
#[derive(Clone)]
struct Job {
    writer: Arc<StateWriter>,
    sequence: u64,
    state: Arc<SavedState>,
}

/// Where and how the plane saves.
pub(super) struct Saver {
    writer: Option<Arc<StateWriter>>,
    /// Number of the last state built (saves of older ones are skipped).
    sequence: u64,
    background: watch::Sender<Option<Job>>,
}

impl Saver {
    /// A saver for `path`; starts the background writer.
    pub(super) fn start(path: Option<&Path>, metrics: Arc<PlaneMetrics>) -> Self {
        let (background, jobs) = watch::channel(None);
        tokio::spawn(save_latest(jobs, metrics.clone()));
        let mut saver = Self {
            writer: None,
            sequence: 0,
            background,
        };
        saver.configure(path, &metrics);
        saver
    }

    /// Follows `[health] state_file` (a reload may change it).
    pub(super) fn configure(&mut self, path: Option<&Path>, metrics: &PlaneMetrics) {
        if self.writer.as_ref().map(|w| w.path()) == path {
            return;
        }
        self.writer = path.map(|p| Arc::new(StateWriter::new(p.to_owned())));
        let mut status = lock(&metrics.state_file);
        *status = StateFileStatus {
            path: path.map(|p| p.display().to_string()),
            ..StateFileStatus::default()
        };
    }

    fn next(&mut self) -> Option<(Arc<StateWriter>, u64)> {
        let writer = self.writer.clone()?;
        self.sequence += 1;
        Some((writer, self.sequence))
    }

    /// Saves `state` in the background (the newest state queued wins).
    pub(super) fn background(&mut self, state: SavedState) {
        if let Some((writer, sequence)) = self.next() {
            self.background.send_replace(Some(Job {
                writer,
                sequence,
                state: Arc::new(state),
            }));
        }
    }

    /// Saves `state` now and waits until it is on disk (off the async workers).
    pub(super) async fn durable(
        &mut self,
        state: SavedState,
        metrics: &PlaneMetrics,
    ) -> Result<(), String> {
        let Some((writer, sequence)) = self.next() else {
            return Ok(()); // no state file: nothing to wait for
        };
        let result = tokio::task::spawn_blocking(move || writer.write(sequence, &state))
            .await
            .map_err(|_| "the save panicked".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()));
        record(metrics, &result);
        result.map_err(|e| format!("the state file cannot be written ({e})"))
    }

    /// Saves `state` at once, blocking (at shutdown).
    pub(super) fn blocking(&mut self, state: &SavedState, metrics: &PlaneMetrics) {
        if let Some((writer, sequence)) = self.next() {
            let result = writer.write(sequence, state).map_err(|e| e.to_string());
            record(metrics, &result);
        }
    }
}

fn lock(status: &Mutex<StateFileStatus>) -> std::sync::MutexGuard<'_, StateFileStatus> {
    status.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes a save's outcome in status (and the failure counter).
fn record(metrics: &PlaneMetrics, result: &Result<(), String>) {
    let mut status = lock(&metrics.state_file);
    match result {
        Ok(()) => {
            if let Some(error) = status.error.take() {
                tracing::info!(was = %error, "the state file is written again");
            }
            status.saved_at_ms = Some(unix_ms());
        }
        Err(error) => {
            metrics.state_save_failures.fetch_add(1, Ordering::Relaxed);
            if status.error.is_none() {
                tracing::error!(%error, "cannot save the state file: changes to overrides are refused until it can be written");
            }
            status.error = Some(error.clone());
        }
    }
}

/// Writes the newest queued state off the async runtime, one save at a time.
async fn save_latest(mut jobs: watch::Receiver<Option<Job>>, metrics: Arc<PlaneMetrics>) {
    while jobs.changed().await.is_ok() {
        let Some(job) = jobs.borrow_and_update().clone() else {
            continue;
        };
        let result =
            tokio::task::spawn_blocking(move || job.writer.write(job.sequence, &job.state))
                .await
                .map_err(|_| "the save panicked".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
        record(&metrics, &result);
    }
}

impl Plane {
    /// What the state file keeps, with `overrides` as the override set.
    fn saved_state_with(&self, overrides: &OverrideSet) -> SavedState {
        SavedState {
            version: STATE_VERSION,
            saved_at_ms: unix_ms(),
            endpoints: self
                .board
                .decided_states(self.now())
                .into_iter()
                .map(|(label, record)| {
                    let saved = SavedEndpoint {
                        state: record.state,
                        changed_at_ms: record.history.changed_at_ms,
                        penalty: record.penalty,
                        suppressed: record.suppressed,
                        changes: record.history.changes,
                        downs: record.history.downs,
                        down_ms: record.history.down_ms,
                    };
                    (label, saved)
                })
                .collect(),
            overrides: overrides.entries().cloned().collect(),
            forced: BTreeMap::new(),
            primaries: self.primaries.agreed().clone(),
            counted_since_ms: Some(self.counted_since_ms),
        }
    }

    /// The state to hand a replacing process; from here on this process changes and
    /// saves nothing (the new one owns the state file).
    pub(super) fn hand_over(&mut self) -> SavedState {
        self.handing_over = true;
        self.saved_state_with(&self.overrides)
    }

    /// Saves the current state in the background.
    pub(super) fn save_state(&mut self) {
        if !self.handing_over {
            let state = self.saved_state_with(&self.overrides);
            self.saver.background(state);
        }
    }

    /// Saves the current state at once (at shutdown).
    pub(super) fn save_now(&mut self) {
        if !self.handing_over {
            let state = self.saved_state_with(&self.overrides);
            self.saver.blocking(&state, &self.metrics);
        }
    }

    /// Whether the last save failed (the tick retries).
    pub(super) fn save_failed(&self) -> bool {
        lock(&self.metrics.state_file).error.is_some()
    }

    /// Writes `overrides` (with the rest of the state) and waits for the disk.
    pub(super) async fn save_overrides(&mut self, overrides: &OverrideSet) -> Result<(), String> {
        if self.handing_over {
            return Err(
                "this server is handing over to a new process; retry in a moment".to_owned(),
            );
        }
        let state = self.saved_state_with(overrides);
        self.saver.durable(state, &self.metrics).await
    }

    /// The safety checks of going from the overrides `before` to `after`
    /// ([`crate::policy::safety`]), with the health the answers would see.
    fn check_safety(
        &self,
        before: &OverrideSet,
        after: &OverrideSet,
        now_ms: u64,
    ) -> Result<(), OverrideError> {
        let (health_before, effects_before) = self.health_with(before, now_ms);
        let (health_after, effects_after) = self.health_with(after, now_ms);
        crate::policy::safety::check(
            &self.config,
            crate::policy::safety::Proposed {
                before: &health_before,
                after: &health_after,
                effects_before: &effects_before,
                effects_after: &effects_after,
            },
        )
        .map_err(|e| OverrideError::Unsafe(e.to_string()))
    }

    /// The health the answers would see with `overrides` (on copies: nothing of the
    /// plane changes).
    fn health_with(
        &self,
        overrides: &OverrideSet,
        now_ms: u64,
    ) -> (
        crate::health::HealthSnapshot,
        crate::health::overrides::Effects,
    ) {
        let effects = overrides.effects(&self.config, now_ms);
        let mut board = self.board.clone();
        board.set_forced(&effects.forced);
        let (decided, _) = board.decide(self.now(), now_ms);
        let mut primaries = self.primaries.clone();
        let health = crate::health::published::compose(decided, &effects, |health| {
            primaries.observe(&self.config, health);
            primaries.indices(&self.config)
        });
        (health, effects)
    }

    /// Operator changes: `first` and every other change already waiting in `inputs`,
    /// made on a copy of the set, saved once, then adopted and confirmed — or, if the
    /// save fails, refused with nothing changed. An input of another kind found while
    /// gathering is returned to be handled next.
    pub(super) async fn change_overrides(
        &mut self,
        first: (Change, oneshot::Sender<Result<Vec<Entry>, OverrideError>>),
        inputs: &mut mpsc::Receiver<PlaneInput>,
    ) -> Option<PlaneInput> {
        let mut batch = vec![first];
        let mut next = None;
        while batch.len() < MAX_BATCH {
            match inputs.try_recv() {
                Ok(PlaneInput::Override { change, reply }) => batch.push((change, reply)),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let origin = self.board.local_name().to_owned();
        let mut tentative = self.overrides.clone();
        let mut made = Vec::new();
        for (change, reply) in batch {
            // Each change on a copy: made whole (every target of a pattern) and safe,
            // or not at all.
            let mut trial = tentative.clone();
            let allow_empty = change.allow_empty;
            let takes_effect = change.action.is_some();
            let now_ms = unix_ms();
            let result = trial
                .apply(change, &self.config, &origin, now_ms)
                .and_then(|entries| {
                    if takes_effect && !allow_empty {
                        self.check_safety(&tentative, &trial, now_ms)?;
                    }
                    Ok(entries)
                });
            match result {
                Ok(entries) => {
                    tentative = trial;
                    made.push((entries, reply));
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        if made.is_empty() {
            return next;
        }
        match self.save_overrides(&tentative).await {
            Ok(()) => {
                self.overrides = tentative;
                for entry in made.iter().flat_map(|(entries, _)| entries) {
                    super::operator::log_entry(&self.events, entry, "made here");
                    if state_file(self.role, &self.config).is_none() {
                        tracing::warn!(
                            on = %entry.target,
                            "override kept in memory only: no [health] state_file, so it is forgotten when this server restarts"
                        );
                    }
                }
                self.overrides_changed();
                // Confirm only once the answers are swapped in, and status shows
                // them (an operator's next look must see what was confirmed).
                self.recompute().await;
                self.refresh_status();
                for (entries, reply) in made {
                    let _ = reply.send(Ok(entries));
                }
            }
            Err(why) => {
                for (_, reply) in made {
                    let _ = reply.send(Err(OverrideError::NotSaved(why.clone())));
                }
            }
        }
        next
    }
}
