//! Desired Route 53 state, computed from the configuration, the zone files and (for
//! mirror mode) a health snapshot. Pure: no I/O.
//!
//! ```text
//!  native failover, pools [eu, us, ap]:
//!    www              A  failover PRIMARY   alias → _pool-eu.www      (evaluate health)
//!    www              A  failover SECONDARY alias → _failover-1.www
//!    _failover-1.www  A  failover PRIMARY   alias → _pool-us.www
//!    _failover-1.www  A  failover SECONDARY alias → _pool-ap.www
//!    _pool-eu.www     A  weighted|multivalue, one set per endpoint, each with its
//!                        endpoint's health check (and so on for us, ap)
//!  native weighted / multivalue: one set per endpoint of every pool, at the name.
//!  (operator overrides and min_healthy in native mode: see `native`)
//!  mirror: a plain record set with the policy's current answers (CNAME and weighted
//!          records: weighted sets without health checks), rewritten on change.
//!  static: every RRset of zones with sync_static, except the apex NS and SOA.
//! ```
//!
//! Markers of ownership are not part of the desired state: the planner adds them,
//! each with the [`config_fingerprint`] of the record its set comes from, so the
//! safety guard can tell a configuration edit from a change of health.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::model::{
    AliasTarget, FailoverRole, HealthCheckProtocol, HealthCheckRef, HealthCheckSpec, RecordKey,
    RecordSet, RecordType, Routing, canonical_name, canonical_name_from_wire, is_in_zone,
    stable_hash, txt_value,
};
use super::owner::set_identifier;
use crate::config::{CheckKind, Config, DynamicRecord, PoolChoice, Route53Mode, Selection};
use crate::health::HealthSnapshot;
use crate::model::{DynamicType, EndpointIndex, EndpointTarget, HealthState, PoolIndex};
use crate::policy;
use crate::zone::{ZoneSet, rtype};

/// Where a desired record set comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum RecordSource {
    /// A dynamic record in native mode.
    Native {
        /// The dynamic record's name.
        record: String,
        /// Its [`config_fingerprint`].
        config: String,
    },
    /// A dynamic record in mirror mode.
    Mirror {
        /// The dynamic record's name.
        record: String,
        /// Its [`config_fingerprint`].
        config: String,
    },
    /// A static record from a zone file.
    Static,
}

impl RecordSource {
    /// The fingerprint of the configuration the set comes from (None: a static
    /// record, which is configuration through and through).
    pub(crate) fn config_fingerprint(&self) -> Option<&str> {
        match self {
            Self::Native { config, .. } | Self::Mirror { config, .. } => Some(config),
            Self::Static => None,
        }
    }
}

/// A desired record set with its origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DesiredRecord {
    /// The record set.
    pub set: RecordSet,
    /// Where it comes from.
    pub source: RecordSource,
}

/// Desired record sets of one hosted zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DesiredZone {
    /// Canonical zone name.
    pub zone: String,
    /// Hosted zone id from the configuration, if given.
    pub hosted_zone_id: Option<String>,
    /// Record sets by key.
    pub records: BTreeMap<RecordKey, DesiredRecord>,
}

/// A dynamic record the agent cannot express in Route 53.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Unsupported {
    /// The record (`name TYPE`).
    pub record: String,
    /// Why.
    pub reason: String,
}

/// Everything the agent wants Route 53 to hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DesiredState {
    /// Hosted zones, in configuration order.
    pub zones: Vec<DesiredZone>,
    /// Health checks by key (endpoint label `pool/endpoint`).
    pub health_checks: BTreeMap<String, HealthCheckSpec>,
    /// Records that cannot be expressed (plan errors).
    pub unsupported: Vec<Unsupported>,
    /// Things worth knowing that do not stop a plan.
    pub warnings: Vec<String>,
    /// Mirror-mode records by (name, type).
    pub mirror_records: BTreeSet<(String, RecordType)>,
    /// Record sets (by name and type) the plan must leave exactly as they are in
    /// Route 53: mirror-mode records planned without live health.
    pub frozen: BTreeSet<(String, RecordType)>,
}

