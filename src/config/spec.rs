//! Raw configuration as written in TOML (`*Spec` types).
//!
//! These types only describe the file's shape: every struct denies unknown fields, and
//! numbers that have a range are read as wide integers so that validation (in
//! [`super::validate`]) can report "weight must be ≥ 0" instead of a serde type error.
//! See `config/example.toml` for every key with its type, default and range.

use std::collections::BTreeMap;

use serde::Deserialize;

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
    pub tcp_idle_timeout: Option<String>,
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
    /// TTL of answers in seconds.
    pub ttl: Option<i64>,
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
    pub all_down_ttl: Option<i64>,
}
