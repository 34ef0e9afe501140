//! Every policy and all-down mode, observed through real DNS queries while endpoint
//! health is changed under the running server.

use std::collections::HashMap;
use std::net::IpAddr;

use failoverd::testing::health::HealthSnapshot;
use failoverd::testing::model::HealthState;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::TestServer;
use crate::support::dns::{addresses, ask, query, rcode, reply_subnet, udp, with_edns};

/// Publishes health with the named endpoints (`pool/name`) down.
fn set_down(server: &TestServer, down: &[&str]) {
    let snapshot = server.service().snapshot().load_full();
    let config = &snapshot.config;
    let states = (0..config.endpoints.len()).map(|i| {
        let label = config.endpoint_label(failoverd::testing::model::EndpointIndex(i as u32));
        if down.contains(&label.as_str()) {
            HealthState::Down
        } else {
            HealthState::Up
        }
    });
    server
        .service()
        .set_health(HealthSnapshot::from_states(states));
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const EU: [&str; 2] = ["eu/eu-1", "eu/eu-2"];
const US: [&str; 2] = ["us/us-1", "us/us-2"];

#[test]
fn failover_moves_to_the_next_pool_and_fails_open_when_all_are_down() {
    let server = TestServer::integration();
    let name = "app.example.test.";
    let reply = ask(server.addr, name, RecordType::A);
    assert_eq!(sorted(addresses(&reply)), ["192.0.2.11", "192.0.2.12"]);
    assert_eq!(reply.answers[0].ttl, 20);
    set_down(&server, &["eu/eu-1"]);
    assert_eq!(
        addresses(&ask(server.addr, name, RecordType::A)),
        ["192.0.2.12"]
    );
    set_down(&server, &EU);
    assert_eq!(
        sorted(addresses(&ask(server.addr, name, RecordType::A))),
        ["198.51.100.21", "198.51.100.22"]
    );
    // Everything down: fail open (the primary pool, like Route 53) with a short TTL.
    set_down(&server, &[EU[0], EU[1], US[0], US[1]]);
    let reply = ask(server.addr, name, RecordType::A);
    assert_eq!(sorted(addresses(&reply)), ["192.0.2.11", "192.0.2.12"]);
    assert_eq!(
        reply.answers[0].ttl, 10,
        "all_down_ttl defaults to min(ttl, 10)"
    );
    // Recovery goes back to the primary.
    set_down(&server, &[]);
    assert_eq!(
        sorted(addresses(&ask(server.addr, name, RecordType::A))),
        ["192.0.2.11", "192.0.2.12"]
    );
}

#[test]
fn weighted_respects_weights_and_falls_back_to_the_fallback_pool() {
    let server = TestServer::integration();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let n = 800;
    for _ in 0..n {
        let reply = ask(server.addr, "weighted.example.test.", RecordType::A);
        let got = addresses(&reply);
        assert_eq!(got.len(), 1, "weighted answers one address by default");
        *counts.entry(got[0].clone()).or_default() += 1;
    }
    let heavy = f64::from(counts["198.51.100.22"]) / f64::from(n);
    assert!(
        (heavy - 0.75).abs() < 0.08,
        "weight 3 of 4 got {heavy:.2}: {counts:?}"
    );
    set_down(&server, &["us/us-2"]);
    for _ in 0..20 {
        assert_eq!(
            addresses(&ask(server.addr, "weighted.example.test.", RecordType::A)),
            ["198.51.100.21"]
        );
    }
    set_down(&server, &US);
    assert_eq!(
        addresses(&ask(server.addr, "weighted.example.test.", RecordType::A)),
        ["203.0.113.1"]
    );
}

#[test]
fn multivalue_answers_healthy_endpoints_up_to_max_and_nodata_when_all_down() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "multi.example.test.", RecordType::A);
    assert_eq!(addresses(&reply).len(), 3, "max_answers = 3 of 4 healthy");
    set_down(&server, &["eu/eu-1", "us/us-1"]);
    for _ in 0..20 {
        let got = sorted(addresses(&ask(
            server.addr,
            "multi.example.test.",
            RecordType::A,
        )));
        assert_eq!(got, ["192.0.2.12", "198.51.100.22"]);
    }
    set_down(&server, &[EU[0], EU[1], US[0], US[1]]);
    let reply = ask(server.addr, "multi.example.test.", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(reply.answers.is_empty(), "all_down = nodata fails closed");
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    assert!(reply.authorities[0].ttl <= 10);
    // AAAA multivalue on another pool is unaffected.
    assert_eq!(
        addresses(&ask(server.addr, "app.example.test.", RecordType::AAAA)).len(),
        2
    );
}

#[test]
fn geo_follows_client_subnet_and_reports_the_scope() {
    let server = TestServer::integration();
    let ask_from = |subnet: &str, prefix: u8| {
        let addr: IpAddr = subnet.parse().unwrap();
        udp(
            server.addr,
            &with_edns(
                query("geo.example.test.", RecordType::A),
                1232,
                Some((addr, prefix)),
            ),
        )
    };
    let eu = ask_from("10.1.2.0", 24);
    assert_eq!(sorted(addresses(&eu)), ["192.0.2.11", "192.0.2.12"]);
    let scope = reply_subnet(&eu).expect("ECS echoed");
    assert_eq!((scope.source_prefix(), scope.scope_prefix()), (24, 16));
    let us = ask_from("10.2.0.0", 16);
    assert_eq!(sorted(addresses(&us)), ["198.51.100.21", "198.51.100.22"]);
    // Unmapped clients get the default region; the scope still covers a block.
    let other = ask_from("192.0.2.0", 24);
    assert_eq!(
        sorted(addresses(&other)),
        ["198.51.100.21", "198.51.100.22"]
    );
    assert!(reply_subnet(&other).unwrap().scope_prefix() >= 1);
    // IPv6 client subnets map too.
    let v6 = ask_from("2001:db8:e::", 56);
    assert_eq!(sorted(addresses(&v6)), ["192.0.2.11", "192.0.2.12"]);
    assert_eq!(reply_subnet(&v6).unwrap().scope_prefix(), 48);
    // Without ECS the resolver's own address (127.0.0.1, unmapped) decides.
    let plain = ask(server.addr, "geo.example.test.", RecordType::A);
    assert_eq!(
        sorted(addresses(&plain)),
        ["198.51.100.21", "198.51.100.22"]
    );
    assert!(reply_subnet(&plain).is_none());
    // Answers that do not depend on the client carry scope 0.
    let static_reply = udp(
        server.addr,
        &with_edns(
            query("www.example.test.", RecordType::A),
            1232,
            Some(("10.1.2.0".parse().unwrap(), 24)),
        ),
    );
    assert_eq!(reply_subnet(&static_reply).unwrap().scope_prefix(), 0);
    // eu down: eu clients fail over to us.
    set_down(&server, &EU);
    assert_eq!(
        sorted(addresses(&ask_from("10.1.2.0", 24))),
        ["198.51.100.21", "198.51.100.22"]
    );
}

#[test]
fn dynamic_cname_answers_one_target() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "cdn.example.test.", RecordType::CNAME);
    assert_eq!(reply.answers.len(), 1);
    let target = reply.answers[0].data.to_string();
    assert!(
        target == "cdn-a.example.net." || target == "cdn-b.example.net.",
        "{target}"
    );
    set_down(&server, &["cdn/cdn-a.example.net."]);
    for _ in 0..10 {
        let reply = ask(server.addr, "cdn.example.test.", RecordType::A);
        assert_eq!(reply.answers[0].data.to_string(), "cdn-b.example.net.");
    }
}
