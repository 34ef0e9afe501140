//! The answer path allocates nothing per query: a counting global allocator (its own
//! test binary, so nothing else runs beside it) watches the responder answer every
//! kind of query — static, in-zone CNAME chains, wildcards, delegations, NXDOMAIN,
//! dynamic records of every policy, geo with ECS, EDNS, truncation, malformed input —
//! and the same with DO=1 against the zone signed (NSEC3 and NSEC): RRSIGs and
//! denial records are looked up, never made, per query.

#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use failoverd::testing::config::ConfigSource;
use failoverd::testing::dns::{Responder, Snapshot, Transport};
use failoverd::testing::dnssec::{Algorithm, Key, Role, Signing, Timing};
use failoverd::testing::health::HealthSnapshot;
use failoverd::testing::service;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

/// Counts allocations while `COUNTING` is set (on this thread's watch only: the test
/// is single-threaded while counting).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The integration config's snapshot; with `nsec` ("nsec3" or "nsec") its zone
/// `example.test` signed with a fresh key in `keys`.
fn snapshot(signed: Option<(&str, &std::path::Path)>) -> Snapshot {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut text = std::fs::read_to_string(data.join("configs/integration.toml")).expect("config");
    if let Some((nsec, keys)) = signed {
        let key = Key::generate(
            "example.test.",
            Role::Csk,
            Algorithm::Ed25519,
            Timing::from(0),
        )
        .expect("key");
        key.save(keys).expect("save key");
        text.push_str(&format!(
            "\n[dnssec]\nkey_directory = \"{}\"\nzones = [\"example.test\"]\nnsec = \"{nsec}\"\n",
            keys.display()
        ));
    }
    let loaded =
        service::load(ConfigSource::from_text(text, data.join("configs"))).expect("valid config");
    let health = HealthSnapshot::from_config(&loaded.config);
    let signing = loaded.keys.clone().map(|keys| Signing {
        keys,
        now: failoverd::testing::dnssec::keys::unix_now(),
    });
    Snapshot::build_signed(
        Arc::clone(&loaded.config),
        loaded.zones,
        health,
        1,
        signing.as_ref(),
    )
    .expect("signed")
}

type Edns1 = Option<(u16, Option<(IpAddr, u8)>, bool)>;

fn packet(name: &str, rtype: RecordType, edns: Edns1) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 0x1234;
    message.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if let Some((payload, subnet, dnssec_ok)) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        opt.set_dnssec_ok(dnssec_ok);
        if let Some((addr, prefix)) = subnet {
            opt.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
        }
        message.set_edns(opt);
    }
    message.to_vec().expect("encode")
}

#[test]
fn answering_allocates_nothing() {
    let keys = tempfile::tempdir().expect("tempdir");
    assert!(
        snapshot(Some(("nsec3", &keys.path().join("check"))))
            .signed_at()
            .is_some()
    );
    let nsec3 = keys.path().join("nsec3");
    let nsec = keys.path().join("nsec");
    for snapshot in [
        snapshot(None),
        snapshot(Some(("nsec3", &nsec3))),
        snapshot(Some(("nsec", &nsec))),
    ] {
        let signed = snapshot.signed_zone(0).is_some() || snapshot.signed_zone(1).is_some();
        assert_eq!(signed, snapshot.signed_at().is_some());
        answers_allocate_nothing(&snapshot);
    }
}

fn answers_allocate_nothing(snapshot: &Snapshot) {
    let eu: IpAddr = "10.1.2.3".parse().unwrap();
    let mut queries: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, rtype) in [
        ("www.example.test", RecordType::A),
        ("WwW.ExAmPlE.TeSt", RecordType::A),
        ("alias1.example.test", RecordType::A),
        ("loop1.example.test", RecordType::A),
        ("x.wild.example.test", RecordType::TXT),
        ("x.cname-wild.example.test", RecordType::A),
        ("host.sub.example.test", RecordType::A),
        ("nothing.example.test", RecordType::A),
        ("b.ent.example.test", RecordType::A),
        ("example.test", RecordType::ANY),
        ("big.example.test", RecordType::TXT),
        ("mx-big.example.test", RecordType::MX),
        ("app.example.test", RecordType::A),
        ("app.example.test", RecordType::AAAA),
        ("weighted.example.test", RecordType::A),
        ("multi.example.test", RecordType::A),
        ("geo.example.test", RecordType::A),
        ("www.example.org", RecordType::A),
        ("www.example.test", RecordType::TXT),
        ("x.wild.example.test", RecordType::MX),
        ("broken.example.test", RecordType::A),
        ("sub.example.test", RecordType::DS),
        ("example.test", RecordType::DNSKEY),
    ] {
        queries.push((name, packet(name, rtype, None)));
        queries.push((name, packet(name, rtype, Some((1232, None, false)))));
        queries.push((name, packet(name, rtype, Some((1232, None, true)))));
        queries.push((name, packet(name, rtype, Some((512, None, true)))));
    }
    queries.push((
        "geo ECS",
        packet(
            "geo.example.test",
            RecordType::A,
            Some((1232, Some((eu, 24)), true)),
        ),
    ));
    queries.push(("malformed", vec![0x12, 0x34, 0, 0, 0, 1]));
    let mut responder = Responder::new(7);
    let mut out = Vec::with_capacity(65535);
    let src: IpAddr = "192.0.2.200".parse().unwrap();
    // Warm up (first-use buffers), then count.
    for (_, bytes) in &queries {
        out.clear();
        responder.respond(snapshot, bytes, src, Transport::Udp, &mut out);
    }
    let mut allocating = Vec::new();
    for (label, bytes) in &queries {
        for transport in [Transport::Udp, Transport::Tcp] {
            out.clear();
            ALLOCATIONS.store(0, Ordering::Relaxed);
            COUNTING.store(true, Ordering::Relaxed);
            for _ in 0..10 {
                out.clear();
                responder.respond(snapshot, bytes, src, transport, &mut out);
            }
            COUNTING.store(false, Ordering::Relaxed);
            let count = ALLOCATIONS.load(Ordering::Relaxed);
            if count > 0 {
                allocating.push(format!(
                    "{label} over {transport:?}: {count} allocations / 10 queries"
                ));
            }
        }
    }
    assert!(allocating.is_empty(), "{allocating:#?}");
}
