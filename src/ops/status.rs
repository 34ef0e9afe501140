//! What `/status` shows, built from the plane's state by one pure function:
//! [`build`] takes the config, the published snapshot, the board and its last
//! tally, the overrides, and the time; it reads no clock and changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{
    AnswerStatus, DampingStatus, EndpointStatus, HistoryStatus, IsolationStatus, PoolStatus,
    ProbeStatus, RecordStatus, ReloadStatus, StateFileStatus, Status, VantageStatus,
};
use crate::config::{Config, IsolationMode, Selection};
use crate::dns::Snapshot;
use crate::health::board::Board;
use crate::health::overrides::{Effects, OverrideSet};
use crate::health::quorum::Tally;
use crate::health::{EndpointHealth, HealthSource};
use crate::model::{EndpointIndex, HealthState, RecordIndex};

/// Everything status shows, as of one moment.
#[derive(Clone, Copy)]
pub(crate) struct StatusInputs<'a> {
    /// The running configuration.
    pub config: &'a Config,
    /// The answers published now.
    pub snapshot: &'a Snapshot,
    /// The health board (votes, local probes, damping, vantage points, history).
    pub board: &'a Board,
    /// The board's last tally.
    pub tally: &'a Tally,
    /// What the operator overrides in force do.
    pub effects: &'a Effects,
    /// Every override and release known.
    pub overrides: &'a OverrideSet,
    /// This process's probes abstained within the last staleness.
    pub impaired: bool,
    /// A server (isolation applies), not a probe agent.
    pub server: bool,
    /// The last reload's outcome.
    pub last_reload: Option<&'a ReloadStatus>,
    /// The state file's last save.
    pub state_file: &'a StateFileStatus,
    /// Since when the endpoints' history counts (Unix ms).
    pub counted_since_ms: u64,
    /// The plane's clock (time since it started).
    pub now: Duration,
    /// The wall clock, Unix milliseconds.
    pub now_ms: u64,
}

/// Status as of `inputs` (its `attention` list left empty for the caller).
pub(crate) fn build(inputs: &StatusInputs<'_>) -> Status {
    let StatusInputs {
        config,
        snapshot,
        board,
        tally,
        now,
        now_ms,
        ..
    } = *inputs;
    let endpoints = (0..config.endpoints.len())
        .map(|i| endpoint(inputs, EndpointIndex(i as u32)))
        .collect();
    let mut pools: BTreeMap<String, PoolStatus> = BTreeMap::new();
    let mut records = Vec::new();
    for (r, answer) in snapshot.dynamic.iter().enumerate() {
        let record = &config.records[r];
        let pin = snapshot
            .health
            .pin(RecordIndex(r as u32))
            .filter(|_| record.selection != Selection::Primary);
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
                    dial: snapshot.health.dial(verdict.pool).map(|d| d.get()),
                });
            }
            let set_pools = answer.pools_of_set(s);
            let operator =
                crate::policy::operator_pin(config, &snapshot.health, set_pools, pin, decision);
            let words = crate::policy::describe_outcome(config, set_pools, operator, decision);
            answers.push(AnswerStatus {
                regions: answer.regions_of_set(s, config),
                pools: decision
                    .pools
                    .iter()
                    .map(|v| config.pool(v.pool).name.clone())
                    .collect(),
                outcome: words.outcome.to_owned(),
                cause: words.cause,
                pinned: pin.map(|p| config.pool(p).name.clone()),
                pool: words.pool,
                held_by_gate: decision
                    .pools
                    .iter()
                    .filter(|v| v.held())
                    .map(|v| config.pool(v.pool).name.clone())
                    .collect(),
                ttl: set.ttl,
                candidates: decision
                    .candidates
                    .iter()
                    .map(|c| config.endpoint_label(c.endpoint))
                    .collect(),
                shares: decision.shares.as_ref().map(|s| s.summary(config)),
                overloaded: decision.shares.as_ref().is_some_and(|s| s.overloaded),
            });
        }
        records.push(RecordStatus {
            name: record.name.clone(),
            record_type: record.record_type.to_string(),
            answers,
        });
    }
    let mut vantages: Vec<VantageStatus> = board
        .remote_vantages(now, now_ms)
        .into_iter()
        .map(|(name, age, skew)| VantageStatus {
            fresh: tally.fresh.contains(&name),
            partitioned: tally.partitioned.contains(&name),
            last_report_age_ms: Some(age.as_millis() as u64),
            clock_offset_ms: skew,
            impaired: false,
            name,
        })
        .collect();
    let local = board.local_name().to_owned();
    // This process: listed while its verdicts are fresh, and while impaired (its
    // verdicts may be going stale because its probes abstain).
    if tally.fresh.contains(&local) || inputs.impaired {
        vantages.push(VantageStatus {
            fresh: tally.fresh.contains(&local),
            partitioned: tally.partitioned.contains(&local),
            last_report_age_ms: Some(0),
            clock_offset_ms: 0,
            impaired: inputs.impaired,
            name: local.clone(),
        });
    }
    let isolation = inputs.server.then(|| {
        let isolation = board.isolation();
        IsolationStatus {
            isolated: isolation.isolated,
            mode: match config.health.isolation {
                IsolationMode::Hold => "hold",
                IsolationMode::Local => "local",
            }
            .to_owned(),
            needed: isolation.needed,
            fresh: isolation.fresh,
            missing: isolation.missing,
        }
    });
    Status {
        generation: snapshot.generation,
        vantage: Some(local),
        ready: board.ready(),
        endpoints,
        pools: pools.into_values().collect(),
        records,
        vantages,
        isolation,
        last_reload: inputs.last_reload.cloned(),
        overrides: inputs.overrides.active(now_ms).cloned().collect(),
        state_file: inputs.state_file.clone(),
        attention: Vec::new(),
        counted_since_ms: inputs.counted_since_ms,
        override_warn_after_ms: config.health.override_warn_after.as_millis() as u64,
        // Filled in by the health plane, which holds them.
        rtts: Vec::new(),
    }
}

