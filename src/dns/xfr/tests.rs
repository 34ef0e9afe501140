//! The transferable content built from real snapshots of the integration config
//! (one record per policy), through `respond` as a secondary sees it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

use super::*;
use crate::config::{Config, ConfigSource};
use crate::health::HealthSnapshot;
use crate::model::{EndpointIndex, HealthState};

fn config() -> Arc<Config> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs");
    let mut text = std::fs::read_to_string(dir.join("integration.toml")).unwrap();
    text.push_str(
        "\n[transfer]\njournal_versions = 2\n[[transfer.secondaries]]\nname = \"t\"\nzones = [\"example.test\"]\nallow = [\"127.0.0.1\"]\n",
    );
    let (config, diagnostics) = Config::load(ConfigSource::from_text(text, dir)).unwrap();
    assert!(!diagnostics.has_errors(), "{diagnostics}");
    Arc::new(config)
}

fn health(config: &Config, down: &[&str]) -> HealthSnapshot {
    HealthSnapshot::from_states((0..config.endpoints.len()).map(|i| {
        let label = config.endpoint_label(EndpointIndex(i as u32));
        if down.iter().any(|d| label.ends_with(d)) {
            HealthState::Down
        } else {
            HealthState::Up
        }
    }))
}

/// `name type data` of every record of an AXFR (closing SOA dropped).
fn axfr(state: &TransferState) -> (u32, BTreeSet<String>) {
    let mut request = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    request.extend_from_slice(&name::wire_from_text("example.test.").unwrap());
    request.extend_from_slice(&[0, 252, 0, 1]);
    let messages = transfer(&request, "127.0.0.1".parse().unwrap(), state).unwrap();
    let mut lines = BTreeSet::new();
    let mut serial = 0;
    for wire in messages {
        let message = Message::from_vec(&wire).unwrap();
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        for record in &message.answers {
            if let RData::SOA(soa) = &record.data {
                serial = soa.serial;
            }
            lines.insert(format!(
                "{} {} {}",
                record.name,
                record.record_type(),
                record.data
            ));
        }
    }
    (serial, lines)
}

fn has(lines: &BTreeSet<String>, line: &str) -> bool {
    lines.contains(line)
}

#[test]
fn content_per_policy_and_serials() {
    let config = config();
    let (zones, _) = crate::zone::load(&config).unwrap();
    let state = TransferState::new(&config.transfer);
    let snapshot = state.stamp(Snapshot::build(
        config.clone(),
        zones,
        health(&config, &[]),
        1,
    ));
    let (serial, lines) = axfr(&state);
    assert_eq!(serial, 2026010101, "first sight: the zone file's serial");
    // Failover: the first pool's usable endpoints.
    assert!(has(&lines, "app.example.test. A 192.0.2.11"), "{lines:#?}");
    assert!(has(&lines, "app.example.test. A 192.0.2.12"));
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("app.example.test. A 198.51.100"))
    );
    // Weighted and multivalue: every usable endpoint.
    assert!(has(&lines, "weighted.example.test. A 198.51.100.21"));
    assert!(has(&lines, "weighted.example.test. A 198.51.100.22"));
    assert!(has(&lines, "multi.example.test. A 192.0.2.11"));
    assert!(has(&lines, "multi.example.test. A 198.51.100.22"));
    // Geo: the default region's answer (us, then eu; failover inside).
    assert!(has(&lines, "geo.example.test. A 198.51.100.21"));
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("geo.example.test. A 192.0.2"))
    );
    // A dynamic CNAME: one record. Static records are there too.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("cdn.example.test. CNAME"))
            .count(),
        1
    );
    assert!(has(&lines, "www.example.test. A 192.0.2.80"));
    // A zone of its own is not part of this one.
    assert!(!lines.iter().any(|l| l.starts_with("api.deep.")));
    // The published snapshot's SOA agrees.
    let index = snapshot
        .zones
        .find_zone(b"\x07example\x04test\x00")
        .unwrap();
    assert_eq!(snapshot.zones.zones()[index].soa_serial(), serial);

    // Unchanged content, new snapshot: same serial, the zone not copied again.
    let same = state.stamp(snapshot.with_health(health(&config, &[]), 2));
    assert_eq!(axfr(&state).0, serial);
    assert!(
        Arc::ptr_eq(&same.zones, &snapshot.zones)
            || same.zones.zones()[index].soa_serial() == serial
    );

    // eu down: failover and geo move, the serial moves by one, the SOA with it.
    let moved = state.stamp(same.with_health(health(&config, &["eu-1", "eu-2"]), 3));
    let (next, lines) = axfr(&state);
    assert_eq!(next, serial + 1);
    assert!(has(&lines, "app.example.test. A 198.51.100.21"));
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("multi.example.test. A 192.0.2"))
    );
    assert_eq!(moved.zones.zones()[index].soa_serial(), next);
    // Static answers (pre-encoded) carry the new serial too.
    let mut responder = crate::dns::Responder::new(1);
    let mut query = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x07example\x04test\x00\x00\x06\x00\x01");
    let mut out = Vec::new();
    responder.respond(
        &moved,
        &query,
        "192.0.2.1".parse().unwrap(),
        crate::dns::Transport::Udp,
        &mut out,
    );
    let reply = Message::from_vec(&out).unwrap();
    match &reply.answers[0].data {
        RData::SOA(soa) => assert_eq!(soa.serial, next),
        other => panic!("{other:?}"),
    }

    // The journal keeps 2 versions: IXFR from the first is still possible, from
    // older ones not.
    let _ = state.stamp(moved.with_health(health(&config, &["eu-1"]), 4));
    let serials = {
        let inner = state.lock();
        inner.zones.values().next().unwrap().journal.serials()
    };
    assert_eq!(serials, vec![serial + 1, serial + 2]);
}

