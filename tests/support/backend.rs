//! HTTP(S) and TCP backends on loopback that a test can break in every way a probe
//! must notice: refuse connections, hang (blackhole), answer 503, answer 200 with the
//! wrong body, present an expired or wrong-host certificate, answer slowly or fail
//! every n-th request — and, per client source address, drop everything (a network
//! partition seen from one vantage point).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How a backend behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 with body "ok".
    Healthy,
    /// The port is closed: connections are refused.
    Refuse,
    /// Connections are accepted but never answered.
    Blackhole,
    /// This HTTP status.
    Status(u16),
    /// 200 with this body.
    Body(String),
    /// 200 "ok", after this delay (a slow backend).
    Slow(Duration),
    /// 503 for every n-th HTTP request (counted over the backend's life), 200 "ok"
    /// otherwise (a flaky backend).
    Flaky(usize),
}

/// Certificates made for a test: a CA (written to a PEM file) and leaves it signed.
pub struct TestPki {
    /// The CA certificate, PEM, on disk (for `ca_file`).
    pub ca_file: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    _dir: tempfile::TempDir,
}

/// A server certificate and key.
#[derive(Clone)]
pub struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    /// The same as PEM (certificate, key), for servers that read files.
    pub pem: (String, String),
}

impl TestPki {
    /// A new CA.
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "failoverd test CA");
        let cert = params.self_signed(&key).expect("CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write CA");
        Self {
            ca_file,
            issuer: rcgen::Issuer::new(params, key),
            _dir: dir,
        }
    }

    /// A leaf for `host`, valid now (or expired).
    pub fn leaf(&self, host: &str, expired: bool) -> ServerCert {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        } else {
            params.not_before = rcgen::date_time_ymd(2024, 1, 1);
            params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        ServerCert {
            chain: vec![cert.der().clone()],
            key: key.serialize_der(),
            pem: (cert.pem(), key.serialize_pem()),
        }
    }
}

struct Shared {
    mode: Mode,
    cert: Option<ServerCert>,
    /// Clients from this address get a blackhole (their vantage is partitioned).
    drop_from: Option<IpAddr>,
    /// The head of every HTTP request answered, as received.
    requests: Vec<String>,
}

/// A running backend (HTTP, HTTPS when given a certificate, or plain TCP accept).
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Backend {
    /// Starts a backend on `ip`, on `port` (0: any).
    pub fn start(ip: IpAddr, port: u16, cert: Option<ServerCert>) -> Self {
        let std_listener = std::net::TcpListener::bind((ip, port)).expect("bind backend");
        let addr = std_listener.local_addr().expect("addr");
        drop(std_listener);
        let shared = Arc::new(Mutex::new(Shared {
            mode: Mode::Healthy,
            cert,
            drop_from: None,
            requests: Vec::new(),
        }));
        let stop = tokio_util::sync::CancellationToken::new();
        let (task_shared, task_stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(addr, task_shared, task_stop));
        });
        let backend = Self { addr, shared, stop };
        assert!(
            crate::support::wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(
                addr
            )
            .is_ok()),
            "backend {addr} did not start"
        );
        backend
    }

    /// Changes the behaviour.
    pub fn set(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = mode;
    }

    /// Swaps the certificate (HTTPS backends).
    pub fn set_cert(&self, cert: ServerCert) {
        self.shared.lock().unwrap().cert = Some(cert);
    }

    /// The head of every HTTP request answered so far (request line and headers).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Blackholes every connection from `source` (None: from nobody).
    pub fn drop_from(&self, source: Option<IpAddr>) {
        self.shared.lock().unwrap().drop_from = source;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut listener: Option<TcpListener> = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let refuse = shared.lock().unwrap().mode == Mode::Refuse;
        if refuse {
            listener = None; // closed port: connections are refused
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let Some(bound) = listener.as_ref() else {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("reuseaddr");
            if socket.bind(addr).is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            listener = socket.listen(1024).ok();
            continue;
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => None,
            accepted = bound.accept() => accepted.ok(),
        };
        if let Some((stream, peer)) = accepted {
            tokio::spawn(handle(stream, peer, shared.clone(), stop.clone()));
        }
    }
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let (mode, cert, dropped) = {
        let s = shared.lock().unwrap();
        (
            s.mode.clone(),
            s.cert.clone(),
            s.drop_from == Some(peer.ip()),
        )
    };
    if dropped || mode == Mode::Blackhole {
        // Hold the connection without a word until the test ends.
        let _hold = stream;
        stop.cancelled().await;
        return;
    }
    match cert {
        Some(cert) => {
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                cert.chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key)),
            )
            .expect("server config");
            let acceptor = TlsAcceptor::from(Arc::new(config));
            if let Ok(tls) = acceptor.accept(stream).await {
                respond(tls, mode, &shared).await;
            }
        }
        None => respond(stream, mode, &shared).await,
    }
}

async fn respond<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    mode: Mode,
    shared: &Mutex<Shared>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => return, // plain TCP probes connect and leave
        }
    }
    let mut served = 0;
    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&request[..end]).into_owned();
        let mut shared = shared.lock().unwrap();
        shared.requests.push(head);
        served = shared.requests.len();
    }
    if let Mode::Slow(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = match mode {
        Mode::Status(code) => (code, "ok".to_owned()),
        Mode::Flaky(n) if served % n.max(1) == 0 => (503, "flaky".to_owned()),
        Mode::Body(body) => (200, body),
        _ => (200, "ok".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