impl DesiredState {
    /// Leaves every mirror-mode record set as Route 53 has it (no live health to
    /// write them from).
    pub(crate) fn freeze_mirror_records(&mut self) {
        let mirrored = self.mirror_records.clone();
        for zone in &mut self.zones {
            zone.records
                .retain(|key, _| !mirrored.contains(&(key.name.clone(), key.record_type.clone())));
        }
        if !mirrored.is_empty() {
            self.warnings.push(format!(
                "{} mirror-mode record(s) left as they are in Route 53: without live health \
                 (--health-url, a failoverd server's admin API) their answers could only come \
                 from the configuration, which would undo a failover in progress",
                mirrored.len()
            ));
        }
        self.frozen = mirrored;
        let native = self
            .zones
            .iter()
            .flat_map(|z| z.records.values())
            .any(|r| matches!(r.source, RecordSource::Native { .. }));
        if native {
            self.warnings.push(
                "native-mode records planned from the configuration alone: drains, forced \
                 states, manual failovers and dials made at run time through the admin API are not \
                 applied (and an apply would undo them in Route 53); give --health-url to \
                 plan with them"
                    .into(),
            );
        }
    }
}

impl DesiredState {}

/// Computes the desired state. `health` decides mirror-mode answers only.
pub(crate) fn desired_state(
    config: &Config,
    zones: &ZoneSet,
    health: &HealthSnapshot,
) -> DesiredState {
    let mut builder = Builder {
        config,
        state: DesiredState::default(),
        warnings: BTreeSet::new(),
    };
    let Some(route53) = &config.route53 else {
        return builder.state;
    };
    for hosted in &route53.zones {
        builder.state.zones.push(DesiredZone {
            zone: canonical_name(&hosted.zone),
            hosted_zone_id: hosted.hosted_zone_id.clone(),
            records: BTreeMap::new(),
        });
    }
    for (i, hosted) in route53.zones.iter().enumerate() {
        if hosted.sync_static {
            builder.static_records(i, zones);
        }
    }
    for record in &config.records {
        builder.dynamic_record(record, health);
    }
    let mut state = builder.state;
    state.warnings = builder.warnings.into_iter().collect();
    state
}

/// The configuration fingerprint of a dynamic record: 16 hex digits of a stable
/// hash over everything its Route 53 record sets depend on *besides* health and
/// operator overrides — name, type, mode, the TTLs, selection, `max_answers`,
/// `on_conflict`, the pool lists in order (per region for geo records), `all_down`,
/// the gates, and every pool involved (`min_healthy`, region, its endpoints in order
/// with their names, targets, weights and configured forced states; in native mode
/// also the Route 53 health check each endpoint gets).
///
/// The planner writes it into each set's ownership marker. A later plan whose
/// record has the same fingerprint differs from what Route 53 holds only by health
/// or overrides (an outage, a recovery, a drain): the safety guard lets that through
/// however many sets it rewrites. A different fingerprint is a configuration edit
/// (a TTL, the order of the pools, a weight, an endpoint added or removed), which the
/// guard counts. Only hashes of what Route 53 is sent go in: check secrets such as
/// HTTP headers never do, as markers are public in DNS.
pub(crate) fn config_fingerprint(config: &Config, record: &DynamicRecord) -> String {
    use std::fmt::Write as _;
    let pool_name = |p: &PoolIndex| config.pool(*p).name.as_str();
    let names = |pools: &[PoolIndex]| pools.iter().map(pool_name).collect::<Vec<_>>();
    // Strings are written with {:?} (quoted, escaped), so no two configurations give
    // the same text.
    let mut text = String::from("failoverd-config-v1");
    let _ = write!(
        text,
        "|record {:?} {} {:?} ttl {} {} {} {:?} answers {} {:?}",
        record.name,
        record.record_type,
        record.route53,
        record.ttl.0,
        record.all_down_ttl.0,
        record.min_ttl.0,
        record.selection,
        record.max_answers,
        record.on_conflict,
    );
    let mut involved: Vec<PoolIndex> = record.pools.all_lists().concat();
    match &record.pools {
        PoolChoice::Fixed(pools) => {
            let _ = write!(text, "|pools {:?}", names(pools));
        }
        PoolChoice::Geo { by_region, default } => {
            for (region, pools) in by_region.iter().enumerate() {
                if let Some(pools) = pools {
                    let region = config.regions.get(region).map(|r| r.name.as_str());
                    let _ = write!(text, "|region {region:?} {:?}", names(pools));
                }
            }
            let _ = write!(text, "|default {:?}", names(default));
        }
    }
    match record.all_down {
        crate::config::AllDown::FailOpen => text.push_str("|all_down fail-open"),
        crate::config::AllDown::NoData => text.push_str("|all_down nodata"),
        crate::config::AllDown::Fallback(pool) => {
            let _ = write!(text, "|all_down fallback {:?}", pool_name(&pool));
            involved.push(pool);
        }
    }
    for gate in &record.gates {
        let _ = write!(
            text,
            "|gate {:?} {:?}",
            pool_name(&gate.pool),
            pool_name(&gate.gate)
        );
        involved.push(gate.gate);
    }
    involved.sort_by(|a, b| pool_name(a).cmp(pool_name(b)));
    involved.dedup();
    let mut ignored = BTreeSet::new();
    for pool in involved {
        let p = config.pool(pool);
        let region = p.region.and_then(|r| config.regions.get(usize::from(r.0)));
        let _ = write!(
            text,
            "|pool {:?} min_healthy {} region {:?}",
            p.name,
            p.min_healthy,
            region.map(|r| r.name.as_str())
        );
        for &e in &p.endpoints {
            let endpoint = config.endpoint(e);
            let _ = write!(
                text,
                "|endpoint {:?} {:?} weight {} forced {:?}",
                endpoint.name,
                endpoint.target.to_string(),
                endpoint.weight.0,
                endpoint.forced
            );
            if record.route53 == Route53Mode::Native {
                let check = health_check_spec(config, e, None, &mut ignored);
                let _ = write!(text, " check {check:?}");
            }
        }
    }
    format!("{:016x}", stable_hash(text.as_bytes()))
}

