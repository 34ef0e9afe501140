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
//!
//! Each section's runtime types live beside its validator, in a file of its own
//! (`server`, `zones`, `pools` (regions, geo, pools, safety), `checks` (with `http`,
//! `dns` and `exec` under it), `postgres`, `records`, `health` (vantages, health),
//! `admin`, `route53`, `transfer`, `dnssec`, `dnstap`), re-exported here as
//! `crate::config::X`; [`spec`] holds the file's shape, `validate` the walk over the
//! sections and the helpers they share, and [`defaults`] every default.

mod admin;
mod checks;
pub mod defaults;
mod diagnostics;
mod dnssec;
mod dnstap;
mod duration;
mod health;
mod pools;
mod postgres;
mod records;
mod route53;
pub mod secret_file;
mod server;
pub mod spec;
mod transfer;
mod validate;
mod zones;

use std::path::{Path, PathBuf};

pub use self::admin::{
    AdminAccess, AdminConfig, AdminLimits, AdminRole, AdminToken, PublicPath, TlsFiles,
    host_of_authority,
};
pub use self::checks::{
    Check, CheckKind, DampingRules, DegradedRules, DnsCheck, ExecCheck, HttpCheck, Route53Check,
};
pub use self::defaults::{
    dnssec as dnssec_defaults, postgres as postgres_defaults, transfer as transfer_defaults,
};
pub use self::diagnostics::{Diagnostic, Diagnostics, KeyPath, Segment, Severity};
pub use self::dnssec::{DenialKind, DnssecConfig};
pub use self::dnstap::DnstapConfig;
pub use self::duration::{DurationSpec, parse_duration};
pub use self::health::{
    ColdStart, HealthConfig, IsolationMode, Vantage, VantageRole, default_state_file,
};
pub use self::pools::{Endpoint, GeoConfig, Pool, Region, SafetyRule};
pub use self::postgres::{DbRole, PostgresCheck, SslMode};
pub use self::records::{
    AllDown, DynamicRecord, Gate, LatencySteering, OnConflict, PoolChoice, Selection,
};
pub use self::route53::{Route53Config, Route53Mode, Route53Zone};
pub use self::server::{RrlConfig, ServerConfig, UdpIo};
pub use self::transfer::{Secondary, TransferConfig, TsigAlgorithm, TsigKey};
pub use self::zones::ZonesConfig;
use crate::model::{CheckIndex, EndpointIndex, PoolIndex, VantageIndex};

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
    /// Regions, indexed by [`crate::model::RegionIndex`].
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
