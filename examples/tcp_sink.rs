//! A TCP backend for health-plane benchmarks: accepts every connection and closes it
//! at once, on many addresses, and can make some addresses flap (their listeners are
//! closed and reopened, so probes see "connection refused" half of the time).
//!
//! ```text
//! cargo run --release --example tcp_sink -- --listen 0.0.0.0:9000 \
//!     --flap 127.2.0.1:9001 --flap 127.2.0.2:9001 --period-ms 4000 --seconds 120
//! ```
//!
//! Run it inside a network namespace of its own (the scale benchmark does): a wildcard
//! listener there is reachable only from inside.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let mut listen: Vec<SocketAddr> = Vec::new();
    let mut flap: Vec<SocketAddr> = Vec::new();
    let mut period = Duration::from_secs(4);
    let mut seconds = 120u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--listen" => listen.push(value().parse().unwrap_or_else(|_| usage("--listen"))),
            "--flap" => flap.push(value().parse().unwrap_or_else(|_| usage("--flap"))),
            "--period-ms" => {
                period =
                    Duration::from_millis(value().parse().unwrap_or_else(|_| usage("--period-ms")))
            }
            "--seconds" => seconds = value().parse().unwrap_or_else(|_| usage("--seconds")),
            other => usage(other),
        }
    }
    let accepted = Arc::new(AtomicU64::new(0));
    for addr in listen {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        // Two accept threads per listener keep up with tens of thousands per second.
        for _ in 0..2 {
            let listener = listener.try_clone().expect("clone listener");
            let accepted = accepted.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stream.is_ok() {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
    let up = Arc::new(AtomicBool::new(true));
    for addr in flap {
        let up = up.clone();
        std::thread::spawn(move || {
            loop {
                if up.load(Ordering::Relaxed) {
                    let Ok(listener) = TcpListener::bind(addr) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    listener.set_nonblocking(true).expect("nonblocking");
                    while up.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok(_) => {}
                            Err(_) => std::thread::sleep(Duration::from_millis(1)),
                        }
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut next_flip = start + period;
    let mut last = (Instant::now(), 0);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() >= next_flip {
            up.store(!up.load(Ordering::Relaxed), Ordering::Relaxed);
            next_flip += period;
        }
        if last.0.elapsed() >= Duration::from_secs(10) {
            let total = accepted.load(Ordering::Relaxed);
            eprintln!(
                "tcp_sink: {:.0} connections/s",
                (total - last.1) as f64 / last.0.elapsed().as_secs_f64()
            );
            last = (Instant::now(), total);
        }
    }
}

fn usage(at: &str) -> ! {
    eprintln!(
        "tcp_sink: bad argument {at}\nusage: tcp_sink [--listen ADDR]... [--flap ADDR]... [--period-ms MS] [--seconds S]"
    );
    std::process::exit(2);
}