/// Longest DNS name on the wire (RFC 1035): an absolute name of N presentation
/// characters (with its trailing dot) takes N + 1 octets.
const MAX_NAME_OCTETS: usize = 255;

/// How the endpoints of one record set group are expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetStyle {
    /// One weighted record set per endpoint.
    Weighted,
    /// One weighted record set per endpoint, all of weight 1 (drained: 0).
    EqualWeights,
    /// One multivalue-answer record set per endpoint.
    MultiValue,
}

struct Builder<'a> {
    config: &'a Config,
    state: DesiredState,
    warnings: BTreeSet<String>,
}

impl Builder<'_> {
    fn zone_index(&self, name: &str) -> Option<usize> {
        self.state
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| is_in_zone(name, &z.zone))
            .max_by_key(|(_, z)| z.zone.len())
            .map(|(i, _)| i)
    }

    fn insert(&mut self, zone: usize, set: RecordSet, source: RecordSource) {
        // Every owned set is written together with its marker; a name whose marker
        // cannot exist would be written unmarked and later read as foreign.
        let marker = super::owner::marker_name(&set.key.name);
        if marker.len() + 1 > MAX_NAME_OCTETS {
            self.state.unsupported.push(Unsupported {
                record: set.key.to_string(),
                reason: format!(
                    "its ownership marker {marker} would be longer than {MAX_NAME_OCTETS} octets; \
                     shorten the name by {} characters (failoverd never writes a record set it \
                     cannot mark as its own)",
                    marker.len() + 1 - MAX_NAME_OCTETS
                ),
            });
            return;
        }
        let records = &mut self.state.zones[zone].records;
        if let Some(existing) = records.get(&set.key) {
            if existing.set != set {
                self.warnings.insert(format!(
                    "{} is defined twice; keeping the first definition",
                    set.key
                ));
            }
            return;
        }
        records.insert(set.key.clone(), DesiredRecord { set, source });
    }

    fn static_records(&mut self, zone_index: usize, zones: &ZoneSet) {
        let zone_name = self.state.zones[zone_index].zone.clone();
        let Some(zone) = zones
            .zones()
            .iter()
            .find(|z| canonical_name_from_wire(z.origin()) == zone_name)
        else {
            self.warnings.insert(format!(
                "{zone_name}: no zone file, so no static records are synced"
            ));
            return;
        };
        for node in zone.nodes() {
            let name = canonical_name_from_wire(node.name());
            for (_, set) in node.rrsets() {
                if node.is_apex() && (set.rtype == rtype::NS || set.rtype == rtype::SOA) {
                    continue;
                }
                let Some(record_type) = RecordType::from_code(set.rtype) else {
                    self.warnings.insert(format!(
                        "{name} {}: type not supported by Route 53; not synced",
                        crate::zone::store::type_name(set.rtype)
                    ));
                    continue;
                };
                let values: Result<Vec<String>, String> = zone
                    .rdata(set)
                    .iter()
                    .map(|rdata| route53_value(set.rtype, rdata))
                    .collect();
                match values {
                    Ok(values) => {
                        let record = RecordSet::simple(&name, record_type, set.ttl, values);
                        self.insert(zone_index, record, RecordSource::Static);
                    }
                    Err(e) => {
                        self.warnings
                            .insert(format!("{name} {record_type}: {e}; not synced"));
                    }
                }
            }
        }
    }

    fn dynamic_record(&mut self, record: &DynamicRecord, health: &HealthSnapshot) {
        if record.route53 == Route53Mode::Off {
            return;
        }
        let name = canonical_name(&record.name);
        if record.route53 == Route53Mode::Mirror {
            self.state
                .mirror_records
                .insert((name.clone(), RecordType::from(record.record_type)));
        }
        let Some(zone) = self.zone_index(&name) else {
            self.warnings.insert(format!(
                "{name} {}: not inside any [[route53.zones]]; not synced",
                record.record_type
            ));
            return;
        };
        match record.route53 {
            Route53Mode::Native => self.native(zone, record, &name, health),
            Route53Mode::Mirror => self.mirror(zone, record, &name, health),
            Route53Mode::Off => {}
        }
    }

    fn mirror(&mut self, zone: usize, record: &DynamicRecord, name: &str, health: &HealthSnapshot) {
        let config = self.config;
        let pools = policy::pools_for(record, None);
        // An operator's manual failover of the record applies here as in the answers.
        let state = config
            .records
            .iter()
            .position(|r| std::ptr::eq(r, record))
            .map(|r| policy::record_state(health, crate::model::RecordIndex(r as u32)))
            .unwrap_or_default();
        let decision = policy::decide_record(config, record, pools, state, health);
        let source = RecordSource::Mirror {
            record: name.to_owned(),
            config: config_fingerprint(config, record),
        };
        if decision.candidates.is_empty() {
            return;
        }
        let record_type = RecordType::from(record.record_type);
        let ttl = decision.ttl.0;
        if record.record_type == DynamicType::Cname
            || record.selection == Selection::Weighted
            || decision.shares.is_some()
        {
            let zone_name = self.state.zones[zone].zone.clone();
            let raw: Vec<u32> = decision
                .candidates
                .iter()
                .map(|c| match &decision.shares {
                    // Spill-over and trickle: the pool's share, split over its
                    // endpoints by weight.
                    Some(shares) => shares
                        .pools
                        .iter()
                        .find(|p| p.candidates.iter().any(|k| k.endpoint == c.endpoint))
                        .map_or(1, |p| {
                            let total: u64 = p
                                .candidates
                                .iter()
                                .map(|k| u64::from(k.weight.max(1)))
                                .sum();
                            (p.parts() * u64::from(c.weight.max(1)) / total.max(1)).max(1) as u32
                        }),
                    None if record.selection == Selection::Weighted => c.weight.max(1),
                    None => 1,
                })
                .collect();
            let weights = scale_weights(&raw);
            for (candidate, weight) in decision.candidates.iter().zip(weights) {
                let label = config.endpoint_label(candidate.endpoint);
                let set = RecordSet {
                    key: RecordKey::new(
                        name,
                        record_type.clone(),
                        Some(set_identifier(name, &zone_name, &record_type, &label)),
                    ),
                    ttl: Some(ttl),
                    values: vec![target_value(&config.endpoint(candidate.endpoint).target)],
                    alias: None,
                    routing: Routing::Weighted { weight },
                    health_check: None,
                };
                self.insert(zone, set, source.clone());
            }
        } else {
            let values = decision
                .candidates
                .iter()
                .map(|c| target_value(&config.endpoint(c.endpoint).target))
                .collect();
            self.insert(
                zone,
                RecordSet::simple(name, record_type, ttl, values),
                source,
            );
        }
    }
}

