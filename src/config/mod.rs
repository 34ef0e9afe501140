//! Configuration: TOML text → [`spec`] types (serde) → validated [`Config`].
//!
//! ```text
//!   failoverd.toml ──parse──▶ *Spec (shape only) ──validate──▶ Config (typed, indexed)
//!                    every syntax/shape error      every semantic error, each with its
//!                    with key path and line        key path and line; warnings apart
//! ```
//!
//! Loading never stops at the first problem: each section (and each pool, region and
//! record) is deserialized on its own so one mistake does not hide the next.
//! Everything that needs the zone data (a dynamic name outside every zone, a clash
//! with a static record) is checked later by [`crate::zone::bind`].

mod checks;
pub mod defaults;
mod diagnostics;
mod duration;
mod health;
mod pools;
mod records;
mod route53;
pub mod secret_file;
mod server;
pub mod spec;
mod validate;
mod zones;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use self::defaults::{
    DEFAULT_OVERRIDE_WARN_AFTER, DNSTAP_QUEUE, dnssec as dnssec_defaults,
    postgres as postgres_defaults, transfer as transfer_defaults,
};
pub use self::diagnostics::{Diagnostic, Diagnostics, KeyPath, Segment, Severity};
pub use self::duration::{DurationSpec, parse_duration};
use crate::model::{
    CheckIndex, DynamicType, EndpointIndex, EndpointTarget, HealthState, PoolIndex, RegionIndex,
    Ttl, VantageIndex, Weight,
};

/// The configuration compiled into the binary (`config/failoverd.toml`), used by
/// `failoverd serve` without `--config`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/failoverd.toml");

/// Zone files compiled into the binary, used when the embedded configuration runs
/// somewhere without a `zones/` directory.
pub const EMBEDDED_ZONES: &[(&str, &str)] = &[(
    "gslb.example.com.zone",
    include_str!("../../zones/gslb.example.com.zone"),
)];

/// Current configuration format version.
pub const VERSION: i64 = 1;

/// Most vantage points a config may name (votes are counted in a 64-bit set).
pub const MAX_VANTAGES: usize = 64;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read. (The cause is in the message, not chained as a
    /// source too, so that a printed chain says it once.)
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The configuration has errors (all of them are listed).
    #[error("invalid configuration:\n{0}")]
    Invalid(Diagnostics),
}

/// Where a configuration came from; relative paths in it resolve against `base_dir`.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    /// The file, or `None` for the embedded default.
    pub path: Option<PathBuf>,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// The TOML text.
    pub text: String,
    /// Who reads it (decides which secrets must be present).
    pub reader: Reader,
}

/// Who reads a configuration. A server verifies every vantage point's reports, so it
/// needs every secret; a probe agent signs only its own, so the others may be absent
/// from its copy (a `secret_env` that is not set there is no error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reader {
    /// `failoverd serve` (and `check-config`).
    #[default]
    Server,
    /// `failoverd probe` for this vantage point (None: `[health] vantage`).
    Agent {
        /// `--vantage`, if given.
        vantage: Option<String>,
    },
}

