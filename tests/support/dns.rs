//! A small DNS client over real UDP and TCP sockets.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};

const TIMEOUT: Duration = Duration::from_secs(3);

/// A query message (RD clear, as a resolver asks an authoritative server).
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    message
}

/// The same query with EDNS (payload size, optional client subnet).
pub fn with_edns(mut message: Message, payload: u16, subnet: Option<(IpAddr, u8)>) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    if let Some((addr, prefix)) = subnet {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
    }
    message.set_edns(edns);
    message
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x1234);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends raw bytes over UDP; returns the raw reply (None if none within the timeout).
pub fn raw_udp(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    raw_udp_wait(server, bytes, TIMEOUT)
}

/// As [`raw_udp`] with a chosen wait.
pub fn raw_udp_wait(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .expect("bind");
    socket.set_read_timeout(Some(wait)).expect("timeout");
    socket.send_to(bytes, server).expect("send");
    let mut buf = vec![0u8; 65535];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends raw bytes over TCP (length-prefixed); returns the raw reply.
pub fn raw_tcp(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).ok()?;
    Some(reply)
}

/// Exchanges a message over UDP.
pub fn udp(server: SocketAddr, message: &Message) -> Message {
    let reply = raw_udp(server, &message.to_vec().expect("encode")).expect("UDP reply");
    let reply = Message::from_vec(&reply).expect("decodable reply");
    assert_eq!(reply.metadata.id, message.metadata.id, "reply id");
    reply
}

/// Exchanges a message over TCP.
pub fn tcp(server: SocketAddr, message: &Message) -> Message {
    let reply = raw_tcp(server, &message.to_vec().expect("encode")).expect("TCP reply");
    Message::from_vec(&reply).expect("decodable reply")
}

/// Asks over UDP without EDNS.
pub fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp(server, &query(name, rtype))
}

/// Response code including EDNS extended bits.
pub fn rcode(message: &Message) -> ResponseCode {
    message.metadata.response_code
}

/// Addresses (A/AAAA) in the answer section, as text, in order.
pub fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            RData::AAAA(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

/// `name type data` lines of a section, for readable assertions.
pub fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

/// The client-subnet option of a reply, if any.
pub fn reply_subnet(message: &Message) -> Option<ClientSubnet> {
    let edns = message.edns.as_ref()?;
    match edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(subnet) => Some(*subnet),
        _ => None,
    }
}

/// Record types of the answer section.
pub fn answer_types(message: &Message) -> Vec<RecordType> {
    message.answers.iter().map(Record::record_type).collect()
}

/// Sorted A addresses answered for `name`.
pub fn sorted_addresses(server: SocketAddr, name: &str) -> Vec<String> {
    let mut got = addresses(&ask(server, name, RecordType::A));
    got.sort();
    got
}

/// Waits (with a deadline) until `name` answers exactly `want` (sorted).
pub fn expect_addresses(server: SocketAddr, name: &str, want: &[&str], within: Duration) {
    let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    let mut last = Vec::new();
    let ok = crate::support::wait_until(within, || {
        last = sorted_addresses(server, name);
        last == want
    });
    assert!(ok, "{name}: answer {last:?}, wanted {want:?}");
}
