//! `[checks.NAME]` → [`Check`]: probe kinds, timings, damping, Route 53 settings and exec
//! command rules.

use std::collections::HashSet;
use std::time::Duration;

use super::defaults;
use super::diagnostics::KeyPath;
use super::spec::{
    CHECK_TYPES, CheckSpec, CheckTypeSpec, DampingSpec, DnsCheckSpec, ExecCheckSpec, HttpCheckSpec,
    StatusSpec, TcpCheckSpec, VantageSpec,
};
use super::validate::{Validator, check_identifier, normalize_name};
use super::{Check, CheckKind, DampingRules, DnsCheck, ExecCheck, HttpCheck, Route53Check};

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

    /// An `http` or (`tls`) `https` check.
    fn http_check(
        &mut self,
        check: &CheckSpec,
        spec: &HttpCheckSpec,
        tls: bool,
        path: &KeyPath,
        base_dir: &std::path::Path,
    ) -> CheckKind {
        let kind_name = &check.type_name;
        if !tls {
            for (key, present) in [
                ("tls_verify", spec.tls_verify.is_some()),
                ("ca_file", spec.ca_file.is_some()),
            ] {
                if present {
                    self.error(
                        path.key(key),
                        format!("`{key}` does not apply to {kind_name} checks"),
                    );
                }
            }
        }
        let port = if tls {
            defaults::checks::HTTPS_PORT
        } else {
            defaults::checks::HTTP_PORT
        };
        let port = self.check_port(check, Some(i64::from(port)), path);
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
        let method = spec
            .method
            .clone()
            .unwrap_or_else(|| defaults::checks::METHOD.into());
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            self.error(
                path.key("method"),
                format!("{method:?} is not an HTTP method (e.g. GET, HEAD)"),
            );
        }
        let http_path = spec
            .path
            .clone()
            .unwrap_or_else(|| defaults::checks::PATH.into());
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
            for status in defaults::checks::EXPECT_STATUS {
                expect_status.extend(parse_status(&StatusSpec::Range((*status).to_owned())));
            }
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
            tls_verify: spec.tls_verify.unwrap_or(defaults::checks::TLS_VERIFY),
            ca_file: spec.ca_file.as_ref().map(|f| base_dir.join(f)),
        })
    }

    /// A `dns` check.
    fn dns_check(&mut self, spec: &DnsCheckSpec, port: u16, path: &KeyPath) -> CheckKind {
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
        let t = spec
            .query_type
            .as_deref()
            .unwrap_or(defaults::checks::QUERY_TYPE);
        let query_type = match t
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
        };
        let expect_rcode = match spec
            .expect_rcode
            .as_deref()
            .unwrap_or(defaults::checks::EXPECT_RCODE)
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

    /// An `exec` check.
    fn exec_check(&mut self, spec: &ExecCheckSpec, port: Option<u16>, path: &KeyPath) -> CheckKind {
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

    /// An exec check's placeholders stand for whole arguments: never spliced into a
    /// larger one (a shell string), never the program.
    pub(super) fn exec_command(&mut self, command: &[String], path: &KeyPath) {
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
    pub(super) fn exec_env(&mut self, names: &[String], path: &KeyPath) {
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
    pub(super) fn exec_env_secrets(&mut self, vantages: &[(String, VantageSpec)]) {
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

pub(super) fn parse_status(status: &StatusSpec) -> Result<(u16, u16), String> {
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

/// Placeholders an exec check's argument may be, whole.
pub(super) const EXEC_PLACEHOLDERS: [(&str, &str); 2] = [
    ("{address}", "FAILOVERD_ADDRESS"),
    ("{endpoint}", "FAILOVERD_ENDPOINT"),
];

/// Variables failoverd sets for every exec check.
pub(super) const EXEC_SET_VARIABLES: [&str; 3] =
    ["FAILOVERD_ADDRESS", "FAILOVERD_ENDPOINT", "FAILOVERD_PORT"];

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigSource};

    /// Every key of every type, each with a value of its shape.
    const EVERY_KEY: &str = r#"
method = "GET"
path = "/"
headers = { A = "b" }
expect_status = [200]
expect_body = "ok"
host = "h"
tls_verify = true
ca_file = "ca.pem"
query_name = "a."
query_type = "A"
expect_rcode = "NOERROR"
expect_answer = true
command = ["true"]
env = ["HOME"]
user = "u"
database = "d"
role = "any"
sslmode = "disable"
"#;

    /// The "does not apply" errors for a check of `kind` holding every key, in order.
    fn not_applying(kind: &str) -> Vec<String> {
        let text = format!("version = 1\n[checks.c]\ntype = {kind:?}\nport = 1\n{EVERY_KEY}");
        let (_, diagnostics) = Config::load_partial(ConfigSource::from_text(text, "/nonexistent"));
        diagnostics
            .errors
            .iter()
            .filter(|e| e.message.contains("apply to") || e.message.contains("is not one of"))
            .map(|e| e.path.as_ref().unwrap().to_string())
            .collect()
    }

    #[test]
    fn keys_of_other_types_are_reported_per_type_in_one_order() {
        let c = |keys: &[&str]| -> Vec<String> {
            keys.iter()
                .map(|k| {
                    if k.is_empty() {
                        "checks.c".into()
                    } else {
                        format!("checks.c.{k}")
                    }
                })
                .collect()
        };
        // `env`, the postgres keys (at the check), then path, query_name, command,
        // tls_verify, ca_file, host: each where the type does not read it.
        assert_eq!(
            not_applying("http"),
            c(&["env", "", "query_name", "command", "tls_verify", "ca_file"])
        );
        assert_eq!(
            not_applying("https"),
            c(&["env", "", "query_name", "command"])
        );
        assert_eq!(
            not_applying("tcp"),
            c(&[
                "env",
                "",
                "path",
                "query_name",
                "command",
                "tls_verify",
                "ca_file",
                "host"
            ])
        );
        // `host` is passed over by dns and exec checks (they have none to set).
        assert_eq!(
            not_applying("dns"),
            c(&["env", "", "path", "command", "tls_verify", "ca_file"])
        );
        assert_eq!(
            not_applying("exec"),
            c(&["", "path", "query_name", "tls_verify", "ca_file"])
        );
        // postgres reads host and ca_file, and says of tls_verify that it takes sslmode.
        assert_eq!(
            not_applying("postgres"),
            c(&["env", "path", "query_name", "command"])
        );
        // A type that names no check type: env and the postgres keys, then the type.
        assert_eq!(not_applying("icmp"), c(&["env", "", "type"]));
    }
}
