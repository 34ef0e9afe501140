//! `[checks.NAME]` → [`Check`]: probe kinds, timings, damping and Route 53 settings;
//! each probe kind's own keys in a file of its own (`postgres` in `config/postgres.rs`).

mod dns;
mod exec;
mod http;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use self::dns::DnsCheck;
pub use self::exec::ExecCheck;
pub use self::http::HttpCheck;
use super::PostgresCheck;
use super::defaults;
use super::diagnostics::KeyPath;
use super::spec::{CHECK_TYPES, CheckSpec, CheckTypeSpec, DampingSpec, TcpCheckSpec};
use super::validate::{Validator, check_identifier};

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
    /// When an endpoint that is up counts as degraded (None: never).
    pub degraded: Option<DegradedRules>,
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
        penalty: defaults::damping::PENALTY,
        half_life: defaults::damping::HALF_LIFE,
        suppress: defaults::damping::SUPPRESS,
        reuse: defaults::damping::REUSE,
        max_suppress: defaults::damping::MAX_SUPPRESS,
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

/// When an endpoint that is up is *degraded* — answered, with its weight scaled by
/// `weight` (see [`crate::health::degraded`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DegradedRules {
    /// A probe that passes slower than this is slow (None: latency does not degrade).
    pub latency: Option<Duration>,
    /// Below this share of passing probes over `window`, degraded (None: off).
    pub success_ratio: Option<f64>,
    /// Probes the success ratio is counted over (2..=64).
    pub window: u32,
    /// Weight factor of a degraded endpoint, 0 < weight < 1.
    pub weight: f64,
}

