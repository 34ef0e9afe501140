//! `explain` agrees with the DNS answer: for every record of the integration config
//! (failover, multivalue, weighted, geo), clients of every region (by ECS), and a run
//! of generated operator states (forces, drains, manual failovers), the answer a real
//! DNS client gets is drawn from the candidates `/v1/explain` names, is exactly them
//! where they fit in one answer, and carries the TTL it gives. What-if assumptions
//! change the explanation and nothing else. The same holds for spill-over and
//! trickle records, whose answers come from one pool with a share, for degraded
//! endpoints (real backends the test slows past `degraded_latency`), and for pools an
//! operator dialled (the generated states set dials of 0, 10, 50 and 100 %).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use failoverd::testing::model::{RandomSource, SplitMix64};
use failoverd::testing::service::StartOptions;
use hickory_proto::rr::RecordType;

use crate::support::backend::{Backend, Mode};
use crate::support::dns::{addresses, query, udp, with_edns};
use crate::support::{TestServer, http, integration_config, wait_until};

const RECORDS: [(&str, RecordType); 5] = [
    ("app.example.test", RecordType::A),
    ("app.example.test", RecordType::AAAA),
    ("weighted.example.test", RecordType::A),
    ("multi.example.test", RecordType::A),
    ("geo.example.test", RecordType::A),
];
/// ECS subnets: eu, us, no region (the default, us), none at all.
const CLIENTS: [Option<&str>; 4] = [
    Some("10.1.2.0/24"),
    Some("10.2.3.0/24"),
    Some("192.0.2.0/24"),
    None,
];
const ROUNDS: usize = 24;
const ENDPOINTS: [&str; 7] = [
    "eu/eu-1",
    "eu/eu-2",
    "us/us-1",
    "us/us-2",
    "v6/2001:db8::a",
    "v6/2001:db8::b",
    "sorry/203.0.113.1",
];

/// The integration config with an admin API (no tokens: changes from loopback).
fn start() -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(
        &integration_config(),
        StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StartOptions::default()
        },
    );
    let admin = server.service().admin_address().unwrap();
    (server, admin)
}

fn explain(
    admin: SocketAddr,
    name: &str,
    rtype: RecordType,
    ecs: Option<&str>,
    assume: &[&str],
) -> serde_json::Value {
    let mut path = format!("/v1/explain?name={name}&type={rtype}&client=127.0.0.1");
    if let Some(ecs) = ecs {
        path.push_str(&format!("&ecs={ecs}"));
    }
    for a in assume {
        path.push_str(&format!("&assume={a}"));
    }
    let (status, body) = http(admin, "GET", &path, &[], b"");
    assert_eq!(status, 200, "{path}: {body}");
    let explanation: serde_json::Value = serde_json::from_str(&body).unwrap();
    explanation["records"][0].clone()
}

fn ask(server: SocketAddr, name: &str, rtype: RecordType, ecs: Option<&str>) -> (Vec<String>, u32) {
    let subnet = ecs.map(|text| {
        let (addr, prefix) = text.split_once('/').unwrap();
        (
            addr.parse::<IpAddr>().unwrap(),
            prefix.parse::<u8>().unwrap(),
        )
    });
    let reply = udp(server, &with_edns(query(name, rtype), 1232, subnet));
    let ttl = reply.answers.first().map_or(0, |r| r.ttl);
    (addresses(&reply), ttl)
}

