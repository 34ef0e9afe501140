//! Whether an override may be made: its target is known, applies to the records it
//! touches, and changes something.

use crate::config::{AllDown, Config, DynamicRecord, PoolChoice, Selection};
use crate::model::{EndpointIndex, HealthState, PoolIndex};

use super::*;

/// Whether `action` applies to `target` under `config`: the target exists, the
/// action is of a kind it takes, and it changes something — it `replaces` overrides
/// in force (a different one on the same target: a target holds one override, so
/// `force up` replaces a `force down`; or, for an untyped record, typed ones it
/// ends), or would change an answer by itself (see [`check_effect`]). An operator's
/// change that fails here is refused (HTTP 400, with the reason). Pure: the
/// configuration and what is in force only.
pub(super) fn check(
    config: &Config,
    target: &Target,
    action: &Action,
    replaces: bool,
) -> Result<(), OverrideError> {
    check_target(config, target, action)?;
    if replaces {
        return Ok(());
    }
    check_effect(config, target, action)
}

/// Whether the target exists and takes this kind of action.
pub(super) fn check_target(
    config: &Config,
    target: &Target,
    action: &Action,
) -> Result<(), OverrideError> {
    let mismatch = |kind, allowed| OverrideError::Mismatch {
        action: action.clone(),
        kind,
        allowed,
    };
    let unknown = || OverrideError::UnknownTarget(target.clone());
    match target {
        // Expanded before any check; an entry never holds one.
        Target::Region(_) => return Err(unknown()),
        Target::Endpoint(label) => {
            endpoint_by_label(config, label).ok_or_else(unknown)?;
            if matches!(action, Action::Failover(_)) {
                return Err(mismatch("endpoint", "drain, force_up or force_down"));
            }
            if matches!(action, Action::Dial(_)) {
                return Err(mismatch(
                    "endpoint",
                    "drain, force_up or force_down; dial its pool instead",
                ));
            }
        }
        Target::Pool(pool) => {
            config.pool_by_name(pool).ok_or_else(unknown)?;
            if !matches!(action, Action::Drain | Action::Dial(_)) {
                return Err(mismatch(
                    "pool",
                    "drain or dial; force its endpoints one by one",
                ));
            }
        }
        Target::Record { .. } => {
            let records = records_of(config, target);
            if records.is_empty() {
                return Err(unknown());
            }
            let Action::Failover(pool) = action else {
                return Err(mismatch(
                    "record",
                    "failover; dial one of its pools instead",
                ));
            };
            let listed = |r: usize| {
                config
                    .pool_by_name(pool)
                    .is_some_and(|p| record_pools(config, r).contains(&p))
            };
            if !records.iter().any(|&r| listed(r)) {
                let mut pools: Vec<&str> = records
                    .iter()
                    .flat_map(|&r| record_pools(config, r))
                    .map(|p| config.pool(p).name.as_str())
                    .collect();
                pools.sort_unstable();
                pools.dedup();
                return Err(OverrideError::NotAPoolOfTheRecord {
                    target: target.clone(),
                    pool: pool.clone(),
                    pools: pools.join(", "),
                });
            }
        }
    }
    Ok(())
}

/// How a record uses a pool.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Use {
    /// Answers from it (one of its pool lists).
    Answers,
    /// Answers from it only when no pool is up (`all_down = { fallback = … }`).
    Fallback,
    /// Lets traffic move to a pool only while this one is up (a gate).
    Gate,
}

/// Every (record, use) of `pool` in `config`.
pub(super) fn uses_of(config: &Config, pool: PoolIndex) -> Vec<(&DynamicRecord, Use)> {
    let mut uses = Vec::new();
    for (r, record) in config.records.iter().enumerate() {
        if record_pools(config, r).contains(&pool) {
            uses.push((record, Use::Answers));
        }
        if record.all_down == AllDown::Fallback(pool) {
            uses.push((record, Use::Fallback));
        }
        if record.gates.iter().any(|g| g.gate == pool) {
            uses.push((record, Use::Gate));
        }
    }
    uses
}

