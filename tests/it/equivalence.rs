//! The pre-encoded (cached) answer path and the full encoder produce identical bytes.

use std::net::IpAddr;
use std::sync::Arc;

use failoverd::config::ConfigSource;
use failoverd::dns::{Responder, Snapshot, Transport};
use failoverd::health::HealthSnapshot;
use failoverd::service;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::support::dns::{query, with_edns};
use crate::support::{data_dir, integration_config};

fn snapshot() -> Snapshot {
    let loaded = service::load(ConfigSource::from_text(
        integration_config(),
        data_dir().join("configs"),
    ))
    .expect("valid");
    let health = HealthSnapshot::from_config(&loaded.config);
    Snapshot::build(Arc::clone(&loaded.config), loaded.zones, health, 7)
}

/// Every owner name in the zones, in mixed case, plus names that do not exist.
fn names(snapshot: &Snapshot) -> Vec<String> {
    let mut names = Vec::new();
    for zone in snapshot.zones.zones() {
        for node in zone.nodes() {
            let text = failoverd::zone::name::text_from_wire(node.name());
            names.push(text.clone());
            // Alternate case, to check case-insensitive compression.
            let mixed: String = text
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            names.push(mixed);
            names.push(format!("nx.{text}"));
        }
    }
    names
}

#[test]
fn cached_and_uncached_answers_are_byte_identical() {
    let snapshot = snapshot();
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::MX,
        RecordType::NS,
        RecordType::SOA,
        RecordType::TXT,
        RecordType::DS,
        RecordType::ANY,
        RecordType::SRV,
    ];
    let client: IpAddr = "10.1.2.3".parse().unwrap();
    let mut compared = 0;
    let mut cache_hits = 0;
    for name in names(&snapshot) {
        for rtype in types {
            let plain = query(&name, rtype);
            let variants = [
                plain.clone(),
                with_edns(plain.clone(), 1232, None),
                with_edns(plain.clone(), 512, None),
                with_edns(plain.clone(), 4096, Some(("10.1.2.0".parse().unwrap(), 24))),
            ];
            for message in variants {
                let bytes = message.to_vec().unwrap();
                for transport in [Transport::Udp, Transport::Tcp] {
                    let seed = compared as u64;
                    let mut cached = Responder::new(seed);
                    let mut uncached = Responder::new(seed);
                    uncached.use_cache = false;
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    cached.respond(&snapshot, &bytes, client, transport, &mut a);
                    uncached.respond(&snapshot, &bytes, client, transport, &mut b);
                    assert_eq!(a, b, "{name} {rtype} {transport:?}");
                    Message::from_vec(&a)
                        .unwrap_or_else(|e| panic!("{name} {rtype}: undecodable: {e}"));
                    cache_hits += cached.cache_hits;
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 1000, "{compared}");
    assert!(
        cache_hits > 200,
        "the cache was exercised only {cache_hits} times"
    );
}