impl From<DynamicType> for RecordType {
    fn from(value: DynamicType) -> Self {
        match value {
            DynamicType::A => Self::A,
            DynamicType::Aaaa => Self::Aaaa,
            DynamicType::Cname => Self::Cname,
        }
    }
}

/// The hidden name of a record's per-pool set: `_pool-<pool>.<name>`.
fn pool_set_name(config: &Config, pool: PoolIndex, name: &str) -> String {
    let pool_name = &config.pool(pool).name;
    let mut label: String = pool_name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if label != pool_name.to_ascii_lowercase() || label.len() > 50 {
        label.truncate(40);
        label.push_str(&format!(
            "-{:08x}",
            stable_hash(pool_name.as_bytes()) as u32
        ));
    }
    format!("_pool-{label}.{name}")
}

/// Route 53 weights are 0–255: scale larger weights down proportionally, keeping
/// every positive weight ≥ 1.
fn scale_weights(weights: &[u32]) -> Vec<u8> {
    let max = weights.iter().copied().max().unwrap_or(0);
    weights
        .iter()
        .map(|&w| {
            if max <= 255 {
                w as u8
            } else if w == 0 {
                0
            } else {
                let scaled = (u64::from(w) * 255).div_ceil(u64::from(max));
                scaled.clamp(1, 255) as u8
            }
        })
        .collect()
}

