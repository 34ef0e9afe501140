//! The denial-of-existence chain of a zone, NSEC3 (RFC 5155 with RFC 9276
//! parameters) or NSEC (RFC 4034), built and signed once per signing: the set of
//! names never changes with health, so neither does the chain.
//!
//! ```text
//!  names (+ the types each can have in any health state)
//!     └─▶ sorted by hash (NSEC3) or canonical order (NSEC) ─▶ entries, each with
//!         owner, rdata and RRSIGs in one arena; per node: the matching entry and
//!         the entry covering its wildcard `*.<node>`
//!  query: matching = table lookup; covering(name) = one SHA-1 (NSEC3) and a binary
//!         search — never a signature
//! ```

use std::cmp::Ordering;

use super::DnssecError;
use super::rtype;
use crate::config::DenialKind;
use crate::zone::PackedRdata;
use crate::zone::store::{MAX_LABELS, label_starts_into, pack_rdata};

/// NSEC3 hash algorithm 1 = SHA-1.
const SHA1: u8 = 1;
/// SHA-1 output length.
pub(crate) const HASH_LEN: usize = 20;
/// No chain entry.
pub(crate) const NONE: u32 = u32::MAX;

/// One record of the chain, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainRecord<'c> {
    /// Owner name (lower-case wire).
    pub owner: &'c [u8],
    /// RR type (NSEC or NSEC3).
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// Its rdata (one record).
    pub rdata: PackedRdata<'c>,
    /// Its RRSIGs.
    pub sigs: PackedRdata<'c>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    owner: u32,
    owner_len: u8,
    rdata: u32,
    rdata_len: u32,
    sigs: u32,
    sigs_len: u32,
    sig_count: u16,
}

/// Signs one chain record: `(owner, rtype, ttl, rdata, out)` appends packed RRSIG
/// rdata to `out` and returns how many.
pub(crate) type SignRecord<'a> =
    dyn FnMut(&[u8], u16, u32, &[u8], &mut Vec<u8>) -> Result<u16, DnssecError> + 'a;

/// Changes to a chain (see [`Chain::edited`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChainEdit {
    /// Records to replace: `(owner, new rdata)`.
    pub replaced: Vec<(Vec<u8>, Vec<u8>)>,
    /// Owners of records to drop.
    pub dropped: Vec<Vec<u8>>,
}

/// A name of the zone that goes into the chain.
#[derive(Clone, Debug)]
pub(crate) struct ChainName {
    /// Node index in its zone.
    pub node: u32,
    /// Lower-case wire name.
    pub name: Vec<u8>,
    /// Types at the name, in any health state (without NSEC/RRSIG).
    pub types: Vec<u16>,
    /// Whether the name has signed RRsets (RRSIG goes in the bitmap).
    pub signed: bool,
    /// NSEC3 opt-out: the name (an insecure delegation, or an empty non-terminal
    /// above only such) gets no record; the record whose span covers it carries the
    /// Opt-Out flag. Ignored by NSEC chains.
    pub omit: bool,
}

/// A signed chain.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    kind: DenialKind,
    ttl: u32,
    entries: Vec<Entry>,
    /// NSEC3: the hash of each entry, sorted.
    hashes: Vec<[u8; HASH_LEN]>,
    bytes: Vec<u8>,
    /// Per node: its entry (NSEC: for a name without one, the entry covering it).
    matching: Vec<u32>,
    /// Per node: the entry covering `*.<node>` (NSEC3), or proving it absent (NSEC).
    wildcard_cover: Vec<u32>,
}

