//! Response rate limiting (RRL), as Knot's `rrl` module and NSD's `rrl.c` do it:
//! a pure core, with time passed in.
//!
//! Every UDP response is put in a bucket keyed by the client's prefix (IPv4 /24 and
//! IPv6 /56 by default), its [`ResponseClass`] and a name: the query name for answers,
//! the zone apex for NXDOMAIN (so a random-subdomain flood shares one bucket), the
//! delegation point for referrals, no name for errors. A bucket is a token bucket
//! refilled at `rate` responses per second, holding at most one second's worth. A
//! response that finds its bucket empty is *limited*: every `slip`-th one goes out
//! truncated (TC set, no records), so a real client retries over TCP; the others are
//! dropped. TCP is never limited (a spoofed source cannot complete a handshake).
//!
//! ## Table
//!
//! A fixed-size table of buckets indexed by a keyed hash (seeded per process, so
//! collisions cannot be planned from outside), two-way associative: a key lives in
//! its slot or the neighbouring one, and a new key evicts the less recently used of
//! the two. An evicted key starts again with a full bucket, so a table far smaller
//! than the number of active clients limits less, never more.
//!
//! ## One table per UDP worker, no lock
//!
//! Each UDP worker owns a [`RateLimiter`] and touches it only from its own thread:
//! no lock, no atomics, no shared cache lines. The price is accuracy: the kernel
//! spreads a client over the `SO_REUSEPORT` sockets by its source port, so a worker
//! sees only part of a client's traffic. Each worker therefore allows a `1/workers`
//! share of the rate. A client whose source port varies (every resolver, and floods
//! with spoofed sources) is spread evenly and limited at about `rate` in total; a
//! client that sends from one fixed port reaches one worker and is held to
//! `rate/workers`. With one UDP worker the limit is exact.

mod slip;

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

pub(crate) use self::slip::truncate_to_question;
use crate::config::RrlConfig;

/// Responses larger than this (bytes) are [`ResponseClass::Large`] (Knot's figure).
pub(crate) const LARGE_RESPONSE: usize = 1024;

/// Token units one response costs when the rate is not shared (fixed point, so
/// that a worker's share of the rate may be fractional).
const UNITS_PER_RESPONSE: u64 = 1000;

/// What kind of response is being sent, for bucketing (Knot's and NSD's classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum ResponseClass {
    /// A positive answer.
    Answer = 1,
    /// NOERROR without answers (NODATA).
    NoData = 2,
    /// NXDOMAIN.
    NxDomain = 3,
    /// A referral to a delegated child.
    Referral = 4,
    /// Any other response code (REFUSED, FORMERR, NOTIMP, SERVFAIL, BADVERS).
    Error = 5,
    /// ANY queries and answers larger than [`LARGE_RESPONSE`]: the amplifiers.
    Large = 6,
}

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it as is.
    Send,
    /// Limited: send it truncated (TC, no records).
    Slip,
    /// Limited: send nothing.
    Drop,
}

/// One token bucket: 16 bytes, so that both ways of a set share one cache line.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// High half of the key hash (0: never used); the low half picked the set.
    tag: u32,
    /// Token units left.
    units: u32,
    /// When `units` was last refilled (ms) in the high 56 bits; limited responses
    /// since the last slip, modulo the slip ratio, in the low 8.
    stamp_and_count: u64,
}

impl Bucket {
    fn stamp(&self) -> u64 {
        self.stamp_and_count >> 8
    }

    fn count(&self) -> u8 {
        self.stamp_and_count as u8
    }

    fn set(&mut self, stamp: u64, count: u8) {
        self.stamp_and_count = (stamp << 8) | u64::from(count);
    }
}

/// The two ways a key may live in, aligned to share a cache line.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct Set([Bucket; 2]);

/// Milliseconds a stamp can hold (56 bits: two million years).
const MAX_STAMP: u64 = (1 << 56) - 1;

