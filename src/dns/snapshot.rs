//! The immutable state every answer is computed from, swapped atomically on change.
//!
//! ```text
//!  Snapshot ─┬─ zones (Arc, rebuilt on reload) ── static tails: each static RRset's
//!            │                                   answer pre-encoded for its own name
//!            ├─ health (Arc)
//!            └─ dynamic answers (rebuilt when health changes): per record, per pool
//!               list (one, or one per geo region), the policy decision and the
//!               answers it can produce, each pre-encoded; one is picked per query
//! ```
//!
//! Readers take an `Arc` from [`SharedSnapshot`] (lock-free) and never wait on writers.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::resolve::{self, Client};
use super::wire::HEADER_LEN;
use super::writer::{Header, Owner, Writer};
use crate::config::Config;
use crate::health::HealthSnapshot;
use crate::model::{
    DynamicType, EndpointIndex, EndpointTarget, RandomSource, RecordIndex, RegionIndex, SplitMix64,
};
use crate::policy::{self, Decision, GeoMap};
use crate::zone::{PackedRdata, RrSetId, ZoneSet, name, store::label_starts};

/// Samples drawn when a weighted answer holds several of many endpoints.
const SAMPLED_VARIANTS: usize = 64;

/// Pre-encoded answer/authority/additional sections and their counts.
#[derive(Clone, Copy, Debug)]
pub struct Cached<'s> {
    /// The encoded sections.
    pub bytes: &'s [u8],
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records.
    pub arcount: u16,
}

#[derive(Clone, Copy, Debug, Default)]
struct TailSpan {
    start: u32,
    len: u16,
    ancount: u16,
    nscount: u8,
    arcount: u8,
    present: bool,
}

/// Pre-encoded answers for every static RRset of one zone, indexed by [`RrSetId`].
#[derive(Clone, Debug, Default)]
pub struct StaticTails {
    spans: Vec<TailSpan>,
    bytes: Vec<u8>,
}

/// One answer a dynamic record can give.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Endpoints, in answer order.
    pub endpoints: Vec<EndpointIndex>,
    rdata: Box<[u8]>,
    count: u16,
    tail: Box<[u8]>,
    ancount: u16,
}

impl Variant {
    /// The records' rdata.
    pub fn rdata(&self) -> PackedRdata<'_> {
        PackedRdata::new(&self.rdata, self.count)
    }

    /// The pre-encoded answer for a query of the record's own name and type.
    pub fn cached(&self) -> Option<Cached<'_>> {
        Some(Cached {
            bytes: &self.tail,
            ancount: self.ancount,
            nscount: 0,
            arcount: 0,
        })
    }
}

/// The answers of one record for one pool list.
#[derive(Clone, Debug)]
pub struct VariantSet {
    /// The policy decision (why these answers).
    pub decision: Decision,
    /// TTL of the answers.
    pub ttl: u32,
    /// Possible answers; empty means NODATA.
    pub variants: Vec<Variant>,
    /// Cumulative pick weights (empty: uniform).
    cumulative: Vec<u64>,
}

impl VariantSet {
    /// Picks one answer (None means NODATA).
    pub fn pick(&self, rng: &mut dyn RandomSource) -> Option<&Variant> {
        match self.variants.len() {
            0 => None,
            1 => self.variants.first(),
            n if self.cumulative.is_empty() => self.variants.get(rng.below(n as u64) as usize),
            _ => {
                let total = *self.cumulative.last()?;
                let point = rng.below(total.max(1));
                let i = self.cumulative.partition_point(|&c| c <= point);
                self.variants.get(i.min(self.variants.len() - 1))
            }
        }
    }
}

/// Everything a dynamic record can answer right now.
#[derive(Clone, Debug)]
pub struct DynamicAnswer {
    /// The record.
    pub record: RecordIndex,
    /// RR type code answered.
    pub rtype: u16,
    /// Set index per region (geo records only).
    region_sets: Vec<usize>,
    default_set: usize,
    /// One set per distinct pool list.
    pub sets: Vec<VariantSet>,
}

impl DynamicAnswer {
    /// Whether the answer depends on the client's location.
    pub fn is_client_dependent(&self) -> bool {
        self.sets.len() > 1 || !self.region_sets.is_empty()
    }

