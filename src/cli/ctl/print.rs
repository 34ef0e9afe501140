//! How `ctl` shows what servers answer: tables and lines for people.

use std::time::Duration;

use std::collections::BTreeMap;

use crate::admin::attention::duration_words;
use crate::admin::explain::Explanation;
use crate::api::{AnswerStatus, EndpointStatus, OverridesView, Status};
use crate::health::overrides::Entry;
use crate::logs::Escaped;
use crate::telemetry::events::Event;

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
            "{} {} ({}): {} — {}{}{pool}, TTL {} s",
            r.name,
            r.record_type,
            r.policy,
            if r.candidates.is_empty() {
                "no records".to_owned()
            } else {
                r.candidates.join(" ")
            },
            r.outcome,
            r.cause.map(|c| format!(" ({c})")).unwrap_or_default(),
            r.ttl
        );
        if let Some(shares) = &r.spill {
            println!("  {shares}");
        }
        if let Some(latency) = &r.latency {
            println!("  {latency}");
        }
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
                if let Some(factor) = ep.degraded {
                    notes.push(format!("degraded, weight ×{factor}"));
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
            // "drain endpoint web-eu/eu-1 by oncall (alice): "kernel", expires in 2h"
            // ("by" carries the user in parentheses already).
            format!(
                "{} {} by {}: \"{}\"{expires}",
                Escaped(action),
                Escaped(&entry.target),
                Escaped(&entry.by),
                Escaped(&entry.reason)
            )
        }
        None => format!(
            "released {} by {}: \"{}\"",
            Escaped(&entry.target),
            Escaped(&entry.by),
            Escaped(&entry.reason)
        ),
    }
}

/// Unix milliseconds now, by this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long until `at_ms`, rounded to what matters (`4h`, `1h 30m`, `45s`).
fn until(at_ms: u64) -> String {
    duration_words(at_ms.saturating_sub(now_ms()))
}

/// How long since `at_ms`.
fn since(at_ms: u64) -> String {
    duration_words(now_ms().saturating_sub(at_ms))
}

/// `2026-12-07T10:00:00Z`.
fn iso(at_ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(at_ms))
        .to_string()
}

/// The regions an answer serves (`-`: every client, not a geo record).
fn regions(answer: &AnswerStatus) -> String {
    if answer.regions.is_empty() {
        "-".to_owned()
    } else {
        answer.regions.join(",")
    }
}

