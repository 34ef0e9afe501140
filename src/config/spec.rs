//! Raw configuration as written in TOML (`*Spec` types).
//!
//! These types only describe the file's shape: every struct denies unknown fields, and
//! numbers that have a range are read as wide integers so that validation (in
//! [`super::validate`]) can report "weight must be ≥ 0" instead of a serde type error.
//! See `config/example.toml` for every key with its type, default and range.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use super::duration::DurationSpec;

mod checks;

pub(crate) use checks::read_check;
pub use checks::{
    CHECK_KEYS, CHECK_TYPES, CheckSpec, CheckTypeSpec, CommonCheckSpec, DnsCheckSpec,
    ExecCheckSpec, HttpCheckSpec, PostgresCheckSpec, TcpCheckSpec,
};

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServerSpec {
    /// Addresses to serve DNS on, UDP and TCP on each.
    pub listen: Option<Vec<String>>,
    /// UDP worker threads per listen address; 0 means one per available core.
    pub udp_workers: Option<i64>,
    /// Largest UDP response we send to EDNS clients.
    pub max_udp_payload: Option<i64>,
    /// How long an idle TCP connection is kept open.
    pub tcp_idle_timeout: Option<DurationSpec>,
    /// Most TCP connections open at once, per listen address.
    pub tcp_max_connections: Option<i64>,
    /// Most TCP connections open at once from one client address.
    pub tcp_max_connections_per_source: Option<i64>,
    /// Response rate limiting; present means on.
    pub rrl: Option<RrlSpec>,
    /// How UDP workers move datagrams: "batched" (recvmmsg/sendmmsg, the default on
    /// Linux) or "portable" (one recv_from/send_to per datagram).
    pub udp_io: Option<String>,
}

/// The `[server.rrl]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RrlSpec {
    /// Responses per second per bucket.
    pub rate: Option<i64>,
    /// Every Nth limited response is truncated instead of dropped (0: drop all).
    pub slip: Option<i64>,
    /// IPv4 prefix length clients are grouped by.
    pub ipv4_prefix: Option<i64>,
    /// IPv6 prefix length clients are grouped by.
    pub ipv6_prefix: Option<i64>,
    /// Client networks (CIDR) never limited.
    pub whitelist: Option<Vec<String>>,
    /// Buckets per UDP worker.
    pub table_size: Option<i64>,
}

/// The `[zones]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ZonesSpec {
    /// Directory holding the zone files, relative to the config file.
    pub directory: Option<String>,
    /// Zone files to load (names inside `directory`); default: every `*.zone` file.
    pub files: Option<Vec<String>>,
}

/// One `[regions.NAME]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RegionSpec {
    /// Client networks (CIDR) that geo records map to this region.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// The `[geo]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct GeoSpec {
    /// Region for clients that match no network.
    pub default_region: Option<String>,
    /// Whether EDNS Client Subnet (RFC 7871) is honoured.
    pub ecs: Option<bool>,
}

/// One `[pools.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PoolSpec {
    /// Region the pool's endpoints run in.
    pub region: Option<String>,
    /// Healthy endpoints needed for the pool to count as up.
    pub min_healthy: Option<i64>,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// Name of the `[checks.NAME]` that probes the endpoints (none: not probed).
    pub check: Option<String>,
    /// Traffic the pool can take, in relative units (> 0), when its endpoints
    /// declare none (spill-over).
    pub capacity: Option<f64>,
    /// Fraction of its capacity the pool may be driven to (0 < x ≤ 1; spill-over).
    pub max_load: Option<f64>,
}

/// One endpoint of a pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct EndpointSpec {
    /// IPv4/IPv6 address (A/AAAA records) or host name (CNAME records).
    pub address: String,
    /// Name used in status output and health reports; default: the address.
    pub name: Option<String>,
    /// Relative share of traffic; 0 drains the endpoint.
    pub weight: Option<i64>,
    /// Overrides health checking: `"up"` or `"down"`.
    pub force: Option<String>,
    /// Traffic the endpoint can take, in relative units (> 0; spill-over).
    pub capacity: Option<f64>,
}

