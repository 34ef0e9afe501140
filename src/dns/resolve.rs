//! Authoritative resolution (RFC 1034 §4.3.2) over a [`Snapshot`]: which records go
//! in which section, and the response code. Encoding is separate ([`super::engine`]).

use std::net::IpAddr;

use smallvec::SmallVec;

use super::answers::{Cached, Snapshot};
use super::wire::{ClientSubnet, rcode};
use super::writer::{Owner, Writer};
use crate::config::DenialKind;
use crate::dnssec::{self, SignedZone, chain::ChainRecord};
use crate::model::RandomSource;
use crate::zone::name::{self, MAX_NAME_LEN};
use crate::zone::{Lookup, NodeRef, PackedRdata, Zone, rtype};

/// Longest CNAME chain followed inside a zone.
const MAX_CHAIN: usize = 8;

/// Most RRsets added to the additional section.
const MAX_ADDITIONAL: usize = 8;

/// A reference to records to write: owner, type, TTL and packed rdata.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RrRef<'s> {
    /// Owner name.
    pub owner: Owner<'s>,
    /// RR type.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// The records' rdata.
    pub rdata: PackedRdata<'s>,
    /// Their RRSIGs' rdata (DNSSEC, DO=1 queries of signed zones; else empty).
    pub sigs: PackedRdata<'s>,
}

/// No RRSIGs.
const NO_SIGS: PackedRdata<'static> = PackedRdata::new(&[], 0);

impl<'s> RrRef<'s> {
    /// The records of a chain entry (NSEC/NSEC3 with its RRSIGs).
    fn chain(record: ChainRecord<'s>) -> Self {
        Self {
            owner: Owner::Name(record.owner),
            rtype: record.rtype,
            ttl: record.ttl,
            rdata: record.rdata,
            sigs: record.sigs,
        }
    }
}

/// Writes the records of `rr`, then its RRSIGs (same owner and TTL); returns how
/// many records were written.
pub(crate) fn write_rrset(writer: &mut Writer<'_>, rr: &RrRef<'_>) -> u16 {
    let mut count = 0;
    for rdata in rr.rdata.iter() {
        writer.record(rr.owner, rr.rtype, rr.ttl, rdata);
        count += 1;
    }
    for rdata in rr.sigs.iter() {
        writer.record(rr.owner, dnssec::rtype::RRSIG, rr.ttl, rdata);
        count += 1;
    }
    count
}

/// What a query resolves to.
#[derive(Clone, Debug)]
pub(crate) struct Resolution<'s> {
    /// Response code (may be extended).
    pub rcode: u16,
    /// AA flag.
    pub authoritative: bool,
    /// Answer section: room for the longest in-zone CNAME chain and its target, so
    /// following a chain never allocates.
    pub answer: SmallVec<[RrRef<'s>; MAX_CHAIN + 1]>,
    /// Authority section: room for a SOA, a DS and the denial records of the
    /// longest proof (closest encloser, next closer, wildcard) twice, so signed
    /// negative answers never allocate.
    pub authority: SmallVec<[RrRef<'s>; 7]>,
    /// Additional section (before OPT).
    pub additional: SmallVec<[RrRef<'s>; 2]>,
    /// Whether this is a referral (its glue may not be dropped silently).
    pub referral: bool,
    /// ECS scope prefix for the response (0 = valid for every client).
    pub ecs_scope: u8,
    /// Pre-encoded sections equal to encoding the three sections above.
    pub cached: Option<Cached<'s>>,
    /// The trickle counter slot, when the answer came from a trickle pool.
    pub trickle: Option<u8>,
}

impl Resolution<'_> {
    fn new(rcode: u16, authoritative: bool) -> Self {
        Self {
            rcode,
            authoritative,
            answer: SmallVec::new(),
            authority: SmallVec::new(),
            additional: SmallVec::new(),
            referral: false,
            ecs_scope: 0,
            cached: None,
            trickle: None,
        }
    }

    /// A response with no records.
    pub(crate) fn empty(rcode: u16, authoritative: bool) -> Self {
        Self::new(rcode, authoritative)
    }
}

/// Who asked, for geo records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Client {
    /// The address the query came from.
    pub addr: IpAddr,
    /// EDNS Client Subnet, if sent (and honoured).
    pub subnet: Option<ClientSubnet>,
}