    /// Names of the regions served by set `index` (`default` included); empty for
    /// records that are not geo.
    pub fn regions_of_set(&self, index: usize, config: &Config) -> Vec<String> {
        if self.region_sets.is_empty() {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .region_sets
            .iter()
            .enumerate()
            .filter(|(_, set)| **set == index)
            .map(|(r, _)| config.regions[r].name.clone())
            .collect();
        if self.default_set == index {
            names.push("default".to_owned());
        }
        names
    }

    /// The set for a client region (`None`: the default list).
    pub fn set_for(&self, region: Option<RegionIndex>) -> &VariantSet {
        let index = region
            .and_then(|r| self.region_sets.get(usize::from(r.0)))
            .copied()
            .unwrap_or(self.default_set);
        &self.sets[index]
    }
}

/// Transport limits and protocol switches.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest UDP response to EDNS clients.
    pub max_udp_payload: u16,
    /// Whether ECS is honoured.
    pub ecs: bool,
}

/// Static data that changes only when zones are reloaded.
#[derive(Debug)]
pub struct ZoneData {
    /// The zones.
    pub zones: Arc<ZoneSet>,
    /// Their pre-encoded answers, parallel to `zones.zones()`.
    pub tails: Vec<StaticTails>,
}

/// The state answers are computed from.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every swap.
    pub generation: u64,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Zones and their pre-encoded answers.
    pub data: Arc<ZoneData>,
    /// The zones (shortcut into `data`).
    pub zones: Arc<ZoneSet>,
    /// Endpoint health the dynamic answers were built from.
    pub health: Arc<HealthSnapshot>,
    /// Client placement.
    pub geo: Arc<GeoMap>,
    /// Per dynamic record (indexed by [`RecordIndex`]); shared between snapshots
    /// while a record's inputs do not change.
    pub dynamic: Vec<Arc<DynamicAnswer>>,
    /// Transport limits.
    pub limits: Limits,
}

impl Snapshot {
    /// Builds a snapshot from scratch: pre-encodes every static answer, then the
    /// dynamic ones.
    pub fn build(
        config: Arc<Config>,
        zones: ZoneSet,
        health: HealthSnapshot,
        generation: u64,
    ) -> Self {
        let zones = Arc::new(zones);
        let geo = Arc::new(GeoMap::new(&config));
        let limits = Limits {
            max_udp_payload: config.server.max_udp_payload,
            ecs: config.geo.ecs,
        };
        let mut snapshot = Self {
            generation,
            config,
            data: Arc::new(ZoneData {
                zones: zones.clone(),
                tails: Vec::new(),
            }),
            zones,
            health: Arc::new(health),
            geo,
            dynamic: Vec::new(),
            limits,
        };
        let tails: Vec<StaticTails> = (0..snapshot.zones.zones().len())
            .map(|i| encode_static_tails(&snapshot, i))
            .collect();
        snapshot.data = Arc::new(ZoneData {
            zones: snapshot.zones.clone(),
            tails,
        });
        snapshot.dynamic = (0..snapshot.config.records.len())
            .map(|r| {
                Arc::new(build_record(
                    &snapshot.config,
                    &snapshot.health,
                    generation,
                    r,
                ))
            })
            .collect();
        snapshot
    }

    /// A new snapshot with different health: zones and static answers are shared, and
    /// so is every dynamic record none of whose endpoints' health changed — only the
    /// touched records are re-encoded.
    pub fn with_health(&self, health: HealthSnapshot, generation: u64) -> Self {
        let config = &self.config;
        let changed: Vec<bool> = (0..config.endpoints.len())
            .map(|i| {
                let e = EndpointIndex(i as u32);
                self.health.get(e) != health.get(e)
                    || self.health.doubt(e) != health.doubt(e)
                    || self.health.share(e) != health.share(e)
                    || self.health.drained(e) != health.drained(e)
            })
            .collect();
        let dynamic = config
            .records
            .iter()
            .enumerate()
            .map(|(r, record)| {
                let index = RecordIndex(r as u32);
                let pinned = self.health.pin(index) != health.pin(index)
                    || self.health.last_primary(index) != health.last_primary(index);
                let touched = pinned
                    || record_pools(record).any(|pool| {
                        config
                            .pool(pool)
                            .endpoints
                            .iter()
                            .any(|e| changed[e.0 as usize])
                    });
                match self.dynamic.get(r) {
                    Some(answer) if !touched => answer.clone(),
                    _ => Arc::new(build_record(config, &health, generation, r)),
                }
            })
            .collect();
        Self {
            generation,
            config: self.config.clone(),
            data: self.data.clone(),
            zones: self.zones.clone(),
            dynamic,
            health: Arc::new(health),
            geo: self.geo.clone(),
            limits: self.limits,
        }
    }

