//! Traffic dials across a cluster of three servers replicating overrides (the
//! operator tests' cluster: failover eu → us, no health checks): each step of a
//! gradual failback, 0 → 10 → 50 → 100 %, is made on ONE server through the API and
//! reaches every server's answers in one snapshot swap (the time from the 200 to
//! each server's change is printed); over many real DNS queries each server's share
//! of pool eu is the dial ±2 points; a restarted server comes back with the dial from
//! its state file. A dial that expires restores the answers; a
//! dial signed with an agent's secret is refused (403); a bad PERCENT is a 400
//! naming the field, and nothing changes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use failoverd::testing::api::OverrideSync;
use failoverd::testing::config::Secret;
use failoverd::testing::health::overrides::{Action, Entry, Percent, Stamp, Target};
use failoverd::testing::health::peering::sign_peer;
use failoverd::testing::health::report::{SIGNATURE_HEADER, VANTAGE_HEADER};

use crate::operator::{A, B, C, Cluster, NAME, OPERATE, READ, active_overrides, post};
use crate::support::dns::sorted_addresses;
use crate::support::{http, http_with_headers, wait_until};

/// An agent vantage point every server knows (its secret may sign reports only).
const AGENT: &str = r#"
[vantages.a4]
secret = "secret-of-agent-a4-0123456789"
role = "agent"
"#;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn dial_body(percent: &str, expires: Option<&str>) -> String {
    let expires = expires.map_or_else(String::new, |e| format!(r#", "expires_in": "{e}""#));
    format!(
        r#"{{"target": {{"pool": "eu"}}, "action": {{"dial": {percent}}}, "reason": "failback"{expires}}}"#
    )
}

/// Pool eu's fraction of `n` answers from the server at `dns` (an answer is eu's
/// two endpoints or us's one, never a mix).
fn eu_share(dns: SocketAddr, n: u32) -> f64 {
    let mut eu = 0u32;
    for _ in 0..n {
        let got = sorted_addresses(dns, NAME);
        if got == [A, B] {
            eu += 1;
        } else {
            assert_eq!(got, [C], "an answer holds one pool");
        }
    }
    f64::from(eu) / f64::from(n)
}

/// The server's explanation of the record (what its published answers hold).
fn explain(admin: SocketAddr) -> serde_json::Value {
    let (status, body) = http(
        admin,
        "GET",
        &format!("/v1/explain?name={NAME}"),
        &[("authorization", &format!("Bearer {READ}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["records"][0].clone()
}

/// Pool eu's computed share (1 when explain lists no shares: no dial applies).
fn computed_eu(explained: &serde_json::Value) -> f64 {
    explained["shares"]
        .as_array()
        .and_then(|s| s.iter().find(|p| p["pool"] == "eu"))
        .map_or(1.0, |p| p["share"].as_f64().unwrap())
}

/// The snapshot generation the server answers from.
fn generation(admin: SocketAddr) -> u64 {
    let (status, body) = http(
        admin,
        "GET",
        "/v1/health",
        &[("authorization", &format!("Bearer {READ}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["generation"]
        .as_u64()
        .unwrap()
}

fn metric(admin: SocketAddr, line_start: &str) -> Option<f64> {
    let (_, body) = http(
        admin,
        "GET",
        "/metrics",
        &[("authorization", &format!("Bearer {READ}"))],
        b"",
    );
    body.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn dial_steps_reach_every_server_in_one_swap_and_hold_their_shares() {
    let mut cluster = Cluster::start_with(AGENT);
    cluster.expect_everywhere(&[A, B]);
    let mut table = vec![format!(
        "{:>5} {:>6} {:>12} {:>9} {:>9} {:>11}",
        "dial", "server", "ms after 200", "swaps", "computed", "measured eu"
    )];
    for step in [0u8, 10, 50, 100] {
        let before: Vec<u64> = cluster.admins.iter().map(|&a| generation(a)).collect();
        let (status, text) = post(
            cluster.admins[0],
            "/v1/overrides",
            Some(OPERATE),
            &dial_body(&step.to_string(), None),
        );
        let made = Instant::now();
        assert_eq!(status, 200, "dial {step}: {text}");
        let want = f64::from(step) / 100.0;
        // Each server's published answers take the dial: the first server before its
        // 200, its peers from the first one's push.
        let mut reached = [0u128; 3];
        for (i, &admin) in cluster.admins.iter().enumerate() {
            assert!(
                wait_until(Duration::from_secs(5), || {
                    (computed_eu(&explain(admin)) - want).abs() < 1e-9
                }),
                "server {} never took dial {step}: {:#}",
                i + 1,
                explain(admin)
            );
            reached[i] = made.elapsed().as_millis();
        }
        let n = if step == 0 || step == 100 {
            300
        } else {
            10_000
        };
        for (i, &admin) in cluster.admins.iter().enumerate() {
            let swaps = generation(admin) - before[i];
            assert!(swaps >= 1, "server {} swapped no snapshot", i + 1);
            let measured = eu_share(cluster.dns(i + 1), n);
            table.push(format!(
                "{:>4}% {:>6} {:>12} {:>9} {:>8.1}% {:>10.2}%",
                step,
                format!("v{}", i + 1),
                reached[i],
                swaps,
                want * 100.0,
                measured * 100.0
            ));
            assert!(
                (measured - want).abs() <= 0.02,
                "dial {step} on server {}: measured {measured} over {n} answers",
                i + 1
            );
        }
        // The state file has it: a restarted server answers with the dial at once.
        if step == 50 {
            cluster.stop(2);
            cluster.restart(2);
            assert_eq!(
                computed_eu(&explain(cluster.admins[1])),
                0.5,
                "after a restart"
            );
            let measured = eu_share(cluster.dns(2), 2_000);
            assert!(
                (measured - 0.5).abs() <= 0.04,
                "after a restart: {measured}"
            );
        }
        // ctl status shows the dial on every server, explain says what it does, and
        // the metric has it.
        if step == 10 {
            let (ok, out) = cluster.ctl(&["status"]);
            assert!(ok, "{out}");
            let row = out
                .lines()
                .find(|l| l.starts_with("eu "))
                .unwrap_or_else(|| panic!("no dialled pool row: {out}"));
            assert_eq!(row.matches("10%").count(), 3, "{out}");
            assert!(!row.contains("DISAGREE"), "{out}");
            assert!(out.contains("override: dial 10% pool eu"), "{out}");
            let (ok, out) = cluster.ctl(&["explain", NAME]);
            assert!(ok, "{out}");
            assert!(
                out.contains("dial: eu 10% (dial 10%), us 90%; a dialled pool keeps its dial of what it would get; the rest goes to the next pool in order"),
                "{out}"
            );
            assert!(
                out.contains("pool eu is dialled to 10% by an operator"),
                "{out}"
            );
            assert_eq!(
                metric(
                    cluster.admins[2],
                    r#"failoverd_pool_dial_ratio{pool="eu"} "#
                ),
                Some(0.1)
            );
            assert_eq!(
                metric(
                    cluster.admins[2],
                    r#"failoverd_pool_dial_ratio{pool="us"} "#
                ),
                Some(1.0)
            );
        }
    }
    println!(
        "FIGURES dial steps made on v1 through the API (shares over 10,000 queries per server at 10 and 50 %, 300 at 0 and 100 %):\n{}",
        table.join("\n")
    );

    // `ctl dial --clear` ends it everywhere; nothing in force after.
    let (ok, out) = cluster.ctl(&["dial", "eu", "--clear", "--reason", "failback done"]);
    assert!(ok, "{out}");
    for &admin in &cluster.admins {
        assert!(wait_until(Duration::from_secs(3), || active_overrides(
            admin
        ) == 0));
    }
    cluster.expect_everywhere(&[A, B]);
}

#[test]
fn an_expiring_dial_restores_and_bad_or_unauthorized_dials_change_nothing() {
    let cluster = Cluster::start_with(AGENT);
    cluster.expect_everywhere(&[A, B]);
    let admin = cluster.admins[0];

    // Bad PERCENT: 400 naming the field; nothing changes anywhere.
    for bad in ["-1", "101", r#""abc""#] {
        let (status, text) = post(admin, "/v1/overrides", Some(OPERATE), &dial_body(bad, None));
        assert_eq!(status, 400, "{bad}: {text}");
        assert!(
            text.contains("action.dial") && text.contains("from 0 to 100"),
            "{bad}: {text}"
        );
    }
    for bad in ["-1", "101", "abc"] {
        let (ok, out) = cluster.ctl(&["dial", "eu", bad, "--reason", "x"]);
        assert!(!ok, "{out}");
        assert!(
            out.contains("PERCENT") && out.contains("from 0 to 100"),
            "{out}"
        );
    }
    // An agent's secret, valid signature: 403, as for every override exchange.
    let entry = Entry {
        target: Target::Pool("eu".into()),
        action: Some(Action::Dial(Percent::new(0).unwrap())),
        by: "agent".into(),
        reason: "forged".into(),
        at_ms: now_ms(),
        expires_at_ms: None,
        stamp: Stamp {
            ms: now_ms(),
            counter: 0,
            origin: "a4".into(),
        },
    };
    let body = serde_json::to_vec(&OverrideSync {
        vantage: "a4".into(),
        sent_at_ms: now_ms(),
        entries: vec![entry],
    })
    .unwrap();
    let signature = sign_peer(&Secret::new("secret-of-agent-a4-0123456789"), &body);
    let (status, text, _) = http_with_headers(
        admin,
        "POST",
        "/v1/overrides/sync",
        &[
            (VANTAGE_HEADER, "a4"),
            (SIGNATURE_HEADER, &signature),
            ("content-type", "application/json"),
        ],
        &body,
    );
    assert_eq!(status, 403, "{text}");
    for &admin in &cluster.admins {
        assert_eq!(active_overrides(admin), 0);
    }
    cluster.expect_everywhere(&[A, B]);

    // Dial 0 for 2 s through ctl: every server answers us alone, then eu again.
    let (ok, out) = cluster.ctl(&[
        "dial",
        "eu",
        "0",
        "--reason",
        "failback rehearsal",
        "--expires",
        "2s",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": ok dial 0% pool eu").count(), 3, "{out}");
    for n in 1..=3 {
        assert_eq!(eu_share(cluster.dns(n), 50), 0.0, "server {n}");
    }
    let made = Instant::now();
    cluster.expect_everywhere(&[A, B]);
    println!(
        "FIGURES dial 0% --expires 2s: every server answers eu again {} ms after ctl returned",
        made.elapsed().as_millis()
    );
    for &admin in &cluster.admins {
        assert_eq!(active_overrides(admin), 0);
    }
}

#[test]
fn a_dial_drill_steps_the_dial_and_measures_the_shares_through_dns() {
    let cluster = Cluster::start_with(AGENT);
    cluster.expect_everywhere(&[A, B]);
    let out = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(crate::support::binary());
    command.args(["drill", NAME, "--mode", "dial", "--pool", "eu"]);
    for url in cluster.urls() {
        command.args(["--server", &url]);
    }
    for n in 1..=3 {
        command.args(["--dns", &cluster.dns(n).to_string()]);
    }
    command
        .arg("--token-file")
        .arg(cluster.token_file())
        .args(["--queries", "4000", "--tolerance", "0.03", "--out"])
        .arg(out.path())
        .env_remove("FAILOVERD_TOKEN");
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let steps = report["run"]["steps"].as_array().unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| s["percent"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 10, 50, 100]
    );
    for step in steps {
        let want = step["percent"].as_f64().unwrap() / 100.0;
        assert_eq!(step["expected"].as_f64(), Some(want), "{step:#}");
        assert_eq!(step["servers"].as_array().unwrap().len(), 3);
    }
    assert_eq!(report["figures"]["within"], true, "{report:#}");
    println!(
        "FIGURES dial drill (4,000 queries per nameserver per step), worst deviation {:.2} points:\n{}",
        report["figures"]["worst_points"].as_f64().unwrap(),
        std::fs::read_to_string(out.path().join("report.md")).unwrap()
    );
    // The dial is released at the end: nothing in force, eu answers again.
    for &admin in &cluster.admins {
        assert_eq!(active_overrides(admin), 0);
    }
    cluster.expect_everywhere(&[A, B]);
}
