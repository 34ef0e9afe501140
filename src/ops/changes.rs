//! What changed between two moments, as the event log tells it: pure diffs of
//! snapshots, health, vantage points, flap damping and isolation. Each returns the
//! changes; the health plane turns them into events (their text lives there, with
//! the event log).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Selection};
use crate::dns::Snapshot;
use crate::dns::answers::VariantSet;
use crate::health::HealthSnapshot;
use crate::health::HealthSource;
use crate::health::quorum::Tally;
use crate::model::{EndpointIndex, HealthState, PoolIndex};

/// A change in what the answers say.
#[derive(Clone, Debug, PartialEq)]
pub enum AnswerChange {
    /// A pool went up or down.
    Pool {
        /// The pool.
        pool: PoolIndex,
        /// Up before.
        was_up: bool,
        /// Up now.
        up: bool,
        /// Usable endpoints before.
        usable_before: u32,
        /// Usable endpoints now.
        usable_after: u32,
    },
    /// A pool stayed up (or down) with a different number of usable endpoints.
    PoolCapacity {
        /// The pool.
        pool: PoolIndex,
        /// Up (before and now).
        up: bool,
        /// Usable endpoints before.
        usable_before: u32,
        /// Usable endpoints now.
        usable_after: u32,
    },
    /// One answer (a record, for one set of client regions) changed.
    Record {
        /// The record.
        record: usize,
        /// The client regions of the answer.
        regions: Vec<String>,
        /// The outcome in words, before and now.
        old_outcome: String,
        /// The outcome now.
        new_outcome: String,
        /// The answered targets before.
        before: Vec<String>,
        /// The answered targets now.
        after: Vec<String>,
    },
}

/// Every pool and record answer that changed between two snapshots (records whose
/// answers the new snapshot shares with the old one are skipped unread).
pub fn answer_changes(config: &Config, before: &Snapshot, after: &Snapshot) -> Vec<AnswerChange> {
    let mut changes = Vec::new();
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
    for (&pool, &(up, usable)) in &new_pools {
        if let Some(&(was_up, was_usable)) = old_pools.get(&pool) {
            if was_up != up {
                changes.push(AnswerChange::Pool {
                    pool,
                    was_up,
                    up,
                    usable_before: was_usable,
                    usable_after: usable,
                });
            } else if was_usable != usable {
                changes.push(AnswerChange::PoolCapacity {
                    pool,
                    up,
                    usable_before: was_usable,
                    usable_after: usable,
                });
            }
        }
    }
    for (old, new) in rebuilt
        .iter()
        .map(|&r| (&before.dynamic[r], &after.dynamic[r]))
    {
        let r = new.record.0 as usize;
        let record = &config.records[r];
        let pin = |snapshot: &Snapshot| {
            snapshot
                .health
                .pin(new.record)
                .filter(|_| record.selection != Selection::Primary)
        };
        let (pin_before, pin_after) = (pin(before), pin(after));
        for (s, (a, b)) in old.sets.iter().zip(&new.sets).enumerate() {
            let answers = |set: &VariantSet| -> Vec<String> {
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
            let pools = new.pools_of_set(s);
            let operator = |snapshot: &Snapshot, pin, decision| {
                crate::policy::operator_pin(config, &snapshot.health, pools, pin, decision)
            };
            let was = crate::policy::describe_outcome(
                config,
                pools,
                operator(before, pin_before, &a.decision),
                &a.decision,
            );
            let is = crate::policy::describe_outcome(
                config,
                pools,
                operator(after, pin_after, &b.decision),
                &b.decision,
            );
            if was != is || !same_candidates {
                changes.push(AnswerChange::Record {
                    record: r,
                    regions: new.regions_of_set(s, config),
                    old_outcome: was.to_string(),
                    new_outcome: is.to_string(),
                    before: answers(a),
                    after: answers(b),
                });
            }
        }
    }
    changes
}

/// An endpoint whose published state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointChange {
    /// The endpoint.
    pub endpoint: EndpointIndex,
    /// Its state before.
    pub old: HealthState,
    /// Its state now.
    pub new: HealthState,
    /// Why it has it now.
    pub source: HealthSource,
}

