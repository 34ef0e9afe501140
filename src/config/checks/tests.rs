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