impl Chain {
    /// Builds the chain over `names` (every authoritative node of a zone, node
    /// indices below `node_count`) and signs each record with `sign(owner, rtype,
    /// ttl, rdata, out)`.
    pub(crate) fn build(
        kind: DenialKind,
        origin: &[u8],
        ttl: u32,
        mut names: Vec<ChainName>,
        node_count: usize,
        sign: &mut SignRecord<'_>,
    ) -> Result<Self, DnssecError> {
        let mut chain = Self {
            kind,
            ttl,
            entries: Vec::new(),
            hashes: Vec::new(),
            bytes: Vec::new(),
            matching: vec![NONE; node_count],
            wildcard_cover: vec![NONE; node_count],
        };
        match kind {
            DenialKind::Nsec3 => {
                let (omitted, names): (Vec<ChainName>, Vec<ChainName>) =
                    names.into_iter().partition(|n| n.omit);
                let mut omitted: Vec<[u8; HASH_LEN]> =
                    omitted.iter().map(|n| nsec3_hash(&n.name)).collect();
                omitted.sort_unstable();
                let mut hashed: Vec<([u8; HASH_LEN], ChainName)> = names
                    .into_iter()
                    .map(|n| (nsec3_hash(&n.name), n))
                    .collect();
                hashed.sort_by_key(|a| a.0);
                hashed.dedup_by(|a, b| a.0 == b.0);
                let count = hashed.len();
                for i in 0..count {
                    let (hash, name) = &hashed[i];
                    let next = &hashed[(i + 1) % count].0;
                    let mut owner = Vec::with_capacity(33 + origin.len());
                    owner.push(32);
                    owner.extend_from_slice(base32hex(hash).as_bytes());
                    owner.extend_from_slice(origin);
                    let flags = u8::from(spans_any(hash, next, &omitted));
                    let mut rdata = vec![SHA1, flags, 0, 0, 0, HASH_LEN as u8];
                    rdata.extend_from_slice(next);
                    let mut types = name.types.clone();
                    if name.signed {
                        types.push(rtype::RRSIG);
                    }
                    type_bitmap(&mut types, &mut rdata);
                    chain.push(&owner, rtype::NSEC3, &rdata, sign)?;
                    chain.hashes.push(*hash);
                    if let Some(slot) = chain.matching.get_mut(name.node as usize) {
                        *slot = i as u32;
                    }
                }
                for (_, name) in &hashed {
                    let mut wildcard = vec![1, b'*'];
                    wildcard.extend_from_slice(&name.name);
                    let cover = chain.nsec3_covering(&nsec3_hash(&wildcard));
                    chain.wildcard_cover[name.node as usize] = cover.unwrap_or(NONE);
                }
            }
            DenialKind::Nsec => {
                names.sort_by(|a, b| canonical_cmp(&a.name, &b.name));
                // Names without data (empty non-terminals) get no NSEC of their own.
                let (own, empty): (Vec<ChainName>, Vec<ChainName>) = names
                    .into_iter()
                    .partition(|n| !n.types.is_empty() || n.name == origin);
                let count = own.len();
                for i in 0..count {
                    let name = &own[i];
                    let next = &own[(i + 1) % count].name;
                    let mut rdata = next.clone();
                    let mut types = name.types.clone();
                    types.push(rtype::NSEC);
                    types.push(rtype::RRSIG);
                    type_bitmap(&mut types, &mut rdata);
                    chain.push(&name.name, rtype::NSEC, &rdata, sign)?;
                    chain.matching[name.node as usize] = i as u32;
                }
                for name in &empty {
                    chain.matching[name.node as usize] =
                        chain.nsec_covering(&name.name).unwrap_or(NONE);
                }
                for name in own.iter().chain(empty.iter()) {
                    let mut wildcard = vec![1, b'*'];
                    wildcard.extend_from_slice(&name.name);
                    chain.wildcard_cover[name.node as usize] =
                        chain.nsec_covering(&wildcard).unwrap_or(NONE);
                }
            }
        }
        chain.bytes.shrink_to_fit();
        Ok(chain)
    }

    fn push(
        &mut self,
        owner: &[u8],
        rtype: u16,
        rdata: &[u8],
        sign: &mut SignRecord<'_>,
    ) -> Result<(), DnssecError> {
        let owner_at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(owner);
        let rdata_at = self.bytes.len() as u32;
        pack_rdata(&mut self.bytes, rdata);
        let rdata_len = self.bytes.len() as u32 - rdata_at;
        let mut sigs = Vec::new();
        let sig_count = sign(owner, rtype, self.ttl, rdata, &mut sigs)?;
        let sigs_at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(&sigs);
        self.entries.push(Entry {
            owner: owner_at,
            owner_len: owner.len() as u8,
            rdata: rdata_at,
            rdata_len,
            sigs: sigs_at,
            sigs_len: sigs.len() as u32,
            sig_count,
        });
        Ok(())
    }

    /// The kind of chain.
    pub(crate) fn kind(&self) -> DenialKind {
        self.kind
    }

