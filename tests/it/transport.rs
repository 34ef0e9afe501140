//! The TCP path: framing, pipelining, the same bytes as UDP, edns-tcp-keepalive,
//! idle timeouts against abusive connections, connection caps, the transfer hook.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failoverd::testing::config::ConfigSource;
use failoverd::testing::dns::{DnsServer, SharedSnapshot, Snapshot, TransferHandler};
use failoverd::testing::health::HealthSnapshot;
use failoverd::testing::service;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::support::dns::{self, query, raw_tcp, raw_udp, with_edns};
use crate::support::{SERVER_HEAD, TestServer, data_dir, integration_config};

const TIMEOUT: Duration = Duration::from_secs(5);

fn framed(message: &Message) -> Vec<u8> {
    let bytes = message.to_vec().expect("encode");
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend(bytes);
    out
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).ok()?;
    Some(message)
}

fn connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&server, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// A TCP connection from a chosen loopback source address.
fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).expect("bind source");
    socket
        .connect_timeout(&server.into(), TIMEOUT)
        .expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Whether the server has closed `stream` (read returns end of file or a reset),
/// waiting at most until `deadline`.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // answers to what was sent; keep reading
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn tcp_answers_are_byte_identical_to_udp_answers() {
    let server = TestServer::integration();
    let mut compared = 0;
    for (name, rtype) in [
        ("mail.example.test.", RecordType::A),
        ("MaIl.example.test.", RecordType::AAAA),
        ("v6.example.test.", RecordType::AAAA),
        ("www.example.test.", RecordType::A),
        ("nothing.example.test.", RecordType::A),
        ("b.ent.example.test.", RecordType::A),
        ("example.test.", RecordType::MX),
        ("example.test.", RecordType::SOA),
        ("host.sub.example.test.", RecordType::A),
        ("x.wild.example.test.", RecordType::TXT),
        ("alias1.example.test.", RecordType::A),
        ("example.org.", RecordType::A),
        ("example.test.", RecordType::NS),
    ] {
        for edns in [false, true] {
            let mut message = query(name, rtype);
            if edns {
                message = with_edns(message, 1232, None);
            }
            let bytes = message.to_vec().unwrap();
            let over_udp = raw_udp(server.addr, &bytes).expect("UDP reply");
            let over_tcp = raw_tcp(server.addr, &bytes).expect("TCP reply");
            assert_eq!(over_udp, over_tcp, "{name} {rtype} edns={edns}");
            compared += 1;
        }
    }
    assert_eq!(compared, 26);
}

#[test]
fn the_portable_udp_path_answers_byte_for_byte_as_the_batched_one() {
    let batched = TestServer::integration();
    let portable = TestServer::start(
        &integration_config().replace("[server]\n", "[server]\nudp_io = \"portable\"\n"),
    );
    let mut compared = 0;
    for (name, rtype) in [
        ("mail.example.test.", RecordType::A),
        ("v6.example.test.", RecordType::AAAA),
        ("nothing.example.test.", RecordType::A),
        ("x.wild.example.test.", RecordType::TXT),
        ("alias1.example.test.", RecordType::A),
        ("big.example.test.", RecordType::TXT),
        ("example.org.", RecordType::A),
    ] {
        for edns in [false, true] {
            let mut message = query(name, rtype);
            if edns {
                message = with_edns(message, 1232, None);
            }
            let bytes = message.to_vec().unwrap();
            let a = raw_udp(batched.addr, &bytes).expect("batched reply");
            let b = raw_udp(portable.addr, &bytes).expect("portable reply");
            assert_eq!(a, b, "{name} {rtype} edns={edns}");
            compared += 1;
        }
    }
    // A malformed query gets FORMERR on the portable path too.
    let formerr = raw_udp(
        portable.addr,
        &[0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0],
    );
    assert_eq!(
        formerr.map(|r| r[3] & 0x0f),
        Some(1),
        "FORMERR over the portable path"
    );
    assert_eq!(compared, 14);
}

