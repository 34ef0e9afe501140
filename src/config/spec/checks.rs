//! `[checks.NAME]` as written: the keys every check reads ([`CommonCheckSpec`]) and,
//! per `type`, that type's own keys ([`CheckTypeSpec`]).
//!
//! A check table is read by hand ([`read_check`]) rather than by serde's tagged-enum
//! support, whose errors lose the wording and the key path: `type` is read first, each
//! other key goes to the struct that owns it (common, the type's own, or — for a key of
//! another type — that type's, only to check its value's shape), and the first error in
//! document order is reported as serde reports it for a struct: the same message, key
//! path and line as when a check was one struct of every key.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{DampingSpec, DurationSpec, Route53CheckSpec, StatusSpec};
use crate::config::diagnostics::{
    Diagnostic, KeyPath, Segment, Severity, deserialize_at, line_of_offset,
};

/// Every key of a check table, in the order the unknown-key message lists them.
pub const CHECK_KEYS: &[&str] = &[
    "type",
    "port",
    "method",
    "path",
    "host",
    "headers",
    "expect_status",
    "expect_body",
    "tls_verify",
    "ca_file",
    "query_name",
    "query_type",
    "expect_rcode",
    "expect_answer",
    "command",
    "env",
    "user",
    "database",
    "password_file",
    "password_env",
    "role",
    "max_lag",
    "sslmode",
    "interval",
    "timeout",
    "fast_interval",
    "down_interval",
    "jitter",
    "rise",
    "fall",
    "hold",
    "route53",
    "damping",
    "slow_start",
    "degraded_latency",
    "degraded_success_ratio",
    "degraded_window",
    "degraded_weight",
];

/// The check types, as `type` names them (the unknown-type message lists them in this order).
pub const CHECK_TYPES: [&str; 6] = ["http", "https", "tcp", "dns", "exec", "postgres"];

/// One `[checks.NAME]` table: how endpoints are probed.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// `type` as written (`http`, `https`, `tcp`, `dns`, `exec` or `postgres`).
    pub type_name: String,
    /// The type with its own keys; `None` when `type_name` names no check type.
    pub kind: Option<CheckTypeSpec>,
    /// The keys every type reads.
    pub common: CommonCheckSpec,
    /// Keys of other types that the table holds, in document order (the validator
    /// says which do not apply).
    pub other_keys: Vec<String>,
}

impl CheckSpec {
    /// Whether the table holds `key`, a key of another type than its own.
    pub fn has_other(&self, key: &str) -> bool {
        self.other_keys.iter().any(|k| k == key)
    }
}

/// A check's type and the keys only that type reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckTypeSpec {
    /// `type = "http"`.
    Http(HttpCheckSpec),
    /// `type = "https"`: http over TLS.
    Https(HttpCheckSpec),
    /// `type = "tcp"`: a connection that opens.
    Tcp(TcpCheckSpec),
    /// `type = "dns"`: a query that is answered.
    Dns(DnsCheckSpec),
    /// `type = "exec"`: a program that exits 0.
    Exec(ExecCheckSpec),
    /// `type = "postgres"`: a database that logs in and answers in its role.
    Postgres(PostgresCheckSpec),
}

/// The keys every check type reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CommonCheckSpec {
    /// Port probed (default: 80 http, 443 https, 53 dns, 5432 postgres; required for
    /// tcp; optional for exec, passed as `FAILOVERD_PORT`).
    pub port: Option<i64>,
    /// Time between probes (default 1s; at least 100ms).
    pub interval: Option<DurationSpec>,
    /// Probe timeout (default: interval × 0.8; less than interval).
    pub timeout: Option<DurationSpec>,
    /// Time between probes while an endpoint is in transition — after a first failure
    /// until `fall` is reached, after a first success of a down endpoint until `rise`
    /// is (default: interval / 5, at least 50ms).
    pub fast_interval: Option<DurationSpec>,
    /// Time between probes while an endpoint is down (default: interval).
    pub down_interval: Option<DurationSpec>,
    /// Random delay added to each probe so probes do not align (default: interval / 10).
    pub jitter: Option<DurationSpec>,
    /// Consecutive successes to go up (default 2).
    pub rise: Option<i64>,
    /// Consecutive failures to go down (default 2).
    pub fall: Option<i64>,
    /// Minimum time down before an endpoint may come back up (default 0s).
    pub hold: Option<DurationSpec>,
    /// Settings of the Route 53 health check created from this one (native mode).
    pub route53: Option<Route53CheckSpec>,
    /// Flap damping (on by default).
    pub damping: Option<DampingSpec>,
    /// Slow start: time over which an endpoint coming back ramps to its full share of
    /// answers (default 0s: off).
    pub slow_start: Option<DurationSpec>,
    /// A probe slower than this counts as slow (default: none, latency does not
    /// degrade).
    pub degraded_latency: Option<DurationSpec>,
    /// An endpoint whose probes pass less often than this over `degraded_window` is
    /// degraded (default: none).
    pub degraded_success_ratio: Option<f64>,
    /// Probes the success ratio is counted over (default 10).
    pub degraded_window: Option<i64>,
    /// Weight factor of a degraded endpoint (default 0.25).
    pub degraded_weight: Option<f64>,
}

