//! dnstap query and response logging: protobuf over Frame Streams to a Unix socket,
//! as Knot, NSD, BIND and Unbound log.
//!
//! ```text
//!  UDP/TCP workers ── log() ──▶ full queue ──▶ writer thread ──▶ Unix socket (fstrm)
//!        ▲  (no lock, no allocation:         (encodes, batches,
//!        │   buffers come from a pool)        reconnects)
//!        └──────────── free queue ◀── buffers handed back
//! ```
//!
//! Lossy by design: when the pool is empty (the consumer is slow or gone) a message
//! is dropped and counted, and the answer path never waits.

mod fstrm;
pub(crate) mod proto;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;

pub(crate) use crate::config::DnstapConfig;
use prost::Message as _;

/// The transport a message came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Query,
    Response,
}

/// One buffered message (its buffer is reused).
struct Entry {
    kind: Kind,
    protocol: Protocol,
    client: SocketAddr,
    server: SocketAddr,
    time: Duration,
    bytes: Vec<u8>,
}

struct Shared {
    config: DnstapConfig,
    free: ArrayQueue<Entry>,
    full: ArrayQueue<Entry>,
    written: AtomicU64,
    dropped: AtomicU64,
    connected: AtomicBool,
    stop: AtomicBool,
}

/// Counters of a dnstap sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnstapStats {
    /// Messages written to the socket.
    pub written: u64,
    /// Messages dropped (queue full, or no consumer connected).
    pub dropped: u64,
    /// Whether a consumer is connected now.
    pub connected: bool,
}

/// A handle the transports log through (cheap to clone).
#[derive(Clone)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Dnstap {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Dnstap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dnstap")
            .field("socket", &self.shared.config.socket)
            .finish_non_exhaustive()
    }
}

/// The running writer: stops (STOP/FINISH to the consumer) when dropped or shut down.
pub(crate) struct DnstapWriter {
    handle: Dnstap,
    thread: Option<JoinHandle<()>>,
}

/// Largest message kept whole in a pooled buffer without growing it.
const BUFFER: usize = 4096;

