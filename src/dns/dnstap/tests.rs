use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use super::*;

/// The reader side of a Frame Streams handshake; returns the data frames read
/// until STOP (answered with FINISH).
fn consume(listener: UnixListener) -> Vec<Vec<u8>> {
    let (mut stream, _) = listener.accept().unwrap();
    let read_u32 = |s: &mut UnixStream| {
        let mut w = [0u8; 4];
        s.read_exact(&mut w).map(|_| u32::from_be_bytes(w))
    };
    let mut frames = Vec::new();
    loop {
        let Ok(len) = read_u32(&mut stream) else {
            return frames;
        };
        if len == 0 {
            let control_len = read_u32(&mut stream).unwrap();
            let mut body = vec![0u8; control_len as usize];
            stream.read_exact(&mut body).unwrap();
            match u32::from_be_bytes(body[..4].try_into().unwrap()) {
                0x04 => stream.write_all(&fstrm::control(0x01, true)).unwrap(),
                0x03 => {
                    stream.write_all(&fstrm::control(0x05, false)).unwrap();
                    return frames;
                }
                _ => {}
            }
        } else {
            let mut body = vec![0u8; len as usize];
            stream.read_exact(&mut body).unwrap();
            frames.push(body);
        }
    }
}

fn config(socket: PathBuf, queue: usize) -> DnstapConfig {
    DnstapConfig {
        socket,
        identity: "test".into(),
        version: "failoverd".into(),
        queries: true,
        responses: true,
        queue,
    }
}

#[test]
fn queries_and_responses_reach_the_consumer_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let consumer = std::thread::spawn(move || consume(listener));
    let (tap, writer) = Dnstap::start(config(path, 64)).unwrap();
    let client: SocketAddr = "192.0.2.7:5353".parse().unwrap();
    let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
    // Wait for the connection (bounded), then log.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !tap.stats().connected && std::time::Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(10));
    }
    assert!(tap.stats().connected);
    tap.query(Protocol::Udp, client, server, b"query-bytes");
    tap.response(Protocol::Tcp, client, server, b"response-bytes");
    writer.shutdown();
    let frames = consumer.join().unwrap();
    assert_eq!(frames.len(), 2);
    let first = proto::Dnstap::decode(&frames[0][..]).unwrap();
    let message = first.message.unwrap();
    assert_eq!(message.r#type, proto::AUTH_QUERY);
    assert_eq!(message.query_message.as_deref(), Some(&b"query-bytes"[..]));
    assert_eq!(message.query_address.as_deref(), Some(&[192, 0, 2, 7][..]));
    assert_eq!(message.query_port, Some(5353));
    assert_eq!(message.socket_protocol, Some(proto::UDP));
    let second = proto::Dnstap::decode(&frames[1][..])
        .unwrap()
        .message
        .unwrap();
    assert_eq!(second.r#type, proto::AUTH_RESPONSE);
    assert_eq!(
        second.response_message.as_deref(),
        Some(&b"response-bytes"[..])
    );
    assert_eq!(second.socket_protocol, Some(proto::TCP));
    assert_eq!(tap.stats().written, 2);
}

#[test]
fn without_a_consumer_messages_are_dropped_and_counted_never_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let (tap, writer) = Dnstap::start(config(dir.path().join("nobody.sock"), 8)).unwrap();
    let client: SocketAddr = "192.0.2.7:5353".parse().unwrap();
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        tap.query(Protocol::Udp, client, client, b"q");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "logging never blocks"
    );
    writer.shutdown();
    let stats = tap.stats();
    assert_eq!(stats.written, 0);
    assert_eq!(stats.dropped, 10_000);
}
