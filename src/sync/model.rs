//! The agent's own view of Route 53 data: record sets keyed by (name, type, set
//! identifier), health checks, and the state read from the API.
//!
//! These types are independent of the AWS SDK (which stays inside
//! [`crate::sync::route53`]), so desired state, planning and batching are plain data
//! transformations. Names are kept in one canonical form — lower case, absolute (with a
//! trailing dot), characters outside `a-z 0-9 - _ *` as Route 53's `\ooo` octal escapes
//! — so that a name read from Route 53 (which may come back as `\052.wild…` or in the
//! case it was written) compares equal to the same name built from a zone file.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A DNS record type as Route 53 names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Certification authority authorization.
    Caa,
    /// Canonical name.
    Cname,
    /// Delegation signer.
    Ds,
    /// HTTPS service binding.
    Https,
    /// Mail exchange.
    Mx,
    /// Naming authority pointer.
    Naptr,
    /// Name server.
    Ns,
    /// Pointer.
    Ptr,
    /// Start of authority.
    Soa,
    /// Sender policy framework (legacy type).
    Spf,
    /// Service locator.
    Srv,
    /// SSH fingerprint.
    Sshfp,
    /// Service binding.
    Svcb,
    /// TLS association.
    Tlsa,
    /// Text.
    Txt,
    /// Any other type (only ever read from Route 53, never written).
    Other(String),
}

impl RecordType {
    /// Every type Route 53 accepts, in mnemonic order.
    pub(crate) const SUPPORTED: [Self; 17] = [
        Self::A,
        Self::Aaaa,
        Self::Caa,
        Self::Cname,
        Self::Ds,
        Self::Https,
        Self::Mx,
        Self::Naptr,
        Self::Ns,
        Self::Ptr,
        Self::Soa,
        Self::Spf,
        Self::Srv,
        Self::Sshfp,
        Self::Svcb,
        Self::Tlsa,
        Self::Txt,
    ];

    /// The mnemonic (`A`, `AAAA`, …).
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Caa => "CAA",
            Self::Cname => "CNAME",
            Self::Ds => "DS",
            Self::Https => "HTTPS",
            Self::Mx => "MX",
            Self::Naptr => "NAPTR",
            Self::Ns => "NS",
            Self::Ptr => "PTR",
            Self::Soa => "SOA",
            Self::Spf => "SPF",
            Self::Srv => "SRV",
            Self::Sshfp => "SSHFP",
            Self::Svcb => "SVCB",
            Self::Tlsa => "TLSA",
            Self::Txt => "TXT",
            Self::Other(name) => name,
        }
    }

    /// Parses a mnemonic (any case).
    pub(crate) fn from_mnemonic(text: &str) -> Self {
        let upper = text.to_ascii_uppercase();
        Self::SUPPORTED
            .iter()
            .find(|t| t.as_str() == upper)
            .cloned()
            .unwrap_or(Self::Other(upper))
    }

    /// The type of a DNS type code, if Route 53 supports it.
    pub(crate) fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::A,
            2 => Self::Ns,
            5 => Self::Cname,
            6 => Self::Soa,
            12 => Self::Ptr,
            15 => Self::Mx,
            16 => Self::Txt,
            28 => Self::Aaaa,
            33 => Self::Srv,
            35 => Self::Naptr,
            43 => Self::Ds,
            44 => Self::Sshfp,
            52 => Self::Tlsa,
            64 => Self::Svcb,
            65 => Self::Https,
            99 => Self::Spf,
            257 => Self::Caa,
            _ => return None,
        })
    }
}

impl PartialOrd for RecordType {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RecordType {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RecordType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The identity of a record set in a hosted zone: (name, type, set identifier).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RecordKey {
    /// Canonical owner name (see [`canonical_name`]).
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// Set identifier of routed record sets (weighted, failover, multivalue, …).
    pub set_identifier: Option<String>,
}

impl RecordKey {
    /// A key; `name` is canonicalised.
    pub(crate) fn new(name: &str, record_type: RecordType, set_identifier: Option<String>) -> Self {
        Self {
            name: canonical_name(name),
            record_type,
            set_identifier,
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.record_type)?;
        if let Some(set) = &self.set_identifier {
            write!(f, " [{set}]")?;
        }
        Ok(())
    }
}

/// The role of a failover record set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum FailoverRole {
    /// Answered while healthy.
    Primary,
    /// Answered when the primary is unhealthy.
    Secondary,
}

impl FailoverRole {
    /// Route 53's name for the role.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Secondary => "SECONDARY",
        }
    }
}

