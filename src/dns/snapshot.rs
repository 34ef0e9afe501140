//! Building snapshots (static answers pre-encoded at load, dynamic records' variants
//! when health changes) and publishing them: [`SharedSnapshot`] swaps them
//! atomically; readers take one lock-free and never wait on writers.

use std::sync::Arc;

use arc_swap::ArcSwap;

use std::collections::HashMap;

use super::answers::{
    BuiltVariants, DecisionClasses, DynamicAnswer, INTERNED, Interned, Limits, OutcomeKey,
    RECENT_OUTCOMES, Snapshot, StaticTails, TailPatch, TailSpan, TrickleCount, Variant, VariantSet,
    ZoneData,
};
use super::resolve::{self, Client};
use super::wire::HEADER_LEN;
use super::writer::{Header, Owner, Writer};
use crate::config::Config;
use crate::dnssec::{DnssecError, SignedZone, Signing};
use crate::health::HealthSnapshot;
use crate::model::{
    DynamicType, EndpointIndex, EndpointTarget, RandomSource, RecordIndex, SplitMix64,
};
use crate::policy::{self, Decision, GeoMap};
use crate::zone::{PackedRdata, RrSetId, ZoneSet, name, store::label_starts};

/// Samples drawn when a weighted answer holds several of many endpoints.
const SAMPLED_VARIANTS: usize = 64;

