//! Listening sockets handed from a running server to the process replacing it
//! (zero-loss restart): the same sockets, so not a datagram or a connection in a
//! queue is lost while one process gives way to the other.
//!
//! The old process names them in [`LISTEN_FDS_ENV`] (`udp=ADDR@FD,FD;tcp=ADDR@FD;
//! admin=ADDR@FD`) and leaves those descriptors open across `exec`; the new one takes
//! each for the listen address it is configured with (the same address, or the same
//! IP when the configuration says port 0) and closes what it does not use.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Environment variable naming the inherited sockets.
pub(crate) const LISTEN_FDS_ENV: &str = "FAILOVERD_LISTEN_FDS";

/// What a listening socket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A DNS UDP socket (one of a `SO_REUSEPORT` group).
    Udp,
    /// A DNS TCP listener.
    Tcp,
    /// An admin API listener.
    Admin,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Admin => "admin",
        }
    }
}

/// A listening socket of this process, as handed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listening {
    /// What it is for.
    pub kind: Kind,
    /// Its bound address.
    pub addr: SocketAddr,
    /// The descriptors (several for a UDP group).
    pub fds: Vec<RawFd>,
}

/// The environment value naming `listening`.
pub(crate) fn describe(listening: &[Listening]) -> String {
    listening
        .iter()
        .map(|l| {
            let fds: Vec<String> = l.fds.iter().map(ToString::to_string).collect();
            format!("{}={}@{}", l.kind.name(), l.addr, fds.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Sockets inherited from the process this one replaces.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Inherited {
    sockets: Vec<(Kind, SocketAddr, Vec<OwnedFd>)>,
}

impl Inherited {
    /// Takes the sockets named by [`LISTEN_FDS_ENV`], if set. Each descriptor must be
    /// an open socket bound to the address named (checked), so a stale or foreign
    /// value cannot make this process use another file.
    pub(crate) fn from_env() -> Result<Option<Self>, String> {
        let Ok(text) = std::env::var(LISTEN_FDS_ENV) else {
            return Ok(None);
        };
        Self::parse(&text).map(Some)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut sockets = Vec::new();
        for part in text.split(';').filter(|p| !p.is_empty()) {
            let bad = || format!("{LISTEN_FDS_ENV}: cannot read {part:?}");
            let (kind, rest) = part.split_once('=').ok_or_else(bad)?;
            let (addr, fds) = rest.rsplit_once('@').ok_or_else(bad)?;
            let kind = match kind {
                "udp" => Kind::Udp,
                "tcp" => Kind::Tcp,
                "admin" => Kind::Admin,
                _ => return Err(bad()),
            };
            let addr: SocketAddr = addr.parse().map_err(|_| bad())?;
            let mut owned = Vec::new();
            for fd in fds.split(',') {
                let fd: RawFd = fd.parse().map_err(|_| bad())?;
                let bound = socket_address(fd).ok_or_else(|| {
                    format!("{LISTEN_FDS_ENV}: descriptor {fd} is not an open socket")
                })?;
                if bound != addr {
                    return Err(format!(
                        "{LISTEN_FDS_ENV}: descriptor {fd} is bound to {bound}, not {addr}"
                    ));
                }
                // SAFETY: the descriptor is open (getsockname succeeded), was left open
                // for this process to own, and is taken once.
                owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            sockets.push((kind, addr, owned));
        }
        Ok(Self { sockets })
    }

    fn take(&mut self, kind: Kind, wanted: SocketAddr) -> Option<(SocketAddr, Vec<OwnedFd>)> {
        let found = self.sockets.iter().position(|(k, addr, _)| {
            *k == kind && (*addr == wanted || (wanted.port() == 0 && addr.ip() == wanted.ip()))
        })?;
        let (_, addr, fds) = self.sockets.remove(found);
        Some((addr, fds))
    }

    /// The UDP sockets inherited for `wanted`.
    pub(crate) fn take_udp(&mut self, wanted: SocketAddr) -> Option<Vec<UdpSocket>> {
        let (_, fds) = self.take(Kind::Udp, wanted)?;
        Some(fds.into_iter().map(UdpSocket::from).collect())
    }

    /// The DNS TCP listener inherited for `wanted`.
    pub(crate) fn take_tcp(&mut self, wanted: SocketAddr) -> Option<TcpListener> {
        let (_, fds) = self.take(Kind::Tcp, wanted)?;
        fds.into_iter().next().map(TcpListener::from)
    }

    /// The admin listener inherited for `wanted`.
    pub(crate) fn take_admin(&mut self, wanted: SocketAddr) -> Option<TcpListener> {
        let (_, fds) = self.take(Kind::Admin, wanted)?;
        fds.into_iter().next().map(TcpListener::from)
    }

    /// Closes what nobody took (the new configuration no longer listens there),
    /// naming it.
    pub(crate) fn close_rest(&mut self) {
        for (kind, addr, _) in self.sockets.drain(..) {
            tracing::warn!(kind = kind.name(), %addr, "an inherited socket is not in the configuration: closed");
        }
    }
}

/// The address a socket descriptor is bound to (None: not an open socket).
fn socket_address(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: the Socket only borrows the descriptor (never dropped, so never closed);
    // getsockname on a descriptor that is not an open socket just fails.
    let socket = std::mem::ManuallyDrop::new(unsafe { socket2::Socket::from_raw_fd(fd) });
    socket.local_addr().ok()?.as_socket()
}

/// Leaves `fds` open across `exec` (call between fork and exec only).
///
/// # Safety
/// Only async-signal-safe work: one `fcntl` per descriptor.
pub(crate) unsafe fn keep_across_exec(fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: fcntl on a descriptor number; no memory is touched.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The descriptor number of a socket (for [`Listening`]).
pub(crate) fn raw(socket: &impl AsRawFd) -> RawFd {
    socket.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_named_checked_and_matched_by_address() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let text = describe(&[
            Listening {
                kind: Kind::Udp,
                addr: udp_addr,
                fds: vec![raw(&udp)],
            },
            Listening {
                kind: Kind::Tcp,
                addr: tcp_addr,
                fds: vec![raw(&tcp)],
            },
        ]);
        // The descriptors pass to the parsed value (as across exec).
        std::mem::forget(udp);
        std::mem::forget(tcp);
        let mut inherited = Inherited::parse(&text).unwrap();
        assert!(inherited.take_udp("127.0.0.2:0".parse().unwrap()).is_none());
        let taken = inherited.take_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(taken[0].local_addr().unwrap(), udp_addr);
        let listener = inherited.take_tcp(tcp_addr).unwrap();
        assert_eq!(listener.local_addr().unwrap(), tcp_addr);
        assert!(inherited.take_tcp(tcp_addr).is_none(), "taken once");
        // A descriptor bound elsewhere is refused.
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let wrong = format!("udp={udp_addr}@{}", raw(&other));
        assert!(
            Inherited::parse(&wrong)
                .unwrap_err()
                .contains("is bound to")
        );
        assert!(Inherited::parse("udp=127.0.0.1:53@99999").is_err());
    }
}
