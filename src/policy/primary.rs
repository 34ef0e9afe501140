//! Follow-the-primary records (`policy = "primary"`), the pure part.
//!
//! Every endpoint of the record's pools is probed by a check that passes only on the
//! primary (a `postgres` check with `role = "primary"`, or Patroni's `GET /primary`).
//! An endpoint *claims* primary when it is usable (up by quorum, not drained) and its
//! state was observed, restored or forced — an endpoint merely assumed up (no probe
//! has decided it yet, as at start-up) claims nothing:
//!
//! | claims | answer |
//! |---|---|
//! | exactly one | that endpoint; it becomes the *last agreed primary* |
//! | two or more (split brain, failed fencing) | `on_conflict = "hold"`: the last agreed primary (NODATA if none is known); `"none"`: NODATA — never more than one |
//! | none (mid-promotion, all down) | the all-down mode; fail-open answers the last agreed primary (NODATA if none is known) |
//!
//! The last agreed primary is state, kept by the caller ([`PrimaryMemory`], in the
//! health plane, by endpoint label so a reload keeps it) and passed into every
//! decision through the health snapshot.

use std::collections::{BTreeMap, BTreeSet};

use super::{Candidate, Decision, Outcome, PoolVerdict};
use crate::config::{AllDown, Config, DynamicRecord, OnConflict, Selection};
use crate::health::{HealthSnapshot, HealthSource};
use crate::model::{EndpointIndex, PoolIndex, RecordIndex, Ttl};

/// Who claims primary among a record's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Election {
    /// Exactly one endpoint claims primary.
    Agreed(EndpointIndex),
    /// Two or more do (in pool and endpoint order).
    Conflict(Vec<EndpointIndex>),
    /// None does.
    NoPrimary,
}

/// Counts the claims among the endpoints of `pools` (pure).
pub(crate) fn elect(config: &Config, pools: &[PoolIndex], health: &HealthSnapshot) -> Election {
    let mut claimants: Vec<EndpointIndex> = Vec::new();
    for &pool in pools {
        for &e in &config.pool(pool).endpoints {
            let drained = config.endpoint(e).weight.is_drained() || health.drained(e);
            let known = health
                .get(e)
                .is_some_and(|h| h.source != HealthSource::Assumed);
            if known && health.state(e).is_up() && !drained && !claimants.contains(&e) {
                claimants.push(e);
            }
        }
    }
    match claimants.as_slice() {
        [] => Election::NoPrimary,
        [one] => Election::Agreed(*one),
        _ => Election::Conflict(claimants),
    }
}

/// A `primary` record's decision: the one claimant, the held last agreed primary
/// during a conflict, or the all-down mode.
pub(super) fn decide(
    config: &Config,
    record: &DynamicRecord,
    pools: &[PoolIndex],
    last: Option<EndpointIndex>,
    health: &HealthSnapshot,
) -> Decision {
    let drained = |e: EndpointIndex| config.endpoint(e).weight.is_drained() || health.drained(e);
    let verdicts: Vec<PoolVerdict> = pools
        .iter()
        .map(|&pool| {
            let p = config.pool(pool);
            let count = p
                .endpoints
                .iter()
                .filter(|&&e| health.state(e).is_up() && !drained(e))
                .filter(|&&e| {
                    health
                        .get(e)
                        .is_some_and(|h| h.source != HealthSource::Assumed)
                })
                .count() as u32;
            PoolVerdict {
                pool,
                usable: count,
                needed: p.min_healthy,
                up: count >= p.min_healthy,
                gate: None,
            }
        })
        .collect();
    let doubt = pools
        .iter()
        .flat_map(|&p| config.pool(p).endpoints.iter())
        .filter_map(|&e| health.doubt(e))
        .min();
    let ttl = match doubt {
        Some(seconds) => Ttl(seconds.clamp(record.min_ttl.0, record.ttl.0.max(record.min_ttl.0))),
        None => record.ttl,
    };
    let one = |e: EndpointIndex| {
        vec![Candidate {
            endpoint: e,
            weight: 1,
            share: 1000,
        }]
    };
    // The last agreed primary is answered only if it is still one of the record's
    // endpoints and not forced down by an operator.
    let last = last.filter(|&e| pools.contains(&config.endpoint(e).pool) && !health.forced_down(e));
    let (outcome, candidates, ttl) = match elect(config, pools, health) {
        Election::Agreed(e) => (Outcome::Primary { endpoint: e }, one(e), ttl),
        Election::Conflict(_) => {
            let held = match record.on_conflict {
                OnConflict::Hold => last,
                OnConflict::None => None,
            };
            (
                Outcome::Conflict { held },
                held.map(one).unwrap_or_default(),
                record.all_down_ttl,
            )
        }
        Election::NoPrimary => match (record.all_down, last) {
            (AllDown::FailOpen, Some(e)) => (Outcome::FailOpen, one(e), record.all_down_ttl),
            (AllDown::Fallback(pool), _) => {
                let candidates = config
                    .pool(pool)
                    .endpoints
                    .iter()
                    .filter(|&&e| !health.forced_down(e))
                    .take(1)
                    .map(|&e| one(e)[0])
                    .collect::<Vec<_>>();
                if candidates.is_empty() {
                    (Outcome::NoData, Vec::new(), record.all_down_ttl)
                } else {
                    (Outcome::Fallback { pool }, candidates, record.all_down_ttl)
                }
            }
            _ => (Outcome::NoData, Vec::new(), record.all_down_ttl),
        },
    };
    Decision {
        outcome,
        pools: verdicts,
        candidates,
        max_answers: 1,
        weighted: false,
        ttl,
        handover: None,
        shares: None,
    }
}