impl ConfigSource {
    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self {
            path: Some(path.to_owned()),
            base_dir,
            text,
            reader: Reader::Server,
        })
    }

    /// The embedded default, resolving paths as if it were `./config/failoverd.toml`.
    pub fn embedded() -> Self {
        Self {
            path: None,
            base_dir: PathBuf::from("config"),
            text: EMBEDDED_DEFAULT.to_owned(),
            reader: Reader::Server,
        }
    }

    /// A configuration given as text (tests, tools), with paths relative to `base_dir`.
    pub fn from_text(text: impl Into<String>, base_dir: impl Into<PathBuf>) -> Self {
        Self {
            path: None,
            base_dir: base_dir.into(),
            text: text.into(),
            reader: Reader::Server,
        }
    }

    /// The same source, read by `reader`.
    pub fn read_by(mut self, reader: Reader) -> Self {
        self.reader = reader;
        self
    }

    /// Whether this is the configuration compiled into the binary.
    pub fn is_embedded(&self) -> bool {
        self.path.is_none() && self.text == EMBEDDED_DEFAULT
    }

    /// Name used in messages.
    pub fn display_name(&self) -> PathBuf {
        match &self.path {
            Some(path) => path.clone(),
            None if self.is_embedded() => PathBuf::from("<embedded config/failoverd.toml>"),
            None => PathBuf::from("<config>"),
        }
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from.
    pub source: ConfigSource,
    /// Listeners and transport limits.
    pub server: ServerConfig,
    /// Which zone files to load.
    pub zones: ZonesConfig,
    /// Regions, indexed by [`RegionIndex`].
    pub regions: Vec<Region>,
    /// Geo mapping settings.
    pub geo: GeoConfig,
    /// Pools, indexed by [`PoolIndex`].
    pub pools: Vec<Pool>,
    /// Every endpoint of every pool, indexed by [`EndpointIndex`].
    pub endpoints: Vec<Endpoint>,
    /// Dynamic records, indexed by [`crate::model::RecordIndex`].
    pub records: Vec<DynamicRecord>,
    /// Health checks, indexed by [`CheckIndex`].
    pub checks: Vec<Check>,
    /// Vantage points, indexed by [`VantageIndex`].
    pub vantages: Vec<Vantage>,
    /// Quorum, reporting and persistence settings.
    pub health: HealthConfig,
    /// The admin HTTP API.
    pub admin: AdminConfig,
    /// The Route 53 sync agent, if configured.
    pub route53: Option<Route53Config>,
    /// Zone transfers to secondaries (no secondaries: off).
    pub transfer: TransferConfig,
    /// DNSSEC signing (no zones: off).
    pub dnssec: DnssecConfig,
    /// dnstap logging (None: off).
    pub dnstap: Option<DnstapConfig>,
    /// `[[safety]]` rules every operator override is checked against.
    pub safety: Vec<SafetyRule>,
}

/// A `[[safety]]` rule: at least `min_in_service` of `pools` stay in service — a pool
/// is in service while at least `min_healthy` of its endpoints are neither drained
/// nor forced down (by the configuration or an operator), whatever the probes say. An
/// override that would leave fewer is refused unless made with `allow_empty`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyRule {
    /// Its name (`name`, or `safety[N]`).
    pub name: String,
    /// The pools guarded.
    pub pools: Vec<PoolIndex>,
    /// How many must stay in service (1 ..= pools).
    pub min_in_service: u32,
}

/// How an endpoint is probed.
#[derive(Clone, Debug)]
pub struct Check {
    /// Check name.
    pub name: String,
    /// What is probed.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Probe timeout (< interval).
    pub timeout: Duration,
    /// Time between probes while an endpoint is in transition (fast confirm).
    pub fast_interval: Duration,
    /// Time between probes while an endpoint is down.
    pub down_interval: Duration,
    /// Largest random delay added to each probe.
    pub jitter: Duration,
    /// Consecutive successes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Minimum time down before coming back up.
    pub hold: Duration,
    /// Flap damping (None: off).
    pub damping: Option<DampingRules>,
    /// Time over which an endpoint coming back ramps to its full share (0: off).
    pub slow_start: Duration,
    /// Route 53 health-check settings (native mode).
    pub route53: Route53Check,
}

/// Flap-damping settings of a check (see [`crate::health::damping`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DampingRules {
    /// Added at every outage (transition to down).
    pub penalty: f64,
    /// Time for the penalty to halve.
    pub half_life: Duration,
    /// Penalty at which the endpoint is suppressed.
    pub suppress: f64,
    /// Penalty below which a suppressed endpoint may come back.
    pub reuse: f64,
    /// Longest suppression after the last outage.
    pub max_suppress: Duration,
}

impl DampingRules {
    /// The defaults (see the module docs).
    pub const DEFAULT: Self = Self {
        penalty: 1000.0,
        half_life: Duration::from_secs(5),
        suppress: 1500.0,
        reuse: 750.0,
        max_suppress: Duration::from_secs(30),
    };

    /// The highest penalty: the one that decays to `reuse` in `max_suppress`.
    pub fn ceiling(&self) -> f64 {
        let half_lives = self.max_suppress.as_secs_f64() / self.half_life.as_secs_f64().max(1e-3);
        (self.reuse * half_lives.exp2()).max(self.suppress)
    }
}

