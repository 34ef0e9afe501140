//! `Spec` → [`Config`]: every check that needs only the configuration itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Diagnostic, Diagnostics, KeyPath, Severity, line_of_offset};
use super::spec::{EndpointSpec, GeoSpec, PoolSpec, RecordSpec, RegionSpec, ServerSpec, ZonesSpec};
use super::{
    AllDown, Config, ConfigSource, DynamicRecord, Endpoint, GeoConfig, Pool, PoolChoice, Region,
    Selection, ServerConfig, VERSION, ZonesConfig,
};
use crate::model::{
    DynamicType, EndpointIndex, EndpointTarget, HealthState, PoolIndex, RegionIndex, Ttl, Weight,
};

/// Top-level keys, in the order they are documented.
const SECTIONS: &[&str] = &[
    "version", "server", "zones", "regions", "geo", "pools", "records",
];

/// The sections of a document, each deserialized on its own.
#[derive(Default)]
struct Sections {
    version: Option<i64>,
    server: ServerSpec,
    zones: ZonesSpec,
    regions: Vec<(String, RegionSpec)>,
    geo: GeoSpec,
    pools: Vec<(String, Option<PoolSpec>)>,
    records: Vec<Option<RecordSpec>>,
}

/// Validates `source`, recording every problem in `diagnostics`. Returns a config
/// only if no error was found in the shape of the file (semantic errors may still be
/// recorded; the caller checks `diagnostics`).
pub(super) fn validate(source: ConfigSource, diagnostics: &mut Diagnostics) -> Option<Config> {
    let text = source.text.clone();
    let sections = read_sections(&text, diagnostics);
    let mut v = Validator {
        diagnostics,
        regions: Vec::new(),
        pools: Vec::new(),
        endpoints: Vec::new(),
        used_pools: HashSet::new(),
        used_regions: HashSet::new(),
    };
    match sections.version {
        Some(VERSION) => {}
        Some(other) => v.error(
            KeyPath::root().key("version"),
            format!("unsupported version {other}; this failoverd reads version {VERSION}"),
        ),
        None => v.error(
            KeyPath::root().key("version"),
            format!("missing `version = {VERSION}`"),
        ),
    }
    let server = v.server(&sections.server);
    let zones = v.zones(&sections.zones, &source);
    v.regions(&sections.regions);
    let geo = v.geo(&sections.geo);
    v.pools(&sections.pools);
    let records = v.records(&sections.records, &geo);
    v.unused();
    Some(Config {
        source,
        server,
        zones,
        regions: v.regions,
        geo,
        pools: v.pools,
        endpoints: v.endpoints,
        records,
    })
}

/// Parses the TOML document and deserializes each section, pool, region and record
/// separately, so that every shape error is reported.
fn read_sections(text: &str, diagnostics: &mut Diagnostics) -> Sections {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    for error in syntax_errors {
        diagnostics.push(Diagnostic {
            severity: Severity::Error,
            file: None,
            line: error.span().map(|s| line_of_offset(text, s.start)),
            path: None,
            message: format!("TOML syntax: {}", error.message()),
        });
    }
    let mut sections = Sections::default();
    let root_path = KeyPath::root();
    for (key, value) in root.into_inner() {
        let name = key.get_ref().as_ref();
        let path = root_path.key(name);
        match name {
            "version" => sections.version = deserialize(value, &path, text, diagnostics),
            "server" => {
                sections.server = deserialize(value, &path, text, diagnostics).unwrap_or_default();
            }
            "zones" => {
                sections.zones = deserialize(value, &path, text, diagnostics).unwrap_or_default();
            }
            "geo" => {
                sections.geo = deserialize(value, &path, text, diagnostics).unwrap_or_default()
            }
            "regions" => {
                for (name, value) in table_entries(value, &path, text, diagnostics) {
                    let item = deserialize(value, &path.key(&name), text, diagnostics);
                    sections.regions.push((name, item.unwrap_or_default()));
                }
            }
            "pools" => {
                for (name, value) in table_entries(value, &path, text, diagnostics) {
                    let item = deserialize(value, &path.key(&name), text, diagnostics);
                    sections.pools.push((name, item));
                }
            }
            "records" => {
                for (i, value) in array_items(value, &path, text, diagnostics)
                    .into_iter()
                    .enumerate()
                {
                    sections
                        .records
                        .push(deserialize(value, &path.index(i), text, diagnostics));
                }
            }
            other => {
                let line = line_of_offset(text, key.span().start);
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: None,
                    line: Some(line),
                    path: Some(path.clone()),
                    message: format!(
                        "unknown key `{other}`, expected one of: {}",
                        SECTIONS.join(", ")
                    ),
                });
            }
        }
    }
    sections
}

