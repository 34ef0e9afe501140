//! The policy engine: which endpoints a dynamic record answers, given health.
//!
//! Pure: no I/O, no clock, randomness passed in. [`decide`] turns a record, the pool
//! list that applies to the client, and a [`HealthSnapshot`] into a [`Decision`] (the
//! candidates and why); [`Decision::sample`] draws one answer from it. The DNS layer
//! pre-computes answers from decisions; tests and tools call `answer` directly.
//!
//! Rules, in order:
//! 1. An endpoint is usable when it is up and not drained (weight > 0). A pool is up
//!    when it has at least `min_healthy` usable endpoints.
//! 2. `failover`: the usable endpoints of the first pool that is up.
//!    `weighted` / `multivalue`: the usable endpoints of every pool that is up.
//! 3. No pool up, but some endpoint is up: answer only up endpoints (degraded), so a
//!    down endpoint is never served while any is healthy.
//! 4. Nothing up: the record's all-down mode — fail open (as if all were up, like
//!    Route 53), a fallback pool, or NODATA.
//!
//! Failover gates (RPO guard, `gates = { standby = "standby-db" }`): a pool whose
//! gate pool is down is *held* — it counts as down, is left out of the degraded and
//! fail-open answers, and traffic does not move to it — unless an operator failed
//! the record over to it (the pin overrides the gate explicitly).
//!
//! `primary` records answer the one endpoint that claims primary; see [`primary`].
//!
//! TTL: `ttl`, or `all_down_ttl` in an all-down mode. While any endpoint of the pools
//! considered is in doubt (its probes failing short of `fall`, recovering short of
//! `rise`, its votes split, a hold or flap-damping suppression about to end), the
//! answer's TTL is the time until its earliest possible state change, rounded up to a
//! second and clamped to `[min_ttl, ttl]` — so resolvers come back about when the
//! answer may have changed, and not later.

pub(crate) mod geo;
pub(crate) mod latency;
pub(crate) mod primary;
pub(crate) mod safety;
pub(crate) mod spill;

use std::fmt;

use serde::Serialize;

pub(crate) use self::geo::GeoMap;
use crate::config::{AllDown, Config, DynamicRecord, PoolChoice, Selection};
use crate::health::HealthSnapshot;
use crate::model::{EndpointIndex, EndpointTarget, PoolIndex, RandomSource, RegionIndex, Ttl};

/// Which rule produced the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Outcome {
    /// Pools are up; `pool` is the one failover chose (None for weighted/multivalue).
    Healthy {
        /// The failover pool answered.
        pool: Option<PoolIndex>,
    },
    /// No pool reaches `min_healthy`; only up endpoints are answered.
    Degraded,
    /// Nothing is up; every endpoint is answered as if healthy.
    FailOpen,
    /// Nothing is up; the fallback pool is answered.
    Fallback {
        /// The fallback pool.
        pool: PoolIndex,
    },
    /// Nothing is up; the answer is empty (NOERROR, no records).
    NoData,
    /// `primary` record: exactly one endpoint claims primary and is answered.
    Primary {
        /// The primary.
        endpoint: EndpointIndex,
    },
    /// `primary` record: two or more endpoints claim primary; the last agreed
    /// primary is held (`on_conflict = "hold"`), or nothing is answered.
    Conflict {
        /// The endpoint answered (None: NODATA).
        held: Option<EndpointIndex>,
    },
}

impl Outcome {
    /// Whether the record is in an all-down mode.
    pub(crate) fn is_all_down(self) -> bool {
        matches!(self, Self::FailOpen | Self::Fallback { .. } | Self::NoData)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy { pool: Some(p) } => write!(f, "healthy (pool #{})", p.0),
            Self::Healthy { pool: None } => f.write_str("healthy"),
            Self::Degraded => f.write_str("degraded"),
            Self::FailOpen => f.write_str("all down: fail-open"),
            Self::Fallback { pool } => write!(f, "all down: fallback pool #{}", pool.0),
            Self::NoData => f.write_str("all down: nodata"),
            Self::Primary { endpoint } => write!(f, "primary (endpoint #{})", endpoint.0),
            Self::Conflict { held: Some(e) } => {
                write!(f, "primary conflict: holding endpoint #{}", e.0)
            }
            Self::Conflict { held: None } => f.write_str("primary conflict: nodata"),
        }
    }
}

/// Health of one pool as the decision saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PoolVerdict {
    /// The pool.
    pub pool: PoolIndex,
    /// Usable (up, not drained) endpoints.
    pub usable: u32,
    /// Endpoints needed for the pool to be up.
    pub needed: u32,
    /// Whether the pool is up (a held pool is not).
    pub up: bool,
    /// Its failover gate, if it has one (and whether the gate is open).
    pub gate: Option<GateVerdict>,
}