/// The limiter of one UDP worker: a fixed table of token buckets.
pub(crate) struct RateLimiter {
    sets: Box<[Set]>,
    mask: usize,
    /// Units added per millisecond (= rate).
    refill_per_ms: u64,
    /// Units one response costs (= 1000 × share count).
    cost: u32,
    /// Most units a bucket holds (one second of the share, at least one response).
    capacity: u32,
    slip: u8,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    whitelist: Box<[IpNet]>,
    hasher: foldhash::fast::SeedableRandomState,
}

impl RateLimiter {
    /// A limiter enforcing `config` over one of `shares` workers (see the module
    /// docs), hashing with `seed`.
    pub(crate) fn new(config: &RrlConfig, shares: usize, seed: u64) -> Self {
        let size = config.table_size.max(2).next_power_of_two();
        let cost = UNITS_PER_RESPONSE * shares.clamp(1, 1 << 20) as u64;
        let refill_per_ms = u64::from(config.rate.min(1 << 22));
        Self {
            sets: vec![Set::default(); size / 2].into_boxed_slice(),
            mask: size / 2 - 1,
            refill_per_ms,
            cost: cost as u32,
            capacity: (refill_per_ms * 1000).max(cost) as u32,
            slip: config.slip.min(255) as u8,
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
            whitelist: config.whitelist.clone().into_boxed_slice(),
            hasher: foldhash::fast::SeedableRandomState::with_seed(
                seed,
                foldhash::SharedSeed::global_random(),
            ),
        }
    }

    /// Decides about one response at `now_ms` (any monotonic millisecond clock) to
    /// `client`. `name` is the wire name the bucket is keyed by (compared without
    /// case; it may run on past the name's end, which is found by its root label),
    /// or `None` for classes keyed by client and class alone.
    pub(crate) fn check(
        &mut self,
        now_ms: u64,
        client: IpAddr,
        class: ResponseClass,
        name: Option<&[u8]>,
    ) -> Verdict {
        if !self.whitelist.is_empty() && self.whitelist.iter().any(|net| net.contains(&client)) {
            return Verdict::Send;
        }
        let now_ms = now_ms.min(MAX_STAMP);
        let key = self.key(client, class, name);
        let (refill, capacity, cost, slip) =
            (self.refill_per_ms, self.capacity, self.cost, self.slip);
        let bucket = self.bucket(key, now_ms);
        let elapsed = now_ms.saturating_sub(bucket.stamp());
        let refilled = u64::from(bucket.units).saturating_add(elapsed.saturating_mul(refill));
        let mut units = refilled.min(u64::from(capacity)) as u32;
        let stamp = bucket.stamp().max(now_ms);
        let verdict = if units >= cost {
            units -= cost;
            bucket.set(stamp, bucket.count());
            Verdict::Send
        } else if slip == 0 {
            bucket.set(stamp, 0);
            Verdict::Drop
        } else {
            let count = (bucket.count() + 1) % slip;
            bucket.set(stamp, count);
            if count == 0 {
                Verdict::Slip
            } else {
                Verdict::Drop
            }
        };
        bucket.units = units;
        verdict
    }

    /// The bucket of `key`: its own, or a fresh one in place of the less recently
    /// used of its set's two.
    fn bucket(&mut self, key: u64, now_ms: u64) -> &mut Bucket {
        let tag = (key >> 32) as u32 | 1;
        let capacity = self.capacity;
        let Set(ways) = &mut self.sets[key as usize & self.mask];
        let way = if ways[0].tag == tag {
            0
        } else if ways[1].tag == tag {
            1
        } else {
            let victim = usize::from(ways[1].stamp() < ways[0].stamp());
            ways[victim] = Bucket {
                tag,
                units: capacity,
                stamp_and_count: 0,
            };
            ways[victim].set(now_ms, 0);
            victim
        };
        &mut ways[way]
    }

    /// Hash of (client prefix, class, lower-case name).
    fn key(&self, client: IpAddr, class: ResponseClass, name: Option<&[u8]>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        match client {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4) & prefix_mask_32(self.ipv4_prefix);
                hasher.write_u64(u64::from(bits) | (4 << 32) | (u64::from(class as u8) << 40));
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & prefix_mask_128(self.ipv6_prefix);
                hasher.write_u128(bits);
                hasher.write_u64(6 | (u64::from(class as u8) << 8));
            }
        }
        if let Some(name) = name {
            hash_name(name, &mut hasher);
        }
        hasher.finish()
    }
}

