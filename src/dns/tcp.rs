//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): our own accept loop on the tokio
//! runtime, answered by the same [`Responder`](super::engine::Responder) as UDP, so
//! a TCP answer is byte for byte the UDP one without the size limit.
//!
//! ```text
//!  listener ─▶ accept loop ── Limits::admit (total and per-source caps) ──▶ one task
//!                                                                 per connection
//!  connection: read ─▶ every complete frame ─▶ transfer hook (AXFR/IXFR) or
//!              Responder::respond_or_servfail ─▶ framed answers, written in order
//! ```
//!
//! Each connection owns its buffers and its responder and loads the snapshot once
//! per batch of pipelined queries: no lock and no allocation per query (buffers grow
//! to the largest message seen). The accept path takes one short lock for the
//! per-source count. A connection is closed when no complete query has arrived for
//! the idle timeout, whatever else it does: idle, a length prefix and nothing, half
//! a message, trickling bytes, or not reading its answers.

mod connection;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::dnstap::Dnstap;
use super::snapshot::SharedSnapshot;
use super::transfer::TransferHandler;
use crate::telemetry::metrics::DnsCounters;

/// What a TCP listener needs to know.
#[derive(Clone)]
pub(crate) struct TcpSettings {
    /// Close a connection after this long without a complete query.
    pub idle_timeout: Duration,
    /// Most connections open at once on this listener.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_source: usize,
    /// Answers zone-transfer queries; `None`: the responder refuses them.
    pub transfers: Option<Arc<dyn TransferHandler>>,
    /// Query and response logging.
    pub dnstap: Option<Dnstap>,
}

/// State shared by a listener's connections.
struct Context {
    shared: SharedSnapshot,
    counters: Arc<DnsCounters>,
    idle_timeout: Duration,
    transfers: Option<Arc<dyn TransferHandler>>,
    dnstap: Option<Dnstap>,
    /// The listener's address (dnstap's response address).
    local: std::net::SocketAddr,
    /// Seeds for the connections' responders.
    seed: AtomicU64,
}

/// When a listener stops: its accept loop, and its connections.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    /// Stops accepting (a replacing process accepts on the same socket).
    pub accepting: CancellationToken,
    /// Closes the open connections too.
    pub connections: CancellationToken,
}

/// Starts serving `listener` until `stop` says so.
pub(crate) fn spawn(
    listener: TcpListener,
    settings: TcpSettings,
    shared: SharedSnapshot,
    counters: Arc<DnsCounters>,
    stop: Stop,
) -> tokio::task::JoinHandle<()> {
    let limits = Arc::new(Limits::new(
        settings.max_connections,
        settings.max_connections_per_source,
    ));
    let context = Arc::new(Context {
        shared,
        counters,
        idle_timeout: settings.idle_timeout,
        transfers: settings.transfers,
        dnstap: settings.dnstap,
        local: listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        seed: AtomicU64::new(super::engine::fresh_seed()),
    });
    tokio::spawn(accept(listener, context, limits, stop))
}

async fn accept(listener: TcpListener, context: Arc<Context>, limits: Arc<Limits>, stop: Stop) {
    let cancel = stop.connections;
    loop {
        let accepted = tokio::select! {
            _ = stop.accepting.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "TCP accept failed");
                tokio::select! {
                    _ = stop.accepting.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let Some(slot) = Limits::admit(&limits, peer.ip()) else {
            context.counters.tcp_rejected();
            tracing::debug!(%peer, "TCP connection limit reached; closed");
            continue;
        };
        context.counters.tcp_accepted();
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let seed = context
                .seed
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            connection::serve(stream, peer, &context, seed, cancel).await;
            drop(slot);
            context.counters.tcp_closed();
        });
    }
}

/// Connection caps: in total and per client address.
struct Limits {
    max_total: usize,
    max_per_source: usize,
    open: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; frees its place when dropped.
struct Slot {
    limits: Arc<Limits>,
    source: IpAddr,
}

impl Limits {
    fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            open: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
        }
    }

    /// A place for a connection from `source`, if both caps allow one.
    fn admit(limits: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let mut per_source = limits.per_source.lock().unwrap_or_else(|e| e.into_inner());
        if limits.open.load(Ordering::Relaxed) >= limits.max_total {
            return None;
        }
        let count = per_source.entry(source).or_insert(0);
        if *count >= limits.max_per_source {
            return None;
        }
        *count += 1;
        limits.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            limits: limits.clone(),
            source,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_source = self
            .limits
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                per_source.remove(&self.source);
            }
        }
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_cap_total_and_per_source_and_free_on_drop() {
        let limits = Arc::new(Limits::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = Limits::admit(&limits, a).expect("first");
        let a2 = Limits::admit(&limits, a).expect("second");
        assert!(Limits::admit(&limits, a).is_none(), "per-source cap");
        let b1 = Limits::admit(&limits, b).expect("another source");
        assert!(Limits::admit(&limits, b).is_none(), "total cap");
        drop(a1);
        assert!(Limits::admit(&limits, b).is_some(), "freed on drop");
        drop((a2, b1));
        assert_eq!(limits.open.load(Ordering::Relaxed), 0);
        assert!(limits.per_source.lock().unwrap().is_empty());
    }
}
