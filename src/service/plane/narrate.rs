//! The plane's narration: the pure diffs of [`crate::ops::changes`] told as events
//! (their text and fields are the event log's contract).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use super::{Plane, Role};
use crate::config::{Config, IsolationMode};
use crate::dns::Snapshot;
use crate::health::HealthSnapshot;
use crate::health::quorum::Tally;
use crate::model::EndpointIndex;
use crate::ops::changes::{
    self, AnswerChange, IsolationEdge, VantageChange, VantageView, answer_changes,
    endpoint_changes, vantage_changes,
};
use crate::telemetry::events::EventLog;

impl Plane {
    /// Tells every endpoint whose published state changed (with the votes and this
    /// process's last probe reason), counting each.
    pub(super) fn tell_endpoint_changes(
        &self,
        old: &HealthSnapshot,
        new: &HealthSnapshot,
        tally: &Tally,
        generation: u64,
    ) {
        for change in endpoint_changes(old, new) {
            self.metrics.health_changes.fetch_add(1, Ordering::Relaxed);
            let i = change.endpoint.0 as usize;
            let votes = tally.describe_votes(i);
            let reason = self
                .board
                .local_probe(change.endpoint, self.now())
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
                endpoint = self.config.endpoint_label(change.endpoint),
                old = change.old,
                new = change.new,
                source = format!("{:?}", change.source).to_lowercase(),
                votes = format!("{votes:?}"),
                local_reason = reason,
                generation = generation,
            );
        }
    }

    /// Tells endpoints whose way back flap damping starts or stops withholding.
    pub(super) fn tell_damping_changes(&mut self) {
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
        let (began, ended) = changes::damping_changes(&self.suppressed, &suppressed);
        for label in began {
            let damping = self
                .config
                .endpoint_by_label(label)
                .and_then(|e| self.board.damping(e, now));
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
        for label in ended {
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

    /// Warns once a server is isolated, and says when that ends (see
    /// [`changes::IsolationNotice`]).
    pub(super) fn announce_isolation(&mut self) {
        if self.role == Role::Agent {
            return; // an agent hears nobody by design; it decides nothing
        }
        let Some(tally) = self.board.last_tally() else {
            return;
        };
        let edge = self
            .isolation
            .observe(tally.isolated, self.now(), self.config.health.staleness);
        match edge {
            None => {}
            Some(IsolationEdge::Ended) => crate::event!(
                self.events,
                info,
                "isolation_ended",
                "a quorum of vantage points is heard again",
                fresh = format!("{:?}", tally.fresh),
            ),
            Some(IsolationEdge::Began) => {
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
        }
    }
}

/// Tells the vantage points' changes from `before` to `now`.
pub(super) fn tell_vantage_changes(
    events: &EventLog,
    before: Option<&VantageView>,
    now: &VantageView,
) {
    for change in vantage_changes(before, now) {
        match change {
            VantageChange::Partitioned(name) => crate::event!(
                events,
                warn,
                "vantage_partitioned",
                "vantage point reports every endpoint down while others see them up; ignoring its votes",
                vantage = name,
            ),
            VantageChange::Recovered(name) => crate::event!(
                events,
                info,
                "vantage_recovered",
                "vantage point votes again",
                vantage = name
            ),
            VantageChange::Stale(name) => crate::event!(
                events,
                warn,
                "vantage_stale",
                "no fresh report from vantage point",
                vantage = name
            ),
        }
    }
}

/// Tells every pool and record whose answer changed between two snapshots.
pub(super) fn tell_answer_changes(
    events: &EventLog,
    config: &Config,
    before: &Snapshot,
    after: &Snapshot,
) {
    let state = |up: bool| if up { "up" } else { "down" };
    for change in answer_changes(config, before, after) {
        match change {
            AnswerChange::Pool {
                pool,
                was_up,
                up,
                usable_before,
                usable_after,
            } => crate::event!(
                events,
                info,
                "pool",
                "pool state changed",
                pool = config.pool(pool).name,
                old = state(was_up),
                new = state(up),
                usable_before = usable_before,
                usable_after = usable_after,
            ),
            AnswerChange::PoolCapacity {
                pool,
                up,
                usable_before,
                usable_after,
            } => crate::event!(
                events,
                info,
                "pool_capacity",
                "pool capacity changed",
                pool = config.pool(pool).name,
                state = state(up),
                usable_before = usable_before,
                usable_after = usable_after,
            ),
            AnswerChange::Record {
                record,
                regions,
                old_outcome,
                new_outcome,
                before,
                after,
            } => {
                let r = &config.records[record];
                crate::event!(
                    events,
                    info,
                    "record",
                    ("answer changed: {new_outcome}"),
                    record = r.name,
                    record_type = r.record_type,
                    regions = format!("{regions:?}"),
                    old_outcome = old_outcome,
                    new_outcome = new_outcome,
                    before = format!("{before:?}"),
                    after = format!("{after:?}"),
                );
            }
        }
    }
}