impl Snapshot {
    /// Builds a snapshot from scratch: pre-encodes every static answer, then the
    /// dynamic ones. Zones are not signed (see [`Self::build_signed`]).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn build(
        config: Arc<Config>,
        zones: ZoneSet,
        health: HealthSnapshot,
        generation: u64,
    ) -> Self {
        Self::build_inner(config, zones, Vec::new(), health, generation)
    }

    /// [`Self::build`], signing the zones `signing` has keys for at its time: apex
    /// DNSKEY/CDS/CDNSKEY/NSEC3PARAM, an RRSIG per static RRset, the denial chain,
    /// and every dynamic variant's RRSIG. Heavy: run it off the async workers.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn build_signed(
        config: Arc<Config>,
        zones: ZoneSet,
        health: HealthSnapshot,
        generation: u64,
        signing: Option<&Signing>,
    ) -> Result<Self, DnssecError> {
        let Some(signing) = signing else {
            return Ok(Self::build(config, zones, health, generation));
        };
        let (zones, signed) = crate::dnssec::signed::sign_zones(&zones, signing)?;
        Ok(Self::build_inner(config, zones, signed, health, generation))
    }

    /// The same answers re-signed at `now` (signature refresh, key events): the
    /// zones' DNSSEC apex RRsets, every RRSIG and the chain are made again and every
    /// answer re-encoded. A snapshot of unsigned zones is returned as a copy.
    pub(crate) fn resigned(&self, now: u64, generation: u64) -> Result<Self, DnssecError> {
        let ring = self
            .data
            .signed
            .iter()
            .flatten()
            .next()
            .map(|s| s.ring().clone());
        let zones = ZoneSet::clone_of(&self.zones);
        let health = (*self.health).clone();
        let signing = ring.map(|keys| Signing { keys, now });
        Self::build_signed(
            self.config.clone(),
            zones,
            health,
            generation,
            signing.as_ref(),
        )
    }

    /// The key ring the zones are signed with, if any is.
    pub(crate) fn signed_zone_ring(&self) -> Option<&Arc<crate::dnssec::KeyRing>> {
        self.data.signed.iter().flatten().next().map(|s| s.ring())
    }

    /// When the signatures were made (the oldest signing of any zone), if signed.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn signed_at(&self) -> Option<u64> {
        self.data.signed.iter().flatten().map(|s| s.signed_at).min()
    }

    /// The signatures of zone `zone_index`, if it is signed.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn signed_zone(&self, zone_index: usize) -> Option<&SignedZone> {
        self.data.signed.get(zone_index)?.as_ref()
    }

    fn build_inner(
        config: Arc<Config>,
        zones: ZoneSet,
        signed: Vec<Option<SignedZone>>,
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
                tails_dnssec: Vec::new(),
                signed,
            }),
            zones,
            health: Arc::new(health),
            geo,
            dynamic: Vec::new(),
            limits,
            classes: Arc::new(DecisionClasses::default()),
        };
        snapshot.classes = Arc::new(decision_classes(&snapshot.config));
        let count = snapshot.zones.zones().len();
        let tails: Vec<StaticTails> = (0..count)
            .map(|i| encode_static_tails(&snapshot, i, false))
            .collect();
        let tails_dnssec: Vec<StaticTails> = (0..count)
            .map(|i| match snapshot.signed_zone(i) {
                Some(_) => encode_static_tails(&snapshot, i, true),
                None => StaticTails::default(),
            })
            .collect();
        let signed = Arc::get_mut(&mut snapshot.data)
            .map(|d| std::mem::take(&mut d.signed))
            .unwrap_or_default();
        snapshot.data = Arc::new(ZoneData {
            zones: snapshot.zones.clone(),
            tails,
            tails_dnssec,
            signed,
        });
        let mut shared = SharedDecisions::default();
        snapshot.dynamic = (0..snapshot.config.records.len())
            .map(|r| {
                Arc::new(build_record(
                    &snapshot.config,
                    &snapshot.health,
                    generation,
                    r,
                    &snapshot,
                    None,
                    &mut shared,
                ))
            })
            .collect();
        snapshot
    }

    /// A new snapshot with different health: zones and static answers are shared, and
    /// so is every dynamic record none of whose endpoints' health (nor pools' dials)
    /// changed — only the touched records are re-encoded.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn with_health(&self, health: HealthSnapshot, generation: u64) -> Self {
        let config = &self.config;
        let changed: Vec<bool> = (0..config.endpoints.len())
            .map(|i| {
                let e = EndpointIndex(i as u32);
                self.health.get(e) != health.get(e)
                    || self.health.doubt(e) != health.doubt(e)
                    || self.health.share(e) != health.share(e)
                    || self.health.degraded(e) != health.degraded(e)
                    || self.health.drained(e) != health.drained(e)
            })
            .collect();
        let mut shared = SharedDecisions::default();
        let dynamic = config
            .records
            .iter()
            .enumerate()
            .map(|(r, record)| {
                let index = RecordIndex(r as u32);
                let pinned = self.health.pin(index) != health.pin(index)
                    || self.health.last_primary(index) != health.last_primary(index)
                    || (record.latency.is_some()
                        && (0..=config.regions.len()).any(|slot| {
                            self.health.latency_choice(index, slot)
                                != health.latency_choice(index, slot)
                        }));
                let touched = pinned
                    || record_pools(record).any(|pool| {
                        self.health.dial(pool) != health.dial(pool)
                            || config
                                .pool(pool)
                                .endpoints
                                .iter()
                                .any(|e| changed[e.0 as usize])
                    });
                match self.dynamic.get(r) {
                    Some(answer) if !touched => answer.clone(),
                    previous => Arc::new(build_record(
                        config,
                        &health,
                        generation,
                        r,
                        self,
                        previous.map(|a| a.as_ref()),
                        &mut shared,
                    )),
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
            classes: self.classes.clone(),
        }
    }

    /// A new snapshot whose zones at the given indices carry other SOA serials (zone
    /// transfers, [`super::xfr`]): each such zone is a copy sharing its data with the
    /// SOA serial patched ([`crate::zone::Zone::with_soa_serial`]), its SOA signed
    /// again when the zone is signed, and the one static answer that carries the SOA
    /// (the apex SOA's, with its RRSIGs when signed) encoded again beside the shared
    /// answers; nothing else is copied or encoded.
    pub(crate) fn with_zone_serials(&self, serials: &[(usize, u32)]) -> Self {
        let mut zones = ZoneSet::clone_of(&self.zones);
        let mut signed = self.data.signed.clone();
        for &(index, serial) in serials {
            let Some(zone) = self.zones.zones().get(index) else {
                continue;
            };
            let zone = Arc::new(zone.with_soa_serial(serial));
            // A signed zone's SOA is signed again with its new serial.
            if let Some(Some(slot)) = signed.get_mut(index) {
                match slot.with_soa_of(&zone) {
                    Ok(resigned) => *slot = resigned,
                    Err(error) => tracing::error!(%error, "cannot sign the new SOA"),
                }
            }
            zones = zones.with_zone(index, zone);
        }
        let zones = Arc::new(zones);
        let mut snapshot = Self {
            generation: self.generation,
            config: self.config.clone(),
            data: Arc::new(ZoneData {
                zones: zones.clone(),
                tails: self.data.tails.clone(),
                tails_dnssec: self.data.tails_dnssec.clone(),
                signed,
            }),
            zones,
            health: self.health.clone(),
            geo: self.geo.clone(),
            dynamic: self.dynamic.clone(),
            limits: self.limits,
            classes: self.classes.clone(),
        };
        // The SOA's answers, encoded from the new zone (and signatures) by the
        // resolver the query path uses; the answers are then swapped in place (the
        // data is not shared yet, so nothing is copied).
        let patches: Vec<(usize, [Option<Arc<TailPatch>>; 2])> = serials
            .iter()
            .filter(|&&(index, _)| index < snapshot.zones.zones().len())
            .map(|&(index, _)| {
                let (soa, _) = snapshot.zones.zones()[index].soa();
                let plain = encode_patch(&snapshot, index, false, soa);
                let signed = snapshot
                    .signed_zone(index)
                    .and_then(|_| encode_patch(&snapshot, index, true, soa));
                (index, [plain, signed])
            })
            .collect();
        if let Some(data) = Arc::get_mut(&mut snapshot.data) {
            for (index, [plain, signed]) in patches {
                if let Some(slot) = data.tails.get_mut(index) {
                    slot.patch = plain;
                }
                if signed.is_some() {
                    if let Some(slot) = data.tails_dnssec.get_mut(index) {
                        slot.patch = signed;
                    }
                }
            }
        }
        snapshot
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
            counts[i] += resolve::write_rrset(writer, rr);
        }
    }
    (counts[0], counts[1], counts[2])
}

