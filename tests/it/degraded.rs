//! Degraded endpoints through real DNS: three real HTTP backends the server probes;
//! the test slows a1 past `degraded_latency` and it stays in the answers at its
//! scaled share — a weighted record (a1 and a2, weight 1 each: a1 0.25 / 1.25 = 20 %)
//! and a spill-over record whose pool a loses three quarters of a1's capacity — over
//! 10,000 ECS queries within ±2 points of the computed shares; fast again, it returns
//! to full weight. A flaky a1 (every third probe fails: never `fall` in a row, 2/3
//! below `degraded_success_ratio`) is degraded, not down. Status, metrics, explain and
//! ctl say so.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::backend::{Backend, Mode};
use crate::support::dns::{addresses, query, udp, with_edns};
use crate::support::{SERVER_HEAD, TestServer, ctl_with, http, wait_until};

/// a1, a2 (pool a, endpoint capacities 50 + 50) and b1 (pool b, capacity 100).
const ADDRESSES: [&str; 3] = ["127.0.0.61", "127.0.0.62", "127.0.0.63"];
const NAMES: [&str; 3] = ["a/a1", "a/a2", "b/b1"];
/// Queries per measurement.
const QUERIES: u32 = 10_000;

fn config(port: u16) -> String {
    let [a1, a2, b1] = ADDRESSES;
    format!(
        r#"{SERVER_HEAD}
[checks.web]
type = "http"
port = {port}
interval = "200ms"
timeout = "180ms"
rise = 2
fall = 2
degraded_latency = "60ms"
degraded_success_ratio = 0.8
degraded_window = 6
degraded_weight = 0.25
[pools.a]
check = "web"
max_load = 0.8
endpoints = [{{ address = "{a1}", name = "a1", capacity = 50 }}, {{ address = "{a2}", name = "a2", capacity = 50 }}]
[pools.b]
check = "web"
max_load = 0.8
endpoints = [{{ address = "{b1}", name = "b1", capacity = 100 }}]
[[records]]
name = "weighted.example.test"
type = "A"
policy = "weighted"
pools = ["a"]
[[records]]
name = "spill.example.test"
type = "A"
policy = "failover"
pools = ["a", "b"]
max_answers = 1
spill = true
"#
    )
}

/// Starts the three backends (on one port) and the server probing them.
fn start() -> (TestServer, SocketAddr, Vec<Backend>) {
    let first = Backend::start(ADDRESSES[0].parse().unwrap(), 0, None);
    let port = first.addr.port();
    let mut backends = vec![first];
    for address in &ADDRESSES[1..] {
        backends.push(Backend::start(address.parse().unwrap(), port, None));
    }
    let (server, admin) = TestServer::with_admin(&config(port));
    (server, admin, backends)
}

/// Asks `name` `n` times, each from another /24 (ECS), and returns each endpoint's
/// fraction of the first answers.
fn measure(server: SocketAddr, name: &str, n: u32) -> [f64; 3] {
    let mut counts = [0u32; 3];
    for i in 0..n {
        let subnet = IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 0));
        let reply = udp(
            server,
            &with_edns(query(name, RecordType::A), 1232, Some((subnet, 24))),
        );
        let answered = addresses(&reply);
        let first = answered.first().expect("an answer");
        let i = ADDRESSES
            .iter()
            .position(|a| a == first)
            .unwrap_or_else(|| panic!("{first} is no backend"));
        counts[i] += 1;
    }
    counts.map(|c| f64::from(c) / f64::from(n))
}

fn status(admin: SocketAddr) -> serde_json::Value {
    let (code, body) = http(admin, "GET", "/v1/status", &[], b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `pool/name`'s entry in `/v1/status`.
fn endpoint(status: &serde_json::Value, label: &str) -> serde_json::Value {
    status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == label)
        .unwrap_or_else(|| panic!("{label} not in {status:#}"))
        .clone()
}

/// Waits until the published state of a1 is `degraded` (a factor) or not (None).
fn wait_for_a1(admin: SocketAddr, degraded: Option<f64>) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(Duration::from_secs(20), || {
        last = endpoint(&status(admin), "a/a1");
        last["state"] == "up" && last["degraded"].as_f64() == degraded
    });
    assert!(reached, "a/a1 degraded {degraded:?}: {last:#}");
    last
}

fn explain(admin: SocketAddr, name: &str) -> serde_json::Value {
    let (code, body) = http(admin, "GET", &format!("/v1/explain?name={name}"), &[], b"");
    assert_eq!(code, 200, "{body}");
    let explanation: serde_json::Value = serde_json::from_str(&body).unwrap();
    explanation["records"][0].clone()
}