/// The keys of `http` and `https` checks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct HttpCheckSpec {
    /// HTTP method (default GET).
    pub method: Option<String>,
    /// HTTP path (default `/`).
    pub path: Option<String>,
    /// HTTP Host header and TLS server name (default: the endpoint address).
    pub host: Option<String>,
    /// Extra HTTP request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Accepted HTTP statuses (default 200-399).
    pub expect_status: Option<Vec<StatusSpec>>,
    /// Text that must appear in the first 64 KiB of the body.
    pub expect_body: Option<String>,
    /// Validate the TLS certificate (https only; default true).
    pub tls_verify: Option<bool>,
    /// PEM file of extra CA certificates trusted for this check (https only).
    pub ca_file: Option<String>,
}

/// The keys of `tcp` checks: none of their own (the port is common, and required).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TcpCheckSpec {}

/// The keys of `dns` checks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DnsCheckSpec {
    /// Name queried (required).
    pub query_name: Option<String>,
    /// Type queried (default A).
    pub query_type: Option<String>,
    /// Expected response code (default NOERROR).
    pub expect_rcode: Option<String>,
    /// Whether at least one answer record is needed (default: when NOERROR is expected).
    pub expect_answer: Option<bool>,
}

/// The keys of `exec` checks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ExecCheckSpec {
    /// Program and arguments; an argument that is exactly `{address}` or `{endpoint}`
    /// (`pool/name`) is replaced. Exit status 0 means up.
    pub command: Option<Vec<String>>,
    /// Names of environment variables passed through to the program (its environment
    /// is otherwise cleared but for `PATH`, `LANG` and `FAILOVERD_*`).
    pub env: Option<Vec<String>>,
}

/// The keys of `postgres` checks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PostgresCheckSpec {
    /// The user to log in as (default `postgres`).
    pub user: Option<String>,
    /// The database to connect to (default `postgres`).
    pub database: Option<String>,
    /// File holding the password (its first line).
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// `primary`, `replica` or `any` (default `any`).
    pub role: Option<String>,
    /// Longest replay lag of a replica that still passes (default: no limit).
    pub max_lag: Option<DurationSpec>,
    /// `disable` (default), `require` (TLS, certificate not checked) or `verify-full`
    /// (TLS, certificate and host name checked).
    pub sslmode: Option<String>,
    /// TLS server name (default: the endpoint address).
    pub host: Option<String>,
    /// PEM file of CA certificates trusted with `sslmode = "verify-full"`.
    pub ca_file: Option<String>,
}

/// Which struct reads a key of a check table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Common,
    Http,
    Tcp,
    Dns,
    Exec,
    Postgres,
}

impl Owner {
    /// The type-specific owners, in the order a key of several is given to the first.
    const TYPES: [Self; 5] = [Self::Http, Self::Tcp, Self::Dns, Self::Exec, Self::Postgres];

    fn of_type(name: &str) -> Option<Self> {
        match name {
            "http" | "https" => Some(Self::Http),
            "tcp" => Some(Self::Tcp),
            "dns" => Some(Self::Dns),
            "exec" => Some(Self::Exec),
            "postgres" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// The keys the owner's struct reads (its serde field names).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Common => fields_of::<CommonCheckSpec>(),
            Self::Http => fields_of::<HttpCheckSpec>(),
            Self::Tcp => fields_of::<TcpCheckSpec>(),
            Self::Dns => fields_of::<DnsCheckSpec>(),
            Self::Exec => fields_of::<ExecCheckSpec>(),
            Self::Postgres => fields_of::<PostgresCheckSpec>(),
        }
    }

    fn reads(self, key: &str) -> bool {
        self.keys().contains(&key)
    }
}

/// The serde field names of a struct deriving `Deserialize` (what it would name in an
/// unknown-field message).
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);
    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields")
        }
    }
    impl std::fmt::Debug for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields")
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Self(&[])
        }
    }
    /// Answers `deserialize_struct` with the field list it was given.
    struct Probe;
    impl<'de> serde::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// A check table that is not a table is reported as serde reports it for a struct of
