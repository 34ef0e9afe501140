//! Explain and what-if: the answer a server gives a client now, and why (pure).
//!
//! The decision is recomputed from the published snapshot's health with the same
//! policy code the snapshot was built with, for the client's region (from its
//! address or an ECS subnet, as the DNS path places it). With assumptions
//! (`endpoint=down|up`) the same runs on a copy of the health: nothing changes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::api::{EndpointRtt, EndpointStatus, Status};
use crate::config::{AllDown, Config, DynamicRecord, PoolChoice, Selection};
use crate::dns::Snapshot;
use crate::health::overrides::endpoint_by_label;
use crate::health::{EndpointHealth, HealthSnapshot, HealthSource};
use crate::model::{DynamicType, EndpointIndex, HealthState, RecordIndex};
use crate::policy::{self, Decision, Outcome};

/// What to explain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainQuery {
    /// Owner name.
    pub name: String,
    /// Record type (None: every dynamic record of the name).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub record_type: Option<DynamicType>,
    /// The resolver's address (None: a client no network matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// An EDNS Client Subnet (it wins over `client`, as in the DNS path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<IpNet>,
    /// What-if: endpoint states assumed (`pool/name=down|up`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assume: Vec<String>,
}

/// Why a query cannot be explained.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ExplainError {
    /// No dynamic record of that name (and type).
    #[error("no dynamic record {0}")]
    UnknownRecord(String),
    /// An assumption that is not `pool/name=down|up`, or names no endpoint.
    #[error("assume {0:?}: expected POOL/NAME=down or POOL/NAME=up of a configured endpoint")]
    BadAssumption(String),
}

/// The answer and why, for every record of the name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Explanation {
    /// The server explaining (its vantage name).
    pub server: String,
    /// Snapshot generation explained.
    pub generation: u64,
    /// The query.
    pub query: ExplainQuery,
    /// The client's region, if one matched (or the default region).
    pub region: Option<String>,
    /// How the region was found.
    pub placed_by: String,
    /// Whether assumptions changed the health (a what-if).
    pub what_if: bool,
    /// One per record.
    pub records: Vec<RecordExplanation>,
}

/// One record's answer and why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordExplanation {
    /// Owner name.
    pub name: String,
    /// Record type.
    pub record_type: String,
    /// `failover`, `weighted` or `multivalue`.
    pub policy: String,
    /// Whether the pools depend on the client's region.
    pub geo: bool,
    /// An operator's manual failover in force (the pool answered first).
    pub failed_over_to: Option<String>,
    /// Pools considered, in order.
    pub pools: Vec<PoolExplanation>,
    /// `healthy`, `failover`, `degraded`, `fail-open`, `fallback` or `nodata`.
    pub outcome: String,
    /// Why `failover` or `degraded`: `health` or `operator` (a manual failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<policy::FailoverCause>,
    /// The pool answered (failover and fallback).
    pub pool: Option<String>,
    /// Targets an answer is drawn from (all of them when they fit in one answer).
    pub candidates: Vec<String>,
    /// Most records in one answer.
    pub max_answers: u16,
    /// Whether answers are drawn by weight.
    pub weighted: bool,
    /// TTL of the answer.
    pub ttl: u32,
    /// Why that TTL.
    pub ttl_reason: String,
    /// The whole reasoning, one sentence per step.
    pub why: Vec<String>,
    /// Spill-over and trickle in one line (`spill: a failed; b 50% (load 40/40),
    /// c 50% (load 40/40)`), for records with `spill` or `trickle` while they apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill: Option<String>,
    /// Spill-over and trickle: each pool's share of answers (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareExplanation>,
    /// Spill-over: every pool is at its limit; the rest goes by the plain policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overloaded: bool,
    /// Latency steering: the client region's RTT table and choice in one line
    /// (`latency: from eu: web-eu 11 ms, web-us 92 ms → web-eu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
}