impl Default for DampingRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The probe of a check.
#[derive(Clone, Debug)]
pub enum CheckKind {
    /// HTTP or HTTPS request.
    Http(HttpCheck),
    /// TCP connect.
    Tcp {
        /// Port.
        port: u16,
    },
    /// DNS query to the endpoint.
    Dns(DnsCheck),
    /// A program; exit status 0 means up.
    Exec(ExecCheck),
    /// A PostgreSQL login and `pg_is_in_recovery()` (plus replay lag on a replica).
    Postgres(PostgresCheck),
}

impl CheckKind {
    /// Short name (`http`, `https`, `tcp`, `dns`, `exec`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http(h) if h.tls => "https",
            Self::Http(_) => "http",
            Self::Tcp { .. } => "tcp",
            Self::Dns(_) => "dns",
            Self::Exec(_) => "exec",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Port probed (exec: the optional `port` passed in `FAILOVERD_PORT`).
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Http(h) => Some(h.port),
            Self::Tcp { port } => Some(*port),
            Self::Dns(d) => Some(d.port),
            Self::Postgres(p) => Some(p.port),
            Self::Exec(e) => e.port,
        }
    }
}

/// An HTTP(S) check.
#[derive(Clone, Debug)]
pub struct HttpCheck {
    /// HTTPS.
    pub tls: bool,
    /// Port.
    pub port: u16,
    /// Method.
    pub method: String,
    /// Path (starts with `/`).
    pub path: String,
    /// Host header and TLS server name (None: the endpoint's address).
    pub host: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Accepted statuses.
    pub expect_status: Vec<(u16, u16)>,
    /// Required body text (first 64 KiB).
    pub expect_body: Option<String>,
    /// Validate the certificate chain and name.
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted besides the system store.
    pub ca_file: Option<PathBuf>,
}

/// An `exec` check: a program run as a supervisor would run it (its own process
/// group, killed whole on timeout, a cleared environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecCheck {
    /// Program and arguments. An argument that is exactly `{address}` or `{endpoint}`
    /// is replaced by the endpoint's address or `pool/name`; nothing is spliced into a
    /// larger argument (the validator refuses that).
    pub command: Vec<String>,
    /// Names of variables passed through from failoverd's environment (the child's
    /// environment is otherwise cleared but for `PATH`, `LANG` and `FAILOVERD_*`).
    pub env: Vec<String>,
    /// Port passed in `FAILOVERD_PORT`, if the check names one.
    pub port: Option<u16>,
}

/// A DNS check.
#[derive(Clone, Debug)]
pub struct DnsCheck {
    /// Port.
    pub port: u16,
    /// Name queried.
    pub query_name: String,
    /// Type queried (code).
    pub query_type: u16,
    /// Expected response code.
    pub expect_rcode: u16,
    /// Whether an answer record is required.
    pub expect_answer: bool,
}

/// Which database role passes a `postgres` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbRole {
    /// Only a primary (not in recovery).
    Primary,
    /// Only a replica (in recovery) within `max_lag`.
    Replica,
    /// A primary, or a replica within `max_lag`.
    Any,
}

impl DbRole {
    /// Every role with its configuration name.
    pub const ALL: [(&'static str, Self); 3] = [
        ("primary", Self::Primary),
        ("replica", Self::Replica),
        ("any", Self::Any),
    ];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
            Self::Any => "any",
        }
    }
}

/// TLS of a `postgres` check (libpq's `sslmode` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS; any certificate is accepted (the handshake is still verified).
    Require,
    /// TLS; the certificate chain (system roots plus `ca_file`) and host name are checked.
    VerifyFull,
}

/// A `postgres` check.
#[derive(Clone, Debug)]
pub struct PostgresCheck {
    /// Port.
    pub port: u16,
    /// User to log in as.
    pub user: String,
    /// Database connected to.
    pub database: String,
    /// Password (from `password_file` or `password_env`; None: none sent).
    pub password: Option<Secret>,
    /// Which role passes.
    pub role: DbRole,
    /// Longest replay lag of a replica that passes (None: any lag).
    pub max_lag: Option<Duration>,
    /// TLS.
    pub sslmode: SslMode,
    /// TLS server name (None: the endpoint's address).
    pub host: Option<String>,
    /// Extra CA certificates (PEM) for `verify-full`.
    pub ca_file: Option<PathBuf>,
}