impl PoolVerdict {
    /// Whether its gate holds it: traffic does not move to it.
    pub(crate) fn held(&self) -> bool {
        self.gate.is_some_and(|g| !g.open)
    }
}

/// A pool's failover gate as the decision saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct GateVerdict {
    /// The gate pool.
    pub pool: PoolIndex,
    /// Whether it is up (or an operator's failover overrides it).
    pub open: bool,
    /// An operator's failover to the gated pool overrides a closed gate.
    pub overridden: bool,
}

/// What a record's decision depends on besides health: state the health plane keeps
/// (both travel in the [`HealthSnapshot`]; see [`record_state`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordState {
    /// An operator's manual failover to this pool.
    pub pin: Option<PoolIndex>,
    /// `primary` records: the last primary the checks agreed on.
    pub last_primary: Option<EndpointIndex>,
}

/// The state of record `record` carried by `health`.
pub(crate) fn record_state(
    health: &HealthSnapshot,
    record: crate::model::RecordIndex,
) -> RecordState {
    RecordState {
        pin: health.pin(record),
        last_primary: health.last_primary(record),
    }
}

/// An endpoint that may be answered, with its selection weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Candidate {
    /// The endpoint.
    pub endpoint: EndpointIndex,
    /// Selection weight (≥ 1 whenever weights are in use; already scaled by `share`
    /// and a degraded endpoint's factor — in thousandths of the configured weights
    /// whenever some candidate is scaled, so a weight of 1 scales too).
    pub weight: u32,
    /// Slow start: the share of answers it is in, in permille (1000: all it would
    /// have). Weighted draws scale its weight; multivalue answers include it this
    /// often (there, scaled by a degraded endpoint's factor too).
    pub share: u16,
}

/// Slow start of a failover pool taking over again: the pool that served during the
/// outage keeps a falling share of the answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Handover {
    /// The pool that served during the outage.
    pub pool: PoolIndex,
    /// Its endpoints.
    pub candidates: Vec<Candidate>,
    /// Share of answers (permille) that go to the decision's own candidates; the
    /// rest go to `candidates` here.
    pub share: u16,
}

/// The result of evaluating a record against health: the candidates and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Decision {
    /// Which rule applied.
    pub outcome: Outcome,
    /// Every pool considered, in order.
    pub pools: Vec<PoolVerdict>,
    /// Endpoints an answer is drawn from (empty only for [`Outcome::NoData`]).
    pub candidates: Vec<Candidate>,
    /// Most endpoints in one answer.
    pub max_answers: u16,
    /// Whether the draw is weighted (otherwise uniform).
    pub weighted: bool,
    /// TTL of the answer.
    pub ttl: Ttl,
    /// A failover pool coming back shares the answers with the one that served
    /// during its outage (slow start).
    pub handover: Option<Handover>,
    /// Spill-over and trickle: the share of answers each pool gets (then no
    /// handover; answers are drawn from one pool's candidates by these shares).
    pub shares: Option<Shares>,
}

/// Spill-over and trickle shares of a record's answers, decided per health change.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Shares {
    /// Every pool considered, in order.
    pub pools: Vec<PoolShare>,
    /// Spill-over is on (else trickle alone).
    pub spill: bool,
    /// The record's peak traffic in capacity units (spill-over).
    pub demand: f64,
    /// Every pool is at its limit: the rest went by the plain policy.
    pub overloaded: bool,
    /// The trickle fraction in force (None: the first pool is not answering, or
    /// there is no next pool, or no trickle).
    pub trickle: Option<f64>,
    /// Where a dialled pool's rest goes, when a pool considered has a dial below
    /// 100 % (`ctl dial`).
    pub dial_rest: Option<&'static str>,
}

// Shares hold finite numbers only (validated capacities and fractions).
impl Eq for Shares {}

/// One pool's part of [`Shares`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PoolShare {
    /// The pool.
    pub pool: PoolIndex,
    /// Its share of answers (0 ..= 1).
    pub share: f64,
    /// Capacity of its usable endpoints now (spill-over; 0 when down).
    pub capacity: f64,
    /// Most traffic it may take: capacity × `max_load` × dial.
    pub limit: f64,
    /// Its dial (1 until `ctl dial` sets one).
    pub dial: f64,
    /// Its share comes from trickle (a pool after the answering first one).
    pub trickle: bool,
    /// Its usable endpoints, answered for its share.
    pub candidates: Vec<Candidate>,
}

impl PoolShare {
    /// Its share in parts per million (the pick weight of its answers).
    pub(crate) fn parts(&self) -> u64 {
        (self.share * 1e6).round() as u64
    }
}