/// The Route 53 value answering an endpoint.
fn target_value(target: &EndpointTarget) -> String {
    match target {
        EndpointTarget::Address(ip) => ip.to_string(),
        EndpointTarget::Host(host) => canonical_name(host),
    }
}

/// The Route 53 health check probing an endpoint, from its pool's check and its
/// forced state (config or operator): forced up = disabled (always healthy), forced
/// down = disabled and inverted (always unhealthy). None when the endpoint is neither checked nor forced
/// down (Route 53 treats records without a check as healthy).
pub(crate) fn health_check_spec(
    config: &Config,
    endpoint: EndpointIndex,
    forced: Option<HealthState>,
    warnings: &mut BTreeSet<String>,
) -> Result<Option<HealthCheckSpec>, String> {
    let e = config.endpoint(endpoint);
    let label = config.endpoint_label(endpoint);
    let (ip_address, target_host) = match &e.target {
        EndpointTarget::Address(ip) => (Some(route53_ip(*ip)), None),
        EndpointTarget::Host(host) => (None, Some(host.trim_end_matches('.').to_owned())),
    };
    let Some(check) = config.endpoint_check(endpoint) else {
        if forced != Some(HealthState::Down) {
            return Ok(None);
        }
        // Never probed (disabled): only its inverted status matters.
        return Ok(Some(HealthCheckSpec {
            protocol: HealthCheckProtocol::Tcp,
            ip_address,
            port: Some(80),
            resource_path: None,
            fqdn: target_host,
            search_string: None,
            request_interval: 30,
            failure_threshold: 3,
            regions: Vec::new(),
            inverted: true,
            disabled: true,
            ..HealthCheckSpec::default()
        }));
    };
    if check.degraded.is_some() {
        warnings.insert(format!(
            "check {:?}: degraded endpoints cannot be expressed in Route 53 native mode: its \
             health checks see a slow or flaky endpoint up, answered at full weight (mirror \
             mode writes the servers' scaled weights)",
            check.name
        ));
    }
    let r53 = &check.route53;
    let mut regions = r53.regions.clone();
    regions.sort();
    let mut spec = HealthCheckSpec {
        protocol: HealthCheckProtocol::Tcp,
        ip_address,
        port: check.kind.port(),
        resource_path: None,
        fqdn: target_host.clone(),
        search_string: None,
        request_interval: r53.request_interval,
        failure_threshold: r53.failure_threshold,
        regions,
        ..HealthCheckSpec::default()
    };
    match &check.kind {
        CheckKind::Http(http) => {
            let matching = http.expect_body.as_ref().filter(|b| b.len() <= 255);
            if http.expect_body.is_some() && matching.is_none() {
                warnings.insert(format!(
                    "check {:?}: expect_body is longer than Route 53's 255-character search \
                     string; Route 53 checks the status only",
                    check.name
                ));
            }
            spec.protocol = match (http.tls, matching.is_some()) {
                (false, false) => HealthCheckProtocol::Http,
                (false, true) => HealthCheckProtocol::HttpStrMatch,
                (true, false) => HealthCheckProtocol::Https,
                (true, true) => HealthCheckProtocol::HttpsStrMatch,
            };
            spec.search_string = matching.cloned();
            spec.resource_path = Some(http.path.clone());
            spec.enable_sni = http.tls;
            match (&target_host, &http.host) {
                (None, Some(host)) => spec.fqdn = Some(host.trim_end_matches('.').to_owned()),
                (Some(target), Some(host))
                    if !target.eq_ignore_ascii_case(host.trim_end_matches('.')) =>
                {
                    warnings.insert(format!(
                        "check {:?}: Route 53 sends the endpoint's host name {target} as Host \
                         header, not {host}",
                        check.name
                    ));
                }
                _ => {}
            }
            if http.method != "GET" && http.method != "HEAD" {
                warnings.insert(format!(
                    "check {:?}: Route 53 health checks use GET, not {}",
                    check.name, http.method
                ));
            }
            if !http.headers.is_empty() {
                warnings.insert(format!(
                    "check {:?}: Route 53 health checks cannot send custom headers",
                    check.name
                ));
            }
            if http.expect_status != [(200, 399)] {
                warnings.insert(format!(
                    "check {:?}: Route 53 accepts any 2xx or 3xx status",
                    check.name
                ));
            }
        }
        CheckKind::Tcp { .. } => {}
        CheckKind::Dns(_) | CheckKind::Exec(_) | CheckKind::Postgres(_) => {
            return Err(format!(
                "endpoint {label} uses the {} check {:?}, which Route 53 cannot run",
                check.kind.name(),
                check.name
            ));
        }
    }
    match forced {
        Some(HealthState::Up) => spec.disabled = true,
        Some(HealthState::Down) => {
            spec.disabled = true;
            spec.inverted = true;
        }
        None => {}
    }
    Ok(Some(spec))
}