/// The endpoints whose state differs between two published healths (in index
/// order; a source change alone is no change).
pub fn endpoint_changes(before: &HealthSnapshot, after: &HealthSnapshot) -> Vec<EndpointChange> {
    before
        .endpoints()
        .iter()
        .zip(after.endpoints())
        .enumerate()
        .filter(|(_, (old, new))| old.state != new.state)
        .map(|(i, (old, new))| EndpointChange {
            endpoint: EndpointIndex(i as u32),
            old: old.state,
            new: new.state,
            source: new.source,
        })
        .collect()
}

/// What a tally says of the vantage points, kept to compare with the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VantageView {
    /// Fresh vantage points.
    pub fresh: BTreeSet<String>,
    /// Partitioned vantage points (votes ignored).
    pub partitioned: BTreeSet<String>,
    /// Fewer than a quorum heard.
    pub isolated: bool,
}

impl VantageView {
    /// The view of a tally.
    pub fn of(tally: &Tally) -> Self {
        Self {
            fresh: tally.fresh.clone(),
            partitioned: tally.partitioned.clone(),
            isolated: tally.isolated,
        }
    }
}

/// A vantage point's change between two tallies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VantageChange {
    /// It began to be partitioned (its votes ignored).
    Partitioned(String),
    /// It is no longer partitioned.
    Recovered(String),
    /// Its reports stopped being fresh.
    Stale(String),
}

/// The vantage points' changes from `before` (None: the first decision) to `now`:
/// partitioned, then recovered, then stale, each in name order.
pub fn vantage_changes(before: Option<&VantageView>, now: &VantageView) -> Vec<VantageChange> {
    let empty = VantageView::default();
    let old = before.unwrap_or(&empty);
    let mut changes: Vec<VantageChange> = now
        .partitioned
        .difference(&old.partitioned)
        .cloned()
        .map(VantageChange::Partitioned)
        .collect();
    changes.extend(
        old.partitioned
            .difference(&now.partitioned)
            .cloned()
            .map(VantageChange::Recovered),
    );
    changes.extend(
        old.fresh
            .difference(&now.fresh)
            .cloned()
            .map(VantageChange::Stale),
    );
    changes
}

/// The endpoints (labels) flap damping began and stopped withholding.
pub fn damping_changes<'a>(
    before: &'a BTreeSet<String>,
    now: &'a BTreeSet<String>,
) -> (Vec<&'a String>, Vec<&'a String>) {
    (
        now.difference(before).collect(),
        before.difference(now).collect(),
    )
}

/// What the isolation warning does at a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationEdge {
    /// Warn: a server is isolated (once until it ends).
    Began,
    /// Say that it ended.
    Ended,
}

/// The isolation warning's state between decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsolationNotice {
    /// The warning went out and no "ended" followed yet.
    pub announced: bool,
    /// A quorum of vantage points was heard since start.
    pub quorum_heard: bool,
}

impl IsolationNotice {
    /// Takes a decision's isolation at `now` (time since start). At start every
    /// server is isolated until the first reports arrive (its own probes included),
    /// so the warning waits for `staleness` unless a quorum was heard before: a cold
    /// start is not an incident.
    pub fn observe(
        &mut self,
        isolated: bool,
        now: Duration,
        staleness: Duration,
    ) -> Option<IsolationEdge> {
        if !isolated {
            self.quorum_heard = true;
            return std::mem::replace(&mut self.announced, false).then_some(IsolationEdge::Ended);
        }
        let starting = !self.quorum_heard && now < staleness;
        if self.announced || starting {
            return None;
        }
        self.announced = true;
        Some(IsolationEdge::Began)
    }
}

#[cfg(test)]
mod tests;