impl Shares {
    /// One line: `spill: a failed; b 50% (load 40/40), c 50% (load 40/40)`.
    pub(crate) fn summary(&self, config: &Config) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut answered: Vec<String> = Vec::new();
        for p in &self.pools {
            let name = &config.pool(p.pool).name;
            let percent = number(p.share * 100.0, "%");
            let dial = (p.dial < 1.0).then(|| format!("dial {}", number(p.dial * 100.0, "%")));
            if self.spill && p.capacity <= 0.0 {
                out.push(format!("{name} failed"));
            } else if p.dial <= 0.0 {
                out.push(format!("{name} dialled to 0%"));
            } else if self.spill {
                answered.push(format!(
                    "{name} {percent} (load {}/{}{})",
                    number(p.share * self.demand, ""),
                    number(p.limit, ""),
                    dial.map(|d| format!(", {d}")).unwrap_or_default()
                ));
            } else {
                answered.push(format!(
                    "{name} {percent}{}",
                    dial.map(|d| format!(" ({d})")).unwrap_or_default()
                ));
            }
        }
        let mut parts = Vec::new();
        if !out.is_empty() {
            parts.push(out.join(", "));
        }
        parts.push(answered.join(", "));
        let kind = if self.spill {
            "spill"
        } else if self.trickle.is_some() {
            "trickle"
        } else {
            "dial"
        };
        let mut line = format!("{kind}: {}", parts.join("; "));
        if let Some(rest) = self.dial_rest {
            line.push_str("; ");
            line.push_str(rest);
        }
        if self.overloaded {
            line.push_str(
                "; overloaded: every pool is at its limit, the rest goes by the plain policy",
            );
        }
        if let Some(t) = self.trickle {
            line.push_str(&format!(
                "; trickle {} to the next pools",
                number(t * 100.0, "%")
            ));
        }
        line
    }
}

/// A number as explain shows it: whole when it is, else one decimal (`40`, `12.5%`).
fn number(value: f64, unit: &str) -> String {
    if (value - value.round()).abs() < 0.05 {
        format!("{}{unit}", value.round())
    } else {
        format!("{value:.1}{unit}")
    }
}

impl Decision {
    /// Draws one answer: up to `max_answers` distinct candidates, each draw weighted
    /// by the remaining candidates' weights (or uniform), in draw order.
    /// Slow start is honoured: a handover pool takes its share of draws, and a
    /// multivalue candidate on a slow start is left out of the rest of its share.
    pub(crate) fn sample(&self, rng: &mut dyn RandomSource, out: &mut Vec<EndpointIndex>) {
        out.clear();
        let candidates = match (&self.shares, &self.handover) {
            (Some(shares), _) => {
                let total: u64 = shares.pools.iter().map(PoolShare::parts).sum();
                let mut point = rng.below(total.max(1));
                let mut chosen = &self.candidates;
                for p in shares.pools.iter().filter(|p| p.parts() > 0) {
                    if point < p.parts() {
                        chosen = &p.candidates;
                        break;
                    }
                    point -= p.parts();
                }
                chosen
            }
            (None, Some(h)) if rng.below(1000) >= u64::from(h.share) => &h.candidates,
            _ => &self.candidates,
        };
        let mut remaining: Vec<Candidate> = if self.weighted {
            candidates.clone()
        } else {
            let kept: Vec<Candidate> = candidates
                .iter()
                .copied()
                .filter(|c| c.share >= 1000 || rng.below(1000) < u64::from(c.share))
                .collect();
            if kept.is_empty() {
                candidates.clone()
            } else {
                kept
            }
        };
        let want = usize::from(self.max_answers).min(remaining.len());
        if want == remaining.len() && want <= 1 {
            out.extend(remaining.iter().map(|c| c.endpoint));
            return;
        }
        while out.len() < want {
            let total: u64 = remaining
                .iter()
                .map(|c| {
                    if self.weighted {
                        u64::from(c.weight)
                    } else {
                        1
                    }
                })
                .sum();
            let mut point = rng.below(total.max(1));
            let mut chosen = remaining.len() - 1;
            for (i, c) in remaining.iter().enumerate() {
                let w = if self.weighted {
                    u64::from(c.weight)
                } else {
                    1
                };
                if point < w {
                    chosen = i;
                    break;
                }
                point -= w;
            }
            out.push(remaining.swap_remove(chosen).endpoint);
        }
    }
}

/// The pools that apply to a client of `region`.
pub(crate) fn pools_for(record: &DynamicRecord, region: Option<RegionIndex>) -> &[PoolIndex] {
    match &record.pools {
        PoolChoice::Fixed(pools) => pools,
        PoolChoice::Geo { by_region, default } => region
            .and_then(|r| by_region.get(usize::from(r.0)))
            .and_then(Option::as_deref)
            .unwrap_or(default),
    }
}