impl DegradedRules {
    /// The weight factor in permille (at least 1).
    pub fn weight_permille(&self) -> u16 {
        ((self.weight * 1000.0).round() as u16).clamp(1, 999)
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

impl Validator<'_> {
    /// `[checks.NAME.damping]`, with every bound checked.
    pub(super) fn damping(
        &mut self,
        spec: Option<&DampingSpec>,
        path: &KeyPath,
    ) -> Option<DampingRules> {
        let default = DampingRules::DEFAULT;
        let Some(spec) = spec else {
            return Some(default);
        };
        if !spec.enabled.unwrap_or(defaults::damping::ENABLED) {
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

    /// `degraded_latency`, `degraded_success_ratio`, `degraded_window` and
    /// `degraded_weight` of a check whose probes time out after `timeout`.
    fn degraded(
        &mut self,
        common: &super::spec::CommonCheckSpec,
        timeout: Duration,
        path: &KeyPath,
    ) -> Option<DegradedRules> {
        let latency = common.degraded_latency.as_deref().map(|text| {
            self.duration(
                path.key("degraded_latency"),
                Some(text),
                timeout,
                Duration::from_millis(1)..=Duration::from_secs(3600),
            )
        });
        if let Some(latency) = latency.filter(|l| *l >= timeout) {
            self.error(
                path.key("degraded_latency"),
                format!(
                    "{latency:?} must be less than timeout {timeout:?} (a probe slower than the timeout fails): lower degraded_latency or raise timeout"
                ),
            );
        }
        let success_ratio = match common.degraded_success_ratio {
            None => None,
            Some(x) if x > 0.0 && x <= 1.0 => Some(x),
            Some(x) => {
                self.error(
                    path.key("degraded_success_ratio"),
                    format!("{x} is out of range: a share of passing probes, 0 < degraded_success_ratio <= 1 (e.g. 0.9)"),
                );
                None
            }
        };
        let window = self.ranged(
            path.key("degraded_window"),
            common.degraded_window,
            i64::from(defaults::degraded::WINDOW),
            2..=64,
            " (probes)",
        ) as u32;
        let weight = match common.degraded_weight {
            None => defaults::degraded::WEIGHT,
            Some(x) if x > 0.0 && x < 1.0 => x,
            Some(x) => {
                self.error(
                    path.key("degraded_weight"),
                    format!("{x} is out of range: the factor a degraded endpoint's weight is scaled by, 0 < degraded_weight < 1 (e.g. 0.25)"),
                );
                defaults::degraded::WEIGHT
            }
        };
        if latency.is_none() && success_ratio.is_none() {
            for (key, set) in [
                ("degraded_window", common.degraded_window.is_some()),
                ("degraded_weight", common.degraded_weight.is_some()),
            ] {
                if set {
                    self.warning(
                        path.key(key),
                        "has no effect without degraded_latency or degraded_success_ratio: set one of them, or remove it",
                    );
                }
            }
            return None;
        }
        Some(DegradedRules {
            latency,
            success_ratio,
            window,
            weight,
        })
    }

    pub(super) fn checks(
        &mut self,
        specs: &[(String, Option<CheckSpec>)],
        base_dir: &std::path::Path,
    ) {
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
                degraded: None,
                route53: Route53Check {
                    request_interval: 30,
                    failure_threshold: 1,
                    regions: Vec::new(),
                },
            }));
        }
    }

    pub(super) fn check(
        &mut self,
        name: &str,
        spec: &CheckSpec,
        path: &KeyPath,
        base_dir: &std::path::Path,
    ) -> Option<Check> {
        let kind_name = spec.type_name.as_str();
        self.keys_of_other_types(spec, path);
        let common = &spec.common;
        let kind = match &spec.kind {
            Some(CheckTypeSpec::Http(http)) => self.http_check(spec, http, false, path, base_dir),
            Some(CheckTypeSpec::Https(http)) => self.http_check(spec, http, true, path, base_dir),
            Some(CheckTypeSpec::Tcp(TcpCheckSpec {})) => CheckKind::Tcp {
                port: self.check_port(spec, None, path),
            },
            Some(CheckTypeSpec::Dns(dns)) => {
                let port = self.check_port(spec, Some(i64::from(defaults::checks::DNS_PORT)), path);
                self.dns_check(dns, port, path)
            }
            Some(CheckTypeSpec::Exec(exec)) => {
                let port = common.port.map(|_| self.check_port(spec, None, path));
                self.exec_check(exec, port, path)
            }
            Some(CheckTypeSpec::Postgres(pg)) => {
                let default = i64::from(defaults::postgres::PORT);
                let port = self.check_port(spec, Some(default), path);
                let tls_verify = spec.has_other("tls_verify");
                self.postgres_check(pg, tls_verify, path, port, base_dir)
            }
            None => {
                let types = CHECK_TYPES.map(|t| format!("{t:?}")).join(", ");
                self.error(
                    path.key("type"),
                    format!("{kind_name:?} is not one of {types}"),
                );
                return None;
            }
        };
        let interval = self.duration(
            path.key("interval"),
            common.interval.as_deref(),
            defaults::checks::INTERVAL,
            Duration::from_millis(100)..=Duration::from_secs(3600),
        );
        let timeout = self.duration(
            path.key("timeout"),
            common.timeout.as_deref(),
            interval.mul_f64(defaults::checks::TIMEOUT_SHARE),
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
            common.fast_interval.as_deref(),
            (interval / defaults::checks::FAST_INTERVAL_DIVISOR)
                .max(defaults::checks::FAST_INTERVAL_MIN),
            Duration::from_millis(50)..=interval,
        );
        let down_interval = self.duration(
            path.key("down_interval"),
            common.down_interval.as_deref(),
            interval,
            Duration::from_millis(50)..=Duration::from_secs(3600),
        );
        let jitter = self.duration(
            path.key("jitter"),
            common.jitter.as_deref(),
            interval / defaults::checks::JITTER_DIVISOR,
            Duration::ZERO..=interval / 2,
        );
        let rise = self.ranged(
            path.key("rise"),
            common.rise,
            defaults::checks::RISE,
            1..=100,
            "",
        ) as u32;
        let fall = self.ranged(
            path.key("fall"),
            common.fall,
            defaults::checks::FALL,
            1..=100,
            "",
        ) as u32;
        let hold = self.duration(
            path.key("hold"),
            common.hold.as_deref(),
            defaults::checks::HOLD,
            Duration::ZERO..=Duration::from_secs(86_400),
        );
        let damping = self.damping(common.damping.as_ref(), &path.key("damping"));
        let slow_start = self.duration(
            path.key("slow_start"),
            common.slow_start.as_deref(),
            defaults::checks::SLOW_START,
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let degraded = self.degraded(common, timeout, path);
        let r53 = common.route53.clone().unwrap_or_default();
        let r53_path = path.key("route53");
        let request_interval = match r53.request_interval {
            None => defaults::checks::ROUTE53_REQUEST_INTERVAL,
            Some(v @ (10 | 30)) => v as u8,
            Some(v) => {
                self.error(
                    r53_path.key("request_interval"),
                    format!("{v} is not 10 or 30 (Route 53 allows only these)"),
                );
                defaults::checks::ROUTE53_REQUEST_INTERVAL
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
            degraded,
            route53: Route53Check {
                request_interval,
                failure_threshold,
                regions,
            },
        })
    }

    /// Today's "does not apply" errors for keys of other types than the check's own:
    /// `env` and the `postgres` keys first, then one error per group of keys, at the
    /// key that names the group (a `type` that names no check type gets only the first
    /// two).
    fn keys_of_other_types(&mut self, spec: &CheckSpec, path: &KeyPath) {
        let kind_name = spec.type_name.as_str();
        if spec.has_other("env") {
            self.error(
                path.key("env"),
                format!(
                    "`env` does not apply to {kind_name} checks (only exec checks run a program)"
                ),
            );
        }
        if POSTGRES_KEYS.iter().any(|key| spec.has_other(key)) {
            self.error(
                path.clone(),
                format!("user, database, password_*, role, max_lag and sslmode do not apply to {kind_name} checks"),
            );
        }
        let Some(kind) = &spec.kind else { return };
        let passed = passed_keys_of_other_types(kind);
        for (keys, named) in NOT_APPLYING {
            if keys
                .iter()
                .any(|key| spec.has_other(key) && !passed.contains(key))
            {
                self.error(
                    path.key(named),
                    format!("`{named}` does not apply to {kind_name} checks"),
                );
            }
        }
    }

    /// The port of a check: `port`, else the type's default; a type without one needs it.
    fn check_port(&mut self, spec: &CheckSpec, default: Option<i64>, path: &KeyPath) -> u16 {
        match spec.common.port.or(default) {
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(p) => {
                self.error(
                    path.key("port"),
                    format!("port {p} is out of range 1..=65535"),
                );
                1
            }
            None => {
                let kind_name = &spec.type_name;
                self.error(path.key("port"), format!("{kind_name} checks need a port"));
                1
            }
        }
    }
}

