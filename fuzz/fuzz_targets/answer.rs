//! Whole packet → answer path: parse, resolve, encode, truncate — over UDP and TCP
//! limits, with and without the pre-encoded answers, which must agree byte for byte.
//! Any reply must decode as DNS.

#![no_main]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use failoverd::config::ConfigSource;
use failoverd::dns::engine::Outcome;
use failoverd::dns::{Responder, Snapshot, Transport};
use failoverd::health::HealthSnapshot;
use libfuzzer_sys::fuzz_target;

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/configs");
    let text = std::fs::read_to_string(data.join("integration.toml")).expect("config");
    let loaded = failoverd::service::load(ConfigSource::from_text(text, data)).expect("valid config");
    let health = HealthSnapshot::from_config(&loaded.config);
    Snapshot::build(Arc::clone(&loaded.config), loaded.zones, health, 1)
});

fuzz_target!(|data: &[u8]| {
    let snapshot = &*SNAPSHOT;
    // The first byte picks the client address, so geo placement varies too.
    let client: IpAddr = match data.first() {
        Some(b) if b % 3 == 0 => IpAddr::from([10, 1, *b, 1]),
        Some(b) if b % 3 == 1 => IpAddr::from([0x2001, 0xdb8, 0xe, 0, 0, 0, 0, u16::from(*b)]),
        _ => IpAddr::from([127, 0, 0, 1]),
    };
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut cached = Responder::new(42);
        let mut uncached = Responder::new(42);
        uncached.use_cache = false;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let outcome_a = cached.respond(snapshot, data, client, transport, &mut a);
        let outcome_b = uncached.respond(snapshot, data, client, transport, &mut b);
        assert_eq!(outcome_a, outcome_b);
        if let Outcome::Answered(_) = outcome_a {
            assert_eq!(a, b, "cached and uncached answers differ");
            if transport == Transport::Udp {
                assert!(a.len() <= 4096, "UDP answer over the largest payload");
            }
            if let Err(error) = hickory_proto::op::Message::from_vec(&a) {
                panic!("undecodable reply {error}: {a:?}");
            }
            assert_eq!(a[..2], data[..2], "reply id");
            assert!(a[2] & 0x80 != 0, "QR set");
        }
    }
});