fn deserialize<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &KeyPath,
    text: &str,
    diagnostics: &mut Diagnostics,
) -> Option<T> {
    let span = value.span();
    let deserializer = toml::de::ValueDeserializer::from(value);
    match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Ok(item) => Some(item),
        Err(error) => {
            let full_path = path.join_serde(error.path());
            let inner = error.into_inner();
            let offset = inner.span().map_or(span.start, |s| s.start);
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                file: None,
                line: Some(line_of_offset(text, offset)),
                path: Some(full_path),
                message: inner.message().trim().to_owned(),
            });
            None
        }
    }
}

fn table_entries<'i>(
    value: Spanned<DeValue<'i>>,
    path: &KeyPath,
    text: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<(String, Spanned<DeValue<'i>>)> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(table) => table
            .into_iter()
            .map(|(k, v)| (k.into_inner().into_owned(), v))
            .collect(),
        other => {
            type_error(
                path,
                "a table",
                other.type_str(),
                span.start,
                text,
                diagnostics,
            );
            Vec::new()
        }
    }
}

fn array_items<'i>(
    value: Spanned<DeValue<'i>>,
    path: &KeyPath,
    text: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<Spanned<DeValue<'i>>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(array) => array.into_iter().collect(),
        other => {
            type_error(
                path,
                "an array of tables",
                other.type_str(),
                span.start,
                text,
                diagnostics,
            );
            Vec::new()
        }
    }
}

fn type_error(
    path: &KeyPath,
    expected: &str,
    found: &str,
    offset: usize,
    text: &str,
    diagnostics: &mut Diagnostics,
) {
    diagnostics.push(Diagnostic {
        severity: Severity::Error,
        file: None,
        line: Some(line_of_offset(text, offset)),
        path: Some(path.clone()),
        message: format!("expected {expected}, found {found}"),
    });
}

/// Parses a duration such as `250ms`, `2s`, `1m30s` or `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?} (expected e.g. 250ms, 2s, 1m)"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "" => return Err(format!("missing unit in {text:?} (ms, s, m or h)")),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {text:?} (ms, s, m or h)"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Checks a domain name and returns it lower case, absolute, with a trailing dot.
pub(crate) fn normalize_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err("empty name (the root cannot be used here)".into());
    }
    if trimmed.len() > 253 {
        return Err(format!(
            "name is {} characters long (max 253)",
            trimmed.len()
        ));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(format!("{name:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "{name:?} contains {c:?}; use letters, digits, '-' and '_' (IDNs in punycode)"
            ));
        }
    }
    Ok(format!("{}.", trimmed.to_ascii_lowercase()))
}

struct Validator<'d> {
    diagnostics: &'d mut Diagnostics,
    regions: Vec<Region>,
    pools: Vec<Pool>,
    endpoints: Vec<Endpoint>,
    used_pools: HashSet<PoolIndex>,
    used_regions: HashSet<RegionIndex>,
}

