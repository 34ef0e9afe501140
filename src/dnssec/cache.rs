//! Signatures already made, reused: an RRset signed again with the same keys and
//! validity window gets the bytes it got the first time.
//!
//! ECDSA signatures are randomised, so signing the same RRset twice gives two
//! different RRSIGs. Without this cache every snapshot built on a health change
//! re-signed the RRsets it rebuilt, and a transfer stamp re-signed every dynamic
//! RRset of the zone: the transferable content changed by its signature bytes alone,
//! and a doubt that changed no answer bumped the serial and sent NOTIFYs. With it,
//! content that did not change keeps its signatures byte for byte (Ed25519 is
//! deterministic anyway; this also spares its signing time).
//!
//! The key is the RRset in canonical form (RFC 4034 §6: lower-case owner, type,
//! class, original TTL, and the canonical rdata sorted and deduplicated), the key
//! tags and algorithms of the signing keys, and the inception/expiration window.
//! Entries live in two generations of at most [`SignatureCache::capacity`] each:
//! when the current one is full it becomes the previous one (the older is dropped),
//! and a hit in the previous generation moves back into the current one. Memory is
//! bounded; what a zone's health keeps returning to stays cached.
//!
//! Build time only: the lock is taken per RRset while a snapshot is built or a
//! transfer stamped, never on the answer path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::DnssecError;
use super::keys::Key;
use super::sign::{Window, canonical_rdata};
use crate::zone::name;

/// Entries per generation of a zone's cache.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 16;

/// Packed RRSIG rdata (as [`super::sign::sign_rrset`] appends it) and its count.
type Signatures = (Box<[u8]>, u16);

/// The two generations.
#[derive(Debug, Default)]
struct Generations {
    current: HashMap<Box<[u8]>, Signatures>,
    previous: HashMap<Box<[u8]>, Signatures>,
}

/// A bounded cache of RRSIGs by (canonical RRset, keys, window).
#[derive(Debug)]
pub(crate) struct SignatureCache {
    capacity: usize,
    entries: Mutex<Generations>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for SignatureCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl SignatureCache {
    /// An empty cache of at most `capacity` entries per generation (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// (hits, misses) so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries held now (both generations).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let entries = self.lock();
        entries.current.len() + entries.previous.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The RRSIGs of the RRset `owner`/`rtype` (TTL `ttl`, records `rdatas`) by
    /// `keys` over `window`: the cached ones, or those `sign` appends to its buffer
    /// (then cached). Appends the packed RRSIG rdata to `out`; returns the count.
    #[allow(clippy::too_many_arguments)] // the RRSIG fields, each distinct
    pub(crate) fn sign<'a>(
        &self,
        keys: &[&Key],
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'a [u8]>,
        window: Window,
        out: &mut Vec<u8>,
        sign: impl FnOnce(&[&[u8]], &mut Vec<u8>) -> Result<u16, DnssecError>,
    ) -> Result<u16, DnssecError> {
        let rdatas: Vec<&[u8]> = rdatas.into_iter().collect();
        let key = cache_key(keys, owner, rtype, ttl, &rdatas, window);
        if let Some((bytes, count)) = self.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            out.extend_from_slice(&bytes);
            return Ok(count);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut made = Vec::new();
        let count = sign(&rdatas, &mut made)?;
        out.extend_from_slice(&made);
        self.insert(key, (made.into_boxed_slice(), count));
        Ok(count)
    }

    /// A cached entry (moved into the current generation when found in the previous).
    fn get(&self, key: &[u8]) -> Option<Signatures> {
        let mut entries = self.lock();
        if let Some(found) = entries.current.get(key) {
            return Some(found.clone());
        }
        let (key, found) = entries.previous.remove_entry(key)?;
        let copy = found.clone();
        Self::put(&mut entries, self.capacity, key, found);
        Some(copy)
    }

    fn insert(&self, key: Box<[u8]>, signatures: Signatures) {
        let mut entries = self.lock();
        Self::put(&mut entries, self.capacity, key, signatures);
    }

    fn put(entries: &mut Generations, capacity: usize, key: Box<[u8]>, signatures: Signatures) {
        if entries.current.len() >= capacity {
            entries.previous = std::mem::take(&mut entries.current);
        }
        entries.current.insert(key, signatures);
    }
}

