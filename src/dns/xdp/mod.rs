//! The AF_XDP UDP path (`udp_io = "xdp"`, Linux): an XDP program on the listen
//! address's interface steers IPv4 UDP datagrams for the DNS port into one AF_XDP
//! socket per receive queue, and a thread per queue answers them in place, writing
//! the reply's Ethernet, IPv4 and UDP headers itself. This skips the kernel's UDP
//! socket layer on both sides (no socket lookup, no skb per receive, no routing or
//! netfilter per send), as Knot's XDP mode does.
//!
//! What still goes through the ordinary sockets, which keep serving as before:
//! IPv6, fragmented or option-carrying IPv4 datagrams, answers larger than a frame or
//! the interface's MTU, and everything when the program is gone. The program is
//! attached through a BPF link, so it is detached when the process exits, even by a
//! crash. Netfilter rules do not see the steered datagrams.

mod bpf;
mod packet;
mod socket;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub(crate) use self::bpf::AttachMode;
use self::packet::{IPV4_LEN, REPLY_PAYLOAD, UDP_LEN};
use self::socket::{FRAME_SIZE, XskSocket};
use super::snapshot::SharedSnapshot;
use super::worker::Worker;

/// Frames taken from the RX ring per pass.
const BATCH: u32 = 64;

/// How long a worker with nothing to do waits before checking for shutdown (ms).
const WAKE_MS: libc::c_int = 200;

/// The program and its attachment: detached when the last worker drops this.
struct Attachment {
    _link: OwnedFd,
    _program: OwnedFd,
    _map: OwnedFd,
}

/// What [`spawn`] started.
pub(super) struct XdpWorkers {
    /// One thread per receive queue.
    pub(super) threads: Vec<JoinHandle<()>>,
    /// Where the program runs.
    pub(super) mode: AttachMode,
    /// The interface's name.
    pub(super) interface: String,
}

/// The interface that holds `addr`: (name, index).
fn interface_of(addr: Ipv4Addr) -> io::Result<(String, u32)> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_addr.is_null()
            // SAFETY: non-null, points at a sockaddr.
            || i32::from(unsafe { (*node.ifa_addr).sa_family }) != libc::AF_INET
        {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*(node.ifa_addr as *const libc::sockaddr_in) };
        if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
            // SAFETY: the name is a NUL-terminated C string.
            let name = unsafe { std::ffi::CStr::from_ptr(node.ifa_name) };
            // SAFETY: as above.
            let index = unsafe { libc::if_nametoindex(node.ifa_name) };
            found = Some((name.to_string_lossy().into_owned(), index));
            break;
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    found.ok_or_else(|| io::Error::other(format!("no interface has the address {addr}")))
}