/// One `[[records]]` entry: a dynamic name answered by a policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RecordSpec {
    /// Absolute owner name.
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// TTL of answers: seconds (`30`) or a duration (`"30s"`).
    pub ttl: Option<TtlSpec>,
    /// `failover`, `weighted`, `multivalue` or `geo`.
    pub policy: String,
    /// Pools in order (all policies but `geo`).
    pub pools: Option<Vec<String>>,
    /// Region name (or `default`) → ordered pools (`geo` only).
    pub geo: Option<BTreeMap<String, Vec<String>>>,
    /// Policy applied inside the pool list that `geo` picked.
    pub select: Option<String>,
    /// Most addresses in one answer.
    pub max_answers: Option<i64>,
    /// `fail-open`, `fallback` or `nodata`.
    pub all_down: Option<String>,
    /// Pool answered when everything is down and `all_down = "fallback"`.
    pub fallback_pool: Option<String>,
    /// TTL used while the record is in all-down mode.
    pub all_down_ttl: Option<TtlSpec>,
    /// Shortest TTL while an endpoint of the record is in doubt (default 1, ≤ ttl).
    pub min_ttl: Option<TtlSpec>,
    /// Health at start-up before any probe or peer reports: `last-known` or `assume-up`.
    pub cold_start: Option<String>,
    /// How the Route 53 agent handles the record: `native`, `mirror` or `off`.
    pub route53: Option<String>,
    /// `policy = "primary"`: what is answered while two endpoints claim primary,
    /// `hold` (the last agreed primary; default) or `none` (NODATA).
    pub on_conflict: Option<String>,
    /// Failover gates (RPO guard): pool → a pool (typically its database, checked by
    /// a `postgres` check with `max_lag`) that must be up before traffic moves to it.
    pub gates: Option<BTreeMap<String, String>>,
    /// Capacity-aware spill-over: a failed pool's share goes to the others by
    /// their headroom (failover and weighted records).
    pub spill: Option<bool>,
    /// The record's peak traffic in capacity units (spill-over).
    pub demand: Option<f64>,
    /// Failover records: the fraction of answers (0 < x ≤ 0.5) sent to the next
    /// pool while the first is healthy.
    pub trickle: Option<f64>,
    /// Latency steering: a better pool must be faster by more than this (default 10ms).
    pub min_gain: Option<DurationSpec>,
    /// Latency steering: ... and by more than this percentage (default 10).
    pub min_gain_percent: Option<f64>,
    /// Latency steering: a better pool must stay better this long, and a client
    /// region moves at most once per `hold` (default 60s).
    pub hold: Option<DurationSpec>,
}

/// One `[[safety]]` rule: at least `min_in_service` of `pools` stay in service
/// whatever operators drain or force down (Route 53 ARC's assertion rule).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SafetySpec {
    /// Name shown when the rule refuses a change (default `safety[N]`).
    pub name: Option<String>,
    /// The pools the rule guards.
    pub pools: Vec<String>,
    /// How many of them must stay in service (default 1).
    pub min_in_service: Option<i64>,
}

/// A TTL: whole seconds (`30`) or a duration with a unit (`"30s"`, `"5m"`), as every
/// other duration of the file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlSpec {
    /// Seconds.
    Seconds(i64),
    /// A duration (`250ms`, `2s`, `1m30s`); it must be whole seconds.
    Duration(DurationSpec),
}

