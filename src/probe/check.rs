//! One probe of one endpoint: HTTP(S), TCP connect, DNS query, a program or a
//! PostgreSQL login (see [`super::postgres`]).
//!
//! Every probe is bounded by the check's timeout and returns a [`ProbeOutcome`] with
//! its latency and a short reason ("connect refused", "status 503", "certificate
//! expired") — never an error. A probe that fails for a reason of this prober's own
//! (see [`super::fault`]) returns an abstention instead of a vote.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::exec::ExecError;
use super::fault;
use crate::config::{Check, CheckKind, DnsCheck, Endpoint, HttpCheck};
use crate::health::LocalFault;
use crate::model::EndpointTarget;
use crate::runtime::http as tls;

/// Bytes of an HTTP body searched for `expect_body`.
const BODY_LIMIT: usize = 64 * 1024;

pub(crate) use super::ProbeError;
pub(crate) use crate::health::ProbeOutcome;

/// Why a probe did not pass.
#[derive(Debug)]
enum Failure {
    /// The endpoint failed: a vote down, for this reason.
    Down(String),
    /// This prober failed: an abstention, for this reason ("local fault: …").
    Local(LocalFault, String),
}

/// An abstention for `fault`, described by `text`.
fn local(fault: LocalFault, text: &str) -> Failure {
    Failure::Local(fault, format!("local fault: {text}"))
}

