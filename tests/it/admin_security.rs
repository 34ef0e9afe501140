//! The admin surface as an attacker on the same network meets it, against the real
//! binary over real sockets: a browser page cannot make a change; override exchange
//! is taken from servers only, and never from the future. (Connection floods are in
//! the `load` test binary.)

use std::net::SocketAddr;
use std::time::Duration;

use failoverd::testing::api::OverrideSync;
use failoverd::testing::config::Secret;
use failoverd::testing::health::overrides::{Action, Entry, Stamp, Target};
use failoverd::testing::health::peering::sign_peer;
use failoverd::testing::health::report::{SIGNATURE_HEADER, VANTAGE_HEADER};

use crate::support::backend::Backend;
use crate::support::dns::{expect_addresses, sorted_addresses};
use crate::support::{
    BACKEND_A, BACKEND_B, http_exactly as raw, http_with_headers, serve_config, two_backend_config,
};

const NAME: &str = "app.example.test";

/// Two healthy backends (on one port), for the pool of [`two_backend_config`].
fn backends() -> (Backend, Backend) {
    let a = Backend::start(BACKEND_A.parse().unwrap(), 0, None);
    let b = Backend::start(BACKEND_B.parse().unwrap(), a.addr.port(), None);
    (a, b)
}

/// A server `s1` of a two-server config (with its peer `s2` not running: the test
/// signs as s2), plus agents: `a4` declared, `a5` without a role.
fn exchange_config(port: u16) -> String {
    format!(
        r#"{}
[vantages.s1]
secret = "secret-of-server-s1-0123456789"
role = "server"
[vantages.s2]
secret = "secret-of-server-s2-0123456789"
role = "server"
[vantages.a4]
secret = "secret-of-agent-a4-0123456789"
role = "agent"
[vantages.a5]
secret = "secret-of-agent-a5-0123456789"
[health]
vantage = "s1"
down_votes = 1
"#,
        two_backend_config(port, "interval = \"300ms\"\ntimeout = \"250ms\"")
    )
}