/// Route 53 health-check settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route53Check {
    /// 10 or 30 seconds.
    pub request_interval: u8,
    /// 1–10.
    pub failure_threshold: u8,
    /// Checker regions (empty: Route 53's default).
    pub regions: Vec<String>,
}

/// A vantage point: a server or probe agent whose verdicts count toward quorum.
#[derive(Clone, Debug)]
pub struct Vantage {
    /// Name.
    pub name: String,
    /// Region it probes from.
    pub region: Option<RegionIndex>,
    /// Secret its reports are signed with (None: its reports are not accepted).
    pub secret: Option<Secret>,
    /// Local address its probes are sent from.
    pub source_address: Option<std::net::IpAddr>,
    /// What it is, if the config says (None: a server once it answers as one at a URL
    /// of `[health] servers`).
    pub role: Option<VantageRole>,
}

/// What a vantage point is: who may exchange operator overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VantageRole {
    /// A server: its override exchange is taken.
    Server,
    /// A probe agent: its reports count toward quorum; override exchange and peer
    /// state are refused (403).
    Agent,
}

/// A secret that never appears in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What health a record's endpoints start with before any report arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColdStart {
    /// The state saved before the restart (or the peers'), else up.
    LastKnown,
    /// Up, whatever was saved.
    AssumeUp,
}

/// What a server does while it hears fewer vantage points than a quorum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationMode {
    /// Keep every endpoint's last decided state: silence and a lonely opinion never
    /// flip an answer.
    #[default]
    Hold,
    /// Let the vantage points still heard (alone: this server's own probes) decide by
    /// their majority.
    Local,
}

/// Quorum, reporting and persistence settings.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// This process's vantage point, if it is one.
    pub vantage: Option<VantageIndex>,
    /// Admin base URLs of the servers verdicts are pushed to.
    pub servers: Vec<String>,
    /// Votes needed either way (None: a majority of the configured vantage points).
    pub down_votes: Option<u32>,
    /// What an isolated server does.
    pub isolation: IsolationMode,
    /// Distinct vantage regions the down votes must span.
    pub down_regions: u32,
    /// Age after which a report is ignored.
    pub staleness: Duration,
    /// How often verdicts are pushed.
    pub push_interval: Duration,
    /// Where health state is saved.
    pub state_file: Option<PathBuf>,
    /// Default cold-start behaviour.
    pub cold_start: ColdStart,
    /// An override in force longer than this is called out in status, on the status
    /// page and by `failoverd_override_age_seconds` against
    /// `failoverd_override_warn_after_seconds` (zero: never).
    pub override_warn_after: Duration,
    /// Time constant of the EWMA smoothing each endpoint's round-trip time.
    pub rtt_window: Duration,
}

/// The admin HTTP API.
#[derive(Clone, Debug, Default)]
pub struct AdminConfig {
    /// Listen addresses (empty: no admin API).
    pub listen: Vec<SocketAddr>,
    /// Who may call what.
    pub access: AdminAccess,
    /// TLS certificate chain and key (PEM files), if the listeners speak HTTPS.
    pub tls: Option<TlsFiles>,
    /// Connection caps and timeouts of every admin listener.
    pub limits: AdminLimits,
    /// Host names (lower case) clients may name in `Host` besides addresses,
    /// `localhost`, this host's name and the names in `[health] servers`.
    pub names: Vec<String>,
}

/// Where the embedded default configuration keeps its state:
/// `$XDG_STATE_HOME/failoverd/state.json`, else `~/.local/state/failoverd/state.json`
/// (None without either variable: nothing is kept).
pub fn default_state_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state")
        }
    };
    Some(base.join("failoverd/state.json"))
}

