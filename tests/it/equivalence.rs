//! The pre-encoded (cached) answer path and the full encoder produce identical bytes.

use std::net::IpAddr;
use std::sync::Arc;

use failoverd::testing::config::ConfigSource;
use failoverd::testing::dns::{Responder, Snapshot, Transport};
use failoverd::testing::health::HealthSnapshot;
use failoverd::testing::service;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::support::dns::{query, with_edns};
use crate::support::{data_dir, integration_config};

fn snapshot() -> Snapshot {
    signed_snapshot(None)
}

/// The integration snapshot, with `example.test` signed (`nsec` kind, a key made in
/// `keys`) when given.
fn signed_snapshot(signed: Option<(&str, &std::path::Path)>) -> Snapshot {
    let mut text = integration_config();
    if let Some((nsec, keys)) = signed {
        use failoverd::testing::dnssec::{Algorithm, Key, Role, Timing};
        Key::generate(
            "example.test.",
            Role::Csk,
            Algorithm::Ed25519,
            Timing::from(0),
        )
        .unwrap()
        .save(keys)
        .unwrap();
        text.push_str(&format!(
            "\n[dnssec]\nkey_directory = \"{}\"\nzones = [\"example.test\"]\nnsec = \"{nsec}\"\n",
            keys.display()
        ));
    }
    let loaded =
        service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
    let health = HealthSnapshot::from_config(&loaded.config);
    let signing = loaded
        .keys
        .clone()
        .map(|keys| failoverd::testing::dnssec::Signing {
            keys,
            now: failoverd::testing::dnssec::keys::unix_now(),
        });
    Snapshot::build_signed(
        Arc::clone(&loaded.config),
        loaded.zones,
        health,
        7,
        signing.as_ref(),
    )
    .expect("signed")
}

/// `message` with DO set on its OPT record.
fn with_do(mut message: Message) -> Message {
    if let Some(edns) = message.edns.as_mut() {
        edns.set_dnssec_ok(true);
    }
    message
}

/// Every owner name in the zones, in mixed case, plus names that do not exist.
fn names(snapshot: &Snapshot) -> Vec<String> {
    let mut names = Vec::new();
    for zone in snapshot.zones.zones() {
        for node in zone.nodes() {
            let text = failoverd::testing::zone::name::text_from_wire(node.name());
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
    compare(&snapshot(), false);
}

/// The same with DO=1 against the zone signed (NSEC3 and NSEC): pre-encoded answers
/// with their RRSIGs equal encoding the records and signatures one by one.
#[test]
fn cached_and_uncached_signed_answers_are_byte_identical() {
    let keys = tempfile::tempdir().unwrap();
    for nsec in ["nsec3", "nsec"] {
        let dir = keys.path().join(nsec);
        compare(&signed_snapshot(Some((nsec, &dir))), true);
    }
}

fn compare(snapshot: &Snapshot, dnssec_ok: bool) {
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
    for name in names(snapshot) {
        for rtype in types {
            let plain = query(&name, rtype);
            let variants = [
                plain.clone(),
                with_edns(plain.clone(), 1232, None),
                with_edns(plain.clone(), 512, None),
                with_edns(plain.clone(), 4096, Some(("10.1.2.0".parse().unwrap(), 24))),
            ];
            for message in variants {
                let message = if dnssec_ok { with_do(message) } else { message };
                let bytes = message.to_vec().unwrap();
                for transport in [Transport::Udp, Transport::Tcp] {
                    let seed = compared as u64;
                    let mut cached = Responder::new(seed);
                    let mut uncached = Responder::new(seed);
                    uncached.use_cache = false;
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    cached.respond(snapshot, &bytes, client, transport, &mut a);
                    uncached.respond(snapshot, &bytes, client, transport, &mut b);
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
