//! The transferable content of a zone: its static records plus, for every dynamic
//! record, the one answer that does not depend on the client.
//!
//! ```text
//!  Zone (static, Arc) ──▶ StaticContent (once per loaded zone: records, hash)
//!  Snapshot.dynamic ────▶ dynamic records (per publish; small)
//!                         └─▶ ZoneContent { soa, static, dynamic, hash }
//! ```
//!
//! What a dynamic record transfers as: failover → the serving pool's usable
//! endpoints; weighted / multivalue → every usable endpoint; geo → the default
//! region's answer (a secondary answers every client alike). Slow start and
//! `max_answers` are ignored: the secondary has no per-query choice. A dynamic CNAME
//! transfers as its first candidate; an empty (NODATA) answer as no record.
//!
//! A signed zone transfers with its signatures: the RRSIG of every static RRset
//! and the denial chain (NSEC3 or NSEC, with RRSIGs) from the zone's
//! [`SignedZone`]; the transferable dynamic RRsets are signed here (the same keys
//! and window); the SOA's RRSIG is made for each serial. DNSKEY, CDS, CDNSKEY and
//! NSEC3PARAM are static apex records of the signed zone already.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::dns::answers::DynamicAnswer;
use crate::dnssec::{SignedZone, rtype as sec};
use crate::model::EndpointTarget;
use crate::zone::{Zone, name, rtype};

/// One resource record (class IN) in uncompressed wire form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Record {
    /// Lower-case wire owner name.
    pub owner: Box<[u8]>,
    /// RR type.
    pub rtype: u16,
    /// Rdata (names uncompressed).
    pub rdata: Box<[u8]>,
    /// TTL.
    pub ttl: u32,
}

/// The static records of one loaded zone (everything but the apex SOA), sorted.
#[derive(Debug)]
pub(crate) struct StaticContent {
    /// The records.
    pub records: Vec<Record>,
    /// The apex SOA rdata as loaded (its serial is the zone file's).
    pub soa_rdata: Box<[u8]>,
    /// TTL of the SOA.
    pub soa_ttl: u32,
    /// The zone file's serial.
    pub file_serial: u32,
    /// SHA-256 over the records and the SOA without its serial.
    pub hash: [u8; 32],
    /// Owners of dynamic records and the records bound there.
    pub dynamic_owners: Vec<(Box<[u8]>, Vec<crate::model::RecordIndex>)>,
    /// Sorted names with no static RRset at or below them: they are in the
    /// transferred zone only while a dynamic record at or below them answers.
    pub hollow: Vec<Box<[u8]>>,
}

impl StaticContent {
    /// Collects the static records of `zone` (with their signatures and the denial
    /// chain when `signed`).
    pub(crate) fn of(zone: &Zone, signed: Option<&SignedZone>) -> Self {
        let mut records = Vec::with_capacity(zone.record_count());
        let mut dynamic_owners = Vec::new();
        let mut backed: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        for node in zone.nodes().filter(|n| n.rrsets().next().is_some()) {
            let mut at = Some(node.name());
            while let Some(name) = at.filter(|n| backed.insert(n)) {
                at = name::parent(name).filter(|p| p.len() >= zone.origin().len());
            }
        }
        let mut hollow: Vec<Box<[u8]>> = zone
            .nodes()
            .filter(|n| !backed.contains(n.name()))
            .map(|n| n.name().into())
            .collect();
        hollow.sort();
        for node in zone.nodes() {
            if let Some(links) = node.dynamic() {
                let bound: Vec<_> = [links.a, links.aaaa, links.cname]
                    .into_iter()
                    .flatten()
                    .collect();
                dynamic_owners.push((node.name().into(), bound));
            }
            for (id, set) in node.rrsets() {
                if node.is_apex() && set.rtype == rtype::SOA {
                    continue;
                }
                for rrsig in signed.map(|s| s.sigs(id)).iter().flat_map(|p| p.iter()) {
                    records.push(Record {
                        owner: node.name().into(),
                        rtype: sec::RRSIG,
                        rdata: rrsig.into(),
                        ttl: set.ttl,
                    });
                }
                for rdata in zone.rdata(set).iter() {
                    records.push(Record {
                        owner: node.name().into(),
                        rtype: set.rtype,
                        rdata: rdata.into(),
                        ttl: set.ttl,
                    });
                }
            }
        }
        for entry in signed.iter().flat_map(|s| s.chain().records()) {
            let rdata = entry.rdata.iter().next().unwrap_or_default();
            records.push(Record {
                owner: entry.owner.into(),
                rtype: entry.rtype,
                rdata: rdata.into(),
                ttl: entry.ttl,
            });
            for rrsig in entry.sigs.iter() {
                records.push(Record {
                    owner: entry.owner.into(),
                    rtype: sec::RRSIG,
                    rdata: rrsig.into(),
                    ttl: entry.ttl,
                });
            }
        }
        records.sort();
        records.dedup();
        let (_, soa) = zone.soa();
        let soa_rdata: Box<[u8]> = zone.rdata(soa).iter().next().unwrap_or_default().into();
        let mut hasher = Sha256::new();
        hasher.update(zone.origin());
        hash_soa(&mut hasher, &soa_rdata, soa.ttl);
        for record in &records {
            hash_record(&mut hasher, record);
        }
        Self {
            records,
            soa_rdata,
            soa_ttl: soa.ttl,
            file_serial: zone.soa_serial(),
            hash: hasher.finalize().into(),
            dynamic_owners,
            hollow,
        }
    }
}

