//! One probe of one endpoint: HTTP(S), TCP connect, DNS query, a program or a
//! PostgreSQL login (see [`super::postgres`]).
//!
//! Every probe is bounded by the check's timeout and returns a [`ProbeOutcome`] with
//! its latency and a short reason ("connect refused", "status 503", "certificate
//! expired") — never an error.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::tls;
use crate::config::{Check, CheckKind, DnsCheck, Endpoint, HttpCheck};
use crate::model::EndpointTarget;

/// Bytes of an HTTP body searched for `expect_body`.
const BODY_LIMIT: usize = 64 * 1024;

pub use crate::health::ProbeOutcome;

/// Errors preparing a prober.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The TLS settings could not be built (CA file unreadable, ...).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
}

/// A prepared probe for one endpoint.
pub struct Prober {
    target: EndpointTarget,
    source: Option<IpAddr>,
    timeout: Duration,
    kind: ProberKind,
}

enum ProberKind {
    Http {
        client: reqwest::Client,
        url: String,
        check: HttpCheck,
    },
    Tcp(u16),
    Dns(DnsCheck),
    Exec(super::exec::ExecProbe),
    Postgres(Box<super::postgres::PostgresProbe>),
}

impl Prober {
    /// Prepares the probe of `endpoint` (labelled `endpoint_label`) by `check`, sent
    /// from `source` if given.
    pub fn new(
        check: &Check,
        endpoint: &Endpoint,
        endpoint_label: &str,
        source: Option<IpAddr>,
    ) -> Result<Self, ProbeError> {
        let kind = match &check.kind {
            CheckKind::Http(http) => {
                let (client, url) = http_client(http, &endpoint.target, check.timeout, source)?;
                ProberKind::Http {
                    client,
                    url,
                    check: http.clone(),
                }
            }
            CheckKind::Tcp { port } => ProberKind::Tcp(*port),
            CheckKind::Dns(dns) => ProberKind::Dns(dns.clone()),
            CheckKind::Exec(exec) => ProberKind::Exec(super::exec::ExecProbe::new(
                exec,
                &endpoint.target.to_string(),
                endpoint_label,
            )),
            CheckKind::Postgres(pg) => {
                ProberKind::Postgres(Box::new(super::postgres::PostgresProbe::new(
                    pg,
                    &endpoint.target.to_string(),
                    check.timeout,
                )?))
            }
        };
        Ok(Self {
            target: endpoint.target.clone(),
            source,
            timeout: check.timeout,
            kind,
        })
    }

    /// Runs one probe, bounded by the check's timeout.
    pub async fn probe(&self) -> ProbeOutcome {
        let started = Instant::now();
        // An exec check keeps its own deadline (it kills and reaps its process group
        // then); this bound only covers a reap that hangs.
        let bound = match &self.kind {
            ProberKind::Exec(_) => self.timeout + super::exec::REAP_GRACE,
            _ => self.timeout,
        };
        let result = tokio::time::timeout(bound, self.run()).await;
        let latency = started.elapsed();
        match result {
            Ok(Ok(reason)) => ProbeOutcome {
                ok: true,
                latency,
                reason,
            },
            Ok(Err(reason)) => ProbeOutcome {
                ok: false,
                latency,
                reason,
            },
            Err(_) => ProbeOutcome {
                ok: false,
                latency,
                reason: format!("timeout after {} ms", self.timeout.as_millis()),
            },
        }
    }

    async fn run(&self) -> Result<String, String> {
        match &self.kind {
            ProberKind::Http { client, url, check } => probe_http(client, url, check).await,
            ProberKind::Tcp(port) => {
                let addr = self.socket_addr(*port).await?;
                connect(addr, self.source)
                    .await
                    .map(|_| "connected".to_owned())
                    .map_err(|e| describe_io(&e, "connect"))
            }
            ProberKind::Dns(check) => {
                let addr = self.socket_addr(check.port).await?;
                probe_dns(addr, check, self.source).await
            }
            ProberKind::Exec(exec) => exec.run(self.timeout).await.map_err(|e| match e {
                super::exec::ExecError::Spawn { program, error } => {
                    format!("cannot run {program}: {error}")
                }
                super::exec::ExecError::Failed(reason) => reason,
            }),
            ProberKind::Postgres(probe) => {
                let port = match self.kind_port() {
                    Some(port) => port,
                    None => return Err("no port".into()),
                };
                let addr = self.socket_addr(port).await?;
                let stream = connect(addr, self.source)
                    .await
                    .map_err(|e| describe_io(&e, "connect"))?;
                probe.run(stream).await
            }
        }
    }

    /// Port of a postgres probe.
    fn kind_port(&self) -> Option<u16> {
        match &self.kind {
            ProberKind::Postgres(probe) => Some(probe.port()),
            _ => None,
        }
    }