fn metric(admin: SocketAddr, line_start: &str) -> f64 {
    let (_, body) = http(admin, "GET", "/metrics", &[], b"");
    body.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Measures both records against `want` (per endpoint a1, a2, b1), adding rows to
/// `table`.
fn check_shares(
    server: SocketAddr,
    state: &str,
    want: &[(&str, [f64; 3])],
    table: &mut Vec<String>,
) {
    for (name, want) in want {
        let measured = measure(server, name, QUERIES);
        for i in 0..3 {
            if want[i] == 0.0 && measured[i] == 0.0 {
                continue;
            }
            table.push(format!(
                "{state:<10} {name:<22} {:<6} {:>8.1}% {:>8.1}%",
                NAMES[i],
                want[i] * 100.0,
                measured[i] * 100.0
            ));
            assert!(
                (measured[i] - want[i]).abs() <= 0.02,
                "{state}: {name} {}: measured {}, expected {}",
                NAMES[i],
                measured[i],
                want[i]
            );
        }
    }
}

#[test]
fn a_slow_backend_keeps_answering_at_its_scaled_share_and_recovers_full_weight() {
    let (server, admin, backends) = start();
    let mut table = vec![format!(
        "{:<10} {:<22} {:<6} {:>9} {:>9}",
        "a1", "record", "answer", "expected", "measured"
    )];
    wait_for_a1(admin, None);
    assert!(wait_until(Duration::from_secs(20), || {
        status(admin)["ready"] == true
    }));
    // Healthy: a1 and a2 half each; spill: a (limit 80) takes the demand of 80.
    let healthy = [
        ("weighted.example.test", [0.5, 0.5, 0.0]),
        ("spill.example.test", [0.5, 0.5, 0.0]),
    ];
    check_shares(server.addr, "fast", &healthy, &mut table);

    // a1 answers in 100 ms, past degraded_latency (60 ms), within the timeout.
    backends[0].set(Mode::Slow(Duration::from_millis(100)));
    let a1 = wait_for_a1(admin, Some(0.25));
    assert!(
        a1["local"]["degraded"]
            .as_str()
            .is_some_and(|why| why.starts_with("slow: ")),
        "{a1:#}"
    );
    assert_eq!(a1["votes"]["local"], "degraded", "{a1:#}");
    // Weighted: 0.25 / 1.25 = 20 %. Spill: a's capacity is 50 × 0.25 + 50 = 62.5, its
    // limit 50 of the demand of 80; the other 30 spill to b: a 62.5 % (a1 a fifth of
    // it: 12.5 %, a2 50 %), b 37.5 %.
    let spill = explain(admin, "spill.example.test");
    let shares: Vec<f64> = spill["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["share"].as_f64().unwrap())
        .collect();
    assert!(
        shares.len() == 2 && (shares[0] - 0.625).abs() < 1e-9 && (shares[1] - 0.375).abs() < 1e-9,
        "{spill:#}"
    );
    let why = spill["why"].as_array().unwrap();
    assert!(
        why.iter().any(
            |l| l.as_str().unwrap().starts_with("a/a1 is degraded (slow: ")
                && l.as_str()
                    .unwrap()
                    .ends_with("answered with its weight × 0.25")
        ),
        "{spill:#}"
    );
    let degraded = [
        ("weighted.example.test", [0.2, 0.8, 0.0]),
        ("spill.example.test", [0.125, 0.5, 0.375]),
    ];
    check_shares(server.addr, "slow", &degraded, &mut table);
    let line = r#"failoverd_endpoint_degraded{pool="a",endpoint="a1"} "#;
    assert_eq!(metric(admin, line), 1.0);
    let line2 = r#"failoverd_endpoint_degraded{pool="a",endpoint="a2"} "#;
    assert_eq!(metric(admin, line2), 0.0);
    let servers = [format!("http://{admin}")];
    let (ok, text) = ctl_with(&servers, None, &["status"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("degraded, weight ×0.25 (slow: "),
        "ctl status: {text}"
    );
    let (ok, text) = ctl_with(&servers, None, &["explain", "weighted.example.test"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("degraded, weight ×0.25"),
        "ctl explain: {text}"
    );

    // Fast again: back to full weight (rise 2 fine probes).
    backends[0].set(Mode::Healthy);
    wait_for_a1(admin, None);
    assert_eq!(metric(admin, line), 0.0);
    check_shares(server.addr, "recovered", &healthy, &mut table);
    println!(
        "FIGURES degraded shares ({QUERIES} ECS queries each):\n{}",
        table.join("\n")
    );
}

#[test]
fn a_flaky_backend_below_the_success_ratio_is_degraded_not_down() {
    let (_server, admin, backends) = start();
    wait_for_a1(admin, None);
    // Every third probe fails: never fall (2) in a row, but 4/6 < 0.8 pass.
    backends[0].set(Mode::Flaky(3));
    let a1 = wait_for_a1(admin, Some(0.25));
    let why = a1["local"]["degraded"].as_str().unwrap_or_default();
    assert!(why.starts_with("success "), "{a1:#}");
    // It stays up and degraded for a while of probes (about 15 at 200 ms).
    let mut polls = 0;
    assert!(
        !wait_until(Duration::from_secs(3), || {
            polls += 1;
            let a1 = endpoint(&status(admin), "a/a1");
            a1["state"] != "up" || a1["degraded"].as_f64() != Some(0.25)
        }),
        "a flaky a1 left up-and-degraded"
    );
    assert!(polls > 1);
    // Healthy again: the window fills with passes and a1 is fine.
    backends[0].set(Mode::Healthy);
    wait_for_a1(admin, None);
}
