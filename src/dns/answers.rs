//! Answer data: the immutable [`Snapshot`] every answer is computed from and what it
//! holds — pre-encoded static answers, dynamic records' variants, limits. Data only:
//! building lives in [`super::snapshot`], reading in [`super::resolve`].
//!
//! ```text
//!  Snapshot ─┬─ zones (Arc, rebuilt on reload) ── static tails: each static RRset's
//!            │                                   answer pre-encoded for its own name
//!            ├─ health (Arc)
//!            └─ dynamic answers (rebuilt when health changes): per record, per pool
//!               list (one, or one per geo region), the policy decision and the
//!               answers it can produce, each pre-encoded; one is picked per query
//!  signed zones (DNSSEC): per zone a SignedZone (RRSIGs, denial chain); static
//!  tails and each variant also pre-encoded with their RRSIGs, for DO=1 queries
//! ```

use std::sync::Arc;

use crate::config::Config;
use crate::dnssec::SignedZone;
use crate::health::HealthSnapshot;
use crate::model::{EndpointIndex, PoolIndex, RandomSource, RecordIndex, RegionIndex};
use crate::policy::{Decision, GeoMap};
use crate::zone::{PackedRdata, RrSetId, ZoneSet};

/// Pre-encoded answer/authority/additional sections and their counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached<'s> {
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
pub(super) struct TailSpan {
    pub(super) start: u32,
    pub(super) len: u16,
    pub(super) ancount: u16,
    pub(super) nscount: u8,
    pub(super) arcount: u8,
    pub(super) present: bool,
}

/// Pre-encoded answers for every static RRset of one zone, indexed by [`RrSetId`].
/// Encoded once per zone load or signing and shared (`Arc`) by every later
/// snapshot; a new SOA serial replaces the one answer that carries the SOA
/// (`patch`) and shares the rest.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct StaticTails {
    pub(super) spans: Arc<[TailSpan]>,
    pub(super) bytes: Arc<[u8]>,
    pub(super) patch: Option<Arc<TailPatch>>,
}

/// The answer of one RRset encoded again (the apex SOA's, for a new serial), served
/// instead of its span in [`StaticTails::bytes`].
#[derive(Debug)]
pub(super) struct TailPatch {
    pub(super) id: RrSetId,
    pub(super) span: TailSpan,
    pub(super) bytes: Box<[u8]>,
}

/// One answer a dynamic record can give.
#[derive(Clone, Debug)]
pub(crate) struct Variant {
    /// Endpoints, in answer order.
    pub endpoints: Vec<EndpointIndex>,
    pub(super) rdata: Box<[u8]>,
    pub(super) count: u16,
    pub(super) tail: Box<[u8]>,
    pub(super) ancount: u16,
    /// RRSIGs of the answer (signed zones) and the answer encoded with them.
    pub(super) sigs: Box<[u8]>,
    pub(super) sig_count: u16,
    pub(super) tail_dnssec: Box<[u8]>,
}

impl Variant {
    /// The records' rdata.
    pub(crate) fn rdata(&self) -> PackedRdata<'_> {
        PackedRdata::new(&self.rdata, self.count)
    }

    /// The answer's RRSIGs (empty unless its zone is signed).
    pub(crate) fn rrsigs(&self) -> PackedRdata<'_> {
        PackedRdata::new(&self.sigs, self.sig_count)
    }

    /// The pre-encoded answer for a query of the record's own name and type (with
    /// its RRSIGs when `dnssec`).
    pub(crate) fn cached(&self, dnssec: bool) -> Option<Cached<'_>> {
        Some(if dnssec {
            Cached {
                bytes: &self.tail_dnssec,
                ancount: self.ancount + self.sig_count,
                nscount: 0,
                arcount: 0,
            }
        } else {
            Cached {
                bytes: &self.tail,
                ancount: self.ancount,
                nscount: 0,
                arcount: 0,
            }
        })
    }
}

