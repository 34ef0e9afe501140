//! `Spec` → [`Config`]: every check that needs only the configuration itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::MAX_VANTAGES;
use super::diagnostics::{Diagnostic, Diagnostics, KeyPath, Severity, line_of_offset};
pub(crate) use super::duration::parse_duration;
use super::secret_file::{self, SecretFileError};
use super::spec::{
    AdminSpec, CheckSpec, DampingSpec, DnssecSpec, DnstapSpec, EndpointSpec, GeoSpec, HealthSpec,
    PoolSpec, RecordSpec, RegionSpec, Route53Spec, SafetySpec, ServerSpec, StatusSpec,
    TransferSpec, TtlSpec, VantageRoleSpec, VantageSpec, ZonesSpec,
};
use super::{
    AllDown, Check, CheckKind, ColdStart, Config, ConfigSource, DEFAULT_OVERRIDE_WARN_AFTER,
    DampingRules, DnsCheck, DynamicRecord, Endpoint, ExecCheck, GeoConfig, HealthConfig, HttpCheck,
    IsolationMode, Pool, PoolChoice, Reader, Region, Route53Check, Route53Config, Route53Mode,
    Route53Zone, SafetyRule, Secret, Selection, ServerConfig, UdpIo, VERSION, Vantage, VantageRole,
    ZonesConfig,
};
use crate::model::{
    CheckIndex, DynamicType, EndpointIndex, EndpointTarget, HealthState, PoolIndex, RegionIndex,
    Ttl, VantageIndex, Weight,
};

/// Record settings that default from other sections.
#[derive(Clone, Copy)]
struct RecordDefaults {
    route53: bool,
    /// Mode of records without their own `route53` key (`[route53] mode`).
    route53_mode: Route53Mode,
    cold_start: ColdStart,
}