/// With randomised (ECDSA) signatures as with deterministic ones: health that
/// changes no transferable answer (a doubt, and its clearing) changes no byte of
/// the transferred zone — same serial, same RRSIGs — and a failover moves the
/// serial by exactly one.
#[test]
fn a_doubt_changes_no_byte_of_a_signed_zone_and_a_failover_one_serial_step() {
    use crate::dnssec::keys::{Algorithm, Key, Role, Timing, unix_now};
    for (algorithm, roles) in [
        (Algorithm::EcdsaP256, &[Role::Ksk, Role::Zsk][..]),
        (Algorithm::EcdsaP256, &[Role::Csk][..]),
        (Algorithm::Ed25519, &[Role::Csk][..]),
    ] {
        let keys = tempfile::tempdir().unwrap();
        for &role in roles {
            Key::generate("example.test.", role, algorithm, Timing::from(0))
                .unwrap()
                .save(keys.path())
                .unwrap();
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs");
        let mut text = std::fs::read_to_string(dir.join("integration.toml")).unwrap();
        text.push_str(&format!(
            "\n[transfer]\n[[transfer.secondaries]]\nname = \"t\"\nzones = [\"example.test\"]\n\
             allow = [\"127.0.0.1\"]\n[dnssec]\nkey_directory = \"{}\"\nzones = [\"example.test\"]\n",
            keys.path().display()
        ));
        let (config, diagnostics) = Config::load(ConfigSource::from_text(text, dir)).unwrap();
        assert!(!diagnostics.has_errors(), "{diagnostics}");
        let config = Arc::new(config);
        let (zones, _) = crate::zone::load(&config).unwrap();
        let now = unix_now();
        let ring = crate::dnssec::KeyRing::load(&config.dnssec, now)
            .unwrap()
            .unwrap();
        let signing = crate::dnssec::Signing { keys: ring, now };
        let state = TransferState::new(&config.transfer);
        let up = health(&config, &[]);
        let first = state.stamp(
            Snapshot::build_signed(config.clone(), zones, up.clone(), 1, Some(&signing)).unwrap(),
        );
        let (serial, lines) = axfr(&state);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("app.example.test. RRSIG A")),
            "{lines:#?}"
        );
        let what = format!("{algorithm:?} {roles:?}");
        // Every endpoint in doubt: shorter TTLs on the answers, nothing else.
        let doubt = up.clone().with_doubt(vec![Some(2); config.endpoints.len()]);
        let doubted = state.stamp(first.with_health(doubt, 2));
        let same = |(s, l): (u32, BTreeSet<String>), when: &str| {
            let differ: Vec<_> = l.symmetric_difference(&lines).collect();
            assert!(
                s == serial && differ.is_empty(),
                "{what}, {when}: serial {s} (was {serial}), {differ:#?}"
            );
        };
        same(axfr(&state), "doubt");
        let cleared = state.stamp(doubted.with_health(up.clone(), 3));
        same(axfr(&state), "doubt cleared");
        // hickory shows RRSIG rdata in base64: type covered SOA (0x0006) opens "AAY".
        let rrsig_of_soa = |l: &&String| l.starts_with("example.test. RRSIG AAY");
        // A failover: one serial step.
        let moved = state.stamp(cleared.with_health(health(&config, &["eu-1", "eu-2"]), 4));
        let (next, after) = axfr(&state);
        assert_eq!(next, serial + 1, "{what}: failover");
        assert_ne!(after, lines);
        let index = moved.zones.find_zone(b"\x07example\x04test\x00").unwrap();
        assert_eq!(moved.zones.zones()[index].soa_serial(), next);
        // And back: the earlier answers' signatures again, one more step.
        let back_snapshot = state.stamp(moved.with_health(up, 5));
        let (back, again) = axfr(&state);
        assert_eq!(back, next + 1, "{what}: back");
        {
            // The return shares the first version's records (nothing built, signed,
            // sorted or hashed again), and they are what a fresh build gives.
            let inner = state.lock();
            let versions: Vec<_> = inner.zones[&b"\x07example\x04test\x00"[..]]
                .journal
                .newest(3)
                .cloned()
                .collect();
            assert_eq!(
                versions.iter().map(|v| v.serial).collect::<Vec<_>>(),
                [back, next, serial]
            );
            assert!(
                Arc::ptr_eq(&versions[0].dynamic, &versions[2].dynamic),
                "{what}"
            );
            let fresh = ZoneContent::build(
                b"\x07example\x04test\x00",
                versions[0].statics.clone(),
                &back_snapshot.config,
                &back_snapshot.dynamic,
                back_snapshot.signed_zone(index),
            );
            assert_eq!(fresh.dynamic, versions[0].dynamic, "{what}");
            assert_eq!(fresh.hash, versions[0].hash, "{what}");
            assert_eq!(fresh.hidden, versions[0].hidden, "{what}");
            // IXFR from the failover to the return: the failover's records out,
            // the first version's in, and the SOA's RRSIG of each serial.
            let difference = journal::difference(&versions[1], &versions[0]);
            let plain = |records: &[Record]| -> Vec<Record> {
                records
                    .iter()
                    .filter(|r| !versions[0].soa_sigs.contains(r))
                    .filter(|r| !versions[1].soa_sigs.contains(r))
                    .cloned()
                    .collect()
            };
            let expected = journal::difference(&versions[1], &fresh.with_serial(back));
            assert_eq!(plain(&difference.added), plain(&expected.added), "{what}");
            assert_eq!(
                plain(&difference.deleted),
                plain(&expected.deleted),
                "{what}"
            );
            assert_eq!(difference.deleted.len(), expected.deleted.len(), "{what}");
            assert!(
                versions[0]
                    .soa_sigs
                    .iter()
                    .all(|r| difference.added.contains(r))
            );
            assert!(
                versions[1]
                    .soa_sigs
                    .iter()
                    .all(|r| difference.deleted.contains(r))
            );
        }
        let without_soa = |set: &BTreeSet<String>| -> BTreeSet<String> {
            set.iter()
                .filter(|l| !l.starts_with("example.test. SOA") && !rrsig_of_soa(l))
                .cloned()
                .collect()
        };
        let (again, lines) = (without_soa(&again), without_soa(&lines));
        let differ: Vec<_> = again.symmetric_difference(&lines).collect();
        assert!(differ.is_empty(), "{what}, back: {differ:#?}");
    }
}