/// The pools that apply to a client of `region` as the answers order them: a
/// latency record's chosen pool for the region first (see [`latency`]), else
/// [`pools_for`].
pub(crate) fn pools_for_client(
    config: &Config,
    record_index: crate::model::RecordIndex,
    record: &DynamicRecord,
    region: Option<RegionIndex>,
    health: &HealthSnapshot,
) -> Vec<PoolIndex> {
    let list = pools_for(record, region);
    if record.latency.is_none() {
        return list.to_vec();
    }
    let slot = latency::slot_of(config, region);
    latency::ordered(list, health.latency_choice(record_index, slot))
}

/// Evaluates a record over `pools` (from [`pools_for`]) with the given health, and no
/// state beside it (no manual failover, no agreed primary known).
pub(crate) fn decide(
    config: &Config,
    record: &DynamicRecord,
    pools: &[PoolIndex],
    health: &HealthSnapshot,
) -> Decision {
    evaluate(config, record, pools, pools, None, None, health)
}

/// Evaluates a record over `pools` with its [`RecordState`] (an operator's manual
/// failover, the last agreed primary): what the answers are built from.
pub(crate) fn decide_record(
    config: &Config,
    record: &DynamicRecord,
    pools: &[PoolIndex],
    state: RecordState,
    health: &HealthSnapshot,
) -> Decision {
    if record.selection == Selection::Primary {
        return primary::decide(config, record, pools, state.last_primary, health);
    }
    decide_pinned(config, record, pools, state.pin, health)
}

