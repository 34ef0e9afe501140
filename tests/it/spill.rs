//! Capacity-aware spill-over and trickle, measured through real DNS queries: three
//! pools with capacities 100/50/50 and `max_load = 0.8`, each of two real HTTP
//! backends the server probes; pool a's backends stop; over 10,000 queries from
//! many ECS client subnets each pool's measured share equals the one `/v1/explain`
//! computed within ±2 points and no pool is driven past its limit, while the same
//! pools without spill cascade everything onto the second. Trickle 1 % is 1 % ± 0.3
//! over 20,000 answers, and `failoverd_record_trickle_answers_total` counts them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::backend::{Backend, Mode};
use crate::support::dns::{addresses, query, udp, with_edns};
use crate::support::{SERVER_HEAD, TestServer, ctl_with, http, wait_until};

/// Backend addresses: pool a = 127.0.0.11/12, b = .21/22, c = .31/32 (pool c's
/// capacity is its endpoints' 25 + 25).
const ADDRESSES: [[&str; 2]; 3] = [
    ["127.0.0.11", "127.0.0.12"],
    ["127.0.0.21", "127.0.0.22"],
    ["127.0.0.31", "127.0.0.32"],
];
const POOLS: [&str; 3] = ["a", "b", "c"];
/// Limits in capacity units (capacity × max_load).
const LIMITS: [f64; 3] = [80.0, 40.0, 40.0];

/// Starts the six backends (on one port) and the server probing them.
fn start() -> (TestServer, SocketAddr, Vec<Backend>) {
    let first = Backend::start(ADDRESSES[0][0].parse().unwrap(), 0, None);
    let port = first.addr.port();
    let mut backends = vec![first];
    for address in ADDRESSES.iter().flatten().skip(1) {
        backends.push(Backend::start(address.parse().unwrap(), port, None));
    }
    let (server, admin) = TestServer::with_admin(&config(port));
    (server, admin, backends)
}

fn config(port: u16) -> String {
    let [[a1, a2], [b1, b2], [c1, c2]] = ADDRESSES;
    format!(
        r#"{SERVER_HEAD}
[checks.web]
type = "http"
port = {port}
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 1
[pools.a]
check = "web"
capacity = 100
max_load = 0.8
endpoints = [{{ address = "{a1}", name = "a1" }}, {{ address = "{a2}", name = "a2" }}]
[pools.b]
check = "web"
capacity = 50
max_load = 0.8
endpoints = [{{ address = "{b1}", name = "b1" }}, {{ address = "{b2}", name = "b2" }}]
[pools.c]
check = "web"
max_load = 0.8
endpoints = [{{ address = "{c1}", name = "c1", capacity = 25 }}, {{ address = "{c2}", name = "c2", capacity = 25 }}]
[[records]]
name = "spill.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
spill = true
[[records]]
name = "cascade.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
[[records]]
name = "over.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
spill = true
demand = 100
[[records]]
name = "trickle.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
trickle = 0.01
"#
    )
}

/// The pool of an answered address.
fn pool_of(address: &str) -> usize {
    ADDRESSES
        .iter()
        .position(|pool| pool.contains(&address))
        .unwrap_or_else(|| panic!("{address} is no backend"))
}

/// Stops (or starts again) pool a's backends, and waits until the server's probes
/// have seen it: `name`'s answers all come from pool b (from pool a).
fn fail_a(server: &TestServer, backends: &[Backend], failed: bool, name: &str) {
    for backend in &backends[..2] {
        backend.set(if failed { Mode::Refuse } else { Mode::Healthy });
    }
    let want = if failed {
        [0.0, 1.0, 0.0]
    } else {
        [1.0, 0.0, 0.0]
    };
    assert!(
        wait_until(Duration::from_secs(20), || measure(server.addr, name, 20)
            == want),
        "{name} follows pool a {}",
        if failed { "down" } else { "up" }
    );
}

/// Asks `name` `n` times, each from another /24 (ECS), and returns each pool's
/// fraction of the answers.
fn measure(server: SocketAddr, name: &str, n: u32) -> [f64; 3] {
    let mut counts = [0u32; 3];
    for i in 0..n {
        let subnet = IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 0));
        let reply = udp(
            server,
            &with_edns(query(name, RecordType::A), 1232, Some((subnet, 24))),
        );
        let answered = addresses(&reply);
        let pool = pool_of(answered.first().expect("an answer"));
        // An answer holds endpoints of one pool only.
        assert!(
            answered.iter().all(|a| pool_of(a) == pool),
            "{name}: {answered:?}"
        );
        counts[pool] += 1;
    }
    counts.map(|c| f64::from(c) / f64::from(n))
}

/// The explanation of `name` from `/v1/explain`.
fn explain(admin: SocketAddr, name: &str) -> serde_json::Value {
    let (status, body) = http(admin, "GET", &format!("/v1/explain?name={name}"), &[], b"");
    assert_eq!(status, 200, "{body}");
    let explanation: serde_json::Value = serde_json::from_str(&body).unwrap();
    explanation["records"][0].clone()
}

