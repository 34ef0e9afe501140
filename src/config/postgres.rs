//! `type = "postgres"` checks, and the database-aware keys of records: `policy =
//! "primary"` (`on_conflict`) and failover `gates`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::{Validator, parse_duration};
use crate::config::diagnostics::KeyPath;
use crate::config::secret_file;
use crate::config::spec::{PostgresCheckSpec, RecordSpec};
use crate::config::{
    CheckKind, Gate, OnConflict, PoolChoice, Secret, Selection, postgres_defaults as defaults,
};
use crate::model::PoolIndex;

/// Which database role passes a `postgres` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum DbRole {
    /// Only a primary (not in recovery).
    Primary,
    /// Only a replica (in recovery) within `max_lag`.
    Replica,
    /// A primary, or a replica within `max_lag`.
    Any,
}

impl DbRole {
    /// Every role with its configuration name.
    pub(crate) const ALL: [(&'static str, Self); 3] = [
        ("primary", Self::Primary),
        ("replica", Self::Replica),
        ("any", Self::Any),
    ];

    /// The configuration name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
            Self::Any => "any",
        }
    }
}

/// TLS of a `postgres` check (libpq's `sslmode` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS; any certificate is accepted (the handshake is still verified).
    Require,
    /// TLS; the certificate chain (system roots plus `ca_file`) and host name are checked.
    VerifyFull,
}

/// A `postgres` check.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PostgresCheck {
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