#[test]
fn pipelined_queries_are_all_answered_in_order() {
    let server = TestServer::integration();
    let mut stream = connect(server.addr);
    let names = ["mail", "v6", "nothing", "www", "a.b.ent", "mail"];
    let queries: Vec<Message> = (0..30)
        .map(|i| {
            let mut q = query(
                &format!("{}.example.test.", names[i % names.len()]),
                RecordType::A,
            );
            q.metadata.id = 1000 + i as u16;
            q
        })
        .collect();
    let mut all: Vec<u8> = queries.iter().flat_map(framed).collect();
    // The last query is split across two writes (a length prefix, then the rest).
    let tail = all.split_off(all.len() - 7);
    stream.write_all(&all).unwrap();
    stream.flush().unwrap();
    for (i, query) in queries.iter().enumerate().take(29) {
        let reply = Message::from_vec(&read_frame(&mut stream).expect("answer")).unwrap();
        assert_eq!(reply.metadata.id, query.metadata.id, "answer {i} in order");
    }
    stream.write_all(&tail).unwrap();
    let reply = Message::from_vec(&read_frame(&mut stream).expect("answer")).unwrap();
    assert_eq!(reply.metadata.id, 1029);
    // Garbage in a frame gets FORMERR (or nothing) and the connection keeps serving.
    let junk = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x05, b'a'];
    let mut frame = (junk.len() as u16).to_be_bytes().to_vec();
    frame.extend(junk);
    frame.extend(framed(&queries[0]));
    stream.write_all(&frame).unwrap();
    let formerr = Message::from_vec(&read_frame(&mut stream).expect("FORMERR")).unwrap();
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
    let next = Message::from_vec(&read_frame(&mut stream).expect("answer")).unwrap();
    assert_eq!(next.metadata.id, queries[0].metadata.id);
}

#[test]
fn edns_tcp_keepalive_announces_the_idle_timeout_over_tcp_only() {
    let server = TestServer::start(
        &SERVER_HEAD.replace("[zones]", "tcp_idle_timeout = \"2500ms\"\n[zones]"),
    );
    let mut message = with_edns(query("mail.example.test.", RecordType::A), 1232, None);
    if let Some(edns) = message.edns.as_mut() {
        edns.options_mut()
            .insert(EdnsOption::Unknown(11, Vec::new()));
    }
    let keepalive = |reply: &Message| match reply.edns.as_ref()?.option(EdnsCode::Keepalive) {
        Some(EdnsOption::Unknown(11, value)) => Some(value.clone()),
        _ => None,
    };
    let over_tcp = dns::tcp(server.addr, &message);
    assert_eq!(
        keepalive(&over_tcp),
        Some(vec![0, 25]),
        "2.5 s in 100 ms units"
    );
    let over_udp = dns::udp(server.addr, &message);
    assert_eq!(keepalive(&over_udp), None, "never over UDP");
    let plain = dns::tcp(
        server.addr,
        &with_edns(query("mail.example.test.", RecordType::A), 1232, None),
    );
    assert_eq!(keepalive(&plain), None, "only when asked");
}