    /// A new snapshot whose zones at the given indices carry other SOA serials (zone
    /// transfers, [`super::xfr`]): those zones are copied with the serial patched and
    /// their static answers re-encoded; everything else is shared.
    pub fn with_zone_serials(&self, serials: &[(usize, u32)]) -> Self {
        let mut zones = ZoneSet::clone_of(&self.zones);
        for &(index, serial) in serials {
            if let Some(zone) = self.zones.zones().get(index) {
                zones = zones.with_zone(index, Arc::new(zone.with_soa_serial(serial)));
            }
        }
        let zones = Arc::new(zones);
        let mut snapshot = Self {
            generation: self.generation,
            config: self.config.clone(),
            data: self.data.clone(),
            zones: zones.clone(),
            health: self.health.clone(),
            geo: self.geo.clone(),
            dynamic: self.dynamic.clone(),
            limits: self.limits,
        };
        let mut tails = self.data.tails.clone();
        for &(index, _) in serials {
            if let Some(slot) = tails.get_mut(index) {
                *slot = encode_static_tails(&snapshot, index);
            }
        }
        snapshot.data = Arc::new(ZoneData { zones, tails });
        snapshot
    }

    /// The pre-encoded answer of a static RRset, if one was built.
    pub fn static_tail(&self, zone_index: usize, rrset: RrSetId) -> Option<Cached<'_>> {
        let tails = self.data.tails.get(zone_index)?;
        let span = tails.spans.get(rrset.0 as usize)?;
        if !span.present {
            return None;
        }
        let start = span.start as usize;
        Some(Cached {
            bytes: &tails.bytes[start..start + usize::from(span.len)],
            ancount: span.ancount,
            nscount: u16::from(span.nscount),
            arcount: u16::from(span.arcount),
        })
    }

    /// The dynamic answers of a record.
    pub fn dynamic_answer(&self, record: RecordIndex) -> Option<&DynamicAnswer> {
        self.dynamic.get(record.0 as usize).map(|a| a.as_ref())
    }
}

/// Encodes the answer sections of `resolution` (no header, question or OPT).
fn encode_sections(
    writer: &mut Writer<'_>,
    resolution: &resolve::Resolution<'_>,
) -> (u16, u16, u16) {
    let mut counts = [0u16; 3];
    for (i, section) in [
        &resolution.answer[..],
        &resolution.authority[..],
        &resolution.additional[..],
    ]
    .into_iter()
    .enumerate()
    {
        for rr in section {
            for rdata in rr.rdata.iter() {
                writer.record(rr.owner, rr.rtype, rr.ttl, rdata);
                counts[i] += 1;
            }
        }
    }
    (counts[0], counts[1], counts[2])
}

/// Pre-encodes, for every authoritative static RRset, the sections answering a query
/// for exactly its owner and type, with the same resolver the query path uses.
fn encode_static_tails(snapshot: &Snapshot, zone_index: usize) -> StaticTails {
    let zone = &snapshot.zones.zones()[zone_index];
    let mut tails = StaticTails {
        spans: vec![TailSpan::default(); zone.rrset_count()],
        bytes: Vec::new(),
    };
    let mut buf = Vec::with_capacity(512);
    let mut question = Vec::with_capacity(260);
    // Static answers never consult the client or randomness.
    let client = Client {
        addr: std::net::IpAddr::from([0, 0, 0, 0]),
        subnet: None,
    };
    let mut rng = SplitMix64::new(0);
    for node in zone.nodes() {
        if node.cut().is_some() || node.is_empty() {
            continue;
        }
        let starts = label_starts(node.name());
        for (id, set) in node.rrsets() {
            question.clear();
            question.extend_from_slice(node.name());
            question.extend_from_slice(&set.rtype.to_be_bytes());
            question.extend_from_slice(&1u16.to_be_bytes());
            let resolution = resolve::resolve(
                snapshot,
                zone_index,
                node.name(),
                &starts,
                set.rtype,
                &client,
                &mut rng,
            );
            let mut writer = Writer::new(&mut buf, &question, node.name(), &starts);
            let (an, ns, ar) = encode_sections(&mut writer, &resolution);
            writer.finish(Header::default());
            let bytes = &buf[HEADER_LEN + question.len()..];
            if bytes.len() > usize::from(u16::MAX) || ns > 255 || ar > 255 {
                continue;
            }
            tails.spans[id.0 as usize] = TailSpan {
                start: tails.bytes.len() as u32,
                len: bytes.len() as u16,
                ancount: an,
                nscount: ns as u8,
                arcount: ar as u8,
                present: true,
            };
            tails.bytes.extend_from_slice(bytes);
        }
    }
    tails.bytes.shrink_to_fit();
    tails
}