/// The answer of RRset `id` (the apex SOA's, for a new serial) encoded again on
/// its own, to be served in place of its span in the shared [`StaticTails`].
fn encode_patch(
    snapshot: &Snapshot,
    zone_index: usize,
    dnssec: bool,
    id: RrSetId,
) -> Option<Arc<TailPatch>> {
    let zone = &snapshot.zones.zones()[zone_index];
    // The SOA is the apex's; look there first, then anywhere.
    let node = std::iter::once(zone.apex())
        .chain(zone.nodes())
        .find(|n| n.rrsets().any(|(other, _)| other == id))?;
    let mut encoder = TailEncoder::new();
    let (mut span, bytes) = encoder.encode(snapshot, zone_index, dnssec, node, id)?;
    span.start = 0;
    Some(Arc::new(TailPatch {
        id,
        span,
        bytes: bytes.into(),
    }))
}

/// Pre-encodes, for every authoritative static RRset, the sections answering a query
/// for exactly its owner and type, with the same resolver the query path uses.
fn encode_static_tails(snapshot: &Snapshot, zone_index: usize, dnssec: bool) -> StaticTails {
    let zone = &snapshot.zones.zones()[zone_index];
    let mut spans = vec![TailSpan::default(); zone.rrset_count()];
    let mut bytes = Vec::new();
    let mut encoder = TailEncoder::new();
    for node in zone.nodes() {
        if node.cut().is_some() || node.is_empty() {
            continue;
        }
        for (id, _) in node.rrsets() {
            if let Some((mut span, encoded)) =
                encoder.encode(snapshot, zone_index, dnssec, node, id)
            {
                span.start = bytes.len() as u32;
                bytes.extend_from_slice(encoded);
                spans[id.0 as usize] = span;
            }
        }
    }
    StaticTails {
        spans: spans.into(),
        bytes: bytes.into(),
        patch: None,
    }
}

/// Buffers for encoding static answers one RRset at a time.
struct TailEncoder {
    buf: Vec<u8>,
    question: Vec<u8>,
}

impl TailEncoder {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(512),
            question: Vec::with_capacity(260),
        }
    }

    /// The sections answering a query for exactly `node`'s name and the type of
    /// RRset `id` (span with `start` 0), unless they do not fit a span.
    fn encode(
        &mut self,
        snapshot: &Snapshot,
        zone_index: usize,
        dnssec: bool,
        node: crate::zone::NodeRef<'_>,
        id: RrSetId,
    ) -> Option<(TailSpan, &[u8])> {
        if node.cut().is_some() {
            return None;
        }
        let zone = &snapshot.zones.zones()[zone_index];
        let set = zone.rrset(id);
        // Static answers never consult the client or randomness.
        let client = Client {
            addr: std::net::IpAddr::from([0, 0, 0, 0]),
            subnet: None,
        };
        let mut rng = SplitMix64::new(0);
        let starts = label_starts(node.name());
        self.question.clear();
        self.question.extend_from_slice(node.name());
        self.question.extend_from_slice(&set.rtype.to_be_bytes());
        self.question.extend_from_slice(&1u16.to_be_bytes());
        let resolution = resolve::resolve_dnssec(
            snapshot,
            zone_index,
            node.name(),
            &starts,
            set.rtype,
            &client,
            &mut rng,
            dnssec,
        );
        let mut writer = Writer::new(&mut self.buf, &self.question, node.name(), &starts);
        let (an, ns, ar) = encode_sections(&mut writer, &resolution);
        writer.finish(Header::default());
        let bytes = &self.buf[HEADER_LEN + self.question.len()..];
        if bytes.len() > usize::from(u16::MAX) || ns > 255 || ar > 255 {
            return None;
        }
        Some((
            TailSpan {
                start: 0,
                len: bytes.len() as u16,
                ancount: an,
                nscount: ns as u8,
                arcount: ar as u8,
                present: true,
            },
            bytes,
        ))
    }
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

/// The signatures of the zone holding `qname`, if it is signed.
fn record_signer<'s>(snapshot: &'s Snapshot, qname: &[u8]) -> Option<&'s SignedZone> {
    snapshot.signed_zone(snapshot.zones.find_zone(qname)?)
}

/// Decisions made once per decision class ([`DecisionClasses`]) and pool list
/// while one snapshot is built: the other records of the class in the default
/// record state (no pin, no agreed primary) take them as they are.
#[derive(Default)]
struct SharedDecisions {
    by_class: HashMap<(u32, usize), SharedOutcome>,
}

/// One decision and the answer orders it gives (drawn without randomness, so
/// every record of the class would draw the same).
struct SharedOutcome {
    decision: Arc<Decision>,
    orders: Vec<(Vec<EndpointIndex>, u64)>,
    cumulative: Arc<[u64]>,
    key: OutcomeKey,
    /// The outcome's id in its class ([`DecisionClasses::outcomes`]), when shared.
    id: Option<u64>,
    /// Index of the first trickle answer in `orders` (trickle in force).
    trickle_from: Option<usize>,
}

/// Outcomes kept per class and pool list for [`intern`].
const INTERNED_OUTCOMES: usize = 16;

