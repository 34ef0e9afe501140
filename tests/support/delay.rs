//! A delaying TCP proxy the test controls: it holds each connection for a delay
//! chosen by the connecting address (one per vantage point's source address), with
//! jitter, before it connects to the backend and relays both ways — so everything
//! the client sees, the first byte included, comes that much later. (This kernel
//! has no netem; this stands in for a path's latency.)

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Delay of one path: a base and a jitter fraction (0.3: each connection is
/// delayed by base × a uniform draw in [0.7, 1.3]).
#[derive(Clone, Copy, Debug)]
pub struct PathDelay {
    /// Milliseconds.
    pub base_ms: u64,
    /// Fraction of the base.
    pub jitter: f64,
}

/// A running proxy.
pub struct DelayProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    delays: Arc<Mutex<HashMap<IpAddr, PathDelay>>>,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on `listen` and relays to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen).expect("bind the delay proxy");
        let addr = listener.local_addr().unwrap();
        let delays: Arc<Mutex<HashMap<IpAddr, PathDelay>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let seed = Arc::new(AtomicU64::new(
            0x9E37_79B9_7F4A_7C15 ^ u64::from(addr.port()),
        ));
        let (d, s) = (delays.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(peer) = client.peer_addr() else {
                    continue;
                };
                let path = d.lock().unwrap().get(&peer.ip()).copied();
                let draw = next_unit(&seed);
                std::thread::spawn(move || {
                    if let Some(path) = path {
                        let factor = 1.0 + path.jitter * (2.0 * draw - 1.0);
                        // The path's latency, not a wait for a condition.
                        std::thread::sleep(Duration::from_secs_f64(
                            path.base_ms as f64 * factor.max(0.0) / 1000.0,
                        ));
                    }
                    relay(client, target);
                });
            }
        });
        Self { addr, delays, stop }
    }

    /// Sets the delay of connections from `source`.
    pub fn set(&self, source: IpAddr, delay: PathDelay) {
        self.delays.lock().unwrap().insert(source, delay);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A uniform draw in [0, 1) (splitmix64 over a shared counter).
fn next_unit(state: &AtomicU64) -> f64 {
    let mut z = state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn relay(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (mut c, mut u) = (client, upstream);
    let up = std::thread::spawn(move || {
        copy(&mut c, &mut u2);
    });
    copy(&mut u, &mut c2);
    let _ = up.join();
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buffer = [0u8; 8192];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
