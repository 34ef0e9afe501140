//! `[[records]]` → [`DynamicRecord`]: names, TTLs, policies and the pools they answer from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::defaults::records as defaults;
use super::diagnostics::KeyPath;
use super::spec::RecordSpec;
use super::validate::{RecordDefaults, Validator, normalize_name};
use super::{CheckKind, ColdStart, GeoConfig, Route53Mode};
use crate::model::{DynamicType, EndpointTarget, PoolIndex, Ttl};

/// How endpoints are picked from the pools a record is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The first pool (in order) that is up; its healthy endpoints.
    Failover,
    /// Weighted random choice among healthy endpoints of all pools that are up.
    Weighted,
    /// All healthy endpoints of all pools that are up.
    Multivalue,
    /// The one endpoint whose check says it is the primary (a database node, or an app
    /// endpoint tied to one); see [`crate::policy::primary`].
    Primary,
}

/// What a `primary` record answers while more than one endpoint claims primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// The last agreed primary (NODATA if none is known); never both.
    #[default]
    Hold,
    /// Nothing (NODATA): fail closed.
    None,
}

/// A failover gate: traffic moves to `pool` only while `gate` is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The gated pool.
    pub pool: PoolIndex,
    /// The pool that must be up (e.g. the standby database within `max_lag`).
    pub gate: PoolIndex,
}

/// Which pool list a record uses.
#[derive(Clone, Debug)]
pub enum PoolChoice {
    /// Always the same pools.
    Fixed(Vec<PoolIndex>),
    /// Pools chosen by the client's region.
    Geo {
        /// Pools per region (indexed by [`crate::model::RegionIndex`]); `None` uses `default`.
        by_region: Vec<Option<Vec<PoolIndex>>>,
        /// Pools for clients whose region has no entry.
        default: Vec<PoolIndex>,
    },
}

impl PoolChoice {
    /// Every pool list this choice can produce.
    pub fn all_lists(&self) -> Vec<&[PoolIndex]> {
        match self {
            Self::Fixed(pools) => vec![pools.as_slice()],
            Self::Geo { by_region, default } => by_region
                .iter()
                .flatten()
                .map(Vec::as_slice)
                .chain(std::iter::once(default.as_slice()))
                .collect(),
        }
    }
}

/// What a record answers when no pool is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllDown {
    /// Answer as if every endpoint were healthy (Route 53's behaviour).
    FailOpen,
    /// Answer every endpoint of this pool, whatever its health.
    Fallback(PoolIndex),
    /// Answer NOERROR with no records (fail closed).
    NoData,
}

/// A name answered from pools.
#[derive(Clone, Debug)]
pub struct DynamicRecord {
    /// Position in the file's `[[records]]` array (for messages: invalid entries are
    /// left out of [`crate::config::Config::records`], so indices there can differ).
    pub position: usize,
    /// Owner name: lower case, absolute, with a trailing dot.
    pub name: String,
    /// Record type answered.
    pub record_type: DynamicType,
    /// TTL while healthy.
    pub ttl: Ttl,
    /// TTL while in all-down mode (≤ `ttl`), so recovery spreads fast.
    pub all_down_ttl: Ttl,
    /// Shortest TTL while an endpoint of the record is in doubt (≤ `ttl`).
    pub min_ttl: Ttl,
    /// How endpoints are picked.
    pub selection: Selection,
    /// Which pools are considered.
    pub pools: PoolChoice,
    /// Most records in one answer.
    pub max_answers: u16,
    /// Behaviour when nothing is up.
    pub all_down: AllDown,
    /// Health at start-up before reports arrive.
    pub cold_start: ColdStart,
    /// Route 53 handling (resolved against `[route53] mode`).
    pub route53: Route53Mode,
    /// `primary` records: what a conflict answers.
    pub on_conflict: OnConflict,
    /// Failover gates (RPO guard), at most one per pool.
    pub gates: Vec<Gate>,
    /// Capacity-aware spill-over (failover and weighted records).
    pub spill: bool,
    /// Peak traffic in capacity units (None: the capacity × `max_load` of the
    /// pools that serve the record when all are healthy).
    pub demand: Option<f64>,
    /// Failover records: the fraction of answers sent to the next pool while the
    /// first is healthy (None: no trickle).
    pub trickle: Option<f64>,
    /// Latency steering (`policy = "latency"`, or `select = "latency"` in geo): the
    /// pool list is ordered per client region by the RTT its vantage points measure.
    pub latency: Option<LatencySteering>,
}