impl Client {
    /// The address and prefix length geo placement should use (ECS with a non-zero
    /// prefix, else the resolver's own address).
    pub(crate) fn geo_source(&self) -> (IpAddr, u8) {
        match self.subnet {
            Some(s) if s.source_prefix > 0 => (s.address, s.source_prefix),
            _ => (self.addr, if self.addr.is_ipv4() { 32 } else { 128 }),
        }
    }
}

/// Resolves a query in zone `zone_index` of the snapshot, with the RRSIGs and denial
/// records of a signed zone when the query set DO (`dnssec_ok`): pre-computed
/// signatures and chain lookups only.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resolve_dnssec<'s>(
    snapshot: &'s Snapshot,
    zone_index: usize,
    qname: &[u8],
    label_starts: &[u8],
    qtype: u16,
    client: &Client,
    rng: &mut dyn RandomSource,
    dnssec_ok: bool,
) -> Resolution<'s> {
    let mut resolver = Resolver {
        signed: if dnssec_ok {
            snapshot.signed_zone(zone_index)
        } else {
            None
        },
        snapshot,
        zone_index,
        zone: &snapshot.zones.zones()[zone_index],
        client,
        rng,
        res: Resolution::new(rcode::NOERROR, true),
        exact: false,
        visited: [u32::MAX; MAX_CHAIN],
        visited_len: 0,
    };
    match resolver.zone.find(qname, label_starts) {
        Lookup::Node(id) => {
            let node = resolver.zone.node(id);
            resolver.exact = true;
            resolver.answer_node(Owner::Question, node, qtype, 0);
        }
        Lookup::Wildcard(id) => {
            // Synthesized: the pre-encoded answers (built for the wildcard's own name)
            // do not apply.
            let node = resolver.zone.node(id);
            let before = resolver.res.answer.len();
            resolver.answer_node(Owner::Question, node, qtype, 0);
            resolver.prove_wildcard(qname, label_starts, before);
        }
        Lookup::Delegation(cut) => resolver.referral(cut),
        Lookup::NxDomain => {
            resolver.negative(rcode::NXDOMAIN, None);
            resolver.prove_nxdomain(qname, label_starts);
        }
    }
    resolver.res
}

struct Resolver<'s, 'r> {
    snapshot: &'s Snapshot,
    /// The zone's signatures and chain, when the query set DO and the zone is signed.
    signed: Option<&'s SignedZone>,
    zone_index: usize,
    zone: &'s Zone,
    client: &'r Client,
    rng: &'r mut dyn RandomSource,
    res: Resolution<'s>,
    /// Whether the query name itself exists (pre-encoded answers are per name).
    exact: bool,
    /// Nodes whose CNAME is already in the answer: a chain that comes back to one is
    /// a loop, answered once round (as Knot and NSD do), never repeated.
    visited: [u32; MAX_CHAIN],
    visited_len: usize,
}