/// this name.
#[derive(Deserialize)]
#[serde(expecting = "struct CheckSpec")]
struct CheckTable {}

/// Reads one `[checks.NAME]` value (at `path`). The first problem with the table's
/// shape — an unknown key, a value of the wrong type, a missing `type` — is returned
/// as today's diagnostic, with its line in `text`; a `type` that names no check type
/// is not a shape problem (the validator reports it).
pub(crate) fn read_check(
    value: Spanned<DeValue<'_>>,
    path: &KeyPath,
    text: &str,
) -> Result<CheckSpec, Diagnostic> {
    let span = value.span();
    let DeValue::Table(table) = value.get_ref() else {
        return match deserialize_at::<CheckTable>(value, path, text) {
            Err(diagnostic) => Err(diagnostic),
            Ok(CheckTable {}) => unreachable!("only a table reads as a struct"),
        };
    };
    let mut first_error: Option<(usize, Diagnostic)> = None;
    let mut note = |index: usize, diagnostic: Diagnostic| {
        if first_error.as_ref().is_none_or(|(at, _)| index < *at) {
            first_error = Some((index, diagnostic));
        }
    };
    let mut type_name = None;
    for (index, (key, value)) in table.iter().enumerate() {
        if key.get_ref() == "type" {
            match deserialize_at::<String>(value.clone(), &path.key("type"), text) {
                Ok(name) => type_name = Some(name),
                Err(diagnostic) => note(index, diagnostic),
            }
        }
    }
    let own = type_name.as_deref().and_then(Owner::of_type);
    // Each key to its owner's table, in document order; a key of another type goes to
    // the first type that reads it, so that its value's shape is still checked.
    let mut groups: BTreeMap<Owner, (DeTable<'_>, Vec<(Segment, usize)>)> = BTreeMap::new();
    let mut other_keys = Vec::new();
    for (index, (key, value)) in table.iter().enumerate() {
        let name: &str = key.get_ref();
        if name == "type" {
            continue;
        }
        if !CHECK_KEYS.contains(&name) {
            let error = <toml::de::Error as serde::de::Error>::unknown_field(name, CHECK_KEYS);
            let message = error.message().trim().to_owned();
            note(
                index,
                shape_error(path.key(name), key.span(), message, text),
            );
            continue;
        }
        let owner = if Owner::Common.reads(name) {
            Owner::Common
        } else if let Some(own) = own.filter(|own| own.reads(name)) {
            own
        } else {
            other_keys.push(name.to_owned());
            Owner::TYPES
                .into_iter()
                .find(|owner| owner.reads(name))
                .expect("every key of CHECK_KEYS but type has an owner")
        };
        let (group, keys) = groups.entry(owner).or_default();
        group.insert(key.clone(), value.clone());
        keys.push((Segment::Key(name.to_owned()), index));
    }
    let mut common = CommonCheckSpec::default();
    let mut kind = None;
    for (owner, (group, keys)) in groups {
        let group = Spanned::new(span.clone(), DeValue::Table(group));
        let result = match owner {
            Owner::Common => deserialize_at(group, path, text).map(|spec| common = spec),
            _ if Some(owner) == own => {
                deserialize_as(owner, group, path, text).map(|spec| kind = Some(spec))
            }
            _ => deserialize_as(owner, group, path, text).map(drop),
        };
        if let Err(diagnostic) = result {
            // Where the error is in document order: its key, the segment below `path`.
            let key = diagnostic
                .path
                .as_ref()
                .and_then(|p| p.segments().get(path.segments().len()));
            let index = keys
                .iter()
                .find(|(segment, _)| Some(segment) == key)
                .map_or(keys[0].1, |(_, index)| *index);
            note(index, diagnostic);
        }
    }
    if let Some((_, diagnostic)) = first_error {
        return Err(diagnostic);
    }
    let Some(type_name) = type_name else {
        let error = <toml::de::Error as serde::de::Error>::missing_field("type");
        let message = error.message().trim().to_owned();
        return Err(shape_error(path.clone(), span, message, text));
    };
    // A type without keys of its own reads an empty table.
    let kind = match (own, kind) {
        (Some(owner), None) => {
            let empty = Spanned::new(span, DeValue::Table(DeTable::new()));
            Some(deserialize_as(owner, empty, path, text)?)
        }
        (_, kind) => kind,
    };
    // `https` reads http's struct.
    let kind = kind.map(|kind| match (kind, type_name.as_str()) {
        (CheckTypeSpec::Http(http), "https") => CheckTypeSpec::Https(http),
        (kind, _) => kind,
    });
    Ok(CheckSpec {
        type_name,
        kind,
        common,
        other_keys,
    })
}

/// Deserializes `group` into the struct of `owner` (a type), as that type's variant.
fn deserialize_as(
    owner: Owner,
    group: Spanned<DeValue<'_>>,
    path: &KeyPath,
    text: &str,
) -> Result<CheckTypeSpec, Diagnostic> {
    Ok(match owner {
        Owner::Http => CheckTypeSpec::Http(deserialize_at(group, path, text)?),
        Owner::Tcp => CheckTypeSpec::Tcp(deserialize_at(group, path, text)?),
        Owner::Dns => CheckTypeSpec::Dns(deserialize_at(group, path, text)?),
        Owner::Exec => CheckTypeSpec::Exec(deserialize_at(group, path, text)?),
        Owner::Postgres => CheckTypeSpec::Postgres(deserialize_at(group, path, text)?),
        Owner::Common => unreachable!("common keys are not a type"),
    })
}

/// A shape error at `path`, on the line where `span` starts.
fn shape_error(path: KeyPath, span: Range<usize>, message: String, text: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: None,
        line: Some(line_of_offset(text, span.start)),
        path: Some(path),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `[checks.c]` of `text` as the config reader does.
    fn read(text: &str) -> Result<CheckSpec, Diagnostic> {
        let root = DeTable::parse(text).expect("TOML");
        let checks = root.get_ref().get("checks").expect("[checks]").clone();
        let DeValue::Table(checks) = checks.into_inner() else {
            panic!("checks is a table")
        };
        let check = checks.get("c").expect("[checks.c]").clone();
        read_check(check, &KeyPath::root().key("checks").key("c"), text)
    }

    fn error(text: &str) -> String {
        let diagnostic = read(text).expect_err("a shape error");
        format!(
            "{}: {}: {}",
            diagnostic.line.unwrap(),
            diagnostic.path.unwrap(),
            diagnostic.message
        )
    }

    #[test]
    fn every_key_has_one_owner_and_the_list_has_every_key() {
        let mut owned: Vec<&str> = vec!["type"];
        for owner in [Owner::Common].into_iter().chain(Owner::TYPES) {
            for key in owner.keys() {
                if !owned.contains(key) {
                    owned.push(key);
                }
            }
        }
        let mut listed = CHECK_KEYS.to_vec();
        listed.sort_unstable();
        owned.sort_unstable();
        assert_eq!(listed, owned);
        for key in Owner::Common.keys() {
            let types: Vec<_> = Owner::TYPES.iter().filter(|o| o.reads(key)).collect();
            assert!(types.is_empty(), "{key} is common and read by {types:?}");
        }
        assert_eq!(Owner::Common.keys().len(), 16);
        assert_eq!(fields_of::<TcpCheckSpec>(), &[] as &[&str]);
        assert_eq!(fields_of::<ExecCheckSpec>(), ["command", "env"]);
    }

    #[test]
    fn each_type_gets_its_own_keys_and_the_common_ones() {
        let spec = read(
            "[checks.c]\ntype = \"https\"\nport = 8443\npath = \"/up\"\ntls_verify = false\n\
             interval = \"2s\"\n[checks.c.damping]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(spec.type_name, "https");
        assert_eq!(
            spec.kind,
            Some(CheckTypeSpec::Https(HttpCheckSpec {
                path: Some("/up".into()),
                tls_verify: Some(false),
                ..HttpCheckSpec::default()
            }))
        );
        assert_eq!(spec.common.port, Some(8443));
        assert_eq!(spec.common.interval.as_deref(), Some("2s"));
        assert_eq!(spec.common.damping.unwrap().enabled, Some(false));
        assert!(spec.other_keys.is_empty());

        let spec = read("[checks.c]\ntype = \"tcp\"\nport = 22\n").unwrap();
        assert_eq!(spec.kind, Some(CheckTypeSpec::Tcp(TcpCheckSpec {})));
        let spec =
            read("[checks.c]\ntype = \"postgres\"\nhost = \"db\"\nca_file = \"ca.pem\"\n").unwrap();
        let Some(CheckTypeSpec::Postgres(pg)) = spec.kind else {
            panic!("{spec:?}")
        };
        assert_eq!(
            (pg.host.as_deref(), pg.ca_file.as_deref()),
            (Some("db"), Some("ca.pem"))
        );
    }

    #[test]
    fn the_hand_reader_reads_what_the_tagged_enum_reads() {
        for (text, common) in [
            (
                "type = \"http\"\nmethod = \"HEAD\"\nexpect_status = [200, \"300-399\"]",
                "",
            ),
            (
                "type = \"https\"\nca_file = \"ca.pem\"\nhost = \"h\"",
                "port = 1",
            ),
            ("type = \"tcp\"", "port = 22\nrise = 3"),
            (
                "type = \"dns\"\nquery_name = \"a.\"\nexpect_answer = false",
                "timeout = \"1s\"",
            ),
            (
                "type = \"exec\"\ncommand = [\"true\"]\nenv = [\"HOME\"]",
                "",
            ),
            (
                "type = \"postgres\"\nrole = \"replica\"\nmax_lag = \"5s\"",
                "port = 6432",
            ),
        ] {
            let tagged: CheckTypeSpec = toml::from_str(text).expect(text);
            let spec = read(&format!("[checks.c]\n{text}\n{common}\n")).expect(text);
            assert_eq!(spec.kind, Some(tagged), "{text}");
            let common: CommonCheckSpec = toml::from_str(common).unwrap();
            assert_eq!(spec.common, common, "{text}");
        }
    }

    #[test]
    fn keys_of_other_types_are_listed_and_their_values_still_checked() {
        let spec = read(
            "[checks.c]\ntype = \"tcp\"\nport = 1\nmethod = \"GET\"\nhost = \"h\"\nenv = [\"A\"]\n",
        )
        .unwrap();
        assert_eq!(spec.other_keys, ["method", "host", "env"]);
        assert!(spec.has_other("host") && !spec.has_other("port"));
        // http reads tls_verify itself (and says it is https's); postgres does not.
        let spec = read("[checks.c]\ntype = \"http\"\ntls_verify = true\n").unwrap();
        assert!(spec.other_keys.is_empty());
        let spec = read("[checks.c]\ntype = \"postgres\"\ntls_verify = true\n").unwrap();
        assert_eq!(spec.other_keys, ["tls_verify"]);
        assert_eq!(
            error("[checks.c]\ntype = \"tcp\"\nport = 1\nquery_name = 5\n"),
            "4: checks.c.query_name: invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn a_type_that_names_no_check_type_is_left_to_the_validator() {
        let spec = read("[checks.c]\ntype = \"icmp\"\nrole = \"primary\"\nrise = 2\n").unwrap();
        assert_eq!((spec.type_name.as_str(), spec.kind), ("icmp", None));
        assert_eq!(spec.other_keys, ["role"]);
        assert_eq!(spec.common.rise, Some(2));
    }

    #[test]
    fn the_first_shape_error_in_document_order_is_reported_as_serde_did() {
        // Whichever group (common, own, another type's) holds it.
        assert_eq!(
            error("[checks.c]\ntype = \"tcp\"\nmethod = 5\nport = \"x\"\n"),
            "3: checks.c.method: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            error("[checks.c]\ntype = \"tcp\"\nport = \"x\"\nmethod = 5\n"),
            "3: checks.c.port: invalid type: string \"x\", expected i64"
        );
        assert_eq!(
            error("[checks.c]\ninterval = 5\ntype = 7\n"),
            "2: checks.c.interval: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            error("[checks.c]\ntype = 7\nbogus = 1\n"),
            "2: checks.c.type: invalid type: integer `7`, expected a string"
        );
        assert_eq!(
            error("[checks.c]\ntype = \"http\"\ndamping = { penalty = \"x\" }\nrise = \"y\"\n"),
            "3: checks.c.damping.penalty: invalid type: string \"x\", expected f64"
        );
        let unknown = error("[checks.c]\ntype = \"http\"\npth = \"/\"\n");
        let keys: Vec<_> = CHECK_KEYS.iter().map(|k| format!("`{k}`")).collect();
        let keys = keys.join(", ");
        assert_eq!(
            unknown,
            format!("3: checks.c.pth: unknown field `pth`, expected one of {keys}")
        );
        // Missing `type` only when nothing else is wrong.
        assert_eq!(
            error("[checks.c]\nport = 80\n"),
            "1: checks.c: missing field `type`"
        );
        assert_eq!(
            error("[checks.c]\nport = 80\nbogus = 2\n")
                .split(':')
                .nth(1),
            Some(" checks.c.bogus")
        );
    }

    #[test]
    fn a_check_that_is_not_a_table_says_so() {
        let text = "[checks]\nc = 5\n";
        assert_eq!(
            error(text),
            "2: checks.c: invalid type: integer `5`, expected struct CheckSpec"
        );
    }
}