/// How a latency-steered record moves between pools (see [`crate::policy::latency`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySteering {
    /// A better pool must be faster by more than this ...
    pub min_gain: std::time::Duration,
    /// ... and by more than this percentage of the current pool's RTT.
    pub min_gain_percent: f64,
    /// ... for this long; and a client region moves at most once per `hold`.
    pub hold: std::time::Duration,
}

impl DynamicRecord {
    /// The gate of `pool`, if it has one.
    pub fn gate_of(&self, pool: PoolIndex) -> Option<PoolIndex> {
        self.gates.iter().find(|g| g.pool == pool).map(|g| g.gate)
    }
}

impl Validator<'_> {
    pub(super) fn records(
        &mut self,
        specs: &[Option<RecordSpec>],
        geo: &GeoConfig,
        defaults: RecordDefaults,
    ) -> Vec<DynamicRecord> {
        let mut records = Vec::new();
        let mut seen: BTreeMap<(String, DynamicType), usize> = BTreeMap::new();
        let mut types_at: BTreeMap<String, Vec<(DynamicType, usize)>> = BTreeMap::new();
        for (i, spec) in specs.iter().enumerate() {
            let path = KeyPath::root().key("records").index(i);
            let Some(spec) = spec else { continue };
            let Some(record) = self.record(spec, i, geo, defaults) else {
                continue;
            };
            if let Some(first) = seen.insert((record.name.clone(), record.record_type), i) {
                self.error(
                    path.key("name"),
                    format!(
                        "{} {} is already defined by records[{first}]",
                        record.name, record.record_type
                    ),
                );
                continue;
            }
            let others = types_at.entry(record.name.clone()).or_default();
            for &(other_type, other_index) in others.iter() {
                if other_type == DynamicType::Cname || record.record_type == DynamicType::Cname {
                    self.error(
                        path.key("type"),
                        format!(
                            "CNAME cannot share a name with other data: records[{other_index}] defines {} {}",
                            record.name, other_type
                        ),
                    );
                }
            }
            others.push((record.record_type, i));
            records.push(record);
        }
        records
    }

    pub(super) fn record(
        &mut self,
        spec: &RecordSpec,
        position: usize,
        geo: &GeoConfig,
        defaults: RecordDefaults,
    ) -> Option<DynamicRecord> {
        let path = &KeyPath::root().key("records").index(position);
        let route53 = defaults.route53;
        let name = match normalize_name(&spec.name) {
            Ok(name) => Some(name),
            Err(e) => {
                self.error(path.key("name"), e);
                None
            }
        };
        let record_type = match spec.record_type.to_ascii_uppercase().as_str() {
            "A" => Some(DynamicType::A),
            "AAAA" => Some(DynamicType::Aaaa),
            "CNAME" => Some(DynamicType::Cname),
            other => {
                self.error(
                    path.key("type"),
                    format!("{other:?} is not a dynamic record type (A, AAAA or CNAME)"),
                );
                None
            }
        };
        let ttl_given = self.ttl_seconds(path.key("ttl"), spec.ttl.as_ref());
        let ttl = self.ranged(
            path.key("ttl"),
            ttl_given,
            i64::from(defaults::TTL),
            i64::from(Ttl::MIN_DYNAMIC.0)..=i64::from(Ttl::MAX.0),
            " seconds",
        ) as u32;
        if ttl > 300 {
            self.warning(
                path.key("ttl"),
                format!("TTL {ttl} s delays failover: resolvers keep the old answer that long"),
            );
        }
        let all_down_ttl_given =
            self.ttl_seconds(path.key("all_down_ttl"), spec.all_down_ttl.as_ref());
        let all_down_ttl = self.ranged(
            path.key("all_down_ttl"),
            all_down_ttl_given,
            i64::from(ttl.min(defaults::ALL_DOWN_TTL_CAP)),
            1..=i64::from(ttl),
            " seconds (at most the record's ttl)",
        ) as u32;
        let min_ttl_given = self.ttl_seconds(path.key("min_ttl"), spec.min_ttl.as_ref());
        let min_ttl = self.ranged(
            path.key("min_ttl"),
            min_ttl_given,
            i64::from(defaults::MIN_TTL),
            1..=i64::from(ttl),
            " seconds (at most the record's ttl)",
        ) as u32;
        let latency = self.latency(spec, path);
        let (selection, pools) = if latency.is_some() {
            // Latency steering answers like failover over a list ordered per client
            // region (see `policy::latency`).
            let mut plain = spec.clone();
            if plain.policy == "latency" {
                plain.policy = "failover".to_owned();
            } else {
                plain.select = None;
            }
            self.policy(&plain, path, geo)?
        } else {
            self.policy(spec, path, geo)?
        };
        let default_max = match selection {
            Selection::Weighted | Selection::Primary => defaults::MAX_ANSWERS_ONE,
            Selection::Failover | Selection::Multivalue => defaults::MAX_ANSWERS,
        };
        let on_conflict = self.on_conflict(spec, selection, path);
        let gates = self.gates(spec.gates.as_ref(), selection, &pools, path);
        if selection == Selection::Primary {
            self.primary_pools(&pools, path);
            if spec.max_answers.is_some_and(|m| m != 1) {
                self.error(
                    path.key("max_answers"),
                    "a primary record answers exactly one endpoint",
                );
            }
        }
        let max_answers = self.ranged(
            path.key("max_answers"),
            spec.max_answers,
            default_max,
            1..=64,
            "",
        ) as u16;
        let all_down = match (
            spec.all_down.as_deref().unwrap_or(defaults::ALL_DOWN),
            &spec.fallback_pool,
        ) {
            ("fail-open", None) => AllDown::FailOpen,
            ("nodata", None) => AllDown::NoData,
            ("fallback", Some(pool)) => {
                let list = self.pool_list(std::slice::from_ref(pool), &path.key("fallback_pool"));
                AllDown::Fallback(*list.first()?)
            }
            ("fallback", None) => {
                self.error(
                    path.key("fallback_pool"),
                    "all_down = \"fallback\" needs fallback_pool",
                );
                return None;
            }
            ("fail-open" | "nodata", Some(_)) => {
                self.error(
                    path.key("fallback_pool"),
                    "fallback_pool is only used with all_down = \"fallback\"",
                );
                return None;
            }
            (other, _) => {
                self.error(
                    path.key("all_down"),
                    format!("{other:?} is not one of \"fail-open\", \"fallback\", \"nodata\""),
                );
                return None;
            }
        };
        let cold_start = match spec.cold_start.as_deref() {
            None => defaults.cold_start,
            Some("last-known") => ColdStart::LastKnown,
            Some("assume-up") => ColdStart::AssumeUp,
            Some(other) => {
                self.error(
                    path.key("cold_start"),
                    format!("{other:?} is not \"last-known\" or \"assume-up\""),
                );
                ColdStart::LastKnown
            }
        };
        let route53_mode = match spec.route53.as_deref() {
            None if route53 => defaults.route53_mode,
            None => Route53Mode::Off,
            Some("native") => Route53Mode::Native,
            Some("mirror") => Route53Mode::Mirror,
            Some("off") => Route53Mode::Off,
            Some(other) => {
                self.error(
                    path.key("route53"),
                    format!("{other:?} is not \"native\", \"mirror\" or \"off\""),
                );
                Route53Mode::Off
            }
        };
        if route53
            && route53_mode == Route53Mode::Native
            && (selection == Selection::Primary || !gates.is_empty())
        {
            self.error(
                path.key("route53"),
                "Route 53 cannot follow a primary or hold a failover gate itself; use route53 = \"mirror\"",
            );
        }
        if route53_mode != Route53Mode::Off && !route53 {
            self.warning(
                path.key("route53"),
                "no [route53] section, so the record is not synced",
            );
        }
        let (spill, demand, trickle) = self.spill(spec, selection, &pools, path);
        if route53 && route53_mode == Route53Mode::Native && (spill || trickle.is_some()) {
            self.error(
                path.key(if spill { "spill" } else { "trickle" }),
                "Route 53 cannot shift shares by headroom or trickle answers itself; use route53 = \"mirror\" (it writes what the servers answer)",
            );
        }
        if route53 && route53_mode == Route53Mode::Native && latency.is_some() {
            self.error(
                path.key(if spec.policy == "latency" { "policy" } else { "select" }),
                "Route 53 native mode does not write latency records (they would steer by AWS's measurements, not this record's vantage points); use route53 = \"mirror\" (it writes what the servers answer)",
            );
        }
        let (name, record_type) = (name?, record_type?);
        let mut lists: Vec<(KeyPath, Vec<PoolIndex>)> = match &pools {
            PoolChoice::Fixed(list) => vec![(path.key("pools"), list.clone())],
            PoolChoice::Geo { by_region, default } => {
                let mut lists: Vec<(KeyPath, Vec<PoolIndex>)> = by_region
                    .iter()
                    .enumerate()
                    .filter_map(|(r, list)| {
                        list.as_ref()
                            .map(|l| (path.key("geo").key(&self.regions[r].name), l.clone()))
                    })
                    .collect();
                lists.push((path.key("geo").key("default"), default.clone()));
                lists
            }
        };
        if let AllDown::Fallback(pool) = all_down {
            lists.push((path.key("fallback_pool"), vec![pool]));
        }
        for (list_path, list) in lists {
            for pool in list {
                self.check_family(pool, record_type, &list_path);
                if route53_mode == Route53Mode::Native && route53 {
                    self.check_route53_native(pool, &list_path);
                }
            }
        }
        Some(DynamicRecord {
            position,
            name,
            record_type,
            ttl: Ttl(ttl),
            all_down_ttl: Ttl(all_down_ttl),
            min_ttl: Ttl(min_ttl),
            selection,
            pools,
            // A CNAME answer holds exactly one target.
            max_answers: if record_type == DynamicType::Cname {
                1
            } else {
                max_answers
            },
            all_down,
            cold_start,
            route53: if route53 {
                route53_mode
            } else {
                Route53Mode::Off
            },
            on_conflict,
            gates,
            spill,
            demand,
            trickle,
            latency,
        })
    }

    /// Latency steering settings: `policy = "latency"`, or `select = "latency"` in a
    /// geo record; `min_gain`, `min_gain_percent` and `hold` only with them.
    fn latency(&mut self, spec: &RecordSpec, path: &KeyPath) -> Option<LatencySteering> {
        let on = spec.policy == "latency"
            || (spec.policy == "geo" && spec.select.as_deref() == Some("latency"));
        if !on {
            for (key, given) in [
                ("min_gain", spec.min_gain.is_some()),
                ("min_gain_percent", spec.min_gain_percent.is_some()),
                ("hold", spec.hold.is_some()),
            ] {
                if given {
                    self.error(
                        path.key(key),
                        format!("{key} is only used with policy = \"latency\" or select = \"latency\"; remove it"),
                    );
                }
            }
            return None;
        }
        let min_gain = self.duration(
            path.key("min_gain"),
            spec.min_gain.as_deref(),
            super::defaults::latency::MIN_GAIN,
            Duration::ZERO..=Duration::from_secs(10),
        );
        let min_gain_percent = match spec.min_gain_percent {
            None => super::defaults::latency::MIN_GAIN_PERCENT,
            Some(p) if (0.0..=100.0).contains(&p) => p,
            Some(p) => {
                self.error(
                    path.key("min_gain_percent"),
                    format!("{p} is out of range: a percentage of the current pool's RTT, 0 <= min_gain_percent <= 100 (e.g. 10)"),
                );
                super::defaults::latency::MIN_GAIN_PERCENT
            }
        };
        let hold = self.duration(
            path.key("hold"),
            spec.hold.as_deref(),
            super::defaults::latency::HOLD,
            Duration::ZERO..=Duration::from_secs(24 * 3600),
        );
        Some(LatencySteering {
            min_gain,
            min_gain_percent,
            hold,
        })
    }

    /// `spill`, `demand` and `trickle`: failover and weighted records only (trickle:
    /// failover), spill over pools that all declare a capacity.
    fn spill(
        &mut self,
        spec: &RecordSpec,
        selection: Selection,
        pools: &PoolChoice,
        path: &KeyPath,
    ) -> (bool, Option<f64>, Option<f64>) {
        let spill = spec.spill.unwrap_or(super::defaults::records::SPILL);
        let policy = match selection {
            Selection::Failover => "failover",
            Selection::Weighted => "weighted",
            Selection::Multivalue => "multivalue",
            Selection::Primary => "primary",
        };
        if spill && !matches!(selection, Selection::Failover | Selection::Weighted) {
            self.error(
                path.key("spill"),
                format!("spill applies to failover and weighted records, not {policy}; remove it"),
            );
        }
        if spill {
            let mut missing: Vec<String> = Vec::new();
            for list in pools.all_lists() {
                for &pool in list {
                    let p = &self.pools[pool.0 as usize];
                    let declared = p.capacity.is_some()
                        || (!p.endpoints.is_empty()
                            && p.endpoints
                                .iter()
                                .all(|e| self.endpoints[e.0 as usize].capacity.is_some()));
                    if !declared && !missing.contains(&p.name) {
                        missing.push(p.name.clone());
                    }
                }
            }
            if !missing.is_empty() {
                let fixes: Vec<String> = missing
                    .iter()
                    .map(|name| format!("[pools.{name}] capacity"))
                    .collect();
                self.error(
                    path.key("spill"),
                    format!(
                        "spill needs a capacity for every pool of the record; set {} (or a capacity on each of its endpoints)",
                        fixes.join(", ")
                    ),
                );
            }
        }
        let demand = spec
            .demand
            .and_then(|d| self.positive(path.key("demand"), d));
        if demand.is_some() && !spill {
            self.error(
                path.key("demand"),
                "demand is only used with spill = true; add spill = true or remove demand",
            );
        }
        let trickle = match spec.trickle {
            None => None,
            Some(_) if selection != Selection::Failover => {
                self.error(
                    path.key("trickle"),
                    format!("trickle applies to failover records, not {policy}; remove it"),
                );
                None
            }
            Some(t) if t > 0.0 && t <= 0.5 => Some(t),
            Some(t) => {
                self.error(
                    path.key("trickle"),
                    format!("{t} is out of range: trickle is a fraction of answers, 0 < trickle <= 0.5 (e.g. 0.01)"),
                );
                None
            }
        };
        (spill, demand, trickle)
    }

    pub(super) fn policy(
        &mut self,
        spec: &RecordSpec,
        path: &KeyPath,
        geo: &GeoConfig,
    ) -> Option<(Selection, PoolChoice)> {
        let parse_selection = |text: &str| match text {
            "failover" => Some(Selection::Failover),
            "weighted" => Some(Selection::Weighted),
            "multivalue" => Some(Selection::Multivalue),
            "primary" => Some(Selection::Primary),
            _ => None,
        };
        if spec.policy == "geo" {
            if spec.pools.is_some() {
                self.error(
                    path.key("pools"),
                    "geo records list pools per region in `geo`, not in `pools`",
                );
            }
            let text = spec.select.as_deref().unwrap_or(defaults::SELECT);
            let selection = match parse_selection(text).filter(|s| *s != Selection::Primary) {
                Some(s) => s,
                None => {
                    self.error(
                        path.key("select"),
                        format!(
                            "{text:?} is not one of \"failover\", \"weighted\", \"multivalue\", \"latency\""
                        ),
                    );
                    return None;
                }
            };
            let Some(map) = &spec.geo else {
                self.error(
                    path.key("geo"),
                    "policy \"geo\" needs a geo table (region = [pools], default = [pools])",
                );
                return None;
            };
            let mut by_region = vec![None; self.regions.len()];
            let mut default = None;
            for (region, names) in map {
                let list = self.pool_list(names, &path.key("geo").key(region));
                if region == "default" {
                    default = Some(list);
                } else if let Some(index) = self.region_by_name(region) {
                    self.used_regions.insert(index);
                    by_region[index.0 as usize] = Some(list);
                } else {
                    let known = self.known_regions();
                    self.error(
                        path.key("geo").key(region),
                        format!("unknown region {region:?} ({known})"),
                    );
                }
            }
            let Some(default) = default else {
                self.error(
                    path.key("geo"),
                    "a geo map needs a `default` entry for unmapped clients",
                );
                return None;
            };
            if geo.default_region.is_none() && self.regions.iter().all(|r| r.networks.is_empty()) {
                self.warning(
                    path.key("geo"),
                    "no region lists any networks, so every client gets the `default` pools",
                );
            }
            return Some((selection, PoolChoice::Geo { by_region, default }));
        }
        let Some(selection) = parse_selection(&spec.policy) else {
            self.error(
                path.key("policy"),
                format!(
                    "{:?} is not one of \"failover\", \"weighted\", \"multivalue\", \"primary\", \"geo\", \"latency\"",
                    spec.policy
                ),
            );
            return None;
        };
        if spec.geo.is_some() {
            self.error(path.key("geo"), "`geo` is only used with policy = \"geo\"");
        }
        if spec.select.is_some() {
            self.error(
                path.key("select"),
                "`select` is only used with policy = \"geo\"",
            );
        }
        let Some(names) = &spec.pools else {
            self.error(
                path.key("pools"),
                "missing `pools` (the pools to answer from, in order)",
            );
            return None;
        };
        let list = self.pool_list(names, &path.key("pools"));
        Some((selection, PoolChoice::Fixed(list)))
    }

    /// Reports endpoints whose address family does not suit the record type.
    pub(super) fn check_family(
        &mut self,
        pool: PoolIndex,
        record_type: DynamicType,
        path: &KeyPath,
    ) {
        let pool = &self.pools[pool.0 as usize];
        let mut bad = Vec::new();
        for endpoint in &pool.endpoints {
            let endpoint = &self.endpoints[endpoint.0 as usize];
            let fits = matches!(
                (&endpoint.target, record_type),
                (EndpointTarget::Address(IpAddr::V4(_)), DynamicType::A)
                    | (EndpointTarget::Address(IpAddr::V6(_)), DynamicType::Aaaa)
                    | (EndpointTarget::Host(_), DynamicType::Cname)
            );
            if !fits {
                bad.push(endpoint.target.to_string());
            }
        }
        if !bad.is_empty() {
            let wanted = match record_type {
                DynamicType::A => "IPv4 addresses",
                DynamicType::Aaaa => "IPv6 addresses",
                DynamicType::Cname => "host names",
            };
            let message = format!(
                "pool {:?} is used by a {record_type} record, which needs {wanted}, but has {}",
                pool.name,
                bad.join(", ")
            );
            self.error(path.clone(), message);
        }
    }

    /// Native Route 53 mode needs checks Route 53 can run itself.
    pub(super) fn check_route53_native(&mut self, pool: PoolIndex, path: &KeyPath) {
        let pool = &self.pools[pool.0 as usize];
        if let Some(check) = pool.check {
            let check = &self.checks[check.0 as usize];
            if matches!(
                check.kind,
                CheckKind::Dns(_) | CheckKind::Exec(_) | CheckKind::Postgres(_)
            ) {
                let message = format!(
                    "pool {:?} uses the {} check {:?}, which Route 53 cannot run; use route53 = \"mirror\"",
                    pool.name,
                    check.kind.name(),
                    check.name
                );
                self.error(path.clone(), message);
            }
        }
    }
}