#[test]
fn abusive_connections_are_closed_after_the_idle_timeout_and_busy_ones_are_not() {
    let config = SERVER_HEAD.replace("[zones]", "tcp_idle_timeout = \"600ms\"\n[zones]");
    let server = TestServer::start(&config);
    let idle = Duration::from_millis(600);
    let opened = Instant::now();
    let query_frame = framed(&query("mail.example.test.", RecordType::A));
    let mut abusive: Vec<(&str, TcpStream)> = Vec::new();
    for _ in 0..5 {
        abusive.push(("idle", connect(server.addr)));
        let mut prefix_only = connect(server.addr);
        prefix_only.write_all(&[0x01, 0x00]).unwrap();
        abusive.push(("length prefix only", prefix_only));
        let mut half = connect(server.addr);
        half.write_all(&query_frame[..query_frame.len() / 2])
            .unwrap();
        abusive.push(("half a message", half));
        let mut answered_then_idle = connect(server.addr);
        answered_then_idle.write_all(&query_frame).unwrap();
        abusive.push(("answered, then idle", answered_then_idle));
    }
    // Half-closed after a query: answered, then closed at once.
    let mut half_closed = connect(server.addr);
    half_closed.write_all(&query_frame).unwrap();
    half_closed.shutdown(std::net::Shutdown::Write).unwrap();
    let answer = read_frame(&mut half_closed).expect("answered before closing");
    assert_eq!(
        Message::from_vec(&answer).unwrap().metadata.response_code,
        ResponseCode::NoError
    );
    assert!(
        closed_by(&mut half_closed, Instant::now() + idle / 2),
        "half-closed"
    );
    // A trickler sends one byte of a never-complete message every 100 ms, and a busy
    // client a complete query every 150 ms, both for three idle timeouts.
    let mut trickler = connect(server.addr);
    trickler.write_all(&[0x02, 0x00]).unwrap();
    let mut busy = connect(server.addr);
    let mut busy_answers = 0;
    let mut step = 0;
    while opened.elapsed() < idle * 3 {
        step += 1;
        let _ = trickler.write_all(&[0]);
        if step % 3 == 0 {
            busy.write_all(&query_frame).unwrap();
            read_frame(&mut busy).expect("busy client answered");
            busy_answers += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(busy_answers >= 8, "{busy_answers}");
    let deadline = opened + idle * 3 + Duration::from_secs(3);
    for (i, (kind, stream)) in abusive.iter_mut().enumerate() {
        assert!(
            closed_by(stream, deadline),
            "connection {i} ({kind}) still open"
        );
    }
    assert!(closed_by(&mut trickler, deadline), "trickler still open");
    busy.write_all(&query_frame).unwrap();
    assert!(read_frame(&mut busy).is_some(), "busy connection kept");
    let totals = server.service().dns_metrics().totals();
    assert!(totals.tcp_timeouts >= 21, "{totals:?}");
    let open_ok = crate::support::wait_until(TIMEOUT, || {
        server.service().dns_metrics().totals().tcp_open() == 1
    });
    assert!(open_ok, "{:?}", server.service().dns_metrics().totals());
}

#[test]
fn connection_caps_close_connections_beyond_them_at_once() {
    let config = SERVER_HEAD.replace(
        "[zones]",
        "tcp_max_connections = 3\ntcp_max_connections_per_source = 2\n[zones]",
    );
    let server = TestServer::start(&config);
    let query_frame = framed(&query("mail.example.test.", RecordType::A));
    let works = |stream: &mut TcpStream| {
        stream.write_all(&query_frame).is_ok() && read_frame(stream).is_some()
    };
    let mut a1 = connect_from("127.0.0.1", server.addr);
    let mut a2 = connect_from("127.0.0.1", server.addr);
    assert!(works(&mut a1) && works(&mut a2));
    let mut a3 = connect_from("127.0.0.1", server.addr);
    assert!(!works(&mut a3), "third from one source is closed");
    let mut b1 = connect_from("127.1.0.1", server.addr);
    assert!(works(&mut b1), "another source gets in");
    let mut c1 = connect_from("127.2.0.1", server.addr);
    assert!(!works(&mut c1), "beyond the total cap");
    drop(a1);
    let reopened = crate::support::wait_until(TIMEOUT, || {
        let mut again = connect_from("127.0.0.1", server.addr);
        works(&mut again)
    });
    assert!(reopened, "a freed place is reused");
    assert!(server.service().dns_metrics().totals().tcp_rejected >= 2);
}

/// A transfer handler answering every transfer with two copies of the query
/// turned into a response.
struct EchoTwice;

impl TransferHandler for EchoTwice {
    fn answer_transfer(
        &self,
        _snapshot: &Snapshot,
        query: &[u8],
        _client: SocketAddr,
    ) -> Option<Vec<Vec<u8>>> {
        let mut reply = query.to_vec();
        reply[2] |= 0x80;
        Some(vec![reply.clone(), reply])
    }
}

#[test]
fn a_transfer_handler_answers_axfr_and_ixfr_and_nothing_else() {
    let loaded = service::load(ConfigSource::from_text(
        integration_config(),
        data_dir().join("configs"),
    ))
    .expect("valid");
    let health = HealthSnapshot::from_config(&loaded.config);
    let snapshot = Snapshot::build(Arc::clone(&loaded.config), loaded.zones, health, 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut settings = loaded.config.server.clone();
    settings.listen = vec!["127.0.0.1:0".parse().unwrap()];
    settings.udp_workers = 1;
    let server = runtime
        .block_on(async {
            DnsServer::start(
                &settings,
                SharedSnapshot::new(snapshot),
                Some(Arc::new(EchoTwice)),
                None,
                None,
            )
        })
        .expect("starts");
    let addr = server.addresses[0];
    let mut stream = connect(addr);
    let axfr = query("example.test.", RecordType::AXFR);
    stream.write_all(&framed(&axfr)).unwrap();
    for _ in 0..2 {
        let reply = Message::from_vec(&read_frame(&mut stream).expect("transfer message")).unwrap();
        assert_eq!(reply.metadata.id, axfr.metadata.id);
        assert!(reply.answers.is_empty());
    }
    let a = query("mail.example.test.", RecordType::A);
    stream.write_all(&framed(&a)).unwrap();
    let reply = Message::from_vec(&read_frame(&mut stream).expect("answer")).unwrap();
    assert_eq!(reply.answers.len(), 1, "other queries go to the responder");
    let over_udp = dns::udp(addr, &query("example.test.", RecordType::AXFR));
    assert_eq!(
        over_udp.metadata.response_code,
        ResponseCode::NotImp,
        "UDP: AXFR is TCP only (RFC 5936 §4.2)"
    );
    runtime.block_on(server.shutdown());
}