/// An IXFR query for example.test from `serial` (its SOA in the authority section).
fn ixfr_query(serial: u32) -> Vec<u8> {
    let mut query = vec![0x43, 0x21, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
    query.extend_from_slice(&name::wire_from_text("example.test.").unwrap());
    query.extend_from_slice(&[0, 251, 0, 1]);
    query.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
    for field in [serial, 1, 1, 1, 1] {
        query.extend_from_slice(&field.to_be_bytes());
    }
    query
}

/// The SOA serials and other record types of a UDP answer, in order.
fn udp_answer(reply: &[u8]) -> Vec<String> {
    let message = Message::from_vec(reply).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SOA(soa) => format!("SOA {}", soa.serial),
            data => format!("{} {data}", r.record_type()),
        })
        .collect()
}

#[test]
fn ixfr_over_udp_is_the_difference_or_the_soa_alone_and_never_waits_for_the_lock() {
    let config = config();
    let (zones, _) = crate::zone::load(&config).unwrap();
    let state = TransferState::new(&config.transfer);
    let first = state.stamp(Snapshot::build(
        config.clone(),
        zones,
        health(&config, &[]),
        1,
    ));
    let (serial, _) = axfr(&state);
    let moved = state.stamp(first.with_health(health(&config, &["eu-2"]), 2));
    let client: std::net::SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let answer = |from: u32| {
        TransferHandler::answer_udp(&*state, &moved, &ixfr_query(from), client).unwrap()
    };
    // The difference fits in 512 bytes.
    let diff = udp_answer(&answer(serial));
    assert_eq!(diff.first(), Some(&format!("SOA {}", serial + 1)));
    assert_eq!(diff.get(1), Some(&format!("SOA {serial}")));
    assert!(diff.len() > 4, "{diff:?}");
    // The whole zone does not: the SOA alone.
    assert_eq!(
        udp_answer(&answer(serial - 5)),
        vec![format!("SOA {}", serial + 1)]
    );
    assert_eq!(state.metrics().udp_soa_only(), 1);
    // While a stamp holds the state, the worker does not wait: the snapshot's SOA.
    let held = state.lock();
    assert_eq!(
        udp_answer(&answer(serial)),
        vec![format!("SOA {}", serial + 1)]
    );
    drop(held);
    assert_eq!(state.metrics().udp_soa_only(), 2);
    // Not allowed: REFUSED, as over TCP.
    let other: std::net::SocketAddr = "192.0.2.9:5300".parse().unwrap();
    let refused = TransferHandler::answer_udp(&*state, &moved, &ixfr_query(serial), other).unwrap();
    assert_eq!(
        Message::from_vec(&refused).unwrap().metadata.response_code,
        ResponseCode::Refused
    );
}