/// Whether a valid override would change any answer under `config` (pure: the
/// configuration alone, so the same request gets the same verdict on every server).
/// What changes nothing (README, "Operations"):
///
/// | action | changes nothing when |
/// |---|---|
/// | `failover` | the record is `policy = "primary"` (it follows its checks); a `failover` record's pool is already first in every pool list holding it and has no gate to override; a `weighted`/`multivalue` record has it as its only pool |
/// | `drain` | every endpoint is drained by the configuration (`weight = 0`), or no record answers from its pool (nor falls back to it, nor is gated by it; a `primary` record's fallback ignores drains) |
/// | `force_up` | the configuration forces it up already, or its pool is only a fallback (answered whatever its health) or used by no record |
/// | `force_down` | the configuration forces it down already, or no record uses its pool |
/// | `dial` | no record but `primary` ones answers from the pool, or it is 100 % with no other override on the pool to replace (a release ends a dial) |
pub(super) fn check_effect(
    config: &Config,
    target: &Target,
    action: &Action,
) -> Result<(), OverrideError> {
    let no_effect = |reason: String| OverrideError::NoEffect {
        action: action.clone(),
        target: target.clone(),
        reason,
    };
    match (target, action) {
        (Target::Record { .. }, Action::Failover(pool)) => {
            let Some(pin) = config.pool_by_name(pool) else {
                return Ok(());
            };
            let mut reasons: Vec<String> = Vec::new();
            for r in records_of(config, target) {
                match failover_effect(config, &config.records[r], pin) {
                    Ok(()) => return Ok(()),
                    Err(reason) => {
                        if !reasons.contains(&reason) {
                            reasons.push(reason);
                        }
                    }
                }
            }
            Err(no_effect(reasons.join("; ")))
        }
        (Target::Endpoint(label), _) => {
            let Some(e) = endpoint_by_label(config, label) else {
                return Ok(());
            };
            endpoint_effect(config, e, action).map_err(no_effect)
        }
        (Target::Pool(name), Action::Dial(percent)) => {
            let Some(pool) = config.pool_by_name(name) else {
                return Ok(());
            };
            if *percent == Percent::FULL {
                return Err(no_effect(format!(
                    "a pool without a dial takes 100 % of what it would get already; \
                     to end a dial, release it: failoverd ctl release {name}"
                )));
            }
            let dialled = uses_of(config, pool).iter().any(|&(record, use_)| {
                use_ == Use::Answers && record.selection != Selection::Primary
            });
            if dialled {
                Ok(())
            } else {
                Err(no_effect(format!(
                    "no record answers from pool {name} by failover, weighted or multivalue \
                     (a dial shapes those; primary records follow their checks, and a \
                     fallback is answered whatever its share)"
                )))
            }
        }
        (Target::Pool(name), Action::Drain) => {
            let Some(pool) = config.pool_by_name(name) else {
                return Ok(());
            };
            let endpoints = &config.pool(pool).endpoints;
            let mut first = None;
            for &e in endpoints {
                match endpoint_effect(config, e, action) {
                    Ok(()) => return Ok(()),
                    Err(reason) => {
                        first.get_or_insert(reason);
                    }
                }
            }
            Err(no_effect(
                first.unwrap_or_else(|| "it has no endpoints".into()),
            ))
        }
        _ => Ok(()),
    }
}

