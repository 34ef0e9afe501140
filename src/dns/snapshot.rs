//! Building snapshots (static answers pre-encoded at load, dynamic records' variants
//! when health changes) and publishing them: [`SharedSnapshot`] swaps them
//! atomically; readers take one lock-free and never wait on writers.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::answers::{
    DynamicAnswer, Limits, Snapshot, StaticTails, TailSpan, Variant, VariantSet, ZoneData,
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
    pub fn build(
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
    pub fn build_signed(
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
    pub fn resigned(&self, now: u64, generation: u64) -> Result<Self, DnssecError> {
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
    pub fn signed_zone_ring(&self) -> Option<&Arc<crate::dnssec::KeyRing>> {
        self.data.signed.iter().flatten().next().map(|s| s.ring())
    }

    /// When the signatures were made (the oldest signing of any zone), if signed.
    pub fn signed_at(&self) -> Option<u64> {
        self.data.signed.iter().flatten().map(|s| s.signed_at).min()
    }

    /// The signatures of zone `zone_index`, if it is signed.
    pub fn signed_zone(&self, zone_index: usize) -> Option<&SignedZone> {
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
        };
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
        snapshot.dynamic = (0..snapshot.config.records.len())
            .map(|r| {
                Arc::new(build_record(
                    &snapshot.config,
                    &snapshot.health,
                    generation,
                    r,
                    record_signer(&snapshot, r),
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
                    _ => Arc::new(build_record(
                        config,
                        &health,
                        generation,
                        r,
                        record_signer(self, r),
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
        }
    }

    /// A new snapshot whose zones at the given indices carry other SOA serials (zone
    /// transfers, [`super::xfr`]): those zones are copied with the serial patched and
    /// the one static answer that carries the SOA (the apex SOA's, with its RRSIGs
    /// when signed) encoded again; everything else is shared.
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
        // A signed zone's SOA is signed again with its new serial.
        let mut signed = self.data.signed.clone();
        for &(index, _) in serials {
            let zone = &snapshot.zones.zones()[index];
            if let Some(Some(slot)) = signed.get_mut(index) {
                match slot.with_soa_of(zone) {
                    Ok(resigned) => *slot = resigned,
                    Err(error) => tracing::error!(%error, "cannot sign the new SOA"),
                }
            }
        }
        snapshot.data = Arc::new(ZoneData {
            zones: zones.clone(),
            tails: self.data.tails.clone(),
            tails_dnssec: self.data.tails_dnssec.clone(),
            signed,
        });
        let mut tails = self.data.tails.clone();
        let mut tails_dnssec = self.data.tails_dnssec.clone();
        for &(index, _) in serials {
            let (soa, _) = snapshot.zones.zones()[index].soa();
            if let Some(slot) = tails.get_mut(index) {
                *slot = with_tail_of(&snapshot, index, false, slot, soa);
            }
            if snapshot.signed_zone(index).is_some() {
                if let Some(slot) = tails_dnssec.get_mut(index) {
                    *slot = with_tail_of(&snapshot, index, true, slot, soa);
                }
            }
        }
        let signed = snapshot.data.signed.clone();
        snapshot.data = Arc::new(ZoneData {
            zones,
            tails,
            tails_dnssec,
            signed,
        });
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

/// `tails` with the answer of RRset `id` encoded again (a serial change: only the
/// apex SOA's answer carries the SOA, since negative answers are not pre-encoded).
/// The new bytes go in place when they have the old length (a serial and a
/// fixed-size signature); otherwise every answer is encoded again.
fn with_tail_of(
    snapshot: &Snapshot,
    zone_index: usize,
    dnssec: bool,
    tails: &StaticTails,
    id: RrSetId,
) -> StaticTails {
    let fresh = encode_tails(snapshot, zone_index, dnssec, Some(id));
    let old = tails.spans.get(id.0 as usize).copied().unwrap_or_default();
    let new = fresh.spans.get(id.0 as usize).copied().unwrap_or_default();
    if !(old.present && new.present && old.len == new.len) {
        return encode_static_tails(snapshot, zone_index, dnssec);
    }
    let mut patched = tails.clone();
    let at = old.start as usize;
    patched.bytes[at..at + usize::from(old.len)].copy_from_slice(
        &fresh.bytes[new.start as usize..new.start as usize + usize::from(new.len)],
    );
    patched.spans[id.0 as usize] = TailSpan {
        start: old.start,
        ..new
    };
    patched
}

/// Pre-encodes, for every authoritative static RRset, the sections answering a query
/// for exactly its owner and type, with the same resolver the query path uses.
fn encode_static_tails(snapshot: &Snapshot, zone_index: usize, dnssec: bool) -> StaticTails {
    encode_tails(snapshot, zone_index, dnssec, None)
}

/// [`encode_static_tails`], of RRset `only` alone when given.
fn encode_tails(
    snapshot: &Snapshot,
    zone_index: usize,
    dnssec: bool,
    only: Option<RrSetId>,
) -> StaticTails {
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
        if only.is_some_and(|only| !node.rrsets().any(|(id, _)| id == only)) {
            continue;
        }
        let starts = label_starts(node.name());
        for (id, set) in node.rrsets() {
            if only.is_some_and(|only| only != id) {
                continue;
            }
            question.clear();
            question.extend_from_slice(node.name());
            question.extend_from_slice(&set.rtype.to_be_bytes());
            question.extend_from_slice(&1u16.to_be_bytes());
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

/// The signatures of the zone dynamic record `r` is in, if it is signed.
fn record_signer(snapshot: &Snapshot, r: usize) -> Option<&SignedZone> {
    let qname = name::wire_from_text(&snapshot.config.records[r].name)?;
    snapshot.signed_zone(snapshot.zones.find_zone(&qname)?)
}

/// Evaluates record `r` against `health` and pre-encodes its answers (each signed,
/// when `signer` is given).
fn build_record(
    config: &Config,
    health: &HealthSnapshot,
    generation: u64,
    r: usize,
    signer: Option<&SignedZone>,
) -> DynamicAnswer {
    let record = &config.records[r];
    let record_index = RecordIndex(r as u32);
    let mut rng = SplitMix64::new(generation ^ (r as u64).wrapping_mul(0x9E37_79B9));
    let qname = name::wire_from_text(&record.name).unwrap_or_else(|| vec![0]);
    let make_set = |pools: &[crate::model::PoolIndex], rng: &mut SplitMix64| {
        let state = policy::record_state(health, record_index);
        let decision = policy::decide_record(config, record, pools, state, health);
        variant_set(config, record.record_type, &qname, decision, rng, signer)
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
    signer: Option<&SignedZone>,
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
    VariantSet {
        decision,
        ttl,
        variants,
        cumulative,
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
pub struct SharedSnapshot {
    current: Arc<ArcSwap<Snapshot>>,
    retired: Arc<std::sync::Mutex<Vec<Arc<Snapshot>>>>,
}

impl SharedSnapshot {
    /// Shares an initial snapshot.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            retired: Arc::default(),
        }
    }

    /// The current snapshot (lock-free).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Publishes a new snapshot, retires the one it replaces, and frees retired
    /// snapshots no reader holds any more (here, on the publisher's thread).
    pub fn store(&self, snapshot: Snapshot) {
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
    pub fn retired(&self) -> usize {
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
        let mut current = snapshot;
        for serial in [7, 8, 4_000_000_000] {
            current = current.with_zone_serials(&[(0, serial)]);
            for dnssec in [false, true] {
                let patched = if dnssec {
                    &current.data.tails_dnssec[0]
                } else {
                    &current.data.tails[0]
                };
                let full = encode_static_tails(&current, 0, dnssec);
                assert_eq!(
                    patched.bytes, full.bytes,
                    "serial {serial}, dnssec {dnssec}"
                );
                let spans = |t: &StaticTails| {
                    t.spans
                        .iter()
                        .map(|s| (s.start, s.len, s.ancount, s.nscount, s.arcount, s.present))
                        .collect::<Vec<_>>()
                };
                assert_eq!(spans(patched), spans(&full));
            }
            assert_eq!(current.zones.zones()[0].soa_serial(), serial);
        }
    }
}
