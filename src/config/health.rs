//! `[vantages]` and `[health]` → [`Vantage`]s and [`HealthConfig`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::MAX_VANTAGES;
use super::defaults::health as defaults;
use super::diagnostics::KeyPath;
use super::secret_file::{self, SecretFileError};
use super::spec::{HealthSpec, VantageRoleSpec, VantageSpec};
use super::validate::{Validator, check_identifier};
use super::{ConfigSource, Secret};
use crate::model::{RegionIndex, VantageIndex};

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

impl Validator<'_> {
    /// `agent_of`: the vantage point a probe agent runs as (only its secret must be
    /// present); None for a server, which needs every secret.
    pub(super) fn vantages(
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

    pub(super) fn health(
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
            defaults::DOWN_REGIONS,
            1..=regions.len().max(1) as i64,
            " (at most the number of distinct vantage regions)",
        ) as u32;
        let staleness = self.duration(
            path.key("staleness"),
            spec.staleness.as_deref(),
            defaults::STALENESS,
            Duration::from_millis(100)..=Duration::from_secs(3600),
        );
        let push_interval = self.duration(
            path.key("push_interval"),
            spec.push_interval.as_deref(),
            defaults::PUSH_INTERVAL,
            Duration::from_millis(50)..=Duration::from_secs(60),
        );
        let override_warn_after = self.duration(
            path.key("override_warn_after"),
            spec.override_warn_after.as_deref(),
            defaults::OVERRIDE_WARN_AFTER,
            Duration::ZERO..=Duration::from_secs(365 * 24 * 3600),
        );
        let rtt_window = self.duration(
            path.key("rtt_window"),
            spec.rtt_window.as_deref(),
            super::defaults::latency::RTT_WINDOW,
            Duration::ZERO..=Duration::from_secs(3600),
        );
        if push_interval >= staleness {
            self.error(
                path.key("push_interval"),
                "must be shorter than staleness, or reports expire between pushes",
            );
        }
        let isolation = match spec.isolation.as_deref().unwrap_or(defaults::ISOLATION) {
            "hold" => IsolationMode::Hold,
            "local" => IsolationMode::Local,
            other => {
                self.error(
                    path.key("isolation"),
                    format!("{other:?} is not \"hold\" or \"local\""),
                );
                IsolationMode::Hold
            }
        };
        let cold_start = match spec.cold_start.as_deref().unwrap_or(defaults::COLD_START) {
            "last-known" => ColdStart::LastKnown,
            "assume-up" => ColdStart::AssumeUp,
            other => {
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
            rtt_window,
        }
    }
}