/// Feeds the wire name at the start of `name` (up to its root label, at most 255
/// bytes) to `hasher` in lower case, eight bytes at a time.
fn hash_name(name: &[u8], hasher: &mut impl Hasher) {
    let mut end = 0;
    while let Some(&label) = name.get(end) {
        end += 1;
        if label == 0 || label & 0xC0 != 0 || end > 255 {
            break;
        }
        end += usize::from(label);
    }
    let name = &name[..end.min(name.len()).min(255)];
    let mut chunks = name.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        hasher.write_u64(lower_word(word));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    hasher.write_u64(lower_word(u64::from_le_bytes(last)) ^ (rest.len() as u64) << 59);
}

/// ASCII upper-case letters of eight bytes at once turned to lower case (SWAR);
/// every other byte (label lengths included) unchanged.
fn lower_word(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = word & !HIGH;
    // High bit of each byte: its low 7 bits are ≥ 'A', and > 'Z'.
    let at_least_a = low7 + ONES * (0x80 - u64::from(b'A'));
    let above_z = low7 + ONES * (0x80 - u64::from(b'Z') - 1);
    let upper = at_least_a & !above_z & !word & HIGH;
    word | (upper >> 2)
}

fn prefix_mask_32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn prefix_mask_128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAME: &[u8] = b"\x03www\x07example\x00";

    fn limiter(rate: u32, slip: u32, shares: usize) -> RateLimiter {
        let config = RrlConfig {
            rate,
            slip,
            whitelist: vec!["192.0.2.128/25".parse().unwrap()],
            table_size: 1024,
            ..RrlConfig::DEFAULT
        };
        RateLimiter::new(&config, shares, 7)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn sent(l: &mut RateLimiter, now: u64, client: &str, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                l.check(now, ip(client), ResponseClass::Answer, Some(NAME)) == Verdict::Send
            })
            .count()
    }

    #[test]
    fn a_burst_gets_one_second_of_rate_then_refills_with_time() {
        let mut l = limiter(10, 2, 1);
        assert_eq!(sent(&mut l, 1000, "192.0.2.1", 50), 10);
        assert_eq!(
            sent(&mut l, 1000, "192.0.2.1", 5),
            0,
            "empty at the same instant"
        );
        assert_eq!(
            sent(&mut l, 1100, "192.0.2.1", 5),
            1,
            "100 ms refill one token"
        );
        assert_eq!(sent(&mut l, 1600, "192.0.2.1", 50), 5);
        assert_eq!(
            sent(&mut l, 60_000, "192.0.2.1", 50),
            10,
            "capped at a second"
        );
    }

    #[test]
    fn buckets_are_per_prefix_class_and_name() {
        let mut l = limiter(5, 2, 1);
        assert_eq!(sent(&mut l, 0, "192.0.2.1", 20), 5);
        assert_eq!(sent(&mut l, 0, "192.0.2.77", 20), 0, "same /24 shares");
        assert_eq!(sent(&mut l, 0, "198.51.100.1", 20), 5, "another /24");
        let nx = |l: &mut RateLimiter, name: &[u8]| {
            l.check(0, ip("192.0.2.1"), ResponseClass::NxDomain, Some(name))
        };
        assert_eq!(nx(&mut l, NAME), Verdict::Send, "another class");
        let other = b"\x03WWW\x07EXAMPLE\x00trailing";
        assert_ne!(
            l.check(0, ip("192.0.2.1"), ResponseClass::Answer, Some(other)),
            Verdict::Send,
            "names compare without case, ending at the root label"
        );
        assert_eq!(
            l.check(
                0,
                ip("192.0.2.1"),
                ResponseClass::Answer,
                Some(b"\x01x\x00")
            ),
            Verdict::Send,
            "another name"
        );
        let v6 = |l: &mut RateLimiter, a: &str| {
            (0..20)
                .filter(|_| l.check(0, ip(a), ResponseClass::Error, None) == Verdict::Send)
                .count()
        };
        assert_eq!(v6(&mut l, "2001:db8:0:100::1"), 5);
        assert_eq!(v6(&mut l, "2001:db8:0:1ff::2"), 0, "same /56");
        assert_eq!(v6(&mut l, "2001:db8:0:200::1"), 5, "another /56");
    }

    #[test]
    fn whitelisted_clients_are_never_limited() {
        let mut l = limiter(1, 2, 1);
        assert_eq!(sent(&mut l, 0, "192.0.2.200", 1000), 1000);
        assert_eq!(sent(&mut l, 0, "192.0.2.1", 1000), 1);
    }

    #[test]
    fn slip_truncates_every_nth_limited_response() {
        let verdicts = |slip| {
            let mut l = limiter(1, slip, 1);
            (0..7)
                .map(|_| l.check(0, ip("192.0.2.1"), ResponseClass::Answer, Some(NAME)))
                .collect::<Vec<_>>()
        };
        use Verdict::{Drop, Send, Slip};
        assert_eq!(verdicts(0), [Send, Drop, Drop, Drop, Drop, Drop, Drop]);
        assert_eq!(verdicts(1), [Send, Slip, Slip, Slip, Slip, Slip, Slip]);
        assert_eq!(verdicts(2), [Send, Drop, Slip, Drop, Slip, Drop, Slip]);
        assert_eq!(verdicts(3), [Send, Drop, Drop, Slip, Drop, Drop, Slip]);
    }

    #[test]
    fn a_worker_allows_its_share_of_the_rate() {
        let mut l = limiter(40, 2, 4);
        assert_eq!(sent(&mut l, 0, "192.0.2.1", 100), 10);
        assert_eq!(sent(&mut l, 1000, "192.0.2.1", 100), 10);
        let mut tiny = limiter(1, 2, 4);
        assert_eq!(
            sent(&mut tiny, 0, "192.0.2.1", 10),
            1,
            "at least one response"
        );
        assert_eq!(sent(&mut tiny, 3999, "192.0.2.1", 10), 0);
        assert_eq!(sent(&mut tiny, 4000, "192.0.2.1", 10), 1, "1/4 per second");
    }

    #[test]
    fn time_going_backwards_neither_refills_nor_panics() {
        let mut l = limiter(10, 2, 1);
        assert_eq!(sent(&mut l, 5000, "192.0.2.1", 10), 10);
        assert_eq!(sent(&mut l, 0, "192.0.2.1", 10), 0);
        assert_eq!(sent(&mut l, 5100, "192.0.2.1", 10), 1);
    }

    #[test]
    fn names_hash_alike_in_any_case_and_differ_otherwise() {
        let l = limiter(1, 2, 1);
        let client = ip("192.0.2.1");
        let key = |name: &[u8]| l.key(client, ResponseClass::Answer, Some(name));
        assert_eq!(
            key(b"\x0bAbCdEfGhIjK\x07EXAMPLE\x00\x00\x01"),
            key(b"\x0babcdefghijk\x07example\x00\xff\xff")
        );
        assert_ne!(key(b"\x01a\x00"), key(b"\x01b\x00"));
        assert_ne!(
            key(b"\x01a\x00"),
            key(b"\x01@\x00"),
            "'@' is not 'a' without case"
        );
        assert_ne!(key(b"\x01a\x00"), key(b"\x01a\x01a\x00"));
        assert_ne!(key(b"\x01["), key(b"\x01{"));
    }

    proptest! {
        /// Lower-casing eight bytes at once agrees with doing it byte by byte.
        #[test]
        fn word_lowering_matches_bytewise(bytes in any::<[u8; 8]>()) {
            let want = u64::from_le_bytes(bytes.map(|b| b.to_ascii_lowercase()));
            prop_assert_eq!(lower_word(u64::from_le_bytes(bytes)), want);
        }

        /// Over any schedule, one bucket sends at most the burst plus the refill.
        #[test]
        fn never_more_than_burst_plus_rate_times_time(
            rate in 1u32..200,
            shares in 1usize..8,
            gaps in proptest::collection::vec(0u64..300, 1..400),
        ) {
            let mut l = limiter(rate, 2, shares);
            let mut now = 10_000;
            let mut sent_count = 0u64;
            for gap in &gaps {
                now += gap;
                if l.check(now, ip("192.0.2.1"), ResponseClass::Answer, Some(NAME)) == Verdict::Send {
                    sent_count += 1;
                }
            }
            let elapsed = now - 10_000;
            let share = f64::from(rate) / shares as f64;
            let bound = share.max(1.0) + share * elapsed as f64 / 1000.0;
            prop_assert!(sent_count as f64 <= bound + 1e-9, "{sent_count} > {bound}");
        }

        /// A client sending at most the rate is never limited.
        #[test]
        fn a_client_within_the_rate_is_never_limited(
            rate in 1u32..100,
            count in 1usize..300,
        ) {
            let mut l = limiter(rate, 2, 1);
            let step = 1000u64.div_ceil(u64::from(rate));
            for i in 0..count {
                let now = 1000 + i as u64 * step;
                prop_assert_eq!(
                    l.check(now, ip("198.51.100.9"), ResponseClass::Answer, Some(NAME)),
                    Verdict::Send
                );
            }
        }

        /// Whatever happens in a full table, a fresh key starts with a full bucket.
        #[test]
        fn collisions_never_limit_a_new_client(clients in proptest::collection::vec(any::<u32>(), 1..3000)) {
            let mut l = limiter(1, 2, 1);
            for (i, c) in clients.iter().enumerate() {
                let addr = IpAddr::from(std::net::Ipv4Addr::from(c & 0xFFFF_FF00));
                let first = l.check(i as u64, addr, ResponseClass::Answer, Some(NAME));
                let repeat = clients[..i].iter().any(|p| p & 0xFFFF_FF00 == c & 0xFFFF_FF00);
                if !repeat {
                    prop_assert_eq!(first, Verdict::Send);
                }
            }
        }
    }
}

