//! Plain domain types shared by every layer: indices, weights, TTLs, health.
//!
//! Nothing here does I/O. Runtime structures refer to pools, endpoints and regions by
//! dense indices (assigned when the configuration is validated) so the answer path can
//! index vectors instead of hashing names.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Index of a region in [`crate::config::Config::regions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RegionIndex(pub u16);

/// Index of a pool in [`crate::config::Config::pools`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PoolIndex(pub u32);

/// Index of an endpoint in the flat endpoint list of a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct EndpointIndex(pub u32);

/// Index of a check in [`crate::config::Config::checks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct CheckIndex(pub u32);

/// Index of a vantage point in [`crate::config::Config::vantages`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct VantageIndex(pub u16);

/// Index of a dynamic record in [`crate::config::Config::records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RecordIndex(pub u32);

/// Relative share of traffic an endpoint receives; 0 means drained (never selected
/// while any endpoint with a positive weight can be).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Weight(pub u32);

impl Weight {
    /// Whether the endpoint is drained.
    pub(crate) fn is_drained(self) -> bool {
        self.0 == 0
    }
}

/// Time to live in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Ttl(pub u32);

impl Ttl {
    /// Smallest TTL a dynamic record may have.
    pub(crate) const MIN_DYNAMIC: Self = Self(1);
    /// Largest TTL accepted anywhere (one day; RFC 2181 allows more, but a failover
    /// service has no use for it).
    pub(crate) const MAX: Self = Self(86_400);
}

/// Observed or forced health of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum HealthState {
    /// Serving traffic.
    Up,
    /// Not serving traffic.
    Down,
}

impl HealthState {
    /// Whether the state is [`HealthState::Up`].
    pub(crate) fn is_up(self) -> bool {
        self == Self::Up
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Down => "down",
        })
    }
}

/// Record types a dynamic record can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum DynamicType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    #[serde(rename = "AAAA")]
    Aaaa,
    /// A single canonical name (endpoints are host names).
    #[serde(rename = "CNAME")]
    Cname,
}

impl DynamicType {
    /// The DNS RR type code.
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Aaaa => 28,
            Self::Cname => 5,
        }
    }
}

impl fmt::Display for DynamicType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
        })
    }
}

/// Where an endpoint's traffic goes: an address (A/AAAA answers) or a host name
/// (CNAME answers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum EndpointTarget {
    /// An IPv4 or IPv6 address.
    Address(IpAddr),
    /// An absolute host name, lower case, with a trailing dot.
    Host(String),
}

impl fmt::Display for EndpointTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(ip) => ip.fmt(f),
            Self::Host(host) => f.write_str(host),
        }
    }
}

/// A source of randomness passed into pure code (the policy engine), so that the code
/// itself stays deterministic under test.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) trait RandomSource {
    /// Returns the next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// Returns a value uniformly distributed in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        // Lemire's multiply-shift; the bias is below 2^-32 for the bounds used here.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// A small, fast, seedable generator (SplitMix64). Not cryptographic: it spreads load,
/// it does not protect secrets.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// Creates a generator from a seed.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let v = rng.below(5);
            assert!(v < 5);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 1_800), "{seen:?}");
    }
}
