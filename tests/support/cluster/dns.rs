//! DNS from the `client` namespace: single queries, an answer watcher that records
//! every change of answer with its time, and a bounded query load. Messages are built
//! and parsed with hickory-proto, independent of failoverd's encoder.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::net::Net;

/// The name the watchers and the load ask for.
pub const WWW: &str = "www.gslb.test.";

/// An answer: the sorted A addresses, or what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A reply with these addresses (sorted; empty for NODATA and errors).
    Addresses(Vec<String>),
    /// No reply within the timeout (or the port was closed).
    NoReply,
}

impl Answer {
    /// Whether this is a reply of exactly one address, `addr`.
    pub fn is(&self, addr: Ipv4Addr) -> bool {
        matches!(self, Self::Addresses(a) if a.len() == 1 && a[0] == addr.to_string())
    }

    /// Short text for figures and messages.
    pub fn text(&self) -> String {
        match self {
            Self::Addresses(a) if a.is_empty() => "empty".to_owned(),
            Self::Addresses(a) => a.join("+"),
            Self::NoReply => "no-reply".to_owned(),
        }
    }
}

/// A reply: addresses and the TTL of the first answer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The sorted A addresses.
    pub addresses: Vec<String>,
    /// TTL of the first answer record, if any.
    pub ttl: Option<u32>,
}

/// A fresh query id.
fn next_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0x2345);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// An A query for `name` (RD clear, as a resolver asks an authoritative server).
pub fn query(name: &str) -> Message {
    let mut message = Message::query();
    message.metadata.id = next_id();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    message
}

/// Sends `message` over `socket` (connected to the server) and waits up to `timeout`
/// for the reply with the same id (replies to earlier, timed-out queries are
/// skipped). None when no reply came in time or the port is closed (the connected
/// socket sees the ICMP error at once, so a restarting server is polled quickly).
pub fn exchange(socket: &UdpSocket, message: &Message, timeout: Duration) -> Option<Reply> {
    let bytes = message.to_vec().expect("encode query");
    socket.send(&bytes).ok()?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = socket.recv(&mut buf).ok()?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if reply.metadata.id != message.metadata.id {
            continue;
        }
        let mut addresses: Vec<String> = reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.to_string()),
                _ => None,
            })
            .collect();
        addresses.sort();
        let ttl = reply.answers.first().map(|r| r.ttl);
        return Some(Reply { addresses, ttl });
    }
}

/// A UDP socket connected to `server` port 53 (create it inside the client
/// namespace).
pub fn client_socket(server: Ipv4Addr) -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind DNS client socket");
    socket
        .connect(SocketAddr::from((server, 53)))
        .expect("connect DNS client socket");
    socket
}

/// Asks `server` (port 53) for `name` A once, from the client namespace.
pub fn ask(net: &Net, server: Ipv4Addr, name: &str) -> Option<Reply> {
    let name = name.to_owned();
    net.run_in("client", move || {
        let socket = client_socket(server);
        exchange(&socket, &query(&name), Duration::from_secs(1))
    })
}

/// One poll of a watcher.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the reply (or the timeout) came.
    pub at: Instant,
    /// What came.
    pub answer: Answer,
}

/// A change between two consecutive answered polls.
#[derive(Clone)]
pub struct Change {
    /// When the new answer was first seen.
    pub at: Instant,
    /// The answer before.
    pub from: Answer,
    /// The answer after.
    pub to: Answer,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}→{}", self.from.text(), self.to.text())
    }
}

/// Polls [`WWW`] A against one server every ~20 ms from the client namespace, in
/// the background, for at most `MAX_WATCH` and `MAX_SAMPLES` polls.
pub struct Watcher {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Longest a watcher runs.
const MAX_WATCH: Duration = Duration::from_secs(90);
/// Most polls a watcher makes.
const MAX_SAMPLES: usize = 6000;
/// Time between polls.
const POLL: Duration = Duration::from_millis(20);
/// How long a poll waits for its reply.
const POLL_TIMEOUT: Duration = Duration::from_millis(250);

impl Watcher {
    /// Starts watching `server`.
    pub fn start(net: &Net, server: Ipv4Addr) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (task_samples, task_stop) = (samples.clone(), stop.clone());
        let thread = net.spawn_in("client", move || {
            let socket = client_socket(server);
            let started = Instant::now();
            let mut next = Instant::now();
            while !task_stop.load(Ordering::Relaxed)
                && started.elapsed() < MAX_WATCH
                && task_samples.lock().unwrap().len() < MAX_SAMPLES
            {
                let answer = match exchange(&socket, &query(WWW), POLL_TIMEOUT) {
                    Some(reply) => Answer::Addresses(reply.addresses),
                    None => Answer::NoReply,
                };
                task_samples.lock().unwrap().push(Sample {
                    at: Instant::now(),
                    answer,
                });
                next += POLL;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The latest answer (timeouts included), if any poll finished.
    pub fn latest(&self) -> Option<Answer> {
        self.samples
            .lock()
            .unwrap()
            .last()
            .map(|s| s.answer.clone())
    }

    /// Changes of answer between consecutive *answered* polls (timeouts are gaps,
    /// not answers) whose new answer was first seen in `[from, to)`.
    pub fn changes_during(&self, from: Instant, to: Instant) -> Vec<Change> {
        let samples = self.samples.lock().unwrap();
        let mut changes = Vec::new();
        let mut last: Option<&Answer> = None;
        for sample in samples.iter() {
            if sample.answer == Answer::NoReply {
                continue;
            }
            if let Some(before) = last {
                if *before != sample.answer && sample.at >= from && sample.at < to {
                    changes.push(Change {
                        at: sample.at,
                        from: before.clone(),
                        to: sample.answer.clone(),
                    });
                }
            }
            last = Some(&sample.answer);
        }
        changes
    }

    /// Every change from `from` until now.
    pub fn changes_since(&self, from: Instant) -> Vec<Change> {
        self.changes_during(from, Instant::now() + Duration::from_secs(3600))
    }

    /// Polls answered (not timed out) in `[from, to)`.
    pub fn answered_during(&self, from: Instant, to: Instant) -> usize {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.at >= from && s.at < to && s.answer != Answer::NoReply)
            .count()
    }

    /// The first sample at or after `since` that is an answer (not a timeout).
    pub fn first_answer_since(&self, since: Instant) -> Option<Sample> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.at >= since && s.answer != Answer::NoReply)
            .cloned()
    }