/// One endpoint's status: its published health, the votes counted (and those not),
/// this process's probe, flap damping and history.
fn endpoint(inputs: &StatusInputs<'_>, index: EndpointIndex) -> EndpointStatus {
    let StatusInputs {
        config,
        snapshot,
        board,
        tally,
        effects,
        now,
        now_ms,
        ..
    } = *inputs;
    let i = index.0 as usize;
    let health = snapshot
        .health
        .get(index)
        .copied()
        .unwrap_or(EndpointHealth {
            state: HealthState::Up,
            source: HealthSource::Assumed,
        });
    let mut votes: BTreeMap<String, String> = tally
        .describe_votes(i)
        .into_iter()
        .map(|(k, s)| (k, s.to_owned()))
        .collect();
    for (name, state, reason) in board.remote_verdicts(index) {
        let vote = votes
            .entry(name.to_owned())
            .or_insert_with(|| format!("{state} (not counted)"));
        if !reason.is_empty() {
            vote.push_str(&format!(": {reason}"));
        }
    }
    EndpointStatus {
        drained: effects.drained.get(i).copied().unwrap_or(false),
        degraded: snapshot
            .health
            .degraded(index)
            .map(|permille| f64::from(permille) / 1000.0),
        forced_by_operator: effects.forced.get(i).is_some_and(Option::is_some),
        history: board.history(index).map(|h| HistoryStatus {
            changed_at_ms: h.changed_at_ms,
            changes: h.changes,
            downs: h.downs,
            down_ms: h.down_ms,
        }),
        endpoint: config.endpoint_label(index),
        target: config.endpoint(index).target.to_string(),
        state: health.state,
        source: health.source,
        votes,
        local: board.local_probe(index, now).map(|probe| {
            let degraded = match probe.degraded {
                (true, reason) => Some(reason.unwrap_or_else(|| "recovering".to_owned())),
                (false, _) => None,
            };
            let (ok, reason, latency_ms) = probe.last.map_or_else(
                || (false, "no probe has voted yet".to_owned(), 0.0),
                |o| (o.ok, o.reason.clone(), millis(o.latency)),
            );
            ProbeStatus {
                verdict: probe.verdict,
                ok,
                reason,
                latency_ms,
                abstained: probe.abstained.map(|(o, _)| o.reason.clone()),
                abstained_age_ms: probe.abstained.map(|(_, age)| age.as_millis() as u64),
                abstaining: probe.abstaining,
                degraded,
            }
        }),
        damping: board.damping(index, now).map(|d| DampingStatus {
            penalty: d.penalty.round(),
            suppressed: d.suppressed_until.is_some(),
            suppressed_until_ms: d
                .suppressed_until
                .map(|until| now_ms + until.saturating_sub(now).as_millis() as u64),
        }),
    }
}

/// Milliseconds, rounded to 10 µs for readable logs and status.
pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

#[cfg(test)]
mod tests;