/// Every pool a record's answers can depend on (its lists and its fallback pool).
fn record_pools(
    record: &crate::config::DynamicRecord,
) -> impl Iterator<Item = crate::model::PoolIndex> + '_ {
    let fallback = match record.all_down {
        crate::config::AllDown::Fallback(pool) => Some(pool),
        _ => None,
    };
    record
        .pools
        .all_lists()
        .into_iter()
        .flat_map(|list| list.iter().copied())
        .chain(fallback)
        .chain(record.gates.iter().map(|g| g.gate))
}

/// Evaluates record `r` against `health` and pre-encodes its answers.
fn build_record(
    config: &Config,
    health: &HealthSnapshot,
    generation: u64,
    r: usize,
) -> DynamicAnswer {
    let record = &config.records[r];
    let record_index = RecordIndex(r as u32);
    let mut rng = SplitMix64::new(generation ^ (r as u64).wrapping_mul(0x9E37_79B9));
    let qname = name::wire_from_text(&record.name).unwrap_or_else(|| vec![0]);
    let make_set = |pools: &[crate::model::PoolIndex], rng: &mut SplitMix64| {
        let state = policy::record_state(health, record_index);
        let decision = policy::decide_record(config, record, pools, state, health);
        variant_set(config, record.record_type, &qname, decision, rng)
    };
    match &record.pools {
        crate::config::PoolChoice::Fixed(pools) => DynamicAnswer {
            record: record_index,
            rtype: record.record_type.code(),
            region_sets: Vec::new(),
            default_set: 0,
            sets: vec![make_set(pools, &mut rng)],
        },
        crate::config::PoolChoice::Geo { by_region, default } => {
            let mut lists: Vec<&[crate::model::PoolIndex]> = Vec::new();
            let default_set = list_index(&mut lists, default);
            let region_sets: Vec<usize> = by_region
                .iter()
                .map(|list| {
                    list.as_deref()
                        .map_or(default_set, |l| list_index(&mut lists, l))
                })
                .collect();
            let sets = lists.iter().map(|l| make_set(l, &mut rng)).collect();
            DynamicAnswer {
                record: record_index,
                rtype: record.record_type.code(),
                region_sets,
                default_set,
                sets,
            }
        }
    }
}

/// Index of `list` in `lists`, adding it if new.
fn list_index<'a>(
    lists: &mut Vec<&'a [crate::model::PoolIndex]>,
    list: &'a [crate::model::PoolIndex],
) -> usize {
    lists.iter().position(|l| *l == list).unwrap_or_else(|| {
        lists.push(list);
        lists.len() - 1
    })
}

/// The answers `candidates` can produce under `decision`'s rules, with pick weights.
fn answer_orders(
    decision: &Decision,
    candidates: &[policy::Candidate],
    max: usize,
    rng: &mut SplitMix64,
) -> Vec<(Vec<EndpointIndex>, u64)> {
    let n = candidates.len();
    let weight_of = |i: usize| {
        if decision.weighted {
            u64::from(candidates[i].weight.max(1))
        } else {
            1
        }
    };
    let ramping = !decision.weighted && candidates.iter().any(|c| c.share < 1000);
    let mut orders: Vec<(Vec<EndpointIndex>, u64)> = Vec::new();
    if n == 0 {
        // NODATA
    } else if ramping {
        // Multivalue with endpoints on a slow start: each sampled answer holds such an
        // endpoint with its share's probability.
        for s in 0..SAMPLED_VARIANTS {
            let kept: Vec<EndpointIndex> = candidates
                .iter()
                .filter(|c| c.share >= 1000 || rng.below(1000) < u64::from(c.share))
                .map(|c| c.endpoint)
                .collect();
            let pool: Vec<EndpointIndex> = if kept.is_empty() {
                candidates.iter().map(|c| c.endpoint).collect()
            } else {
                kept
            };
            let order = (0..pool.len().min(max))
                .map(|k| pool[(s + k) % pool.len()])
                .collect();
            orders.push((order, 1));
        }
    } else if n <= max {
        // Everything fits: one answer per rotation, so each endpoint leads as often
        // as its weight says.
        for r in 0..n {
            let order = (0..n).map(|k| candidates[(r + k) % n].endpoint).collect();
            orders.push((order, weight_of(r)));
        }
    } else if max == 1 {
        for (i, c) in candidates.iter().enumerate() {
            orders.push((vec![c.endpoint], weight_of(i)));
        }
    } else {
        let sampler = Decision {
            candidates: candidates.to_vec(),
            handover: None,
            ..decision.clone()
        };
        let mut out = Vec::new();
        for _ in 0..SAMPLED_VARIANTS {
            sampler.sample(rng, &mut out);
            orders.push((out.clone(), 1));
        }
    }
    orders
}

