//! Client address → region, with the ECS scope (RFC 7871) the answer is valid for.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;
use crate::model::RegionIndex;

/// Where a client was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// The client's region; `None` when no network matched and no default is set.
    pub region: Option<RegionIndex>,
    /// Prefix length of the client address block this placement holds for: every
    /// address sharing that many leading bits gets the same region.
    pub scope: u8,
}

/// Longest-prefix-match table of client networks, flattened when built into sorted,
/// disjoint runs of addresses that share a region, so a query does one binary
/// search: the region is its run's, and the ECS scope the shortest prefix whose
/// block stays inside the run (no scan of the networks per query).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct GeoMap {
    v4: Runs,
    v6: Runs,
    #[expect(
        dead_code,
        reason = "never read (found by the issue 22 pub(crate) sweep): use it or remove it"
    )]
    configured: bool,
}

/// Disjoint address runs covering an address family, sorted by start.
#[derive(Clone, Debug, Default)]
struct Runs {
    /// Bits in an address (32 or 128).
    bits: u8,
    /// First address of each run (the first is 0).
    starts: Vec<u128>,
    /// Region of each run (None: unmatched and no default region).
    regions: Vec<Option<RegionIndex>>,
}

/// The last address of a family.
fn family_max(bits: u8) -> u128 {
    if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn mask(addr: u128, len: u8, bits: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (family_max(bits) & !(family_max(bits) >> len))
    }
}

impl Runs {
    /// Flattens `networks` (address, prefix length, region) by longest prefix match.
    fn new(bits: u8, networks: &[(u128, u8, RegionIndex)], default: Option<RegionIndex>) -> Self {
        let max = family_max(bits);
        let last_of = |net: u128, len: u8| net | (max >> len);
        // Every run boundary is a network's first address or the one after its last.
        let mut bounds: Vec<u128> = vec![0];
        for &(net, len, _) in networks {
            bounds.push(net);
            if let Some(after) = last_of(net, len).checked_add(1).filter(|a| *a <= max) {
                bounds.push(after);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        // Longest match per elementary interval (networks are nested or disjoint, so
        // the interval's first address decides it). Building only: a scan is fine.
        let lpm = |addr: u128| {
            networks
                .iter()
                .filter(|(net, len, _)| mask(addr, *len, bits) == *net)
                .max_by_key(|(_, len, _)| *len)
                .map(|(_, _, region)| *region)
                .or(default)
        };
        let mut runs = Self {
            bits,
            ..Self::default()
        };
        for start in bounds {
            let region = lpm(start);
            if runs.regions.last() != Some(&region) {
                runs.starts.push(start);
                runs.regions.push(region);
            }
        }
        runs
    }

    /// The region of `addr` and the shortest prefix for which every address sharing
    /// it has that region.
    fn locate(&self, addr: u128) -> Location {
        let at = self
            .starts
            .partition_point(|&s| s <= addr)
            .saturating_sub(1);
        let Some(&region) = self.regions.get(at) else {
            return Location {
                region: None,
                scope: 0,
            };
        };
        let shift = 128 - u32::from(self.bits);
        // The block of `addr` at prefix L stays in the run when it excludes the
        // address before the run and the one after it: L > their common prefix.
        let excluding = |other: u128| common_prefix(addr << shift, other << shift) + 1;
        let mut scope = 0;
        if at > 0 {
            scope = scope.max(excluding(self.starts[at] - 1));
        }
        if let Some(&next) = self.starts.get(at + 1) {
            scope = scope.max(excluding(next));
        }
        Location {
            region,
            scope: scope.min(self.bits),
        }
    }
}

impl GeoMap {
    /// Builds the table from the regions' networks.
    pub(crate) fn new(config: &Config) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, region) in config.regions.iter().enumerate() {
            let index = RegionIndex(i as u16);
            for net in &region.networks {
                match net {
                    IpNet::V4(n) => {
                        v4.push((u128::from(u32::from(n.network())), n.prefix_len(), index))
                    }
                    IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len(), index)),
                }
            }
        }
        let default = config.geo.default_region;
        Self {
            configured: !(v4.is_empty() && v6.is_empty()),
            v4: Runs::new(32, &v4, default),
            v6: Runs::new(128, &v6, default),
        }
    }

    /// Places a client address (only its first `prefix` bits are used; pass the full
    /// length for a resolver's own address).
    pub(crate) fn locate(&self, addr: IpAddr, prefix: u8) -> Location {
        match addr {
            IpAddr::V4(a) => {
                let prefix = prefix.min(32);
                self.v4.locate(mask(u128::from(u32::from(a)), prefix, 32))
            }
            IpAddr::V6(a) => {
                let prefix = prefix.min(128);
                self.v6.locate(mask(u128::from(a), prefix, 128))
            }
        }
    }
}