/// The host part of a URL authority (`host:port`, `[v6]:port`), lower case, without
/// a trailing dot.
pub fn host_of_authority(authority: &str) -> String {
    let authority = authority.trim();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if authority.matches(':').count() > 1 {
        authority
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Connection caps and timeouts of the admin listeners: a client that connects and
/// says nothing, trickles its headers or stops reading is cut off, and no client
/// address holds more than its share of connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    /// Most open connections (the listener also keeps below a quarter of the fd limit).
    pub max_connections: usize,
    /// Most open connections from one client address.
    pub max_connections_per_source: usize,
    /// Time to send a request's headers (and the keep-alive idle time between requests).
    pub header_timeout: std::time::Duration,
    /// Time to send a request's body.
    pub body_timeout: std::time::Duration,
    /// Time a connection may make no progress at all.
    pub idle_timeout: std::time::Duration,
    /// Time a TLS handshake may take.
    pub handshake_timeout: std::time::Duration,
}

impl AdminLimits {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        max_connections: 256,
        max_connections_per_source: 32,
        header_timeout: std::time::Duration::from_secs(5),
        body_timeout: std::time::Duration::from_secs(10),
        idle_timeout: std::time::Duration::from_secs(60),
        handshake_timeout: std::time::Duration::from_secs(3),
    };
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Tokens of the admin API and the calls open without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminAccess {
    /// Bearer tokens (none: calls are open, changes are taken from loopback only).
    pub tokens: Vec<AdminToken>,
    /// Calls open without a token when tokens are set.
    pub public: Vec<PublicPath>,
    /// Host names (lower case, no port) a request's `Host` may name besides
    /// addresses, `localhost` and this host's name: `[admin] names` and the hosts of
    /// `[health] servers`.
    pub hosts: Vec<String>,
}

/// A bearer token of the admin API.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Its name ("who" in overrides and logs).
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
    /// SHA-256 of the token (compared in constant time; the token itself is not kept).
    pub digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminRole {
    /// Read status, overrides, events, explain.
    Read,
    /// Also change overrides and reload.
    Operate,
}

/// A call that may be opened without a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicPath {
    /// `/metrics`.
    Metrics,
    /// `/healthz`.
    Healthz,
    /// `/readyz`.
    Readyz,
    /// `/status`, `/v1/status`, `/v1/events` and the status page (which reads both).
    Status,
}

impl PublicPath {
    /// Every public path with its config name.
    pub const ALL: [(&'static str, Self); 4] = [
        ("metrics", Self::Metrics),
        ("healthz", Self::Healthz),
        ("readyz", Self::Readyz),
        ("status", Self::Status),
    ];
}

/// PEM files of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// How the Route 53 agent handles a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route53Mode {
    /// Route 53 routing policies and health checks do the failover.
    Native,
    /// failoverd's verdicts decide; plain record sets are rewritten on change.
    Mirror,
    /// Not synced.
    Off,
}

/// The Route 53 sync agent's settings.
#[derive(Clone, Debug)]
pub struct Route53Config {
    /// AWS region of the client.
    pub region: String,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Ownership id.
    pub owner_id: String,
    /// Sustained requests per second.
    pub max_requests_per_second: f64,
    /// Request burst.
    pub burst: u32,
    /// Mirror-mode debounce.
    pub debounce: Duration,
    /// Bound on waiting for INSYNC.
    pub change_timeout: Duration,
    /// Full reconciliation interval of `route53 sync`.
    pub sync_interval: Duration,
    /// The safety guard: most owned record sets (percent) a plan may update, and
    /// delete, without `--force` (health-driven mirror changes are not counted).
    pub max_update_percent: u32,
    /// See `max_update_percent`.
    pub max_delete_percent: u32,
    /// Hosted zones.
    pub zones: Vec<Route53Zone>,
}

/// A hosted zone kept in sync.
#[derive(Clone, Debug)]
pub struct Route53Zone {
    /// Zone name, lower case with trailing dot.
    pub zone: String,
    /// Hosted zone id (None: look up by name).
    pub hosted_zone_id: Option<String>,
    /// Whether static zone-file records are synced too.
    pub sync_static: bool,
}

/// How UDP workers receive and send datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UdpIo {
    /// `recvmmsg`/`sendmmsg`, many datagrams per system call (Linux; elsewhere the
    /// portable path is used instead).
    #[default]
    Batched,
    /// One `recv_from`/`send_to` per datagram: any platform.
    Portable,
    /// AF_XDP (Linux, needs CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW): an XDP program
    /// steers IPv4 DNS datagrams past the kernel's UDP stack into the server's own
    /// rings; the batched sockets serve the rest (IPv6, fragments, large answers).
    Xdp,
}