/// The interface's receive queues and MTU, from sysfs (1 queue and 1500 if unknown).
fn queues_and_mtu(interface: &str) -> (u32, usize) {
    let base = format!("/sys/class/net/{interface}");
    let queues = std::fs::read_dir(format!("{base}/queues"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1);
    let mtu = std::fs::read_to_string(format!("{base}/mtu"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1500);
    (queues, mtu)
}

/// Replies written into `lo` carry no route, so the kernel takes their 127/8 local
/// source for a martian unless the interface allows it; failoverd does not change
/// these settings itself.
fn loopback_ready(interface: &str) -> io::Result<()> {
    let mut missing = Vec::new();
    for name in ["route_localnet", "accept_local"] {
        let key = format!("net.ipv4.conf.{interface}.{name}");
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        match std::fs::read_to_string(&path) {
            Ok(value) if value.trim() == "1" => {}
            Ok(_) => missing.push(key),
            Err(error) => {
                return Err(io::Error::other(format!(
                    "udp_io = \"xdp\" on {interface} with a 127/8 address must read {path}: \
                     {error} (under systemd, ProcSubset=pid hides /proc/sys: the XDP drop-in \
                     in deploy/README.md sets ProcSubset=all)"
                )));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "udp_io = \"xdp\" on {interface} with a 127/8 address needs {} = 1 (replies injected \
         there have no route, and the kernel drops them as martians otherwise); set {} or \
         use udp_io = \"batched\"",
        missing.join(" and "),
        if missing.len() == 1 { "it" } else { "them" }
    )))
}

fn explained(what: &str, error: io::Error) -> io::Error {
    let hint = match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (AF_XDP needs CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW, and the bpf() system call: \
             under systemd, the XDP drop-in in deploy/README.md; or use udp_io = \"batched\")"
        }
        Some(libc::EBUSY) => {
            " (another XDP program is attached there: see `ip -d link show`, remove it with \
             `ip link set dev IFACE xdp off` or serve this address with udp_io = \"batched\")"
        }
        _ => "",
    };
    io::Error::new(
        error.kind(),
        format!("udp_io = \"xdp\": {what}: {error}{hint}"),
    )
}

/// Attaches the steering program for `bound` and starts one answering thread per
/// receive queue of its interface; `fallback` sends what does not fit a frame;
/// `worker` makes each thread's answering state.
pub(super) fn spawn(
    bound: SocketAddr,
    fallback: &UdpSocket,
    shared: &SharedSnapshot,
    stop: &Arc<AtomicBool>,
    mut worker: impl FnMut() -> Worker,
) -> io::Result<XdpWorkers> {
    let SocketAddr::V4(bound) = bound else {
        return Err(io::Error::other("xdp serves IPv4 listen addresses only"));
    };
    if bound.ip().is_unspecified() {
        return Err(io::Error::other(
            "udp_io = \"xdp\" needs the address of one interface, not 0.0.0.0",
        ));
    }
    let (interface, ifindex) = interface_of(*bound.ip()).map_err(|e| explained("interface", e))?;
    if bound.ip().is_loopback() {
        loopback_ready(&interface)?;
    }
    let (queues, mtu) = queues_and_mtu(&interface);
    let map = bpf::create_map(queues).map_err(|e| explained("creating the XSKMAP", e))?;
    let mut sockets = Vec::with_capacity(queues as usize);
    for queue in 0..queues {
        let socket = XskSocket::bind(ifindex, queue)
            .map_err(|e| explained(&format!("AF_XDP socket on {interface} queue {queue}"), e))?;
        bpf::set_socket(&map, queue, socket.fd()).map_err(|e| explained("XSKMAP entry", e))?;
        sockets.push(socket);
    }
    let program = bpf::load_program(Some(*bound.ip()), bound.port(), &map)
        .map_err(|e| explained("loading the XDP program", e))?;
    let (link, mode) = bpf::attach(&program, ifindex)
        .map_err(|e| explained(&format!("attaching to {interface}"), e))?;
    let attachment = Arc::new(Attachment {
        _link: link,
        _program: program,
        _map: map,
    });
    let mut threads = Vec::with_capacity(sockets.len());
    for (queue, socket) in sockets.into_iter().enumerate() {
        let serving = Serving {
            socket,
            fallback: fallback.try_clone()?,
            shared: shared.clone(),
            stop: stop.clone(),
            worker: worker(),
            mtu,
            _attachment: attachment.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-xdp-{queue}"))
                .spawn(move || serving.run())?,
        );
    }
    Ok(XdpWorkers {
        threads,
        mode,
        interface,
    })
}

/// One queue's thread.
struct Serving {
    socket: XskSocket,
    fallback: UdpSocket,
    shared: SharedSnapshot,
    stop: Arc<AtomicBool>,
    worker: Worker,
    mtu: usize,
    _attachment: Arc<Attachment>,
}

impl Serving {
    fn run(mut self) {
        let mut out = Vec::with_capacity(4096);
        let mut sends: Vec<(u64, u32)> = Vec::with_capacity(BATCH as usize);
        let mut recycled: Vec<u64> = Vec::with_capacity(BATCH as usize);
        let mut ip_id = (crate::dns::engine::fresh_seed() & 0xffff) as u16;
        while !self.stop.load(Ordering::Relaxed) {
            self.socket.reap_sent();
            let (first, count) = self.socket.peek_received(BATCH);
            if count == 0 {
                self.wait();
                continue;
            }
            let snapshot = self.shared.load();
            let now_ms = self.worker.now_ms();
            for i in 0..count {
                let desc = self.socket.received(first.wrapping_add(i));
                let offset = desc.addr as usize % FRAME_SIZE;
                let frame = &mut self.socket.frame(desc.addr)[offset..];
                let Some(datagram) = frame.get(..desc.len as usize).and_then(packet::parse) else {
                    self.worker.counters.dropped();
                    recycled.push(desc.addr);
                    continue;
                };
                out.clear();
                let source = SocketAddr::V4(datagram.source);
                let query = &frame[datagram.payload.clone()];
                if !self
                    .worker
                    .answer(&snapshot, query, source, now_ms, &mut out)
                {
                    recycled.push(desc.addr);
                    continue;
                }
                let len = REPLY_PAYLOAD + out.len();
                if len <= frame.len() && IPV4_LEN + UDP_LEN + out.len() <= self.mtu {
                    frame[REPLY_PAYLOAD..len].copy_from_slice(&out);
                    let len = packet::write_reply(frame, &datagram, out.len(), ip_id);
                    ip_id = ip_id.wrapping_add(1);
                    sends.push((desc.addr, len as u32));
                } else {
                    // Too big for a frame or the link: the kernel fragments or
                    // sends it from the socket bound to the same address.
                    let _ = self.fallback.send_to(&out, source);
                    recycled.push(desc.addr);
                }
            }
            drop(snapshot);
            self.socket.release_received(count);
            self.socket.recycle(recycled.drain(..));
            self.socket.queue_send(sends.drain(..));
            self.send();
        }
    }

    /// Pushes queued replies out; copy mode sends a bounded number per call.
    fn send(&mut self) {
        for _ in 0..16 {
            if self.socket.unsent() == 0 {
                break;
            }
            self.socket.kick();
            self.socket.reap_sent();
        }
    }

    /// Waits for frames; with replies still queued, pushes them, and if the device
    /// cannot take them yet, waits a millisecond for room rather than spinning.
    fn wait(&mut self) {
        let (events, timeout) = if self.socket.unsent() > 0 {
            self.send();
            if self.socket.unsent() == 0 {
                return;
            }
            (libc::POLLIN | libc::POLLOUT, 1)
        } else {
            (libc::POLLIN, WAKE_MS)
        };
        let mut poll = libc::pollfd {
            fd: self.socket.fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, timeout) };
    }
}