/// Makes an override (safety checks off: every state is explored); one that would
/// change nothing (a fallback endpoint forced up) is refused with 400 and its reason,
/// which leaves the state as it was.
fn post_override(admin: SocketAddr, body: &str) {
    let body = body.replacen('{', r#"{"allow_empty": true, "#, 1);
    let (status, text) = http(
        admin,
        "POST",
        "/v1/overrides",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert!(
        status == 200 || (status == 400 && text.contains("changes nothing")),
        "{body}: {status} {text}"
    );
}

/// Releases `target`; one with nothing in force is refused (404), changing nothing.
fn release(admin: SocketAddr, target: &str) {
    let body = format!(r#"{{"target": {target}}}"#);
    let (status, text) = http(
        admin,
        "POST",
        "/v1/overrides/release",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert!(
        status == 200 || (status == 404 && text.contains("nothing in force")),
        "{body}: {status} {text}"
    );
}

/// A change a generated-state run makes at the start of each round (round, draws).
type RoundChange<'a> = &'a dyn Fn(usize, &mut SplitMix64);

/// What a generated-state run covers: records, endpoints to change, manual
/// failovers (record, pool) to make, and pools to dial (none: no dials).
struct Case<'a> {
    records: &'a [(&'a str, RecordType)],
    endpoints: &'a [&'a str],
    failovers: &'a [(&'a str, &'a str)],
    pools: &'a [&'a str],
    /// Changes more at the start of every round (after the operator's), and waits
    /// until the server has taken it.
    each_round: Option<RoundChange<'a>>,
}

#[test]
fn explain_agrees_with_the_dns_answer_in_every_state() {
    let (server, admin) = start();
    let outcomes = agree(
        &server,
        admin,
        &Case {
            records: &RECORDS,
            endpoints: &ENDPOINTS,
            failovers: &[("app.example.test", "us"), ("geo.example.test", "eu")],
            pools: &["eu", "us"],
            each_round: None,
        },
    );
    assert!(
        outcomes.len() >= 4,
        "the generated states exercise the rules: {outcomes:?}"
    );
    assert!(
        outcomes.contains("dial"),
        "the generated states exercise dials: {outcomes:?}"
    );
}

/// Spill-over and trickle records: pools a (100), b (50), c (50) at max_load 0.8.
const SHARED_CONFIG: &str = r#"
[pools.a]
capacity = 100
max_load = 0.8
endpoints = [{ address = "192.0.2.101", name = "a1" }, { address = "192.0.2.102", name = "a2" }]
[pools.b]
capacity = 50
max_load = 0.8
endpoints = [{ address = "192.0.2.111", name = "b1" }, { address = "192.0.2.112", name = "b2", weight = 3 }]
[pools.c]
max_load = 0.8
endpoints = [{ address = "192.0.2.121", name = "c1", capacity = 25 }, { address = "192.0.2.122", name = "c2", capacity = 25 }]
[[records]]
name = "agree-spill.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
spill = true
[[records]]
name = "agree-weighted.example.test"
type = "A"
policy = "weighted"
pools = ["a", "b", "c"]
spill = true
demand = 120
[[records]]
name = "agree-trickle.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
trickle = 0.2
[[records]]
name = "agree-both.example.test"
type = "A"
policy = "failover"
pools = ["a", "b", "c"]
spill = true
demand = 90
trickle = 0.1
"#;

#[test]
fn explain_agrees_with_the_dns_answer_for_spill_and_trickle_records() {
    let config = format!("{}{SHARED_CONFIG}", crate::support::SERVER_HEAD);
    let (server, admin) = TestServer::with_admin(&config);
    let records = [
        ("agree-spill.example.test", RecordType::A),
        ("agree-weighted.example.test", RecordType::A),
        ("agree-trickle.example.test", RecordType::A),
        ("agree-both.example.test", RecordType::A),
    ];
    let outcomes = agree(
        &server,
        admin,
        &Case {
            records: &records,
            endpoints: &["a/a1", "a/a2", "b/b1", "b/b2", "c/c1", "c/c2"],
            failovers: &[
                ("agree-spill.example.test", "b"),
                ("agree-trickle.example.test", "c"),
            ],
            pools: &["a", "b", "c"],
            each_round: None,
        },
    );
    for expected in ["spill", "trickle", "overloaded"] {
        assert!(
            outcomes.contains(expected),
            "the generated states exercise {expected}: {outcomes:?}"
        );
    }
}