/// An answer's outcome in words: `failover (operator)`, `healthy (pinned to us, not
/// up)`.
fn outcome_words(answer: &AnswerStatus) -> String {
    let mut text = answer.outcome.clone();
    if let Some(cause) = answer.cause {
        text.push_str(&format!(" ({cause})"));
    }
    if let Some(pinned) = answer
        .pinned
        .as_ref()
        .filter(|p| answer.pool.as_ref() != Some(*p))
    {
        text.push_str(&format!(" (pinned to {pinned}, not up)"));
    }
    if answer.overloaded {
        text.push_str(" (overloaded)");
    }
    text
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

/// The first line of a server's status: who it is, and whether it is ready or
/// isolated.
fn status_line(server: &str, status: &Status) -> String {
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
    format!(
        "== {server}: vantage {}, generation {}, {}{isolation}{impaired}",
        status.vantage.as_deref().unwrap_or("-"),
        status.generation,
        if status.ready { "ready" } else { "NOT READY" },
    )
}

/// What needs attention, one line each (`! critical: …`).
fn print_attention(status: &Status, indent: &str) {
    for notice in &status.attention {
        println!(
            "{indent}! {}: {}",
            notice.level.as_str(),
            Escaped(&notice.text)
        );
    }
}

/// An endpoint's state with what an operator or damping does to it: `down`,
/// `up drained`, `down forced`.
fn endpoint_state(e: &EndpointStatus) -> String {
    let mut text = e.state.to_string();
    if e.forced_by_operator {
        text.push_str(" forced");
    }
    if e.drained {
        text.push_str(" drained");
    }
    if e.degraded.is_some() {
        text.push_str(" degraded");
    }
    if e.damping.as_ref().is_some_and(|d| d.suppressed) {
        text.push_str(" damped");
    }
    text
}

pub(super) fn print_status(server: &str, status: &Status) {
    println!("{}", status_line(server, status));
    print_attention(status, "");
    let mut rows = Vec::new();
    for record in &status.records {
        for answer in &record.answers {
            rows.push(vec![
                record.name.clone(),
                record.record_type.clone(),
                regions(answer),
                outcome_words(answer),
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
            if e.forced_by_operator {
                notes.push(format!("forced {} by an operator", e.state));
            }
            if e.drained {
                notes.push("drained".to_owned());
            }
            if let Some(factor) = e.degraded {
                let why = e.local.as_ref().and_then(|l| l.degraded.as_deref());
                notes.push(match why {
                    Some(why) => format!("degraded, weight ×{factor} ({why})"),
                    None => format!("degraded, weight ×{factor}"),
                });
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
            let (changed, in_state, changes, downs) = match &e.history {
                Some(h) => (
                    iso(h.changed_at_ms),
                    since(h.changed_at_ms),
                    h.changes.to_string(),
                    h.downs.to_string(),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            vec![
                e.endpoint.clone(),
                e.target.clone(),
                e.state.to_string(),
                in_state,
                changed,
                changes,
                downs,
                format!("{:?}", e.source).to_lowercase(),
                votes.join(" "),
                notes.join(", "),
            ]
        })
        .collect();
    table(
        &[
            "ENDPOINT", "TARGET", "STATE", "FOR", "SINCE", "CHANGES", "DOWNS", "SOURCE", "VOTES",
            "NOTES",
        ],
        &rows,
    );
    if status.counted_since_ms > 0 {
        println!(
            "(changes and downs counted since {})",
            iso(status.counted_since_ms)
        );
    }
    for pool in status.pools.iter().filter(|p| p.dial.is_some()) {
        println!("{}", dial_line(&pool.pool, pool.dial.unwrap_or(100)));
    }
    if !status.overrides.is_empty() {
        println!();
        for entry in &status.overrides {
            println!(
                "override: {}, in force for {}",
                describe_entry(entry),
                since(entry.at_ms)
            );
        }
    }
    println!();
}

/// One line per record answer and per endpoint across every server that answered,
/// `DISAGREE` where they differ; then the overrides and which servers hold them.
pub(super) fn print_cluster(statuses: &[(String, Status)]) {
    for (server, status) in statuses {
        println!("{}", status_line(server, status));
        print_attention(status, "   ");
    }
    println!();
    // Columns by vantage name, or by address where names repeat (servers without
    // vantage points are all "local").
    let mut names: Vec<String> = statuses
        .iter()
        .map(|(server, status)| status.vantage.clone().unwrap_or_else(|| server.clone()))
        .collect();
    if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        names = statuses
            .iter()
            .map(|(server, _)| {
                let server = server.trim_end_matches('/');
                server
                    .split_once("://")
                    .map_or(server, |(_, host)| host)
                    .to_owned()
            })
            .collect();
    }
    let agreement = |cells: &[String]| {
        if cells.windows(2).all(|w| w[0] == w[1]) {
            String::new()
        } else {
            "DISAGREE".to_owned()
        }
    };
    // Records: keyed by name, type and regions, in the first server's order.
    let mut keys: Vec<(String, String, String)> = Vec::new();
    let mut cells: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for (i, (_, status)) in statuses.iter().enumerate() {
        for record in &status.records {
            for answer in &record.answers {
                let key = (
                    record.name.clone(),
                    record.record_type.clone(),
                    regions(answer),
                );
                let row = cells.entry(key.clone()).or_insert_with(|| {
                    keys.push(key.clone());
                    vec!["?".to_owned(); statuses.len()]
                });
                row[i] = match &answer.pool {
                    Some(pool) => format!("{} {pool}", outcome_words(answer)),
                    None => outcome_words(answer),
                };
            }
        }
    }
    let mut header = vec!["RECORD", "TYPE", "REGIONS"];
    header.extend(names.iter().map(String::as_str));
    header.push("");
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let row = &cells[key];
            let mut line = vec![key.0.clone(), key.1.clone(), key.2.clone()];
            line.extend(row.iter().cloned());
            line.push(agreement(row));
            line
        })
        .collect();
    table(&header, &rows);
    println!();
    // Traffic dials: each dialled pool's setting on each server.
    let mut dialled: Vec<&str> = Vec::new();
    for (_, status) in statuses {
        for pool in status.pools.iter().filter(|p| p.dial.is_some()) {
            if !dialled.contains(&pool.pool.as_str()) {
                dialled.push(&pool.pool);
            }
        }
    }
    if !dialled.is_empty() {
        let mut header = vec!["DIALLED POOL"];
        header.extend(names.iter().map(String::as_str));
        header.push("");
        let rows: Vec<Vec<String>> = dialled
            .iter()
            .map(|&pool| {
                let row: Vec<String> = statuses
                    .iter()
                    .map(|(_, status)| {
                        let dial = status.pools.iter().find(|p| p.pool == pool);
                        match dial.map(|p| p.dial) {
                            Some(Some(percent)) => format!("{percent}%"),
                            Some(None) => "100% (no dial)".to_owned(),
                            None => "?".to_owned(),
                        }
                    })
                    .collect();
                let mut line = vec![pool.to_owned()];
                line.extend(row.iter().cloned());
                line.push(agreement(&row));
                line
            })
            .collect();
        table(&header, &rows);
        println!();
    }
    // Endpoints: the state on each server, and how long since the last change on
    // any of them.
    let mut keys: Vec<String> = Vec::new();
    let mut cells: BTreeMap<String, (Vec<String>, Option<u64>, u64, u64)> = BTreeMap::new();
    for (i, (_, status)) in statuses.iter().enumerate() {
        for e in &status.endpoints {
            let row = cells.entry(e.endpoint.clone()).or_insert_with(|| {
                keys.push(e.endpoint.clone());
                (vec!["?".to_owned(); statuses.len()], None, 0, 0)
            });
            row.0[i] = endpoint_state(e);
            if let Some(h) = &e.history {
                row.1 = Some(row.1.map_or(h.changed_at_ms, |at| at.max(h.changed_at_ms)));
                row.2 = row.2.max(h.changes);
                row.3 = row.3.max(h.downs);
            }
        }
    }
    let mut header = vec!["ENDPOINT"];
    header.extend(names.iter().map(String::as_str));
    header.extend(["FOR", "CHANGES", "DOWNS", ""]);
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let (states, changed, changes, downs) = &cells[key];
            let mut line = vec![key.clone()];
            line.extend(states.iter().cloned());
            line.push(changed.map_or_else(|| "-".to_owned(), since));
            line.push(changes.to_string());
            line.push(downs.to_string());
            line.push(agreement(states));
            line
        })
        .collect();
    table(&header, &rows);
    // Overrides: which servers hold each target's action (replication lag or a
    // partition shows); who made it and when may differ until they have exchanged.
    let mut held: BTreeMap<String, (Vec<bool>, String)> = BTreeMap::new();
    for (i, (_, status)) in statuses.iter().enumerate() {
        for entry in &status.overrides {
            let line = format!(
                "{}, in force for {}",
                describe_entry(entry),
                since(entry.at_ms)
            );
            let key = format!("{}|{:?}", entry.target, entry.action);
            let row = held
                .entry(key)
                .or_insert_with(|| (vec![false; statuses.len()], line));
            row.0[i] = true;
        }
    }
    if !held.is_empty() {
        println!();
    }
    for (on, line) in held.values() {
        let missing: Vec<&str> = names
            .iter()
            .zip(on)
            .filter(|(_, on)| !**on)
            .map(|(name, _)| name.as_str())
            .collect();
        if missing.is_empty() {
            println!("override: {line}");
        } else {
            println!("override: {line} — DISAGREE: not on {}", missing.join(", "));
        }
    }
    println!(
        "\n(--per-server for each server's records, votes, probes and history; --json for everything)"
    );
}

/// `dial: pool eu takes 10% of the answers it would get (ctl release eu ends it)`.
fn dial_line(pool: &str, percent: u8) -> String {
    format!(
        "dial: pool {} takes {percent}% of the answers it would get (failoverd ctl release {} ends it)",
        Escaped(&pool),
        Escaped(&pool)
    )
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
