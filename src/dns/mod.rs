//! The DNS front end.
//!
//! ```text
//!  UDP sockets (SO_REUSEPORT) ─▶ worker threads ─▶ [rrl] ─┐
//!  [xdp] XDP program ─▶ AF_XDP rings ─▶ queue threads ────┤
//!                                                        ├─▶ Responder: wire::parse ─▶ resolve ─▶ encode
//!  TCP listener ─▶ accept loop ─▶ connection tasks ───────┘        (reads an Arc<Snapshot>; no locks)
//!                                  └─▶ transfer hook: AXFR/IXFR ─▶ xfr (TSIG, journal, NOTIFY)
//!
//!  health/config changes ─▶ Snapshot::with_health / build ─▶ SharedSnapshot::store
//! ```
//!
//! Modules, each depending only on those before it: `wire` (parsing), `writer`
//! (encoding), `answers` (the snapshot's data), `resolve` (RFC 1034 resolution over
//! it), `snapshot` (building and publishing), `engine` (packet in, packet out, with
//! `servfail` and `rrl`), then the transports (`udp` with its AF_XDP path `xdp`, `tcp`
//! with its `transfer` hook served by `xfr`) and `dnstap`.

pub(crate) mod answers;
pub(crate) mod dnstap;
pub(crate) mod engine;
pub(crate) mod resolve;
pub(crate) mod rrl;
pub(crate) mod snapshot;
pub(crate) mod tcp;
pub(crate) mod transfer;
pub(crate) mod udp;
pub(crate) mod wire;
mod worker;
pub(crate) mod writer;
#[cfg(target_os = "linux")]
mod xdp;
pub(crate) mod xfr;
pub(crate) mod zone_text;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;

pub(crate) use self::answers::Snapshot;
#[cfg(test)]
pub(crate) use self::engine::{Responder, Transport};
pub(crate) use self::snapshot::SharedSnapshot;
pub(crate) use self::transfer::TransferHandler;
use crate::config::ServerConfig;
use crate::runtime::inherit::{self, Inherited, Kind, Listening};
use crate::telemetry::metrics::DnsMetrics;

/// Errors of the DNS front end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum DnsError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Attempts to find a port free for both UDP and TCP when asked for port 0.
const PORT_ATTEMPTS: usize = 20;

/// Running listeners.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnsServer {
    /// Bound addresses (UDP and TCP share each).
    pub addresses: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
    /// Stops the TCP accept loops only (connections finish).
    accepting: CancellationToken,
    tcp: Vec<tokio::task::JoinHandle<()>>,
    /// The listening sockets (for a hand-over to a replacing process).
    listening: Vec<Listening>,
    /// Counters.
    pub metrics: DnsMetrics,
}

impl DnsServer {
    /// Binds every listen address of `server` (UDP with `udp_workers` sockets each,
    /// rate limited by `rrl` if set; TCP on the same port) and starts serving from
    /// `shared`. Zone-transfer queries over TCP, and IXFR over UDP, go to
    /// `transfers` when given (see [`transfer`]). Must run inside a tokio runtime.
    /// Sockets in `inherited` (from the process this one replaces) are used for the
    /// listen addresses they match instead of binding new ones.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn start(
        server: &ServerConfig,
        shared: SharedSnapshot,
        transfers: Option<Arc<dyn TransferHandler>>,
        dnstap: Option<dnstap::Dnstap>,
        mut inherited: Option<&mut Inherited>,
    ) -> Result<Self, DnsError> {
        let metrics = DnsMetrics::default();
        let stop = Arc::new(AtomicBool::new(false));
        let cancel = CancellationToken::new();
        let tcp_counters = metrics.shard();
        let settings = tcp::TcpSettings {
            idle_timeout: server.tcp_idle_timeout,
            max_connections: server.tcp_max_connections,
            max_connections_per_source: server.tcp_max_connections_per_source,
            transfers: transfers.clone(),
            dnstap: dnstap.clone(),
        };
        let accepting = cancel.child_token();
        let mut threads = Vec::new();
        let mut tcp = Vec::new();
        let mut addresses = Vec::new();
        let mut listening = Vec::new();
        for &addr in &server.listen {
            let handed = inherited.as_deref_mut().and_then(|inherited| {
                let sockets = inherited.take_udp(addr)?;
                let listener = inherited.take_tcp(sockets[0].local_addr().ok()?)?;
                listener.set_nonblocking(true).ok()?;
                Some((sockets, tokio::net::TcpListener::from_std(listener).ok()?))
            });
            let (sockets, listener) = match handed {
                Some(pair) => pair,
                None => bind_pair(addr, server.udp_workers)?,
            };
            let bound = listener
                .local_addr()
                .map_err(|source| DnsError::Bind { addr, source })?;
            listening.push(Listening {
                kind: Kind::Udp,
                addr: bound,
                fds: sockets.iter().map(inherit::raw).collect(),
            });
            listening.push(Listening {
                kind: Kind::Tcp,
                addr: bound,
                fds: vec![inherit::raw(&listener)],
            });
            tcp.push(tcp::spawn(
                listener,
                settings.clone(),
                shared.clone(),
                tcp_counters.clone(),
                tcp::Stop {
                    accepting: accepting.clone(),
                    connections: cancel.clone(),
                },
            ));
            threads.extend(
                udp::spawn(
                    sockets,
                    shared.clone(),
                    stop.clone(),
                    &metrics,
                    &udp::UdpOptions {
                        io: server.udp_io,
                        rrl: server.rrl.as_ref(),
                        dnstap: dnstap.clone(),
                        transfers: transfers.clone(),
                    },
                )
                .map_err(|source| DnsError::Bind { addr, source })?,
            );
            tracing::info!(
                udp = %bound,
                tcp = %bound,
                workers = server.udp_workers,
                rrl = server.rrl.is_some(),
                "dns listening"
            );
            addresses.push(bound);
        }
        Ok(Self {
            addresses,
            stop,
            threads,
            cancel,
            accepting,
            tcp,
            listening,
            metrics,
        })
    }

    /// The listening sockets, for a process taking over.
    pub(crate) fn listening(&self) -> &[Listening] {
        &self.listening
    }

    /// Stops reading and accepting (a replacing process serves the same sockets);
    /// open TCP connections finish. Waits for the UDP workers.
    pub(crate) async fn stop_serving(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.accepting.cancel();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }

    /// Stops every listener and connection and waits for the UDP threads.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tcp) {
            let _ = task.await;
        }
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Binds UDP sockets and a TCP listener on the same port.
fn bind_pair(
    addr: SocketAddr,
    udp_workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, tokio::net::TcpListener), DnsError> {
    let attempts = if addr.port() == 0 { PORT_ATTEMPTS } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let sockets =
            udp::bind(addr, udp_workers).map_err(|source| DnsError::Bind { addr, source })?;
        let port = sockets[0]
            .local_addr()
            .map_err(|source| DnsError::Bind { addr, source })?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match bind_tcp(tcp_addr) {
            Ok(listener) => return Ok((sockets, listener)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(DnsError::Bind {
        addr,
        source: last_error.unwrap_or_else(|| io::Error::other("no port")),
    })
}

fn bind_tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}
