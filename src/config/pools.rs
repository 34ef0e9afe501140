//! `[regions]`, `[geo]`, `[pools]` and `[[safety]]` → regions, pools and endpoints.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::defaults;
use super::diagnostics::KeyPath;
use super::spec::{EndpointSpec, GeoSpec, PoolSpec, RegionSpec, SafetySpec};
use super::validate::{Validator, check_identifier, normalize_name, parse_network};
use crate::model::{
    CheckIndex, EndpointIndex, EndpointTarget, HealthState, PoolIndex, RegionIndex, Weight,
};

/// A `[[safety]]` rule: at least `min_in_service` of `pools` stay in service — a pool
/// is in service while at least `min_healthy` of its endpoints are neither drained
/// nor forced down (by the configuration or an operator), whatever the probes say. An
/// override that would leave fewer is refused unless made with `allow_empty`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SafetyRule {
    /// Its name (`name`, or `safety[N]`).
    pub name: String,
    /// The pools guarded.
    pub pools: Vec<PoolIndex>,
    /// How many must stay in service (1 ..= pools).
    pub min_in_service: u32,
}

/// A region: where pools run, and (for geo records) where clients are.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Region {
    /// Region name.
    pub name: String,
    /// Client networks mapped to this region.
    pub networks: Vec<IpNet>,
}

/// The `[geo]` section, validated.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct GeoConfig {
    /// Region of clients that match no network.
    pub default_region: Option<RegionIndex>,
    /// Whether EDNS Client Subnet is honoured.
    pub ecs: bool,
}

/// A pool of endpoints.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Pool {
    /// Pool name.
    pub name: String,
    /// Region the pool runs in.
    pub region: Option<RegionIndex>,
    /// Healthy endpoints needed for the pool to be up (≥ 1, ≤ endpoints).
    pub min_healthy: u32,
    /// Its endpoints, in file order.
    pub endpoints: Vec<EndpointIndex>,
    /// Check probing its endpoints (None: not probed; health comes from `force`).
    pub check: Option<CheckIndex>,
    /// Its capacity in relative units, when its endpoints declare none.
    pub capacity: Option<f64>,
    /// Fraction of its capacity it may be driven to (spill-over; default 1).
    pub max_load: f64,
}

/// An endpoint of a pool.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Endpoint {
    /// Owning pool.
    pub pool: PoolIndex,
    /// Name, unique within the pool (the address unless given).
    pub name: String,
    /// Address or host name answered.
    pub target: EndpointTarget,
    /// Share of traffic; 0 = drained.
    pub weight: Weight,
    /// Forced state, overriding health checks.
    pub forced: Option<HealthState>,
    /// Its capacity in relative units (spill-over), if declared.
    pub capacity: Option<f64>,
}