    /// Record `index`.
    pub(crate) fn record(&self, index: u32) -> Option<ChainRecord<'_>> {
        let e = self.entries.get(index as usize)?;
        let slice = |at: u32, len: u32| &self.bytes[at as usize..(at + len) as usize];
        Some(ChainRecord {
            owner: slice(e.owner, u32::from(e.owner_len)),
            rtype: match self.kind {
                DenialKind::Nsec3 => rtype::NSEC3,
                DenialKind::Nsec => rtype::NSEC,
            },
            ttl: self.ttl,
            rdata: PackedRdata::new(slice(e.rdata, e.rdata_len), 1),
            sigs: PackedRdata::new(slice(e.sigs, e.sigs_len), e.sig_count),
        })
    }

    /// Every record, in chain order.
    pub(crate) fn records(&self) -> impl Iterator<Item = ChainRecord<'_>> + '_ {
        (0..self.entries.len() as u32).filter_map(|i| self.record(i))
    }

    /// The record matching node `node` (NSEC: for a name without one, covering it).
    pub(crate) fn matching(&self, node: u32) -> Option<ChainRecord<'_>> {
        self.record(*self.matching.get(node as usize)?)
    }

    /// The record matching `name` (an existing name of the zone, lower-case wire)
    /// with the types `absent` taken out of its bitmap, as `(owner, rdata)` to be
    /// signed: the proof for a NODATA a name gives only in some health states (a
    /// dynamic record whose endpoints are all down). None if the name has no record
    /// of its own (NSEC empty non-terminals) or none of `absent` is in the bitmap.
    pub(crate) fn matching_without(
        &self,
        name: &[u8],
        absent: &[u16],
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let index = self.own_entry(name)?;
        let rdata = self.rdata_with(index, index + 1, absent)?;
        (Some(rdata.as_slice()) != self.rdata_of(index))
            .then(|| (self.owner_of(index).to_vec(), rdata))
    }

    /// The chain as a copy of the zone without `removed` names and without the
    /// `absent` types at other names must carry it (a transfer while dynamic records
    /// have nothing to answer): the records to replace, as `(owner, rdata)` to be
    /// signed, and the owners of the records to drop. Removing a name unlinks its
    /// record (its predecessor points past it); taking types out edits a bitmap.
    pub(crate) fn edited(&self, removed: &[&[u8]], absent: &[(&[u8], &[u16])]) -> ChainEdit {
        let count = self.entries.len();
        let mut gone = vec![false; count];
        for name in removed {
            if let Some(i) = self.own_entry(name) {
                gone[i] = true;
            }
        }
        let mut edit = ChainEdit::default();
        if gone.iter().all(|g| *g) {
            return edit; // never: the apex stays
        }
        let mut without: Vec<(usize, &[u16])> = absent
            .iter()
            .filter_map(|(name, types)| Some((self.own_entry(name)?, *types)))
            .collect();
        without.sort_unstable_by_key(|w| w.0);
        for i in 0..count {
            if gone[i] {
                edit.dropped.push(self.owner_of(i).to_vec());
                continue;
            }
            let mut next = (i + 1) % count;
            while gone[next] {
                next = (next + 1) % count;
            }
            let types = without
                .binary_search_by_key(&i, |w| w.0)
                .map_or(&[][..], |at| without[at].1);
            if next == (i + 1) % count && types.is_empty() {
                continue;
            }
            let Some(rdata) = self.rdata_with(i, next, types) else {
                continue;
            };
            if Some(rdata.as_slice()) != self.rdata_of(i) {
                edit.replaced.push((self.owner_of(i).to_vec(), rdata));
            }
        }
        edit
    }

    /// Index of the record `name` owns (NSEC3: of its hash).
    fn own_entry(&self, name: &[u8]) -> Option<usize> {
        match self.kind {
            DenialKind::Nsec3 => self.hashes.binary_search(&nsec3_hash(name)).ok(),
            DenialKind::Nsec => {
                let index = self.nsec_covering(name)? as usize;
                (self.owner_of(index) == name).then_some(index)
            }
        }
    }

    fn owner_of(&self, index: usize) -> &[u8] {
        let e = &self.entries[index];
        &self.bytes[e.owner as usize..][..usize::from(e.owner_len)]
    }

    fn rdata_of(&self, index: usize) -> Option<&[u8]> {
        self.record(index as u32)?.rdata.iter().next()
    }

    /// Record `index`'s rdata pointing to record `next` (modulo the length), without
    /// the `absent` types.
    fn rdata_with(&self, index: usize, next: usize, absent: &[u16]) -> Option<Vec<u8>> {
        let rdata = self.rdata_of(index)?;
        let next = next % self.entries.len();
        let (mut out, bitmap_at) = match self.kind {
            DenialKind::Nsec3 => {
                // algorithm, flags, iterations (2), salt length + salt, hash length + hash
                let salt_end = 5 + usize::from(*rdata.get(4)?);
                let hash_len = usize::from(*rdata.get(salt_end)?);
                let mut out = rdata.get(..=salt_end)?.to_vec();
                out.extend_from_slice(self.hashes.get(next)?);
                (out, salt_end + 1 + hash_len)
            }
            DenialKind::Nsec => (self.owner_of(next).to_vec(), name_len(rdata)?),
        };
        let mut types = bitmap_types(rdata.get(bitmap_at..)?)?;
        types.retain(|t| !absent.contains(t));
        type_bitmap(&mut types, &mut out);
        Some(out)
    }

    /// TTL of the chain's records.
    pub(crate) fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The record covering the wildcard `*.<node>`.
    pub(crate) fn wildcard_cover(&self, node: u32) -> Option<ChainRecord<'_>> {
        self.record(*self.wildcard_cover.get(node as usize)?)
    }

    /// The record covering `name` (lower-case wire, not in the zone): for NSEC3 one
    /// SHA-1 and a binary search, for NSEC a binary search in canonical order. No
    /// allocation.
    pub(crate) fn covering(&self, name: &[u8]) -> Option<ChainRecord<'_>> {
        let index = match self.kind {
            DenialKind::Nsec3 => self.nsec3_covering(&nsec3_hash(name)),
            DenialKind::Nsec => self.nsec_covering(name),
        }?;
        self.record(index)
    }

    fn nsec3_covering(&self, hash: &[u8; HASH_LEN]) -> Option<u32> {
        if self.hashes.is_empty() {
            return None;
        }
        let at = self.hashes.partition_point(|h| h < hash);
        Some(if at == 0 {
            self.hashes.len() as u32 - 1
        } else {
            at as u32 - 1
        })
    }

    fn nsec_covering(&self, name: &[u8]) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let owner =
            |e: &Entry| &self.bytes[e.owner as usize..e.owner as usize + usize::from(e.owner_len)];
        let at = self
            .entries
            .partition_point(|e| canonical_cmp(owner(e), name) != Ordering::Greater);
        Some(if at == 0 {
            self.entries.len() as u32 - 1
        } else {
            at as u32 - 1
        })
    }
}