/// The core of [`decide`]: `ungated` is the pool an operator failed over to (its
/// gate does not hold it); `own` is the record's own pool list (before a manual
/// failover reordered it into `pools`).
fn evaluate(
    config: &Config,
    record: &DynamicRecord,
    pools: &[PoolIndex],
    own: &[PoolIndex],
    ungated: Option<PoolIndex>,
    last_primary: Option<EndpointIndex>,
    health: &HealthSnapshot,
) -> Decision {
    if record.selection == Selection::Primary {
        return primary::decide(config, record, pools, last_primary, health);
    }
    let weighted = record.selection != Selection::Multivalue;
    let is_up = |e: EndpointIndex| health.state(e).is_up();
    let drained = |e: EndpointIndex| config.endpoint(e).weight.is_drained() || health.drained(e);
    let usable = |e: EndpointIndex| is_up(e) && !drained(e);
    let pool_up = |pool: PoolIndex| {
        let p = config.pool(pool);
        p.endpoints.iter().filter(|&&e| usable(e)).count() as u32 >= p.min_healthy
    };
    let verdicts: Vec<PoolVerdict> = pools
        .iter()
        .map(|&pool| {
            let p = config.pool(pool);
            let count = p.endpoints.iter().filter(|&&e| usable(e)).count() as u32;
            let gate = record.gate_of(pool).map(|gate| {
                let up = pool_up(gate);
                let overridden = !up && ungated == Some(pool);
                GateVerdict {
                    pool: gate,
                    open: up || overridden,
                    overridden,
                }
            });
            PoolVerdict {
                pool,
                usable: count,
                needed: p.min_healthy,
                up: count >= p.min_healthy && gate.is_none_or(|g| g.open),
                gate,
            }
        })
        .collect();
    // Held pools are out of every answer (degraded and fail-open too).
    let open_pools: Vec<PoolIndex> = verdicts
        .iter()
        .filter(|v| !v.held())
        .map(|v| v.pool)
        .collect();
    let pools_all = pools;
    let pools = open_pools.as_slice();
    // State-aware TTL: no longer than until the earliest possible change (of an
    // endpoint, or of a gate).
    let doubt = pools_all
        .iter()
        .flat_map(|&p| {
            let gate = record.gate_of(p).map(|g| config.pool(g).endpoints.iter());
            config
                .pool(p)
                .endpoints
                .iter()
                .chain(gate.into_iter().flatten())
        })
        .filter_map(|&e| health.doubt(e))
        .min();
    let ttl = match doubt {
        Some(seconds) => Ttl(seconds.clamp(record.min_ttl.0, record.ttl.0.max(record.min_ttl.0))),
        None => record.ttl,
    };
    let make = |outcome, candidates, ttl| Decision {
        outcome,
        pools: verdicts.clone(),
        candidates,
        max_answers: record.max_answers,
        weighted,
        ttl,
        handover: None,
        shares: None,
    };
    let endpoints_of = |pool_list: &mut dyn Iterator<Item = PoolIndex>,
                        keep: &dyn Fn(EndpointIndex) -> bool| {
        let mut out: Vec<Candidate> = Vec::new();
        let mut targets: Vec<&EndpointTarget> = Vec::new();
        let mut scaled = false;
        for pool in pool_list {
            for &e in &config.pool(pool).endpoints {
                let endpoint = config.endpoint(e);
                // Two pools may list the same address; an RRset cannot repeat it.
                if keep(e) && !targets.contains(&&endpoint.target) {
                    targets.push(&endpoint.target);
                    let share = health.share(e);
                    let factor = health.degraded(e).unwrap_or(1000);
                    scaled |= weighted && (share < 1000 || factor < 1000);
                    // A multivalue record answers a dialled pool's endpoints in its
                    // dial of the answers (failover and weighted ones by shares).
                    let dial = match health.dial(endpoint.pool) {
                        Some(d) if !weighted => u32::from(d.get()) * 10,
                        _ => 1000,
                    };
                    out.push(Candidate {
                        endpoint: e,
                        weight: endpoint.weight.0,
                        share: if weighted {
                            share
                        } else {
                            (u32::from(share) * u32::from(factor) / 1000)
                                .max(1)
                                .min(dial) as u16
                        },
                    });
                }
            }
        }
        if scaled {
            // Weights in thousandths: slow start and degraded factors scale every
            // weight, a weight of 1 included.
            for c in &mut out {
                if c.weight > 0 {
                    let factor = u64::from(health.degraded(c.endpoint).unwrap_or(1000));
                    let weight = u64::from(c.weight) * u64::from(c.share) * factor / 1000;
                    c.weight = weight.max(1) as u32;
                }
            }
        }
        out
    };
    let up_pools = verdicts.iter().filter(|v| v.up).map(|v| v.pool);
    let factor = |e: EndpointIndex| f64::from(health.degraded(e).unwrap_or(1000)) / 1000.0;
    let dial_of = |pool: PoolIndex| {
        health
            .dial(pool)
            .map_or(1.0, crate::health::overrides::Percent::ratio)
    };
    if let Some(plan) = share_plan(config, record, &verdicts, own, &usable, &factor, &dial_of) {
        let mut shares = plan;
        for p in &mut shares.pools {
            p.candidates = endpoints_of(&mut std::iter::once(p.pool), &usable);
        }
        let answered = shares.pools.iter().filter(|p| p.parts() > 0);
        let candidates = endpoints_of(&mut answered.map(|p| p.pool), &usable);
        let pool = match record.selection {
            Selection::Failover => verdicts.iter().find(|v| v.up).map(|v| v.pool),
            _ => None,
        };
        let mut decision = make(Outcome::Healthy { pool }, candidates, ttl);
        decision.shares = Some(shares);
        return decision;
    }
    match record.selection {
        Selection::Failover => {
            if let Some(first) = verdicts.iter().find(|v| v.up) {
                let candidates = endpoints_of(&mut std::iter::once(first.pool), &usable);
                let mut decision = make(
                    Outcome::Healthy {
                        pool: Some(first.pool),
                    },
                    candidates,
                    ttl,
                );
                // A pool taking over again after an outage (every endpoint on a slow
                // start) shares the answers with the next pool that is up.
                let share = decision
                    .candidates
                    .iter()
                    .map(|c| c.share)
                    .max()
                    .unwrap_or(1000);
                if share < 1000 {
                    let next = verdicts
                        .iter()
                        .skip_while(|v| v.pool != first.pool)
                        .skip(1)
                        .find(|v| v.up);
                    if let Some(next) = next {
                        let candidates = endpoints_of(&mut std::iter::once(next.pool), &usable);
                        decision.handover = Some(Handover {
                            pool: next.pool,
                            candidates,
                            share,
                        });
                    }
                }
                return decision;
            }
        }
        Selection::Weighted | Selection::Multivalue => {
            let candidates = endpoints_of(&mut up_pools.clone(), &usable);
            if !candidates.is_empty() {
                return make(Outcome::Healthy { pool: None }, candidates, ttl);
            }
        }
        Selection::Primary => unreachable!("primary records are decided by primary::decide"),
    }
    // No pool is up. Serve whatever is up, preferring undrained endpoints.
    for keep in [&usable as &dyn Fn(EndpointIndex) -> bool, &is_up] {
        let candidates = match record.selection {
            Selection::Failover => pools
                .iter()
                .map(|&p| endpoints_of(&mut std::iter::once(p), keep))
                .find(|c| !c.is_empty())
                .unwrap_or_default(),
            _ => endpoints_of(&mut pools.iter().copied(), keep),
        };
        if !candidates.is_empty() {
            return make(Outcome::Degraded, with_floor_weights(candidates), ttl);
        }
    }
    // An endpoint the operator forced down is never answered, not even here.
    let undrained = |e: EndpointIndex| !drained(e) && !health.forced_down(e);
    let any = |e: EndpointIndex| !health.forced_down(e);
    let all_of = |list: &[PoolIndex]| {
        let candidates = endpoints_of(&mut list.iter().copied(), &undrained);
        if candidates.is_empty() {
            with_floor_weights(endpoints_of(&mut list.iter().copied(), &any))
        } else {
            candidates
        }
    };
    match record.all_down {
        AllDown::FailOpen => {
            let list = match record.selection {
                Selection::Failover => &pools[..pools.len().min(1)],
                _ => pools,
            };
            let candidates = all_of(list);
            if candidates.is_empty() {
                // Every pool is held by its gate: nothing may be answered.
                return make(Outcome::NoData, candidates, record.all_down_ttl);
            }
            make(Outcome::FailOpen, candidates, record.all_down_ttl)
        }
        AllDown::Fallback(pool) => make(
            Outcome::Fallback { pool },
            all_of(&[pool]),
            record.all_down_ttl,
        ),
        AllDown::NoData => make(Outcome::NoData, Vec::new(), record.all_down_ttl),
    }
}