    /// Waits (until `within` has passed) for a poll at or after `since` answering
    /// exactly `addr`; returns how long after `since` it came.
    pub fn time_until(&self, since: Instant, addr: Ipv4Addr, within: Duration) -> Option<Duration> {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .samples
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.at >= since && s.answer.is(addr))
                .map(|s| s.at);
            if let Some(at) = found {
                return Some(at.saturating_duration_since(since));
            }
            if Instant::now() >= deadline || self.finished() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the watcher stopped polling (stopped, or out of time or samples).
    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops polling.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Counts of a load run.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadCounts {
    /// Queries sent.
    pub sent: u64,
    /// Replies received.
    pub answered: u64,
    /// Queries without a reply within [`LOAD_TIMEOUT`] (or refused).
    pub timeouts: u64,
    /// Replies other than the expected answer.
    pub wrong: u64,
}

/// A bounded query load against one server from the client namespace: `threads`
/// threads, each one query in flight, at most `rate` queries a second each, for at
/// most `period` and `max_queries` queries in all.
pub struct Load {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    counters: Arc<[AtomicU64; 4]>,
    wrong_examples: Arc<Mutex<Vec<String>>>,
}

/// How long a load query waits for its reply before it counts as a timeout.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(1);

impl Load {
    /// Starts the load; a reply is right when its addresses are exactly `expect`.
    pub fn start(
        net: &Net,
        server: Ipv4Addr,
        threads: usize,
        rate: u32,
        period: Duration,
        max_queries: u64,
        expect: Ipv4Addr,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counters: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
        let wrong_examples = Arc::new(Mutex::new(Vec::new()));
        let per_thread = max_queries / threads as u64;
        let interval = Duration::from_secs(1) / rate;
        let handles = (0..threads)
            .map(|_| {
                let (stop, counters, wrong_examples) =
                    (stop.clone(), counters.clone(), wrong_examples.clone());
                net.spawn_in("client", move || {
                    let socket = client_socket(server);
                    let started = Instant::now();
                    let mut next = Instant::now();
                    let want = vec![expect.to_string()];
                    for _ in 0..per_thread {
                        if stop.load(Ordering::Relaxed) || started.elapsed() >= period {
                            break;
                        }
                        counters[0].fetch_add(1, Ordering::Relaxed);
                        match exchange(&socket, &query(WWW), LOAD_TIMEOUT) {
                            Some(reply) => {
                                counters[1].fetch_add(1, Ordering::Relaxed);
                                if reply.addresses != want {
                                    counters[3].fetch_add(1, Ordering::Relaxed);
                                    let mut examples = wrong_examples.lock().unwrap();
                                    if examples.len() < 5 {
                                        examples.push(format!(
                                            "{:?} after {} ms",
                                            reply.addresses,
                                            started.elapsed().as_millis()
                                        ));
                                    }
                                }
                            }
                            None => {
                                counters[2].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        next += interval;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else if now - next > Duration::from_millis(100) {
                            next = now; // behind: do not burst to catch up
                        }
                    }
                })
            })
            .collect();
        Self {
            threads: handles,
            stop,
            counters,
            wrong_examples,
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> LoadCounts {
        LoadCounts {
            sent: self.counters[0].load(Ordering::Relaxed),
            answered: self.counters[1].load(Ordering::Relaxed),
            timeouts: self.counters[2].load(Ordering::Relaxed),
            wrong: self.counters[3].load(Ordering::Relaxed),
        }
    }

    /// Waits for the load to finish; returns its counts and a few wrong replies.
    pub fn finish(mut self) -> (LoadCounts, Vec<String>) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let examples = self.wrong_examples.lock().unwrap().clone();
        (self.counts(), examples)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