/// Turns a decision into the answers it can produce, each pre-encoded.
fn variant_set(
    config: &Config,
    record_type: DynamicType,
    qname: &[u8],
    decision: Decision,
    rng: &mut SplitMix64,
) -> VariantSet {
    let ttl = decision.ttl.0;
    let max = usize::from(decision.max_answers);
    let mut orders = answer_orders(&decision, &decision.candidates, max, rng);
    if let Some(handover) = &decision.handover {
        // Slow start of a failover pool: its answers get `share` of the picks, the
        // pool that served during the outage the rest.
        let theirs = answer_orders(&decision, &handover.candidates, max, rng);
        let total = |o: &[(Vec<EndpointIndex>, u64)]| o.iter().map(|(_, w)| *w).sum::<u64>().max(1);
        let (ours_total, theirs_total) = (total(&orders), total(&theirs));
        let share = u64::from(handover.share);
        for (_, w) in &mut orders {
            *w *= share * theirs_total;
        }
        orders.extend(
            theirs
                .into_iter()
                .map(|(o, w)| (o, w * (1000 - share) * ours_total)),
        );
    }
    let uniform = orders
        .iter()
        .all(|(_, w)| *w == orders.first().map_or(1, |o| o.1));
    let mut cumulative = Vec::new();
    if !uniform {
        let mut total = 0;
        for (_, w) in &orders {
            total += w;
            cumulative.push(total);
        }
    }
    let starts = label_starts(qname);
    let mut question = qname.to_vec();
    question.extend_from_slice(&record_type.code().to_be_bytes());
    question.extend_from_slice(&1u16.to_be_bytes());
    let mut buf = Vec::with_capacity(512);
    let variants = orders
        .into_iter()
        .map(|(endpoints, _)| {
            let mut rdata = Vec::new();
            for &e in &endpoints {
                match &config.endpoint(e).target {
                    EndpointTarget::Address(std::net::IpAddr::V4(a)) => {
                        crate::zone::store::pack_rdata(&mut rdata, &a.octets());
                    }
                    EndpointTarget::Address(std::net::IpAddr::V6(a)) => {
                        crate::zone::store::pack_rdata(&mut rdata, &a.octets());
                    }
                    EndpointTarget::Host(host) => {
                        let wire = name::wire_from_text(host).unwrap_or_else(|| vec![0]);
                        crate::zone::store::pack_rdata(&mut rdata, &wire);
                    }
                }
            }
            let count = endpoints.len() as u16;
            let mut writer = Writer::new(&mut buf, &question, qname, &starts);
            for one in PackedRdata::new(&rdata, count).iter() {
                writer.record(Owner::Question, record_type.code(), ttl, one);
            }
            writer.finish(Header::default());
            let tail = buf[HEADER_LEN + question.len()..]
                .to_vec()
                .into_boxed_slice();
            Variant {
                endpoints,
                rdata: rdata.into_boxed_slice(),
                count,
                tail,
                ancount: count,
            }
        })
        .collect();
    VariantSet {
        decision,
        ttl,
        variants,
        cumulative,
    }
}

/// The current snapshot, shared by every listener.
#[derive(Clone, Debug)]
pub struct SharedSnapshot(Arc<ArcSwap<Snapshot>>);

impl SharedSnapshot {
    /// Shares an initial snapshot.
    pub fn new(snapshot: Snapshot) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(snapshot)))
    }

    /// The current snapshot (lock-free).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Publishes a new snapshot.
    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}