/// Whether a sorted hash of `sorted` lies strictly between `from` and `to` in the
/// circular hash order (the span of an NSEC3 record owned by `from`).
fn spans_any(from: &[u8; HASH_LEN], to: &[u8; HASH_LEN], sorted: &[[u8; HASH_LEN]]) -> bool {
    let after = sorted.partition_point(|h| h <= from);
    match sorted.get(after) {
        _ if sorted.is_empty() => false,
        Some(h) if from < to => h < to,
        Some(_) => true, // wraps: anything after `from` is inside
        None => from >= to && sorted[0] < *to, // wraps: or anything before `to`
    }
}

/// NSEC3 hash with RFC 9276 parameters (SHA-1, no salt, no extra iterations).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn nsec3_hash(name: &[u8]) -> [u8; HASH_LEN] {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, name);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(digest.as_ref());
    out
}

/// NSEC3PARAM rdata for the chain's parameters.
pub(crate) fn nsec3param_rdata() -> Vec<u8> {
    vec![SHA1, 0, 0, 0, 0]
}

/// Base32 with the extended hex alphabet, lower case, no padding (RFC 4648 §7).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Appends the type bitmap of `types` (RFC 4034 §4.1.2).
pub(crate) fn type_bitmap(types: &mut Vec<u16>, out: &mut Vec<u8>) {
    types.sort_unstable();
    types.dedup();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xFF) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
}

/// Length of the uncompressed wire name `rdata` starts with.
fn name_len(rdata: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*rdata.get(at)?);
        at += 1 + len;
        if len == 0 {
            return (at <= rdata.len()).then_some(at);
        }
    }
}

/// The types a type bitmap (RFC 4034 §4.1.2) lists; None if it is malformed.
pub(crate) fn bitmap_types(mut bitmap: &[u8]) -> Option<Vec<u16>> {
    let mut types = Vec::new();
    while let [window, len, rest @ ..] = bitmap {
        let bits = rest.get(..usize::from(*len))?;
        for (i, byte) in bits.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    types.push(u16::from(*window) << 8 | (i * 8 + bit) as u16);
                }
            }
        }
        bitmap = &rest[usize::from(*len)..];
    }
    bitmap.is_empty().then_some(types)
}