fn common_prefix(a: u128, b: u128) -> u8 {
    (a ^ b).leading_zeros().min(128) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigSource};

    fn map() -> GeoMap {
        let text = r#"
            version = 1
            [regions.eu]
            networks = ["10.0.0.0/8", "2001:db8:e::/48"]
            [regions.us]
            networks = ["10.1.0.0/16"]
            [geo]
            default_region = "us"
        "#;
        let (config, _) = Config::load(ConfigSource::from_text(text, ".")).unwrap();
        GeoMap::new(&config)
    }

    #[test]
    fn longest_prefix_wins_and_scope_excludes_more_specific_networks() {
        let map = map();
        let eu = Some(RegionIndex(0));
        let us = Some(RegionIndex(1));
        // 10.2.x is eu via /8, but the /16 carve-out for us needs 15 bits to exclude.
        let l = map.locate("10.2.3.4".parse().unwrap(), 32);
        assert_eq!(l.region, eu);
        assert_eq!(l.scope, 15);
        let l = map.locate("10.128.0.1".parse().unwrap(), 32);
        assert_eq!((l.region, l.scope), (eu, 9));
        let l = map.locate("10.1.9.9".parse().unwrap(), 24);
        assert_eq!((l.region, l.scope), (us, 16));
        // Unmatched → default region; scope must exclude 10/8.
        let l = map.locate("192.0.2.1".parse().unwrap(), 24);
        assert_eq!((l.region, l.scope), (us, 1));
        let l = map.locate("2001:db8:e::1".parse().unwrap(), 56);
        assert_eq!((l.region, l.scope), (eu, 48));
    }

    /// The region by longest-prefix match, scanning every network (the reference).
    fn reference(
        networks: &[(u128, u8, RegionIndex)],
        default: Option<RegionIndex>,
        addr: u128,
    ) -> Option<RegionIndex> {
        networks
            .iter()
            .filter(|(net, len, _)| mask(addr, *len, 32) == *net)
            .max_by_key(|(_, len, _)| *len)
            .map(|(_, _, r)| *r)
            .or(default)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// The flattened table answers the longest-prefix match, and every address in
        /// the scope block it gives has the same region.
        #[test]
        fn runs_agree_with_longest_prefix_match(
            nets in proptest::collection::vec((proptest::prelude::any::<u32>(), 0u8..=32, 0u16..3), 0..24),
            default in proptest::option::of(0u16..3),
            probes in proptest::collection::vec((proptest::prelude::any::<u32>(), 0u8..=32), 1..32),
        ) {
            // Networks as configured: masked, one region per network.
            let mut networks: Vec<(u128, u8, RegionIndex)> = nets
                .into_iter()
                .map(|(addr, len, r)| (mask(u128::from(addr), len, 32), len, RegionIndex(r)))
                .collect();
            networks.sort_by_key(|(net, len, _)| (*net, *len));
            networks.dedup_by_key(|(net, len, _)| (*net, *len));
            let default = default.map(RegionIndex);
            let runs = Runs::new(32, &networks, default);
            for (addr, prefix) in probes {
                let addr = mask(u128::from(addr), prefix, 32);
                let location = runs.locate(addr);
                proptest::prop_assert_eq!(location.region, reference(&networks, default, addr));
                let first = mask(addr, location.scope, 32);
                let last = first | (family_max(32) >> location.scope);
                for probe in [first, last, first + (last - first) / 2] {
                    proptest::prop_assert_eq!(reference(&networks, default, probe), location.region);
                }
            }
        }
    }
}