/// A signed override sync from `vantage` carrying `entries`.
fn sync(admin: SocketAddr, vantage: &str, secret: &str, entries: Vec<Entry>) -> (u16, String) {
    let body = serde_json::to_vec(&OverrideSync {
        vantage: vantage.to_owned(),
        sent_at_ms: now_ms(),
        entries,
    })
    .unwrap();
    let signature = sign_peer(&Secret::new(secret), &body);
    let (status, text, _) = http_with_headers(
        admin,
        "POST",
        "/v1/overrides/sync",
        &[
            (VANTAGE_HEADER, vantage),
            (SIGNATURE_HEADER, &signature),
            ("content-type", "application/json"),
        ],
        &body,
    );
    (status, text)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn force_down(endpoint: &str, origin: &str, ms: u64, counter: u32) -> Entry {
    Entry {
        target: Target::Endpoint(endpoint.to_owned()),
        action: Some(Action::ForceDown),
        by: "attacker".to_owned(),
        reason: "forged".to_owned(),
        at_ms: ms.min(now_ms()),
        expires_at_ms: None,
        stamp: Stamp {
            ms,
            counter,
            origin: origin.to_owned(),
        },
    }
}

fn active_overrides(admin: SocketAddr) -> usize {
    let (status, body, _) = http_with_headers(admin, "GET", "/v1/overrides", &[], b"");
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    view["active"].as_array().unwrap().len()
}

#[test]
fn only_servers_exchange_overrides_and_never_from_the_future() {
    let (_a, _b) = backends();
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = serve_config(dir.path(), &exchange_config(_a.addr.port()), &[]);
    expect_addresses(
        server.addr,
        NAME,
        &[BACKEND_A, BACKEND_B],
        Duration::from_secs(10),
    );
    let forged = || vec![force_down("web/a", "s1", now_ms(), 0)];

    // An agent's secret, valid signature: 403 on override exchange and on peer state.
    let (status, text) = sync(admin, "a4", "secret-of-agent-a4-0123456789", forged());
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("probe agent"), "{text}");
    let (status, text) = sync(admin, "a5", "secret-of-agent-a5-0123456789", forged());
    assert_eq!(
        status, 403,
        "an agent without a role is no server either: {text}"
    );
    // A report signature (the raw secret) is not a peer signature.
    let body = serde_json::to_vec(&OverrideSync {
        vantage: "s2".into(),
        sent_at_ms: now_ms(),
        entries: forged(),
    })
    .unwrap();
    let report_signed = failoverd::testing::health::report::sign(
        &Secret::new("secret-of-server-s2-0123456789"),
        &body,
    );
    let (status, _, _) = http_with_headers(
        admin,
        "POST",
        "/v1/overrides/sync",
        &[
            (VANTAGE_HEADER, "s2"),
            (SIGNATURE_HEADER, &report_signed),
            ("content-type", "application/json"),
        ],
        &body,
    );
    assert_eq!(status, 401);
    assert_eq!(active_overrides(admin), 0);
    assert_eq!(sorted_addresses(server.addr, NAME), [BACKEND_A, BACKEND_B]);

    // A server's sync stamped in the future: taken as a message, its entry refused
    // and counted; nothing changes.
    let (status, text) = sync(
        admin,
        "s2",
        "secret-of-server-s2-0123456789",
        vec![force_down("web/a", "s2", u64::MAX, u32::MAX)],
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(active_overrides(admin), 0);
    assert_eq!(sorted_addresses(server.addr, NAME), [BACKEND_A, BACKEND_B]);
    let refused = crate::support::http(admin, "GET", "/metrics", &[], b"").1;
    assert!(
        refused.contains("failoverd_override_entries_refused_total{reason=\"future_stamp\"} 1"),
        "{refused}"
    );
    assert!(refused.contains("failoverd_override_syncs_received_total{result=\"not_a_server\"} 2"));

    // The operator's own changes still order by time: force, then release, wins.
    let url = format!("http://{admin}");
    let ctl = |args: &[&str]| crate::support::ctl_with(std::slice::from_ref(&url), None, args);
    let (ok, out) = ctl(&["force", "web/a", "down", "--reason", "test"]);
    assert!(ok, "{out}");
    expect_addresses(server.addr, NAME, &[BACKEND_B], Duration::from_secs(1));
    let (ok, out) = ctl(&["release", "web/a", "--reason", "done"]);
    assert!(ok, "{out}");
    expect_addresses(
        server.addr,
        NAME,
        &[BACKEND_A, BACKEND_B],
        Duration::from_secs(1),
    );
    // A server's legitimate sync is merged.
    let (status, text) = sync(
        admin,
        "s2",
        "secret-of-server-s2-0123456789",
        vec![force_down("web/b", "s2", now_ms(), 0)],
    );
    assert_eq!(status, 200, "{text}");
    expect_addresses(server.addr, NAME, &[BACKEND_A], Duration::from_secs(1));
    println!(
        "FIGURES override exchange agent_sync=403 roleless_agent_sync=403 report_signed_sync=401 future_stamp=refused(200, entry counted) later_operator_release=won"
    );
}

#[test]
fn a_browser_page_cannot_change_anything() {
    let (_a, _b) = backends();
    let dir = tempfile::tempdir().unwrap();
    let text = two_backend_config(_a.addr.port(), "interval = \"200ms\"");
    let (server, admin) = serve_config(dir.path(), &text, &[]);
    expect_addresses(
        server.addr,
        NAME,
        &[BACKEND_A, BACKEND_B],
        Duration::from_secs(10),
    );
    let drain = br#"{"target": {"endpoint": "web/a"}, "action": "drain", "reason": "csrf"}"#;
    let host = format!("127.0.0.1:{}", admin.port());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: [Case<'_>; 5] = [
        // What a cross-site form or fetch without preflight can send.
        (
            "text/plain from another origin",
            vec![
                ("content-type", "text/plain"),
                ("origin", "http://evil.example"),
            ],
            403,
        ),
        (
            "text/plain, no origin",
            vec![("content-type", "text/plain")],
            415,
        ),
        (
            "JSON from another origin",
            vec![
                ("content-type", "application/json"),
                ("origin", "http://evil.example"),
            ],
            403,
        ),
        (
            "JSON, cross-site fetch metadata",
            vec![
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
            ],
            403,
        ),
        // DNS rebinding: the page's own name in Host.
        (
            "a foreign Host",
            vec![
                ("content-type", "application/json"),
                ("host", "evil.example"),
            ],
            403,
        ),
    ];
    for (what, headers, want) in &cases {
        let mut all = headers.clone();
        if !headers.iter().any(|(n, _)| *n == "host") {
            all.push(("host", &host));
        }
        let (status, body, _) = raw(admin, "POST", "/v1/overrides", &all, drain);
        assert_eq!(status, *want, "{what}: {body}");
        let (status, _, _) = raw(admin, "POST", "/v1/reload", &all, b"");
        assert_eq!(status, *want, "reload, {what}");
    }
    // Reads by a foreign name are refused too (rebinding reads status); health is not.
    assert_eq!(
        raw(
            admin,
            "GET",
            "/v1/status",
            &[("host", "evil.example:80")],
            b""
        )
        .0,
        403
    );
    assert_eq!(
        raw(admin, "GET", "/healthz", &[("host", "lb.internal")], b"").0,
        200
    );
    assert_eq!(active_overrides(admin), 0);
    assert_eq!(sorted_addresses(server.addr, NAME), [BACKEND_A, BACKEND_B]);
    // The same request from the server's own origin works.
    let (status, body, _) = raw(
        admin,
        "POST",
        "/v1/overrides",
        &[
            ("content-type", "application/json"),
            ("origin", &format!("http://{host}")),
            ("host", &host),
        ],
        drain,
    );
    assert_eq!(status, 200, "{body}");
    println!(
        "FIGURES cross-site cases={} refused={} same_origin=200",
        cases.len() * 2 + 1,
        cases.len() * 2 + 1
    );
}