/// Whether a manual failover of `record` to `pin` (one of its pools or not) changes
/// its answers; else why not.
pub(super) fn failover_effect(
    config: &Config,
    record: &DynamicRecord,
    pin: PoolIndex,
) -> Result<(), String> {
    let what = format!("{} {}", record.name, record.record_type);
    let pool = &config.pool(pin).name;
    let lists: Vec<&[PoolIndex]> = record
        .pools
        .all_lists()
        .into_iter()
        .filter(|list| list.contains(&pin))
        .collect();
    if lists.is_empty() {
        return Err(format!("{what} does not answer from pool {pool}"));
    }
    let others = || {
        let mut names: Vec<&str> = lists
            .iter()
            .flat_map(|l| l.iter())
            .filter(|&&p| p != pin)
            .map(|&p| config.pool(p).name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    };
    match record.selection {
        Selection::Primary => Err(format!(
            "{what} is a primary record: it answers the one endpoint whose check claims \
             primary, so a manual failover does not apply; promote the database instead \
             (failoverd drill --mode promote measures it), or drain or force its endpoints"
        )),
        Selection::Failover => {
            let moves = lists
                .iter()
                .any(|list| list[0] != pin || record.gate_of(pin).is_some());
            if moves {
                Ok(())
            } else {
                Err(format!(
                    "pool {pool} is already the first pool of {what}, and no gate holds \
                     it; fail over to another of its pools ({}), or release the record to \
                     end a failover in force",
                    others()
                ))
            }
        }
        Selection::Weighted | Selection::Multivalue => {
            if lists.iter().any(|list| list.len() > 1) {
                Ok(())
            } else {
                Err(format!(
                    "pool {pool} is the only pool {what} answers from, so answering from it \
                     alone is what it does already"
                ))
            }
        }
    }
}

/// Whether `action` (drain, force up or down) on endpoint `e` changes any answer;
/// else why not.
pub(super) fn endpoint_effect(
    config: &Config,
    e: EndpointIndex,
    action: &Action,
) -> Result<(), String> {
    let endpoint = config.endpoint(e);
    let label = config.endpoint_label(e);
    let pool = &config.pool(endpoint.pool).name;
    match action {
        Action::Drain if endpoint.weight.is_drained() => {
            return Err(format!(
                "{label} is drained by the configuration already (weight = 0)"
            ));
        }
        Action::ForceUp if endpoint.forced == Some(HealthState::Up) => {
            return Err(format!(
                "{label} is forced up by the configuration already (force = \"up\")"
            ));
        }
        Action::ForceDown if endpoint.forced == Some(HealthState::Down) => {
            return Err(format!(
                "{label} is forced down by the configuration already (force = \"down\")"
            ));
        }
        _ => {}
    }
    let uses = uses_of(config, endpoint.pool);
    if uses.is_empty() {
        return Err(format!(
            "no record answers from pool {pool}, falls back to it or is gated by it"
        ));
    }
    let matters = uses.iter().any(|&(record, use_)| match (action, use_) {
        (_, Use::Answers | Use::Gate) => true,
        // A fallback pool is answered whatever its health, but never a forced-down
        // endpoint, and undrained endpoints first (a primary record takes the first
        // endpoint not forced down, drained or not).
        (Action::ForceDown, Use::Fallback) => true,
        (Action::Drain, Use::Fallback) => record.selection != Selection::Primary,
        _ => false,
    });
    if matters {
        Ok(())
    } else {
        Err(format!(
            "pool {pool} is only a fallback (all_down), answered whatever its endpoints' \
             health{}",
            if *action == Action::Drain {
                " by primary records, drained or not"
            } else {
                ""
            }
        ))
    }
}

/// Whether `target` names something `config` has (for a release, which has no action
/// to check).
pub(super) fn known(config: &Config, target: &Target) -> Result<(), OverrideError> {
    let found = match target {
        Target::Endpoint(label) => endpoint_by_label(config, label).is_some(),
        Target::Pool(pool) => config.pool_by_name(pool).is_some(),
        Target::Record { .. } => !records_of(config, target).is_empty(),
        Target::Region(_) => false,
    };
    if found {
        Ok(())
    } else {
        Err(OverrideError::UnknownTarget(target.clone()))
    }
}

/// An endpoint by its `pool/name` label.
pub(crate) fn endpoint_by_label(config: &Config, label: &str) -> Option<EndpointIndex> {
    let (pool, name) = label.split_once('/')?;
    let pool = config.pool(config.pool_by_name(pool)?);
    pool.endpoints
        .iter()
        .copied()
        .find(|&e| config.endpoint(e).name == name)
}

/// Indices of the records a record target names.
pub(super) fn records_of(config: &Config, target: &Target) -> Vec<usize> {
    let Target::Record { name, record_type } = target else {
        return Vec::new();
    };
    config
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name == *name && record_type.is_none_or(|t| t == r.record_type))
        .map(|(i, _)| i)
        .collect()
}

/// Every pool a record may answer from (any region).
pub(super) fn record_pools(config: &Config, record: usize) -> Vec<PoolIndex> {
    let mut pools: Vec<PoolIndex> = match &config.records[record].pools {
        PoolChoice::Fixed(pools) => pools.clone(),
        PoolChoice::Geo { by_region, default } => by_region
            .iter()
            .flatten()
            .flatten()
            .chain(default)
            .copied()
            .collect(),
    };
    pools.sort_unstable();
    pools.dedup();
    pools
}
