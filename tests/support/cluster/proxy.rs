//! A recording HTTP proxy in front of one server's admin API: forwards every request
//! (all headers, both ways), records each forwarded `POST /v1/reports` with its body
//! and every request header so a test can replay it verbatim later, and can withhold
//! reports (answer 503 without forwarding) — the position of someone on the path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::http;
use super::net::Net;

/// A report request that went through the proxy.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When it was forwarded.
    pub at: Instant,
    /// The request path.
    pub path: String,
    /// Every request header, in order, as sent by the agent.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// The status the server answered.
    pub status: u16,
}

/// State shared with the proxy task.
#[derive(Default)]
struct Shared {
    recorded: Mutex<Vec<Recorded>>,
    withhold: AtomicBool,
}

/// A running proxy, stopped on drop.
pub struct Proxy {
    /// Where it listens.
    pub listen: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// Most reports kept.
const MAX_RECORDED: usize = 2000;

impl Proxy {
    /// Starts a proxy inside `role`'s namespace listening on `listen`, forwarding to
    /// `target` (connecting from the same namespace).
    pub fn start(net: &Net, role: &str, listen: SocketAddr, target: SocketAddr) -> Self {
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let (task_shared, task_stop) = (shared.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        net.spawn_in(role, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind(listen).await.expect("bind proxy");
                let _ = ready_tx.send(());
                loop {
                    let accepted = tokio::select! {
                        _ = task_stop.cancelled() => return,
                        accepted = listener.accept() => accepted,
                    };
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(connection(
                            stream,
                            target,
                            task_shared.clone(),
                            task_stop.clone(),
                        ));
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("proxy on {listen} did not start"));
        Self {
            listen,
            shared,
            stop,
        }
    }

    /// Every report forwarded so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// While true, reports are answered 503 and not forwarded (other requests pass).
    pub fn withhold_reports(&self, withhold: bool) {
        self.shared.withhold.store(withhold, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Serves one client connection (keep-alive: many requests).
async fn connection(
    mut stream: TcpStream,
    target: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut buffer = Vec::new();
    loop {
        let request = tokio::select! {
            _ = stop.cancelled() => return,
            request = read_request(&mut stream, &mut buffer) => request,
        };
        let Some(request) = request else { return };
        let close = request
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        let is_report = request.method == "POST" && request.path.starts_with("/v1/reports");
        let response = if is_report && shared.withhold.load(Ordering::Relaxed) {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nwithheld\n".to_vec()
        } else {
            let raw = forward(target, &request).await;
            if is_report {
                let mut recorded = shared.recorded.lock().unwrap();
                if recorded.len() < MAX_RECORDED {
                    recorded.push(Recorded {
                        at: Instant::now(),
                        path: request.path.clone(),
                        headers: request.headers.clone(),
                        body: request.body.clone(),
                        status: http::parse_response(&raw).status,
                    });
                }
            }
            relay(&raw)
        };
        if stream.write_all(&response).await.is_err() || close {
            return;
        }
    }
}

/// Reads one request (head and `content-length` body) from `stream`; `buffer` keeps
/// bytes read past it.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> Option<Request> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Sends `request` to `target` with its headers verbatim (but `connection: close`)
/// and returns the raw response (empty when the target did not answer).
async fn forward(target: SocketAddr, request: &Request) -> Vec<u8> {
    let exchange = async {
        let mut upstream = TcpStream::connect(target).await.ok()?;
        let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
        for (name, value) in &request.headers {
            if !name.eq_ignore_ascii_case("connection") {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("connection: close\r\n\r\n");
        upstream.write_all(head.as_bytes()).await.ok()?;
        upstream.write_all(&request.body).await.ok()?;
        let mut raw = Vec::new();
        upstream.read_to_end(&mut raw).await.ok()?;
        Some(raw)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The response to give the client: the target's status line and headers verbatim
/// (without its `connection: close`, which we asked for), the body with a length.
fn relay(raw: &[u8]) -> Vec<u8> {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 12\r\n\r\nno response\n".to_vec();
    };
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("HTTP/1.1 502 Bad Gateway");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let bodiless = status < 200 || status == 204 || status == 304;
    let mut out = format!("{status_line}\r\n");
    let mut has_length = false;
    let mut chunked = false;
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("connection") {
            continue;
        }
        has_length |= name.eq_ignore_ascii_case("content-length");
        chunked |= name.eq_ignore_ascii_case("transfer-encoding");
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !has_length && !chunked && !bodiless {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
