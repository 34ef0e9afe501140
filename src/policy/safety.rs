//! Safety checks of operator overrides (pure: the health before and after a change is
//! passed in). An override is refused — unless made with `allow_empty` — when, for
//! some record and some clients (a geo record's region, or everyone):
//!
//! - it takes the last pool at `min_healthy` out: the record would answer degraded,
//!   fail-open, its fallback or nothing where it answered from a healthy pool;
//! - it empties the answer (NODATA) where there was one;
//! - it changes nothing because an all-down or degraded answer still holds what it
//!   takes out (a drain of an endpoint that fail-open keeps answering);
//!
//! or when it breaks a `[[safety]]` rule (Route 53 ARC's assertion rule: at least N of
//! these pools stay in service). A pool is *in service* while at least `min_healthy`
//! of its endpoints are neither drained nor forced down, by the configuration or an
//! operator — whatever the probes say, so a rule never blocks an operator because of
//! an outage, only because of what operators did; a change that leaves a rule no
//! worse than it was is allowed.

use crate::config::{Config, DynamicRecord, PoolChoice};
use crate::health::HealthSnapshot;
use crate::health::overrides::Effects;
use crate::model::{EndpointIndex, HealthState, PoolIndex, RecordIndex};
use crate::policy::{Decision, Outcome, decide_record, describe_outcome, record_state};

/// The answers' health without and with a change, and the overrides' effects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Proposed<'a> {
    /// The health answers see now.
    pub before: &'a HealthSnapshot,
    /// The health they would see with the change.
    pub after: &'a HealthSnapshot,
    /// The overrides' effects now.
    pub effects_before: &'a Effects,
    /// The overrides' effects with the change.
    pub effects_after: &'a Effects,
}

/// Why a change is unsafe.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SafetyError {
    /// A record would lose its last pool at `min_healthy`.
    #[error(
        "{record} ({clients}) would have no pool at min_healthy ({pools}) and would answer {answer}"
    )]
    NoPoolUp {
        /// `name TYPE`.
        record: String,
        /// Which clients (`every client`, `clients in eu`).
        clients: String,
        /// Each pool's usable endpoints against its `min_healthy`.
        pools: String,
        /// What it would answer instead.
        answer: String,
    },
    /// A record would answer nothing where it answered something.
    #[error("{record} ({clients}) would answer nothing (NODATA)")]
    Empty {
        /// `name TYPE`.
        record: String,
        /// Which clients.
        clients: String,
    },
    /// The change takes out endpoints an all-down or degraded answer keeps answering.
    #[error(
        "it changes no answer: {record} ({clients}) is {outcome} and answers {endpoints} all the same (force an endpoint down to keep it out even then)"
    )]
    StillAnswered {
        /// `name TYPE`.
        record: String,
        /// Which clients.
        clients: String,
        /// The record's outcome (`fail-open`, `degraded`, …).
        outcome: String,
        /// The endpoints taken out and still answered.
        endpoints: String,
    },
    /// A `[[safety]]` rule would be broken.
    #[error(
        "safety rule {rule}: {in_service} of its pools ({pools}) would stay in service, fewer than min_in_service = {min}"
    )]
    Rule {
        /// The rule's name.
        rule: String,
        /// Its pools.
        pools: String,
        /// How many would stay in service.
        in_service: u32,
        /// How many must.
        min: u32,
    },
}

