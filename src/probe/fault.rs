//! Which probe failures are this prober's own: an error that says something about
//! the probing host (no file descriptor left, no buffer, the source address gone, no
//! route in the local table, a local firewall) rather than about the endpoint. Such a
//! probe *abstains* (see [`crate::health::board`]): it neither votes the endpoint down
//! nor refreshes this vantage point's verdict, which then ages and goes stale like a
//! stalled prober's.
//!
//! Errors are classified by their `errno` (`raw_os_error()`), wherever in a client's
//! error chain the [`std::io::Error`] sits ([`io_error_in`]). One errno needs a second
//! look: `connect(2)` returns ENETUNREACH both when the local table has no route and
//! when a router on the way answers "network unreachable" — the latter is the
//! endpoint's network failing as seen from here, a vote. [`route_fault`] asks the
//! local table (a UDP `connect`, which only looks the route up).

use std::error::Error;
use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::health::LocalFault;

/// The local fault an `errno` shows, with a short text, if it shows one.
pub(crate) fn classify_errno(errno: i32) -> Option<(LocalFault, &'static str)> {
    let fault = match errno {
        libc::EMFILE => (LocalFault::FdExhausted, "too many open files (EMFILE)"),
        libc::ENFILE => (
            LocalFault::FdExhausted,
            "too many open files in the system (ENFILE)",
        ),
        libc::ENOBUFS => (LocalFault::NoBuffers, "no buffer space available (ENOBUFS)"),
        libc::ENOMEM => (LocalFault::NoBuffers, "out of memory (ENOMEM)"),
        libc::EADDRNOTAVAIL => (
            LocalFault::NoSourceAddress,
            "address not available on this host (EADDRNOTAVAIL)",
        ),
        libc::ENETUNREACH => (
            LocalFault::NoRoute,
            "no route to the network in the local table (ENETUNREACH)",
        ),
        libc::EPERM => (
            LocalFault::LocalFirewall,
            "operation not permitted, by a local firewall (EPERM)",
        ),
        libc::EACCES => (
            LocalFault::LocalFirewall,
            "permission denied, by a local firewall (EACCES)",
        ),
        _ => return None,
    };
    Some(fault)
}

/// The local fault an I/O error shows, if it shows one (see [`classify_errno`]).
pub(crate) fn classify_io(error: &io::Error) -> Option<(LocalFault, &'static str)> {
    classify_errno(error.raw_os_error()?)
}

/// The first I/O error with an `errno` in `error`'s chain of sources (looking inside
/// I/O errors that wrap others, whose `source()` skips what they wrap).
pub(crate) fn io_error_in<'e>(error: &'e (dyn Error + 'static)) -> Option<&'e io::Error> {
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                return Some(io);
            }
            next = io.get_ref().map(|inner| inner as &(dyn Error + 'static));
            continue;
        }
        next = e.source();
    }
    None
}

/// After an ENETUNREACH towards `peer`: the local fault, if the local table has no
/// route to it either (from `source`, if set) — None when it has one, so the error
/// came from the network (a router's ICMP) and counts against the endpoint.
pub(crate) fn route_fault(
    peer: SocketAddr,
    source: Option<IpAddr>,
) -> Option<(LocalFault, &'static str)> {
    let local: SocketAddr = match (source, peer) {
        (Some(ip), _) => SocketAddr::new(ip, 0),
        (None, SocketAddr::V4(_)) => ([0, 0, 0, 0], 0).into(),
        (None, SocketAddr::V6(_)) => ([0u16; 8], 0).into(),
    };
    // A UDP connect sends nothing: it only looks the route up.
    let looked_up = std::net::UdpSocket::bind(local).and_then(|socket| socket.connect(peer));
    match looked_up {
        Ok(()) => None,
        Err(error) => Some(classify_io(&error).unwrap_or((
            LocalFault::NoRoute,
            "no route to the network in the local table (ENETUNREACH)",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errnos_are_faults_with_their_label() {
        let cases = [
            (libc::EMFILE, "fd_exhausted", "EMFILE"),
            (libc::ENFILE, "fd_exhausted", "ENFILE"),
            (libc::ENOBUFS, "no_buffers", "ENOBUFS"),
            (libc::ENOMEM, "no_buffers", "ENOMEM"),
            (libc::EADDRNOTAVAIL, "no_source_address", "EADDRNOTAVAIL"),
            (libc::ENETUNREACH, "no_route", "ENETUNREACH"),
            (libc::EPERM, "local_firewall", "EPERM"),
            (libc::EACCES, "local_firewall", "EACCES"),
        ];
        for (errno, label, name) in cases {
            let (fault, text) = classify_io(&io::Error::from_raw_os_error(errno))
                .unwrap_or_else(|| panic!("{name} is not classified"));
            assert_eq!(fault.label(), label, "{name}");
            assert!(text.contains(name), "{text}");
        }
        assert_eq!(
            classify_errno(libc::EMFILE).map(|(_, t)| t),
            Some("too many open files (EMFILE)")
        );
    }

    #[test]
    fn the_endpoints_failures_are_no_fault() {
        for errno in [
            libc::ECONNREFUSED,
            libc::ECONNRESET,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
            libc::EPIPE,
            libc::ENOENT,
        ] {
            assert_eq!(classify_errno(errno), None, "errno {errno}");
        }
        // Kind-only errors (no errno) say nothing about this host.
        assert_eq!(
            classify_io(&io::Error::new(io::ErrorKind::TimedOut, "timeout")),
            None
        );
    }

    /// An error wrapping another, as HTTP clients nest them.
    #[derive(Debug)]
    struct Wrapper(&'static str, Box<dyn Error + Send + Sync>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self.1.as_ref())
        }
    }

    #[test]
    fn the_errno_is_found_anywhere_in_the_chain() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        // client error → connector error → io::Error(custom, wrapping) → io::Error(EMFILE)
        let nested = Wrapper(
            "client",
            Box::new(Wrapper(
                "tcp open error",
                Box::new(io::Error::other(emfile)),
            )),
        );
        let found = io_error_in(&nested).and_then(classify_io);
        assert_eq!(found.map(|(f, _)| f), Some(LocalFault::FdExhausted));
        let plain = Wrapper("client", Box::new(io::Error::other("no errno")));
        assert!(io_error_in(&plain).is_none());
    }

    #[test]
    fn enetunreach_is_ours_only_without_a_local_route() {
        // Loopback is always routed: an ENETUNREACH to it would have come from afar.
        assert_eq!(route_fault("127.0.0.1:9".parse().unwrap(), None), None);
        // A source address this host does not have cannot be bound.
        let fault = route_fault(
            "127.0.0.1:9".parse().unwrap(),
            Some("192.0.2.123".parse().unwrap()),
        );
        assert_eq!(fault.map(|(f, _)| f), Some(LocalFault::NoSourceAddress));
    }
}