/// Like [`decide`], with an operator's manual failover to `pin`: a failover record
/// takes that pool first (the others stay behind it, in order, should it be down);
/// a weighted or multivalue record answers from that pool alone while it is up.
pub(crate) fn decide_pinned(
    config: &Config,
    record: &DynamicRecord,
    pools: &[PoolIndex],
    pin: Option<PoolIndex>,
    health: &HealthSnapshot,
) -> Decision {
    let Some(pin) = pin else {
        return decide(config, record, pools, health);
    };
    match record.selection {
        Selection::Failover => {
            let pinned: Vec<PoolIndex> = std::iter::once(pin)
                .chain(pools.iter().copied().filter(|&p| p != pin))
                .collect();
            evaluate(config, record, &pinned, pools, Some(pin), None, health)
        }
        Selection::Weighted | Selection::Multivalue => {
            let alone = decide(config, record, &[pin], health);
            if matches!(alone.outcome, Outcome::Healthy { .. }) {
                alone
            } else {
                decide(config, record, pools, health)
            }
        }
        // A primary record follows its checks; a manual failover does not apply.
        Selection::Primary => decide(config, record, pools, health),
    }
}

/// Why a record is answered by another pool than its first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum FailoverCause {
    /// Health: the pools before it are down (or, degraded, no pool is up).
    Health,
    /// An operator's manual failover (`ctl failover`).
    Operator,
}

impl FailoverCause {
    /// Both, in metric label order.
    pub(crate) const ALL: [Self; 2] = [Self::Health, Self::Operator];

    /// The word status, metrics and events use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Operator => "operator",
        }
    }
}

impl fmt::Display for FailoverCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision in words, as status, explain, `ctl` and the events show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutcomeWords {
    /// `healthy`, `failover` (another pool than the first, or an operator's pool),
    /// `degraded`, `fail-open`, `fallback`, `nodata`, `primary` or `conflict`.
    pub outcome: &'static str,
    /// The pool answered (failover, fallback, primary), if one.
    pub pool: Option<String>,
    /// Why `failover` or `degraded`: health, or an operator's manual failover.
    pub cause: Option<FailoverCause>,
}

impl fmt::Display for OutcomeWords {
    /// `healthy (pool web-eu)`, `failover (operator) to web-us`, `fail-open`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.outcome)?;
        if let Some(cause) = self.cause {
            write!(f, " ({cause})")?;
        }
        match (&self.pool, self.outcome) {
            (Some(pool), "failover") => write!(f, " to {pool}"),
            (Some(pool), _) => write!(f, " (pool {pool})"),
            (None, _) => Ok(()),
        }
    }
}

/// The pool an operator's action put in front of a record's answer: their manual
/// failover (`pin`), or else the pool a failover record answers from when every pool
/// before it in `pools` is out because of operators alone — each of its endpoints
/// drained or forced down (at run time or in the config), whatever the probes say. A
/// `ctl drain web-eu` of the primary pool is a failover by the operator, not by
/// health. Feed the result to [`describe_outcome`] as its `pin`.
pub(crate) fn operator_pin(
    config: &Config,
    health: &HealthSnapshot,
    pools: &[PoolIndex],
    pin: Option<PoolIndex>,
    decision: &Decision,
) -> Option<PoolIndex> {
    if pin.is_some() {
        return pin;
    }
    let Outcome::Healthy {
        pool: Some(answered),
    } = decision.outcome
    else {
        return None;
    };
    let before = pools.iter().take_while(|&&p| p != answered);
    let mut skipped = 0;
    for &pool in before {
        skipped += 1;
        let taken_out = config
            .pool(pool)
            .endpoints
            .iter()
            .all(|&e| health.drained(e) || health.forced_down(e));
        if !taken_out {
            return None;
        }
    }
    (skipped > 0 && pools.contains(&answered)).then_some(answered)
}

