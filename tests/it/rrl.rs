//! Response rate limiting over real sockets: a flooding source is limited, with
//! every other limited answer slipped (TC, no records), while another source at a
//! normal rate is answered in full.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::support::dns::query;
use crate::support::{SERVER_HEAD, TestServer};

/// A UDP socket bound to a chosen loopback source address.
fn socket_from(source: &str) -> UdpSocket {
    let socket = UdpSocket::bind(format!("{source}:0")).expect("bind source");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    socket
}

fn send(socket: &UdpSocket, server: SocketAddr, id: u16) {
    let mut message = query("mail.example.test.", RecordType::A);
    message.metadata.id = id;
    socket
        .send_to(&message.to_vec().unwrap(), server)
        .expect("send");
}

/// Replies that arrive until the socket has been quiet for its read timeout.
fn drain(socket: &UdpSocket, into: &mut HashMap<u16, Message>) {
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        let reply = Message::from_vec(&buf[..n]).expect("decodable");
        into.insert(reply.metadata.id, reply);
    }
}

#[test]
fn a_flooding_source_is_limited_and_slipped_while_another_is_answered_in_full() {
    let config = SERVER_HEAD.replace(
        "[zones]",
        "[server.rrl]\nrate = 10\nslip = 2\nwhitelist = [\"127.3.0.0/16\"]\n[zones]",
    );
    let server = TestServer::start(&config);
    let flooder = socket_from("127.1.0.1");
    let normal = socket_from("127.0.0.1");
    let whitelisted = socket_from("127.3.0.1");
    let started = Instant::now();
    let mut flood_replies = HashMap::new();
    let mut whitelisted_replies = HashMap::new();
    let mut normal_replies = HashMap::new();
    let (mut flood_sent, mut normal_sent) = (0u16, 0u16);
    // Rounds of 40 flood queries and one normal query (~4 per second), at most 25
    // rounds and 4 s.
    for round in 0..25u16 {
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
        for _ in 0..40 {
            send(&flooder, server.addr, flood_sent);
            send(&whitelisted, server.addr, flood_sent);
            flood_sent += 1;
        }
        send(&normal, server.addr, 50_000 + round);
        normal_sent += 1;
        drain(&flooder, &mut flood_replies);
        drain(&whitelisted, &mut whitelisted_replies);
        drain(&normal, &mut normal_replies);
        // Pace the rounds at 10 per second on a schedule from the start (the load's
        // rate, not a wait for something to happen).
        let next_round = started + Duration::from_millis(100) * u32::from(round + 1);
        std::thread::sleep(next_round.saturating_duration_since(Instant::now()));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let full = flood_replies
        .values()
        .filter(|r| !r.metadata.truncation)
        .count() as u64;
    let slipped = flood_replies
        .values()
        .filter(|r| r.metadata.truncation)
        .inspect(|r| {
            assert!(r.answers.is_empty() && r.additionals.is_empty(), "{r:?}");
            assert_eq!(r.queries.len(), 1, "slips keep the question");
        })
        .count() as u64;
    let silent = u64::from(flood_sent) - full - slipped;
    assert!(flood_sent >= 400, "{flood_sent}");
    // A burst of 10 plus 10 per second (one of slack for the clock's granularity).
    let allowed = 10.0 + 10.0 * elapsed + 1.0;
    assert!((full as f64) <= allowed, "{full} full answers > {allowed}");
    assert!(full >= 10, "the burst gets through: {full}");
    let limited = slipped + silent;
    assert!(
        slipped * 2 + 2 >= limited && slipped * 2 <= limited + 2,
        "every second limited answer slips: {slipped} of {limited}"
    );
    assert_eq!(
        normal_replies.len(),
        usize::from(normal_sent),
        "normal client answered"
    );
    assert!(
        normal_replies
            .values()
            .all(|r| !r.metadata.truncation && r.answers.len() == 1),
        "normal client answered in full"
    );
    assert_eq!(whitelisted_replies.len(), usize::from(flood_sent));
    assert!(
        whitelisted_replies.values().all(|r| !r.metadata.truncation),
        "whitelisted source never limited"
    );
    eprintln!(
        "FIGURES rrl flooding 127.1.0.1: sent={flood_sent} in {elapsed:.2}s, full={full}, \
         slipped(TC)={slipped}, dropped={silent}; normal 127.0.0.1: {}/{normal_sent} answered \
         in full; whitelisted 127.3.0.1: {}/{flood_sent} answered",
        normal_replies.len(),
        whitelisted_replies.len()
    );
    let totals = server.service().dns_metrics().totals();
    assert_eq!(slipped, totals.rrl_slipped, "{totals:?}");
    assert_eq!(silent, totals.rrl_dropped, "{totals:?}");
    assert_eq!(limited, totals.rrl_limited());
    // Over TCP the flooding source is never limited.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = "127.1.0.1:0".parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&server.addr.into()).expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for id in 0..50u16 {
        let mut message = query("mail.example.test.", RecordType::A);
        message.metadata.id = id;
        let bytes = message.to_vec().unwrap();
        stream
            .write_all(&[&(bytes.len() as u16).to_be_bytes()[..], &bytes].concat())
            .unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert!(!reply.metadata.truncation && reply.answers.len() == 1);
    }
}