/// Keys of other types reported as not applying, in groups: one error per group, at
/// the key it names (as before check specs were typed).
const NOT_APPLYING: [(&[&str], &str); 6] = [
    (
        &["method", "path", "headers", "expect_status", "expect_body"],
        "path",
    ),
    (
        &["query_name", "query_type", "expect_rcode", "expect_answer"],
        "query_name",
    ),
    (&["command"], "command"),
    (&["tls_verify"], "tls_verify"),
    (&["ca_file"], "ca_file"),
    (&["host"], "host"),
];

/// The keys only `postgres` checks read (one error names them all).
const POSTGRES_KEYS: [&str; 7] = [
    "user",
    "database",
    "password_file",
    "password_env",
    "role",
    "max_lag",
    "sslmode",
];

/// Keys of other types a check type passes over without the "does not apply" error:
/// `host` on `dns` and `exec` checks is accepted and unused (as it always was), and a
/// `postgres` check reports `tls_verify` itself (it chooses TLS with `sslmode`).
fn passed_keys_of_other_types(kind: &CheckTypeSpec) -> &'static [&'static str] {
    match kind {
        CheckTypeSpec::Dns(_) | CheckTypeSpec::Exec(_) => &["host"],
        CheckTypeSpec::Postgres(_) => &["tls_verify"],
        CheckTypeSpec::Http(_) | CheckTypeSpec::Https(_) | CheckTypeSpec::Tcp(_) => &[],
    }
}