/// Each pool's computed share (0 when explain lists none: the plain policy).
fn computed(explained: &serde_json::Value) -> [f64; 3] {
    let mut shares = [0.0; 3];
    for share in explained["shares"].as_array().into_iter().flatten() {
        let i = POOLS.iter().position(|p| share["pool"] == *p).unwrap();
        shares[i] = share["share"].as_f64().unwrap();
    }
    shares
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

#[test]
fn a_failed_pool_spills_by_headroom_and_without_spill_cascades() {
    let (server, admin, backends) = start();
    fail_a(&server, &backends, true, "cascade.example.test");
    let demand = 80.0; // a's capacity × max_load
    let mut table = vec![format!(
        "{:<22} {:>5} {:>9} {:>9} {:>11}",
        "record", "pool", "computed", "measured", "load/limit"
    )];
    for name in ["spill.example.test", "cascade.example.test"] {
        let explained = explain(admin, name);
        let measured = measure(server.addr, name, 10_000);
        let want = if name.starts_with("spill") {
            let want = computed(&explained);
            assert_eq!(want, [0.0, 0.5, 0.5], "{explained:#}");
            assert_eq!(
                explained["spill"], "spill: a failed; b 50% (load 40/40), c 50% (load 40/40)",
                "{explained:#}"
            );
            want
        } else {
            assert!(explained["shares"].is_null(), "{explained:#}");
            [0.0, 1.0, 0.0]
        };
        for i in 0..3 {
            table.push(format!(
                "{name:<22} {:>5} {:>8.1}% {:>8.1}% {:>5.1}/{:<5.1}",
                POOLS[i],
                want[i] * 100.0,
                measured[i] * 100.0,
                measured[i] * demand,
                LIMITS[i]
            ));
            assert!(
                (measured[i] - want[i]).abs() <= 0.02,
                "{name} pool {}: measured {} computed {}",
                POOLS[i],
                measured[i],
                want[i]
            );
            if name.starts_with("spill") {
                // Never past max_load (the ±2 points of measurement aside).
                assert!(
                    measured[i] * demand <= LIMITS[i] + 0.02 * demand,
                    "pool {} driven to {} of {}",
                    POOLS[i],
                    measured[i] * demand,
                    LIMITS[i]
                );
            }
        }
    }
    // The cascade drives b to twice its limit.
    println!(
        "FIGURES spill shares (a failed, 10,000 queries each):\n{}",
        table.join("\n")
    );
    // More demand than b and c can take: overloaded, and so says the metric.
    let over = explain(admin, "over.example.test");
    assert_eq!(over["overloaded"], true, "{over:#}");
    assert_eq!(computed(&over), [0.0, 0.6, 0.4]);
    let line = r#"failoverd_record_overloaded{record="over.example.test.",type="A"} "#;
    assert!(
        wait_until(Duration::from_secs(10), || metric(admin, line) == 1.0),
        "{line}1.0 (status follows the published answers)"
    );
    let line = r#"failoverd_record_overloaded{record="spill.example.test.",type="A"} "#;
    assert!(
        wait_until(Duration::from_secs(10), || metric(admin, line) == 0.0),
        "{line}0.0 (status follows the published answers)"
    );
    // ctl prints the same: explain's spill line, status's overloaded record.
    let servers = [format!("http://{admin}")];
    let (ok, text) = ctl_with(&servers, None, &["explain", "spill.example.test"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("\n  spill: a failed; b 50% (load 40/40), c 50% (load 40/40)\n"),
        "{text}"
    );
    let (ok, text) = ctl_with(&servers, None, &["status"]);
    assert!(ok, "{text}");
    let over = text
        .lines()
        .find(|l| l.starts_with("over.example.test."))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(over.contains("failover (health) (overloaded)"), "{text}");
    // a back: a answers alone, nothing overloaded. (While one of a's two
    // endpoints is back, a has half its capacity, 40 of 80: it keeps half the
    // traffic and the rest spills over b and c.)
    fail_a(&server, &backends, false, "cascade.example.test");
    assert!(
        wait_until(Duration::from_secs(20), || computed(&explain(
            admin,
            "spill.example.test"
        )) == [1.0, 0.0, 0.0]),
        "a takes its traffic back"
    );
    assert_eq!(
        measure(server.addr, "spill.example.test", 200),
        [1.0, 0.0, 0.0]
    );
    let line = r#"failoverd_record_overloaded{record="over.example.test.",type="A"} "#;
    assert!(
        wait_until(Duration::from_secs(10), || metric(admin, line) == 0.0),
        "{line}0.0 (status follows the published answers)"
    );
}

#[test]
fn trickle_sends_one_percent_to_the_next_pool_and_counts_it() {
    let (server, admin, backends) = start();
    let explained = explain(admin, "trickle.example.test");
    assert_eq!(computed(&explained), [0.99, 0.01, 0.0], "{explained:#}");
    let n = 20_000;
    let measured = measure(server.addr, "trickle.example.test", n);
    println!(
        "FIGURES trickle 0.01 over {n} answers: a {:.2}%, b {:.2}%, c {:.2}%",
        measured[0] * 100.0,
        measured[1] * 100.0,
        measured[2] * 100.0
    );
    assert!(
        (measured[1] - 0.01).abs() <= 0.003,
        "trickle measured {}",
        measured[1]
    );
    let trickled = (measured[1] * f64::from(n)).round();
    assert_eq!(
        metric(
            admin,
            r#"failoverd_record_trickle_answers_total{record="trickle.example.test.",type="A"} "#
        ),
        trickled,
        "every trickle answer counted once"
    );
    // The first pool down: no trickle, b answers alone.
    fail_a(&server, &backends, true, "trickle.example.test");
    let explained = explain(admin, "trickle.example.test");
    assert!(explained["shares"].is_null(), "{explained:#}");
    assert_eq!(
        measure(server.addr, "trickle.example.test", 200),
        [0.0, 1.0, 0.0]
    );
}