/// Degraded endpoints: pools a (a1, a2) and b (b1, b2) of real backends probed with
/// `degraded_latency`; records of every policy, and spill-over.
fn degraded_config(port: u16) -> String {
    format!(
        r#"{head}
[checks.web]
type = "http"
port = {port}
interval = "200ms"
timeout = "190ms"
rise = 1
fall = 1
degraded_latency = "80ms"
[pools.a]
check = "web"
max_load = 0.8
endpoints = [{{ address = "127.0.0.71", name = "a1", capacity = 50 }}, {{ address = "127.0.0.72", name = "a2", capacity = 50, weight = 3 }}]
[pools.b]
check = "web"
max_load = 0.8
endpoints = [{{ address = "127.0.0.73", name = "b1", capacity = 25 }}, {{ address = "127.0.0.74", name = "b2", capacity = 25 }}]
[[records]]
name = "dg-failover.example.test"
type = "A"
policy = "failover"
pools = ["a", "b"]
max_answers = 1
[[records]]
name = "dg-weighted.example.test"
type = "A"
policy = "weighted"
pools = ["a", "b"]
[[records]]
name = "dg-multi.example.test"
type = "A"
policy = "multivalue"
pools = ["a", "b"]
[[records]]
name = "dg-spill.example.test"
type = "A"
policy = "failover"
pools = ["a", "b"]
spill = true
"#,
        head = crate::support::SERVER_HEAD
    )
}