/// A zone's transferable content at one serial.
#[derive(Debug)]
pub(crate) struct ZoneContent {
    /// Lower-case wire origin.
    pub origin: Box<[u8]>,
    /// The serial.
    pub serial: u32,
    /// Static records (shared while the zone is not reloaded).
    pub statics: Arc<StaticContent>,
    /// The dynamic records' client-independent answers (with their RRSIGs and
    /// the chain records they need, when signed), sorted; shared with an earlier
    /// version whose dynamic answers were the same (see [`Self::again`]).
    pub dynamic: Arc<[Record]>,
    /// The RRSIGs of the SOA carrying [`Self::serial`] (signed zones), sorted.
    pub soa_sigs: Vec<Record>,
    /// Hex SHA-256 of everything but the serial (and the SOA's RRSIG).
    pub hash: String,
    /// The zone's signatures (signed zones).
    pub(crate) signer: Option<SignedZone>,
    /// Sorted owners of static chain records (with their RRSIGs) replaced by ones in
    /// `dynamic`: names whose dynamic record transfers as no record right now.
    pub hidden: Vec<Box<[u8]>>,
    /// SHA-256 of the dynamic records before signing (see [`Self::same_as`]).
    pub unsigned_hash: [u8; 32],
    /// What the dynamic records were made from (see [`Self::same_as`]; `None`:
    /// unknown, compare the records).
    pub(crate) sources: Option<Sources>,
}

/// The inputs of a content's dynamic records: the config, and per dynamic owner's
/// bound record the decision its transferable answer came from.
#[derive(Debug)]
pub(crate) struct Sources {
    config: Arc<Config>,
    decisions: Vec<Option<Arc<crate::policy::Decision>>>,
}

impl Sources {
    fn of(statics: &StaticContent, config: &Arc<Config>, dynamic: &[Arc<DynamicAnswer>]) -> Self {
        Self {
            config: config.clone(),
            decisions: statics
                .dynamic_owners
                .iter()
                .flat_map(|(_, bound)| bound)
                .map(|r| {
                    dynamic
                        .get(r.0 as usize)
                        .map(|a| a.set_for(None).decision.clone())
                })
                .collect(),
        }
    }

    /// Whether `dynamic` transfers as these sources did (`Some`), or cannot be told
    /// without building (`None`: another config). The transferred answer of a record
    /// depends on its decision's candidates and whether it is all down alone (the
    /// config giving its type, TTLs and the endpoints' addresses).
    fn same(
        &self,
        statics: &StaticContent,
        config: &Arc<Config>,
        dynamic: &[Arc<DynamicAnswer>],
    ) -> Option<bool> {
        if !Arc::ptr_eq(&self.config, config) {
            return None;
        }
        let now = statics
            .dynamic_owners
            .iter()
            .flat_map(|(_, bound)| bound)
            .map(|r| dynamic.get(r.0 as usize).map(|a| &a.set_for(None).decision));
        let mut count = 0;
        // Records of one decision class share their decisions: a pair found alike
        // is not compared again.
        let mut alike: Option<(
            *const crate::policy::Decision,
            *const crate::policy::Decision,
        )> = None;
        for (before, now) in self.decisions.iter().zip(now) {
            count += 1;
            let same = match (before, now) {
                (None, None) => true,
                (Some(a), Some(b)) if alike == Some((Arc::as_ptr(a), Arc::as_ptr(b))) => true,
                (Some(a), Some(b)) => {
                    let same = Arc::ptr_eq(a, b)
                        || (a.outcome.is_all_down() == b.outcome.is_all_down()
                            && a.candidates.len() == b.candidates.len()
                            && a.candidates
                                .iter()
                                .zip(&b.candidates)
                                .all(|(x, y)| x.endpoint == y.endpoint));
                    if same {
                        alike = Some((Arc::as_ptr(a), Arc::as_ptr(b)));
                    }
                    same
                }
                _ => false,
            };
            if !same {
                return Some(false);
            }
        }
        Some(count == self.decisions.len())
    }
}