impl Validator<'_> {
    /// The `postgres` check of `spec` (other kinds' keys are reported by the caller,
    /// but for `tls_verify`, which is reported here when `tls_verify` is set).
    pub(in crate::config) fn postgres_check(
        &mut self,
        spec: &PostgresCheckSpec,
        tls_verify: bool,
        path: &KeyPath,
        port: u16,
        base_dir: &Path,
    ) -> CheckKind {
        let text = spec.role.as_deref().unwrap_or(defaults::ROLE);
        let role = match DbRole::ALL.iter().find(|(name, _)| *name == text) {
            Some((_, role)) => *role,
            None => {
                self.error(
                    path.key("role"),
                    format!("{text:?} is not one of \"primary\", \"replica\", \"any\""),
                );
                DbRole::Any
            }
        };
        let max_lag = match spec.max_lag.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(lag)) => Some(lag),
            Some(Err(e)) => {
                self.error(path.key("max_lag"), e);
                None
            }
        };
        if max_lag.is_some() && role == DbRole::Primary {
            self.error(
                path.key("max_lag"),
                "max_lag applies to replicas; role = \"primary\" passes only a primary",
            );
        }
        let sslmode = match spec.sslmode.as_deref().unwrap_or(defaults::SSLMODE) {
            "disable" => SslMode::Disable,
            "require" => SslMode::Require,
            "verify-full" => SslMode::VerifyFull,
            other => {
                self.error(
                    path.key("sslmode"),
                    format!("{other:?} is not one of \"disable\", \"require\", \"verify-full\""),
                );
                SslMode::Disable
            }
        };
        if spec.ca_file.is_some() && sslmode != SslMode::VerifyFull {
            self.error(
                path.key("ca_file"),
                "ca_file is only read with sslmode = \"verify-full\"",
            );
        }
        if tls_verify {
            self.error(
                path.key("tls_verify"),
                "postgres checks choose TLS with sslmode (disable, require, verify-full)",
            );
        }
        let password = self.password(spec, path, base_dir);
        let identifier = |v: &mut Self, key: &str, value: Option<&String>, default: &str| {
            let value = value.map_or(default, String::as_str);
            if value.is_empty() || value.len() > 63 || value.contains('\0') {
                v.error(
                    path.key(key),
                    format!("{value:?} must be 1 to 63 characters without NUL"),
                );
            }
            value.to_owned()
        };
        let user = identifier(self, "user", spec.user.as_ref(), defaults::USER);
        let database = identifier(self, "database", spec.database.as_ref(), defaults::DATABASE);
        CheckKind::Postgres(PostgresCheck {
            port,
            user,
            database,
            password,
            role,
            max_lag,
            sslmode,
            host: spec.host.clone(),
            ca_file: spec.ca_file.as_ref().map(|f| base_dir.join(f)),
        })
    }

    /// The password of a `postgres` check: from a file (first line) or an environment
    /// variable. Messages name the file or variable, never the value.
    fn password(
        &mut self,
        spec: &PostgresCheckSpec,
        path: &KeyPath,
        base_dir: &Path,
    ) -> Option<Secret> {
        match (&spec.password_file, &spec.password_env) {
            (Some(_), Some(_)) => {
                self.error(path.clone(), "give only one of password_file, password_env");
                None
            }
            (Some(file), None) => match secret_file::read_to_string(&base_dir.join(file)) {
                Ok(text) => Some(Secret::new(
                    text.lines()
                        .next()
                        .unwrap_or_default()
                        .trim_end()
                        .as_bytes(),
                )),
                Err(e) => {
                    self.error(path.key("password_file"), e.to_string());
                    None
                }
            },
            (None, Some(var)) => match std::env::var(var) {
                Ok(value) => Some(Secret::new(value.into_bytes())),
                Err(_) => {
                    self.error(
                        path.key("password_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// `on_conflict` of a record (only `policy = "primary"` reads it).
    pub(in crate::config) fn on_conflict(
        &mut self,
        spec: &RecordSpec,
        selection: Selection,
        path: &KeyPath,
    ) -> OnConflict {
        let given = spec.on_conflict.as_deref();
        if given.is_some() && selection != Selection::Primary {
            self.error(
                path.key("on_conflict"),
                "on_conflict is only used with policy = \"primary\"",
            );
        }
        match given.unwrap_or(crate::config::defaults::records::ON_CONFLICT) {
            "hold" => OnConflict::Hold,
            "none" => OnConflict::None,
            other => {
                self.error(
                    path.key("on_conflict"),
                    format!("{other:?} is not \"hold\" or \"none\""),
                );
                OnConflict::Hold
            }
        }
    }

    /// Checks a `primary` record's pools: each probed by a check that passes only on
    /// a primary.
    pub(in crate::config) fn primary_pools(&mut self, pools: &PoolChoice, path: &KeyPath) {
        let PoolChoice::Fixed(list) = pools else {
            return;
        };
        for &pool in list {
            let pool = &self.pools[pool.0 as usize];
            match pool.check.map(|c| &self.checks[c.0 as usize]) {
                None => {
                    let message = format!(
                        "pool {:?} has no check: its endpoints claim primary only when forced up",
                        pool.name
                    );
                    self.warning(path.key("pools"), message);
                }
                Some(check) => {
                    if let CheckKind::Postgres(pg) = &check.kind {
                        if pg.role != DbRole::Primary {
                            let message = format!(
                                "pool {:?} uses check {:?} with role = \"{}\": a primary record needs checks that pass only on the primary (role = \"primary\", or Patroni's /primary)",
                                pool.name,
                                check.name,
                                pg.role.name()
                            );
                            self.error(path.key("pools"), message);
                        }
                    }
                }
            }
        }
    }

    /// `gates` of a failover record: pool (in the record's lists) → gate pool.
    pub(in crate::config) fn gates(
        &mut self,
        spec: Option<&BTreeMap<String, String>>,
        selection: Selection,
        pools: &PoolChoice,
        path: &KeyPath,
    ) -> Vec<Gate> {
        let Some(spec) = spec else {
            return Vec::new();
        };
        let path = path.key("gates");
        if selection != Selection::Failover {
            self.error(
                path.clone(),
                "gates apply to failover records (the pool traffic moves to)",
            );
            return Vec::new();
        }
        let listed: Vec<PoolIndex> = pools
            .all_lists()
            .into_iter()
            .flat_map(|l| l.iter().copied())
            .collect();
        let mut gates = Vec::new();
        for (pool_name, gate_name) in spec {
            let key = path.key(pool_name);
            let Some(pool) = self.pool_by_name(pool_name) else {
                self.error(key, format!("unknown pool {pool_name:?}"));
                continue;
            };
            if !listed.contains(&pool) {
                self.error(
                    key,
                    format!("pool {pool_name:?} is not one of the record's pools"),
                );
                continue;
            }
            let Some(gate) = self.pool_by_name(gate_name) else {
                self.error(key, format!("unknown gate pool {gate_name:?}"));
                continue;
            };
            self.used_pools.insert(gate);
            if gate == pool {
                self.error(key, "a pool cannot be its own gate");
                continue;
            }
            if self.pools[gate.0 as usize].check.is_none() {
                self.warning(
                    key.clone(),
                    format!(
                        "gate pool {gate_name:?} has no check: it is always open unless forced down"
                    ),
                );
            }
            gates.push(Gate { pool, gate });
        }
        gates
    }
}
