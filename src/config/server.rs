//! `[server]` → [`ServerConfig`]: listeners, UDP I/O, TCP limits and `[server.rrl]`.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::defaults::server as defaults;
use super::diagnostics::KeyPath;
use super::spec::{RrlSpec, ServerSpec};
use super::validate::{Validator, parse_duration, parse_network};

/// How UDP workers receive and send datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum UdpIo {
    /// `recvmmsg`/`sendmmsg`, many datagrams per system call (Linux; elsewhere the
    /// portable path is used instead).
    #[default]
    Batched,
    /// One `recv_from`/`send_to` per datagram: any platform.
    Portable,
    /// AF_XDP (Linux, needs CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW): an XDP program
    /// steers IPv4 DNS datagrams past the kernel's UDP stack into the server's own
    /// rings; the batched sockets serve the rest (IPv6, fragments, large answers).
    Xdp,
}

/// The `[server]` section, validated.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ServerConfig {
    /// DNS listen addresses (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// How UDP workers move datagrams.
    pub udp_io: UdpIo,
    /// UDP worker threads per listen address (≥ 1).
    pub udp_workers: usize,
    /// Largest UDP response sent to EDNS clients (512–4096).
    pub max_udp_payload: u16,
    /// How long an idle TCP connection stays open.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections open at once, per listen address.
    pub tcp_max_connections: usize,
    /// Most TCP connections open at once from one client address.
    pub tcp_max_connections_per_source: usize,
    /// Response rate limiting of UDP answers (`None`: off, the default).
    pub rrl: Option<RrlConfig>,
}

/// The `[server.rrl]` section, validated: response rate limiting (as Knot's and
/// NSD's RRL) of UDP answers, per client prefix, response class and name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RrlConfig {
    /// Responses per second allowed per bucket (≥ 1); one second's worth is the burst.
    pub rate: u32,
    /// Every `slip`-th limited response goes out truncated (TC, no records) so real
    /// clients retry over TCP; 0 drops every limited response, 1 truncates every one.
    pub slip: u32,
    /// Prefix length an IPv4 client is bucketed by.
    pub ipv4_prefix: u8,
    /// Prefix length an IPv6 client is bucketed by.
    pub ipv6_prefix: u8,
    /// Client networks never limited.
    pub whitelist: Vec<IpNet>,
    /// Buckets per UDP worker (a power of two).
    pub table_size: usize,
}

impl RrlConfig {
    /// The defaults of every key (what an empty `[server.rrl]` table means).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) const DEFAULT: Self = Self {
        rate: super::defaults::rrl::RATE,
        slip: super::defaults::rrl::SLIP,
        ipv4_prefix: super::defaults::rrl::IPV4_PREFIX,
        ipv6_prefix: super::defaults::rrl::IPV6_PREFIX,
        whitelist: Vec::new(),
        table_size: super::defaults::rrl::TABLE_SIZE,
    };
}

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

/// Most buckets per worker table (16 Mi buckets, 512 MiB per worker).
const MAX_TABLE_SIZE: i64 = 1 << 24;

/// Fewest buckets per worker table.
const MIN_TABLE_SIZE: i64 = 1 << 10;

impl Validator<'_> {
    /// `tcp_max_connections` and `tcp_max_connections_per_source`.
    pub(in crate::config) fn tcp_limits(
        &mut self,
        spec: &ServerSpec,
        root: &KeyPath,
    ) -> (usize, usize) {
        let total = self.ranged(
            root.key("tcp_max_connections"),
            spec.tcp_max_connections,
            defaults::TCP_MAX_CONNECTIONS as i64,
            1..=65535,
            "",
        );
        let default_per_source = (defaults::TCP_MAX_CONNECTIONS_PER_SOURCE as i64).min(total);
        let per_source = self.ranged(
            root.key("tcp_max_connections_per_source"),
            spec.tcp_max_connections_per_source,
            default_per_source,
            1..=total,
            " (at most tcp_max_connections)",
        );
        (total as usize, per_source as usize)
    }

    /// `[server.rrl]`: present means on.
    pub(in crate::config) fn rrl(
        &mut self,
        spec: Option<&RrlSpec>,
        root: &KeyPath,
    ) -> Option<RrlConfig> {
        let spec = spec?;
        let path = root.key("rrl");
        let d = RrlConfig::DEFAULT;
        let rate = self.ranged(
            path.key("rate"),
            spec.rate,
            i64::from(d.rate),
            1..=1_000_000,
            " responses per second",
        ) as u32;
        let slip = self.ranged(
            path.key("slip"),
            spec.slip,
            i64::from(d.slip),
            0..=100,
            " (0 drops every limited response, 1 truncates every one)",
        ) as u32;
        let ipv4_prefix = self.ranged(
            path.key("ipv4_prefix"),
            spec.ipv4_prefix,
            i64::from(d.ipv4_prefix),
            8..=32,
            "",
        ) as u8;
        let ipv6_prefix = self.ranged(
            path.key("ipv6_prefix"),
            spec.ipv6_prefix,
            i64::from(d.ipv6_prefix),
            16..=128,
            "",
        ) as u8;
        let table_size = self.ranged(
            path.key("table_size"),
            spec.table_size,
            d.table_size as i64,
            MIN_TABLE_SIZE..=MAX_TABLE_SIZE,
            " buckets",
        ) as usize;
        if !table_size.is_power_of_two() {
            self.warning(
                path.key("table_size"),
                format!(
                    "{table_size} is rounded up to a power of two ({})",
                    table_size.next_power_of_two()
                ),
            );
        }
        let mut whitelist = Vec::new();
        for (i, text) in spec.whitelist.iter().flatten().enumerate() {
            match parse_network(text) {
                Ok(net) if whitelist.contains(&net) => self.error(
                    path.key("whitelist").index(i),
                    format!("{net} is listed twice"),
                ),
                Ok(net) => whitelist.push(net),
                Err(e) => self.error(path.key("whitelist").index(i), e),
            }
        }
        Some(RrlConfig {
            rate,
            slip,
            ipv4_prefix,
            ipv6_prefix,
            whitelist,
            table_size: table_size.next_power_of_two(),
        })
    }
}