impl ZoneContent {
    /// Assembles content from the static part and the snapshot's dynamic answers
    /// bound into `zone` (serial: the file's; set it with [`Self::with_serial`]).
    pub(crate) fn build(
        origin: &[u8],
        statics: Arc<StaticContent>,
        config: &Arc<Config>,
        dynamic: &[Arc<DynamicAnswer>],
        signer: Option<&SignedZone>,
    ) -> Self {
        let mut records = Vec::new();
        for (owner, bound) in &statics.dynamic_owners {
            for record in bound {
                if let Some(answer) = dynamic.get(record.0 as usize) {
                    transferable(owner, config, answer, &mut records);
                }
            }
        }
        records.sort();
        records.dedup();
        let mut hidden = Vec::new();
        if let Some(signer) = signer {
            hidden = edit_chain(signer, &statics, dynamic, &mut records);
        }
        let unsigned_hash = unsigned_hash(&records);
        if let Some(signer) = signer {
            sign_records(signer, &mut records);
        }
        let mut hasher = Sha256::new();
        hasher.update(statics.hash);
        for record in &records {
            hash_record(&mut hasher, record);
        }
        let hash = hex(&hasher.finalize());
        let sources = Some(Sources::of(&statics, config, dynamic));
        Self {
            origin: origin.into(),
            serial: statics.file_serial,
            statics,
            dynamic: records.into(),
            soa_sigs: Vec::new(),
            hash,
            signer: signer.cloned(),
            hidden,
            unsigned_hash,
            sources,
        }
    }

    /// Whether the snapshot's dynamic answers would give exactly this content again:
    /// the same static part, the same signing, and the same dynamic records before
    /// signing (so, with the signature cache, the same signatures too). A publish
    /// that changed no transferable answer (a doubt, say) then skips building the
    /// content: no signing, sorting or hashing of the signed records.
    ///
    /// With the same config, the records' decisions tell it without building the
    /// records: the same candidates and all-down state give the same records.
    pub(crate) fn same_as(
        &self,
        statics: &Arc<StaticContent>,
        config: &Arc<Config>,
        dynamic: &[Arc<DynamicAnswer>],
        signer: Option<&SignedZone>,
    ) -> bool {
        let same_signing = match (&self.signer, signer) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_signing(b),
            _ => false,
        };
        if !Arc::ptr_eq(&self.statics, statics) || !same_signing {
            return false;
        }
        if let Some(same) = self
            .sources
            .as_ref()
            .and_then(|s| s.same(statics, config, dynamic))
        {
            return same;
        }
        let mut records = Vec::new();
        for (owner, bound) in &statics.dynamic_owners {
            for record in bound {
                if let Some(answer) = dynamic.get(record.0 as usize) {
                    transferable(owner, config, answer, &mut records);
                }
            }
        }
        records.sort();
        records.dedup();
        if let Some(signer) = signer {
            edit_chain(signer, statics, dynamic, &mut records);
        }
        unsigned_hash(&records) == self.unsigned_hash
    }

    /// The same content named by another serial (a signed zone's SOA RRSIG is made
    /// for it and kept in [`Self::soa_sigs`]).
    pub(crate) fn with_serial(mut self, serial: u32) -> Self {
        self.serial = serial;
        self.soa_sigs.clear();
        if let Some(signer) = &self.signer {
            let soa = self.soa();
            let mut sigs = Vec::new();
            match signer.sign(&soa.owner, rtype::SOA, soa.ttl, [&soa.rdata[..]], &mut sigs) {
                Ok(_) => {
                    for rrsig in crate::zone::PackedRdata::new(&sigs, u16::MAX).iter() {
                        self.soa_sigs.push(Record {
                            owner: soa.owner.clone(),
                            rtype: sec::RRSIG,
                            rdata: rrsig.into(),
                            ttl: soa.ttl,
                        });
                    }
                    self.soa_sigs.sort();
                }
                Err(error) => tracing::error!(%error, "cannot sign the transferred SOA"),
            }
        }
        self
    }

    /// This content's records again for a snapshot whose dynamic answers give
    /// them ([`Self::same_as`] holds for `config` and `dynamic`): a change back to
    /// a recent state shares the records, their signatures and hashes instead of
    /// building, signing, sorting and hashing them again (serial: the file's; set
    /// it with [`Self::with_serial`]).
    pub(crate) fn again(
        &self,
        config: &Arc<Config>,
        dynamic: &[Arc<DynamicAnswer>],
        signer: Option<&SignedZone>,
    ) -> Self {
        Self {
            origin: self.origin.clone(),
            serial: self.statics.file_serial,
            statics: self.statics.clone(),
            dynamic: self.dynamic.clone(),
            soa_sigs: Vec::new(),
            hash: self.hash.clone(),
            signer: signer.cloned(),
            hidden: self.hidden.clone(),
            unsigned_hash: self.unsigned_hash,
            sources: Some(Sources::of(&self.statics, config, dynamic)),
        }
    }

    /// The apex SOA record carrying [`Self::serial`].
    pub(crate) fn soa(&self) -> Record {
        let mut rdata = self.statics.soa_rdata.to_vec();
        if let Some(at) = rdata.len().checked_sub(20) {
            rdata[at..at + 4].copy_from_slice(&self.serial.to_be_bytes());
        }
        Record {
            owner: self.origin.clone(),
            rtype: rtype::SOA,
            rdata: rdata.into(),
            ttl: self.statics.soa_ttl,
        }
    }

    /// Every record but the SOA, in canonical order of static, then dynamic, then
    /// the SOA's RRSIGs.
    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.statics
            .records
            .iter()
            .filter(|r| !self.is_hidden(r))
            .chain(self.dynamic.iter())
            .chain(self.soa_sigs.iter())
    }

    /// Whether static record `r` is a chain record (or its RRSIG) replaced by one in
    /// `dynamic`.
    fn is_hidden(&self, r: &Record) -> bool {
        !self.hidden.is_empty() && is_chain_record(r) && self.hidden.binary_search(&r.owner).is_ok()
    }

    /// The static chain records (and RRSIGs) at `owner`.
    pub(crate) fn static_chain_at<'a>(
        &'a self,
        owner: &'a [u8],
    ) -> impl Iterator<Item = &'a Record> {
        let records = &self.statics.records;
        let start = records.partition_point(|r| &*r.owner < owner);
        records[start..]
            .iter()
            .take_while(move |r| &*r.owner == owner)
            .filter(|r| is_chain_record(r))
    }
}