/// The id of `outcome` in class slot `slot`: the id it had when last seen among
/// the slot's recent outcomes, or a new one (never given before, so a record's
/// answers built for an id are the answers of this outcome and no other).
fn intern(classes: &DecisionClasses, slot: (u32, usize), outcome: &SharedOutcome) -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let ttl = outcome.decision.ttl.0;
    let mut outcomes = classes
        .outcomes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let recent = outcomes.entry(slot).or_default();
    let same = |i: &Interned| {
        i.ttl == ttl
            && i.orders.len() == outcome.orders.len()
            && i.orders
                .iter()
                .zip(&outcome.orders)
                .all(|(a, (b, _))| a == b)
    };
    if let Some(found) = recent.iter().find(|i| same(i)) {
        return found.id;
    }
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if recent.len() == INTERNED_OUTCOMES {
        recent.remove(0);
    }
    recent.push(Interned {
        ttl,
        orders: outcome.orders.iter().map(|(o, _)| o.clone()).collect(),
        id,
    });
    id
}

/// A random source that notes whether it was drawn from.
struct Noting<'r> {
    inner: &'r mut SplitMix64,
    drawn: bool,
}

impl RandomSource for Noting<'_> {
    fn next_u64(&mut self) -> u64 {
        self.drawn = true;
        self.inner.next_u64()
    }
}

/// Groups the dynamic records of `config` into decision classes: the same settings
/// but for name and position in the file.
fn decision_classes(config: &Config) -> DecisionClasses {
    let mut by_rules: HashMap<String, u32> = HashMap::new();
    let mut classes = DecisionClasses {
        of: Vec::with_capacity(config.records.len()),
        size: Vec::new(),
        outcomes: Default::default(),
    };
    for record in &config.records {
        let mut rules = record.clone();
        rules.name.clear();
        rules.position = 0;
        let next = classes.size.len() as u32;
        let class = *by_rules.entry(format!("{rules:?}")).or_insert(next);
        if class == next {
            classes.size.push(0);
        }
        classes.size[class as usize] += 1;
        classes.of.push(class);
    }
    classes
}

/// Evaluates record `r` against `health` and pre-encodes its answers (each signed
/// when its zone in `snapshot` is). `previous` (the record's answers in the
/// snapshot this one follows) lends its wire name and its recently built answers:
/// a decision with a recent outcome reuses them. `shared` holds the decisions of
/// this build's classes so far (see [`SharedDecisions`]).
fn build_record(
    config: &Config,
    health: &HealthSnapshot,
    generation: u64,
    r: usize,
    snapshot: &Snapshot,
    previous: Option<&DynamicAnswer>,
    shared: &mut SharedDecisions,
) -> DynamicAnswer {
    let record = &config.records[r];
    let record_index = RecordIndex(r as u32);
    let mut rng = SplitMix64::new(generation ^ (r as u64).wrapping_mul(0x9E37_79B9));
    let qname: Arc<[u8]> = match previous {
        Some(previous) => previous.qname.clone(),
        None => name::wire_from_text(&record.name)
            .unwrap_or_else(|| vec![0])
            .into(),
    };
    let signer = record_signer(snapshot, &qname);
    let trickle_slot = record.trickle.map(|_| {
        crate::telemetry::metrics::trickle_slot(&record.name, &record.record_type.to_string())
    });
    let state = policy::record_state(health, record_index);
    // A record whose class has others, in the default state, shares their decision.
    let class = snapshot
        .classes
        .of
        .get(r)
        .copied()
        .filter(|&c| snapshot.classes.size[c as usize] > 1)
        .filter(|_| state.pin.is_none() && state.last_primary.is_none())
        // A latency record's pool order is its own (its choices and holds).
        .filter(|_| record.latency.is_none());
    let mut make_set = |index: usize, pools: &[crate::model::PoolIndex], rng: &mut SplitMix64| {
        let recent = previous
            .and_then(|p| p.sets.get(index))
            .map_or(&[][..], |s| &s.recent[..]);
        let slot = class.map(|c| (c, index));
        let mut made = None;
        if slot.is_none_or(|slot| !shared.by_class.contains_key(&slot)) {
            let decision = policy::decide_record(config, record, pools, state, health);
            let mut noting = Noting {
                inner: rng,
                drawn: false,
            };
            let outcome = outcome_of(decision, &mut noting);
            match slot.filter(|_| !noting.drawn) {
                Some(slot) => {
                    let mut outcome = outcome;
                    outcome.id = Some(intern(&snapshot.classes, slot, &outcome));
                    shared.by_class.insert(slot, outcome);
                }
                None => made = Some(outcome),
            }
        }
        let outcome = match (&made, slot) {
            (Some(outcome), _) => outcome,
            (None, Some(slot)) => &shared.by_class[&slot],
            (None, None) => unreachable!("an outcome is made unless shared"),
        };
        variant_set(
            config,
            record.record_type,
            &qname,
            outcome,
            signer,
            recent,
            trickle_slot,
        )
    };
    let client_lists =
        record.latency.is_some() || matches!(record.pools, crate::config::PoolChoice::Geo { .. });
    let mut lists: Vec<Vec<crate::model::PoolIndex>> = Vec::new();
    let mut index_of = |list: Vec<crate::model::PoolIndex>| {
        lists.iter().position(|l| *l == list).unwrap_or_else(|| {
            lists.push(list);
            lists.len() - 1
        })
    };
    let for_client =
        |region| policy::pools_for_client(config, record_index, record, region, health);
    let default_set = index_of(for_client(None));
    let region_sets: Arc<[usize]> = if client_lists {
        (0..config.regions.len())
            .map(|r| index_of(for_client(Some(crate::model::RegionIndex(r as u16)))))
            .collect()
    } else {
        previous.map_or_else(|| Arc::from(Vec::new()), |p| p.region_sets.clone())
    };
    let sets = lists
        .iter()
        .enumerate()
        .map(|(i, l)| make_set(i, l, &mut rng))
        .collect();
    DynamicAnswer {
        record: record_index,
        qname,
        rtype: record.record_type.code(),
        region_sets,
        default_set,
        sets,
        lists,
    }
}

