//! RFC 1034/1035/2181/6891/8482 behaviour over real UDP and TCP sockets.

use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::support::TestServer;
use crate::support::dns::{
    self, addresses, answer_types, ask, lines, query, rcode, tcp, udp, with_edns,
};

fn soa_ttl(reply: &Message) -> u32 {
    let soa = reply
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .expect("SOA in authority");
    soa.ttl
}

#[test]
fn positive_answers_are_authoritative() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "www.example.test.", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert!(!reply.metadata.recursion_available);
    let mut got = addresses(&reply);
    got.sort();
    assert_eq!(got, ["192.0.2.80", "192.0.2.81"]);
    assert!(reply.authorities.is_empty());
}

#[test]
fn nxdomain_and_nodata_carry_the_soa_with_the_negative_ttl() {
    let server = TestServer::integration();
    // SOA TTL 60 < MINIMUM 120: negative TTL is 60.
    let nx = ask(server.addr, "nothing.example.test.", RecordType::A);
    assert_eq!(rcode(&nx), ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(nx.answers.is_empty());
    assert_eq!(soa_ttl(&nx), 60);
    let nodata = ask(server.addr, "www.example.test.", RecordType::TXT);
    assert_eq!(rcode(&nodata), ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(soa_ttl(&nodata), 60);
    // SOA TTL 600 > MINIMUM 45: negative TTL is 45.
    let deep = ask(server.addr, "nothing.deep.example.test.", RecordType::A);
    assert_eq!(rcode(&deep), ResponseCode::NXDomain);
    assert_eq!(soa_ttl(&deep), 45);
    assert_eq!(deep.authorities[0].name.to_ascii(), "deep.example.test.");
}

#[test]
fn empty_non_terminals_are_nodata_not_nxdomain() {
    let server = TestServer::integration();
    for name in ["b.ent.example.test.", "ent.example.test."] {
        let reply = ask(server.addr, name, RecordType::A);
        assert_eq!(rcode(&reply), ResponseCode::NoError, "{name}");
        assert!(reply.answers.is_empty(), "{name}");
        assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    }
    assert_eq!(
        addresses(&ask(server.addr, "a.b.ent.example.test.", RecordType::A)),
        ["192.0.2.30"]
    );
}

#[test]
fn wildcards_synthesize_only_below_the_closest_encloser() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "anything.wild.example.test.", RecordType::A);
    assert_eq!(
        lines(&reply.answers),
        ["anything.wild.example.test. 3600 A 192.0.2.99"]
    );
    assert!(reply.metadata.authoritative);
    let deep = ask(server.addr, "a.b.c.wild.example.test.", RecordType::TXT);
    assert_eq!(
        lines(&deep.answers),
        ["a.b.c.wild.example.test. 3600 TXT wildcard"]
    );
    // Wildcard NODATA: the wildcard owns no AAAA.
    let nodata = ask(server.addr, "x.wild.example.test.", RecordType::AAAA);
    assert_eq!(rcode(&nodata), ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    // No synthesis for an existing name, nor across it.
    let exists = ask(server.addr, "exists.wild.example.test.", RecordType::TXT);
    assert_eq!(rcode(&exists), ResponseCode::NoError);
    assert!(exists.answers.is_empty());
    let below = ask(server.addr, "a.exists.wild.example.test.", RecordType::A);
    assert_eq!(rcode(&below), ResponseCode::NXDomain);
    // A wildcard CNAME is synthesized and followed.
    let cname = ask(server.addr, "x.cname-wild.example.test.", RecordType::A);
    assert_eq!(
        answer_types(&cname),
        [RecordType::CNAME, RecordType::A, RecordType::A]
    );
    assert_eq!(
        cname.answers[0].name.to_ascii(),
        "x.cname-wild.example.test."
    );
}

#[test]
fn cname_chains_are_followed_in_zone_and_returned_as_is_out_of_zone() {
    let server = TestServer::integration();
    let chain = ask(server.addr, "alias1.example.test.", RecordType::A);
    assert_eq!(
        answer_types(&chain),
        [
            RecordType::CNAME,
            RecordType::CNAME,
            RecordType::A,
            RecordType::A
        ]
    );
    assert_eq!(chain.answers[1].name.to_ascii(), "alias2.example.test.");
    let away = ask(server.addr, "away.example.test.", RecordType::A);
    assert_eq!(
        lines(&away.answers),
        ["away.example.test. 3600 CNAME www.example.net."]
    );
    assert_eq!(rcode(&away), ResponseCode::NoError);
    // RFC 6604: the rcode belongs to the end of the chain.
    let broken = ask(server.addr, "broken.example.test.", RecordType::A);
    assert_eq!(rcode(&broken), ResponseCode::NXDomain);
    assert_eq!(answer_types(&broken), [RecordType::CNAME]);
    // A loop terminates.
    let looped = ask(server.addr, "loop1.example.test.", RecordType::A);
    assert_eq!(rcode(&looped), ResponseCode::NoError);
    assert!(looped.answers.len() <= 9);
    // CNAME queries are answered directly.
    let direct = ask(server.addr, "alias1.example.test.", RecordType::CNAME);
    assert_eq!(answer_types(&direct), [RecordType::CNAME]);
    // A static chain into a dynamic name.
    let dynamic = ask(server.addr, "go.example.test.", RecordType::A);
    assert_eq!(
        answer_types(&dynamic),
        [RecordType::CNAME, RecordType::A, RecordType::A]
    );
}

#[test]
fn delegations_are_referrals_with_glue() {
    let server = TestServer::integration();
    for (name, rtype) in [
        ("host.sub.example.test.", RecordType::A),
        ("sub.example.test.", RecordType::NS),
        ("ns.sub.example.test.", RecordType::A),
    ] {
        let reply = ask(server.addr, name, rtype);
        assert_eq!(rcode(&reply), ResponseCode::NoError, "{name}");
        assert!(
            !reply.metadata.authoritative,
            "{name}: referrals are not authoritative"
        );
        assert!(reply.answers.is_empty(), "{name}");
        let mut ns = lines(&reply.authorities);
        ns.sort();
        assert_eq!(
            ns,
            [
                "sub.example.test. 3600 NS ns.other.example.",
                "sub.example.test. 3600 NS ns.sub.example.test."
            ]
        );
        let mut glue = lines(&reply.additionals);
        glue.sort();
        assert_eq!(
            glue,
            [
                "ns.sub.example.test. 3600 A 192.0.2.53",
                "ns.sub.example.test. 3600 AAAA 2001:db8::53"
            ]
        );
    }
    // DS lives on the parent side of the cut: answered authoritatively (NODATA here).
    let ds = ask(server.addr, "sub.example.test.", RecordType::DS);
    assert!(ds.metadata.authoritative);
    assert_eq!(ds.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn names_outside_our_zones_are_refused() {
    let server = TestServer::integration();
    for name in ["example.org.", "test.", "."] {
        let reply = ask(server.addr, name, RecordType::A);
        assert_eq!(rcode(&reply), ResponseCode::Refused, "{name}");
        assert!(!reply.metadata.authoritative);
        assert!(reply.answers.is_empty());
    }
}

#[test]
fn longest_matching_zone_answers() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "host.deep.example.test.", RecordType::A);
    assert_eq!(addresses(&reply), ["192.0.2.200"]);
    assert!(reply.metadata.authoritative);
    let dynamic = ask(server.addr, "api.deep.example.test.", RecordType::A);
    assert_eq!(addresses(&dynamic).len(), 2);
}

#[test]
fn edns_is_echoed_and_its_payload_size_honoured() {
    let server = TestServer::integration();
    let reply = udp(
        server.addr,
        &with_edns(query("www.example.test.", RecordType::A), 4096, None),
    );
    let edns = reply.edns.as_ref().expect("OPT in reply");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    // Without EDNS there is no OPT.
    assert!(
        ask(server.addr, "www.example.test.", RecordType::A)
            .edns
            .is_none()
    );
    // The big TXT RRset (≈ 700 bytes) fits 1232 but not 512.
    let big = udp(
        server.addr,
        &with_edns(query("big.example.test.", RecordType::TXT), 1232, None),
    );
    assert!(!big.metadata.truncation);
    assert_eq!(big.answers.len(), 6);
    let small = udp(
        server.addr,
        &with_edns(query("big.example.test.", RecordType::TXT), 512, None),
    );
    assert!(small.metadata.truncation);
    assert!(small.edns.is_some(), "OPT kept in truncated replies");
}

#[test]
fn unsupported_edns_versions_get_badvers() {
    let server = TestServer::integration();
    let mut message = with_edns(query("www.example.test.", RecordType::A), 1232, None);
    if let Some(edns) = message.edns.as_mut() {
        edns.set_version(1);
    }
    let reply = udp(server.addr, &message);
    // 16 is BADVERS with an OPT record (hickory decodes the shared code as BADSIG).
    assert_eq!(u16::from(rcode(&reply)), 16);
    assert_eq!(reply.edns.as_ref().map(|e| e.version()), Some(0));
    assert!(reply.answers.is_empty());
}

#[test]
fn truncated_udp_answers_are_complete_over_tcp() {
    let server = TestServer::integration();
    let message = query("big.example.test.", RecordType::TXT);
    let over_udp = udp(server.addr, &message);
    assert!(over_udp.metadata.truncation, "512-byte limit without EDNS");
    assert!(over_udp.answers.is_empty());
    assert_eq!(over_udp.queries.len(), 1);
    let over_tcp = tcp(server.addr, &message);
    assert!(!over_tcp.metadata.truncation);
    assert_eq!(over_tcp.answers.len(), 6);
    assert!(over_tcp.metadata.authoritative);
    // Optional additional data is dropped instead of truncating.
    let mx = ask(server.addr, "mx-big.example.test.", RecordType::MX);
    assert!(!mx.metadata.truncation);
    assert_eq!(answer_types(&mx), [RecordType::MX]);
    let mx_tcp = tcp(server.addr, &query("mx-big.example.test.", RecordType::MX));
    assert_eq!(mx_tcp.additionals.len(), 30);
}

#[test]
fn tcp_and_udp_give_the_same_records() {
    let server = TestServer::integration();
    for (name, rtype) in [
        ("www.example.test.", RecordType::A),
        ("alias1.example.test.", RecordType::A),
        ("nothing.example.test.", RecordType::A),
        ("example.test.", RecordType::MX),
        ("host.sub.example.test.", RecordType::A),
        ("x.wild.example.test.", RecordType::TXT),
        ("example.org.", RecordType::A),
        ("app.example.test.", RecordType::AAAA),
    ] {
        let message = with_edns(query(name, rtype), 1232, None);
        let a = udp(server.addr, &message);
        let b = tcp(server.addr, &message);
        assert_eq!(a.metadata.response_code, b.metadata.response_code, "{name}");
        assert_eq!(a.metadata.authoritative, b.metadata.authoritative, "{name}");
        let sorted = |records: &[hickory_proto::rr::Record]| {
            let mut l = lines(records);
            l.sort();
            l
        };
        assert_eq!(sorted(&a.answers), sorted(&b.answers), "{name}");
        assert_eq!(sorted(&a.authorities), sorted(&b.authorities), "{name}");
        assert_eq!(sorted(&a.additionals), sorted(&b.additionals), "{name}");
        assert!(b.edns.is_some(), "{name}: OPT over TCP");
    }
}

#[test]
fn any_queries_get_one_rrset() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "example.test.", RecordType::ANY);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    let types: std::collections::BTreeSet<_> = answer_types(&reply).into_iter().collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {types:?}");
    let mail = ask(server.addr, "mail.example.test.", RecordType::ANY);
    assert_eq!(answer_types(&mail), [RecordType::A]);
    let dynamic = ask(server.addr, "app.example.test.", RecordType::ANY);
    assert!(!dynamic.answers.is_empty());
}