impl<'de> Deserialize<'de> for TtlSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TtlSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a TTL: seconds (30) or a duration (\"30s\", \"5m\")")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TtlSpec, E> {
                Ok(TtlSpec::Seconds(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TtlSpec, E> {
                Ok(TtlSpec::Seconds(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TtlSpec, E> {
                Ok(TtlSpec::Duration(DurationSpec::from(v)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// An expected HTTP status: a code (`200`) or a range (`"200-399"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One status code.
    Code(i64),
    /// `"low-high"` or a single code as text.
    Range(String),
}

/// `[checks.NAME.damping]`: flap damping (see `health::damping`).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DampingSpec {
    /// Whether damping is on (default true).
    pub enabled: Option<bool>,
    /// Penalty added at each outage (default 1000).
    pub penalty: Option<f64>,
    /// Time for the penalty to halve (default 5s).
    pub half_life: Option<DurationSpec>,
    /// Penalty at which the way back is withheld (default 1500).
    pub suppress: Option<f64>,
    /// Penalty below which a withheld endpoint may come back (default 750).
    pub reuse: Option<f64>,
    /// Longest suppression after the last outage (default 30s).
    pub max_suppress: Option<DurationSpec>,
}

/// Route 53 health-check settings of a check.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Route53CheckSpec {
    /// Seconds between Route 53 checks: 10 or 30 (default 30).
    pub request_interval: Option<i64>,
    /// Consecutive failures before Route 53 calls the endpoint unhealthy (1–10; default: `fall`).
    pub failure_threshold: Option<i64>,
    /// Route 53 checker regions (default: Route 53's own choice).
    pub regions: Option<Vec<String>>,
}

/// The `[health]` section: vantage points, quorum and persistence.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct HealthSpec {
    /// This process's vantage point (a `[vantages.NAME]`); `--vantage` overrides.
    pub vantage: Option<String>,
    /// Servers (admin base URLs) every vantage point reports to.
    pub servers: Option<Vec<String>>,
    /// Vantage points that must agree to change an endpoint's state (default: a
    /// majority of the configured vantage points).
    pub down_votes: Option<i64>,
    /// `hold` (default) or `local`: what a server does while it hears fewer vantage
    /// points than `down_votes`.
    pub isolation: Option<String>,
    /// Distinct vantage regions the down votes must come from (default 1).
    pub down_regions: Option<i64>,
    /// Reports older than this are ignored (default 10s).
    pub staleness: Option<DurationSpec>,
    /// How often verdicts are pushed to servers (default 500ms).
    pub push_interval: Option<DurationSpec>,
    /// File where health state is saved and restored (default: none).
    pub state_file: Option<String>,
    /// Default for records' `cold_start` (default `last-known`).
    pub cold_start: Option<String>,
    /// An override in force longer than this is called out (default 4h; 0s: never).
    pub override_warn_after: Option<DurationSpec>,
    /// Time constant of the EWMA smoothing each endpoint's round-trip time
    /// (latency steering; default 10s).
    pub rtt_window: Option<DurationSpec>,
}

/// One `[vantages.NAME]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct VantageSpec {
    /// Region the vantage point probes from.
    pub region: Option<String>,
    /// Shared secret signing its reports (prefer `secret_env` or `secret_file`).
    pub secret: Option<String>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
    /// File holding the secret.
    pub secret_file: Option<String>,
    /// Local address its probes are sent from (multi-homed hosts).
    pub source_address: Option<String>,
    /// `server` (may exchange operator overrides) or `agent` (reports only).
    pub role: Option<VantageRoleSpec>,
}

/// What a vantage point is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VantageRoleSpec {
    /// A server: serves DNS and exchanges operator overrides with its peers.
    Server,
    /// A probe agent: its reports count toward quorum, nothing else.
    Agent,
}

/// The `[admin]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct AdminSpec {
    /// HTTP listen address(es) of the admin API (reports, status, metrics).
    pub listen: Option<OneOrMany>,
    /// Bearer tokens: with any, every call but the public ones needs one.
    #[serde(default)]
    pub tokens: Vec<TokenSpec>,
    /// Paths open without a token (`metrics`, `healthz`, `readyz`, `status`).
    pub public: Option<Vec<String>>,
    /// TLS for the admin listeners.
    pub tls: Option<TlsSpec>,
    /// Most open admin connections (also capped by a quarter of the fd limit).
    pub max_connections: Option<i64>,
    /// Most open admin connections from one client address.
    pub max_connections_per_source: Option<i64>,
    /// Time a client has to send a request's headers (from connecting, or since the
    /// previous answer on a kept-alive connection).
    pub header_timeout: Option<DurationSpec>,
    /// Time a client has to send a request's body.
    pub body_timeout: Option<DurationSpec>,
    /// Time a connection may make no progress (reading or writing) before it is closed.
    pub idle_timeout: Option<DurationSpec>,
    /// Time a TLS handshake may take.
    pub handshake_timeout: Option<DurationSpec>,
    /// Host names (besides addresses, `localhost`, this host's name and the names in
    /// `[health] servers`) clients may use to reach the admin API.
    pub names: Option<Vec<String>>,
}

/// A string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values.
    pub fn values(&self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one.clone()],
            Self::Many(many) => many.clone(),
        }
    }
}

/// One `[[admin.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TokenSpec {
    /// Name shown in logs and overrides ("who").
    pub name: String,
    /// `read` or `operate`.
    pub role: RoleSpec,
    /// File holding the token (its first line).
    pub file: String,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RoleSpec {
    /// Read status, overrides, events, explain.
    Read,
    /// Also change overrides and reload.
    Operate,
}

/// `[admin.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TlsSpec {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

/// The `[route53]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Route53Spec {
    /// AWS region of the API client (default us-east-1; Route 53 is global).
    pub region: Option<String>,
    /// API endpoint override (tests, moto).
    pub endpoint_url: Option<String>,
    /// Owner id written into ownership TXT records and health-check tags.
    pub owner_id: Option<String>,
    /// Default mode of records: `native` or `mirror` (default native).
    pub mode: Option<String>,
    /// Sustained API requests per second (default 5).
    pub max_requests_per_second: Option<f64>,
    /// API request burst (default 10).
    pub burst: Option<i64>,
    /// Quiet time before mirror mode writes a health change (default 2s).
    pub debounce: Option<DurationSpec>,
    /// Longest wait for a change to become INSYNC (default 120s).
    pub change_timeout: Option<DurationSpec>,
    /// Interval of full reconciliation in `route53 sync` (default 60s).
    pub sync_interval: Option<DurationSpec>,
    /// Most owned record sets (percent) one plan may update without `--force` (30).
    pub max_update_percent: Option<i64>,
    /// Most owned record sets (percent) one plan may delete without `--force` (30).
    pub max_delete_percent: Option<i64>,
    /// Hosted zones kept in sync.
    #[serde(default)]
    pub zones: Vec<Route53ZoneSpec>,
}

