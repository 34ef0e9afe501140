//! One zone, signed: the DNSSEC RRsets added at its apex, an RRSIG for every
//! authoritative static RRset, and the denial chain — built once per signing (at
//! load and at each refresh) and shared by every snapshot until the next.
//!
//! What is signed: every RRset at an authoritative name, except the NS RRset of a
//! delegation point and glue below it (RFC 4035 §2.2). DNSKEY, CDS and CDNSKEY are
//! signed by the active KSKs/CSKs, everything else by the active ZSKs/CSKs.

use std::sync::Arc;

use super::cache::SignatureCache;
use super::chain::{Chain, ChainName, ChainRecord, nsec3param_rdata};
use super::keys::{Key, is_parent_key};
use super::sign::{Window, sign_rrset};
use super::{DnssecError, KeyRing, ZoneKeys, rtype};
use crate::config::DenialKind;
use crate::zone::store::rtype as zone_rtype;
use crate::zone::{PackedRdata, RrSetId, Zone};

/// RRSIGs of a zone's static RRsets, indexed by [`RrSetId`].
#[derive(Debug, Default)]
struct RrsigTable {
    /// (start, length, count) into `bytes`; length 0 = unsigned.
    spans: Vec<(u32, u32, u16)>,
    bytes: Vec<u8>,
}

/// A signed denial record made outside the chain (see [`SignedZone::nodata_proof`]).
#[derive(Clone, Debug)]
pub(crate) struct DenialProof {
    owner: Box<[u8]>,
    rtype: u16,
    ttl: u32,
    rdata: Box<[u8]>,
    sigs: Box<[u8]>,
    sig_count: u16,
}

impl DenialProof {
    /// The record, as the chain's records are served.
    pub(crate) fn record(&self) -> ChainRecord<'_> {
        ChainRecord {
            owner: &self.owner,
            rtype: self.rtype,
            ttl: self.ttl,
            rdata: PackedRdata::new(&self.rdata, 1),
            sigs: PackedRdata::new(&self.sigs, self.sig_count),
        }
    }
}

/// A signed zone.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SignedZone {
    keys: Arc<KeyRing>,
    keys_index: usize,
    /// Unix second the signatures were made at.
    pub signed_at: u64,
    /// Their validity window.
    pub window: Window,
    rrsigs: Arc<RrsigTable>,
    chain: Arc<Chain>,
    /// The SOA's RRSIGs (re-made when a transfer patches the serial).
    soa: (RrSetId, Box<[u8]>, u16),
    /// Signatures made after the build (dynamic answers, transferred RRsets, proofs,
    /// SOAs), reused while their RRset is the same: shared by every snapshot and
    /// transfer stamp of this signing.
    cache: Arc<SignatureCache>,
}

/// Adds the apex RRsets of a signed zone (DNSKEY of every published key, CDS and
/// CDNSKEY of the KSKs/CSKs the parent should hold, NSEC3PARAM for NSEC3 chains),
/// replacing any the zone file had.
pub(crate) fn prepare_zone(zone: &Zone, keys: &ZoneKeys, ring: &KeyRing, now: u64) -> Zone {
    let ttl = ring.settings.dnskey_ttl;
    let dnskey: Vec<Vec<u8>> = keys.published(now).map(Key::dnskey_rdata).collect();
    let parent: Vec<&Key> = keys.keys.iter().filter(|k| is_parent_key(k, now)).collect();
    let cds: Vec<Vec<u8>> = parent.iter().map(|k| k.ds_rdata()).collect();
    let cdnskey: Vec<Vec<u8>> = parent.iter().map(|k| k.dnskey_rdata()).collect();
    let mut sets = vec![
        (rtype::DNSKEY, ttl, dnskey),
        (rtype::CDS, ttl, cds),
        (rtype::CDNSKEY, ttl, cdnskey),
    ];
    sets.push((
        rtype::NSEC3PARAM,
        0,
        match ring.settings.denial {
            DenialKind::Nsec3 => vec![nsec3param_rdata()],
            DenialKind::Nsec => Vec::new(),
        },
    ));
    zone.with_apex_rrsets(&sets)
}

/// Opt-out also omits empty non-terminals that exist only because of omitted
/// names (RFC 5155 §7.1): an empty name stays only with a kept name below it.
fn omit_empty_above_omitted(names: &mut [ChainName], origin: &[u8]) {
    let mut needed: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for name in names.iter().filter(|n| !n.omit && !n.types.is_empty()) {
        let mut at = crate::zone::name::parent(&name.name);
        while let Some(parent) = at.filter(|p| p.len() >= origin.len()) {
            if !needed.insert(parent.to_vec()) {
                break;
            }
            at = crate::zone::name::parent(parent);
        }
    }
    for name in names.iter_mut() {
        if name.types.is_empty() && name.name != origin && !needed.contains(&name.name) {
            name.omit = true;
        }
    }
}

