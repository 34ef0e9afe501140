//! Client address → region, with the ECS scope (RFC 7871) the answer is valid for.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;
use crate::model::RegionIndex;

/// Where a client was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The client's region; `None` when no network matched and no default is set.
    pub region: Option<RegionIndex>,
    /// Prefix length of the client address block this placement holds for: every
    /// address sharing that many leading bits gets the same region.
    pub scope: u8,
}

/// Longest-prefix-match table of client networks.
#[derive(Clone, Debug, Default)]
pub struct GeoMap {
    /// Per prefix length (longest first): masked network address → region.
    v4: Vec<(u8, HashMap<u32, RegionIndex>)>,
    v6: Vec<(u8, HashMap<u128, RegionIndex>)>,
    v4_networks: Vec<(u32, u8, RegionIndex)>,
    v6_networks: Vec<(u128, u8, RegionIndex)>,
    default_region: Option<RegionIndex>,
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl GeoMap {
    /// Builds the table from the regions' networks.
    pub fn new(config: &Config) -> Self {
        let mut map = Self {
            default_region: config.geo.default_region,
            ..Self::default()
        };
        for (i, region) in config.regions.iter().enumerate() {
            let index = RegionIndex(i as u16);
            for net in &region.networks {
                match net {
                    IpNet::V4(n) => {
                        map.v4_networks
                            .push((u32::from(n.network()), n.prefix_len(), index))
                    }
                    IpNet::V6(n) => {
                        map.v6_networks
                            .push((u128::from(n.network()), n.prefix_len(), index))
                    }
                }
            }
        }
        let mut v4: HashMap<u8, HashMap<u32, RegionIndex>> = HashMap::new();
        for &(addr, len, region) in &map.v4_networks {
            v4.entry(len).or_default().insert(addr, region);
        }
        let mut v6: HashMap<u8, HashMap<u128, RegionIndex>> = HashMap::new();
        for &(addr, len, region) in &map.v6_networks {
            v6.entry(len).or_default().insert(addr, region);
        }
        map.v4 = v4.into_iter().collect();
        map.v4.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        map.v6 = v6.into_iter().collect();
        map.v6.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        map
    }

    /// Whether any network is configured.
    pub fn is_empty(&self) -> bool {
        self.v4_networks.is_empty() && self.v6_networks.is_empty()
    }

    /// Places a client address (only its first `prefix` bits are used; pass the full
    /// length for a resolver's own address).
    pub fn locate(&self, addr: IpAddr, prefix: u8) -> Location {
        match addr {
            IpAddr::V4(a) => {
                let prefix = prefix.min(32);
                let addr = mask4(u32::from(a), prefix);
                let hit = self
                    .v4
                    .iter()
                    .find_map(|(len, table)| table.get(&mask4(addr, *len)).map(|r| (*len, *r)));
                let (matched, region) = hit.map_or((0, self.default_region), |(l, r)| (l, Some(r)));
                let scope = self
                    .v4_networks
                    .iter()
                    .filter(|(_, len, r)| *len > matched && Some(*r) != region)
                    .map(|(net, len, _)| {
                        common_prefix(u128::from(*net) << 96, u128::from(addr) << 96).min(*len)
                    })
                    .filter(|cpl| *cpl >= matched)
                    .map(|cpl| cpl + 1)
                    .fold(matched, u8::max);
                Location {
                    region,
                    scope: scope.min(32),
                }
            }
            IpAddr::V6(a) => {
                let prefix = prefix.min(128);
                let addr = mask6(u128::from(a), prefix);
                let hit = self
                    .v6
                    .iter()
                    .find_map(|(len, table)| table.get(&mask6(addr, *len)).map(|r| (*len, *r)));
                let (matched, region) = hit.map_or((0, self.default_region), |(l, r)| (l, Some(r)));
                let scope = self
                    .v6_networks
                    .iter()
                    .filter(|(_, len, r)| *len > matched && Some(*r) != region)
                    .map(|(net, len, _)| common_prefix(*net, addr).min(*len))
                    .filter(|cpl| *cpl >= matched)
                    .map(|cpl| cpl + 1)
                    .fold(matched, u8::max);
                Location {
                    region,
                    scope: scope.min(128),
                }
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
}
