//! `ctl stats`: each server's DNS counters as a table (`--json`: as they come).

use std::collections::BTreeMap;

use crate::api::Stats;

/// Prints one server's statistics.
pub(super) fn print_stats(server: &str, stats: &Stats) {
    println!("== {server}");
    let total: u64 = stats.responses.values().sum();
    println!(
        "responses  {total} ({})",
        counts(
            &stats.responses,
            &["noerror", "nxdomain", "refused", "servfail"]
        )
    );
    println!(
        "dropped {}  truncated {}  internal errors {}",
        stats.dropped, stats.truncated, stats.internal_errors
    );
    if stats.zones.is_empty() {
        println!("zones      (no query answered in a zone yet)");
    } else {
        let width = stats
            .zones
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<width$}  {:>10}  {:>10}  {:>10}  {:>10}",
            "zone", "responses", "noerror", "nxdomain", "other"
        );
        for (zone, by_rcode) in &stats.zones {
            let total: u64 = by_rcode.values().sum();
            let get = |k: &str| by_rcode.get(k).copied().unwrap_or(0);
            let other = total - get("noerror") - get("nxdomain");
            println!(
                "{zone:<width$}  {total:>10}  {:>10}  {:>10}  {other:>10}",
                get("noerror"),
                get("nxdomain")
            );
        }
    }
    println!(
        "rrl        {}",
        counts(&stats.rrl, &["limited", "slipped", "dropped"])
    );
    println!(
        "tcp        {}",
        counts(&stats.tcp, &["accepted", "rejected", "timeouts", "open"])
    );
    if stats.transfers.is_empty() && stats.notify.is_empty() {
        println!("transfers  (no [transfer] secondaries)");
    } else {
        println!(
            "transfers  {}; refused {}; notify {}",
            counts(&stats.transfers, &[]),
            counts(&stats.transfers_refused, &[]),
            counts(&stats.notify, &[])
        );
    }
    println!();
}

/// `key value` pairs: `first` in that order (0 when absent), then the others that are
/// not zero.
fn counts(values: &BTreeMap<String, u64>, first: &[&str]) -> String {
    let mut parts: Vec<String> = first
        .iter()
        .map(|k| format!("{k} {}", values.get(*k).copied().unwrap_or(0)))
        .collect();
    parts.extend(
        values
            .iter()
            .filter(|(k, v)| !first.contains(&k.as_str()) && **v > 0)
            .map(|(k, v)| format!("{k} {v}")),
    );
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}