/// The answers `candidates` can produce under `decision`'s rules, with pick weights.
fn answer_orders(
    decision: &Decision,
    candidates: &[policy::Candidate],
    max: usize,
    rng: &mut dyn RandomSource,
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
            shares: None,
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

/// The answer orders `decision` can produce (with their pick weights, cumulated
/// unless uniform) and the key of that outcome.
fn outcome_of(decision: Decision, rng: &mut dyn RandomSource) -> SharedOutcome {
    let max = usize::from(decision.max_answers);
    let mut trickle_from = None;
    let mut orders = match &decision.shares {
        Some(shares) => {
            let (orders, from) = shared_orders(&decision, shares, max, rng);
            if shares.trickle.is_some() && from < orders.len() {
                trickle_from = Some(from);
            }
            orders
        }
        None => answer_orders(&decision, &decision.candidates, max, rng),
    };
    if let (Some(handover), None) = (&decision.handover, &decision.shares) {
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
    // FNV-1a over the TTL and the orders' endpoints (lengths included).
    let mut key: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: u32| {
        key ^= u64::from(v);
        key = key.wrapping_mul(0x0000_0100_0000_01b3);
    };
    mix(decision.ttl.0);
    for (endpoints, _) in &orders {
        mix(endpoints.len() as u32);
        for e in endpoints {
            mix(e.0);
        }
    }
    SharedOutcome {
        decision: Arc::new(decision),
        orders,
        cumulative: cumulative.into(),
        key,
        id: None,
        trickle_from,
    }
}

/// Turns a decision's outcome into the answers it can produce, each pre-encoded
/// (and signed, with `signer`): those of a recent outcome when it is the same.
fn variant_set(
    config: &Config,
    record_type: DynamicType,
    qname: &[u8],
    outcome: &SharedOutcome,
    signer: Option<&SignedZone>,
    recent: &[(OutcomeKey, Arc<BuiltVariants>)],
    trickle_slot: Option<u8>,
) -> VariantSet {
    let ttl = outcome.decision.ttl.0;
    let orders = &outcome.orders;
    let signed = u64::from(signer.is_some());
    let key = match outcome.id {
        Some(id) => INTERNED | id << 1 | signed,
        None => (outcome.key ^ signed) & !INTERNED,
    };
    // The same outcome as a recent decision (a change back, or one that moved
    // neither the TTL nor the answers): its encoded and signed answers serve again.
    // An interned id is exact; a hash is checked against the answers.
    let reused = recent.iter().find(|(k, built)| {
        *k == key
            && (key & INTERNED != 0
                || built.ttl == ttl
                    && built.signed == signer.is_some()
                    && built.variants.len() == orders.len()
                    && built
                        .variants
                        .iter()
                        .zip(orders)
                        .all(|(v, (endpoints, _))| v.endpoints == *endpoints))
    });
    let built = match reused {
        Some((_, built)) => built.clone(),
        None => Arc::new(build_variants(
            config,
            record_type,
            qname,
            ttl,
            orders,
            signer,
        )),
    };
    let mut kept = smallvec::SmallVec::new();
    kept.push((key, built.clone()));
    for (k, r) in recent {
        if kept.len() == RECENT_OUTCOMES {
            break;
        }
        if !Arc::ptr_eq(r, &built) {
            kept.push((*k, r.clone()));
        }
    }
    VariantSet {
        decision: outcome.decision.clone(),
        ttl,
        built,
        cumulative: outcome.cumulative.clone(),
        recent: kept,
        trickle: trickle_slot
            .zip(outcome.trickle_from)
            .map(|(slot, from)| TrickleCount { from, slot }),
    }
}

/// Spill-over and trickle: each pool's answers (drawn as the decision's rules say)
/// weighted so the pool gets its share of the picks; also the index of the first
/// answer of a trickle pool (trickle pools follow the first pool).
fn shared_orders(
    decision: &Decision,
    shares: &policy::Shares,
    max: usize,
    rng: &mut dyn RandomSource,
) -> (Vec<(Vec<EndpointIndex>, u64)>, usize) {
    /// Pick weight of a whole share (1 = 2^20): fine enough that rounding moves a
    /// share by less than a millionth.
    const SCALE: u128 = 1 << 20;
    let mut orders = Vec::new();
    let mut trickle_from = None;
    for pool in shares.pools.iter().filter(|p| p.parts() > 0) {
        let theirs = answer_orders(decision, &pool.candidates, max, rng);
        let total: u128 = theirs
            .iter()
            .map(|(_, w)| u128::from(*w))
            .sum::<u128>()
            .max(1);
        if pool.trickle && trickle_from.is_none() {
            trickle_from = Some(orders.len());
        }
        orders.extend(theirs.into_iter().map(|(order, w)| {
            let weight = u128::from(w) * u128::from(pool.parts()) * SCALE / total;
            (order, weight.max(1) as u64)
        }));
    }
    let from = trickle_from.unwrap_or(orders.len());
    (orders, from)
}

/// Encodes (and signs, with `signer`) the answers of `orders`.
fn build_variants(
    config: &Config,
    record_type: DynamicType,
    qname: &[u8],
    ttl: u32,
    orders: &[(Vec<EndpointIndex>, u64)],
    signer: Option<&SignedZone>,
) -> BuiltVariants {
    let starts = label_starts(qname);
    let mut question = qname.to_vec();
    question.extend_from_slice(&record_type.code().to_be_bytes());
    question.extend_from_slice(&1u16.to_be_bytes());
    let mut buf = Vec::with_capacity(512);
    let variants = orders
        .iter()
        .map(|(endpoints, _)| {
            let endpoints = endpoints.clone();
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
            let packed = PackedRdata::new(&rdata, count);
            let (sigs, sig_count, tail_dnssec) = match signer {
                None => (Box::default(), 0, Box::default()),
                Some(signer) => {
                    // Rotations of one set share its signature (RRSIGs cover the
                    // canonical, sorted RRset), and so do later snapshots while the set
                    // is the same: the signer's cache makes each distinct set once.
                    let mut out = Vec::new();
                    let (sigs, sig_count) = match signer.sign(
                        qname,
                        record_type.code(),
                        ttl,
                        packed.iter(),
                        &mut out,
                    ) {
                        Ok(n) => (out.into_boxed_slice(), n),
                        Err(error) => {
                            tracing::error!(%error, "cannot sign a dynamic answer");
                            (Box::default(), 0)
                        }
                    };
                    let mut writer = Writer::new(&mut buf, &question, qname, &starts);
                    resolve::write_rrset(
                        &mut writer,
                        &resolve::RrRef {
                            owner: Owner::Question,
                            rtype: record_type.code(),
                            ttl,
                            rdata: packed,
                            sigs: PackedRdata::new(&sigs, sig_count),
                        },
                    );
                    writer.finish(Header::default());
                    let tail_dnssec = buf[HEADER_LEN + question.len()..]
                        .to_vec()
                        .into_boxed_slice();
                    (sigs, sig_count, tail_dnssec)
                }
            };
            Variant {
                endpoints,
                rdata: rdata.into_boxed_slice(),
                count,
                tail,
                ancount: count,
                sigs,
                sig_count,
                tail_dnssec,
            }
        })
        .collect::<Vec<_>>();
    let nodata_proof = match signer {
        Some(signer) if variants.is_empty() => {
            match signer.nodata_proof(qname, record_type.code(), ttl) {
                Ok(proof) => proof,
                Err(error) => {
                    tracing::error!(%error, "cannot sign the NODATA proof of a dynamic record");
                    None
                }
            }
        }
        _ => None,
    };
    BuiltVariants {
        ttl,
        signed: signer.is_some(),
        variants,
        nodata_proof,
    }
}

/// The current snapshot, shared by every listener.
///
/// Replaced snapshots are retired, not dropped: the publisher keeps a reference, so
/// a UDP thread finishing a query on an old snapshot never frees it (a reload's old
/// zones can be large); the publisher frees those no reader holds any more each time
/// it publishes.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SharedSnapshot {
    current: Arc<ArcSwap<Snapshot>>,
    retired: Arc<std::sync::Mutex<Vec<Arc<Snapshot>>>>,
}

impl SharedSnapshot {
    /// Shares an initial snapshot.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            retired: Arc::default(),
        }
    }

    /// The current snapshot (lock-free).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Publishes a new snapshot, retires the one it replaces, and frees retired
    /// snapshots no reader holds any more (here, on the publisher's thread).
    pub(crate) fn store(&self, snapshot: Snapshot) {
        let old = self.current.swap(Arc::new(snapshot));
        // Only publishers take this lock, never the query path.
        let Ok(mut retired) = self.retired.lock() else {
            return;
        };
        retired.push(old);
        // `swap` has paid every reader's outstanding debt on `old`, so a count of one
        // means only this list holds it.
        retired.retain(|s| Arc::strong_count(s) > 1);
    }

    /// Retired snapshots still held by a reader (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn retired(&self) -> usize {
        self.retired.lock().map(|r| r.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn snapshot(generation: u64) -> Snapshot {
        let text = "version = 1\n[zones]\ndirectory = \"tests/data/zones\"\nfiles = [\"example.test.zone\"]\n";
        let (config, _) = Config::load(ConfigSource::from_text(text, env!("CARGO_MANIFEST_DIR")))
            .expect("config");
        let (zones, _) = crate::zone::load(&config).expect("zones");
        let health = HealthSnapshot::from_config(&config);
        Snapshot::build(Arc::new(config), zones, health, generation)
    }

    #[test]
    fn a_replaced_snapshot_is_freed_by_the_publisher_not_its_last_reader() {
        let shared = SharedSnapshot::new(snapshot(1));
        let reader = shared.load_full();
        shared.store(snapshot(2));
        // The reader still answers from generation 1; the publisher keeps it too.
        assert_eq!(shared.retired(), 1);
        let weak = Arc::downgrade(&reader);
        drop(reader);
        assert!(weak.upgrade().is_some(), "not freed on the reader's thread");
        shared.store(snapshot(3));
        assert!(weak.upgrade().is_none(), "freed by the next publish");
        assert_eq!(shared.retired(), 0);
    }

    #[test]
    fn a_change_back_to_a_recent_outcome_reuses_its_encoded_answers() {
        use crate::model::HealthState;
        let text = "version = 1\n[zones]\ndirectory = \"tests/data/zones\"\n\
                    files = [\"example.test.zone\"]\n[pools.fo]\nendpoints = [\
                    { address = \"192.0.2.1\", name = \"a\" }, { address = \"192.0.2.2\", name = \"b\" }]\n\
                    [[records]]\nname = \"fo-bench.example.test\"\ntype = \"A\"\n\
                    policy = \"failover\"\npools = [\"fo\"]\n";
        let (config, _) = Config::load(ConfigSource::from_text(text, env!("CARGO_MANIFEST_DIR")))
            .expect("config");
        let (zones, _) = crate::zone::load(&config).expect("zones");
        let up = HealthSnapshot::from_config(&config);
        let mut endpoints = up.endpoints().to_vec();
        endpoints[0].state = HealthState::Down;
        let down = HealthSnapshot::from_health(endpoints);
        let first = Snapshot::build(Arc::new(config), zones, up.clone(), 1);
        let built = |s: &Snapshot| s.dynamic[0].sets[0].built.clone();
        let failed = first.with_health(down, 2);
        assert!(!Arc::ptr_eq(&built(&first), &built(&failed)));
        assert_eq!(failed.dynamic[0].sets[0].variants().len(), 1);
        let back = failed.with_health(up, 3);
        assert!(
            Arc::ptr_eq(&built(&first), &built(&back)),
            "the answers of the first snapshot serve again"
        );
        assert_eq!(back.dynamic[0].sets[0].recent.len(), 2);
    }

    #[test]
    fn records_alike_but_for_their_names_share_one_decision_and_answer_as_if_decided_alone() {
        use crate::model::HealthState;
        // Three failover records alike but for their names (one class), a weighted
        // one over both pools (sampled: each draws its own), and a pinned record.
        let mut text = "version = 1\n[zones]\ndirectory = \"tests/data/zones\"\n\
                        files = [\"example.test.zone\"]\n[pools.fo]\nendpoints = [\
                        { address = \"192.0.2.1\", name = \"a\" }, { address = \"192.0.2.2\", name = \"b\" }]\n\
                        [pools.more]\nendpoints = [{ address = \"192.0.2.3\", name = \"c\" }, \
                        { address = \"192.0.2.4\", name = \"d\" }, { address = \"192.0.2.5\", name = \"e\" }]\n"
            .to_owned();
        for name in ["one", "two", "three"] {
            text.push_str(&format!(
                "[[records]]\nname = \"{name}.example.test\"\ntype = \"A\"\n\
                 policy = \"failover\"\npools = [\"fo\", \"more\"]\n"
            ));
        }
        for name in ["w1", "w2"] {
            text.push_str(&format!(
                "[[records]]\nname = \"{name}.example.test\"\ntype = \"A\"\n\
                 policy = \"multivalue\"\nmax_answers = 2\npools = [\"more\"]\n"
            ));
        }
        let (config, _) = Config::load(ConfigSource::from_text(text, env!("CARGO_MANIFEST_DIR")))
            .expect("config");
        let config = Arc::new(config);
        let up = HealthSnapshot::from_config(&config);
        let mut endpoints = up.endpoints().to_vec();
        endpoints[0].state = HealthState::Down;
        let down = HealthSnapshot::from_health(endpoints);
        let doubt = up.clone().with_doubt(vec![Some(2), None, None, None, None]);
        let build = |shared: bool| {
            let (zones, _) = crate::zone::load(&config).expect("zones");
            let mut first = Snapshot::build(config.clone(), zones, up.clone(), 1);
            if !shared {
                // No classes: every record decides alone, as before classes.
                first.classes = Arc::new(DecisionClasses::default());
                first.dynamic = (0..config.records.len())
                    .map(|r| {
                        let mut none = SharedDecisions::default();
                        Arc::new(build_record(&config, &up, 1, r, &first, None, &mut none))
                    })
                    .collect();
            }
            let mut all = vec![];
            let mut current = first;
            for (i, health) in [down.clone(), up.clone(), doubt.clone(), up.clone()]
                .into_iter()
                .enumerate()
            {
                current = current.with_health(health, i as u64 + 2);
                all.push(current.dynamic.clone());
            }
            (current.classes.clone(), all)
        };
        let (classes, shared) = build(true);
        let (_, alone) = build(false);
        assert_eq!(classes.of, vec![0, 0, 0, 1, 1]);
        for (step, (a, b)) in shared.iter().zip(&alone).enumerate() {
            for (r, (a, b)) in a.iter().zip(b).enumerate() {
                let (a, b) = (&a.sets[0], &b.sets[0]);
                assert_eq!(*a.decision, *b.decision, "step {step}, record {r}");
                assert_eq!(a.ttl, b.ttl);
                assert_eq!(a.cumulative, b.cumulative);
                let orders = |s: &VariantSet| -> Vec<(Vec<EndpointIndex>, Box<[u8]>)> {
                    s.variants()
                        .iter()
                        .map(|v| (v.endpoints.clone(), v.tail.clone()))
                        .collect()
                };
                assert_eq!(orders(a), orders(b), "step {step}, record {r}");
            }
            // One decision for the failover class; the sampled class draws per record.
            assert!(Arc::ptr_eq(
                &a_decision(&shared[step], 0),
                &a_decision(&shared[step], 2)
            ));
        }
        // Back up (step 3 as step 1): each record of the failover class finds the
        // answers it built for that outcome by the class's id for it, exactly.
        for (r, (now, then)) in shared[3].iter().zip(&shared[1]).take(3).enumerate() {
            let (now, then) = (&now.sets[0], &then.sets[0]);
            assert!(Arc::ptr_eq(&now.built, &then.built), "record {r}");
            assert!(now.recent[0].0 & INTERNED != 0, "record {r}");
            assert_eq!(now.recent[0].0, then.recent[0].0, "record {r}");
        }
        // The sampled class draws per record: its keys are hashes.
        assert!(shared[3][3].sets[0].recent[0].0 & INTERNED == 0);
        fn a_decision(dynamic: &[Arc<DynamicAnswer>], r: usize) -> Arc<Decision> {
            dynamic[r].sets[0].decision.clone()
        }
    }

    #[test]
    fn a_new_serial_re_encodes_the_soa_answer_alone_and_equals_a_full_encoding() {
        use crate::dnssec::keys::{Algorithm, Key, Role, Timing, unix_now};
        let keys = tempfile::tempdir().unwrap();
        for role in [Role::Ksk, Role::Zsk] {
            Key::generate("example.test.", role, Algorithm::EcdsaP256, Timing::from(0))
                .unwrap()
                .save(keys.path())
                .unwrap();
        }
        let text = format!(
            "version = 1\n[zones]\ndirectory = \"tests/data/zones\"\nfiles = [\"example.test.zone\"]\n\
             [dnssec]\nkey_directory = \"{}\"\nzones = [\"example.test\"]\n",
            keys.path().display()
        );
        let (config, _) = Config::load(ConfigSource::from_text(text, env!("CARGO_MANIFEST_DIR")))
            .expect("config");
        let (zones, _) = crate::zone::load(&config).expect("zones");
        let health = HealthSnapshot::from_config(&config);
        let now = unix_now();
        let ring = crate::dnssec::KeyRing::load(&config.dnssec, now)
            .unwrap()
            .unwrap();
        let signing = Signing { keys: ring, now };
        let snapshot =
            Snapshot::build_signed(Arc::new(config), zones, health, 1, Some(&signing)).unwrap();
        let snapshot_bytes = (
            snapshot.data.tails[0].bytes.clone(),
            snapshot.data.tails_dnssec[0].bytes.clone(),
        );
        let mut current = snapshot;
        for serial in [7, 8, 4_000_000_000] {
            current = current.with_zone_serials(&[(0, serial)]);
            for dnssec in [false, true] {
                // Every answer served (the SOA's patched, the rest shared) equals
                // a full encoding of the zone with its new serial.
                let full = encode_static_tails(&current, 0, dnssec);
                let zone = &current.zones.zones()[0];
                for id in (0..zone.rrset_count()).map(|i| RrSetId(i as u32)) {
                    let served = current.static_tail(0, id, dnssec);
                    let span = full.spans[id.0 as usize];
                    let expected = span.present.then(|| {
                        let start = span.start as usize;
                        &full.bytes[start..start + usize::from(span.len)]
                    });
                    assert_eq!(
                        served.map(|c| c.bytes),
                        expected,
                        "serial {serial}, dnssec {dnssec}, rrset {}",
                        id.0
                    );
                    if let Some(served) = served {
                        assert_eq!(
                            (served.ancount, served.nscount, served.arcount),
                            (
                                span.ancount,
                                u16::from(span.nscount),
                                u16::from(span.arcount)
                            )
                        );
                    }
                }
                // The shared answers are the first snapshot's, not copies.
                let (before, after) = if dnssec {
                    (&snapshot_bytes.1, &current.data.tails_dnssec[0].bytes)
                } else {
                    (&snapshot_bytes.0, &current.data.tails[0].bytes)
                };
                assert!(Arc::ptr_eq(before, after), "dnssec {dnssec}");
            }
            assert_eq!(current.zones.zones()[0].soa_serial(), serial);
        }
    }
}