/// The routing policy of a record set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Routing {
    /// No routing policy.
    Simple,
    /// Weighted (0–255; 0 = only when every other record is unhealthy).
    Weighted {
        /// The weight.
        weight: u8,
    },
    /// Failover.
    Failover {
        /// Primary or secondary.
        role: FailoverRole,
    },
    /// Multivalue answer.
    MultiValue,
    /// A policy the agent never writes (latency, geolocation, CIDR, …), as read.
    Other {
        /// Short description, for display only.
        description: String,
    },
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Simple => f.write_str("simple"),
            Self::Weighted { weight } => write!(f, "weight {weight}"),
            Self::Failover { role } => write!(f, "failover {}", role.as_str()),
            Self::MultiValue => f.write_str("multivalue"),
            Self::Other { description } => f.write_str(description),
        }
    }
}

/// An alias record's target: another record set in a hosted zone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct AliasTarget {
    /// Hosted zone of the target (bare id, without `/hostedzone/`); empty in desired
    /// state until the zone's id is known.
    pub hosted_zone_id: String,
    /// Canonical target name.
    pub dns_name: String,
    /// Whether the alias inherits the target's health.
    pub evaluate_target_health: bool,
}

/// A health check a record set refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum HealthCheckRef {
    /// An existing health check, by Route 53 id.
    Id(String),
    /// A health check the agent manages, by its key (the endpoint label); resolved to
    /// an id when planned (existing check) or applied (check created by the plan).
    Key(String),
}

impl fmt::Display for HealthCheckRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::Key(key) => write!(f, "(new check for {key})"),
        }
    }
}

/// A record set, as read from Route 53 or as desired.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RecordSet {
    /// Identity.
    pub key: RecordKey,
    /// TTL (None for alias records).
    pub ttl: Option<u32>,
    /// Values in Route 53's text form, sorted (empty for alias records).
    pub values: Vec<String>,
    /// Alias target, for alias records.
    pub alias: Option<AliasTarget>,
    /// Routing policy.
    pub routing: Routing,
    /// Health check associated with the record set.
    pub health_check: Option<HealthCheckRef>,
}

impl RecordSet {
    /// A simple (unrouted) record set; values are sorted.
    pub(crate) fn simple(
        name: &str,
        record_type: RecordType,
        ttl: u32,
        values: Vec<String>,
    ) -> Self {
        let mut set = Self {
            key: RecordKey::new(name, record_type, None),
            ttl: Some(ttl),
            values,
            alias: None,
            routing: Routing::Simple,
            health_check: None,
        };
        set.values.sort();
        set.values.dedup();
        set
    }

    /// Number of `ResourceRecord` elements this record set sends (an alias counts as
    /// one, conservatively).
    pub(crate) fn resource_record_count(&self) -> usize {
        self.values.len().max(1)
    }

    /// Characters of values this record set sends.
    pub(crate) fn value_chars(&self) -> usize {
        self.values.iter().map(String::len).sum()
    }

    /// Whether two record sets are the same for Route 53, ignoring representation
    /// differences that do not matter (value order, name case, TTL of aliases, IPv6
    /// spelling).
    pub(crate) fn same_content(&self, other: &Self) -> bool {
        if self.key != other.key
            || self.routing != other.routing
            || self.health_check != other.health_check
        {
            return false;
        }
        match (&self.alias, &other.alias) {
            (Some(a), Some(b)) => {
                bare_id(&a.hosted_zone_id) == bare_id(&b.hosted_zone_id)
                    && canonical_name(&a.dns_name) == canonical_name(&b.dns_name)
                    && a.evaluate_target_health == b.evaluate_target_health
            }
            (None, None) => {
                self.ttl == other.ttl
                    && normalized_values(&self.key.record_type, &self.values)
                        == normalized_values(&other.key.record_type, &other.values)
            }
            _ => false,
        }
    }
}

/// Values put in a comparable form: sorted, addresses and names normalised.
fn normalized_values(record_type: &RecordType, values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| match record_type {
            RecordType::A | RecordType::Aaaa => v
                .parse::<std::net::IpAddr>()
                .map_or_else(|_| v.clone(), |ip| ip.to_string()),
            RecordType::Cname | RecordType::Ns | RecordType::Ptr => canonical_name(v),
            _ => v.clone(),
        })
        .collect();
    out.sort();
    out
}

