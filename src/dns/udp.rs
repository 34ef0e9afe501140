//! UDP serving: one OS thread per `SO_REUSEPORT` socket, each receiving and sending
//! in batches with `recvmmsg`/`sendmmsg`. A thread loads the current snapshot once per
//! batch and answers from it; it never takes a lock and never awaits. With response
//! rate limiting on, each thread owns its own [`RateLimiter`] (see [`super::rrl`]
//! for what that means for accuracy) and reads the clock once per batch.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::dnstap::Dnstap;
use super::engine::{Responder, fresh_seed};
use super::rrl::RateLimiter;
use super::snapshot::SharedSnapshot;
use super::transfer::TransferHandler;
use super::worker::Worker;
use crate::config::RrlConfig;
use crate::telemetry::metrics::DnsMetrics;

/// Datagrams handled per system call.
const BATCH: usize = 32;

/// Largest query accepted (longer datagrams are dropped).
const MAX_QUERY: usize = 4096;

/// How often a blocked worker wakes to check for shutdown.
const WAKE_INTERVAL: Duration = Duration::from_millis(200);

/// Binds `count` sockets to `addr` with `SO_REUSEPORT`, so the kernel spreads
/// clients across them. With port 0, every socket shares the port the first got.
pub(crate) fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_port(true)?;
        // Room for bursts (and for the moment a replacement process takes over): past
        // net.core.rmem_max when the process may (CAP_NET_ADMIN), else up to it.
        grow_buffers(&socket, 4 << 20);
        socket.set_read_timeout(Some(WAKE_INTERVAL))?;
        socket.bind(&addr.into())?;
        let socket: UdpSocket = socket.into();
        if addr.port() == 0 {
            addr = socket.local_addr()?;
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Sets both socket buffers to `bytes`: with `SO_*BUFFORCE` where the process may
/// exceed the system's maximum, else as far as the maximum allows.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn grow_buffers(socket: &Socket, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            // SAFETY: setsockopt reads one c_int from the pointer given.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&raw const value).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        if socket.recv_buffer_size().is_ok_and(|size| size >= bytes) {
            return;
        }
    }
    let _ = socket.set_recv_buffer_size(bytes);
    let _ = socket.set_send_buffer_size(bytes);
}

/// How a UDP worker moves datagrams.
pub(crate) use crate::config::UdpIo;

/// Starts one worker thread per socket; with `rrl`, each limits its responses at
/// its share of the rate; with `dnstap`, each logs what it receives and sends. With
/// [`UdpIo::Xdp`], the sockets keep serving what the XDP path leaves to them and
/// threads per receive queue of the address's interface answer the rest (see
/// [`super::xdp`]).
pub(crate) fn spawn(
    sockets: Vec<UdpSocket>,
    shared: SharedSnapshot,
    stop: Arc<AtomicBool>,
    metrics: &DnsMetrics,
    options: &UdpOptions<'_>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let shares = sockets.len();
    let local = sockets
        .first()
        .map(UdpSocket::local_addr)
        .transpose()?
        .ok_or_else(|| io::Error::other("no socket"))?;
    let worker = |shares| Worker {
        responder: Responder::new(fresh_seed()),
        limiter: options
            .rrl
            .map(|config| RateLimiter::new(config, shares, fresh_seed())),
        counters: metrics.shard(),
        dnstap: options.dnstap.clone(),
        transfers: options.transfers.clone(),
        local,
        epoch: Instant::now(),
    };
    let mut threads = Vec::new();
    #[cfg(target_os = "linux")]
    if options.io == UdpIo::Xdp {
        if let (SocketAddr::V4(_), Some(first)) = (local, sockets.first()) {
            // The XDP threads take nearly all traffic: each gets the whole RRL rate.
            let started = super::xdp::spawn(local, first, &shared, &stop, || worker(1))?;
            tracing::info!(
                udp = %local,
                interface = %started.interface,
                mode = ?started.mode,
                queues = started.threads.len(),
                "dns answering through AF_XDP"
            );
            threads.extend(started.threads);
        } else {
            tracing::info!(udp = %local, "udp_io = \"xdp\" covers IPv4 only: batched sockets here");
        }
    }
    for (i, socket) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        let stop = stop.clone();
        let worker = worker(shares);
        let io = options.io;
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || match io {
                    #[cfg(target_os = "linux")]
                    UdpIo::Batched | UdpIo::Xdp => serve_batched(socket, shared, stop, worker),
                    #[cfg(not(target_os = "linux"))]
                    UdpIo::Batched | UdpIo::Xdp => serve_portable(socket, shared, stop, worker),
                    UdpIo::Portable => serve_portable(socket, shared, stop, worker),
                })?,
        );
    }
    Ok(threads)
}

/// What the workers of one listener share.
pub(crate) struct UdpOptions<'a> {
    /// Batched (`recvmmsg`/`sendmmsg`, Linux), AF_XDP (Linux) or portable
    /// (`recv_from`/`send_to`).
    pub io: UdpIo,
    /// Response rate limiting.
    pub rrl: Option<&'a RrlConfig>,
    /// Query and response logging.
    pub dnstap: Option<Dnstap>,
    /// Answers IXFR queries (RFC 1995 §2), when transfers are configured.
    pub transfers: Option<Arc<dyn TransferHandler>>,
}