/// NSEC3 or NSEC, by chain kind.
fn chain_rtype(kind: crate::config::DenialKind) -> u16 {
    match kind {
        crate::config::DenialKind::Nsec3 => sec::NSEC3,
        crate::config::DenialKind::Nsec => sec::NSEC,
    }
}

/// Whether `r` is an NSEC/NSEC3 record or an RRSIG covering one.
fn is_chain_record(r: &Record) -> bool {
    let covered = |t: u16| t == sec::NSEC3 || t == sec::NSEC;
    covered(r.rtype)
        || (r.rtype == sec::RRSIG
            && r.rdata
                .get(..2)
                .is_some_and(|t| covered(u16::from_be_bytes([t[0], t[1]]))))
}

/// A dynamic type with no record right now is listed by the chain record at its
/// name (it is there in other health states), and a name left with nothing is in
/// the chain at all: appends to `records` (sorted, the dynamic answers) the chain
/// records the transferred zone needs instead, unsigned; returns the sorted owners
/// of the static chain records they replace or drop.
fn edit_chain(
    signer: &SignedZone,
    statics: &StaticContent,
    dynamic: &[Arc<DynamicAnswer>],
    records: &mut Vec<Record>,
) -> Vec<Box<[u8]>> {
    let has = |records: &[Record], owner: &[u8], rtype: u16| {
        let at = records.partition_point(|r| &*r.owner < owner);
        records[at..]
            .iter()
            .take_while(|r| &*r.owner == owner)
            .any(|r| r.rtype == rtype)
    };
    let mut absent: Vec<(&[u8], Vec<u16>)> = Vec::new();
    for (owner, bound) in &statics.dynamic_owners {
        let types: Vec<u16> = bound
            .iter()
            .filter_map(|r| dynamic.get(r.0 as usize))
            .map(|a| a.rtype)
            .filter(|&t| !has(records, owner, t))
            .collect();
        if !types.is_empty() {
            absent.push((owner, types));
        }
    }
    if absent.is_empty() {
        return Vec::new();
    }
    // Hollow names stay while a dynamic record at or below them answers.
    let is_hollow = |n: &[u8]| statics.hollow.binary_search_by(|h| (**h).cmp(n)).is_ok();
    let mut live: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for (owner, _) in &statics.dynamic_owners {
        let at = records.partition_point(|r| r.owner < *owner);
        let answers = records.get(at).is_some_and(|r| r.owner == *owner);
        let mut at = Some(&**owner).filter(|_| answers);
        while let Some(name) = at.filter(|n| is_hollow(n) && live.insert(n)) {
            at = name::parent(name);
        }
    }
    let removed: Vec<&[u8]> = statics
        .hollow
        .iter()
        .map(|h| &**h)
        .filter(|h| !live.contains(h))
        .collect();
    absent.retain(|(owner, _)| removed.binary_search(owner).is_err());
    let chain = signer.chain();
    let absent: Vec<(&[u8], &[u16])> = absent.iter().map(|(o, t)| (*o, t.as_slice())).collect();
    let edit = chain.edited(&removed, &absent);
    let rtype = chain_rtype(chain.kind());
    let mut hidden: Vec<Box<[u8]>> = edit.dropped.into_iter().map(Into::into).collect();
    for (owner, rdata) in edit.replaced {
        hidden.push(owner.clone().into());
        records.push(Record {
            owner: owner.into(),
            rtype,
            rdata: rdata.into(),
            ttl: chain.ttl(),
        });
    }
    records.sort();
    hidden.sort();
    hidden
}