#[test]
fn unknown_opcodes_get_notimp() {
    let server = TestServer::integration();
    for opcode in [
        OpCode::Status,
        OpCode::Notify,
        OpCode::Update,
        OpCode::Unknown(15),
    ] {
        let mut message = query("www.example.test.", RecordType::A);
        message.metadata.op_code = opcode;
        let reply = dns::raw_udp(server.addr, &message.to_vec().unwrap()).expect("reply");
        let reply = Message::from_vec(&reply).expect("decodable");
        assert_eq!(rcode(&reply), ResponseCode::NotImp, "{opcode:?}");
        assert_eq!(reply.metadata.op_code, opcode);
    }
}

#[test]
fn malformed_packets_get_formerr_or_are_dropped_and_serving_continues() {
    let server = TestServer::integration();
    let valid = query("www.example.test.", RecordType::A).to_vec().unwrap();
    // Too short for a header: dropped.
    assert!(dns::raw_udp_wait(server.addr, &[1, 2, 3], Duration::from_millis(300)).is_none());
    // A response (QR set): dropped, never answered (no reflection loops).
    let mut response = valid.clone();
    response[2] |= 0x80;
    assert!(dns::raw_udp_wait(server.addr, &response, Duration::from_millis(300)).is_none());
    // Question cut short, label pointing outside, QDCOUNT 2, trailing bytes: FORMERR.
    let mut cases: Vec<Vec<u8>> = vec![valid[..valid.len() - 3].to_vec()];
    let mut pointer = valid[..12].to_vec();
    pointer.extend([0xC0, 0xFF, 0, 1, 0, 1]);
    cases.push(pointer);
    let mut two = valid.clone();
    two[5] = 2;
    cases.push(two);
    let mut trailing = valid.clone();
    trailing.extend([0xAB; 7]);
    cases.push(trailing);
    for (i, case) in cases.iter().enumerate() {
        let reply = dns::raw_udp(server.addr, case).unwrap_or_else(|| panic!("case {i}: no reply"));
        assert_eq!(reply[..2], case[..2], "case {i}: id echoed");
        assert_eq!(reply[3] & 0x0F, 1, "case {i}: FORMERR");
    }
    // Garbage of every length up to 64 bytes: no crash.
    let mut seed = 0x1234_5678_u64;
    for len in 12..64 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = dns::raw_udp_wait(server.addr, &junk, Duration::from_millis(20));
        let _ = dns::raw_tcp(server.addr, &junk);
    }
    let reply = ask(server.addr, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&reply).len(), 2, "still serving");
}

