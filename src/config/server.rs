//! `[server]` → [`ServerConfig`].

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::defaults::server as defaults;
use super::diagnostics::KeyPath;
use super::spec::ServerSpec;
use super::validate::{Validator, parse_duration};
use super::{ServerConfig, UdpIo};

impl Validator<'_> {
    pub(super) fn server(&mut self, spec: &ServerSpec) -> ServerConfig {
        let root = KeyPath::root().key("server");
        let mut listen = Vec::new();
        let addresses = spec
            .listen
            .clone()
            .unwrap_or_else(|| defaults::LISTEN.iter().map(|a| (*a).to_owned()).collect());
        if addresses.is_empty() {
            self.error(root.key("listen"), "at least one listen address is needed");
        }
        let mut seen = HashSet::new();
        for (i, text) in addresses.iter().enumerate() {
            let path = root.key("listen").index(i);
            match text.parse::<SocketAddr>() {
                Ok(address) if seen.insert(address) => listen.push(address),
                Ok(address) => self.error(path, format!("{address} is listed twice")),
                Err(_) => self.error(
                    path,
                    format!(
                        "{text:?} is not an address with a port (e.g. 127.0.0.1:53 or [::1]:53)"
                    ),
                ),
            }
        }
        let workers = self.ranged(
            root.key("udp_workers"),
            spec.udp_workers,
            defaults::UDP_WORKERS,
            0..=64,
            "",
        );
        let udp_workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(16))
        } else {
            workers as usize
        };
        let max_udp_payload = self.ranged(
            root.key("max_udp_payload"),
            spec.max_udp_payload,
            defaults::MAX_UDP_PAYLOAD,
            512..=4096,
            " (1232 avoids IP fragmentation)",
        ) as u16;
        let default_idle = defaults::TCP_IDLE_TIMEOUT;
        let tcp_idle_timeout = match spec.tcp_idle_timeout.as_deref().map(parse_duration) {
            None => default_idle,
            Some(Ok(d)) if d >= Duration::from_millis(100) && d <= Duration::from_secs(300) => d,
            Some(Ok(_)) => {
                self.error(
                    root.key("tcp_idle_timeout"),
                    "must be between 100ms and 300s",
                );
                default_idle
            }
            Some(Err(e)) => {
                self.error(root.key("tcp_idle_timeout"), e);
                default_idle
            }
        };
        let (tcp_max_connections, tcp_max_connections_per_source) = self.tcp_limits(spec, &root);
        let rrl = self.rrl(spec.rrl.as_ref(), &root);
        let udp_io = match spec.udp_io.as_deref().unwrap_or(defaults::UDP_IO) {
            "batched" => UdpIo::Batched,
            "portable" => UdpIo::Portable,
            "xdp" => UdpIo::Xdp,
            other => {
                self.error(
                    root.key("udp_io"),
                    format!("{other:?} is not \"batched\" (recvmmsg/sendmmsg), \"portable\" (recv_from/send_to) or \"xdp\" (AF_XDP)"),
                );
                UdpIo::default()
            }
        };
        if udp_io == UdpIo::Xdp {
            for address in listen.iter().filter(|a| a.ip() == Ipv4Addr::UNSPECIFIED) {
                self.error(
                    root.key("udp_io"),
                    format!(
                        "\"xdp\" attaches to the interface holding each IPv4 listen address: \
                         {address} names none; listen on the interface's address"
                    ),
                );
            }
        }
        ServerConfig {
            listen,
            udp_io,
            udp_workers,
            max_udp_payload,
            tcp_idle_timeout,
            tcp_max_connections,
            tcp_max_connections_per_source,
            rrl,
        }
    }
}