/// The cache key: window, each key's tag and algorithm, then the RRset in
/// canonical form (owner lower-cased, type, class IN, TTL, sorted distinct
/// canonical rdata with their lengths).
fn cache_key(
    keys: &[&Key],
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdatas: &[&[u8]],
    window: Window,
) -> Box<[u8]> {
    let mut records: Vec<Vec<u8>> = rdatas.iter().map(|r| canonical_rdata(rtype, r)).collect();
    records.sort();
    records.dedup();
    let mut key = Vec::with_capacity(
        16 + keys.len() * 3 + owner.len() + records.iter().map(|r| r.len() + 2).sum::<usize>(),
    );
    key.extend_from_slice(&window.inception.to_be_bytes());
    key.extend_from_slice(&window.expiration.to_be_bytes());
    key.push(keys.len() as u8);
    for k in keys {
        key.extend_from_slice(&k.tag.to_be_bytes());
        key.push(k.algorithm.number());
    }
    let start = key.len();
    key.extend_from_slice(owner);
    name::lowercase_in_place(&mut key[start..]);
    key.extend_from_slice(&rtype.to_be_bytes());
    key.extend_from_slice(&1u16.to_be_bytes());
    key.extend_from_slice(&ttl.to_be_bytes());
    for r in &records {
        key.extend_from_slice(&(r.len() as u16).to_be_bytes());
        key.extend_from_slice(r);
    }
    key.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::keys::{Algorithm, Role, Timing};
    use crate::dnssec::sign::sign_rrset;
    use crate::zone::name::wire_from_text;

    fn key(algorithm: Algorithm) -> Key {
        Key::generate("example.test.", Role::Csk, algorithm, Timing::from(0)).unwrap()
    }

    /// Signs through `cache` with `keys`; the packed RRSIGs.
    fn signed(
        cache: &SignatureCache,
        keys: &[&Key],
        owner: &str,
        ttl: u32,
        rdatas: &[&[u8]],
        window: Window,
    ) -> Vec<u8> {
        let zone = wire_from_text("example.test.").unwrap();
        let owner = wire_from_text(owner).unwrap();
        let mut out = Vec::new();
        cache
            .sign(
                keys,
                &owner,
                1,
                ttl,
                rdatas.iter().copied(),
                window,
                &mut out,
                |rdatas, out| {
                    sign_rrset(
                        keys,
                        &zone,
                        &owner,
                        1,
                        ttl,
                        rdatas.iter().copied(),
                        window,
                        out,
                    )
                },
            )
            .unwrap();
        out
    }

    #[test]
    fn an_ecdsa_rrset_signed_again_keeps_its_bytes_until_something_in_the_key_changes() {
        let ecdsa = key(Algorithm::EcdsaP256);
        let other = key(Algorithm::EcdsaP256);
        let cache = SignatureCache::default();
        let window = Window::at(1_000_000, 3600, 86_400);
        let (a, b): (&[u8], &[u8]) = (&[192, 0, 2, 1], &[192, 0, 2, 2]);
        let first = signed(&cache, &[&ecdsa], "www.example.test.", 60, &[a, b], window);
        // The same RRset in another order and case: the same bytes, from the cache.
        let again = signed(
            &cache,
            &[&ecdsa],
            "WWW.Example.test.",
            60,
            &[b, a, b],
            window,
        );
        assert_eq!(first, again);
        assert_eq!(cache.stats(), (1, 1));
        // ECDSA is randomised: without the cache the bytes would differ.
        let zone = wire_from_text("example.test.").unwrap();
        let owner = wire_from_text("www.example.test.").unwrap();
        let mut fresh = Vec::new();
        sign_rrset(&[&ecdsa], &zone, &owner, 1, 60, [a, b], window, &mut fresh).unwrap();
        assert_ne!(fresh, first, "ECDSA signatures are not deterministic");
        // Anything in the key changed: signed anew.
        let changed = [
            signed(&cache, &[&ecdsa], "www.example.test.", 60, &[a], window),
            signed(&cache, &[&ecdsa], "www.example.test.", 30, &[a, b], window),
            signed(&cache, &[&ecdsa], "app.example.test.", 60, &[a, b], window),
            signed(&cache, &[&other], "www.example.test.", 60, &[a, b], window),
            signed(
                &cache,
                &[&ecdsa],
                "www.example.test.",
                60,
                &[a, b],
                Window::at(1_000_001, 3600, 86_400),
            ),
        ];
        assert_eq!(cache.stats(), (1, 6));
        assert!(changed.iter().all(|c| *c != first));
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_what_is_used_again() {
        let ed = key(Algorithm::Ed25519);
        let cache = SignatureCache::new(4);
        let window = Window::at(1_000_000, 3600, 86_400);
        let rdata = |i: u8| [10, 0, 0, i];
        for i in 0..4u8 {
            signed(&cache, &[&ed], "a.example.test.", 60, &[&rdata(i)], window);
        }
        // Full: the next entry starts a new generation; the old one still answers.
        signed(&cache, &[&ed], "a.example.test.", 60, &[&rdata(4)], window);
        assert_eq!(cache.len(), 5);
        signed(&cache, &[&ed], "a.example.test.", 60, &[&rdata(0)], window);
        assert_eq!(cache.stats(), (1, 5), "0 found in the previous generation");
        for i in 5..12u8 {
            signed(&cache, &[&ed], "a.example.test.", 60, &[&rdata(i)], window);
        }
        assert!(
            cache.len() <= 8,
            "two generations of at most 4: {}",
            cache.len()
        );
    }
}
