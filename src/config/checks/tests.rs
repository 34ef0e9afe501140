//! The "does not apply" errors of check keys, per type.

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

/// Errors and warnings (`path: message`) of a tcp check with `keys`.
fn degraded_diagnostics(keys: &str) -> (Vec<String>, Vec<String>) {
    let text = format!(
        "version = 1\n[checks.c]\ntype = \"tcp\"\nport = 1\ninterval = \"1s\"\ntimeout = \"500ms\"\n{keys}"
    );
    let (_, diagnostics) = Config::load_partial(ConfigSource::from_text(text, "/nonexistent"));
    let show = |list: &[crate::config::diagnostics::Diagnostic]| {
        list.iter()
            .map(|d| format!("{}: {}", d.path.as_ref().unwrap(), d.message))
            .collect()
    };
    (show(&diagnostics.errors), show(&diagnostics.warnings))
}

#[test]
fn degraded_keys_are_checked_with_their_paths() {
    let (errors, _) = degraded_diagnostics(
        "degraded_latency = \"600ms\"\ndegraded_success_ratio = 1.5\ndegraded_window = 1\ndegraded_weight = 1\n",
    );
    assert_eq!(
        errors,
        [
            "checks.c.degraded_latency: 600ms must be less than timeout 500ms (a probe slower than the timeout fails): lower degraded_latency or raise timeout",
            "checks.c.degraded_success_ratio: 1.5 is out of range: a share of passing probes, 0 < degraded_success_ratio <= 1 (e.g. 0.9)",
            "checks.c.degraded_window: 1 is out of range 2..=64 (probes)",
            "checks.c.degraded_weight: 1 is out of range: the factor a degraded endpoint's weight is scaled by, 0 < degraded_weight < 1 (e.g. 0.25)",
        ]
    );
    let (errors, warnings) = degraded_diagnostics("degraded_weight = 0.5\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        [
            "checks.c.degraded_weight: has no effect without degraded_latency or degraded_success_ratio: set one of them, or remove it"
        ]
    );
    let text = "version = 1\n[checks.c]\ntype = \"tcp\"\nport = 1\ndegraded_latency = \"200ms\"\n";
    let (config, _) =
        Config::load(ConfigSource::from_text(text.to_owned(), "/nonexistent")).unwrap();
    let rules = config.checks[0].degraded.unwrap();
    assert_eq!(rules.latency, Some(std::time::Duration::from_millis(200)));
    assert_eq!(
        (rules.success_ratio, rules.window, rules.weight_permille()),
        (None, 10, 250)
    );
}