/// A receive that got no datagram: a wake-up to check for shutdown, an interrupt, an
/// earlier answer's ICMP unreachable (nothing to do), or a real failure (logged, and
/// a short pause so a persistent one does not spin).
fn receive_failed(error: &io::Error) {
    match error.kind() {
        io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut
        | io::ErrorKind::Interrupted
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset => {}
        _ => {
            tracing::warn!(%error, "UDP receive failed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The portable path: one datagram per system call.
fn serve_portable(
    socket: UdpSocket,
    shared: SharedSnapshot,
    stop: Arc<AtomicBool>,
    mut worker: Worker,
) {
    let mut query = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (len, src) = match socket.recv_from(&mut query) {
            Ok(received) => received,
            Err(error) => {
                receive_failed(&error);
                continue;
            }
        };
        let snapshot = shared.load();
        let now_ms = worker.now_ms();
        out.clear();
        if worker.answer(&snapshot, &query[..len], src, now_ms, &mut out) {
            drop(snapshot);
            let _ = socket.send_to(&out, src);
        }
    }
}

/// Buffers for one batch; pointers into them are set right before each call.
#[cfg(target_os = "linux")]
struct Batch {
    queries: Box<[[u8; MAX_QUERY]]>,
    responses: Vec<Vec<u8>>,
    addrs: [libc::sockaddr_storage; BATCH],
    recv_iov: [libc::iovec; BATCH],
    recv_msgs: [libc::mmsghdr; BATCH],
    send_iov: [libc::iovec; BATCH],
    send_msgs: [libc::mmsghdr; BATCH],
}

#[cfg(target_os = "linux")]
impl Batch {
    fn new() -> Box<Self> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut batch: Box<Self> = Box::new(Self {
            queries: vec![[0u8; MAX_QUERY]; BATCH].into_boxed_slice(),
            responses: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
            addrs: unsafe { zeroed() },
            recv_iov: unsafe { zeroed() },
            recv_msgs: unsafe { zeroed() },
            send_iov: unsafe { zeroed() },
            send_msgs: unsafe { zeroed() },
        });
        batch.prepare_receive();
        batch
    }

    /// Points every receive header at its buffer and address slot.
    fn prepare_receive(&mut self) {
        for i in 0..BATCH {
            self.recv_iov[i] = libc::iovec {
                iov_base: self.queries[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let header = &mut self.recv_msgs[i].msg_hdr;
            header.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut self.recv_iov[i];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            self.recv_msgs[i].msg_len = 0;
        }
    }
}

/// The batched path: up to [`BATCH`] datagrams per `recvmmsg` and `sendmmsg`.
#[cfg(target_os = "linux")]
fn serve_batched(
    socket: UdpSocket,
    shared: SharedSnapshot,
    stop: Arc<AtomicBool>,
    mut worker: Worker,
) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        batch.prepare_receive();
        // SAFETY: the headers point into `batch`, which outlives the call.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                batch.recv_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            receive_failed(&io::Error::last_os_error());
            continue;
        }
        let snapshot = shared.load();
        let now_ms = worker.now_ms();
        let mut pending = 0;
        for i in 0..received as usize {
            let header = &batch.recv_msgs[i];
            let len = batch.recv_msgs[i].msg_len as usize;
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                worker.counters.dropped();
                continue;
            }
            let Some(src) = socket_addr(&batch.addrs[i]) else {
                worker.counters.dropped();
                continue;
            };
            let query = &batch.queries[i][..len];
            let out = &mut batch.responses[pending];
            if !worker.answer(&snapshot, query, src, now_ms, out) {
                continue;
            }
            batch.send_iov[pending] = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: out.len(),
            };
            let header = &mut batch.send_msgs[pending].msg_hdr;
            header.msg_name = (&mut batch.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = batch.recv_msgs[i].msg_hdr.msg_namelen;
            header.msg_iov = &mut batch.send_iov[pending];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            pending += 1;
        }
        drop(snapshot);
        send_all(fd, &mut batch.send_msgs[..pending]);
    }
}

/// Sends every prepared message, resuming after partial sends.
#[cfg(target_os = "linux")]
fn send_all(fd: libc::c_int, msgs: &mut [libc::mmsghdr]) {
    let mut sent = 0;
    while sent < msgs.len() {
        // SAFETY: headers point at response buffers and addresses alive in the batch.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs[sent..].as_mut_ptr(),
                (msgs.len() - sent) as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The client's address may be unreachable (ICMP feedback): skip it.
            sent += 1;
            continue;
        }
        sent += n as usize;
    }
}

#[cfg(target_os = "linux")]
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            let mut addr = MaybeUninit::<libc::sockaddr_in>::uninit();
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET; sizes fit the storage.
            let addr = unsafe {
                std::ptr::copy_nonoverlapping(
                    (storage as *const libc::sockaddr_storage).cast::<u8>(),
                    addr.as_mut_ptr().cast::<u8>(),
                    size_of::<libc::sockaddr_in>(),
                );
                addr.assume_init()
            };
            let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(addr.sin_port)))
        }
        libc::AF_INET6 => {
            let mut addr = MaybeUninit::<libc::sockaddr_in6>::uninit();
            // SAFETY: as above, for AF_INET6.
            let addr = unsafe {
                std::ptr::copy_nonoverlapping(
                    (storage as *const libc::sockaddr_storage).cast::<u8>(),
                    addr.as_mut_ptr().cast::<u8>(),
                    size_of::<libc::sockaddr_in6>(),
                );
                addr.assume_init()
            };
            let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be(addr.sin6_port),
            ))
        }
        _ => None,
    }
}