/// Appends an RRSIG for every RRset of `records` (sorted; the dynamic answers).
fn sign_records(signer: &SignedZone, records: &mut Vec<Record>) {
    let mut sigs = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let (owner, rtype) = (records[start].owner.clone(), records[start].rtype);
        let end = start
            + records[start..]
                .iter()
                .take_while(|r| r.owner == owner && r.rtype == rtype)
                .count();
        let ttl = records[start].ttl;
        let mut packed = Vec::new();
        let rdatas = records[start..end].iter().map(|r| &r.rdata[..]);
        match signer.sign(&owner, rtype, ttl, rdatas, &mut packed) {
            Ok(_) => {
                for rrsig in crate::zone::PackedRdata::new(&packed, u16::MAX).iter() {
                    sigs.push(Record {
                        owner: owner.clone(),
                        rtype: sec::RRSIG,
                        rdata: rrsig.into(),
                        ttl,
                    });
                }
            }
            Err(error) => tracing::error!(%error, "cannot sign a transferred dynamic RRset"),
        }
        start = end;
    }
    records.extend(sigs);
    records.sort();
}

/// Appends the client-independent answer of a dynamic record owned by `owner`.
fn transferable(owner: &[u8], config: &Config, answer: &DynamicAnswer, out: &mut Vec<Record>) {
    let set = answer.set_for(None);
    let record = &config.records[answer.record.0 as usize];
    let ttl = if set.decision.outcome.is_all_down() {
        record.all_down_ttl.0
    } else {
        record.ttl.0
    };
    let limit = if answer.rtype == rtype::CNAME {
        1
    } else {
        usize::MAX
    };
    for candidate in set.decision.candidates.iter().take(limit) {
        let rdata: Box<[u8]> = match &config.endpoint(candidate.endpoint).target {
            EndpointTarget::Address(std::net::IpAddr::V4(a)) if answer.rtype == rtype::A => {
                a.octets().into()
            }
            EndpointTarget::Address(std::net::IpAddr::V6(a)) if answer.rtype == rtype::AAAA => {
                a.octets().into()
            }
            EndpointTarget::Host(host) if answer.rtype == rtype::CNAME => {
                match name::wire_from_text(host) {
                    Some(wire) => wire.into(),
                    None => continue,
                }
            }
            _ => continue,
        };
        out.push(Record {
            owner: owner.into(),
            rtype: answer.rtype,
            rdata,
            ttl,
        });
    }
}

/// SHA-256 of sorted unsigned dynamic records.
fn unsigned_hash(records: &[Record]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for record in records {
        hash_record(&mut hasher, record);
    }
    hasher.finalize().into()
}

fn hash_soa(hasher: &mut Sha256, rdata: &[u8], ttl: u32) {
    // Everything but the serial.
    let at = rdata.len().saturating_sub(20);
    hasher.update((rdata.len() as u32).to_be_bytes());
    hasher.update(&rdata[..at]);
    hasher.update(rdata.get(at + 4..).unwrap_or_default());
    hasher.update(ttl.to_be_bytes());
}

fn hash_record(hasher: &mut Sha256, record: &Record) {
    hasher.update([record.owner.len() as u8]);
    hasher.update(&record.owner);
    hasher.update(record.rtype.to_be_bytes());
    hasher.update(record.ttl.to_be_bytes());
    hasher.update((record.rdata.len() as u16).to_be_bytes());
    hasher.update(&record.rdata);
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