impl Dnstap {
    /// Starts the writer thread and returns the logging handle with it.
    pub(crate) fn start(config: DnstapConfig) -> std::io::Result<(Self, DnstapWriter)> {
        let queue = config.queue.max(1);
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let free = ArrayQueue::new(queue);
        for _ in 0..queue {
            let _ = free.push(Entry {
                kind: Kind::Query,
                protocol: Protocol::Udp,
                client: unspecified,
                server: unspecified,
                time: Duration::ZERO,
                bytes: Vec::with_capacity(BUFFER),
            });
        }
        let shared = Arc::new(Shared {
            config,
            free,
            full: ArrayQueue::new(queue),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let handle = Self { shared };
        let writer_handle = handle.clone();
        let thread = std::thread::Builder::new()
            .name("dnstap".into())
            .spawn(move || writer_handle.run())?;
        Ok((
            handle.clone(),
            DnstapWriter {
                handle,
                thread: Some(thread),
            },
        ))
    }

    /// Logs a query received from `client` on `server`, if queries are logged.
    pub(crate) fn query(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        server: SocketAddr,
        bytes: &[u8],
    ) {
        if self.shared.config.queries {
            self.log(Kind::Query, protocol, client, server, bytes);
        }
    }

    /// Logs a response sent to `client` from `server`, if responses are logged.
    pub(crate) fn response(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        server: SocketAddr,
        bytes: &[u8],
    ) {
        if self.shared.config.responses {
            self.log(Kind::Response, protocol, client, server, bytes);
        }
    }

    fn log(
        &self,
        kind: Kind,
        protocol: Protocol,
        client: SocketAddr,
        server: SocketAddr,
        bytes: &[u8],
    ) {
        let Some(mut entry) = self.shared.free.pop() else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        entry.kind = kind;
        entry.protocol = protocol;
        entry.client = client;
        entry.server = server;
        entry.time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        entry.bytes.clear();
        entry.bytes.extend_from_slice(bytes);
        if let Err(entry) = self.shared.full.push(entry) {
            // Cannot happen (both queues hold the same buffers); never lose a buffer.
            let _ = self.shared.free.push(entry);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters.
    pub(crate) fn stats(&self) -> DnstapStats {
        DnstapStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            connected: self.shared.connected.load(Ordering::Relaxed),
        }
    }

    /// The writer: connects (and reconnects), drains the queue in batches.
    fn run(&self) {
        let shared = &self.shared;
        let mut frames: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut payload: Vec<u8> = Vec::with_capacity(BUFFER);
        let mut stream: Option<UnixStream> = None;
        let mut next_attempt = std::time::Instant::now();
        loop {
            let stopping = shared.stop.load(Ordering::Relaxed);
            if stream.is_none() && std::time::Instant::now() >= next_attempt {
                match self.connect() {
                    Ok(s) => {
                        tracing::info!(socket = %shared.config.socket.display(), "dnstap connected");
                        stream = Some(s);
                        shared.connected.store(true, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::debug!(socket = %shared.config.socket.display(), %error, "dnstap consumer not reachable");
                        next_attempt = std::time::Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            let mut batch = 0u64;
            frames.clear();
            while let Some(entry) = shared.full.pop() {
                if stream.is_some() {
                    payload.clear();
                    self.encode(&entry, &mut payload);
                    fstrm::data_frame(&payload, &mut frames);
                    batch += 1;
                } else {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let _ = shared.free.push(entry);
                if frames.len() >= 60 * 1024 {
                    break;
                }
            }
            if let Some(s) = stream.as_mut()
                && !frames.is_empty()
            {
                match s.write_all(&frames) {
                    Ok(()) => {
                        shared.written.fetch_add(batch, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "dnstap consumer went away; reconnecting");
                        shared.dropped.fetch_add(batch, Ordering::Relaxed);
                        stream = None;
                        shared.connected.store(false, Ordering::Relaxed);
                        next_attempt = std::time::Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            if stopping && shared.full.is_empty() {
                if let Some(mut s) = stream.take() {
                    let _ = fstrm::finish(&mut s);
                }
                shared.connected.store(false, Ordering::Relaxed);
                return;
            }
            if batch == 0 {
                // Nothing queued: look again shortly (batches, not a wake-up per query).
                std::thread::park_timeout(Duration::from_millis(20));
            }
        }
    }

    fn connect(&self) -> std::io::Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.shared.config.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        fstrm::handshake(&mut stream)?;
        Ok(stream)
    }

    fn encode(&self, entry: &Entry, out: &mut Vec<u8>) {
        let config = &self.shared.config;
        let address = |addr: IpAddr| match addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let (sec, nsec) = (entry.time.as_secs(), entry.time.subsec_nanos());
        let query = entry.kind == Kind::Query;
        let message = proto::Message {
            r#type: if query {
                proto::AUTH_QUERY
            } else {
                proto::AUTH_RESPONSE
            },
            socket_family: Some(if entry.client.is_ipv4() {
                proto::INET
            } else {
                proto::INET6
            }),
            socket_protocol: Some(match entry.protocol {
                Protocol::Udp => proto::UDP,
                Protocol::Tcp => proto::TCP,
            }),
            query_address: Some(address(entry.client.ip())),
            response_address: Some(address(entry.server.ip())),
            query_port: Some(u32::from(entry.client.port())),
            response_port: Some(u32::from(entry.server.port())),
            query_time_sec: query.then_some(sec),
            query_time_nsec: query.then_some(nsec),
            query_message: query.then(|| entry.bytes.clone()),
            response_time_sec: (!query).then_some(sec),
            response_time_nsec: (!query).then_some(nsec),
            response_message: (!query).then(|| entry.bytes.clone()),
        };
        let frame = proto::Dnstap {
            identity: Some(config.identity.clone().into_bytes()),
            version: Some(config.version.clone().into_bytes()),
            message: Some(message),
            r#type: proto::TYPE_MESSAGE,
        };
        // Encoding into a Vec cannot fail.
        let _ = frame.encode(out);
    }
}

impl DnstapWriter {
    /// Stops the writer after it has written what is queued, and closes the stream.
    pub(crate) fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for DnstapWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