/// The `[server]` section, validated.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// DNS listen addresses (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// How UDP workers move datagrams.
    pub udp_io: UdpIo,
    /// UDP worker threads per listen address (≥ 1).
    pub udp_workers: usize,
    /// Largest UDP response sent to EDNS clients (512–4096).
    pub max_udp_payload: u16,
    /// How long an idle TCP connection stays open.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections open at once, per listen address.
    pub tcp_max_connections: usize,
    /// Most TCP connections open at once from one client address.
    pub tcp_max_connections_per_source: usize,
    /// Response rate limiting of UDP answers (`None`: off, the default).
    pub rrl: Option<RrlConfig>,
}

impl ServerConfig {
    /// Default of `tcp_idle_timeout`.
    pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of `tcp_max_connections`.
    pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;
    /// Default of `tcp_max_connections_per_source`.
    pub const DEFAULT_TCP_MAX_CONNECTIONS_PER_SOURCE: usize = 32;
}

/// The `[server.rrl]` section, validated: response rate limiting (as Knot's and
/// NSD's RRL) of UDP answers, per client prefix, response class and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrlConfig {
    /// Responses per second allowed per bucket (≥ 1); one second's worth is the burst.
    pub rate: u32,
    /// Every `slip`-th limited response goes out truncated (TC, no records) so real
    /// clients retry over TCP; 0 drops every limited response, 1 truncates every one.
    pub slip: u32,
    /// Prefix length an IPv4 client is bucketed by.
    pub ipv4_prefix: u8,
    /// Prefix length an IPv6 client is bucketed by.
    pub ipv6_prefix: u8,
    /// Client networks never limited.
    pub whitelist: Vec<IpNet>,
    /// Buckets per UDP worker (a power of two).
    pub table_size: usize,
}

impl RrlConfig {
    /// The defaults of every key (what an empty `[server.rrl]` table means).
    pub const DEFAULT: Self = Self {
        rate: 20,
        slip: 2,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
        whitelist: Vec::new(),
        table_size: 65536,
    };
}

/// The `[zones]` section, validated.
#[derive(Clone, Debug)]
pub struct ZonesConfig {
    /// Directory of the zone files (resolved against the config's directory).
    pub directory: PathBuf,
    /// Files to load, or `None` for every `*.zone` file in `directory`.
    pub files: Option<Vec<String>>,
    /// Whether the embedded zone files may stand in for a missing directory.
    pub use_embedded: bool,
}

/// A region: where pools run, and (for geo records) where clients are.
#[derive(Clone, Debug)]
pub struct Region {
    /// Region name.
    pub name: String,
    /// Client networks mapped to this region.
    pub networks: Vec<IpNet>,
}

/// The `[geo]` section, validated.
#[derive(Clone, Debug)]
pub struct GeoConfig {
    /// Region of clients that match no network.
    pub default_region: Option<RegionIndex>,
    /// Whether EDNS Client Subnet is honoured.
    pub ecs: bool,
}

/// A pool of endpoints.
#[derive(Clone, Debug)]
pub struct Pool {
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
pub struct Endpoint {
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
        /// Pools per region (indexed by [`RegionIndex`]); `None` uses `default`.
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
    /// left out of [`Config::records`], so indices there can differ).
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
    pub min_gain: Duration,
    /// ... and by more than this percentage of the current pool's RTT.
    pub min_gain_percent: f64,
    /// ... for this long; and a client region moves at most once per `hold`.
    pub hold: Duration,
}

impl DynamicRecord {
    /// The gate of `pool`, if it has one.
    pub fn gate_of(&self, pool: PoolIndex) -> Option<PoolIndex> {
        self.gates.iter().find(|g| g.pool == pool).map(|g| g.gate)
    }
}

impl Config {
    /// Parses and validates a configuration. On success returns it with its warnings;
    /// on failure returns every error (and warning) found.
    pub fn load(source: ConfigSource) -> Result<(Self, Diagnostics), Diagnostics> {
        match Self::load_partial(source) {
            (Some(config), diagnostics) if !diagnostics.has_errors() => Ok((config, diagnostics)),
            (_, diagnostics) => Err(diagnostics),
        }
    }