    /// Where to connect: the endpoint's address, or its host name resolved now.
    async fn socket_addr(&self, port: u16) -> Result<SocketAddr, String> {
        match &self.target {
            EndpointTarget::Address(ip) => Ok(SocketAddr::new(*ip, port)),
            EndpointTarget::Host(host) => {
                tokio::net::lookup_host((host.trim_end_matches('.'), port))
                    .await
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host} has no address"))
            }
        }
    }
}

/// A TCP connection from `source` (if given) to `addr`.
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    socket.connect(addr).await
}

fn http_client(
    check: &HttpCheck,
    target: &EndpointTarget,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<(reqwest::Client, String), ProbeError> {
    let scheme = if check.tls { "https" } else { "http" };
    let mut builder = tls::http_client_builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // A fresh connection per probe: a pooled one would hide refused connections.
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .local_address(source)
        .user_agent(concat!("failoverd/", env!("CARGO_PKG_VERSION")));
    let url_host = match (&check.host, target) {
        // Connect to the endpoint's address but speak to (and validate) `host`.
        (Some(host), EndpointTarget::Address(ip)) => {
            builder = builder.resolve(host, SocketAddr::new(*ip, check.port));
            host.clone()
        }
        (Some(host), EndpointTarget::Host(_)) => host.clone(),
        (None, EndpointTarget::Address(IpAddr::V6(ip))) => format!("[{ip}]"),
        (None, EndpointTarget::Address(IpAddr::V4(ip))) => ip.to_string(),
        (None, EndpointTarget::Host(host)) => host.trim_end_matches('.').to_owned(),
    };
    if check.tls {
        let config = tls::client_config(check.tls_verify, check.ca_file.as_deref())
            .map_err(|e| ProbeError::Tls(e.to_string()))?;
        builder = builder.tls_backend_preconfigured(config);
    }
    let client = builder
        .build()
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    let url = format!("{scheme}://{url_host}:{}{}", check.port, check.path);
    Ok((client, url))
}

async fn probe_http(
    client: &reqwest::Client,
    url: &str,
    check: &HttpCheck,
) -> Result<String, String> {
    let method = reqwest::Method::from_bytes(check.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = client.request(method, url);
    for (name, value) in &check.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = request.send().await.map_err(|e| describe_reqwest(&e))?;
    let status = response.status().as_u16();
    if !check
        .expect_status
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&status))
    {
        return Err(format!("status {status}"));
    }
    let Some(expected) = &check.expect_body else {
        return Ok(format!("status {status}"));
    };
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(BODY_LIMIT - body.len())])
            }
            Ok(None) => break,
            Err(e) => return Err(format!("reading body: {}", describe_reqwest(&e))),
        }
    }
    let found = body
        .windows(expected.len().max(1))
        .any(|w| w == expected.as_bytes());
    if found {
        Ok(format!("status {status}, body matched"))
    } else {
        Err(format!("status {status}, body lacks {expected:?}"))
    }
}

/// A short reason for a failed HTTP request, naming TLS problems precisely.
fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut io_error = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls::describe(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_error.get_or_insert(io);
            // An I/O error's `source()` skips the error it wraps; look inside instead.
            source = io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static));
            continue;
        }
        source = e.source();
    }
    if let Some(io) = io_error {
        return describe_io(io, "connect");
    }
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_connect() {
        "connect failed".to_owned()
    } else {
        error.to_string()
    }
}

fn describe_io(error: &std::io::Error, action: &str) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("{action} refused"),
        std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        std::io::ErrorKind::TimedOut => format!("{action} timed out"),
        _ => format!("{action}: {error}"),
    }
}

async fn probe_dns(
    server: SocketAddr,
    check: &DnsCheck,
    source: Option<IpAddr>,
) -> Result<String, String> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let name = Name::from_ascii(&check.query_name).map_err(|e| e.to_string())?;
    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, RecordType::from(check.query_type)));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let local: SocketAddr = match source {
        Some(ip) => SocketAddr::new(ip, 0),
        None if server.is_ipv4() => ([0, 0, 0, 0], 0).into(),
        None => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| describe_io(&e, "bind"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| describe_io(&e, "connect"))?;
    socket
        .send(&bytes)
        .await
        .map_err(|e| describe_io(&e, "send"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| describe_io(&e, "receive"))?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            return Err("malformed DNS reply".into());
        };
        if reply.metadata.id != message.metadata.id {
            continue; // a stray datagram; keep waiting within the timeout
        }
        let rcode = u16::from(reply.metadata.response_code);
        if rcode != check.expect_rcode {
            return Err(format!("rcode {}", rcode_name(rcode)));
        }
        if check.expect_answer && reply.answers.is_empty() {
            return Err("no answer records".into());
        }
        return Ok(format!(
            "rcode {}, {} answers",
            rcode_name(rcode),
            reply.answers.len()
        ));
    }
}

fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => other.to_string(),
    }
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x5eed);
    NEXT.fetch_add(0x9E37, Ordering::Relaxed)
}