/// Route 53 protocol of a health check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum HealthCheckProtocol {
    /// HTTP: healthy on a 2xx or 3xx status.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS: as HTTP, over TLS (certificates are not validated).
    #[serde(rename = "HTTPS")]
    Https,
    /// HTTP, and the body must contain the search string.
    #[serde(rename = "HTTP_STR_MATCH")]
    HttpStrMatch,
    /// HTTPS, and the body must contain the search string.
    #[serde(rename = "HTTPS_STR_MATCH")]
    HttpsStrMatch,
    /// TCP connect.
    #[serde(rename = "TCP")]
    Tcp,
    /// Healthy while at least `health_threshold` of its child checks are healthy.
    #[serde(rename = "CALCULATED")]
    Calculated,
    /// Any other type (CloudWatch, recovery control, …), as read; never written.
    Other(String),
}

impl HealthCheckProtocol {
    /// Route 53's name of the type.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::HttpStrMatch => "HTTP_STR_MATCH",
            Self::HttpsStrMatch => "HTTPS_STR_MATCH",
            Self::Tcp => "TCP",
            Self::Calculated => "CALCULATED",
            Self::Other(name) => name,
        }
    }

    /// Parses Route 53's name of the type.
    pub(crate) fn from_name(name: &str) -> Self {
        match name {
            "HTTP" => Self::Http,
            "HTTPS" => Self::Https,
            "HTTP_STR_MATCH" => Self::HttpStrMatch,
            "HTTPS_STR_MATCH" => Self::HttpsStrMatch,
            "TCP" => Self::Tcp,
            "CALCULATED" => Self::Calculated,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The settings of a Route 53 health check, as desired or read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HealthCheckSpec {
    /// Protocol (cannot be changed after creation).
    pub protocol: HealthCheckProtocol,
    /// Address probed (None: resolve `fqdn`).
    pub ip_address: Option<String>,
    /// Port probed.
    pub port: Option<u16>,
    /// HTTP path.
    pub resource_path: Option<String>,
    /// Host name: resolved when there is no address, else sent as Host header / SNI.
    pub fqdn: Option<String>,
    /// Text the body must contain (`*_STR_MATCH`).
    pub search_string: Option<String>,
    /// Seconds between checks: 10 or 30 (cannot be changed after creation).
    pub request_interval: u8,
    /// Consecutive failures before unhealthy (1–10).
    pub failure_threshold: u8,
    /// Checker regions, sorted (empty: Route 53's default set).
    pub regions: Vec<String>,
    /// Whether the status is inverted.
    pub inverted: bool,
    /// Whether checking is disabled (a disabled check is healthy; disabled and
    /// inverted, unhealthy).
    pub disabled: bool,
    /// Whether the host name is sent in TLS SNI.
    pub enable_sni: bool,
    /// Calculated checks: how many children must be healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_threshold: Option<u8>,
    /// Calculated checks: the child checks, sorted (by key until planned or applied).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<HealthCheckRef>,
}

impl Default for HealthCheckSpec {
    /// A TCP check with Route 53's defaults (30 s interval, 3 failures).
    fn default() -> Self {
        Self {
            protocol: HealthCheckProtocol::Tcp,
            ip_address: None,
            port: None,
            resource_path: None,
            fqdn: None,
            search_string: None,
            request_interval: 30,
            failure_threshold: 3,
            regions: Vec::new(),
            inverted: false,
            disabled: false,
            enable_sni: false,
            health_threshold: None,
            children: Vec::new(),
        }
    }
}

impl HealthCheckSpec {
    /// A calculated check: healthy while at least `threshold` of `children` are.
    pub(crate) fn calculated(threshold: u8, mut children: Vec<HealthCheckRef>) -> Self {
        children.sort();
        Self {
            protocol: HealthCheckProtocol::Calculated,
            health_threshold: Some(threshold),
            children,
            ..Self::default()
        }
    }

    /// Whether this is a calculated check (created after, deleted before, its
    /// children).
    pub(crate) fn is_calculated(&self) -> bool {
        self.protocol == HealthCheckProtocol::Calculated
    }

    /// Whether `current` can become `self` with UpdateHealthCheck: the protocol and
    /// request interval cannot change, and an IP address or search string cannot be
    /// removed (UpdateHealthCheck's `ResetElements` covers only the host name, path,
    /// regions and child checks; a field left out keeps its old value).
    pub(crate) fn updatable_from(&self, current: &Self) -> bool {
        let removes = |new: &Option<String>, old: &Option<String>| new.is_none() && old.is_some();
        self.protocol == current.protocol
            && self.request_interval == current.request_interval
            && !removes(&self.ip_address, &current.ip_address)
            && !removes(&self.search_string, &current.search_string)
    }

    /// Why `current` cannot become `self` in place (for the plan's warning).
    pub(crate) fn replacement_reason(&self, current: &Self) -> &'static str {
        if self.protocol != current.protocol {
            "its protocol changed"
        } else if self.request_interval != current.request_interval {
            "its request interval changed"
        } else if self.ip_address.is_none() && current.ip_address.is_some() {
            "its IP address was removed"
        } else {
            "its search string was removed"
        }
    }

    /// Whether `current` already has these settings. An empty desired region list
    /// means "Route 53's default", which matches whatever Route 53 reports.
    pub(crate) fn satisfied_by(&self, current: &Self) -> bool {
        let regions_match = self.regions.is_empty() || self.regions == current.regions;
        regions_match
            && self.protocol == current.protocol
            && self.ip_address == current.ip_address
            && self.port == current.port
            && self.resource_path == current.resource_path
            && self.fqdn.as_deref().map(canonical_host)
                == current.fqdn.as_deref().map(canonical_host)
            && self.search_string == current.search_string
            && self.request_interval == current.request_interval
            && self.failure_threshold == current.failure_threshold
            && self.inverted == current.inverted
            && self.disabled == current.disabled
            && self.health_threshold == current.health_threshold
            && self.children == current.children
            && (self.enable_sni == current.enable_sni
                || !matches!(
                    self.protocol,
                    HealthCheckProtocol::Https | HealthCheckProtocol::HttpsStrMatch
                ))
    }
}

/// A host name without trailing dot, lower case (health-check FQDNs are written
/// without the dot).
fn canonical_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A health check that exists in Route 53.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ExistingHealthCheck {
    /// Route 53 id.
    pub id: String,
    /// Caller reference it was created with.
    pub caller_reference: String,
    /// Version, for optimistic updates.
    pub version: i64,
    /// Its settings.
    pub spec: HealthCheckSpec,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// One hosted zone as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ZoneState {
    /// Canonical zone name.
    pub zone: String,
    /// Hosted zone id (bare).
    pub hosted_zone_id: String,
    /// Every record set, as read.
    pub records: Vec<RecordSet>,
}

/// Everything read from Route 53 for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CurrentState {
    /// The hosted zones in `[route53] zones`, in configuration order.
    pub zones: Vec<ZoneState>,
    /// Every health check of the account, with tags.
    pub health_checks: Vec<ExistingHealthCheck>,
}