/// Top-level keys, in the order they are documented.
const SECTIONS: &[&str] = &[
    "version", "server", "zones", "regions", "geo", "checks", "pools", "records", "vantages",
    "health", "admin", "route53", "transfer", "dnstap", "dnssec", "safety",
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
    checks: Vec<(String, Option<CheckSpec>)>,
    vantages: Vec<(String, VantageSpec)>,
    health: HealthSpec,
    admin: AdminSpec,
    route53: Option<Route53Spec>,
    transfer: Option<TransferSpec>,
    dnssec: Option<DnssecSpec>,
    dnstap: Option<DnstapSpec>,
    safety: Vec<Option<SafetySpec>>,
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
        checks: Vec::new(),
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
    v.checks(&sections.checks, &source.base_dir);
    v.pools(&sections.pools);
    let safety = v.safety(&sections.safety);
    let route53 = sections.route53.as_ref().and_then(|spec| v.route53(spec));
    let own_vantage = match &source.reader {
        Reader::Server => None,
        Reader::Agent { vantage } => Some(
            vantage
                .clone()
                .or_else(|| sections.health.vantage.clone())
                .unwrap_or_default(),
        ),
    };
    let vantages = v.vantages(&sections.vantages, &source, own_vantage.as_deref());
    v.exec_env_secrets(&sections.vantages);
    let health = v.health(&sections.health, &vantages, &source);
    let defaults = RecordDefaults {
        route53: route53.is_some(),
        route53_mode: match sections.route53.as_ref().and_then(|s| s.mode.as_deref()) {
            Some("mirror") => Route53Mode::Mirror,
            _ => Route53Mode::Native,
        },
        cold_start: health.cold_start,
    };
    let records = v.records(&sections.records, &geo, defaults);
    let admin = v.admin(&sections.admin, &source, &health.servers);
    let transfer = v.transfer(sections.transfer.as_ref(), &health, &source);
    let dnssec = v.dnssec(sections.dnssec.as_ref(), &source);
    let dnstap = sections
        .dnstap
        .as_ref()
        .and_then(|spec| v.dnstap(spec, &source));
    // A record that did not parse leaves its pools and regions looking unused: say
    // nothing more about them than its own error.
    if sections.records.iter().all(Option::is_some) {
        v.unused();
    }
    Some(Config {
        source,
        server,
        zones,
        regions: v.regions,
        geo,
        pools: v.pools,
        endpoints: v.endpoints,
        records,
        checks: v.checks,
        vantages,
        health,
        admin,
        route53,
        transfer,
        dnssec,
        dnstap,
        safety,
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
            "checks" => {
                for (name, value) in table_entries(value, &path, text, diagnostics) {
                    let item = deserialize(value, &path.key(&name), text, diagnostics);
                    sections.checks.push((name, item));
                }
            }
            "vantages" => {
                for (name, value) in table_entries(value, &path, text, diagnostics) {
                    let item = deserialize(value, &path.key(&name), text, diagnostics);
                    sections.vantages.push((name, item.unwrap_or_default()));
                }
            }
            "health" => {
                sections.health = deserialize(value, &path, text, diagnostics).unwrap_or_default();
            }
            "admin" => {
                sections.admin = deserialize(value, &path, text, diagnostics).unwrap_or_default();
            }
            "route53" => {
                sections.route53 =
                    Some(deserialize(value, &path, text, diagnostics).unwrap_or_default());
            }
            "transfer" => {
                sections.transfer =
                    Some(deserialize(value, &path, text, diagnostics).unwrap_or_default());
            }
            "dnstap" => {
                sections.dnstap =
                    Some(deserialize(value, &path, text, diagnostics).unwrap_or_default());
            }
            "dnssec" => {
                sections.dnssec =
                    Some(deserialize(value, &path, text, diagnostics).unwrap_or_default());
            }
            "safety" => {
                for (i, value) in array_items(value, &path, text, diagnostics)
                    .into_iter()
                    .enumerate()
                {
                    sections
                        .safety
                        .push(deserialize(value, &path.index(i), text, diagnostics));
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
    checks: Vec<Check>,
}

impl Validator<'_> {
    fn error(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diagnostics.error(path, message);
    }

    fn warning(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diagnostics.warning(path, message);
    }

    /// Checks an integer against a range, reporting with `what` as the subject.
    /// A TTL in whole seconds: an integer, or a duration with a unit (`"30s"`,
    /// `"5m"`) like every other duration of the file. None (the default applies)
    /// when absent or wrong (the error is recorded).
    fn ttl_seconds(&mut self, path: KeyPath, value: Option<&TtlSpec>) -> Option<i64> {
        match value? {
            TtlSpec::Seconds(seconds) => Some(*seconds),
            TtlSpec::Duration(text) => match parse_duration(text) {
                Ok(d) if d.subsec_nanos() == 0 => {
                    Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                }
                Ok(_) => {
                    self.error(path, format!("{text:?}: a TTL is whole seconds"));
                    None
                }
                Err(e) => {
                    self.error(path, e);
                    None
                }
            },
        }
    }

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
        let default_idle = ServerConfig::DEFAULT_TCP_IDLE_TIMEOUT;
        let tcp_idle_timeout = match spec.tcp_idle_timeout.as_deref().map(parse_duration) {
            None => default_idle,
            Some(Ok(d)) if d >= Duration::from_millis(100) && d <= Duration::from_secs(300) => d,
            Some(Ok(_)) => {
                self.error(
                    root.key("tcp_idle_timeout"),
                    "must be between 100ms and 300s",
                );
                default_idle
            }
            Some(Err(e)) => {
                self.error(root.key("tcp_idle_timeout"), e);
                default_idle
            }
        };
        let (tcp_max_connections, tcp_max_connections_per_source) = self.tcp_limits(spec, &root);
        let rrl = self.rrl(spec.rrl.as_ref(), &root);
        let udp_io = match spec.udp_io.as_deref() {
            None => UdpIo::default(),
            Some("batched") => UdpIo::Batched,
            Some("portable") => UdpIo::Portable,
            Some("xdp") => UdpIo::Xdp,
            Some(other) => {
                self.error(
                    root.key("udp_io"),
                    format!("{other:?} is not \"batched\" (recvmmsg/sendmmsg), \"portable\" (recv_from/send_to) or \"xdp\" (AF_XDP)"),
                );
                UdpIo::default()
            }
        };
        if udp_io == UdpIo::Xdp {
            for address in listen.iter().filter(|a| a.ip() == Ipv4Addr::UNSPECIFIED) {
                self.error(
                    root.key("udp_io"),
                    format!(
                        "\"xdp\" attaches to the interface holding each IPv4 listen address: \
                         {address} names none; listen on the interface's address"
                    ),
                );
            }
        }
        ServerConfig {
            listen,
            udp_io,
            udp_workers,
            max_udp_payload,
            tcp_idle_timeout,
            tcp_max_connections,
            tcp_max_connections_per_source,
            rrl,
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

    /// Resolves a region reference, reporting unknown names and marking it used.
    fn use_region(&mut self, name: &str, path: KeyPath) -> Option<RegionIndex> {
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
        let default_region = spec
            .default_region
            .as_ref()
            .and_then(|name| self.use_region(name, path));
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
                    check: None,
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
            self.pools.push(Pool {
                name: name.clone(),
                region,
                min_healthy,
                endpoints,
                check,
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
    /// `[[safety]]` rules: known pools, each once, `min_in_service` 1 ..= pools.
    fn safety(&mut self, specs: &[Option<SafetySpec>]) -> Vec<SafetyRule> {
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
                1,
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

    fn records(
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

    fn record(
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
        let all_down_ttl_given =
            self.ttl_seconds(path.key("all_down_ttl"), spec.all_down_ttl.as_ref());
        let all_down_ttl = self.ranged(
            path.key("all_down_ttl"),
            all_down_ttl_given,
            i64::from(ttl.min(10)),
            1..=i64::from(ttl),
            " seconds (at most the record's ttl)",
        ) as u32;
        let min_ttl_given = self.ttl_seconds(path.key("min_ttl"), spec.min_ttl.as_ref());
        let min_ttl = self.ranged(
            path.key("min_ttl"),
            min_ttl_given,
            1,
            1..=i64::from(ttl),
            " seconds (at most the record's ttl)",
        ) as u32;
        let (selection, pools) = self.policy(spec, path, geo)?;
        let default_max = match selection {
            Selection::Weighted | Selection::Primary => 1,
            Selection::Failover | Selection::Multivalue => 8,
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
            let selection = match spec.select.as_deref() {
                None => Selection::Failover,
                Some(text) => {
                    match parse_selection(text).filter(|s| *s != Selection::Primary) {
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
                    "{:?} is not one of \"failover\", \"weighted\", \"multivalue\", \"primary\", \"geo\"",
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

    /// Native Route 53 mode needs checks Route 53 can run itself.
    fn check_route53_native(&mut self, pool: PoolIndex, path: &KeyPath) {
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

    /// `[checks.NAME.damping]`, with every bound checked.
    fn damping(&mut self, spec: Option<&DampingSpec>, path: &KeyPath) -> Option<DampingRules> {
        let default = DampingRules::DEFAULT;
        let Some(spec) = spec else {
            return Some(default);
        };
        if spec.enabled == Some(false) {
            return None;
        }
        let mut positive = |key: &str, value: Option<f64>, default: f64| match value {
            None => default,
            Some(v) if v.is_finite() && v > 0.0 && v <= 1e9 => v,
            Some(v) => {
                self.error(path.key(key), format!("{v} must be a number above 0"));
                default
            }
        };
        let penalty = positive("penalty", spec.penalty, default.penalty);
        let suppress = positive("suppress", spec.suppress, default.suppress);
        let reuse = positive("reuse", spec.reuse, default.reuse);
        let half_life = self.duration(
            path.key("half_life"),
            spec.half_life.as_deref(),
            default.half_life,
            Duration::from_millis(100)..=Duration::from_secs(3600),
        );
        let max_suppress = self.duration(
            path.key("max_suppress"),
            spec.max_suppress.as_deref(),
            default.max_suppress,
            Duration::from_millis(100)..=Duration::from_secs(86_400),
        );
        if reuse >= suppress {
            self.error(
                path.key("reuse"),
                format!("reuse {reuse} must be below suppress {suppress}"),
            );
        }
        if max_suppress < half_life {
            self.error(
                path.key("max_suppress"),
                "must be at least half_life, or a suppressed endpoint could never reach reuse",
            );
        }
        Some(DampingRules {
            penalty,
            half_life,
            suppress,
            reuse,
            max_suppress,
        })
    }

    fn duration(
        &mut self,
        path: KeyPath,
        text: Option<&str>,
        default: Duration,
        range: std::ops::RangeInclusive<Duration>,
    ) -> Duration {
        let Some(text) = text else { return default };
        match parse_duration(text) {
            Ok(d) if range.contains(&d) => d,
            Ok(_) => {
                self.error(
                    path,
                    format!(
                        "{text} is out of range {:?}..={:?}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            Err(e) => {
                self.error(path, e);
                default
            }
        }
    }

    fn checks(&mut self, specs: &[(String, Option<CheckSpec>)], base_dir: &std::path::Path) {
        for (name, spec) in specs {
            let path = KeyPath::root().key("checks").key(name);
            if let Err(e) = check_identifier(name) {
                self.error(path.clone(), e);
            }
            let check = spec
                .as_ref()
                .and_then(|spec| self.check(name, spec, &path, base_dir));
            // Keep indices stable even for invalid checks (errors are already recorded).
            self.checks.push(check.unwrap_or_else(|| Check {
                name: name.clone(),
                kind: CheckKind::Tcp { port: 1 },
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(800),
                fast_interval: Duration::from_millis(200),
                down_interval: Duration::from_secs(1),
                jitter: Duration::ZERO,
                rise: 1,
                fall: 1,
                hold: Duration::ZERO,
                damping: None,
                slow_start: Duration::ZERO,
                route53: Route53Check {
                    request_interval: 30,
                    failure_threshold: 1,
                    regions: Vec::new(),
                },
            }));
        }
    }

    fn check(
        &mut self,
        name: &str,
        spec: &CheckSpec,
        path: &KeyPath,
        base_dir: &std::path::Path,
    ) -> Option<Check> {
        let kind_name = spec.kind.as_str();
        let not_for = |v: &mut Self, present: bool, key: &str| {
            if present {
                v.error(
                    path.key(key),
                    format!("`{key}` does not apply to {kind_name} checks"),
                );
            }
        };
        let http_keys = spec.method.is_some()
            || spec.path.is_some()
            || spec.headers.is_some()
            || spec.expect_status.is_some()
            || spec.expect_body.is_some();
        let dns_keys = spec.query_name.is_some()
            || spec.query_type.is_some()
            || spec.expect_rcode.is_some()
            || spec.expect_answer.is_some();
        if spec.env.is_some() && kind_name != "exec" {
            self.error(
                path.key("env"),
                format!(
                    "`env` does not apply to {kind_name} checks (only exec checks run a program)"
                ),
            );
        }
        let pg_keys = postgres::has_postgres_keys(spec);
        if pg_keys && kind_name != "postgres" {
            self.error(
                path.clone(),
                format!("user, database, password_*, role, max_lag and sslmode do not apply to {kind_name} checks"),
            );
        }
        let port = |v: &mut Self, default: Option<i64>| -> u16 {
            match spec.port.or(default) {
                Some(p) if (1..=65535).contains(&p) => p as u16,
                Some(p) => {
                    v.error(
                        path.key("port"),
                        format!("port {p} is out of range 1..=65535"),
                    );
                    1
                }
                None => {
                    v.error(path.key("port"), format!("{kind_name} checks need a port"));
                    1
                }
            }
        };
        let kind = match kind_name {
            "http" | "https" => {
                not_for(self, dns_keys, "query_name");
                not_for(self, spec.command.is_some(), "command");
                let tls = kind_name == "https";
                if !tls {
                    not_for(self, spec.tls_verify.is_some(), "tls_verify");
                    not_for(self, spec.ca_file.is_some(), "ca_file");
                }
                let port = port(self, Some(if tls { 443 } else { 80 }));
                if let Some(file) = spec.ca_file.as_ref().filter(|_| tls) {
                    if let Err(e) = std::fs::read(base_dir.join(file)) {
                        self.warning(
                            path.key("ca_file"),
                            format!(
                                "cannot read {file}: {e}; this check's probes would abstain \
                                 (client_setup) until it is readable"
                            ),
                        );
                    }
                }
                let method = spec.method.clone().unwrap_or_else(|| "GET".into());
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    self.error(
                        path.key("method"),
                        format!("{method:?} is not an HTTP method (e.g. GET, HEAD)"),
                    );
                }
                let http_path = spec.path.clone().unwrap_or_else(|| "/".into());
                if !http_path.starts_with('/') {
                    self.error(
                        path.key("path"),
                        format!("{http_path:?} must start with '/'"),
                    );
                }
                let mut expect_status = Vec::new();
                for (i, status) in spec.expect_status.iter().flatten().enumerate() {
                    match parse_status(status) {
                        Ok(range) => expect_status.push(range),
                        Err(e) => self.error(path.key("expect_status").index(i), e),
                    }
                }
                if expect_status.is_empty() {
                    expect_status.push((200, 399));
                }
                if let Some(body) = &spec.expect_body {
                    if body.is_empty() || body.len() > 1024 {
                        self.error(path.key("expect_body"), "must be 1 to 1024 characters");
                    }
                }
                CheckKind::Http(HttpCheck {
                    tls,
                    port,
                    method,
                    path: http_path,
                    host: spec.host.clone(),
                    headers: spec
                        .headers
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    expect_status,
                    expect_body: spec.expect_body.clone(),
                    tls_verify: spec.tls_verify.unwrap_or(true),
                    ca_file: spec.ca_file.as_ref().map(|f| base_dir.join(f)),
                })
            }
            "tcp" => {
                not_for(self, http_keys, "path");
                not_for(self, dns_keys, "query_name");
                not_for(self, spec.command.is_some(), "command");
                not_for(self, spec.tls_verify.is_some(), "tls_verify");
                not_for(self, spec.ca_file.is_some(), "ca_file");
                not_for(self, spec.host.is_some(), "host");
                CheckKind::Tcp {
                    port: port(self, None),
                }
            }
            "dns" => {
                not_for(self, http_keys, "path");
                not_for(self, spec.command.is_some(), "command");
                not_for(self, spec.tls_verify.is_some(), "tls_verify");
                not_for(self, spec.ca_file.is_some(), "ca_file");
                let port = port(self, Some(53));
                let query_name = match spec.query_name.as_deref().map(normalize_name) {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => {
                        self.error(path.key("query_name"), e);
                        ".".into()
                    }
                    None => {
                        self.error(path.key("query_name"), "dns checks need query_name");
                        ".".into()
                    }
                };
                let query_type = match spec.query_type.as_deref() {
                    None => 1,
                    Some(t) => match t
                        .to_ascii_uppercase()
                        .parse::<hickory_proto::rr::RecordType>()
                    {
                        Ok(rt) => u16::from(rt),
                        Err(_) => {
                            self.error(
                                path.key("query_type"),
                                format!("{t:?} is not a record type"),
                            );
                            1
                        }
                    },
                };
                let expect_rcode = match spec
                    .expect_rcode
                    .as_deref()
                    .unwrap_or("NOERROR")
                    .to_ascii_uppercase()
                    .as_str()
                {
                    "NOERROR" => 0,
                    "FORMERR" => 1,
                    "SERVFAIL" => 2,
                    "NXDOMAIN" => 3,
                    "NOTIMP" => 4,
                    "REFUSED" => 5,
                    other => {
                        self.error(
                            path.key("expect_rcode"),
                            format!("{other:?} is not a response code (NOERROR, NXDOMAIN, ...)"),
                        );
                        0
                    }
                };
                CheckKind::Dns(DnsCheck {
                    port,
                    query_name,
                    query_type,
                    expect_rcode,
                    expect_answer: spec.expect_answer.unwrap_or(expect_rcode == 0),
                })
            }
            "exec" => {
                not_for(self, http_keys, "path");
                not_for(self, dns_keys, "query_name");
                not_for(self, spec.tls_verify.is_some(), "tls_verify");
                not_for(self, spec.ca_file.is_some(), "ca_file");
                let port = spec.port.map(|_| port(self, None));
                let command = spec.command.clone().unwrap_or_default();
                if command.is_empty() || command[0].is_empty() {
                    self.error(
                        path.key("command"),
                        "exec checks need a command (program and arguments)",
                    );
                }
                self.exec_command(&command, &path.key("command"));
                let env = spec.env.clone().unwrap_or_default();
                self.exec_env(&env, &path.key("env"));
                CheckKind::Exec(ExecCheck { command, env, port })
            }
            "postgres" => {
                not_for(self, http_keys, "path");
                not_for(self, dns_keys, "query_name");
                not_for(self, spec.command.is_some(), "command");
                let port = port(
                    self,
                    Some(i64::from(crate::config::postgres_defaults::PORT)),
                );
                self.postgres_check(spec, path, port, base_dir)
            }
            other => {
                self.error(
                    path.key("type"),
                    format!(
                        "{other:?} is not one of \"http\", \"https\", \"tcp\", \"dns\", \"exec\", \"postgres\""
                    ),
                );
                return None;
            }
        };
        let interval = self.duration(
            path.key("interval"),
            spec.interval.as_deref(),
            Duration::from_secs(1),
            Duration::from_millis(100)..=Duration::from_secs(3600),
        );
        let timeout = self.duration(
            path.key("timeout"),
            spec.timeout.as_deref(),
            interval.mul_f64(0.8),
            Duration::from_millis(10)..=Duration::from_secs(3600),
        );
        if timeout >= interval {
            self.error(
                path.key("timeout"),
                format!("timeout {timeout:?} must be less than interval {interval:?}"),
            );
        }
        let fast_interval = self.duration(
            path.key("fast_interval"),
            spec.fast_interval.as_deref(),
            (interval / 5).max(Duration::from_millis(50)),
            Duration::from_millis(50)..=interval,
        );
        let down_interval = self.duration(
            path.key("down_interval"),
            spec.down_interval.as_deref(),
            interval,
            Duration::from_millis(50)..=Duration::from_secs(3600),
        );
        let jitter = self.duration(
            path.key("jitter"),
            spec.jitter.as_deref(),
            interval / 10,
            Duration::ZERO..=interval / 2,
        );
        let rise = self.ranged(path.key("rise"), spec.rise, 2, 1..=100, "") as u32;
        let fall = self.ranged(path.key("fall"), spec.fall, 2, 1..=100, "") as u32;
        let hold = self.duration(
            path.key("hold"),
            spec.hold.as_deref(),
            Duration::ZERO,
            Duration::ZERO..=Duration::from_secs(86_400),
        );
        let damping = self.damping(spec.damping.as_ref(), &path.key("damping"));
        let slow_start = self.duration(
            path.key("slow_start"),
            spec.slow_start.as_deref(),
            Duration::ZERO,
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let r53 = spec.route53.clone().unwrap_or_default();
        let r53_path = path.key("route53");
        let request_interval = match r53.request_interval {
            None => 30,
            Some(v @ (10 | 30)) => v as u8,
            Some(v) => {
                self.error(
                    r53_path.key("request_interval"),
                    format!("{v} is not 10 or 30 (Route 53 allows only these)"),
                );
                30
            }
        };
        let failure_threshold = self.ranged(
            r53_path.key("failure_threshold"),
            r53.failure_threshold,
            i64::from(fall.clamp(1, 10)),
            1..=10,
            "",
        ) as u8;
        let regions = r53.regions.unwrap_or_default();
        if !regions.is_empty() && regions.len() < 3 {
            self.error(
                r53_path.key("regions"),
                "Route 53 needs at least 3 checker regions (or none for its default)",
            );
        }
        Some(Check {
            name: name.to_owned(),
            kind,
            interval,
            timeout,
            fast_interval,
            down_interval,
            jitter,
            rise,
            fall,
            hold,
            damping,
            slow_start,
            route53: Route53Check {
                request_interval,
                failure_threshold,
                regions,
            },
        })
    }

    /// `agent_of`: the vantage point a probe agent runs as (only its secret must be
    /// present); None for a server, which needs every secret.
    fn vantages(
        &mut self,
        specs: &[(String, VantageSpec)],
        source: &ConfigSource,
        agent_of: Option<&str>,
    ) -> Vec<Vantage> {
        let mut vantages = Vec::new();
        if specs.len() > MAX_VANTAGES {
            self.error(
                KeyPath::root().key("vantages"),
                format!(
                    "{} vantage points; at most {MAX_VANTAGES} (a quorum of a few per region is enough)",
                    specs.len()
                ),
            );
        }
        for (name, spec) in specs {
            let path = KeyPath::root().key("vantages").key(name);
            let needs_secret = agent_of.is_none_or(|own| own == name);
            if let Err(e) = check_identifier(name) {
                self.error(path.clone(), e);
            }
            let region = spec
                .region
                .as_ref()
                .and_then(|r| self.use_region(r, path.key("region")));
            let given = [
                spec.secret.is_some(),
                spec.secret_env.is_some(),
                spec.secret_file.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                self.error(
                    path.clone(),
                    "give only one of secret, secret_env, secret_file",
                );
            }
            let secret = if let Some(secret) = &spec.secret {
                Some(secret.as_bytes().to_vec())
            } else if let Some(var) = &spec.secret_env {
                match std::env::var(var) {
                    Ok(value) => Some(value.into_bytes()),
                    Err(_) if !needs_secret => None,
                    Err(_) => {
                        self.error(
                            path.key("secret_env"),
                            format!("environment variable {var} is not set"),
                        );
                        None
                    }
                }
            } else if let Some(file) = &spec.secret_file {
                match secret_file::read(&source.base_dir.join(file)) {
                    Ok(bytes) => Some(bytes.trim_ascii().to_vec()),
                    Err(SecretFileError::Read { .. }) if !needs_secret => None,
                    // An agent does not use another vantage point's secret, but it
                    // lies open on this machine: a warning (--deny-warnings fails).
                    Err(e) if !needs_secret => {
                        self.warning(
                            path.key("secret_file"),
                            format!("not used by this agent, but exposed: {e}"),
                        );
                        None
                    }
                    Err(e) => {
                        self.error(path.key("secret_file"), e.to_string());
                        None
                    }
                }
            } else {
                None
            };
            if let Some(secret) = &secret {
                if secret.len() < 16 {
                    self.error(path.clone(), "the secret must be at least 16 bytes");
                }
            }
            let source_address = spec
                .source_address
                .as_ref()
                .and_then(|text| match text.parse() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        self.error(
                            path.key("source_address"),
                            format!("{text:?} is not an IP address"),
                        );
                        None
                    }
                });
            vantages.push(Vantage {
                name: name.clone(),
                region,
                secret: secret.map(Secret::new),
                source_address,
                role: spec.role.map(|role| match role {
                    VantageRoleSpec::Server => VantageRole::Server,
                    VantageRoleSpec::Agent => VantageRole::Agent,
                }),
            });
        }
        vantages
    }

    fn health(
        &mut self,
        spec: &HealthSpec,
        vantages: &[Vantage],
        source: &ConfigSource,
    ) -> HealthConfig {
        let path = KeyPath::root().key("health");
        let vantage = spec.vantage.as_ref().and_then(|name| {
            let found = vantages.iter().position(|v| &v.name == name);
            if found.is_none() {
                self.error(
                    path.key("vantage"),
                    format!("unknown vantage point {name:?} (define [vantages.{name}])"),
                );
            }
            found.map(|i| VantageIndex(i as u16))
        });
        let mut servers = Vec::new();
        for (i, url) in spec.servers.iter().flatten().enumerate() {
            let trimmed = url.trim_end_matches('/');
            let valid = trimmed
                .strip_prefix("http://")
                .or_else(|| trimmed.strip_prefix("https://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if valid {
                servers.push(trimmed.to_owned());
            } else {
                self.error(
                    path.key("servers").index(i),
                    format!("{url:?} is not a base URL like http://10.0.0.2:9353"),
                );
            }
        }
        let vantage_count = vantages.len().max(1) as i64;
        let down_votes = spec.down_votes.map(|n| {
            self.ranged(
                path.key("down_votes"),
                Some(n),
                1,
                1..=vantage_count,
                " (at most the number of vantage points)",
            ) as u32
        });
        let regions: HashSet<RegionIndex> = vantages.iter().filter_map(|v| v.region).collect();
        let down_regions = self.ranged(
            path.key("down_regions"),
            spec.down_regions,
            1,
            1..=regions.len().max(1) as i64,
            " (at most the number of distinct vantage regions)",
        ) as u32;
        let staleness = self.duration(
            path.key("staleness"),
            spec.staleness.as_deref(),
            Duration::from_secs(10),
            Duration::from_millis(100)..=Duration::from_secs(3600),
        );
        let push_interval = self.duration(
            path.key("push_interval"),
            spec.push_interval.as_deref(),
            Duration::from_millis(500),
            Duration::from_millis(50)..=Duration::from_secs(60),
        );
        let override_warn_after = self.duration(
            path.key("override_warn_after"),
            spec.override_warn_after.as_deref(),
            DEFAULT_OVERRIDE_WARN_AFTER,
            Duration::ZERO..=Duration::from_secs(365 * 24 * 3600),
        );
        if push_interval >= staleness {
            self.error(
                path.key("push_interval"),
                "must be shorter than staleness, or reports expire between pushes",
            );
        }
        let isolation = match spec.isolation.as_deref() {
            None | Some("hold") => IsolationMode::Hold,
            Some("local") => IsolationMode::Local,
            Some(other) => {
                self.error(
                    path.key("isolation"),
                    format!("{other:?} is not \"hold\" or \"local\""),
                );
                IsolationMode::Hold
            }
        };
        let cold_start = match spec.cold_start.as_deref() {
            None => ColdStart::LastKnown,
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
        if !servers.is_empty() && vantages.iter().all(|v| v.secret.is_none()) {
            self.warning(
                path.key("servers"),
                "no vantage point has a secret, so no report will be accepted",
            );
        }
        HealthConfig {
            vantage,
            servers,
            down_votes,
            isolation,
            down_regions,
            staleness,
            push_interval,
            state_file: match &spec.state_file {
                Some(file) => Some(source.base_dir.join(file)),
                // The embedded default keeps its state where a user's state goes.
                None if source.is_embedded() => super::default_state_file(),
                None => None,
            },
            cold_start,
            override_warn_after,
        }
    }

    fn route53(&mut self, spec: &Route53Spec) -> Option<Route53Config> {
        let path = KeyPath::root().key("route53");
        let owner_id = spec.owner_id.clone().unwrap_or_else(|| "failoverd".into());
        if let Err(e) = check_identifier(&owner_id) {
            self.error(path.key("owner_id"), e);
        }
        match spec.mode.as_deref() {
            None | Some("native") | Some("mirror") => {}
            Some(other) => self.error(
                path.key("mode"),
                format!("{other:?} is not \"native\" or \"mirror\""),
            ),
        }
        let rate = spec.max_requests_per_second.unwrap_or(5.0);
        if !(rate > 0.0 && rate <= 100.0) {
            self.error(
                path.key("max_requests_per_second"),
                format!("{rate} is out of range (0, 100]"),
            );
        }
        let burst = self.ranged(path.key("burst"), spec.burst, 10, 1..=1000, "") as u32;
        let debounce = self.duration(
            path.key("debounce"),
            spec.debounce.as_deref(),
            Duration::from_secs(2),
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let change_timeout = self.duration(
            path.key("change_timeout"),
            spec.change_timeout.as_deref(),
            Duration::from_secs(120),
            Duration::from_secs(1)..=Duration::from_secs(3600),
        );
        let sync_interval = self.duration(
            path.key("sync_interval"),
            spec.sync_interval.as_deref(),
            Duration::from_secs(60),
            Duration::from_secs(1)..=Duration::from_secs(86_400),
        );
        let max_update_percent = self.ranged(
            path.key("max_update_percent"),
            spec.max_update_percent,
            30,
            0..=100,
            "",
        ) as u32;
        let max_delete_percent = self.ranged(
            path.key("max_delete_percent"),
            spec.max_delete_percent,
            30,
            0..=100,
            "",
        ) as u32;
        if spec.zones.is_empty() {
            self.error(
                path.key("zones"),
                "list the hosted zones to sync ([[route53.zones]] zone = \"...\")",
            );
        }
        let mut zones = Vec::new();
        let mut seen = HashSet::new();
        for (i, zone) in spec.zones.iter().enumerate() {
            match normalize_name(&zone.zone) {
                Ok(name) if seen.insert(name.clone()) => zones.push(Route53Zone {
                    zone: name,
                    hosted_zone_id: zone.hosted_zone_id.clone(),
                    sync_static: zone.sync_static.unwrap_or(false),
                }),
                Ok(name) => self.error(
                    path.key("zones").index(i).key("zone"),
                    format!("{name} is listed twice"),
                ),
                Err(e) => self.error(path.key("zones").index(i).key("zone"), e),
            }
        }
        Some(Route53Config {
            region: spec.region.clone().unwrap_or_else(|| "us-east-1".into()),
            endpoint_url: spec.endpoint_url.clone(),
            owner_id,
            max_requests_per_second: rate,
            burst,
            debounce,
            change_timeout,
            sync_interval,
            max_update_percent,
            max_delete_percent,
            zones,
        })
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

/// Whether `text` is shaped like an IP address: it holds a colon, or its last label
/// is a number (which no host name's is).
fn looks_like_address(text: &str) -> bool {
    let last = text
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or_default();
    text.contains(':') || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// An endpoint's target from its address text, if valid.
fn parse_target(address: &str) -> Option<EndpointTarget> {
    match address.parse::<IpAddr>() {
        Ok(ip) => Some(EndpointTarget::Address(ip)),
        Err(_) => normalize_name(address).ok().map(EndpointTarget::Host),
    }
}

fn parse_status(status: &StatusSpec) -> Result<(u16, u16), String> {
    let (low, high) = match status {
        StatusSpec::Code(code) => (*code, *code),
        StatusSpec::Range(text) => {
            let parse = |t: &str| {
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{text:?} is not a status or range like \"200-399\""))
            };
            match text.split_once('-') {
                Some((a, b)) => (parse(a)?, parse(b)?),
                None => {
                    let code = parse(text)?;
                    (code, code)
                }
            }
        }
    };
    if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
        return Err(format!(
            "{low}-{high} is not a range of HTTP statuses (100-599)"
        ));
    }
    Ok((low as u16, high as u16))
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

/// An endpoint's host name must be a host name (RFC 1123: letters, digits and `-`
/// inside dot-separated labels): it reaches probes, exec checks among them, where a
/// leading `-` would read as an option and other characters as syntax.
fn check_host_name(name: &str) -> Result<(), String> {
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

/// Placeholders an exec check's argument may be, whole.
const EXEC_PLACEHOLDERS: [(&str, &str); 2] = [
    ("{address}", "FAILOVERD_ADDRESS"),
    ("{endpoint}", "FAILOVERD_ENDPOINT"),
];

/// Variables failoverd sets for every exec check.
const EXEC_SET_VARIABLES: [&str; 3] = ["FAILOVERD_ADDRESS", "FAILOVERD_ENDPOINT", "FAILOVERD_PORT"];

impl Validator<'_> {
    /// An exec check's placeholders stand for whole arguments: never spliced into a
    /// larger one (a shell string), never the program.
    fn exec_command(&mut self, command: &[String], path: &KeyPath) {
        for (i, arg) in command.iter().enumerate() {
            for (placeholder, variable) in EXEC_PLACEHOLDERS {
                if i == 0 && arg == placeholder {
                    self.error(
                        path.index(i),
                        format!("the program cannot be {placeholder}; name the program, and give {placeholder} as an argument of its own"),
                    );
                } else if arg.contains(placeholder) && arg != placeholder {
                    self.error(
                        path.index(i),
                        format!(
                            "{arg:?} splices {placeholder} into a larger argument, where an address could \
                             become shell syntax or an option; give {placeholder} as an argument of its own, \
                             or in a shell script use \"${variable}\" (set for every exec check)"
                        ),
                    );
                }
            }
        }
    }

    /// An exec check's `env`: names of variables passed through.
    fn exec_env(&mut self, names: &[String], path: &KeyPath) {
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.error(
                    path.index(i),
                    format!("{name:?} is not a variable name (letters, digits and '_', not starting with a digit)"),
                );
            } else if EXEC_SET_VARIABLES.contains(&name.as_str()) {
                self.error(
                    path.index(i),
                    format!("{name} is set by failoverd for every exec check; remove it from env"),
                );
            } else if name == "PATH" || name == "LANG" {
                self.warning(
                    path.index(i),
                    format!("{name} is always passed; remove it from env"),
                );
            } else if !seen.insert(name.as_str()) {
                self.warning(path.index(i), format!("{name} is listed twice"));
            }
        }
    }

    /// Warns where an exec check's `env` passes a vantage point's secret to the program.
    fn exec_env_secrets(&mut self, vantages: &[(String, VantageSpec)]) {
        let mut warnings = Vec::new();
        for (check, spec) in self.checks.iter().map(|c| (&c.name, &c.kind)) {
            let CheckKind::Exec(exec) = spec else {
                continue;
            };
            for (i, name) in exec.env.iter().enumerate() {
                for (vantage, v) in vantages {
                    if v.secret_env.as_deref() == Some(name.as_str()) {
                        warnings.push((
                            KeyPath::root().key("checks").key(check).key("env").index(i),
                            format!("{name} holds vantage point {vantage}'s secret (secret_env); the check's program would get it"),
                        ));
                    }
                }
            }
        }
        for (path, message) in warnings {
            self.warning(path, message);
        }
    }
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

mod admin;
mod dnssec;
mod dnstap;
mod postgres;
mod server;
mod transfer;

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
