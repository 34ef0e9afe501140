//! Zero-loss restart: under a steady query stream (5,000 queries a second over UDP,
//! and a new TCP connection every 10 ms), SIGUSR2 makes the server start its
//! replacement on the same sockets and give way; 20 restarts in a row lose and refuse
//! nothing, and every answer stays right.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::backend::Backend;
use crate::support::dns::expect_addresses;
use crate::support::{BACKEND_A, BACKEND_B, serve_config, two_backend_config};

const NAME: &str = "app.example.test.";
const RESTARTS: usize = 20;
/// Queries a second over UDP.
const RATE: u64 = 5_000;

/// Kills whichever process serves at the end (the last replacement).
struct LastServer(Arc<AtomicU64>);

impl Drop for LastServer {
    fn drop(&mut self) {
        let pid = self.0.load(Ordering::Relaxed) as libc::pid_t;
        if pid > 0 {
            // SAFETY: kill() with a pid and a signal number.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Whether the process runs (a zombie, exited but not reaped, does not).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

fn query(id: u16) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(Name::from_ascii(NAME).unwrap(), RecordType::A));
    message.to_vec().unwrap()
}

fn right(reply: &[u8]) -> Option<(u16, bool)> {
    let message = Message::from_vec(reply).ok()?;
    let mut addresses: Vec<String> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    addresses.sort();
    Some((message.metadata.id, addresses == [BACKEND_A, BACKEND_B]))
}

/// Counts of the query stream.
#[derive(Default, Debug)]
struct Counts {
    udp_sent: u64,
    udp_answered: u64,
    udp_wrong: u64,
    tcp_tried: u64,
    tcp_answered: u64,
    tcp_refused: u64,
}

#[test]
fn twenty_restarts_under_a_query_stream_lose_and_refuse_nothing() {
    let _turn = crate::one_at_a_time();
    let a = Backend::start(BACKEND_A.parse().unwrap(), 0, None);
    let _b = Backend::start(BACKEND_B.parse().unwrap(), a.addr.port(), None);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[health]\nstate_file = \"{}\"\n",
        two_backend_config(a.addr.port(), "interval = \"300ms\"\ntimeout = \"250ms\""),
        dir.path().join("state.json").display()
    );
    let (server, _admin) = serve_config(dir.path(), &text, &[]);
    let dns = server.addr;
    expect_addresses(
        dns,
        "app.example.test",
        &[BACKEND_A, BACKEND_B],
        Duration::from_secs(10),
    );
    let current = Arc::new(AtomicU64::new(u64::from(server.pid())));
    let _last = LastServer(current.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Mutex::new(Counts::default()));
    // UDP: one socket, a sender paced at RATE, a receiver matching ids.
    let socket = {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        // Room for the replies of a second of queries (as root, past rmem_max).
        failoverd::testing::dns::udp::grow_buffers(&socket, 4 << 20);
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        UdpSocket::from(socket)
    };
    socket.connect(dns).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let pending: Arc<Mutex<HashMap<u16, Instant>>> = Arc::default();
    let receiver = {
        let (socket, stop, counts, pending) = (
            socket.try_clone().unwrap(),
            stop.clone(),
            counts.clone(),
            pending.clone(),
        );
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match socket.recv(&mut buffer) {
                    Ok(n) => {
                        quiet_since = None;
                        if let Some((id, ok)) = right(&buffer[..n]) {
                            if pending.lock().unwrap().remove(&id).is_some() {
                                let mut counts = counts.lock().unwrap();
                                counts.udp_answered += 1;
                                counts.udp_wrong += u64::from(!ok);
                            }
                        }
                    }
                    Err(_) if stop.load(Ordering::Relaxed) => {
                        // Stragglers: wait until nothing is pending or 2 s of quiet.
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if pending.lock().unwrap().is_empty()
                            || since.elapsed() > Duration::from_secs(2)
                        {
                            return;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let sender = {
        let (stop, counts, pending) = (stop.clone(), counts.clone(), pending.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut id: u16 = 1;
            let mut sent: u64 = 0;
            // Bounded: at most 60 s of queries.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let due = started.elapsed().as_micros() as u64 * RATE / 1_000_000;
                while sent < due {
                    // Ids are reused only after 65,535 queries (13 s), long after
                    // their answers.
                    pending.lock().unwrap().insert(id, Instant::now());
                    if socket.send(&query(id)).is_ok() {
                        sent += 1;
                    }
                    id = id.wrapping_add(1).max(1);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            counts.lock().unwrap().udp_sent = sent;
        })
    };
    // TCP: a new connection every 10 ms.
    let tcp = {
        let (stop, counts) = (stop.clone(), counts.clone());
        std::thread::spawn(move || {
            let mut id: u16 = 1;
            while !stop.load(Ordering::Relaxed) {
                let outcome = tcp_query(dns, id);
                let mut counts = counts.lock().unwrap();
                counts.tcp_tried += 1;
                match outcome {
                    Ok(true) => counts.tcp_answered += 1,
                    Ok(false) => {}
                    Err(_) => counts.tcp_refused += 1,
                }
                drop(counts);
                id = id.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    // Pacing, not waiting: the query stream runs on its own for half a second before
    // the first restart, 200 ms between restarts and half a second after the last.
    std::thread::sleep(Duration::from_millis(500));
    let mut took = Vec::new();
    for restart in 0..RESTARTS {
        let old = current.load(Ordering::Relaxed);
        let asked = Instant::now();
        // SAFETY: kill() with a pid and a signal number.
        unsafe {
            libc::kill(old as libc::pid_t, libc::SIGUSR2);
        }
        let line = server
            .wait_for_log(
                "handed over to the replacement process",
                Duration::from_secs(30),
            )
            .unwrap_or_else(|| panic!("restart {restart}: no hand-over"));
        let new: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("pid="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"));
        current.store(new, Ordering::Relaxed);
        took.push(asked.elapsed());
        if !crate::support::wait_until(Duration::from_secs(10), || !alive(old)) {
            let log: Vec<String> = server.log.try_iter().collect();
            panic!(
                "restart {restart}: the old process {old} did not exit; log since:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    tcp.join().unwrap();
    receiver.join().unwrap();
    let counts = counts.lock().unwrap();
    let lost = counts.udp_sent - counts.udp_answered;
    let slowest = took.iter().max().unwrap();
    println!(
        "FIGURES zero-loss restart restarts={RESTARTS} udp_sent={} udp_answered={} udp_lost={lost} udp_wrong={} tcp_connections={} tcp_answered={} tcp_refused={} slowest_hand_over_ms={}",
        counts.udp_sent,
        counts.udp_answered,
        counts.udp_wrong,
        counts.tcp_tried,
        counts.tcp_answered,
        counts.tcp_refused,
        slowest.as_millis()
    );
    assert_eq!(lost, 0, "{counts:?}");
    assert_eq!(counts.udp_wrong, 0, "{counts:?}");
    assert_eq!(counts.tcp_refused, 0, "{counts:?}");
    assert_eq!(counts.tcp_answered, counts.tcp_tried, "{counts:?}");
    assert!(counts.udp_sent >= RATE * 4, "{counts:?}");
}

/// One query over a new TCP connection: Ok(answered right), Err when the connection
/// or the exchange failed.
fn tcp_query(dns: SocketAddr, id: u16) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&dns, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let message = query(id);
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend(message);
    stream.write_all(&framed)?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut reply)?;
    Ok(right(&reply).is_some_and(|(got, ok)| got == id && ok))
}