/// One pool's share of a spill-over or trickle record's answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShareExplanation {
    /// The pool.
    pub pool: String,
    /// Its share of answers (0 ..= 1).
    pub share: f64,
    /// Its load: share × the record's demand (capacity units; spill-over).
    pub load: f64,
    /// The most it may take: healthy capacity × `max_load` × dial.
    pub limit: f64,
    /// Capacity of its usable endpoints now.
    pub capacity: f64,
    /// Its share comes from trickle.
    pub trickle: bool,
    /// Its traffic dial (1: none; `ctl dial`).
    #[serde(default = "full_dial")]
    pub dial: f64,
    /// Targets answered for its share (an answer holds endpoints of one pool).
    pub candidates: Vec<String>,
}

/// A pool considered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PoolExplanation {
    /// Name.
    pub name: String,
    /// Usable endpoints.
    pub usable: u32,
    /// Needed for the pool to be up (`min_healthy`).
    pub needed: u32,
    /// Whether it is up.
    pub up: bool,
    /// Its endpoints.
    pub endpoints: Vec<EndpointExplanation>,
    /// Its failover gate, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateExplanation>,
    /// Its traffic dial in percent, when an operator set one (`ctl dial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial: Option<u8>,
}

/// No dial: all it would get.
fn full_dial() -> f64 {
    1.0
}

/// A pool's failover gate (RPO guard).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GateExplanation {
    /// The gate pool.
    pub pool: String,
    /// Whether the gate is open (the gate pool is up, or a manual failover overrides it).
    pub open: bool,
    /// An operator's manual failover overrides the closed gate.
    pub overridden: bool,
    /// The gate pool's endpoints.
    pub endpoints: Vec<EndpointExplanation>,
}

/// An endpoint of a pool considered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct EndpointExplanation {
    /// `pool/name`.
    pub endpoint: String,
    /// Address or host name.
    pub target: String,
    /// Decided (or assumed) state.
    pub state: String,
    /// Why it has it: `observed`, `forced`, `restored`, `assumed`, `what-if`.
    pub source: String,
    /// Up and not drained.
    pub usable: bool,
    /// Drained (weight 0 in the config, or by an operator).
    pub drained: bool,
    /// Votes of the vantage points (`name → up/down[: reason]`).
    pub votes: BTreeMap<String, String>,
    /// This server's own last probe, if it probes it.
    pub local_probe: Option<String>,
    /// Flap damping withholds its way back.
    pub damped: bool,
    /// Slow start: its share of answers in permille (1000: full).
    pub share: u16,
    /// Degraded (up, slow or flaky): the factor its weight (multivalue: its share of
    /// the answers; spill-over: its capacity) is scaled by (absent: not degraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<f64>,
}

/// Explains `query` against the published `snapshot`; `status` adds votes, probe
/// reasons and damping.
pub(crate) fn explain(
    snapshot: &Snapshot,
    status: &Status,
    query: &ExplainQuery,
) -> Result<Explanation, ExplainError> {
    let config = &snapshot.config;
    let name = absolute(&query.name);
    let records: Vec<usize> = config
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name == name && query.record_type.is_none_or(|t| t == r.record_type))
        .map(|(i, _)| i)
        .collect();
    if records.is_empty() {
        return Err(ExplainError::UnknownRecord(match query.record_type {
            Some(t) => format!("{name} {t}"),
            None => name,
        }));
    }
    let health = assumed_health(config, &snapshot.health, &query.assume)?;
    let what_if = !query.assume.is_empty();
    let ecs = query.ecs.filter(|_| config.geo.ecs);
    let (location, placed_by) = match (ecs, query.client) {
        (Some(subnet), _) if subnet.prefix_len() > 0 => (
            Some(snapshot.geo.locate(subnet.addr(), subnet.prefix_len())),
            format!("ECS subnet {subnet}"),
        ),
        (_, Some(addr)) => (
            Some(
                snapshot
                    .geo
                    .locate(addr, if addr.is_ipv4() { 32 } else { 128 }),
            ),
            format!("client address {addr}"),
        ),
        _ => (None, "no client given: the default region".to_owned()),
    };
    let region = location
        .and_then(|l| l.region)
        .or(config.geo.default_region);
    let by_label: BTreeMap<&str, &EndpointStatus> = status
        .endpoints
        .iter()
        .map(|e| (e.endpoint.as_str(), e))
        .collect();
    let explained = records
        .into_iter()
        .map(|r| {
            explain_record(
                config,
                &health,
                r,
                region,
                (&by_label, &status.rtts),
                what_if,
            )
        })
        .collect();
    Ok(Explanation {
        server: status.vantage.clone().unwrap_or_default(),
        generation: snapshot.generation,
        query: query.clone(),
        region: region.map(|r| config.regions[usize::from(r.0)].name.clone()),
        placed_by,
        what_if,
        records: explained,
    })
}

