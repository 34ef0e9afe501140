//! The admin listeners: one per configured address, plain HTTP or HTTPS (rustls).
//!
//! TLS handshakes run in tasks of their own (bounded by a timeout), so a slow or
//! silent client never holds up the accept loop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::auth::SharedAccess;
use super::{Backend, router};
use crate::config::TlsFiles;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at most, per listener.
const MAX_HANDSHAKES: usize = 256;

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
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
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Accepts TLS connections whose handshake completed.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor, local: SocketAddr) -> Self {
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(error = %crate::logs::Escaped(&error), %peer, "admin TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "admin TLS handshake timed out"),
                    }
                });
            }
        });
        Self { local, ready }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (it never does while the listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Loads the certificate chain and key of an HTTPS listener.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, AdminError> {
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

/// Binds every admin listener; returns the bound addresses and the serving futures.
pub async fn bind(
    addrs: &[SocketAddr],
    tls: Option<&TlsFiles>,
    backend: Backend,
    access: SharedAccess,
    shutdown: CancellationToken,
) -> Result<Vec<(SocketAddr, impl Future<Output = ()> + Send + 'static)>, AdminError> {
    let acceptor = tls.map(tls_acceptor).transpose()?;
    let mut out = Vec::new();
    for &addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| AdminError::Bind { addr, source })?;
        let app = router(backend.clone(), access.clone());
        let token = shutdown.clone();
        let acceptor = acceptor.clone();
        let serve = async move {
            let stop = async move { token.cancelled().await };
            let result = match acceptor {
                None => {
                    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                        .with_graceful_shutdown(stop)
                        .await
                }
                Some(acceptor) => {
                    let listener = TlsListener::new(listener, acceptor, bound);
                    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                        .with_graceful_shutdown(stop)
                        .await
                }
            };
            if let Err(error) = result {
                tracing::error!(%error, "admin API stopped");
            }
        };
        out.push((bound, serve));
    }
    Ok(out)
}