/// One hosted zone of `[route53]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Route53ZoneSpec {
    /// Zone name (one of the zones served).
    pub zone: String,
    /// Hosted zone id (default: looked up by name).
    pub hosted_zone_id: Option<String>,
    /// Also sync the static records of the zone file (default false).
    pub sync_static: Option<bool>,
}

/// The `[dnstap]` section: query and response logging to a dnstap consumer.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DnstapSpec {
    /// The consumer's Unix socket (required).
    pub socket: Option<String>,
    /// `identity` written in every message (default: the host name).
    pub identity: Option<String>,
    /// `version` written in every message (default: `failoverd <version>`).
    pub version: Option<String>,
    /// Log queries (default true).
    pub log_queries: Option<bool>,
    /// Log responses (default true).
    pub log_responses: Option<bool>,
    /// Messages buffered for the consumer before they are dropped (default 16384).
    pub queue: Option<i64>,
}

/// The `[transfer]` section: zone transfers to secondaries (hidden primary).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TransferSpec {
    /// Versions kept per zone for IXFR (default 64, 1–10000).
    pub journal_versions: Option<i64>,
    /// File where each zone's last serial and content hash are saved (default: next
    /// to `[health] state_file`, with `.serials.json` appended).
    pub state_file: Option<String>,
    /// NOTIFY attempts per secondary address and change (default 5, 1–20).
    pub notify_attempts: Option<i64>,
    /// Wait for a NOTIFY response before the first retry; doubles each time (default 1s).
    pub notify_timeout: Option<DurationSpec>,
    /// How far a signed request's time may be from ours, whatever its Fudge (default
    /// 300s, 1s–65535s).
    pub tsig_window: Option<DurationSpec>,
    /// Address NOTIFYs leave from (default: a DNS listen address of the secondary's
    /// address family).
    pub notify_source: Option<String>,
    /// TSIG keys.
    #[serde(default)]
    pub keys: Vec<TsigKeySpec>,
    /// The secondaries.
    #[serde(default)]
    pub secondaries: Vec<SecondarySpec>,
}

/// One `[[transfer.keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TsigKeySpec {
    /// Key name (a DNS name, as the secondaries know it).
    pub name: String,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    pub algorithm: Option<String>,
    /// The secret, base64 (prefer `secret_file`).
    pub secret: Option<String>,
    /// File holding the base64 secret (first line).
    pub secret_file: Option<String>,
}

/// One `[[transfer.secondaries]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SecondarySpec {
    /// Name in logs and metrics.
    pub name: String,
    /// Zones it may transfer and is notified of (default: every zone served).
    pub zones: Option<Vec<String>>,
    /// Addresses (ip:port) sent a NOTIFY when a zone changes.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Addresses or prefixes allowed to transfer (default: the `notify` addresses).
    pub allow: Option<Vec<String>>,
    /// Name of a `[[transfer.keys]]` key its requests must be signed with (and
    /// NOTIFYs are signed with).
    pub key: Option<String>,
}

/// The `[dnssec]` section: signing of the listed zones ahead of time.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DnssecSpec {
    /// Directory of the key files (`failoverd dnssec keygen`), relative to the
    /// config file (default `keys`).
    pub key_directory: Option<String>,
    /// Zones to sign (absolute names; default none: DNSSEC off).
    #[serde(default)]
    pub zones: Vec<String>,
    /// Authenticated denial: `nsec3` (default; RFC 9276 parameters) or `nsec`.
    pub nsec: Option<String>,
    /// NSEC3 opt-out: no NSEC3 record for delegations without DS (default false; for
    /// zones of many unsigned delegations).
    pub opt_out: Option<bool>,
    /// Signature lifetime from signing to expiry (default `14d`).
    pub signature_validity: Option<DurationSpec>,
    /// Re-sign after this long (default `7d`, below `signature_validity`).
    pub refresh: Option<DurationSpec>,
    /// Inception backdated by this much for clock skew (default `1h`).
    pub inception_offset: Option<DurationSpec>,
    /// TTL of DNSKEY, CDS and CDNSKEY (default `1h`).
    pub dnskey_ttl: Option<DurationSpec>,
}