/// Strips the `/hostedzone/`, `/healthcheck/` or `/change/` prefix from an id.
pub(crate) fn bare_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// The canonical form of a name: lower case, trailing dot, Route 53 octal escapes
/// decoded and re-applied uniformly (`\052` and `*` both become `*`).
pub(crate) fn canonical_name(name: &str) -> String {
    let bytes = decode_escapes(name);
    let mut out = String::with_capacity(bytes.len() + 1);
    for &b in &bytes {
        push_canonical_byte(&mut out, b);
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The canonical form of a lower-case wire name (length-prefixed labels).
pub(crate) fn canonical_name_from_wire(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = wire
            .get(pos + 1..pos + 1 + usize::from(len))
            .unwrap_or_default();
        for &b in label {
            if b == b'.' {
                out.push_str("\\056");
            } else {
                push_canonical_byte(&mut out, b);
            }
        }
        out.push('.');
        pos += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

fn push_canonical_byte(out: &mut String, b: u8) {
    let b = b.to_ascii_lowercase();
    if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b'*') {
        out.push(char::from(b));
    } else {
        out.push_str(&format!("\\{b:03o}"));
    }
}

/// Decodes `\ooo` (octal, Route 53) escapes; `\X` for any other X stands for X.
fn decode_escapes(name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4);
            if let Some(d) = digits.filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))) {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
                continue;
            }
            if let Some(&next) = bytes.get(i + 1) {
                out.push(next);
                i += 2;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether `name` is `zone` or below it (both canonical).
pub(crate) fn is_in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}")) || zone == "."
}