/// A prepared probe for one endpoint.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Prober {
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
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(
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
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn probe(&self) -> ProbeOutcome {
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
            Ok(Ok(reason)) => ProbeOutcome::vote(true, latency, reason),
            Ok(Err(Failure::Down(reason))) => ProbeOutcome::vote(false, latency, reason),
            Ok(Err(Failure::Local(fault, reason))) => {
                ProbeOutcome::abstention(fault, latency, reason)
            }
            Err(_) => ProbeOutcome::vote(
                false,
                latency,
                format!("timeout after {} ms", self.timeout.as_millis()),
            ),
        }
    }

    async fn run(&self) -> Result<String, Failure> {
        match &self.kind {
            ProberKind::Http { client, url, check } => match probe_http(client, url, check).await {
                Err(HttpFailure::Request(error)) => {
                    Err(self.http_failure(&error, check.port).await)
                }
                Err(HttpFailure::Endpoint(reason)) => Err(Failure::Down(reason)),
                Ok(reason) => Ok(reason),
            },
            ProberKind::Tcp(port) => {
                let addr = self.socket_addr(*port).await?;
                match connect(addr, self.source).await {
                    Ok(_) => Ok("connected".to_owned()),
                    Err(e) => Err(self.io_failure(&e, "connect", Some(addr))),
                }
            }
            ProberKind::Dns(check) => {
                let addr = self.socket_addr(check.port).await?;
                probe_dns(addr, check, self.source)
                    .await
                    .map_err(|(e, action)| match e {
                        DnsFailure::Io(e) => self.io_failure(&e, action, Some(addr)),
                        DnsFailure::Endpoint(reason) => Failure::Down(reason),
                    })
            }
            ProberKind::Exec(exec) => exec.run(self.timeout).await.map_err(|e| match e {
                ExecError::Spawn { program, error } => {
                    let fd = fault::classify_io(&error)
                        .filter(|(fault, _)| *fault == LocalFault::FdExhausted);
                    match fd {
                        Some((fault, text)) => {
                            local(fault, &format!("cannot run {program}: {text}"))
                        }
                        None => local(
                            LocalFault::SpawnFailed,
                            &format!("cannot run {program}: {error}"),
                        ),
                    }
                }
                ExecError::Failed(reason) => Failure::Down(reason),
            }),
            ProberKind::Postgres(probe) => {
                let port = probe.port();
                let addr = self.socket_addr(port).await?;
                let stream = match connect(addr, self.source).await {
                    Ok(stream) => stream,
                    Err(e) => return Err(self.io_failure(&e, "connect", Some(addr))),
                };
                probe.run(stream).await.map_err(Failure::Down)
            }
        }
    }

    /// An I/O error of a probe to `peer`: an abstention if it shows a local fault (an
    /// ENETUNREACH only if the local table has no route either), else a vote down.
    fn io_failure(
        &self,
        error: &std::io::Error,
        action: &str,
        peer: Option<SocketAddr>,
    ) -> Failure {
        match fault::classify_io(error) {
            Some((LocalFault::NoRoute, _)) => {
                match peer.and_then(|peer| fault::route_fault(peer, self.source)) {
                    Some((fault, text)) => local(fault, text),
                    None => Failure::Down(describe_io(error, action)),
                }
            }
            Some((fault, text)) => local(fault, text),
            None => Failure::Down(describe_io(error, action)),
        }
    }

    /// A failed HTTP request: the client's own (a request it cannot build), a local
    /// fault in its error chain, or the endpoint's.
    async fn http_failure(&self, error: &reqwest::Error, port: u16) -> Failure {
        if error.is_builder() {
            return local(LocalFault::ClientSetup, &format!("client setup: {error}"));
        }
        if let Some(io) = fault::io_error_in(error) {
            if fault::classify_io(io).is_some() {
                let peer = self.socket_addr(port).await.ok();
                if let Failure::Local(fault, reason) = self.io_failure(io, "connect", peer) {
                    return Failure::Local(fault, reason);
                }
            }
        }
        Failure::Down(describe_reqwest(error))
    }

    /// Where to connect: the endpoint's address, or its host name resolved now.
    /// A resolver that fails for a local fault (getaddrinfo out of descriptors)
    /// abstains too.
    async fn socket_addr(&self, port: u16) -> Result<SocketAddr, Failure> {
        match &self.target {
            EndpointTarget::Address(ip) => Ok(SocketAddr::new(*ip, port)),
            EndpointTarget::Host(host) => {
                let mut found = tokio::net::lookup_host((host.trim_end_matches('.'), port))
                    .await
                    .map_err(|e| match fault::classify_io(&e) {
                        Some((fault, text)) if fault != LocalFault::NoRoute => local(fault, text),
                        _ => Failure::Down(format!("cannot resolve {host}: {e}")),
                    })?;
                found
                    .next()
                    .ok_or_else(|| Failure::Down(format!("{host} has no address")))
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

/// Why an HTTP probe did not pass.
enum HttpFailure {
    /// The request failed (judged by [`Prober::http_failure`]).
    Request(reqwest::Error),
    /// The endpoint answered, wrongly.
    Endpoint(String),
}

async fn probe_http(
    client: &reqwest::Client,
    url: &str,
    check: &HttpCheck,
) -> Result<String, HttpFailure> {
    let method = reqwest::Method::from_bytes(check.method.as_bytes())
        .map_err(|e| HttpFailure::Endpoint(e.to_string()))?;
    let mut request = client.request(method, url);
    for (name, value) in &check.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = request.send().await.map_err(HttpFailure::Request)?;
    let status = response.status().as_u16();
    if !check
        .expect_status
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&status))
    {
        return Err(HttpFailure::Endpoint(format!("status {status}")));
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
            Err(e) => {
                return Err(HttpFailure::Endpoint(format!(
                    "reading body: {}",
                    describe_reqwest(&e)
                )));
            }
        }
    }
    let found = body
        .windows(expected.len().max(1))
        .any(|w| w == expected.as_bytes());
    if found {
        Ok(format!("status {status}, body matched"))
    } else {
        Err(HttpFailure::Endpoint(format!(
            "status {status}, body lacks {expected:?}"
        )))
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

/// Why a DNS probe did not pass.
enum DnsFailure {
    /// A socket call failed (judged by [`Prober::io_failure`]).
    Io(std::io::Error),
    /// The endpoint answered, wrongly.
    Endpoint(String),
}

async fn probe_dns(
    server: SocketAddr,
    check: &DnsCheck,
    source: Option<IpAddr>,
) -> Result<String, (DnsFailure, &'static str)> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let answered = |reason: String| (DnsFailure::Endpoint(reason), "");
    let name = Name::from_ascii(&check.query_name).map_err(|e| answered(e.to_string()))?;
    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, RecordType::from(check.query_type)));
    let bytes = message.to_vec().map_err(|e| answered(e.to_string()))?;
    let local: SocketAddr = match source {
        Some(ip) => SocketAddr::new(ip, 0),
        None if server.is_ipv4() => ([0, 0, 0, 0], 0).into(),
        None => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| (DnsFailure::Io(e), "bind"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| (DnsFailure::Io(e), "connect"))?;
    socket
        .send(&bytes)
        .await
        .map_err(|e| (DnsFailure::Io(e), "send"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| (DnsFailure::Io(e), "receive"))?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            return Err(answered("malformed DNS reply".into()));
        };
        if reply.metadata.id != message.metadata.id {
            continue; // a stray datagram; keep waiting within the timeout
        }
        let rcode = u16::from(reply.metadata.response_code);
        if rcode != check.expect_rcode {
            return Err(answered(format!("rcode {}", rcode_name(rcode))));
        }
        if check.expect_answer && reply.answers.is_empty() {
            return Err(answered("no answer records".into()));
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

/// A DNS message id an off-path attacker cannot guess (a spoofed answer to a health
/// check would be a vote).
fn rand_id() -> u16 {
    crate::runtime::random::u16()
}
