//! How `ctl` shows what servers answer: tables and lines for people.

use std::time::Duration;

use failoverd::admin::api::{OverridesView, Status};
use failoverd::admin::explain::Explanation;
use failoverd::health::overrides::Entry;
use failoverd::logs::Escaped;
use failoverd::service::events::Event;

pub(super) fn print_explanation(server: &str, e: &Explanation) {
    let region = e.region.as_deref().unwrap_or("none");
    println!(
        "== {server} ({}, generation {}): {}{}; region {region} ({})",
        e.server,
        e.generation,
        e.query.name,
        if e.what_if { " (what-if)" } else { "" },
        e.placed_by
    );
    for r in &e.records {
        let pool = r
            .pool
            .as_deref()
            .map(|p| format!(", pool {p}"))
            .unwrap_or_default();
        println!(
            "{} {} ({}): {} — {}{pool}, TTL {} s",
            r.name,
            r.record_type,
            r.policy,
            if r.candidates.is_empty() {
                "no records".to_owned()
            } else {
                r.candidates.join(" ")
            },
            r.outcome,
            r.ttl
        );
        for p in &r.pools {
            println!(
                "  pool {}: {} ({} usable, {} needed)",
                p.name,
                if p.gate.as_ref().is_some_and(|g| !g.open) {
                    "held by its gate"
                } else if p.up {
                    "up"
                } else {
                    "down"
                },
                p.usable,
                p.needed
            );
            for ep in &p.endpoints {
                let mut notes = vec![ep.source.clone()];
                if ep.drained {
                    notes.push("drained".to_owned());
                }
                if ep.damped {
                    notes.push("damped".to_owned());
                }
                if ep.share < 1000 {
                    notes.push(format!("slow start {}‰", ep.share));
                }
                let votes: Vec<String> = ep.votes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "    {:<24} {:<16} {:<5} {}{}{}",
                    ep.endpoint,
                    ep.target,
                    ep.state,
                    notes.join(", "),
                    if votes.is_empty() {
                        String::new()
                    } else {
                        format!("; votes {}", votes.join(" "))
                    },
                    ep.local_probe
                        .as_deref()
                        .map(|p| format!("; probe {p}"))
                        .unwrap_or_default()
                );
            }
            if let Some(gate) = &p.gate {
                println!(
                    "    lag gate {}: {}",
                    gate.pool,
                    match (gate.open, gate.overridden) {
                        (_, true) => "closed, overridden by a manual failover",
                        (true, false) => "open",
                        (false, false) => "closed: traffic does not move to this pool",
                    }
                );
                for ep in &gate.endpoints {
                    println!(
                        "      {:<22} {:<16} {:<5} {}",
                        ep.endpoint,
                        ep.target,
                        ep.state,
                        ep.local_probe.as_deref().unwrap_or(&ep.source)
                    );
                }
            }
        }
        for why in &r.why {
            println!("  - {why}");
        }
    }
    println!();
}

pub(super) fn event_line(event: &Event) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(event.at_ms);
    let fields: Vec<String> = event
        .fields
        .iter()
        .map(|(k, v)| format!("{}={}", Escaped(k), Escaped(v)))
        .collect();
    // An event's reason or name may hold anything a client sent: one event, one
    // line, no terminal control sequences.
    format!(
        "{} #{} {:<5} {}: {} {}",
        humantime::format_rfc3339_millis(at),
        event.seq,
        Escaped(&event.level),
        Escaped(&event.kind),
        Escaped(&event.message),
        fields.join(" ")
    )
}

pub(super) fn print_events(server: &str, events: &Vec<Event>) {
    println!("== {server}");
    for event in events {
        println!("{}", event_line(event));
    }
    println!();
}

pub(super) fn describe_entry(entry: &Entry) -> String {
    match &entry.action {
        Some(action) => {
            let expires = entry
                .expires_at_ms
                .map(|at| format!(", expires in {}", until(at)))
                .unwrap_or_default();
            format!(
                "{} {} by {} ({}{expires})",
                Escaped(action),
                Escaped(&entry.target),
                Escaped(&entry.by),
                Escaped(&entry.reason)
            )
        }
        None => format!(
            "released {} by {} ({})",
            Escaped(&entry.target),
            Escaped(&entry.by),
            Escaped(&entry.reason)
        ),
    }
}

fn until(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let secs = at_ms.saturating_sub(now) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub(super) fn print_status(server: &str, status: &Status) {
    let isolation = status.isolation.as_ref().map_or(String::new(), |i| {
        if i.isolated {
            format!(
                ", ISOLATED ({} of {} needed heard)",
                i.fresh.len(),
                i.needed
            )
        } else {
            String::new()
        }
    });
    let impaired = if status.vantages.iter().any(|v| v.impaired) {
        ", IMPAIRED (its own probes abstain for a local fault)"
    } else {
        ""
    };
    println!(
        "== {server}: vantage {}, generation {}, {}{isolation}{impaired}",
        status.vantage.as_deref().unwrap_or("-"),
        status.generation,
        if status.ready { "ready" } else { "starting" },
    );
    let mut rows = Vec::new();
    for record in &status.records {
        for answer in &record.answers {
            rows.push(vec![
                record.name.clone(),
                record.record_type.clone(),
                if answer.regions.is_empty() {
                    "-".to_owned()
                } else {
                    answer.regions.join(",")
                },
                answer.outcome.clone(),
                answer.pool.clone().unwrap_or_else(|| "-".to_owned()),
                answer.candidates.join(" "),
                answer.ttl.to_string(),
            ]);
        }
    }
    table(
        &[
            "RECORD", "TYPE", "REGIONS", "OUTCOME", "POOL", "ANSWER", "TTL",
        ],
        &rows,
    );
    println!();
    let rows: Vec<Vec<String>> = status
        .endpoints
        .iter()
        .map(|e| {
            let mut notes = Vec::new();
            if e.drained {
                notes.push("drained".to_owned());
            }
            if let Some(d) = &e.damping {
                if d.suppressed {
                    notes.push(format!("damped (penalty {})", d.penalty));
                }
            }
            if let Some(reason) = e
                .local
                .as_ref()
                .filter(|l| l.abstaining)
                .and_then(|l| l.abstained.as_ref())
            {
                notes.push(format!("probe abstains: {reason}"));
            }
            let votes: Vec<String> = e.votes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                e.endpoint.clone(),
                e.target.clone(),
                e.state.to_string(),
                format!("{:?}", e.source).to_lowercase(),
                votes.join(" "),
                notes.join(", "),
            ]
        })
        .collect();
    table(
        &["ENDPOINT", "TARGET", "STATE", "SOURCE", "VOTES", "NOTES"],
        &rows,
    );
    if !status.overrides.is_empty() {
        println!();
        for entry in &status.overrides {
            println!("override: {}", describe_entry(entry));
        }
    }
    println!();
}

pub(super) fn print_overrides(server: &str, view: &OverridesView) {
    println!("== {server} ({})", view.server);
    if view.active.is_empty() {
        println!("no overrides in force");
    }
    let rows: Vec<Vec<String>> = view
        .active
        .iter()
        .map(|e| {
            vec![
                Escaped(&e.target).to_string(),
                e.action
                    .as_ref()
                    .map_or_else(String::new, |a| Escaped(a).to_string()),
                Escaped(&e.by).to_string(),
                Escaped(&e.reason).to_string(),
                e.expires_at_ms.map_or_else(|| "-".to_owned(), until),
                Escaped(&e.stamp.origin).to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            &["TARGET", "ACTION", "BY", "REASON", "EXPIRES IN", "MADE ON"],
            &rows,
        );
    }
    println!();
}