/// `name` relative to `zone` (`@` for the apex), for short identifiers.
pub(crate) fn relative_name(name: &str, zone: &str) -> String {
    if name == zone {
        return "@".to_owned();
    }
    name.strip_suffix(zone)
        .and_then(|n| n.strip_suffix('.'))
        .unwrap_or(name.trim_end_matches('.'))
        .to_owned()
}

/// A stable 64-bit FNV-1a hash (for short identifiers that must not change between
/// releases, unlike `std`'s hasher).
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Quotes text as Route 53 TXT value strings: `"…"` pieces of at most 255 bytes,
/// separated by spaces, with `"` and `\` escaped and other non-printable bytes as
/// `\ooo`.
pub(crate) fn txt_value(text: &[u8]) -> String {
    let mut out = String::new();
    let chunks: Vec<&[u8]> = if text.is_empty() {
        vec![&[]]
    } else {
        text.chunks(255).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in *chunk {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\{b:03o}")),
            }
        }
        out.push('"');
    }
    out
}

/// Splits a Route 53 TXT value into its character strings (unescaped bytes). Returns
/// None when the value is not a sequence of quoted strings.
pub(crate) fn txt_strings(value: &str) -> Option<Vec<Vec<u8>>> {
    let bytes = value.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return Some(strings);
        }
        if bytes[i] != b'"' {
            return None;
        }
        i += 1;
        let mut current = Vec::new();
        loop {
            match *bytes.get(i)? {
                b'"' => {
                    i += 1;
                    break;
                }
                b'\\' => {
                    let digits = bytes.get(i + 1..i + 4);
                    if let Some(d) = digits.filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
                    {
                        let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                        current.push(u8::try_from(value).ok()?);
                        i += 4;
                    } else {
                        current.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
                b => {
                    current.push(b);
                    i += 1;
                }
            }
        }
        strings.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical() {
        assert_eq!(canonical_name("WWW.Example.COM"), "www.example.com.");
        assert_eq!(
            canonical_name("\\052.wild.example.com."),
            "*.wild.example.com."
        );
        assert_eq!(canonical_name("*.wild.example.com."), "*.wild.example.com.");
        assert_eq!(canonical_name("a\\072b.example."), "a\\072b.example.");
        let wire = crate::zone::name::wire_from_text("*.Wild.example.com.").unwrap();
        assert_eq!(canonical_name_from_wire(&wire), "*.wild.example.com.");
        assert_eq!(relative_name("www.example.com.", "example.com."), "www");
        assert_eq!(relative_name("example.com.", "example.com."), "@");
        assert!(is_in_zone("a.b.example.com.", "example.com."));
        assert!(!is_in_zone("a.bexample.com.", "example.com."));
    }

    #[test]
    fn txt_values_round_trip_and_split_at_255() {
        let long = vec![b'x'; 600];
        let value = txt_value(&long);
        let strings = txt_strings(&value).unwrap();
        assert_eq!(
            strings.iter().map(Vec::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        let odd = b"say \"hi\" \\ \x01";
        assert_eq!(txt_strings(&txt_value(odd)).unwrap(), vec![odd.to_vec()]);
        assert_eq!(txt_strings("unquoted"), None);
    }

    #[test]
    fn record_comparison_ignores_representation() {
        let a = RecordSet::simple(
            "WWW.example.com",
            RecordType::Aaaa,
            30,
            vec!["2001:DB8:0:0::1".into(), "2001:db8::2".into()],
        );
        let mut b = RecordSet::simple(
            "www.example.com.",
            RecordType::Aaaa,
            30,
            vec!["2001:db8::2".into(), "2001:db8::1".into()],
        );
        assert!(a.same_content(&b));
        b.ttl = Some(60);
        assert!(!a.same_content(&b));
    }

    #[test]
    fn types_parse_and_order_by_mnemonic() {
        assert_eq!(RecordType::from_mnemonic("aaaa"), RecordType::Aaaa);
        assert_eq!(RecordType::from_code(257), Some(RecordType::Caa));
        assert!(RecordType::A < RecordType::Aaaa && RecordType::Mx < RecordType::Txt);
        assert_eq!(
            RecordType::from_mnemonic("LOC"),
            RecordType::Other("LOC".into())
        );
    }
}
