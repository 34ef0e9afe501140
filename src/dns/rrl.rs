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

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::RrlConfig;

/// Responses larger than this (bytes) are [`ResponseClass::Large`] (Knot's figure).
pub const LARGE_RESPONSE: usize = 1024;

/// Token units one response costs when the rate is not shared (fixed point, so
/// that a worker's share of the rate may be fractional).
const UNITS_PER_RESPONSE: u64 = 1000;

/// What kind of response is being sent, for bucketing (Knot's and NSD's classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResponseClass {
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
pub enum Verdict {
    /// Send it as is.
    Send,
    /// Limited: send it truncated (TC, no records).
    Slip,
    /// Limited: send nothing.
    Drop,
}

/// One token bucket.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Key hash (0: never used).
    key: u64,
    /// Token units left.
    units: u64,
    /// When `units` was last refilled (ms).
    stamp: u64,
    /// Limited responses so far, for the slip ratio.
    limited: u32,
}

/// The limiter of one UDP worker: a fixed table of token buckets.
pub struct RateLimiter {
    buckets: Box<[Bucket]>,
    mask: usize,
    /// Units added per millisecond (= rate).
    refill_per_ms: u64,
    /// Units one response costs (= 1000 × share count).
    cost: u64,
    /// Most units a bucket holds (one second of the share, at least one response).
    capacity: u64,
    slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    whitelist: Box<[IpNet]>,
    hasher: foldhash::fast::SeedableRandomState,
}

impl RateLimiter {
    /// A limiter enforcing `config` over one of `shares` workers (see the module
    /// docs), hashing with `seed`.
    pub fn new(config: &RrlConfig, shares: usize, seed: u64) -> Self {
        let size = config.table_size.max(2).next_power_of_two();
        let cost = UNITS_PER_RESPONSE * shares.max(1) as u64;
        let refill_per_ms = u64::from(config.rate);
        Self {
            buckets: vec![Bucket::default(); size].into_boxed_slice(),
            mask: size - 1,
            refill_per_ms,
            cost,
            capacity: (refill_per_ms * 1000).max(cost),
            slip: config.slip,
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
    pub fn check(
        &mut self,
        now_ms: u64,
        client: IpAddr,
        class: ResponseClass,
        name: Option<&[u8]>,
    ) -> Verdict {
        if self.whitelist.iter().any(|net| net.contains(&client)) {
            return Verdict::Send;
        }
        let key = self.key(client, class, name);
        let (refill, capacity, cost, slip) =
            (self.refill_per_ms, self.capacity, self.cost, self.slip);
        let bucket = self.bucket(key, now_ms);
        let elapsed = now_ms.saturating_sub(bucket.stamp);
        bucket.units = bucket
            .units
            .saturating_add(elapsed.saturating_mul(refill))
            .min(capacity);
        bucket.stamp = bucket.stamp.max(now_ms);
        if bucket.units >= cost {
            bucket.units -= cost;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        match slip {
            0 => Verdict::Drop,
            slip if bucket.limited % slip == 0 => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }

    /// The bucket of `key`: its own, or a fresh one in place of the less recently
    /// used of its two slots.
    fn bucket(&mut self, key: u64, now_ms: u64) -> &mut Bucket {
        let first = key as usize & self.mask;
        let second = first ^ 1;
        let slot = if self.buckets[first].key == key {
            first
        } else if self.buckets[second].key == key {
            second
        } else {
            let victim = if self.buckets[second].stamp < self.buckets[first].stamp {
                second
            } else {
                first
            };
            self.buckets[victim] = Bucket {
                key,
                units: self.capacity,
                stamp: now_ms,
                limited: 0,
            };
            victim
        };
        &mut self.buckets[slot]
    }

    /// Hash of (client prefix, class, lower-case name); never 0.
    fn key(&self, client: IpAddr, class: ResponseClass, name: Option<&[u8]>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        match client {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4) & prefix_mask_32(self.ipv4_prefix);
                hasher.write_u64(u64::from(bits) | (4 << 32));
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & prefix_mask_128(self.ipv6_prefix);
                hasher.write_u128(bits);
                hasher.write_u8(6);
            }
        }
        hasher.write_u8(class as u8);
        if let Some(name) = name {
            let mut lower = [0u8; 255];
            let len = lower_name(name, &mut lower);
            hasher.write(&lower[..len]);
        }
        hasher.finish() | 1
    }
}

/// Copies the wire name at the start of `name` in lower case into `out` (up to its
/// root label, at most 255 bytes); returns its length.
fn lower_name(name: &[u8], out: &mut [u8; 255]) -> usize {
    let mut pos = 0;
    while pos < name.len() && pos < out.len() {
        let label = usize::from(name[pos]);
        if label == 0 || label & 0xC0 != 0 {
            out[pos] = name[pos];
            return pos + 1;
        }
        out[pos] = name[pos];
        let end = (pos + 1 + label).min(name.len()).min(out.len());
        for i in pos + 1..end {
            out[i] = name[i].to_ascii_lowercase();
        }
        pos = end;
    }
    pos
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

    proptest! {
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