/// The answers of one record for one pool list.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct VariantSet {
    /// The policy decision (why these answers); shared by the records of one
    /// decision class (same rules, pools and state) in one snapshot.
    pub decision: Arc<Decision>,
    /// TTL of the answers.
    pub ttl: u32,
    /// The pre-encoded (and signed) answers, shared with earlier and later sets
    /// whose decision gave the same answers.
    pub(super) built: Arc<BuiltVariants>,
    /// Cumulative pick weights (empty: uniform).
    pub(super) cumulative: Arc<[u64]>,
    /// The answers built for this record's recent decisions, newest first (this
    /// set's among them), each with its outcome's key ([`OutcomeKey`]): a health
    /// change back to a recent state reuses them instead of encoding and signing
    /// again. Inline: carrying them over allocates nothing.
    pub(super) recent: smallvec::SmallVec<[(OutcomeKey, Arc<BuiltVariants>); RECENT_OUTCOMES]>,
    /// Trickle in force: which picks are trickle answers, and their counter.
    pub(super) trickle: Option<TrickleCount>,
}

/// The answers of a set that go to trickle pools (indices `from..`), and the
/// per-thread counter slot they are counted in.
#[derive(Clone, Copy, Debug)]
pub(super) struct TrickleCount {
    /// Index of the first trickle answer.
    pub(super) from: usize,
    /// Counter slot ([`crate::telemetry::metrics::trickle_slot`]).
    pub(super) slot: u8,
}

/// Outcomes of a record's decision whose answers are kept for reuse (a flapping
/// endpoint moves a record between two or three).
pub(super) const RECENT_OUTCOMES: usize = 4;

/// The key of one outcome of a decision (TTL, signing, the endpoint orders of its
/// answers), kept beside each recent [`BuiltVariants`] so finding a reusable one
/// reads no answer data: an interned outcome's id ([`INTERNED`] set; exact), or a
/// hash (a match is then checked in full).
pub(super) type OutcomeKey = u64;

/// The bit of an [`OutcomeKey`] that marks an interned outcome's id.
pub(super) const INTERNED: OutcomeKey = 1 << 63;

/// The answers one outcome of a decision can produce (TTL and endpoint orders),
/// each pre-encoded and signed.
#[derive(Debug)]
pub(super) struct BuiltVariants {
    /// TTL of the answers.
    pub(super) ttl: u32,
    /// Whether the answers carry signatures.
    pub(super) signed: bool,
    /// Possible answers; empty means NODATA.
    pub(super) variants: Vec<Variant>,
    /// Signed zones, no variants: the proof that the record's type is absent (the
    /// chain's own record lists it, since it is there in other health states).
    pub(super) nodata_proof: Option<crate::dnssec::DenialProof>,
}

impl VariantSet {
    /// The signed proof served with this set's NODATA (signed zones, no variants).
    pub(crate) fn nodata_proof(&self) -> Option<crate::dnssec::chain::ChainRecord<'_>> {
        self.built
            .nodata_proof
            .as_ref()
            .map(crate::dnssec::DenialProof::record)
    }

    /// Possible answers; empty means NODATA.
    #[cfg(test)]
    pub(crate) fn variants(&self) -> &[Variant] {
        &self.built.variants
    }

    /// Picks one answer, and the trickle counter slot to count it in when it is a
    /// trickle answer.
    pub(crate) fn pick_counted(
        &self,
        rng: &mut dyn RandomSource,
    ) -> (Option<&Variant>, Option<u8>) {
        let variants = &self.built.variants;
        let index = match variants.len() {
            0 => return (None, None),
            1 => 0,
            n if self.cumulative.is_empty() => rng.below(n as u64) as usize,
            n => {
                let total = self.cumulative.last().copied().unwrap_or(0);
                let point = rng.below(total.max(1));
                self.cumulative.partition_point(|&c| c <= point).min(n - 1)
            }
        };
        let trickle = self.trickle.filter(|t| index >= t.from).map(|t| t.slot);
        (variants.get(index), trickle)
    }
}

/// Everything a dynamic record can answer right now.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DynamicAnswer {
    /// The record.
    pub record: RecordIndex,
    /// The record's lower-case wire name (shared with the next build).
    pub(super) qname: Arc<[u8]>,
    /// RR type code answered.
    pub rtype: u16,
    /// Set index per region (geo records only; shared with the next build).
    pub(super) region_sets: Arc<[usize]>,
    pub(super) default_set: usize,
    /// One set per distinct pool list (inline for the one of a record that is not
    /// geo).
    pub sets: smallvec::SmallVec<[VariantSet; 1]>,
    /// The pool list of each set, as the answers order it (a latency record's
    /// chosen pool first).
    pub(super) lists: Vec<Vec<PoolIndex>>,
}

impl DynamicAnswer {
    /// Whether the answer depends on the client's location.
    pub(crate) fn is_client_dependent(&self) -> bool {
        self.sets.len() > 1 || !self.region_sets.is_empty()
    }