/// Whether RRsets of `rtype` are signed with the key-signing keys.
fn signed_by_ksk(rtype: u16) -> bool {
    matches!(rtype, rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY)
}

impl SignedZone {
    /// Signs `zone` (already [`prepare_zone`]d) with the keys of zone `keys_index` of
    /// `ring` active at `now`. `dynamic_types(node)` lists the types dynamic records
    /// give a node in any health state (they go into the chain's bitmaps).
    pub(crate) fn build(
        zone: &Zone,
        ring: Arc<KeyRing>,
        keys_index: usize,
        now: u64,
        dynamic_types: &dyn Fn(crate::zone::NodeRef<'_>) -> Vec<u16>,
    ) -> Result<Self, DnssecError> {
        let keys = &ring.zones[keys_index];
        let window = ring.window(now);
        let zsks = keys.signers(now, false);
        let ksks = keys.signers(now, true);
        for (set, what) in [(&zsks, "zone-signing"), (&ksks, "key-signing")] {
            if set.is_empty() {
                return Err(DnssecError::NoActiveKey {
                    zone: keys.zone.clone(),
                    what,
                    directory: ring.settings.key_directory.clone(),
                });
            }
        }
        let signer = zone.origin();
        let mut table = RrsigTable {
            spans: vec![(0, 0, 0); zone.rrset_count()],
            bytes: Vec::new(),
        };
        let mut names = Vec::new();
        let mut dynamic_names = 0usize;
        for node in zone.nodes() {
            let delegation = node.is_delegation();
            if node.cut().is_some_and(|c| c != node.id()) {
                continue; // below a cut: glue, not authoritative
            }
            let mut types = Vec::new();
            let mut signed = false;
            for (id, set) in node.rrsets() {
                if delegation && set.rtype != zone_rtype::DS {
                    if set.rtype == zone_rtype::NS {
                        types.push(set.rtype);
                    }
                    continue;
                }
                types.push(set.rtype);
                let by = if signed_by_ksk(set.rtype) {
                    &ksks
                } else {
                    &zsks
                };
                let start = table.bytes.len();
                let count = sign_rrset(
                    by,
                    signer,
                    node.name(),
                    set.rtype,
                    set.ttl,
                    zone.rdata(set).iter(),
                    window,
                    &mut table.bytes,
                )?;
                table.spans[id.0 as usize] =
                    (start as u32, (table.bytes.len() - start) as u32, count);
                signed = true;
            }
            if !delegation {
                let dynamic = dynamic_types(node);
                signed |= !dynamic.is_empty();
                dynamic_names += usize::from(!dynamic.is_empty());
                types.extend(dynamic);
            }
            let insecure = delegation && node.rrset(zone_rtype::DS).is_none();
            names.push(ChainName {
                node: node.id().0,
                name: node.name().to_vec(),
                types,
                signed,
                omit: ring.settings.opt_out && insecure,
            });
        }
        if ring.settings.opt_out {
            omit_empty_above_omitted(&mut names, zone.origin());
        }
        table.bytes.shrink_to_fit();
        let mut sign = |owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8], out: &mut Vec<u8>| {
            sign_rrset(&zsks, signer, owner, rtype, ttl, [rdata], window, out)
        };
        let chain = Chain::build(
            ring.settings.denial,
            zone.origin(),
            zone.negative_ttl(),
            names,
            zone.node_count(),
            &mut sign,
        )?;
        let (soa_id, _) = zone.soa();
        let (start, len, count) = table.spans[soa_id.0 as usize];
        let soa_sigs: Box<[u8]> = table.bytes[start as usize..(start + len) as usize].into();
        drop(zsks);
        drop(ksks);
        Ok(Self {
            keys: ring,
            keys_index,
            signed_at: now,
            window,
            rrsigs: Arc::new(table),
            chain: Arc::new(chain),
            soa: (soa_id, soa_sigs, count),
            // Room for every dynamic RRset in a few states and TTLs per generation.
            cache: Arc::new(SignatureCache::new(
                super::cache::DEFAULT_CAPACITY.max(dynamic_names.saturating_mul(8)),
            )),
        })
    }