/// A decision in words. `pools` is the record's own pool list for the clients
/// concerned (from [`pools_for`], before any manual failover) and `pin` the pool an
/// operator failed the record over to, if any: a failover record answered by its
/// first pool is `healthy` (pinned there or not); answered by the operator's pool,
/// a `failover` caused by the operator; answered by another, a `failover` caused by
/// health. A weighted or multivalue record answered from the operator's pool alone
/// is a `failover` caused by the operator (unless that is its only pool).
pub(crate) fn describe_outcome(
    config: &Config,
    pools: &[PoolIndex],
    pin: Option<PoolIndex>,
    decision: &Decision,
) -> OutcomeWords {
    let name = |pool: PoolIndex| Some(config.pool(pool).name.clone());
    let words = |outcome, pool, cause| OutcomeWords {
        outcome,
        pool,
        cause,
    };
    match decision.outcome {
        Outcome::Healthy { pool: Some(pool) } => {
            if pools.first() == Some(&pool) {
                words("healthy", name(pool), None)
            } else if pin == Some(pool) {
                words("failover", name(pool), Some(FailoverCause::Operator))
            } else {
                words("failover", name(pool), Some(FailoverCause::Health))
            }
        }
        Outcome::Healthy { pool: None } => match (pin, decision.pools.as_slice()) {
            (Some(pin), [only]) if only.pool == pin && pools != [pin] => {
                words("failover", name(pin), Some(FailoverCause::Operator))
            }
            _ => words("healthy", None, None),
        },
        Outcome::Degraded => words("degraded", None, Some(FailoverCause::Health)),
        Outcome::FailOpen => words("fail-open", None, None),
        Outcome::Fallback { pool } => words("fallback", name(pool), None),
        Outcome::NoData => words("nodata", None, None),
        Outcome::Primary { endpoint } => {
            words("primary", name(config.endpoint(endpoint).pool), None)
        }
        Outcome::Conflict { held } => words(
            "conflict",
            held.and_then(|e| name(config.endpoint(e).pool)),
            None,
        ),
    }
}

