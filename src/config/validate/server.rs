//! `[server]` transport limits: TCP connection caps and `[server.rrl]`.

use super::{Validator, parse_network};
use crate::config::RrlConfig;
use crate::config::defaults::server as defaults;
use crate::config::diagnostics::KeyPath;
use crate::config::spec::{RrlSpec, ServerSpec};

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