fn absolute(name: &str) -> String {
    let mut name = name.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// The health with the query's assumptions applied.
fn assumed_health(
    config: &Config,
    health: &HealthSnapshot,
    assume: &[String],
) -> Result<HealthSnapshot, ExplainError> {
    let mut health = health.clone();
    for text in assume {
        let bad = || ExplainError::BadAssumption(text.clone());
        let (label, state) = text.split_once('=').ok_or_else(bad)?;
        let state = match state.trim() {
            "down" => HealthState::Down,
            "up" => HealthState::Up,
            _ => return Err(bad()),
        };
        let endpoint = endpoint_by_label(config, label.trim()).ok_or_else(bad)?;
        health = health.with(
            endpoint,
            EndpointHealth {
                state,
                source: HealthSource::Assumed,
            },
        );
    }
    Ok(health)
}

fn explain_record(
    config: &Config,
    health: &HealthSnapshot,
    r: usize,
    region: Option<crate::model::RegionIndex>,
    (status, rtts): (&BTreeMap<&str, &EndpointStatus>, &[EndpointRtt]),
    what_if: bool,
) -> RecordExplanation {
    let record = &config.records[r];
    let geo = matches!(record.pools, PoolChoice::Geo { .. });
    let client_region = if geo || record.latency.is_some() {
        region
    } else {
        None
    };
    let owned =
        policy::pools_for_client(config, RecordIndex(r as u32), record, client_region, health);
    let pools = owned.as_slice();
    let state = policy::record_state(health, RecordIndex(r as u32));
    let pin = state.pin.filter(|_| record.selection != Selection::Primary);
    let decision = policy::decide_record(config, record, pools, state, health);
    let mut why = Vec::new();
    let policy_name = match record.selection {
        Selection::Failover if record.latency.is_some() && !geo => "latency",
        Selection::Failover => "failover",
        Selection::Weighted => "weighted",
        Selection::Multivalue => "multivalue",
        Selection::Primary => "primary",
    };
    if geo {
        let region_name = region.map_or("none".to_owned(), |r| {
            config.regions[usize::from(r.0)].name.clone()
        });
        why.push(format!(
            "geo record: the client's region is {region_name}, whose pools are {}",
            names(config, pools)
        ));
    }
    let latency = record
        .latency
        .as_ref()
        .map(|settings| latency_line(config, health, r, client_region, rtts, settings));
    if let Some(line) = &latency {
        why.push(line.clone());
    }
    let failed_over_to = pin.map(|p| config.pool(p).name.clone());
    if let Some(pool) = &failed_over_to {
        why.push(format!(
            "an operator failed this record over to {pool}: it is considered first"
        ));
    }
    let explained_pools: Vec<PoolExplanation> = decision
        .pools
        .iter()
        .map(|v| {
            let pool = config.pool(v.pool);
            PoolExplanation {
                name: pool.name.clone(),
                usable: v.usable,
                needed: v.needed,
                up: v.up,
                endpoints: pool
                    .endpoints
                    .iter()
                    .map(|&e| explain_endpoint(config, health, e, status, what_if))
                    .collect(),
                gate: v.gate.map(|g| GateExplanation {
                    pool: config.pool(g.pool).name.clone(),
                    open: g.open,
                    overridden: g.overridden,
                    endpoints: config
                        .pool(g.pool)
                        .endpoints
                        .iter()
                        .map(|&e| explain_endpoint(config, health, e, status, what_if))
                        .collect(),
                }),
                dial: health.dial(v.pool).map(|d| d.get()),
            }
        })
        .collect();
    for pool in &explained_pools {
        let held = pool.gate.as_ref().is_some_and(|g| !g.open);
        why.push(format!(
            "pool {} is {}: {} of its endpoints usable, {} needed",
            pool.name,
            if held {
                "held by its gate"
            } else if pool.up {
                "up"
            } else {
                "down"
            },
            pool.usable,
            pool.needed
        ));
        if let Some(gate) = &pool.gate {
            why.push(gate_sentence(&pool.name, gate));
        }
        if let Some(dial) = pool.dial {
            why.push(dial_sentence(&pool.name, dial, record.selection));
        }
    }
    let operator = policy::operator_pin(config, health, pools, pin, &decision);
    let words = policy::describe_outcome(config, pools, operator, &decision);
    why.push(outcome_sentence(config, record, policy_name, &decision));
    match (words.cause, &words.pool) {
        (Some(policy::FailoverCause::Operator), Some(pool)) => why.push(format!(
            "outcome: failover (operator): answered by {pool} because an operator failed the record over; `failoverd ctl release {}` ends it",
            record.name
        )),
        (Some(policy::FailoverCause::Health), Some(pool)) => why.push(format!(
            "outcome: failover (health): answered by {pool} because the pools before it are down"
        )),
        _ => {}
    }
    if let (Some(pinned), Some(answered)) = (&failed_over_to, &words.pool) {
        if pinned != answered && words.outcome != "fallback" {
            why.push(format!(
                "the operator's pool {pinned} is not up, so {answered} answers while the failover stays in force"
            ));
        }
    }
    for c in &decision.candidates {
        let Some(permille) = health.degraded(c.endpoint) else {
            continue;
        };
        let label = config.endpoint_label(c.endpoint);
        let seen = status
            .get(label.as_str())
            .map(|k| {
                let by: Vec<&str> = k
                    .votes
                    .iter()
                    .filter(|(_, v)| v.starts_with("degraded"))
                    .map(|(name, _)| name.as_str())
                    .collect();
                let local = k.local.as_ref().and_then(|l| l.degraded.as_deref());
                match (by.is_empty(), local) {
                    (true, None) => String::new(),
                    (false, None) => format!(" (slow or flaky for {})", by.join(", ")),
                    (true, Some(why)) => format!(" ({why})"),
                    (false, Some(why)) => format!(" ({why}; degraded for {})", by.join(", ")),
                }
            })
            .unwrap_or_default();
        let factor = f64::from(permille) / 1000.0;
        why.push(if record.selection == Selection::Multivalue {
            format!("{label} is degraded{seen}: it is in {factor} of the answers")
        } else {
            format!("{label} is degraded{seen}: answered with its weight × {factor}")
        });
    }
    let spill = decision.shares.as_ref().map(|s| s.summary(config));
    if let Some(line) = &spill {
        why.push(line.clone());
    }
    let shares = decision
        .shares
        .iter()
        .flat_map(|s| {
            s.pools.iter().map(|p| ShareExplanation {
                pool: config.pool(p.pool).name.clone(),
                share: p.share,
                load: if s.spill { p.share * s.demand } else { 0.0 },
                limit: p.limit,
                capacity: p.capacity,
                trickle: p.trickle,
                dial: p.dial,
                candidates: p
                    .candidates
                    .iter()
                    .map(|c| config.endpoint(c.endpoint).target.to_string())
                    .collect(),
            })
        })
        .collect();
    let (ttl_reason, ttl) = ttl_reason(config, record, health, pools, &decision);
    why.push(ttl_reason.clone());
    RecordExplanation {
        name: record.name.clone(),
        record_type: record.record_type.to_string(),
        policy: policy_name.to_owned(),
        geo,
        failed_over_to,
        pools: explained_pools,
        outcome: words.outcome.to_owned(),
        cause: words.cause,
        pool: words.pool,
        candidates: decision
            .candidates
            .iter()
            .map(|c| config.endpoint(c.endpoint).target.to_string())
            .collect(),
        max_answers: decision.max_answers,
        weighted: decision.weighted,
        ttl,
        ttl_reason,
        why,
        spill,
        shares,
        overloaded: decision.shares.as_ref().is_some_and(|s| s.overloaded),
        latency,
    }
}

/// A latency record's table for the client's region: `from eu: web-eu 11 ms,
/// web-us 92 ms → web-eu`, from the RTTs the server holds now and the choice the
/// answers were built with.
fn latency_line(
    config: &Config,
    health: &HealthSnapshot,
    r: usize,
    region: Option<crate::model::RegionIndex>,
    rtts: &[EndpointRtt],
    settings: &crate::config::LatencySteering,
) -> String {
    use crate::policy::latency;
    let mut table = latency::RttTable::default();
    for rtt in rtts {
        if let (Some(v), Some(e)) = (
            config.vantage_by_name(&rtt.vantage),
            config.endpoint_by_label(&rtt.endpoint),
        ) {
            table.set(
                v,
                e,
                Some((rtt.rtt_ms * 1000.0).round() as u32),
                Default::default(),
            );
        }
    }
    let record = &config.records[r];
    let options = latency::options(config, record, region, health, &table);
    let vantages = latency::vantages_for(config, region);
    let region_name = |r: Option<crate::model::RegionIndex>| {
        r.map_or("no region".to_owned(), |r| {
            config.regions[usize::from(r.0)].name.clone()
        })
    };
    let own = region.is_some_and(|r| config.vantages.iter().any(|v| v.region == Some(r)));
    let from = if own || vantages.is_empty() {
        region_name(region)
    } else {
        format!(
            "{} (no vantage point there: {}'s)",
            region_name(region),
            region_name(config.geo.default_region)
        )
    };
    let cells: Vec<String> = options
        .iter()
        .map(|o| {
            let name = &config.pool(o.pool).name;
            match (o.up, o.rtt_us) {
                (false, _) => format!("{name} down"),
                (true, Some(us)) => format!("{name} {} ms", number(f64::from(us) / 1000.0)),
                (true, None) => format!("{name} not measured"),
            }
        })
        .collect();
    let slot = latency::slot_of(config, region);
    let chosen = health.latency_choice(RecordIndex(r as u32), slot);
    let mut line = format!(
        "latency: from {from}: {} → {}",
        cells.join(", "),
        chosen.map_or("failover order (no choice yet)".to_owned(), |p| config
            .pool(p)
            .name
            .clone())
    );
    if let Some(best) = latency::best(&options).filter(|b| Some(*b) != chosen) {
        line.push_str(&format!(
            "; {} is faster now and takes over once it stays faster by more than {} ms and {}% for {} s",
            config.pool(best).name,
            settings.min_gain.as_millis(),
            number(settings.min_gain_percent),
            settings.hold.as_secs()
        ));
    }
    line
}

/// A number as explain shows it: whole when it is, else one decimal.
fn number(value: f64) -> String {
    if (value - value.round()).abs() < 0.05 {
        format!("{}", value.round())
    } else {
        format!("{value:.1}")
    }
}

/// What an operator's dial of `pool` does to a record of `selection`.
fn dial_sentence(pool: &str, dial: u8, selection: Selection) -> String {
    let how = match selection {
        Selection::Failover | Selection::Weighted => {
            "it takes that much of the answers it would otherwise get (the shares line below)"
        }
        Selection::Multivalue => "each of its endpoints is in that many of the answers",
        Selection::Primary => {
            "a primary record follows its checks, so the dial does not change its answers"
        }
    };
    format!(
        "pool {pool} is dialled to {dial}% by an operator: {how}; `failoverd ctl release {pool}` ends the dial"
    )
}

fn explain_endpoint(
    config: &Config,
    health: &HealthSnapshot,
    e: EndpointIndex,
    status: &BTreeMap<&str, &EndpointStatus>,
    what_if: bool,
) -> EndpointExplanation {
    let label = config.endpoint_label(e);
    let known = status.get(label.as_str());
    let h = health.get(e).copied().unwrap_or(EndpointHealth {
        state: HealthState::Up,
        source: HealthSource::Assumed,
    });
    let drained = config.endpoint(e).weight.is_drained() || health.drained(e);
    let assumed = what_if
        && h.source == HealthSource::Assumed
        && known.is_some_and(|k| k.source != HealthSource::Assumed || k.state != h.state);
    EndpointExplanation {
        target: config.endpoint(e).target.to_string(),
        state: h.state.to_string(),
        source: if assumed {
            "what-if".to_owned()
        } else {
            format!("{:?}", h.source).to_lowercase()
        },
        usable: h.state.is_up() && !drained,
        drained,
        votes: known.map(|k| k.votes.clone()).unwrap_or_default(),
        local_probe: known.and_then(|k| k.local.as_ref()).map(|p| {
            let abstaining = p
                .abstained
                .as_ref()
                .filter(|_| p.abstaining)
                .map(|reason| format!("; abstaining since: {reason}"))
                .unwrap_or_default();
            format!(
                "{}: {} ({} ms){abstaining}",
                if p.ok { "ok" } else { "failed" },
                p.reason,
                p.latency_ms
            )
        }),
        damped: known
            .and_then(|k| k.damping.as_ref())
            .is_some_and(|d| d.suppressed),
        share: health.share(e),
        degraded: health
            .degraded(e)
            .map(|permille| f64::from(permille) / 1000.0),
        endpoint: label,
    }
}

/// The pool of a decision's first candidate (fail-open of a failover record answers
/// one pool).
fn names_of_candidates_pool(config: &Config, decision: &Decision) -> String {
    decision
        .candidates
        .first()
        .map(|c| {
            format!(
                "pool {}",
                config.pool(config.endpoint(c.endpoint).pool).name
            )
        })
        .unwrap_or_else(|| "nothing".to_owned())
}

/// Why a gate is open or holds its pool, with the gate endpoints' probe reasons.
fn gate_sentence(pool: &str, gate: &GateExplanation) -> String {
    let reasons: Vec<String> = gate
        .endpoints
        .iter()
        .map(|e| {
            let why = e
                .local_probe
                .clone()
                .or_else(|| e.votes.values().next().cloned())
                .unwrap_or_else(|| e.source.clone());
            format!("{} {} ({why})", e.endpoint, e.state)
        })
        .collect();
    let reasons = reasons.join("; ");
    if gate.overridden {
        format!(
            "the lag gate {} of pool {pool} is closed ({reasons}), but an operator failed the record over to {pool}: the manual failover overrides the gate",
            gate.pool
        )
    } else if gate.open {
        format!(
            "the lag gate {} of pool {pool} is open: {reasons}",
            gate.pool
        )
    } else {
        format!(
            "the lag gate {} of pool {pool} is closed, so traffic does not move to {pool} (RPO guard): {reasons}",
            gate.pool
        )
    }
}

fn names(config: &Config, pools: &[crate::model::PoolIndex]) -> String {
    let names: Vec<&str> = pools
        .iter()
        .map(|&p| config.pool(p).name.as_str())
        .collect();
    names.join(", ")
}

fn outcome_sentence(
    config: &Config,
    record: &DynamicRecord,
    policy_name: &str,
    decision: &Decision,
) -> String {
    let count = decision.candidates.len();
    let drawn = if count > usize::from(decision.max_answers) {
        format!(
            "; each answer holds {} of them, drawn {}",
            decision.max_answers,
            if decision.weighted {
                "by weight"
            } else {
                "uniformly"
            }
        )
    } else {
        String::new()
    };
    match decision.outcome {
        Outcome::Healthy { pool: Some(pool) } => format!(
            "{policy_name}: the first pool that is up is {}; its {count} usable endpoints are answered{drawn}",
            config.pool(pool).name
        ),
        Outcome::Healthy { pool: None } => format!(
            "{policy_name}: the usable endpoints of every pool that is up are answered ({count}){drawn}"
        ),
        Outcome::Degraded => format!(
            "no pool has enough usable endpoints: only the {count} endpoints that are up are answered (degraded){drawn}"
        ),
        Outcome::FailOpen if record.selection == Selection::Primary => {
            "no endpoint claims primary (a promotion under way, or all down): fail-open keeps answering the last agreed primary".to_owned()
        }
        Outcome::FailOpen if decision.pools.iter().any(|v| v.held()) => format!(
            "no pool that may take traffic is up: all-down mode fail-open answers {} as if healthy, leaving out the pools their gate holds ({count}){drawn}",
            names_of_candidates_pool(config, decision)
        ),
        Outcome::FailOpen => format!(
            "nothing is up: all-down mode fail-open answers every endpoint but those an operator forced down ({count}){drawn}"
        ),
        Outcome::Fallback { pool } => format!(
            "nothing is up: all-down mode fallback answers pool {}",
            config.pool(pool).name
        ),
        Outcome::NoData if record.selection == Selection::Primary => {
            "no endpoint claims primary and no agreed primary is known (or all-down mode nodata): no records".to_owned()
        }
        Outcome::NoData if decision.pools.iter().any(|v| v.held()) => {
            "nothing may be answered: the pools that are not held by their gate are down and all-down mode answers none of them".to_owned()
        }
        Outcome::NoData => match record.all_down {
            AllDown::NoData => "nothing is up: all-down mode nodata answers no records".to_owned(),
            _ => "nothing can be answered: every endpoint is forced down by an operator".to_owned(),
        },
        Outcome::Primary { endpoint } => format!(
            "primary: exactly one endpoint passes its primary check, {}; it is answered",
            config.endpoint_label(endpoint)
        ),
        Outcome::Conflict { held } => match held {
            Some(e) => format!(
                "more than one endpoint claims primary (split brain): on_conflict = \"hold\" keeps answering the last agreed primary {}, never both",
                config.endpoint_label(e)
            ),
            None => format!(
                "more than one endpoint claims primary (split brain): {} — no records (fail closed)",
                match record.on_conflict {
                    crate::config::OnConflict::None => "on_conflict = \"none\"",
                    crate::config::OnConflict::Hold => "no agreed primary is known to hold",
                }
            ),
        },
    }
}

/// The TTL and why, following the policy's rule (see [`crate::policy`]).
fn ttl_reason(
    config: &Config,
    record: &DynamicRecord,
    health: &HealthSnapshot,
    pools: &[crate::model::PoolIndex],
    decision: &Decision,
) -> (String, u32) {
    let ttl = decision.ttl.0;
    if decision.outcome.is_all_down() {
        return (
            format!("TTL {ttl} s: the all-down TTL, so recovery spreads fast"),
            ttl,
        );
    }
    let doubt = pools
        .iter()
        .flat_map(|&p| config.pool(p).endpoints.iter())
        .filter_map(|&e| health.doubt(e).map(|d| (d, e)))
        .min();
    match doubt {
        Some((seconds, e)) if ttl < record.ttl.0 => (
            format!(
                "TTL {ttl} s, not {}: {} is in doubt and may change in {seconds} s (clamped to min_ttl {})",
                record.ttl.0,
                config.endpoint_label(e),
                record.min_ttl.0
            ),
            ttl,
        ),
        _ => (format!("TTL {ttl} s: the record's ttl"), ttl),
    }
}