#[test]
fn explain_agrees_with_the_dns_answer_with_degraded_endpoints() {
    const LABELS: [&str; 4] = ["a/a1", "a/a2", "b/b1", "b/b2"];
    let first = Backend::start("127.0.0.71".parse().unwrap(), 0, None);
    let port = first.addr.port();
    let mut backends = vec![first];
    for address in ["127.0.0.72", "127.0.0.73", "127.0.0.74"] {
        backends.push(Backend::start(address.parse().unwrap(), port, None));
    }
    let (server, admin) = TestServer::with_admin(&degraded_config(port));
    let status = || -> serde_json::Value {
        let (code, body) = http(admin, "GET", "/v1/status", &[], b"");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    // Each round slows each backend or not (past degraded_latency, within the
    // timeout), then waits until every endpoint the operator does not force is
    // published degraded exactly when its backend is slow.
    let each_round = |round: usize, rng: &mut SplitMix64| {
        let slow: Vec<bool> = (0..LABELS.len()).map(|_| rng.below(3) == 0).collect();
        for (backend, &slow) in backends.iter().zip(&slow) {
            backend.set(if slow {
                Mode::Slow(std::time::Duration::from_millis(130))
            } else {
                Mode::Healthy
            });
        }
        let mut last = serde_json::Value::Null;
        let settled = wait_until(std::time::Duration::from_secs(20), || {
            last = status();
            LABELS.iter().zip(&slow).all(|(label, &slow)| {
                let e = last["endpoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["endpoint"] == *label)
                    .unwrap();
                e["forced_by_operator"] == true
                    || (e["state"] == "up" && e["degraded"].as_f64().is_some() == slow)
            })
        });
        assert!(settled, "round {round}: slow {slow:?}: {last:#}");
    };
    let records = [
        ("dg-failover.example.test", RecordType::A),
        ("dg-weighted.example.test", RecordType::A),
        ("dg-multi.example.test", RecordType::A),
        ("dg-spill.example.test", RecordType::A),
    ];
    let outcomes = agree(
        &server,
        admin,
        &Case {
            records: &records,
            endpoints: &LABELS,
            failovers: &[("dg-failover.example.test", "b")],
            pools: &[],
            each_round: Some(&each_round),
        },
    );
    assert!(
        outcomes.contains("degraded"),
        "the generated states answer degraded endpoints: {outcomes:?}"
    );
}

/// Changes the operator state at random for `ROUNDS` rounds; after each, every
/// record's DNS answer for every client must be what `/v1/explain` says. Returns
/// the outcomes seen (and `spill`, `trickle`, `overloaded` when shares applied).
fn agree(server: &TestServer, admin: SocketAddr, case: &Case<'_>) -> BTreeSet<String> {
    let mut rng = SplitMix64::new(0x5eed);
    let mut checked = 0;
    let mut outcomes = BTreeSet::new();
    for round in 0..ROUNDS {
        if round > 0 {
            // Change one to three things at random.
            for _ in 0..=rng.below(3) {
                let endpoint = case.endpoints[rng.below(case.endpoints.len() as u64) as usize];
                let target = format!(r#"{{"endpoint": "{endpoint}"}}"#);
                // Dials only where the case names pools (the draws stay as they
                // were for a case without).
                match rng.below(if case.pools.is_empty() { 8 } else { 10 }) {
                    0 | 6 | 7 => post_override(
                        admin,
                        &format!(
                            r#"{{"target": {target}, "action": "force_down", "reason": "r{round}"}}"#
                        ),
                    ),
                    1 => post_override(
                        admin,
                        &format!(
                            r#"{{"target": {target}, "action": "drain", "reason": "r{round}"}}"#
                        ),
                    ),
                    2 => post_override(
                        admin,
                        &format!(
                            r#"{{"target": {target}, "action": "force_up", "reason": "r{round}"}}"#
                        ),
                    ),
                    3 => release(admin, &target),
                    4 => {
                        let (name, to) =
                            case.failovers[rng.below(case.failovers.len() as u64) as usize];
                        post_override(
                            admin,
                            &format!(
                                r#"{{"target": {{"record": {{"name": "{name}"}}}}, "action": {{"failover": "{to}"}}, "reason": "r{round}"}}"#
                            ),
                        );
                    }
                    8 => {
                        let pool = case.pools[rng.below(case.pools.len() as u64) as usize];
                        let percent = [0, 10, 50, 100][rng.below(4) as usize];
                        post_override(
                            admin,
                            &format!(
                                r#"{{"target": {{"pool": "{pool}"}}, "action": {{"dial": {percent}}}, "reason": "r{round}"}}"#
                            ),
                        );
                    }
                    9 => {
                        let pool = case.pools[rng.below(case.pools.len() as u64) as usize];
                        release(admin, &format!(r#"{{"pool": "{pool}"}}"#));
                    }
                    _ => release(
                        admin,
                        &format!(r#"{{"record": {{"name": "{}"}}}}"#, case.failovers[0].0),
                    ),
                }
            }
            if let Some(each_round) = case.each_round {
                each_round(round, &mut rng);
            }
        }
        for &(name, rtype) in case.records {
            for ecs in CLIENTS {
                let explained = explain(admin, name, rtype, ecs, &[]);
                let candidates: BTreeSet<String> = strings(&explained["candidates"]);
                let max = explained["max_answers"].as_u64().unwrap() as usize;
                let (answer, ttl) = ask(server.addr, name, rtype, ecs);
                let answer: BTreeSet<String> = answer.into_iter().collect();
                let context =
                    format!("round {round}, {name} {rtype}, ecs {ecs:?}: explain {explained:#}");
                assert!(
                    answer.is_subset(&candidates),
                    "{context}\nDNS answered {answer:?}"
                );
                match explained["shares"].as_array() {
                    // Spill-over and trickle: an answer holds endpoints of one pool
                    // with a share (all of them where they fit).
                    Some(shares) => {
                        let pool = shares.iter().find(|s| {
                            s["share"].as_f64().unwrap() > 0.0
                                && answer.is_subset(&strings(&s["candidates"]))
                        });
                        let pool = pool.unwrap_or_else(|| {
                            panic!("{context}\nDNS answered {answer:?}, from no pool with a share")
                        });
                        let theirs = strings(&pool["candidates"]);
                        if theirs.len() <= max {
                            assert_eq!(answer, theirs, "{context}");
                        }
                        let share_sum: f64 =
                            shares.iter().map(|s| s["share"].as_f64().unwrap()).sum();
                        assert!((share_sum - 1.0).abs() < 1e-9, "{context}");
                        outcomes.insert(
                            explained["spill"]
                                .as_str()
                                .unwrap()
                                .split(':')
                                .next()
                                .unwrap()
                                .to_owned(),
                        );
                        if explained["overloaded"] == true {
                            outcomes.insert("overloaded".to_owned());
                        }
                    }
                    None => {
                        if candidates.len() <= max {
                            // Multivalue answers hold a degraded (or slow-starting)
                            // endpoint, or one of a dialled pool, in only its share of
                            // the answers; every other candidate is in each.
                            let mut partial: BTreeSet<String> =
                                if explained["policy"] == "multivalue" {
                                    explained["pools"]
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .flat_map(|p| p["endpoints"].as_array().unwrap())
                                        .filter(|e| {
                                            e["degraded"].as_f64().is_some()
                                                || e["share"].as_u64() != Some(1000)
                                        })
                                        .map(|e| e["target"].as_str().unwrap().to_owned())
                                        .collect()
                                } else {
                                    BTreeSet::new()
                                };
                            partial.extend(dialled_targets(&explained));
                            let required: BTreeSet<String> =
                                candidates.difference(&partial).cloned().collect();
                            if partial.is_empty() {
                                assert_eq!(answer, candidates, "{context}");
                            } else {
                                assert!(
                                    required.is_subset(&answer),
                                    "{context}\nDNS answered {answer:?}, without all of {required:?}"
                                );
                            }
                        }
                    }
                }
                if !answer.is_empty() {
                    assert_eq!(
                        u64::from(ttl),
                        explained["ttl"].as_u64().unwrap(),
                        "{context}"
                    );
                }
                outcomes.insert(explained["outcome"].as_str().unwrap().to_owned());
                let degraded = explained["pools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|p| p["endpoints"].as_array().unwrap())
                    .filter(|e| e["degraded"].as_f64().is_some())
                    .filter(|e| candidates.contains(e["target"].as_str().unwrap()))
                    .count();
                if degraded > 0 {
                    outcomes.insert("degraded".to_owned());
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, ROUNDS * case.records.len() * CLIENTS.len());
    outcomes
}

/// The targets of the pools considered that have a dial below 100 %.
fn dialled_targets(explained: &serde_json::Value) -> BTreeSet<String> {
    explained["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["dial"].as_u64().is_some_and(|d| d < 100))
        .flat_map(|p| p["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect()
}

fn strings(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn what_if_changes_the_explanation_and_nothing_else() {
    let (server, admin) = start();
    let now = explain(admin, "app.example.test", RecordType::A, None, &[]);
    assert_eq!(now["outcome"], "healthy");
    assert_eq!(now["pool"], "eu");
    let what_if = explain(
        admin,
        "app.example.test",
        RecordType::A,
        None,
        &["eu/eu-1=down", "eu/eu-2=down"],
    );
    assert_eq!(what_if["outcome"], "failover", "{what_if:#}");
    assert_eq!(what_if["pool"], "us");
    let (answer, _) = ask(server.addr, "app.example.test", RecordType::A, None);
    assert_eq!(answer.len(), 2);
    assert!(
        answer.iter().all(|a| a.starts_with("192.0.2.1")),
        "the real answer is untouched: {answer:?}"
    );
    // A bad assumption or an unknown record is a clear error.
    let (status, body) = http(
        admin,
        "GET",
        "/v1/explain?name=app.example.test&assume=eu/zz=down",
        &[],
        b"",
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(admin, "GET", "/v1/explain?name=nope.example.test", &[], b"");
    assert_eq!(status, 404);
    let (status, _) = http(
        admin,
        "GET",
        "/v1/explain?name=app.example.test&colour=red",
        &[],
        b"",
    );
    assert_eq!(status, 400);
}