#[test]
fn question_case_is_preserved() {
    let server = TestServer::integration();
    for rtype in [RecordType::A, RecordType::MX, RecordType::TXT] {
        let reply = ask(server.addr, "WwW.ExAmPlE.tEsT.", rtype);
        assert_eq!(reply.queries[0].name().to_ascii(), "WwW.ExAmPlE.tEsT.");
        for record in &reply.answers {
            assert_eq!(record.name.to_ascii(), "WwW.ExAmPlE.tEsT.");
        }
    }
    let tcp_reply = tcp(server.addr, &query("ApP.example.TEST.", RecordType::A));
    assert_eq!(tcp_reply.queries[0].name().to_ascii(), "ApP.example.TEST.");
}

#[test]
fn additional_section_holds_in_zone_addresses_of_mx_targets() {
    let server = TestServer::integration();
    let reply = ask(server.addr, "example.test.", RecordType::MX);
    let mut extra = lines(&reply.additionals);
    extra.sort();
    assert_eq!(
        extra,
        [
            "mail.example.test. 3600 A 192.0.2.25",
            "mail.example.test. 3600 AAAA 2001:db8::25"
        ]
    );
}

#[test]
fn non_in_classes_and_zone_transfers_are_refused() {
    let server = TestServer::integration();
    let mut chaos = query("version.bind.", RecordType::TXT);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    assert_eq!(rcode(&udp(server.addr, &chaos)), ResponseCode::Refused);
    let axfr = tcp(server.addr, &query("example.test.", RecordType::AXFR));
    assert_eq!(rcode(&axfr), ResponseCode::Refused);
}

#[test]
fn dig_sees_the_same_answers() {
    crate::support::require!(crate::support::require::tool("dig"));
    let server = TestServer::integration();
    let output = std::process::Command::new("dig")
        .args([
            "+norec",
            "+time=2",
            "+tries=1",
            "-p",
            &server.addr.port().to_string(),
            "@127.0.0.1",
            "alias1.example.test",
            "A",
        ])
        .output()
        .expect("dig is installed (.ci/run installs bind9-dnsutils)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(text.contains("flags: qr aa"), "{text}");
    assert!(text.contains("alias2.example.test."), "{text}");
    assert!(text.contains("192.0.2.80"), "{text}");
    let tcp = std::process::Command::new("dig")
        .args([
            "+tcp",
            "+norec",
            "-p",
            &server.addr.port().to_string(),
            "@127.0.0.1",
            "big.example.test",
            "TXT",
        ])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&tcp.stdout);
    assert!(text.contains("ANSWER: 6"), "{text}");
}