    /// Like [`Config::load`], but also returns the configuration when it has errors
    /// (invalid items left out), so later stages can report their errors too.
    pub fn load_partial(source: ConfigSource) -> (Option<Self>, Diagnostics) {
        let file = source.display_name();
        let mut diagnostics = Diagnostics::default();
        let config = validate::validate(source.clone(), &mut diagnostics);
        diagnostics.locate(Some(&file), &source.text);
        (config, diagnostics)
    }

    /// Reads and validates a configuration file.
    pub fn load_file(path: &Path) -> Result<(Self, Diagnostics), ConfigError> {
        let source = ConfigSource::from_file(path)?;
        Self::load(source).map_err(ConfigError::Invalid)
    }

    /// Looks up a pool by name.
    pub fn pool_by_name(&self, name: &str) -> Option<PoolIndex> {
        self.pools
            .iter()
            .position(|p| p.name == name)
            .map(|i| PoolIndex(i as u32))
    }

    /// Looks up an endpoint by its label (`pool/endpoint`).
    pub fn endpoint_by_label(&self, label: &str) -> Option<EndpointIndex> {
        (0..self.endpoints.len())
            .map(|i| EndpointIndex(i as u32))
            .find(|&e| self.endpoint_label(e) == label)
    }

    /// The pool at an index.
    pub fn pool(&self, index: PoolIndex) -> &Pool {
        &self.pools[index.0 as usize]
    }

    /// The check at an index.
    pub fn check(&self, index: CheckIndex) -> &Check {
        &self.checks[index.0 as usize]
    }

    /// The check probing an endpoint (its pool's), if any.
    pub fn endpoint_check(&self, index: EndpointIndex) -> Option<&Check> {
        self.pool(self.endpoint(index).pool)
            .check
            .map(|c| self.check(c))
    }

    /// Looks up a vantage point by name.
    pub fn vantage_by_name(&self, name: &str) -> Option<VantageIndex> {
        self.vantages
            .iter()
            .position(|v| v.name == name)
            .map(|i| VantageIndex(i as u16))
    }

    /// The endpoint at an index.
    pub fn endpoint(&self, index: EndpointIndex) -> &Endpoint {
        &self.endpoints[index.0 as usize]
    }

    /// `pool/endpoint` name of an endpoint, as shown in status and logs.
    pub fn endpoint_label(&self, index: EndpointIndex) -> String {
        let endpoint = self.endpoint(index);
        format!("{}/{}", self.pool(endpoint.pool).name, endpoint.name)
    }
}

/// How non-existence is proven in a signed zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenialKind {
    /// NSEC3 (RFC 5155) with RFC 9276 parameters: SHA-1, no extra iterations, no salt.
    Nsec3,
    /// NSEC (RFC 4034).
    Nsec,
}

/// DNSSEC signing: `[dnssec]`.
#[derive(Clone, Debug)]
pub struct DnssecConfig {
    /// Where the key files are.
    pub key_directory: PathBuf,
    /// Signed zones (absolute, lower-case names).
    pub zones: Vec<String>,
    /// Denial of existence.
    pub denial: DenialKind,
    /// NSEC3 opt-out (RFC 5155 §6): insecure delegations get no NSEC3 record.
    pub opt_out: bool,
    /// Signature lifetime (expiration minus signing time).
    pub signature_validity: Duration,
    /// Re-signing period (below the validity).
    pub refresh: Duration,
    /// Inception backdating.
    pub inception_offset: Duration,
    /// TTL of DNSKEY, CDS and CDNSKEY.
    pub dnskey_ttl: u32,
}

impl Default for DnssecConfig {
    fn default() -> Self {
        Self {
            key_directory: PathBuf::from(dnssec_defaults::KEY_DIRECTORY),
            zones: Vec::new(),
            denial: DenialKind::Nsec3,
            opt_out: false,
            signature_validity: dnssec_defaults::SIGNATURE_VALIDITY,
            refresh: dnssec_defaults::REFRESH,
            inception_offset: dnssec_defaults::INCEPTION_OFFSET,
            dnskey_ttl: dnssec_defaults::DNSKEY_TTL,
        }
    }
}

