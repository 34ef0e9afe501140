//! `Spec` → [`Config`]: every check that needs only the configuration itself.

use std::collections::HashSet;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{
    Diagnostic, Diagnostics, KeyPath, Severity, deserialize_at, line_of_offset,
};
pub(crate) use super::duration::parse_duration;
use super::spec::{
    AdminSpec, CheckSpec, DnssecSpec, DnstapSpec, GeoSpec, HealthSpec, PoolSpec, RecordSpec,
    RegionSpec, Route53Spec, SafetySpec, ServerSpec, TransferSpec, TtlSpec, VantageSpec, ZonesSpec,
    read_check,
};
use super::{
    Check, ColdStart, Config, ConfigSource, Endpoint, Pool, Reader, Region, Route53Mode, VERSION,
};
use crate::model::{PoolIndex, RegionIndex};

/// Record settings that default from other sections.
#[derive(Clone, Copy)]
pub(super) struct RecordDefaults {
    pub(super) route53: bool,
    /// Mode of records without their own `route53` key (`[route53] mode`).
    pub(super) route53_mode: Route53Mode,
    pub(super) cold_start: ColdStart,
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
        route53_mode: match sections
            .route53
            .as_ref()
            .and_then(|s| s.mode.as_deref())
            .unwrap_or(super::defaults::route53::MODE)
        {
            "mirror" => Route53Mode::Mirror,
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
                    let item = read_check(value, &path.key(&name), text)
                        .map_err(|diagnostic| diagnostics.push(diagnostic))
                        .ok();
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
    deserialize_at(value, path, text)
        .map_err(|diagnostic| diagnostics.push(diagnostic))
        .ok()
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

pub(super) struct Validator<'d> {
    pub(super) diagnostics: &'d mut Diagnostics,
    pub(super) regions: Vec<Region>,
    pub(super) pools: Vec<Pool>,
    pub(super) endpoints: Vec<Endpoint>,
    pub(super) used_pools: HashSet<PoolIndex>,
    pub(super) used_regions: HashSet<RegionIndex>,
    pub(super) checks: Vec<Check>,
}

impl Validator<'_> {
    pub(super) fn error(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diagnostics.error(path, message);
    }

    pub(super) fn warning(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diagnostics.warning(path, message);
    }

    /// Checks an integer against a range, reporting with `what` as the subject.
    /// A TTL in whole seconds: an integer, or a duration with a unit (`"30s"`,
    /// `"5m"`) like every other duration of the file. None (the default applies)
    /// when absent or wrong (the error is recorded).
    pub(super) fn ttl_seconds(&mut self, path: KeyPath, value: Option<&TtlSpec>) -> Option<i64> {
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

    pub(super) fn ranged(
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

    pub(super) fn duration(
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

    pub(super) fn unused(&mut self) {
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

pub(super) fn parse_network(text: &str) -> Result<IpNet, String> {
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
pub(super) fn check_identifier(name: &str) -> Result<(), String> {
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
