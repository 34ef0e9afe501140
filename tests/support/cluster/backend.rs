//! HTTP backends on a region's address inside its namespace (adapted from
//! `tests/support/backend.rs`): healthy, refusing connections, or answering an error
//! status — switchable while the test runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::net::Net;

/// The port every backend listens on (each namespace has its own addresses).
pub const PORT: u16 = 8080;

/// How a backend behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 "ok".
    Healthy,
    /// The port is closed: connections are refused (the backend died).
    Refuse,
    /// This HTTP status.
    Status(u16),
}

/// A running backend, stopped on drop.
pub struct Backend {
    mode: Arc<Mutex<Mode>>,
    stop: CancellationToken,
}

impl Backend {
    /// Starts a healthy backend on `role`'s address, port [`PORT`], inside its namespace.
    pub fn start(net: &Net, role: &str) -> Self {
        let ip: Ipv4Addr = net.addr(role);
        let addr = SocketAddr::from((ip, PORT));
        let mode = Arc::new(Mutex::new(Mode::Healthy));
        let stop = CancellationToken::new();
        let (task_mode, task_stop) = (mode.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        net.spawn_in(role, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(addr, task_mode, task_stop, ready_tx));
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("backend {addr} did not start"));
        Self { mode, stop }
    }

    /// Changes the behaviour.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Accepts while not refusing; closes the port while refusing.
async fn serve(
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    stop: CancellationToken,
    ready: std::sync::mpsc::Sender<()>,
) {
    let mut listener = None;
    let mut ready = Some(ready);
    loop {
        if stop.is_cancelled() {
            return;
        }
        if *mode.lock().unwrap() == Mode::Refuse {
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
            if listener.is_some() {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            continue;
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => None,
            accepted = bound.accept() => accepted.ok(),
        };
        if let Some((stream, _)) = accepted {
            let current = *mode.lock().unwrap();
            tokio::spawn(respond(stream, current));
        }
    }
}

/// Reads one request head and answers it according to `mode`.
async fn respond(mut stream: TcpStream, mode: Mode) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let status = match mode {
        Mode::Status(code) => code,
        Mode::Healthy | Mode::Refuse => 200,
    };
    let response =
        format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