    /// Names of the regions served by set `index` (`default` included); empty for
    /// records that are not geo.
    pub(crate) fn regions_of_set(&self, index: usize, config: &Config) -> Vec<String> {
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

    /// The pool list behind set `index` as the answers order it: the default list
    /// or a region's (a latency record's chosen pool first).
    pub(crate) fn pools_of_set(&self, index: usize) -> &[PoolIndex] {
        self.lists.get(index).map_or(&[][..], Vec::as_slice)
    }

    /// The set for a client region (`None`: the default list).
    pub(crate) fn set_for(&self, region: Option<RegionIndex>) -> &VariantSet {
        let index = region
            .and_then(|r| self.region_sets.get(usize::from(r.0)))
            .copied()
            .unwrap_or(self.default_set);
        &self.sets[index]
    }
}

/// Transport limits and protocol switches.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Limits {
    /// Largest UDP response to EDNS clients.
    pub max_udp_payload: u16,
    /// Whether ECS is honoured.
    pub ecs: bool,
}

/// Static data that changes only when zones are reloaded.
#[derive(Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ZoneData {
    /// The zones.
    #[cfg_attr(
        not(feature = "testing"),
        expect(dead_code, reason = "read by the integration tests only")
    )]
    pub zones: Arc<ZoneSet>,
    /// Their pre-encoded answers, parallel to `zones.zones()`.
    pub tails: Vec<StaticTails>,
    /// The same with RRSIGs, for DO=1 queries (empty for unsigned zones).
    pub tails_dnssec: Vec<StaticTails>,
    /// Signatures and denial chain per zone (None: not signed).
    pub signed: Vec<Option<SignedZone>>,
}

/// The state answers are computed from.
#[derive(Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Snapshot {
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
    /// The dynamic records grouped by what their decisions depend on (made with
    /// the config, shared by every snapshot of it).
    pub(super) classes: Arc<DecisionClasses>,
}

/// Dynamic records grouped into decision classes: records whose settings are the
/// same but for their names (selection, pools, gates, TTLs, all-down mode, …)
/// reach the same decision under the same health and record state, so a health
/// change decides once per class, not once per record.
#[derive(Debug, Default)]
pub(super) struct DecisionClasses {
    /// The class of each record (indexed by [`RecordIndex`]).
    pub(super) of: Vec<u32>,
    /// Records per class.
    pub(super) size: Vec<u32>,
    /// The recent outcomes of each class's decisions (per class and pool list),
    /// each with an id no other outcome ever gets: a record finds the answers it
    /// built for an outcome by that id alone. Only publishers take the lock.
    pub(super) outcomes: std::sync::Mutex<std::collections::HashMap<(u32, usize), Vec<Interned>>>,
}

/// One recent outcome of a decision class: TTL and answer orders, and its id.
#[derive(Debug)]
pub(super) struct Interned {
    /// TTL of the answers.
    pub(super) ttl: u32,
    /// The endpoints of each answer, in order.
    pub(super) orders: Vec<Vec<EndpointIndex>>,
    /// The outcome's id (unique in the process).
    pub(super) id: u64,
}

impl Snapshot {
    /// The pre-encoded answer of a static RRset, if one was built (with RRSIGs
    /// when `dnssec`).
    pub(crate) fn static_tail(
        &self,
        zone_index: usize,
        rrset: RrSetId,
        dnssec: bool,
    ) -> Option<Cached<'_>> {
        let tails = if dnssec {
            &self.data.tails_dnssec
        } else {
            &self.data.tails
        }
        .get(zone_index)?;
        let (span, bytes) = match &tails.patch {
            Some(patch) if patch.id == rrset => (&patch.span, &patch.bytes[..]),
            _ => (tails.spans.get(rrset.0 as usize)?, &tails.bytes[..]),
        };
        if !span.present {
            return None;
        }
        let start = span.start as usize;
        Some(Cached {
            bytes: &bytes[start..start + usize::from(span.len)],
            ancount: span.ancount,
            nscount: u16::from(span.nscount),
            arcount: u16::from(span.arcount),
        })
    }

    /// The dynamic answers of a record.
    pub(crate) fn dynamic_answer(&self, record: RecordIndex) -> Option<&DynamicAnswer> {
        self.dynamic.get(record.0 as usize).map(|a| a.as_ref())
    }
}