/// Checks a proposed change of the overrides (see the module docs).
pub(crate) fn check(config: &Config, proposed: Proposed<'_>) -> Result<(), SafetyError> {
    let taken_out = taken_out(config, proposed.effects_before, proposed.effects_after);
    for (r, record) in config.records.iter().enumerate() {
        let index = RecordIndex(r as u32);
        for (clients, pools) in pool_lists(config, record) {
            let before = decide_record(
                config,
                record,
                pools,
                record_state(proposed.before, index),
                proposed.before,
            );
            let after = decide_record(
                config,
                record,
                pools,
                record_state(proposed.after, index),
                proposed.after,
            );
            let what = || format!("{} {}", record.name, record.record_type);
            let pin_after = proposed.after.pin(index);
            if serving(&before) && !serving(&after) {
                return Err(SafetyError::NoPoolUp {
                    record: what(),
                    clients,
                    pools: pool_counts(config, &after),
                    answer: answer(config, pools, pin_after, &before, &after),
                });
            }
            if after.candidates.is_empty() && !before.candidates.is_empty() {
                return Err(SafetyError::Empty {
                    record: what(),
                    clients,
                });
            }
            let still: Vec<String> = taken_out
                .iter()
                .copied()
                .filter(|&e| holds(&before, e) && holds(&after, e))
                .map(|e| config.endpoint_label(e))
                .collect();
            if !still.is_empty() {
                return Err(SafetyError::StillAnswered {
                    record: what(),
                    clients,
                    outcome: describe_outcome(config, pools, pin_after, &after).to_string(),
                    endpoints: still.join(", "),
                });
            }
        }
    }
    for rule in &config.safety {
        let before = in_service(config, &rule.pools, proposed.effects_before);
        let after = in_service(config, &rule.pools, proposed.effects_after);
        if after < rule.min_in_service && after < before {
            return Err(SafetyError::Rule {
                rule: rule.name.clone(),
                pools: rule
                    .pools
                    .iter()
                    .map(|&p| config.pool(p).name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                in_service: after,
                min: rule.min_in_service,
            });
        }
    }
    Ok(())
}

/// How many of `pools` are in service under `effects`: at least `min_healthy` of
/// their endpoints neither drained nor forced down (configuration or operator).
pub(crate) fn in_service(config: &Config, pools: &[PoolIndex], effects: &Effects) -> u32 {
    pools
        .iter()
        .filter(|&&p| {
            let pool = config.pool(p);
            let serving = pool
                .endpoints
                .iter()
                .filter(|&&e| {
                    let endpoint = config.endpoint(e);
                    let i = e.0 as usize;
                    let drained = endpoint.weight.is_drained()
                        || effects.drained.get(i).copied().unwrap_or(false);
                    let down = effects.forced.get(i).copied().flatten().or(endpoint.forced)
                        == Some(HealthState::Down);
                    !drained && !down
                })
                .count() as u32;
            serving >= pool.min_healthy
        })
        .count() as u32
}

/// Endpoints the change drains or forces down.
fn taken_out(config: &Config, before: &Effects, after: &Effects) -> Vec<EndpointIndex> {
    (0..config.endpoints.len())
        .filter(|&i| {
            let drained = after.drained.get(i).copied().unwrap_or(false)
                && !before.drained.get(i).copied().unwrap_or(false);
            let down = after.forced.get(i).copied().flatten() == Some(HealthState::Down)
                && before.forced.get(i).copied().flatten() != Some(HealthState::Down);
            drained || down
        })
        .map(|i| EndpointIndex(i as u32))
        .collect()
}

/// Each pool list of a record with the clients it serves.
fn pool_lists<'c>(config: &Config, record: &'c DynamicRecord) -> Vec<(String, &'c [PoolIndex])> {
    match &record.pools {
        PoolChoice::Fixed(pools) => vec![("every client".to_owned(), pools.as_slice())],
        PoolChoice::Geo { by_region, default } => by_region
            .iter()
            .enumerate()
            .filter_map(|(r, list)| {
                list.as_deref()
                    .map(|l| (format!("clients in {}", config.regions[r].name), l))
            })
            .chain(std::iter::once((
                "other clients".to_owned(),
                default.as_slice(),
            )))
            .collect(),
    }
}

/// Whether a decision answers from a healthy pool (or an agreed primary).
fn serving(decision: &Decision) -> bool {
    matches!(
        decision.outcome,
        Outcome::Healthy { .. } | Outcome::Primary { .. }
    )
}

/// Whether `endpoint` is among a decision's candidates.
fn holds(decision: &Decision, endpoint: EndpointIndex) -> bool {
    decision.candidates.iter().any(|c| c.endpoint == endpoint)
}

/// "web-eu 0 of 1 usable, web-us 0 of 2 usable".
fn pool_counts(config: &Config, decision: &Decision) -> String {
    decision
        .pools
        .iter()
        .map(|v| {
            format!(
                "{} {} of {} usable{}",
                config.pool(v.pool).name,
                v.usable,
                v.needed,
                if v.held() { ", held by its gate" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a decision answers, in words ("fail-open: web-eu/eu-1, web-eu/eu-2
/// (unchanged)").
fn answer(
    config: &Config,
    pools: &[PoolIndex],
    pin: Option<PoolIndex>,
    before: &Decision,
    after: &Decision,
) -> String {
    let words = describe_outcome(config, pools, pin, after);
    let outcome = match words.pool {
        Some(pool) => format!("{} {pool}", words.outcome),
        None => words.outcome.to_owned(),
    };
    if after.candidates.is_empty() {
        return "nothing (NODATA)".to_owned();
    }
    let mut endpoints: Vec<String> = after
        .candidates
        .iter()
        .map(|c| config.endpoint_label(c.endpoint))
        .collect();
    endpoints.sort();
    let mut was: Vec<String> = before
        .candidates
        .iter()
        .map(|c| config.endpoint_label(c.endpoint))
        .collect();
    was.sort();
    let unchanged = if was == endpoints { " (unchanged)" } else { "" };
    format!("{outcome}: {}{unchanged}", endpoints.join(", "))
}

#[cfg(test)]
mod tests;
