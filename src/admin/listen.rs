//! The admin listeners: one per configured address, plain HTTP or HTTPS (rustls), each
//! with its own accept loop so that every connection is bounded.
//!
//! ```text
//!  accept ─▶ Table::admit (cap per address, cap in all; an idle one evicted to make room)
//!    └─▶ task: [TLS handshake ≤ handshake_timeout] ─▶ hyper HTTP/1
//!              headers ≤ header_timeout (also between kept-alive requests)
//!              body ≤ body_timeout · no progress either way ≤ idle_timeout
//! ```
//!
//! A refused connection is closed at once without a byte read; every refusal and
//! early close is counted by reason (`failoverd_admin_connections_refused_total`).
//! The cap in all is also kept below a quarter of the process's descriptor limit, so
//! the admin port can never take the descriptors the probers and DNS listeners need.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::limits::{Id, Refused, Table};
use crate::config::{AdminLimits, TlsFiles};

/// How long open connections may finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum AdminError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("admin TLS: {0}")]
    Tls(String),
}

/// The client of a connection, as handlers see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub SocketAddr);

/// Counters of every admin listener of a process.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    refused: [AtomicU64; Refused::ALL.len()],
    open: AtomicU64,
}

impl ListenerStats {
    fn refused(&self, reason: Refused) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals and early closes so far, by metric label.
    pub(crate) fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refused::ALL
            .iter()
            .map(|r| (r.label(), self.refused[*r as usize].load(Ordering::Relaxed)))
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// The connections of one listener: the pure table and how to close each one.
struct Connections {
    table: Table,
    closers: HashMap<Id, CancellationToken>,
    epoch: Instant,
}

type SharedConnections = Arc<Mutex<Connections>>;

fn lock(connections: &SharedConnections) -> std::sync::MutexGuard<'_, Connections> {
    connections.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frees a connection's place when its task ends, however it ends.
struct Place {
    connections: SharedConnections,
    id: Id,
    stats: Arc<ListenerStats>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut connections = lock(&self.connections);
        connections.table.release(self.id);
        connections.closers.remove(&self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks a connection busy while a request is answered (an idle one may be evicted).
struct Busy {
    connections: SharedConnections,
    id: Id,
}

impl Busy {
    fn new(connections: &SharedConnections, id: Id) -> Self {
        lock(connections).table.request_started(id);
        Self {
            connections: connections.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut connections = lock(&self.connections);
        let now = connections.epoch.elapsed();
        connections.table.request_ended(self.id, now);
    }
}

/// Loads the certificate chain and key of an HTTPS listener.
pub(crate) fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, AdminError> {
    let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, AdminError> {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
            .map_err(|e| AdminError::Tls(format!("{}: {e}", path.display())))?
            .collect();
        let certs = certs.map_err(|e| AdminError::Tls(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(AdminError::Tls(format!(
                "{}: no certificate",
                path.display()
            )));
        }
        Ok(certs)
    };
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| AdminError::Tls(format!("{}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdminError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| AdminError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connection cap in all: the configured one, kept below a quarter of the
/// descriptor limit.
pub(crate) fn connection_cap(limits: &AdminLimits) -> usize {
    let descriptors = crate::runtime::descriptor_limit().unwrap_or(u64::MAX);
    limits
        .max_connections
        .min(usize::try_from(descriptors / 4).unwrap_or(usize::MAX))
        .max(1)
}

/// Where the admin listeners come from and what stops them.
pub(crate) struct Listen<'a> {
    /// Sockets of the process this one replaces (taken for the addresses they match).
    pub inherited: Option<&'a mut crate::runtime::inherit::Inherited>,
    /// While true, the listeners accept nothing (connections wait in the queue): a
    /// replacing process is taking over.
    pub paused: tokio::sync::watch::Receiver<bool>,
    /// Stops everything.
    pub shutdown: CancellationToken,
}

/// A bound admin listener: its address, its socket (for a hand-over), and the future
/// that serves it.
pub(crate) type Bound<F> = (SocketAddr, std::os::fd::RawFd, F);

/// Binds every admin listener; returns the bound addresses and the serving futures.
pub(crate) async fn bind(
    addrs: &[SocketAddr],
    tls: Option<&TlsFiles>,
    app: Router,
    limits: AdminLimits,
    stats: Arc<ListenerStats>,
    mut listen: Listen<'_>,
) -> Result<Vec<Bound<impl Future<Output = ()> + Send + 'static>>, AdminError> {
    let acceptor = tls.map(tls_acceptor).transpose()?;
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let mut out = Vec::new();
    for &addr in addrs {
        let handed = listen
            .inherited
            .as_deref_mut()
            .and_then(|inherited| inherited.take_admin(addr))
            .and_then(|listener| {
                listener.set_nonblocking(true).ok()?;
                TcpListener::from_std(listener).ok()
            });
        let listener = match handed {
            Some(listener) => listener,
            None => bind_socket(addr).map_err(|source| AdminError::Bind { addr, source })?,
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let bound = listener
            .local_addr()
            .map_err(|source| AdminError::Bind { addr, source })?;
        let serve = accept_loop(
            listener,
            acceptor.clone(),
            app.clone(),
            limits,
            stats.clone(),
            listen.paused.clone(),
            listen.shutdown.clone(),
        );
        out.push((bound, fd, serve));
    }
    Ok(out)
}

/// How many connections the kernel queues for `accept` (capped by
/// `net.core.somaxconn`): a burst of connections does not overflow the queue and drop
/// an operator's while the loop catches up.
const BACKLOG: i32 = 4096;

/// A listening socket on `addr` with the [`BACKLOG`].
fn bind_socket(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    limits: AdminLimits,
    stats: Arc<ListenerStats>,
    mut paused: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let connections: SharedConnections = Arc::new(Mutex::new(Connections {
        table: Table::new(connection_cap(&limits), limits.max_connections_per_source),
        closers: HashMap::new(),
        epoch: Instant::now(),
    }));
    let tasks = TaskTracker::new();
    let mut accept_errors = crate::runtime::Backoff::default();
    loop {
        if *paused.borrow_and_update() {
            // A replacing process takes over; what arrives waits for it in the queue.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = paused.changed() => if changed.is_err() { break },
            }
            continue;
        }
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = paused.changed() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                accept_errors.reset();
                accepted
            }
            Err(error) => {
                // Out of descriptors (or another transient failure): wait a little
                // rather than spin; the connection stays in the backlog.
                if accept_errors.first() {
                    tracing::warn!(%error, "admin API cannot accept connections");
                }
                tokio::time::sleep(accept_errors.next_delay()).await;
                continue;
            }
        };
        let (id, closed) = {
            let mut guard = lock(&connections);
            let now = guard.epoch.elapsed();
            let admitted = match guard.table.admit(peer.ip(), now) {
                Ok(admitted) => admitted,
                Err(reason) => {
                    drop(guard);
                    stats.refused(reason);
                    drop(stream);
                    continue;
                }
            };
            if let Some(victim) = admitted.evict {
                if let Some(closer) = guard.closers.remove(&victim) {
                    closer.cancel();
                }
                stats.refused(Refused::Evicted);
            }
            let closed = shutdown.child_token();
            guard.closers.insert(admitted.id, closed.clone());
            (admitted.id, closed)
        };
        stats.open.fetch_add(1, Ordering::Relaxed);
        let place = Place {
            connections: connections.clone(),
            id,
            stats: stats.clone(),
        };
        let connection = Connection {
            app: app.clone(),
            peer,
            limits,
            stats: stats.clone(),
            closed,
            stopping: shutdown.clone(),
        };
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            connection.run(stream, acceptor, place).await;
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await;
}

/// One admitted connection.
struct Connection {
    app: Router,
    peer: SocketAddr,
    limits: AdminLimits,
    stats: Arc<ListenerStats>,
    /// Cancelled to evict it (or when the listener stops).
    closed: CancellationToken,
    /// The process is shutting down: finish the request in hand, then close.
    stopping: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, acceptor: Option<TlsAcceptor>, place: Place) {
        let _ = stream.set_nodelay(true);
        let progress = Arc::new(Progress::new());
        let stream = Tracked {
            inner: stream,
            progress: progress.clone(),
        };
        match acceptor {
            None => self.serve(stream, progress, place).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    _ = self.closed.cancelled() => return,
                    done = tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(stream)) => done,
                };
                match handshake {
                    Ok(Ok(tls)) => self.serve(tls, progress, place).await,
                    Ok(Err(error)) => {
                        tracing::debug!(error = %crate::logs::Escaped(&error), peer = %self.peer, "admin TLS handshake failed");
                        self.stats.refused(Refused::HandshakeFailed);
                    }
                    Err(_) => self.stats.refused(Refused::HandshakeTimeout),
                }
            }
        }
    }

    async fn serve<S>(&self, stream: S, progress: Arc<Progress>, place: Place)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (app, peer, connections, id) = (
            self.app.clone(),
            self.peer,
            place.connections.clone(),
            place.id,
        );
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(Peer(peer)));
            let busy = Busy::new(&connections, id);
            let answer = app.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        if error.is_timeout() {
                            self.stats.refused(Refused::HeaderTimeout);
                        } else {
                            tracing::debug!(%error, %peer, "admin connection ended");
                        }
                    }
                    return;
                }
                _ = self.closed.cancelled(), if !stopping => {
                    if self.stopping.is_cancelled() {
                        // Shutdown: finish the request in hand (bounded by the grace).
                        connection.as_mut().graceful_shutdown();
                        stopping = true;
                    } else {
                        return; // evicted
                    }
                }
                _ = progress.stalled(self.limits.idle_timeout) => {
                    self.stats.refused(Refused::IdleTimeout);
                    return;
                }
            }
        }
    }
}

/// When a connection last moved a byte either way.
struct Progress {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    async fn stalled(&self, idle: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that notes every byte moved (for the idle timeout).
struct Tracked<S> {
    inner: S,
    progress: Arc<Progress>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.progress.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