impl Validator<'_> {
    fn error(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diagnostics.error(path, message);
    }

    fn warning(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diagnostics.warning(path, message);
    }

    /// Checks an integer against a range, reporting with `what` as the subject.
    fn ranged(
        &mut self,
        path: KeyPath,
        value: Option<i64>,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        hint: &str,
    ) -> i64 {
        let value = value.unwrap_or(default);
        if range.contains(&value) {
            value
        } else {
            self.error(
                path,
                format!(
                    "{value} is out of range {}..={}{hint}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }

    fn server(&mut self, spec: &ServerSpec) -> ServerConfig {
        let root = KeyPath::root().key("server");
        let mut listen = Vec::new();
        let addresses = spec
            .listen
            .clone()
            .unwrap_or_else(|| vec!["127.0.0.1:5353".to_owned()]);
        if addresses.is_empty() {
            self.error(root.key("listen"), "at least one listen address is needed");
        }
        let mut seen = HashSet::new();
        for (i, text) in addresses.iter().enumerate() {
            let path = root.key("listen").index(i);
            match text.parse::<SocketAddr>() {
                Ok(address) if seen.insert(address) => listen.push(address),
                Ok(address) => self.error(path, format!("{address} is listed twice")),
                Err(_) => self.error(
                    path,
                    format!(
                        "{text:?} is not an address with a port (e.g. 127.0.0.1:53 or [::1]:53)"
                    ),
                ),
            }
        }
        let workers = self.ranged(root.key("udp_workers"), spec.udp_workers, 0, 0..=64, "");
        let udp_workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(16))
        } else {
            workers as usize
        };
        let max_udp_payload = self.ranged(
            root.key("max_udp_payload"),
            spec.max_udp_payload,
            1232,
            512..=4096,
            " (1232 avoids IP fragmentation)",
        ) as u16;
        let tcp_idle_timeout = match spec.tcp_idle_timeout.as_deref().map(parse_duration) {
            None => Duration::from_secs(10),
            Some(Ok(d)) if d >= Duration::from_millis(100) && d <= Duration::from_secs(300) => d,
            Some(Ok(_)) => {
                self.error(
                    root.key("tcp_idle_timeout"),
                    "must be between 100ms and 300s",
                );
                Duration::from_secs(10)
            }
            Some(Err(e)) => {
                self.error(root.key("tcp_idle_timeout"), e);
                Duration::from_secs(10)
            }
        };
        ServerConfig {
            listen,
            udp_workers,
            max_udp_payload,
            tcp_idle_timeout,
        }
    }

    fn zones(&mut self, spec: &ZonesSpec, source: &ConfigSource) -> ZonesConfig {
        let root = KeyPath::root().key("zones");
        let directory = spec
            .directory
            .clone()
            .unwrap_or_else(|| "../zones".to_owned());
        if let Some(files) = &spec.files {
            let mut seen = HashSet::new();
            for (i, file) in files.iter().enumerate() {
                if file.contains('/') || file.contains('\\') || file.is_empty() {
                    self.error(
                        root.key("files").index(i),
                        format!("{file:?} must be a file name inside `zones.directory`"),
                    );
                } else if !seen.insert(file) {
                    self.error(
                        root.key("files").index(i),
                        format!("{file:?} is listed twice"),
                    );
                }
            }
        }
        ZonesConfig {
            directory: source.base_dir.join(PathBuf::from(directory)),
            files: spec.files.clone(),
            use_embedded: source.is_embedded(),
        }
    }

    fn regions(&mut self, specs: &[(String, RegionSpec)]) {
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

    fn region_by_name(&self, name: &str) -> Option<RegionIndex> {
        self.regions
            .iter()
            .position(|r| r.name == name)
            .map(|i| RegionIndex(i as u16))
    }

    fn known_regions(&self) -> String {
        let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        if names.is_empty() {
            "none defined; add [regions.NAME]".to_owned()
        } else {
            format!("known: {}", names.join(", "))
        }
    }

    fn geo(&mut self, spec: &GeoSpec) -> GeoConfig {
        let path = KeyPath::root().key("geo").key("default_region");
        let default_region = spec.default_region.as_ref().and_then(|name| {
            let found = self.region_by_name(name);
            if found.is_none() {
                let known = self.known_regions();
                self.error(path, format!("unknown region {name:?} ({known})"));
            }
            found
        });
        if let Some(region) = default_region {
            self.used_regions.insert(region);
        }
        GeoConfig {
            default_region,
            ecs: spec.ecs.unwrap_or(true),
        }
    }

    fn pools(&mut self, specs: &[(String, Option<PoolSpec>)]) {
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
                });
                continue;
            };
            let region = spec.region.as_ref().and_then(|r| {
                let found = self.region_by_name(r);
                if found.is_none() {
                    let known = self.known_regions();
                    self.error(
                        path.key("region"),
                        format!("unknown region {r:?} ({known})"),
                    );
                }
                found
            });
            if let Some(region) = region {
                self.used_regions.insert(region);
            }
            if spec.endpoints.is_empty() {
                self.error(path.key("endpoints"), "a pool needs at least one endpoint");
            }
            let mut endpoints = Vec::new();
            let mut names = HashSet::new();
            let mut targets = HashSet::new();
            for (i, endpoint) in spec.endpoints.iter().enumerate() {
                let item = path.key("endpoints").index(i);
                let Some(endpoint) = self.endpoint(endpoint, &item, pool_index) else {
                    continue;
                };
                if !targets.insert(endpoint.target.clone()) {
                    self.error(
                        item.key("address"),
                        format!(
                            "duplicate endpoint: {} appears twice in pool {name:?}",
                            endpoint.target
                        ),
                    );
                    continue;
                }
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
            let count = endpoints.len().max(1) as i64;
            let min_healthy = self.ranged(
                path.key("min_healthy"),
                spec.min_healthy,
                1,
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
            self.pools.push(Pool {
                name: name.clone(),
                region,
                min_healthy,
                endpoints,
            });
        }
    }

    fn endpoint(
        &mut self,
        spec: &EndpointSpec,
        path: &KeyPath,
        pool: PoolIndex,
    ) -> Option<Endpoint> {
        let target = match spec.address.parse::<IpAddr>() {
            Ok(ip) => EndpointTarget::Address(ip),
            Err(_) => match normalize_name(&spec.address) {
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
            },
        };
        let weight = match spec.weight {
            None => 1,
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
        Some(Endpoint {
            pool,
            name,
            target,
            weight: Weight(weight),
            forced,
        })
    }

    fn pool_by_name(&self, name: &str) -> Option<PoolIndex> {
        self.pools
            .iter()
            .position(|p| p.name == name)
            .map(|i| PoolIndex(i as u32))
    }

    /// Resolves a list of pool names, reporting unknown and repeated ones.
    fn pool_list(&mut self, names: &[String], path: &KeyPath) -> Vec<PoolIndex> {
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

    fn records(&mut self, specs: &[Option<RecordSpec>], geo: &GeoConfig) -> Vec<DynamicRecord> {
        let mut records = Vec::new();
        let mut seen: BTreeMap<(String, DynamicType), usize> = BTreeMap::new();
        let mut types_at: BTreeMap<String, Vec<(DynamicType, usize)>> = BTreeMap::new();
        for (i, spec) in specs.iter().enumerate() {
            let path = KeyPath::root().key("records").index(i);
            let Some(spec) = spec else { continue };
            let Some(record) = self.record(spec, &path, geo) else {
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

    fn record(
        &mut self,
        spec: &RecordSpec,
        path: &KeyPath,
        geo: &GeoConfig,
    ) -> Option<DynamicRecord> {
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
        let ttl = self.ranged(
            path.key("ttl"),
            spec.ttl,
            i64::from(Ttl::DEFAULT_DYNAMIC.0),
            i64::from(Ttl::MIN_DYNAMIC.0)..=i64::from(Ttl::MAX.0),
            " seconds",
        ) as u32;
        if ttl > 300 {
            self.warning(
                path.key("ttl"),
                format!("TTL {ttl} s delays failover: resolvers keep the old answer that long"),
            );
        }
        let all_down_ttl = self.ranged(
            path.key("all_down_ttl"),
            spec.all_down_ttl,
            i64::from(ttl.min(10)),
            1..=i64::from(ttl),
            " seconds (at most the record's ttl)",
        ) as u32;
        let (selection, pools) = self.policy(spec, path, geo)?;
        let default_max = match selection {
            Selection::Weighted => 1,
            Selection::Failover | Selection::Multivalue => 8,
        };
        let max_answers = self.ranged(
            path.key("max_answers"),
            spec.max_answers,
            default_max,
            1..=64,
            "",
        ) as u16;
        let all_down = match (spec.all_down.as_deref(), &spec.fallback_pool) {
            (None | Some("fail-open"), None) => AllDown::FailOpen,
            (Some("nodata"), None) => AllDown::NoData,
            (Some("fallback"), Some(pool)) => {
                let list = self.pool_list(std::slice::from_ref(pool), &path.key("fallback_pool"));
                AllDown::Fallback(*list.first()?)
            }
            (Some("fallback"), None) => {
                self.error(
                    path.key("fallback_pool"),
                    "all_down = \"fallback\" needs fallback_pool",
                );
                return None;
            }
            (Some("fail-open" | "nodata") | None, Some(_)) => {
                self.error(
                    path.key("fallback_pool"),
                    "fallback_pool is only used with all_down = \"fallback\"",
                );
                return None;
            }
            (Some(other), _) => {
                self.error(
                    path.key("all_down"),
                    format!("{other:?} is not one of \"fail-open\", \"fallback\", \"nodata\""),
                );
                return None;
            }
        };
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
            }
        }
        Some(DynamicRecord {
            name,
            record_type,
            ttl: Ttl(ttl),
            all_down_ttl: Ttl(all_down_ttl),
            selection,
            pools,
            // A CNAME answer holds exactly one target.
            max_answers: if record_type == DynamicType::Cname {
                1
            } else {
                max_answers
            },
            all_down,
        })
    }

    fn policy(
        &mut self,
        spec: &RecordSpec,
        path: &KeyPath,
        geo: &GeoConfig,
    ) -> Option<(Selection, PoolChoice)> {
        let parse_selection = |text: &str| match text {
            "failover" => Some(Selection::Failover),
            "weighted" => Some(Selection::Weighted),
            "multivalue" => Some(Selection::Multivalue),
            _ => None,
        };
        if spec.policy == "geo" {
            if spec.pools.is_some() {
                self.error(
                    path.key("pools"),
                    "geo records list pools per region in `geo`, not in `pools`",
                );
            }
            let selection = match spec.select.as_deref() {
                None => Selection::Failover,
                Some(text) => {
                    match parse_selection(text) {
                        Some(s) => s,
                        None => {
                            self.error(
                            path.key("select"),
                            format!("{text:?} is not one of \"failover\", \"weighted\", \"multivalue\""),
                        );
                            return None;
                        }
                    }
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
                    "{:?} is not one of \"failover\", \"weighted\", \"multivalue\", \"geo\"",
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
    fn check_family(&mut self, pool: PoolIndex, record_type: DynamicType, path: &KeyPath) {
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

    fn unused(&mut self) {
        for (i, pool) in self.pools.iter().enumerate() {
            if !self.used_pools.contains(&PoolIndex(i as u32)) {
                self.diagnostics.warning(
                    KeyPath::root().key("pools").key(&pool.name),
                    "pool is not used by any record",
                );
            }
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !self.used_regions.contains(&RegionIndex(i as u16)) {
                self.diagnostics.warning(
                    KeyPath::root().key("regions").key(&region.name),
                    "region is not used by any pool or geo map",
                );
            }
        }
    }
}

fn parse_network(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a network in CIDR form (e.g. 192.0.2.0/24)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Names of pools, regions and endpoints appear in paths, metrics and status output.
fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("name {name:?} must be 1 to 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!(
            "name {name:?} contains {c:?}; use letters, digits, '-', '_', '.', ':'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn names_normalize() {
        assert_eq!(
            normalize_name("WWW.Example.com"),
            Ok("www.example.com.".into())
        );
        assert_eq!(normalize_name("a.b."), Ok("a.b.".into()));
        assert!(normalize_name("a..b").is_err());
        assert!(normalize_name("a b.c").is_err());
        assert!(normalize_name(".").is_err());
    }
}