/// Canonical DNS name order (RFC 4034 §6.1) of two lower-case wire names.
pub(crate) fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut sa = [0u8; MAX_LABELS];
    let mut sb = [0u8; MAX_LABELS];
    let la = label_starts_into(a, &mut sa);
    let lb = label_starts_into(b, &mut sb);
    fn label(name: &[u8], start: u8) -> &[u8] {
        let s = usize::from(start);
        let len = usize::from(name[s]);
        &name[s + 1..s + 1 + len]
    }
    for (x, y) in la.iter().rev().zip(lb.iter().rev()) {
        match label(a, *x).cmp(label(b, *y)) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    la.len().cmp(&lb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::name::wire_from_text;

    fn w(t: &str) -> Vec<u8> {
        wire_from_text(t).unwrap()
    }

    /// A signed name of the chain.
    fn chain_name(node: u32, text: &str, types: Vec<u16>) -> ChainName {
        ChainName {
            node,
            name: w(text),
            types,
            signed: true,
            omit: false,
        }
    }

    #[test]
    fn rfc_5155_appendix_a_hash_without_iterations_and_base32hex() {
        // H("example") with no salt: the known value from dnspython / ldns.
        let hash = nsec3_hash(&w("example."));
        assert_eq!(base32hex(&hash).len(), 32);
        assert_eq!(base32hex(&[0xFF]), "vs");
        assert_eq!(base32hex(b"f"), "co");
    }

    #[test]
    fn canonical_order_is_right_to_left_by_label() {
        let mut names: Vec<Vec<u8>> = [
            "z.example.",
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "*.z.example.",
            "zabc.a.example.",
        ]
        .iter()
        .map(|t| w(t))
        .collect();
        names.sort_by(|a, b| canonical_cmp(a, b));
        let text: Vec<String> = names
            .iter()
            .map(|n| crate::zone::name::text_from_wire(n))
            .collect();
        assert_eq!(text[0], "example.");
        assert_eq!(text[1], "a.example.");
        assert_eq!(text[2], "yljkjljk.a.example.");
        assert_eq!(text[3], "zabc.a.example.");
        assert_eq!(text[4], "z.example.");
    }

    #[test]
    fn bitmap_encodes_windows() {
        let mut out = Vec::new();
        type_bitmap(&mut vec![1, 15, 46, 47, 1234], &mut out);
        assert_eq!(&out[..2], &[0, 6]);
        assert_eq!(out[2], 0x40); // A
        assert_eq!(out[3], 0x01); // MX (15)
        assert_eq!(out[7], 0x03); // RRSIG 46, NSEC 47
        assert_eq!(&out[8..10], &[4, 27]); // window 4, 1234 = 4*256+210
    }

    #[test]
    fn opt_out_spans_include_wrap_around() {
        let h = |b: u8| [b; HASH_LEN];
        let omitted = [h(5), h(200)];
        assert!(spans_any(&h(1), &h(10), &omitted));
        assert!(!spans_any(&h(10), &h(100), &omitted));
        assert!(spans_any(&h(150), &h(3), &omitted), "wraps past the end");
        assert!(spans_any(&h(250), &h(9), &omitted), "wraps to the start");
        assert!(!spans_any(&h(250), &h(2), &omitted));
        assert!(!spans_any(&h(1), &h(10), &[]));
        assert!(
            spans_any(&h(7), &h(7), &omitted),
            "a one-record chain covers all"
        );
    }

    #[test]
    fn bitmap_round_trips() {
        let types = vec![1, 2, 6, 15, 28, 46, 47, 1234, 65281];
        let mut out = Vec::new();
        type_bitmap(&mut types.clone(), &mut out);
        assert_eq!(bitmap_types(&out), Some(types));
        assert_eq!(bitmap_types(&[0, 3, 0x40]), None);
    }

    #[test]
    fn a_record_without_a_type_keeps_owner_and_next_and_drops_only_that_type() {
        let origin = w("example.");
        let names = |types: Vec<u16>| {
            vec![
                chain_name(0, "example.", vec![6, 2]),
                chain_name(1, "app.example.", types),
            ]
        };
        let mut none = |_: &[u8], _: u16, _: u32, _: &[u8], _: &mut Vec<u8>| Ok(0);
        for kind in [DenialKind::Nsec3, DenialKind::Nsec] {
            let full = Chain::build(kind, &origin, 60, names(vec![1, 28]), 2, &mut none).unwrap();
            let (owner, rdata) = full.matching_without(&w("app.example."), &[1]).unwrap();
            let reference = Chain::build(kind, &origin, 60, names(vec![28]), 2, &mut none).unwrap();
            let expected = reference.matching(1).unwrap();
            assert_eq!(owner, expected.owner, "{kind:?}");
            assert_eq!(rdata, expected.rdata.iter().next().unwrap(), "{kind:?}");
            assert!(full.matching_without(&w("app.example."), &[16]).is_none());
            assert!(full.matching_without(&w("nope.example."), &[1]).is_none());
        }
    }

    #[test]
    fn an_edited_chain_is_the_chain_of_the_edited_zone() {
        let origin = w("example.");
        let zone = |dark: Option<Vec<u16>>, web: Vec<u16>| {
            let mut names = vec![
                chain_name(0, "example.", vec![2, 6]),
                chain_name(1, "a.example.", vec![1]),
                chain_name(3, "web.example.", web),
                chain_name(4, "z.example.", vec![16]),
            ];
            if let Some(types) = dark {
                names.push(chain_name(2, "dark.example.", types));
            }
            names
        };
        let mut none = |_: &[u8], _: u16, _: u32, _: &[u8], _: &mut Vec<u8>| Ok(0);
        for kind in [DenialKind::Nsec3, DenialKind::Nsec] {
            let full = Chain::build(
                kind,
                &origin,
                60,
                zone(Some(vec![1, 28]), vec![1, 16]),
                5,
                &mut none,
            )
            .unwrap();
            let want = Chain::build(kind, &origin, 60, zone(None, vec![16]), 5, &mut none).unwrap();
            let dark = w("dark.example.");
            let web = w("web.example.");
            let edit = full.edited(&[&dark], &[(&web, &[1])]);
            let mut records: Vec<(Vec<u8>, Vec<u8>)> = full
                .records()
                .map(|r| (r.owner.to_vec(), r.rdata.iter().next().unwrap().to_vec()))
                .filter(|(o, _)| {
                    !edit.dropped.contains(o) && !edit.replaced.iter().any(|(r, _)| r == o)
                })
                .chain(edit.replaced.iter().cloned())
                .collect();
            records.sort();
            let mut expected: Vec<(Vec<u8>, Vec<u8>)> = want
                .records()
                .map(|r| (r.owner.to_vec(), r.rdata.iter().next().unwrap().to_vec()))
                .collect();
            expected.sort();
            assert_eq!(records, expected, "{kind:?}");
            assert_eq!(edit.dropped.len(), 1);
            assert!(full.edited(&[], &[]) == ChainEdit::default());
        }
    }

    #[test]
    fn covering_wraps_and_matching_is_per_node() {
        let origin = w("example.");
        let names = vec![
            ChainName {
                node: 0,
                name: origin.clone(),
                types: vec![6, 2],
                signed: true,
                omit: false,
            },
            ChainName {
                node: 1,
                name: w("b.example."),
                types: vec![1],
                signed: true,
                omit: false,
            },
            ChainName {
                node: 2,
                name: w("d.example."),
                types: vec![1],
                signed: true,
                omit: false,
            },
        ];
        let mut none = |_: &[u8], _: u16, _: u32, _: &[u8], _: &mut Vec<u8>| Ok(0);
        let chain = Chain::build(DenialKind::Nsec, &origin, 60, names, 3, &mut none).unwrap();
        assert_eq!(
            chain.covering(&w("c.example.")).unwrap().owner,
            w("b.example.")
        );
        assert_eq!(
            chain.covering(&w("e.example.")).unwrap().owner,
            w("d.example.")
        );
        assert_eq!(chain.covering(&w("a.example.")).unwrap().owner, origin);
        assert_eq!(chain.matching(1).unwrap().owner, w("b.example."));
        let nsec3 = Chain::build(
            DenialKind::Nsec3,
            &origin,
            60,
            vec![ChainName {
                node: 0,
                name: origin.clone(),
                types: vec![6],
                signed: true,
                omit: false,
            }],
            1,
            &mut none,
        )
        .unwrap();
        let only = nsec3.record(0).unwrap();
        let rdata = only.rdata.iter().next().unwrap();
        // Next hashed owner of a one-record chain is its own hash.
        assert_eq!(&rdata[6..26], &nsec3_hash(&origin));
        assert!(nsec3.covering(&w("x.example.")).is_some());
    }
}