fn route53_ip(ip: IpAddr) -> String {
    ip.to_string()
}

/// Route 53's text form of one record's rdata (uncompressed wire form).
pub(crate) fn route53_value(rtype_code: u16, rdata: &[u8]) -> Result<String, String> {
    let bad = || {
        format!(
            "malformed {} rdata",
            crate::zone::store::type_name(rtype_code)
        )
    };
    let name_at = |start: usize| -> Result<(String, usize), String> {
        let mut pos = start;
        loop {
            let len = usize::from(*rdata.get(pos).ok_or_else(bad)?);
            if len == 0 {
                break;
            }
            if len & 0xc0 != 0 {
                return Err(bad());
            }
            pos += 1 + len;
        }
        let wire = rdata.get(start..=pos).ok_or_else(bad)?;
        Ok((canonical_name_from_wire(wire), pos + 1))
    };
    let u16_at = |pos: usize| -> Result<u16, String> {
        let b = rdata.get(pos..pos + 2).ok_or_else(bad)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    };
    match rtype_code {
        rtype::A => {
            let b: [u8; 4] = rdata.try_into().map_err(|_| bad())?;
            Ok(std::net::Ipv4Addr::from(b).to_string())
        }
        rtype::AAAA => {
            let b: [u8; 16] = rdata.try_into().map_err(|_| bad())?;
            Ok(std::net::Ipv6Addr::from(b).to_string())
        }
        rtype::CNAME | rtype::NS | rtype::PTR => Ok(name_at(0)?.0),
        rtype::MX => Ok(format!("{} {}", u16_at(0)?, name_at(2)?.0)),
        rtype::SRV => Ok(format!(
            "{} {} {} {}",
            u16_at(0)?,
            u16_at(2)?,
            u16_at(4)?,
            name_at(6)?.0
        )),
        rtype::TXT | 99 => {
            let mut strings = Vec::new();
            let mut pos = 0;
            while pos < rdata.len() {
                let len = usize::from(rdata[pos]);
                strings.push(rdata.get(pos + 1..pos + 1 + len).ok_or_else(bad)?);
                pos += 1 + len;
            }
            let quoted: Vec<String> = strings.iter().map(|s| txt_value(s)).collect();
            Ok(if quoted.is_empty() {
                "\"\"".to_owned()
            } else {
                quoted.join(" ")
            })
        }
        257 => {
            let flags = *rdata.first().ok_or_else(bad)?;
            let tag_len = usize::from(*rdata.get(1).ok_or_else(bad)?);
            let tag = rdata.get(2..2 + tag_len).ok_or_else(bad)?;
            let value = rdata.get(2 + tag_len..).ok_or_else(bad)?;
            Ok(format!(
                "{flags} {} {}",
                String::from_utf8_lossy(tag),
                txt_value(value)
            ))
        }
        _ => {
            use hickory_proto::rr::{RData, RecordType as HickoryType};
            use hickory_proto::serialize::binary::{BinDecoder, Restrict};
            let length = u16::try_from(rdata.len()).map_err(|_| bad())?;
            let mut decoder = BinDecoder::new(rdata);
            let data = RData::read(
                &mut decoder,
                HickoryType::from(rtype_code),
                Restrict::new(length),
            )
            .map_err(|e| format!("cannot decode rdata: {e}"))?;
            Ok(data.to_string())
        }
    }
}

mod native;
#[cfg(test)]
mod tests;