impl DnssecConfig {
    /// Whether any zone is signed.
    pub fn enabled(&self) -> bool {
        !self.zones.is_empty()
    }

    /// Whether the zone (absolute name) is signed.
    pub fn signs(&self, zone: &str) -> bool {
        self.zones.iter().any(|z| z.eq_ignore_ascii_case(zone))
    }
}
/// Query and response logging to a dnstap consumer: `[dnstap]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnstapConfig {
    /// The consumer's Unix socket (fstrm_capture, dnstap-ldns, a collector).
    pub socket: PathBuf,
    /// `identity` field.
    pub identity: String,
    /// `version` field.
    pub version: String,
    /// Log queries (AUTH_QUERY).
    pub queries: bool,
    /// Log responses (AUTH_RESPONSE).
    pub responses: bool,
    /// Messages buffered for the consumer; beyond this they are dropped and counted.
    pub queue: usize,
}

/// Zone transfers (AXFR/IXFR) and NOTIFY to secondaries: `[transfer]`.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// Versions kept per zone for IXFR.
    pub journal_versions: usize,
    /// Where serials and content hashes are saved (None: not saved).
    pub state_file: Option<PathBuf>,
    /// NOTIFY attempts per address and change.
    pub notify_attempts: u32,
    /// First NOTIFY response wait (doubles per retry).
    pub notify_timeout: Duration,
    /// Address NOTIFYs leave from (None: a DNS listen address of the target's family,
    /// see [`crate::dns::xfr::notify::source_for`]).
    pub notify_source: Option<std::net::IpAddr>,
    /// TSIG keys.
    pub keys: Vec<TsigKey>,
    /// A signed message is accepted only if its time is within the smaller of its
    /// own Fudge and this of ours.
    pub tsig_window: Duration,
    /// Secondaries (empty: transfers are refused and nothing is notified).
    pub secondaries: Vec<Secondary>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            journal_versions: transfer_defaults::JOURNAL_VERSIONS,
            state_file: None,
            notify_attempts: transfer_defaults::NOTIFY_ATTEMPTS,
            notify_timeout: transfer_defaults::NOTIFY_TIMEOUT,
            notify_source: None,
            keys: Vec::new(),
            tsig_window: transfer_defaults::TSIG_WINDOW,
            secondaries: Vec::new(),
        }
    }
}

impl TransferConfig {
    /// Whether any secondary is configured.
    pub fn enabled(&self) -> bool {
        !self.secondaries.is_empty()
    }
}

/// TSIG algorithms (RFC 8945).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// HMAC-SHA256.
    HmacSha256,
    /// HMAC-SHA384.
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl TsigAlgorithm {
    /// Every algorithm with its configuration name (also its DNS name).
    pub const ALL: [(&'static str, Self); 3] = [
        ("hmac-sha256", Self::HmacSha256),
        ("hmac-sha384", Self::HmacSha384),
        ("hmac-sha512", Self::HmacSha512),
    ];

    /// The configuration name (the algorithm's DNS name without the final dot).
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }
}

/// A TSIG key.
#[derive(Clone, Debug)]
pub struct TsigKey {
    /// Lower-case absolute name (`xfr-key.`).
    pub name: String,
    /// Algorithm.
    pub algorithm: TsigAlgorithm,
    /// The decoded secret.
    pub secret: Secret,
}

/// A secondary server of `[[transfer.secondaries]]`.
#[derive(Clone, Debug)]
pub struct Secondary {
    /// Name in logs and metrics.
    pub name: String,
    /// Absolute lower-case zone names (empty: every zone).
    pub zones: Vec<String>,
    /// NOTIFY targets.
    pub notify: Vec<SocketAddr>,
    /// Sources allowed to transfer.
    pub allow: Vec<ipnet::IpNet>,
    /// Index into [`TransferConfig::keys`].
    pub key: Option<usize>,
}

impl Secondary {
    /// Whether the secondary serves `zone` (absolute, lower-case).
    pub fn serves(&self, zone: &str) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|z| z == zone)
    }
}