/// A micro-benchmark of [`RateLimiter::check`], run by hand:
/// `cargo test --release --lib rrl::timing -- --ignored --nocapture`.
#[cfg(test)]
mod timing {
    use super::*;

    #[test]
    #[ignore = "a micro-benchmark, run by hand"]
    fn time_checks() {
        let names: Vec<Vec<u8>> = (0..10_000)
            .map(|i| {
                let label = format!("h{i}");
                let mut n = vec![label.len() as u8];
                n.extend(label.as_bytes());
                n.extend(b"\x05bench\x04test\x00\x00\x01\x00\x01");
                n
            })
            .collect();
        for size in [1024, 65536] {
            let config = RrlConfig {
                rate: 1_000_000,
                table_size: size,
                ..RrlConfig::DEFAULT
            };
            let mut l = RateLimiter::new(&config, 1, 1);
            let client: IpAddr = "127.0.0.1".parse().unwrap();
            let start = std::time::Instant::now();
            let mut sent = 0;
            for i in 0..5_000_000usize {
                let name = &names[(i * 7919) % names.len()];
                if l.check(
                    1000 + (i / 1000) as u64,
                    client,
                    ResponseClass::Answer,
                    Some(name),
                ) == Verdict::Send
                {
                    sent += 1;
                }
            }
            let ns = start.elapsed().as_nanos() as f64 / 5e6;
            let mut h = 0u64;
            let start = std::time::Instant::now();
            for i in 0..5_000_000usize {
                let name = &names[(i * 7919) % names.len()];
                h = h.wrapping_add(l.key(client, ResponseClass::Answer, Some(name)));
            }
            let key_ns = start.elapsed().as_nanos() as f64 / 5e6;
            eprintln!("table {size}: {ns:.1} ns per check, {key_ns:.1} ns per key ({sent} {h})");
        }
    }
}