/// The spill-over and trickle shares of a failover or weighted record over
/// `verdicts` (candidates left empty), or None when neither applies now: no spill
/// or trickle configured, no pool up, or trickle alone with no next pool up or the
/// first pool of `own` not answering.
fn share_plan(
    config: &Config,
    record: &DynamicRecord,
    verdicts: &[PoolVerdict],
    own: &[PoolIndex],
    usable: &dyn Fn(EndpointIndex) -> bool,
    factor: &dyn Fn(EndpointIndex) -> f64,
    dial: &dyn Fn(PoolIndex) -> f64,
) -> Option<Shares> {
    let failover = record.selection == Selection::Failover;
    let dials: Vec<f64> = verdicts.iter().map(|v| dial(v.pool)).collect();
    let dialled = dials.iter().any(|&d| d < 1.0);
    if !(record.spill || record.trickle.is_some() || dialled)
        || !matches!(record.selection, Selection::Failover | Selection::Weighted)
    {
        return None;
    }
    let first = verdicts.first()?;
    // Trickle while the record's own first pool answers (not during an operator's
    // failover to another pool).
    let trickle = record
        .trickle
        .filter(|_| failover && first.up && own.first() == Some(&first.pool));
    let full = |pool: PoolIndex| {
        let p = config.pool(pool);
        p.capacity.unwrap_or_else(|| {
            p.endpoints
                .iter()
                .filter_map(|&e| config.endpoint(e).capacity)
                .sum()
        })
    };
    let healthy = |v: &PoolVerdict| {
        if !v.up {
            return 0.0;
        }
        let p = config.pool(v.pool);
        // A degraded endpoint's capacity scales like its weight.
        match p.capacity {
            // A pool-wide capacity shrinks with the endpoints that are out.
            Some(c) => {
                let usable: f64 = p
                    .endpoints
                    .iter()
                    .filter(|&&e| usable(e))
                    .map(|&e| factor(e))
                    .sum();
                c * usable / p.endpoints.len().max(1) as f64
            }
            None => p
                .endpoints
                .iter()
                .filter(|&&e| usable(e))
                .filter_map(|&e| Some(config.endpoint(e).capacity? * factor(e)))
                .sum(),
        }
    };
    let weight_of = |pool: PoolIndex| -> f64 {
        config
            .pool(pool)
            .endpoints
            .iter()
            .map(|&e| f64::from(config.endpoint(e).weight.0))
            .sum()
    };
    let weights: Vec<f64> = verdicts.iter().map(|v| weight_of(v.pool)).collect();
    let weight_total: f64 = weights.iter().sum();
    let loads: Vec<spill::PoolLoad> = verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| spill::PoolLoad {
            capacity: healthy(v),
            max_load: config.pool(v.pool).max_load,
            normal: if failover {
                if i == 0 { 1.0 } else { 0.0 }
            } else if weight_total > 0.0 {
                weights[i] / weight_total
            } else {
                1.0 / verdicts.len() as f64
            },
            dial: dials[i],
        })
        .collect();
    let plain = if failover {
        spill::Plain::Failover
    } else {
        spill::Plain::Weighted
    };
    let demand = record.demand.unwrap_or_else(|| {
        let serving: Vec<PoolIndex> = if failover {
            own.first().copied().into_iter().collect()
        } else {
            own.to_vec()
        };
        serving
            .iter()
            .map(|&p| full(p) * config.pool(p).max_load)
            .sum()
    });
    // The shares now, and (trickle) if the first pool failed.
    let one_hot = |index: usize| -> Vec<f64> {
        (0..verdicts.len())
            .map(|i| if i == index { 1.0 } else { 0.0 })
            .collect()
    };
    // Without spill-over a dial moves its rest by the plain policy
    // ([`spill::dialled`]).
    let normals: Vec<f64> = loads.iter().map(|l| l.normal).collect();
    let ups: Vec<bool> = verdicts.iter().map(|v| v.up).collect();
    let plain_dialled = (!record.spill && dialled)
        .then(|| spill::dialled(&normals, &dials, &ups, plain))
        .flatten();
    let (now, overloaded) = if record.spill {
        let plan = spill::spill(&loads, demand, plain)?;
        (plan.shares, plan.overloaded)
    } else if let Some(shares) = plain_dialled.clone() {
        (shares, false)
    } else {
        (one_hot(verdicts.iter().position(|v| v.up)?), false)
    };
    let failed_first = trickle.and_then(|_| {
        if record.spill {
            let mut without = loads.clone();
            without[0].capacity = 0.0;
            spill::spill(&without, demand, plain).map(|p| p.shares)
        } else {
            verdicts
                .iter()
                .skip(1)
                .position(|v| v.up)
                .map(|i| one_hot(i + 1))
        }
    });
    if !record.spill && failed_first.is_none() && plain_dialled.is_none() {
        return None;
    }
    let dial_rest = dialled.then_some(match (record.spill, failover) {
        (true, _) => "a dialled pool keeps its dial of its share and limit; the rest spills by headroom",
        (false, true) => "a dialled pool keeps its dial of what it would get; the rest goes to the next pool in order",
        (false, false) => "a dialled pool keeps its dial of what it would get; the rest goes to the pools without a dial, by weight",
    });
    let (shares, trickle) = match (trickle, failed_first) {
        (Some(t), Some(failed)) => (spill::trickle(&now, &failed, t), Some(t)),
        _ => (now, None),
    };
    Some(Shares {
        pools: verdicts
            .iter()
            .zip(&loads)
            .zip(shares)
            .enumerate()
            .map(|(i, ((v, load), share))| PoolShare {
                pool: v.pool,
                share,
                capacity: load.capacity,
                limit: load.limit(),
                dial: load.dial,
                trickle: trickle.is_some() && i > 0,
                candidates: Vec::new(),
            })
            .collect(),
        spill: record.spill,
        demand,
        overloaded,
        trickle,
        dial_rest,
    })
}

/// Drained endpoints keep weight 0; when only they remain, weigh them equally.
fn with_floor_weights(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    if candidates.iter().all(|c| c.weight == 0) {
        for c in &mut candidates {
            c.weight = 1;
        }
    }
    candidates
}

/// A full answer for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg(test)]
pub(crate) struct Answer {
    /// Endpoints answered, in order (empty only for NODATA).
    pub endpoints: Vec<EndpointIndex>,
    /// TTL.
    pub ttl: Ttl,
    /// Which rule applied.
    pub outcome: Outcome,
}

/// Decides and draws an answer for a client placed in `region`.
#[cfg(test)]
pub(crate) fn answer(
    config: &Config,
    record: &DynamicRecord,
    region: Option<RegionIndex>,
    health: &HealthSnapshot,
    rng: &mut dyn RandomSource,
) -> Answer {
    let decision = decide(config, record, pools_for(record, region), health);
    let mut endpoints = Vec::new();
    decision.sample(rng, &mut endpoints);
    Answer {
        endpoints,
        ttl: decision.ttl,
        outcome: decision.outcome,
    }
}

#[cfg(test)]
mod tests;