/// The class and bucket name of each kind of response, from the responder itself.
#[test]
fn responses_are_classified_and_named_like_knot_and_nsd_do() {
    use failoverd::testing::config::ConfigSource;
    use failoverd::testing::dns::engine::Outcome;
    use failoverd::testing::dns::rrl::ResponseClass;
    use failoverd::testing::dns::{Responder, Snapshot, Transport};
    use failoverd::testing::health::HealthSnapshot;
    use failoverd::testing::service;

    let loaded = service::load(ConfigSource::from_text(
        crate::support::integration_config(),
        crate::support::data_dir().join("configs"),
    ))
    .expect("valid");
    let health = HealthSnapshot::from_config(&loaded.config);
    let snapshot = Snapshot::build(
        std::sync::Arc::clone(&loaded.config),
        loaded.zones,
        health,
        1,
    );
    let mut responder = Responder::new(1);
    let mut out = Vec::new();
    let mut classify = |name: &str, rtype: RecordType, transport| {
        let bytes = query(name, rtype).to_vec().unwrap();
        let client = "192.0.2.1".parse().unwrap();
        match responder.respond(&snapshot, &bytes, client, transport, &mut out) {
            Outcome::Answered(a) => {
                let bucket = a.name_offset.map(|offset| {
                    let name = &bytes[12 + usize::from(offset)..bytes.len() - 4];
                    failoverd::testing::zone::name::text_from_wire(name).to_ascii_lowercase()
                });
                (a.class, bucket)
            }
            Outcome::Dropped => panic!("dropped"),
        }
    };
    let named = |class, name: &str| (class, Some(name.to_owned()));
    use ResponseClass::*;
    use Transport::{Tcp, Udp};
    assert_eq!(
        classify("MAIL.example.test.", RecordType::A, Udp),
        named(Answer, "mail.example.test.")
    );
    assert_eq!(
        classify("mail.example.test.", RecordType::TXT, Udp),
        named(NoData, "mail.example.test.")
    );
    assert_eq!(
        classify("random-1234.example.test.", RecordType::A, Udp),
        named(NxDomain, "example.test."),
        "NXDOMAIN is bucketed by the zone, so random names share a bucket"
    );
    assert_eq!(
        classify("a.host.sub.example.test.", RecordType::A, Udp),
        named(Referral, "sub.example.test."),
        "referrals are bucketed by the delegation point"
    );
    assert_eq!(
        classify("example.test.", RecordType::ANY, Udp),
        named(Large, "example.test.")
    );
    // (No answer in the test zones exceeds the 1024 bytes that make a response Large.)
    assert_eq!(
        classify("mx-big.example.test.", RecordType::MX, Tcp),
        named(Answer, "mx-big.example.test.")
    );
    assert_eq!(classify("example.org.", RecordType::A, Udp), (Error, None));
    assert_eq!(
        classify("example.test.", RecordType::AXFR, Udp),
        (Error, None)
    );
}