impl<'s> Resolver<'s, '_> {
    /// Pre-encoded answers hold for the exact query name at the start of a chain.
    fn cacheable(&self, owner: Owner<'_>, chain: usize) -> bool {
        self.exact && chain == 0 && matches!(owner, Owner::Question)
    }

    fn answer_node(&mut self, owner: Owner<'s>, node: NodeRef<'s>, qtype: u16, chain: usize) {
        if let Some(cut) = node.cut() {
            if !(cut == node.id() && qtype == rtype::DS) {
                self.referral(cut);
                return;
            }
        }
        if qtype == rtype::ANY {
            self.answer_any(owner, node);
            return;
        }
        if node.has_cname() && qtype != rtype::CNAME {
            self.follow_cname(owner, node, qtype, chain);
            return;
        }
        if let Some((id, set)) = node.rrset(qtype) {
            self.res.answer.push(RrRef {
                owner,
                rtype: set.rtype,
                ttl: set.ttl,
                rdata: self.zone.rdata(set),
                sigs: self.sigs(id),
            });
            self.add_additional_for(set.rtype, self.zone.rdata(set));
            if self.cacheable(owner, chain) {
                self.res.cached =
                    self.snapshot
                        .static_tail(self.zone_index, id, self.signed.is_some());
            }
            return;
        }
        if let Some(record) = node.dynamic().and_then(|d| d.for_type(qtype)) {
            self.answer_dynamic(owner, record, chain, node.id());
            return;
        }
        self.negative(rcode::NOERROR, None);
        self.prove_nodata(node.id());
    }

    /// RRSIGs of a static RRset (none unless signing).
    fn sigs(&self, id: crate::zone::RrSetId) -> PackedRdata<'s> {
        self.signed.map_or(NO_SIGS, |s| s.sigs(id))
    }

    /// Adds a chain record to the authority section (once).
    fn push_denial(&mut self, record: Option<ChainRecord<'s>>) {
        let Some(record) = record else {
            return;
        };
        let owner = record.owner.as_ptr();
        let present = self.res.authority.iter().any(|rr| {
            matches!(rr.owner, Owner::Name(name) if name.as_ptr() == owner)
                && rr.rtype == record.rtype
        });
        if !present {
            self.res.authority.push(RrRef::chain(record));
        }
    }

    /// NODATA at an existing name: its own chain record (RFC 5155 §7.2.3/§7.2.4,
    /// RFC 4035 §3.1.3.1).
    fn prove_nodata(&mut self, node: crate::zone::NodeId) {
        let Some(signed) = self.signed else {
            return;
        };
        let chain = signed.chain();
        match chain.matching(node.0) {
            Some(record) => self.push_denial(Some(record)),
            None if chain.kind() == DenialKind::Nsec3 => {
                // NSEC3 opt-out left the name out (an insecure delegation): the
                // closest provable encloser and the opt-out span covering the next
                // closer name (RFC 5155 §7.2.4, §7.2.7).
                let name = self.zone.node(node).name();
                let mut starts = [0u8; crate::zone::store::MAX_LABELS];
                let starts = crate::zone::store::label_starts_into(name, &mut starts);
                let (encloser, next_closer) = self.closest_encloser(name, starts);
                self.push_denial(chain.matching(encloser.0));
                self.push_denial(chain.covering(next_closer));
            }
            None => {}
        }
    }

    /// Whether node `id` can be proven to exist: it has its own NSEC3 record (opt-out
    /// leaves some names out), or the zone uses NSEC or is not signed.
    fn provable(&self, id: crate::zone::NodeId) -> bool {
        self.signed.is_none_or(|s| {
            s.chain().kind() != DenialKind::Nsec3 || s.chain().matching(id.0).is_some()
        })
    }

    /// The closest (provable) encloser of a name that does not exist, and the next
    /// closer name (one label longer).
    fn closest_encloser<'q>(
        &self,
        qname: &'q [u8],
        label_starts: &[u8],
    ) -> (crate::zone::NodeId, &'q [u8]) {
        for (i, &start) in label_starts.iter().enumerate().skip(1) {
            let suffix = &qname[usize::from(start)..];
            if suffix.len() < self.zone.origin().len() {
                break;
            }
            if let Some(id) = self.zone.get(suffix).filter(|&id| self.provable(id)) {
                return (id, &qname[usize::from(label_starts[i - 1])..]);
            }
        }
        (self.zone.apex().id(), qname)
    }

    /// NXDOMAIN: the closest encloser proof and the absent wildcard (RFC 5155
    /// §7.2.2), or the NSEC records covering the name and the wildcard (RFC 4035
    /// §3.1.3.2).
    fn prove_nxdomain(&mut self, qname: &[u8], label_starts: &[u8]) {
        let Some(signed) = self.signed else {
            return;
        };
        let (encloser, next_closer) = self.closest_encloser(qname, label_starts);
        let chain = signed.chain();
        match chain.kind() {
            DenialKind::Nsec3 => {
                self.push_denial(chain.matching(encloser.0));
                self.push_denial(chain.covering(next_closer));
            }
            DenialKind::Nsec => self.push_denial(chain.covering(qname)),
        }
        self.push_denial(chain.wildcard_cover(encloser.0));
    }

    /// A wildcard expansion: proof that the name itself does not exist (next closer
    /// covered, RFC 5155 §7.2.6; RFC 4035 §3.1.3.3); for wildcard NODATA also the
    /// closest encloser (RFC 5155 §7.2.5; the wildcard's own record is already in).
    fn prove_wildcard(&mut self, qname: &[u8], label_starts: &[u8], answers_before: usize) {
        let Some(signed) = self.signed else {
            return;
        };
        let (encloser, next_closer) = self.closest_encloser(qname, label_starts);
        let chain = signed.chain();
        match chain.kind() {
            DenialKind::Nsec3 => {
                if self.res.answer.len() == answers_before {
                    self.push_denial(chain.matching(encloser.0));
                }
                self.push_denial(chain.covering(next_closer));
            }
            DenialKind::Nsec => self.push_denial(chain.covering(qname)),
        }
    }

    /// RFC 8482: answer ANY with one RRset (a dynamic answer if the name has one).
    fn answer_any(&mut self, owner: Owner<'s>, node: NodeRef<'s>) {
        if let Some(dynamic) = node.dynamic() {
            if let Some(record) = dynamic.a.or(dynamic.aaaa).or(dynamic.cname) {
                self.answer_dynamic(owner, record, 1, node.id());
                return;
            }
        }
        let preferred = [rtype::A, rtype::AAAA, rtype::CNAME];
        let chosen = preferred
            .iter()
            .find_map(|&t| node.rrset(t))
            .or_else(|| node.rrsets().next());
        match chosen {
            Some((id, set)) => self.res.answer.push(RrRef {
                owner,
                rtype: set.rtype,
                ttl: set.ttl,
                rdata: self.zone.rdata(set),
                sigs: self.sigs(id),
            }),
            None => {
                self.negative(rcode::NOERROR, None);
                self.prove_nodata(node.id());
            }
        }
    }

    fn answer_dynamic(
        &mut self,
        owner: Owner<'s>,
        record: crate::model::RecordIndex,
        chain: usize,
        node: crate::zone::NodeId,
    ) {
        let Some(answer) = self.snapshot.dynamic_answer(record) else {
            self.negative(rcode::NOERROR, None);
            self.prove_nodata(node);
            return;
        };
        let set = if answer.is_client_dependent() {
            let (addr, prefix) = self.client.geo_source();
            let location = self.snapshot.geo.locate(addr, prefix);
            self.res.ecs_scope = self.res.ecs_scope.max(location.scope);
            answer.set_for(location.region)
        } else {
            answer.set_for(None)
        };
        let (picked, trickle) = set.pick_counted(self.rng);
        if trickle.is_some() {
            self.res.trickle = trickle;
        }
        match picked {
            Some(variant) => {
                let signed = self.signed.is_some();
                self.res.answer.push(RrRef {
                    owner,
                    rtype: answer.rtype,
                    ttl: set.ttl,
                    rdata: variant.rdata(),
                    sigs: if signed { variant.rrsigs() } else { NO_SIGS },
                });
                if self.cacheable(owner, chain) {
                    self.res.cached = variant.cached(signed);
                }
            }
            None => {
                // Nothing to answer (all down, held, no agreed primary): the chain's
                // record lists the type, so the set carries its own signed proof.
                self.negative(rcode::NOERROR, Some(set.ttl));
                match set.nodata_proof() {
                    Some(proof) if self.signed.is_some() => self.push_denial(Some(proof)),
                    _ => self.prove_nodata(node),
                }
            }
        }
    }

    fn follow_cname(&mut self, owner: Owner<'s>, node: NodeRef<'s>, qtype: u16, chain: usize) {
        let (ttl, rdata, sigs) = if let Some((id, set)) = node.rrset(rtype::CNAME) {
            (set.ttl, self.zone.rdata(set), self.sigs(id))
        } else if let Some(record) = node.dynamic().and_then(|d| d.cname) {
            let before = self.res.answer.len();
            self.answer_dynamic(owner, record, chain + 1, node.id());
            if self.res.answer.len() == before {
                return; // all-down nodata: the negative answer is already in place
            }
            let last = self.res.answer[before];
            self.res.answer.pop();
            (last.ttl, last.rdata, last.sigs)
        } else {
            self.negative(rcode::NOERROR, None);
            self.prove_nodata(node.id());
            return;
        };
        self.res.answer.push(RrRef {
            owner,
            rtype: rtype::CNAME,
            ttl,
            rdata,
            sigs,
        });
        if let Some(slot) = self.visited.get_mut(self.visited_len) {
            *slot = node.id().0;
            self.visited_len += 1;
        }
        let Some(target) = rdata.iter().next() else {
            return;
        };
        if chain + 1 >= MAX_CHAIN || !name::is_at_or_below_ignore_case(target, self.zone.origin()) {
            return; // out of zone (the resolver follows it) or chain too long
        }
        let mut lower = [0u8; MAX_NAME_LEN];
        let Some(lower) = lower.get_mut(..target.len()) else {
            return;
        };
        lower.copy_from_slice(target);
        name::lowercase_in_place(lower);
        let mut starts = [0u8; crate::zone::store::MAX_LABELS];
        let starts = crate::zone::store::label_starts_into(lower, &mut starts);
        let target_owner = Owner::Name(target);
        let found = self.zone.find(lower, starts);
        match found {
            Lookup::Node(id) | Lookup::Wildcard(id) => {
                if self.visited[..self.visited_len].contains(&id.0) {
                    return; // a loop: every CNAME of it is in the answer once
                }
                let next = self.zone.node(id);
                if self
                    .res
                    .answer
                    .iter()
                    .filter(|rr| rr.rtype == rtype::CNAME)
                    .count()
                    > MAX_CHAIN
                {
                    return;
                }
                let before = self.res.answer.len();
                self.answer_node(target_owner, next, qtype, chain + 1);
                if matches!(found, Lookup::Wildcard(_)) {
                    self.prove_wildcard(lower, starts, before);
                }
            }
            Lookup::Delegation(cut) => {
                let authoritative = self.res.authoritative;
                self.referral(cut);
                self.res.authoritative = authoritative;
                self.res.referral = false;
            }
            // RFC 6604: the rcode describes the last name in the chain.
            Lookup::NxDomain => {
                self.negative(rcode::NXDOMAIN, None);
                self.prove_nxdomain(lower, starts);
            }
        }
    }

    /// NXDOMAIN or NODATA: the SOA in authority with the negative TTL.
    fn negative(&mut self, code: u16, ttl_cap: Option<u32>) {
        self.res.rcode = code;
        let (_, soa) = self.zone.soa();
        let ttl = ttl_cap.map_or(self.zone.negative_ttl(), |cap| {
            cap.min(self.zone.negative_ttl())
        });
        let (soa_id, _) = self.zone.soa();
        self.res.authority.push(RrRef {
            owner: Owner::Name(self.zone.origin()),
            rtype: rtype::SOA,
            ttl,
            rdata: self.zone.rdata(soa),
            sigs: self.sigs(soa_id),
        });
    }

    /// A referral to the delegation at `cut`: NS in authority, glue in additional.
    fn referral(&mut self, cut: crate::zone::NodeId) {
        let node = self.zone.node(cut);
        self.res.authoritative = false;
        self.res.referral = true;
        if let Some((_, ns)) = node.rrset(rtype::NS) {
            let rdata = self.zone.rdata(ns);
            self.res.authority.push(RrRef {
                owner: Owner::Name(node.name()),
                rtype: rtype::NS,
                ttl: ns.ttl,
                rdata,
                sigs: NO_SIGS,
            });
            for target in rdata.iter() {
                self.add_addresses(target, true);
            }
        }
        // Signed zones: the DS RRset, or the proof that there is none (RFC 4035
        // §3.1.4, RFC 5155 §7.2.7).
        if self.signed.is_some() {
            match node.rrset(rtype::DS) {
                Some((id, ds)) => self.res.authority.push(RrRef {
                    owner: Owner::Name(node.name()),
                    rtype: rtype::DS,
                    ttl: ds.ttl,
                    rdata: self.zone.rdata(ds),
                    sigs: self.sigs(id),
                }),
                None => self.prove_nodata(cut),
            }
        }
    }

    /// Additional-section processing for MX, NS and SRV answers (static A/AAAA of
    /// in-zone targets).
    fn add_additional_for(&mut self, rr_type: u16, rdata: PackedRdata<'s>) {
        let skip = match rr_type {
            rtype::MX => 2,
            rtype::NS => 0,
            rtype::SRV => 6,
            _ => return,
        };
        for record in rdata.iter() {
            if let Some(target) = record.get(skip..) {
                self.add_addresses(target, false);
            }
        }
    }

    fn add_addresses(&mut self, target: &'s [u8], glue: bool) {
        if self.res.additional.len() >= MAX_ADDITIONAL
            || !name::is_at_or_below_ignore_case(target, self.zone.origin())
        {
            return;
        }
        let mut lower = [0u8; MAX_NAME_LEN];
        let Some(lower) = lower.get_mut(..target.len()) else {
            return;
        };
        lower.copy_from_slice(target);
        name::lowercase_in_place(lower);
        let Some(id) = self.zone.get(lower) else {
            return;
        };
        let node = self.zone.node(id);
        if node.cut().is_some() && !glue {
            return; // below a cut only glue is served, and only in referrals
        }
        for t in [rtype::A, rtype::AAAA] {
            if let Some((id, set)) = node.rrset(t) {
                if self.res.additional.len() < MAX_ADDITIONAL {
                    // Glue is not signed; authoritative addresses are.
                    let sigs = if node.cut().is_some() {
                        NO_SIGS
                    } else {
                        self.sigs(id)
                    };
                    self.res.additional.push(RrRef {
                        owner: Owner::Name(node.name()),
                        rtype: t,
                        ttl: set.ttl,
                        rdata: self.zone.rdata(set),
                        sigs,
                    });
                }
            }
        }
    }
}
