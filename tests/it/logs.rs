//! Logs that cannot be forged or flooded, read from the real binary's stderr in both
//! log formats.

use std::net::SocketAddr;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use failoverd::testing::api::OverrideSync;
use failoverd::testing::config::Secret;
use failoverd::testing::health::overrides::{Action, Entry, Stamp, Target};
use failoverd::testing::health::peering::sign_peer;
use failoverd::testing::health::report::{SIGNATURE_HEADER, VANTAGE_HEADER};
use failoverd::testing::logs::needs_escape;

use crate::support::{BinaryServer, data_dir, http, log_field};

/// A newline and a forged log line, a colour escape and a NUL.
const FORGED: &str = "kernel upgrade\n2026-01-01T00:00:00Z  INFO forged \x1b[31mred\0 end";
/// The same as logged.
const SHOWN: &str = r"kernel upgrade\n2026-01-01T00:00:00Z  INFO forged \u{1b}[31mred\0 end";

const PEER_SECRET: &str = "peer-secret-s2-0123456789";

/// A server (vantage point s1) with a peer s2 whose secret the test holds; its admin
/// API on an ephemeral loopback port.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        r#"version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "{zones}"
files = ["example.test.zone"]
[pools.web]
endpoints = [{{ address = "192.0.2.1", name = "a" }}, {{ address = "192.0.2.2", name = "b" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "multivalue"
pools = ["web"]
[vantages.s1]
secret = "server-secret-s1-0123456789"
[vantages.s2]
secret = "{PEER_SECRET}"
role = "server"
[admin]
listen = "127.0.0.1:0"
"#,
        zones = data_dir().join("zones").display()
    );
    let path = dir.join("failoverd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &std::path::Path, format: &str) -> (BinaryServer, SocketAddr) {
    let server = BinaryServer::start(&[
        "--log-format",
        format,
        "--config",
        config.to_str().unwrap(),
        "--vantage",
        "s1",
    ]);
    let line = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .expect("admin API");
    let admin = log_field(&line, "admin")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("admin address in {line:?}"));
    (server, admin)
}

/// Every line the server writes from now until `until` is seen (deadline 20 s),
/// and those that follow within a short quiet period.
fn lines_until(server: &BinaryServer, until: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    let mut seen = false;
    loop {
        let wait = if seen {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match server.log.recv_timeout(wait) {
            Ok(line) => {
                seen |= line.contains(until);
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) if seen => return lines,
            Err(_) => panic!("no {until:?} in the log:\n{}", lines.join("\n")),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_forged_override_text_is_refused_and_what_is_logged_is_one_escaped_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    for format in ["text", "json"] {
        let (server, admin) = start(&config, format);
        // Through the API: control characters in a reason or `by` are refused outright
        // (400), so nothing of them is logged.
        let body = serde_json::json!({
            "target": {"endpoint": "web/a"},
            "action": "drain",
            "reason": FORGED,
            "by": FORGED,
        });
        let (status, text) = http(
            admin,
            "POST",
            "/v1/overrides",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 400, "{text}");
        // From a peer server: entries forged in their reason and in their origin are
        // refused, and the refusal names the forged origin — escaped, on one line.
        let now = now_ms();
        let entry = |reason: &str, origin: &str| Entry {
            target: Target::Endpoint("web/b".to_owned()),
            action: Some(Action::ForceDown),
            by: "peer".to_owned(),
            reason: reason.to_owned(),
            at_ms: now,
            expires_at_ms: None,
            stamp: Stamp {
                ms: now,
                counter: 0,
                origin: origin.to_owned(),
            },
        };
        let sync = OverrideSync {
            vantage: "s2".to_owned(),
            sent_at_ms: now,
            entries: vec![entry(FORGED, "s2"), entry("fine", FORGED)],
        };
        let body = serde_json::to_vec(&sync).unwrap();
        let signature = sign_peer(&Secret::new(PEER_SECRET), &body);
        let (status, text) = http(
            admin,
            "POST",
            "/v1/overrides/sync",
            &[
                ("content-type", "application/json"),
                (VANTAGE_HEADER, "s2"),
                (SIGNATURE_HEADER, &signature),
            ],
            &body,
        );
        assert_eq!(status, 200, "{text}");
        let lines = lines_until(&server, "override from a peer refused");
        let forged: Vec<&String> = lines.iter().filter(|l| l.contains("forged")).collect();
        eprintln!(
            "{format}: {}",
            forged
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(forged.len(), 1, "{format}:\n{}", lines.join("\n"));
        for line in &lines {
            assert!(
                !line.starts_with("2026-01-01T00:00:00Z"),
                "{format}: a forged line:\n{}",
                lines.join("\n")
            );
            assert!(!line.chars().any(needs_escape), "{format}: {line:?}");
        }
        let line = forged[0];
        if format == "json" {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let origin = event["fields"]["origin"].as_str().unwrap();
            assert!(origin.contains(SHOWN), "{line}");
        } else {
            assert!(line.contains(SHOWN), "{line}");
        }
        assert_eq!(
            crate::support::http(admin, "GET", "/v1/overrides", &[], b"")
                .1
                .matches("force_down")
                .count(),
            0,
            "nothing forged was adopted"
        );
    }
}

#[test]
fn refused_reports_log_a_burst_then_a_count_and_the_metric_counts_each() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start(&config(dir.path()), "text");
    let refuse = || {
        let (status, _) = http(
            admin,
            "POST",
            "/v1/reports",
            &[
                ("content-type", "application/json"),
                (VANTAGE_HEADER, "intruder"),
            ],
            b"{}",
        );
        assert_eq!(status, 401);
    };
    for _ in 0..50 {
        refuse();
    }
    let (_, metrics) = http(admin, "GET", "/metrics", &[], b"");
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("failoverd_reports_received_total{result=\"unknown_vantage\"}"))
        .expect("the counter");
    assert!(counted.ends_with(" 50"), "{counted}");
    // Five lines for the 50 refusals, then one line per 10 s that says how many
    // were left out in between.
    let started = Instant::now();
    let mut logged = Vec::new();
    let resumed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no line after the burst:\n{}",
            logged.join("\n")
        );
        match server.log.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("report rejected") => {
                if line.contains("more suppressed") {
                    break line;
                }
                logged.push(line);
            }
            Ok(_) => {}
            Err(_) => refuse(),
        }
    };
    assert_eq!(logged.len(), 5, "{}", logged.join("\n"));
    let suppressed: u64 = resumed
        .split(" (")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{resumed}"));
    // The 45 of the burst, and those sent while waiting for the next token.
    assert!(suppressed >= 45, "{resumed}");
    eprintln!(
        "FIGURES log_limit refused=50+ logged_in_burst={} next_line_after_ms={} {resumed}",
        logged.len(),
        started.elapsed().as_millis()
    );
}