impl Validator<'_> {
    pub(super) fn regions(&mut self, specs: &[(String, RegionSpec)]) {
        let mut networks: HashMap<IpNet, String> = HashMap::new();
        for (name, spec) in specs {
            let path = KeyPath::root().key("regions").key(name);
            if name == "default" {
                self.error(
                    path.clone(),
                    "`default` is reserved (it names the fallback entry of geo maps)",
                );
            }
            let mut parsed = Vec::new();
            for (i, text) in spec.networks.iter().enumerate() {
                let item = path.key("networks").index(i);
                match parse_network(text) {
                    Ok(net) => {
                        if let Some(other) = networks.insert(net, name.clone()) {
                            self.error(
                                item,
                                format!("{net} is already mapped to region {other:?}"),
                            );
                        } else {
                            parsed.push(net);
                        }
                    }
                    Err(e) => self.error(item, e),
                }
            }
            self.regions.push(Region {
                name: name.clone(),
                networks: parsed,
            });
        }
    }

    pub(super) fn region_by_name(&self, name: &str) -> Option<RegionIndex> {
        self.regions
            .iter()
            .position(|r| r.name == name)
            .map(|i| RegionIndex(i as u16))
    }

    /// Resolves a region reference, reporting unknown names and marking it used.
    pub(super) fn use_region(&mut self, name: &str, path: KeyPath) -> Option<RegionIndex> {
        let found = self.region_by_name(name);
        match found {
            Some(region) => {
                self.used_regions.insert(region);
            }
            None => {
                let known = self.known_regions();
                self.error(path, format!("unknown region {name:?} ({known})"));
            }
        }
        found
    }

    pub(super) fn known_regions(&self) -> String {
        let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        if names.is_empty() {
            "none defined; add [regions.NAME]".to_owned()
        } else {
            format!("known: {}", names.join(", "))
        }
    }

    pub(super) fn geo(&mut self, spec: &GeoSpec) -> GeoConfig {
        let path = KeyPath::root().key("geo").key("default_region");
        let default_region = spec
            .default_region
            .as_ref()
            .and_then(|name| self.use_region(name, path));
        GeoConfig {
            default_region,
            ecs: spec.ecs.unwrap_or(defaults::geo::ECS),
        }
    }

    pub(super) fn pools(&mut self, specs: &[(String, Option<PoolSpec>)]) {
        for (pool_number, (name, spec)) in specs.iter().enumerate() {
            let path = KeyPath::root().key("pools").key(name);
            let pool_index = PoolIndex(pool_number as u32);
            if let Err(e) = check_identifier(name) {
                self.error(path.clone(), e);
            }
            let Some(spec) = spec else {
                // Shape error already reported; keep the index so references resolve.
                self.pools.push(Pool {
                    name: name.clone(),
                    region: None,
                    min_healthy: 1,
                    endpoints: Vec::new(),
                    check: None,
                    capacity: None,
                    max_load: super::defaults::pools::MAX_LOAD,
                });
                continue;
            };
            let region = spec
                .region
                .as_ref()
                .and_then(|r| self.use_region(r, path.key("region")));
            if spec.endpoints.is_empty() {
                self.error(path.key("endpoints"), "a pool needs at least one endpoint");
            }
            let mut endpoints = Vec::new();
            let mut names = HashSet::new();
            let mut targets = HashSet::new();
            for (i, endpoint_spec) in spec.endpoints.iter().enumerate() {
                let item = path.key("endpoints").index(i);
                // Duplicates are found from the address alone, so they are reported even
                // when another key of the endpoint is invalid.
                let target = parse_target(&endpoint_spec.address);
                if let Some(target) = &target {
                    if !targets.insert(target.clone()) {
                        self.error(
                            item.key("address"),
                            format!("duplicate endpoint: {target} appears twice in pool {name:?}"),
                        );
                        continue;
                    }
                }
                let Some(endpoint) = self.endpoint(endpoint_spec, &item, pool_index) else {
                    continue;
                };
                if !names.insert(endpoint.name.clone()) {
                    self.error(
                        item.key("name"),
                        format!(
                            "duplicate endpoint name {:?} in pool {name:?}",
                            endpoint.name
                        ),
                    );
                    continue;
                }
                endpoints.push(EndpointIndex(self.endpoints.len() as u32));
                self.endpoints.push(endpoint);
            }
            let count = spec.endpoints.len().max(1) as i64;
            let min_healthy = self.ranged(
                path.key("min_healthy"),
                spec.min_healthy,
                defaults::pools::MIN_HEALTHY,
                1..=count,
                " (at least 1, at most the number of endpoints)",
            ) as u32;
            if !endpoints.is_empty()
                && endpoints
                    .iter()
                    .all(|e| self.endpoints[e.0 as usize].weight.is_drained())
            {
                self.warning(
                    path.key("endpoints"),
                    "every endpoint has weight 0 (drained)",
                );
            }
            let check = spec.check.as_ref().and_then(|c| {
                let found = self.checks.iter().position(|k| &k.name == c);
                if found.is_none() {
                    let known: Vec<&str> = self.checks.iter().map(|k| k.name.as_str()).collect();
                    self.error(
                        path.key("check"),
                        format!("unknown check {c:?} (known: {})", known.join(", ")),
                    );
                }
                found.map(|i| CheckIndex(i as u32))
            });
            let (capacity, max_load) = self.pool_capacity(spec, &endpoints, &path);
            self.pools.push(Pool {
                name: name.clone(),
                region,
                min_healthy,
                endpoints,
                check,
                capacity,
                max_load,
            });
        }
    }

    pub(super) fn endpoint(
        &mut self,
        spec: &EndpointSpec,
        path: &KeyPath,
        pool: PoolIndex,
    ) -> Option<Endpoint> {
        let target = match spec.address.parse::<IpAddr>() {
            Ok(ip) => EndpointTarget::Address(ip),
            // Shaped like an address (a host name's last label is never a number, and
            // never holds a colon): an address with a typo, not a host name.
            Err(_) if looks_like_address(&spec.address) => {
                self.error(
                    path.key("address"),
                    format!(
                        "{:?} is not a valid IP address ({})",
                        spec.address,
                        if spec.address.contains(':') {
                            "IPv6: up to eight groups of hex digits, :: once"
                        } else {
                            "IPv4: four numbers from 0 to 255"
                        }
                    ),
                );
                return None;
            }
            Err(_) => {
                match check_host_name(&spec.address).and_then(|()| normalize_name(&spec.address)) {
                    Ok(host) => EndpointTarget::Host(host),
                    Err(e) => {
                        self.error(
                            path.key("address"),
                            format!(
                                "{:?} is neither an IP address nor a host name: {e}",
                                spec.address
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        let weight = match spec.weight {
            None => defaults::pools::WEIGHT,
            Some(w) if w < 0 => {
                self.error(
                    path.key("weight"),
                    format!("weight {w} is negative; use 0 to drain an endpoint"),
                );
                return None;
            }
            Some(w) if w > i64::from(u16::MAX) => {
                self.error(
                    path.key("weight"),
                    format!("weight {w} is larger than 65535"),
                );
                return None;
            }
            Some(w) => w as u32,
        };
        let forced = match spec.force.as_deref() {
            None => None,
            Some("up") => Some(HealthState::Up),
            Some("down") => Some(HealthState::Down),
            Some(other) => {
                self.error(
                    path.key("force"),
                    format!("{other:?} is not \"up\" or \"down\""),
                );
                None
            }
        };
        let name = spec.name.clone().unwrap_or_else(|| target.to_string());
        if let Err(e) = check_identifier(&name) {
            self.error(path.key("name"), e);
        }
        let capacity = spec
            .capacity
            .and_then(|c| self.positive(path.key("capacity"), c));
        Some(Endpoint {
            pool,
            name,
            target,
            weight: Weight(weight),
            forced,
            capacity,
        })
    }

    /// A pool's `capacity` and `max_load` (spill-over): a capacity on the pool or on
    /// every endpoint, not both, nor on some endpoints only.
    fn pool_capacity(
        &mut self,
        spec: &PoolSpec,
        endpoints: &[EndpointIndex],
        path: &KeyPath,
    ) -> (Option<f64>, f64) {
        let capacity = spec
            .capacity
            .and_then(|c| self.positive(path.key("capacity"), c));
        let declared = endpoints
            .iter()
            .filter(|e| self.endpoints[e.0 as usize].capacity.is_some())
            .count();
        if declared > 0 && capacity.is_some() {
            self.error(
                path.key("capacity"),
                "set capacity on the pool or on its endpoints, not both (the pool's is the sum of its usable endpoints')",
            );
        } else if declared > 0 && declared < endpoints.len() {
            self.error(
                path.key("endpoints"),
                format!(
                    "{declared} of {} endpoints declare a capacity: give every endpoint one, or none and the pool one",
                    endpoints.len()
                ),
            );
        }
        let max_load = match spec.max_load {
            None => super::defaults::pools::MAX_LOAD,
            Some(x) if x > 0.0 && x <= 1.0 => x,
            Some(x) => {
                self.error(
                    path.key("max_load"),
                    format!("{x} is out of range: max_load is a fraction of capacity, 0 < max_load <= 1 (e.g. 0.8)"),
                );
                super::defaults::pools::MAX_LOAD
            }
        };
        (capacity, max_load)
    }

    /// A positive, finite number (capacities, demand).
    pub(super) fn positive(&mut self, path: KeyPath, value: f64) -> Option<f64> {
        if value.is_finite() && value > 0.0 {
            Some(value)
        } else {
            self.error(
                path,
                format!("{value} is not a positive number (relative capacity units, e.g. 100)"),
            );
            None
        }
    }

    pub(super) fn pool_by_name(&self, name: &str) -> Option<PoolIndex> {
        self.pools
            .iter()
            .position(|p| p.name == name)
            .map(|i| PoolIndex(i as u32))
    }

    /// Resolves a list of pool names, reporting unknown and repeated ones.
    /// `[[safety]]` rules: known pools, each once, `min_in_service` 1 ..= pools.
    pub(super) fn safety(&mut self, specs: &[Option<SafetySpec>]) -> Vec<SafetyRule> {
        let mut rules = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let Some(spec) = spec else { continue };
            let path = KeyPath::root().key("safety").index(i);
            let mut pools = Vec::new();
            if spec.pools.is_empty() {
                self.error(path.key("pools"), "at least one pool is needed");
            }
            for (j, name) in spec.pools.iter().enumerate() {
                match self.pool_by_name(name) {
                    Some(pool) if pools.contains(&pool) => {
                        self.error(
                            path.key("pools").index(j),
                            format!("pool {name:?} is listed twice"),
                        );
                    }
                    Some(pool) => pools.push(pool),
                    None => {
                        let known: Vec<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
                        self.error(
                            path.key("pools").index(j),
                            format!("unknown pool {name:?} (known: {})", known.join(", ")),
                        );
                    }
                }
            }
            let count = spec.pools.len().max(1) as i64;
            let min = self.ranged(
                path.key("min_in_service"),
                spec.min_in_service,
                defaults::safety::MIN_IN_SERVICE,
                1..=count,
                " (at least one, at most the pools listed)",
            ) as u32;
            rules.push(SafetyRule {
                name: spec.name.clone().unwrap_or_else(|| format!("safety[{i}]")),
                pools,
                min_in_service: min,
            });
        }
        rules
    }

    pub(super) fn pool_list(&mut self, names: &[String], path: &KeyPath) -> Vec<PoolIndex> {
        if names.is_empty() {
            self.error(path.clone(), "at least one pool is needed");
        }
        let mut pools = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match self.pool_by_name(name) {
                Some(pool) if pools.contains(&pool) => {
                    self.error(path.index(i), format!("pool {name:?} is listed twice"));
                }
                Some(pool) => {
                    self.used_pools.insert(pool);
                    pools.push(pool);
                }
                None => {
                    let known: Vec<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
                    self.error(
                        path.index(i),
                        format!("unknown pool {name:?} (known: {})", known.join(", ")),
                    );
                }
            }
        }
        pools
    }
}

/// Whether `text` is shaped like an IP address: it holds a colon, or its last label
/// is a number (which no host name's is).
pub(super) fn looks_like_address(text: &str) -> bool {
    let last = text
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or_default();
    text.contains(':') || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// An endpoint's target from its address text, if valid.
pub(super) fn parse_target(address: &str) -> Option<EndpointTarget> {
    match address.parse::<IpAddr>() {
        Ok(ip) => Some(EndpointTarget::Address(ip)),
        Err(_) => normalize_name(address).ok().map(EndpointTarget::Host),
    }
}

/// An endpoint's host name must be a host name (RFC 1123: letters, digits and `-`
/// inside dot-separated labels): it reaches probes, exec checks among them, where a
/// leading `-` would read as an option and other characters as syntax.
pub(super) fn check_host_name(name: &str) -> Result<(), String> {
    for label in name.trim_end_matches('.').split('.') {
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "contains {c:?}; a host name has letters, digits and '-' in dot-separated labels"
            ));
        }
        let edge = if label.starts_with('-') {
            Some("starts")
        } else if label.ends_with('-') {
            Some("ends")
        } else {
            None
        };
        if let Some(edge) = edge {
            return Err(format!(
                "label {label:?} {edge} with '-'; a host name's labels begin and end with a letter or digit"
            ));
        }
    }
    Ok(())
}