    /// Whether `other` is the same signing (a copy of this one, perhaps with another
    /// SOA signature): the same keys, window and signatures.
    pub(crate) fn same_signing(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.rrsigs, &other.rrsigs) && Arc::ptr_eq(&self.cache, &other.cache)
    }

    /// The keys this zone is signed with.
    pub(crate) fn keys(&self) -> &ZoneKeys {
        &self.keys.zones[self.keys_index]
    }

    /// The key ring.
    pub(crate) fn ring(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// RRSIGs of a static RRset (none for unsigned ones: delegation NS, glue).
    pub(crate) fn sigs(&self, id: RrSetId) -> PackedRdata<'_> {
        if id == self.soa.0 {
            return PackedRdata::new(&self.soa.1, self.soa.2);
        }
        match self.rrsigs.spans.get(id.0 as usize) {
            Some(&(start, len, count)) if len > 0 => PackedRdata::new(
                &self.rrsigs.bytes[start as usize..(start + len) as usize],
                count,
            ),
            _ => PackedRdata::new(&[], 0),
        }
    }

    /// The denial chain.
    pub(crate) fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Signs an RRset made at snapshot build time (a dynamic variant) with the zone
    /// keys and window of this signing; appends packed RRSIG rdata to `out`. An
    /// RRset signed before by this signing gets the same signatures again (see
    /// [`SignatureCache`]): unchanged content keeps its bytes.
    pub(crate) fn sign<'a>(
        &self,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'a [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<u16, DnssecError> {
        let keys = self.keys().signers(self.signed_at, signed_by_ksk(rtype));
        let signer = &self.keys().wire;
        let window = self.window;
        self.cache.sign(
            &keys,
            owner,
            rtype,
            ttl,
            rdatas,
            window,
            out,
            |rdatas, out| {
                sign_rrset(
                    &keys,
                    signer,
                    owner,
                    rtype,
                    ttl,
                    rdatas.iter().copied(),
                    window,
                    out,
                )
            },
        )
    }

    /// The signed proof for a NODATA of `absent` at `name` that only some health
    /// states give (a dynamic record with nothing to answer): the name's chain record
    /// without `absent` in its bitmap, made when the snapshot is built. Its TTL is at
    /// most `ttl`, so resolvers that reuse denial records (RFC 8198) forget it as
    /// soon as the negative answer. None when the chain record already omits the
    /// type.
    pub(crate) fn nodata_proof(
        &self,
        name: &[u8],
        absent: u16,
        ttl: u32,
    ) -> Result<Option<DenialProof>, DnssecError> {
        let Some((owner, rdata)) = self.chain.matching_without(name, &[absent]) else {
            return Ok(None);
        };
        let rtype = match self.chain.kind() {
            DenialKind::Nsec3 => rtype::NSEC3,
            DenialKind::Nsec => rtype::NSEC,
        };
        let ttl = ttl.min(self.chain.ttl());
        let mut sigs = Vec::new();
        let sig_count = self.sign(&owner, rtype, ttl, [rdata.as_slice()], &mut sigs)?;
        let mut packed = Vec::with_capacity(rdata.len() + 2);
        crate::zone::store::pack_rdata(&mut packed, &rdata);
        Ok(Some(DenialProof {
            owner: owner.into(),
            rtype,
            ttl,
            rdata: packed.into(),
            sigs: sigs.into(),
            sig_count,
        }))
    }

    /// The same signatures with the SOA re-signed (after `zone`'s serial changed).
    pub(crate) fn with_soa_of(&self, zone: &Zone) -> Result<Self, DnssecError> {
        let (id, set) = zone.soa();
        let mut sigs = Vec::new();
        let count = self.sign(
            zone.origin(),
            zone_rtype::SOA,
            set.ttl,
            zone.rdata(set).iter(),
            &mut sigs,
        )?;
        let mut copy = self.clone();
        copy.soa = (id, sigs.into(), count);
        Ok(copy)
    }
}

/// Signs every zone of `zones` that `signing` has keys for: returns the zones (signed
/// ones with their apex DNSSEC RRsets) and, parallel to them, the signatures.
pub(crate) fn sign_zones(
    zones: &crate::zone::ZoneSet,
    signing: &super::Signing,
) -> Result<(crate::zone::ZoneSet, Vec<Option<SignedZone>>), DnssecError> {
    let mut out = crate::zone::ZoneSet::clone_of(zones);
    let mut signed = Vec::with_capacity(zones.zones().len());
    for (index, zone) in zones.zones().iter().enumerate() {
        let Some((keys_index, keys)) = signing.keys.zone(zone.origin()) else {
            signed.push(None);
            continue;
        };
        let prepared = prepare_zone(zone, keys, &signing.keys, signing.now);
        let zone_signed = SignedZone::build(
            &prepared,
            signing.keys.clone(),
            keys_index,
            signing.now,
            &dynamic_types,
        )?;
        out = out.with_zone(index, Arc::new(prepared));
        signed.push(Some(zone_signed));
    }
    Ok((out, signed))
}

/// Types the dynamic records bound at a node can answer, in any health state.
fn dynamic_types(node: crate::zone::NodeRef<'_>) -> Vec<u16> {
    node.dynamic().map_or_else(Vec::new, |links| {
        [
            (links.a, zone_rtype::A),
            (links.aaaa, zone_rtype::AAAA),
            (links.cname, zone_rtype::CNAME),
        ]
        .into_iter()
        .filter_map(|(link, t)| link.map(|_| t))
        .collect()
    })
}