/// A change [`PrimaryMemory::observe`] saw, for events and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrimaryChange {
    /// The checks agree on a (new) primary.
    Agreed {
        /// The record.
        record: RecordIndex,
        /// The previous agreed primary (label), if any.
        from: Option<String>,
        /// The new one (label).
        to: String,
    },
    /// Two or more endpoints began to claim primary.
    ConflictBegan {
        /// The record.
        record: RecordIndex,
        /// Their labels.
        claimants: Vec<String>,
        /// The last agreed primary, still answered with `on_conflict = "hold"`.
        held: Option<String>,
    },
    /// The conflict is over (one or no claim left).
    ConflictEnded {
        /// The record.
        record: RecordIndex,
    },
}

/// The last agreed primary of every `primary` record, and which records are in
/// conflict; by record key (`name TYPE`) and endpoint label, so a reload re-maps them.
/// A pure value: the plane owns it and feeds it [`HealthSnapshot`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PrimaryMemory {
    agreed: BTreeMap<String, String>,
    conflicts: BTreeSet<String>,
}

/// The key of a record in [`PrimaryMemory`].
pub(crate) fn record_key(config: &Config, record: RecordIndex) -> String {
    let r = &config.records[record.0 as usize];
    format!("{} {}", r.name, r.record_type)
}

impl PrimaryMemory {
    /// Starts from saved agreed primaries (record key → endpoint label).
    pub(crate) fn restored(agreed: BTreeMap<String, String>) -> Self {
        Self {
            agreed,
            conflicts: BTreeSet::new(),
        }
    }

    /// Takes a new health decision: a single claim becomes the agreed primary; a
    /// conflict keeps the old one. Returns what changed.
    pub(crate) fn observe(
        &mut self,
        config: &Config,
        health: &HealthSnapshot,
    ) -> Vec<PrimaryChange> {
        let mut changes = Vec::new();
        for (r, record) in config.records.iter().enumerate() {
            if record.selection != Selection::Primary {
                continue;
            }
            let index = RecordIndex(r as u32);
            let key = record_key(config, index);
            let pools = super::pools_for(record, None);
            match elect(config, pools, health) {
                Election::Agreed(e) => {
                    if self.conflicts.remove(&key) {
                        changes.push(PrimaryChange::ConflictEnded { record: index });
                    }
                    let label = config.endpoint_label(e);
                    if self.agreed.get(&key) != Some(&label) {
                        let from = self.agreed.insert(key, label.clone());
                        changes.push(PrimaryChange::Agreed {
                            record: index,
                            from,
                            to: label,
                        });
                    }
                }
                Election::Conflict(claimants) => {
                    if self.conflicts.insert(key.clone()) {
                        changes.push(PrimaryChange::ConflictBegan {
                            record: index,
                            claimants: claimants
                                .iter()
                                .map(|&e| config.endpoint_label(e))
                                .collect(),
                            held: self.agreed.get(&key).cloned(),
                        });
                    }
                }
                Election::NoPrimary => {
                    if self.conflicts.remove(&key) {
                        changes.push(PrimaryChange::ConflictEnded { record: index });
                    }
                }
            }
        }
        changes
    }

    /// Per record of `config`, its last agreed primary (None: not known, not a
    /// primary record, or no longer one of its endpoints).
    pub(crate) fn indices(&self, config: &Config) -> Vec<Option<EndpointIndex>> {
        (0..config.records.len())
            .map(|r| {
                let record = &config.records[r];
                if record.selection != Selection::Primary {
                    return None;
                }
                let label = self
                    .agreed
                    .get(&record_key(config, RecordIndex(r as u32)))?;
                let e = config.endpoint_by_label(label)?;
                super::pools_for(record, None)
                    .contains(&config.endpoint(e).pool)
                    .then_some(e)
            })
            .collect()
    }

    /// Whether a record is in conflict now.
    #[cfg(test)]
    pub(crate) fn in_conflict(&self, config: &Config, record: RecordIndex) -> bool {
        self.conflicts.contains(&record_key(config, record))
    }

    /// Every agreed primary (record key → endpoint label), for the state file.
    pub(crate) fn agreed(&self) -> &BTreeMap<String, String> {
        &self.agreed
    }
}

#[cfg(test)]
mod tests;
