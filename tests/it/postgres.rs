//! Database-aware DR with real PostgreSQL on loopback: a primary and a streaming
//! replica (`pg_basebackup -R`), failoverd's `postgres` check logging in with a
//! password from a file, a follow-the-primary record and a lag-gated failover record.
//!
//! - promotion (old primary stopped) → every server answers the new primary, timed;
//! - promotion while the old primary runs (split brain) → never both, the conflict in
//!   events, metrics and status; `on_conflict = "none"` → NODATA;
//! - replay paused while the primary writes → the lag gate holds failover to the
//!   replica (explain says why; a manual failover overrides it) and releases once
//!   replay resumes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::dns::sorted_addresses;
use crate::support::postgres::{PASSWORD, PgBin, PgNode, free_port};
use crate::support::{SERVER_HEAD, TestServer, binary, http, require, wait_until};

const INTERVAL_MS: u64 = 250;
/// Generous for a loaded 2-core machine (a login is a TCP connect, SCRAM and a query).
const TIMEOUT_MS: u64 = 240;

/// The check keys every test uses: fast probes, default rise/fall (2/2).
fn check(name: &str, port: u16, password_file: &Path, keys: &str) -> String {
    format!(
        r#"
[checks.{name}]
type = "postgres"
port = {port}
user = "failoverd"
password_file = "{}"
interval = "{INTERVAL_MS}ms"
timeout = "{TIMEOUT_MS}ms"
{keys}
"#,
        password_file.display()
    )
}

fn primary_config(port: u16, a: Ipv4Addr, b: Ipv4Addr, pw: &Path, on_conflict: &str) -> String {
    format!(
        r#"{SERVER_HEAD}
{}
[pools.db]
check = "pg-primary"
endpoints = [{{ address = "{a}", name = "a" }}, {{ address = "{b}", name = "b" }}]
[[records]]
name = "db.example.test"
type = "A"
ttl = 1
policy = "primary"
pools = ["db"]
on_conflict = "{on_conflict}"
"#,
        check("pg-primary", port, pw, "role = \"primary\"")
    )
}

fn start(config: &str) -> (TestServer, SocketAddr) {
    TestServer::with_admin(config)
}

fn status(admin: SocketAddr) -> serde_json::Value {
    let (code, body) = http(admin, "GET", "/v1/status", &[], b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn metrics(admin: SocketAddr) -> String {
    http(admin, "GET", "/metrics", &[], b"").1
}

fn events(admin: SocketAddr) -> Vec<serde_json::Value> {
    let (code, body) = http(admin, "GET", "/v1/events?since=0", &[], b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn record_outcome(admin: SocketAddr, name: &str) -> String {
    let status = status(admin);
    status["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["answers"][0]["outcome"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn local_reason(admin: SocketAddr, endpoint: &str) -> String {
    let status = status(admin);
    status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == endpoint)
        .and_then(|e| e["local"]["reason"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// A primary on `a` and its replica on `b`, both on `port`, and the password file.
struct Pair {
    primary: PgNode,
    replica: PgNode,
    port: u16,
    password_file: tempfile::NamedTempFile,
}

fn pair(bin: &PgBin, a: Ipv4Addr, b: Ipv4Addr) -> Pair {
    let port = free_port(&[a, b]);
    let primary = PgNode::primary(bin, SocketAddr::new(a.into(), port));
    let replica = PgNode::replica_of(&primary, SocketAddr::new(b.into(), port));
    let mut password_file = tempfile::NamedTempFile::new().unwrap();
    use std::io::Write;
    writeln!(password_file, "{PASSWORD}").unwrap();
    Pair {
        primary,
        replica,
        port,
        password_file,
    }
}

fn answers_within(servers: &[&TestServer], name: &str, want: &[&str], within: Duration) -> bool {
    wait_until(within, || {
        servers
            .iter()
            .all(|s| sorted_addresses(s.addr, name) == want)
    })
}

#[test]
fn postgres_promotion_moves_every_server_to_the_new_primary() {
    let bin = require!(PgBin::find());
    let (a, b) = (Ipv4Addr::new(127, 0, 14, 1), Ipv4Addr::new(127, 0, 14, 2));
    let mut pg = pair(&bin, a, b);
    let mut config = primary_config(pg.port, a, b, pg.password_file.path(), "hold");
    // A check with a wrong password, on a pool no record uses: its reason names the
    // failure, never the password.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "wrong-Xy7-secret\n").unwrap();
    config.push_str(&check("pg-wrong", pg.port, wrong.path(), ""));
    config.push_str(&format!(
        "[pools.wrong]\ncheck = \"pg-wrong\"\nendpoints = [{{ address = \"{a}\", name = \"a\" }}]\n"
    ));
    let (s1, admin1) = start(&config);
    let (s2, _admin2) = start(&config);
    let (a_text, b_text) = (a.to_string(), b.to_string());
    assert!(
        answers_within(
            &[&s1, &s2],
            "db.example.test",
            &[&a_text],
            Duration::from_secs(15)
        ),
        "the primary is not answered: {}",
        status(admin1)
    );
    // The replica's first probes may still be under way (an endpoint only assumed up
    // claims nothing, so the answer does not wait for them).
    assert!(
        wait_until(Duration::from_secs(10), || {
            local_reason(admin1, "db/a") == "primary"
                && local_reason(admin1, "db/b") == "in recovery, expected primary"
        }),
        "{}",
        status(admin1)
    );
    assert!(wait_until(Duration::from_secs(10), || local_reason(
        admin1, "wrong/a"
    )
    .contains("password authentication failed")));
    let status_text = status(admin1).to_string();
    assert!(!status_text.contains("wrong-Xy7-secret") && !status_text.contains(PASSWORD));

    // The old primary fails; its replica is promoted.
    pg.primary.kill();
    let promoted = Instant::now();
    pg.replica.promote();
    let promote_ms = promoted.elapsed().as_millis();
    let mut seen = [None::<u128>; 2];
    let deadline = promoted + Duration::from_secs(20);
    while seen.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, server) in [&s1, &s2].into_iter().enumerate() {
            let answer = sorted_addresses(server.addr, "db.example.test");
            assert!(answer.len() <= 1, "two primaries answered: {answer:?}");
            if seen[i].is_none() && answer == [b_text.as_str()] {
                seen[i] = Some(promoted.elapsed().as_millis());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (Some(first), Some(second)) = (seen[0], seen[1]) else {
        panic!(
            "not every server answers the new primary: {seen:?}\n{}\n{}",
            status(admin1),
            pg.replica.log()
        );
    };
    eprintln!(
        "postgres promotion → new primary answered: server 1 {first} ms, server 2 {second} ms, every server {} ms (pg_ctl promote took {promote_ms} ms; check interval {INTERVAL_MS} ms, rise 2, fall 2)",
        first.max(second)
    );
    assert_eq!(local_reason(admin1, "db/b"), "primary");
    assert!(
        first.max(second) < 5000,
        "promotion → answer took {} ms",
        first.max(second)
    );
    let agreed: Vec<_> = events(admin1)
        .into_iter()
        .filter(|e| e["kind"] == "primary")
        .map(|e| e["fields"]["to"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(agreed, ["db/a", "db/b"], "primary events");
}

#[test]
fn postgres_split_brain_never_answers_both() {
    let bin = require!(PgBin::find());
    let (a, b) = (Ipv4Addr::new(127, 0, 14, 3), Ipv4Addr::new(127, 0, 14, 4));
    let mut pg = pair(&bin, a, b);
    let state = tempfile::tempdir().unwrap();
    let with_state = |config: String| {
        format!(
            "{config}[health]\nstate_file = \"{}\"\n",
            state.path().join("state.json").display()
        )
    };
    let config = with_state(primary_config(
        pg.port,
        a,
        b,
        pg.password_file.path(),
        "hold",
    ));
    let (server, admin) = start(&config);
    let (a_text, b_text) = (a.to_string(), b.to_string());
    assert!(answers_within(
        &[&server],
        "db.example.test",
        &[&a_text],
        Duration::from_secs(15)
    ));
    // Failed fencing: the replica is promoted while the old primary still runs.
    let started = Instant::now();
    pg.replica.promote();
    let mut conflict_at = None;
    while started.elapsed() < Duration::from_secs(20) {
        let answer = sorted_addresses(server.addr, "db.example.test");
        assert_eq!(
            answer,
            [a_text.as_str()],
            "hold answers the last agreed primary"
        );
        if conflict_at.is_none() && record_outcome(admin, "db.example.test.") == "conflict" {
            conflict_at = Some(started.elapsed());
        }
        // Keep watching the answers a while after the conflict shows.
        if conflict_at.is_some_and(|at| started.elapsed() > at + Duration::from_secs(2)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let conflict_at = conflict_at.expect("the conflict shows in status");
    eprintln!(
        "postgres split brain: conflict seen {} ms after the promotion (check interval {INTERVAL_MS} ms); answers held on the old primary",
        conflict_at.as_millis()
    );
    assert!(
        metrics(admin).contains(
            "failoverd_record_primary_conflict{record=\"db.example.test.\",type=\"A\"} 1"
        ),
        "{}",
        metrics(admin)
    );
    let text = metrics(admin);
    assert!(
        text.contains("failoverd_primary_conflicts_total 1"),
        "{}",
        text.lines()
            .filter(|l| l.contains("primary"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let conflict = events(admin)
        .into_iter()
        .find(|e| e["kind"] == "primary_conflict")
        .expect("a primary_conflict event");
    assert_eq!(conflict["level"], "error");
    assert_eq!(conflict["fields"]["claimants"], "db/a,db/b");
    assert_eq!(conflict["fields"]["held"], "db/a");
    let (code, explained) = http(
        admin,
        "GET",
        "/v1/explain?name=db.example.test&type=A",
        &[],
        b"",
    );
    assert_eq!(code, 200);
    assert!(explained.contains("split brain"), "{explained}");

    // A restart during the split brain holds the same primary: the last agreed one
    // is in the state file, and both nodes claim from the first probe on.
    drop(server);
    let (server, admin) = start(&config);
    let restarted = Instant::now();
    while restarted.elapsed() < Duration::from_secs(2) {
        let answer = sorted_addresses(server.addr, "db.example.test");
        assert!(
            answer.is_empty() || answer == [a_text.as_str()],
            "after a restart: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(record_outcome(admin, "db.example.test."), "conflict");
    assert_eq!(
        sorted_addresses(server.addr, "db.example.test"),
        [a_text.as_str()],
        "the saved agreed primary is held"
    );
    // A bad reload is refused with its key path; the running config stays.
    let bad = primary_config(pg.port, a, b, pg.password_file.path(), "hold")
        .replace("role = \"primary\"", "role = \"leader\"");
    let refused = server.reload(&bad).expect_err("a bad role is refused");
    assert!(
        refused.errors.iter().any(|e| e
            .path
            .as_ref()
            .is_some_and(|p| p.to_string() == "checks.pg-primary.role")),
        "{refused}"
    );
    assert_eq!(
        sorted_addresses(server.addr, "db.example.test"),
        [a_text.as_str()]
    );
    // Fail closed instead: NODATA for the name while both claim.
    server
        .reload(&primary_config(
            pg.port,
            a,
            b,
            pg.password_file.path(),
            "none",
        ))
        .unwrap();
    assert!(answers_within(
        &[&server],
        "db.example.test",
        &[],
        Duration::from_secs(5)
    ));
    // Fencing done late: the old primary stops; the promoted one is agreed.
    pg.primary.kill();
    assert!(answers_within(
        &[&server],
        "db.example.test",
        &[&b_text],
        Duration::from_secs(10)
    ));
    assert!(
        metrics(admin).contains(
            "failoverd_record_primary_conflict{record=\"db.example.test.\",type=\"A\"} 0"
        )
    );
}

#[test]
fn postgres_lag_gate_holds_failover_until_replay_catches_up() {
    let bin = require!(PgBin::find());
    let (a, b) = (Ipv4Addr::new(127, 0, 14, 5), Ipv4Addr::new(127, 0, 14, 6));
    let mut pg = pair(&bin, a, b);
    let pw = pg.password_file.path().to_owned();
    let config = format!(
        r#"{SERVER_HEAD}
{}{}
[pools.east]
check = "pg-primary"
endpoints = [{{ address = "{a}", name = "p" }}]
[pools.west]
endpoints = [{{ address = "{b}", name = "r" }}]
[pools.west-db]
check = "pg-lag"
endpoints = [{{ address = "{b}", name = "r" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 1
policy = "failover"
pools = ["east", "west"]
gates = {{ west = "west-db" }}
"#,
        check("pg-primary", pg.port, &pw, "role = \"primary\""),
        check("pg-lag", pg.port, &pw, "role = \"any\"\nmax_lag = \"2s\"")
    );
    let (server, admin) = start(&config);
    let (a_text, b_text) = (a.to_string(), b.to_string());
    const NAME: &str = "app.example.test";
    assert!(answers_within(
        &[&server],
        NAME,
        &[&a_text],
        Duration::from_secs(15)
    ));
    // A commit the replica has replayed (so it has a replay timestamp), then replay
    // paused while the primary keeps writing.
    pg.primary.sql("INSERT INTO ticks (n) VALUES (0)");
    assert!(wait_until(Duration::from_secs(10), || {
        pg.replica.try_sql("SELECT count(*) FROM ticks").as_deref() == Some("1")
    }));
    pg.replica.sql("SELECT pg_wal_replay_pause()");
    let held = |admin| {
        let status = status(admin);
        status["records"][0]["answers"][0]["held_by_gate"] == serde_json::json!(["west"])
    };
    let mut n = 1;
    let paused = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || {
            pg.primary
                .sql(&format!("INSERT INTO ticks (n) VALUES ({n})"));
            n += 1;
            held(admin)
        }),
        "the gate never closed: {}",
        local_reason(admin, "west-db/r")
    );
    eprintln!(
        "postgres lag gate: closed {} ms after replay was paused (max_lag 2 s, check interval {INTERVAL_MS} ms); reason {:?}",
        paused.elapsed().as_millis(),
        local_reason(admin, "west-db/r")
    );
    assert!(
        metrics(admin)
            .contains("failoverd_record_gate_held{record=\"app.example.test.\",type=\"A\"} 1")
    );
    // The primary region fails: traffic must not move to the lagging standby.
    pg.primary.kill();
    assert!(wait_until(Duration::from_secs(10), || {
        record_outcome(admin, "app.example.test.") == "fail-open"
    }));
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            sorted_addresses(server.addr, NAME),
            [a_text.as_str()],
            "traffic moved to a standby behind max_lag"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let explained = ctl(admin, &["explain", NAME]);
    eprintln!("postgres lag gate: ctl explain while held:\n{explained}");
    assert!(
        explained.contains("lag gate west-db of pool west is closed")
            && explained.contains("replica, lag")
            && explained.contains("> 2 s"),
        "{explained}"
    );
    // An operator accepts the data loss: a manual failover overrides the gate.
    ctl(
        admin,
        &["failover", NAME, "--to", "west", "--reason", "accept RPO"],
    );
    assert!(answers_within(
        &[&server],
        NAME,
        &[&b_text],
        Duration::from_secs(5)
    ));
    let explained = ctl(admin, &["explain", NAME]);
    assert!(explained.contains("overrides the gate"), "{explained}");
    ctl(admin, &["release", NAME, "--reason", "back to the gate"]);
    assert!(answers_within(
        &[&server],
        NAME,
        &[&a_text],
        Duration::from_secs(5)
    ));
    // Replay resumes and catches up: the gate opens, traffic moves.
    let resumed = Instant::now();
    pg.replica.sql("SELECT pg_wal_replay_resume()");
    assert!(
        answers_within(&[&server], NAME, &[&b_text], Duration::from_secs(15)),
        "the gate did not open: {}",
        local_reason(admin, "west-db/r")
    );
    eprintln!(
        "postgres lag gate: replay resumed → standby answered in {} ms (check interval {INTERVAL_MS} ms, rise 2)",
        resumed.elapsed().as_millis()
    );
    assert!(
        wait_until(Duration::from_secs(5), || local_reason(admin, "west-db/r")
            .starts_with("replica, caught up")),
        "{}",
        local_reason(admin, "west-db/r")
    );
}

/// The promote command returns 2 s after the promotion took effect (as `patronictl
/// failover` can): the servers are polled while it runs, so the drill times the
/// switch, not the command, and says when the command returned.
#[test]
fn postgres_promote_drill_reports_when_every_server_answers_the_new_primary() {
    let bin = require!(PgBin::find());
    let (a, b) = (Ipv4Addr::new(127, 0, 14, 7), Ipv4Addr::new(127, 0, 14, 8));
    let mut pg = pair(&bin, a, b);
    let config = primary_config(pg.port, a, b, pg.password_file.path(), "hold");
    let (s1, admin1) = start(&config);
    let (s2, _) = start(&config);
    let a_text = a.to_string();
    assert!(answers_within(
        &[&s1, &s2],
        "db.example.test",
        &[&a_text],
        Duration::from_secs(15)
    ));
    // The operator's promotion: fence (stop) the old primary, promote the replica;
    // the command notes when the promotion was done (wall clock, ms) and returns 2 s
    // later.
    let out = tempfile::tempdir().unwrap();
    let done_file = out.path().join("promoted-at-ms");
    let promote = format!(
        "{} && {} && date +%s%3N > {} && sleep 2",
        pg.primary.pg_ctl_shell("-m immediate -w stop"),
        pg.replica.pg_ctl_shell("-w -t 60 promote"),
        done_file.display()
    );
    let output = std::process::Command::new(binary())
        .args([
            "drill",
            "db.example.test",
            "--mode",
            "promote",
            "--endpoint",
            "db/b",
        ])
        .args(["--promote", &promote])
        .args(["--server", &format!("http://{admin1}")])
        .args(["--dns", &s1.addr.to_string(), "--dns", &s2.addr.to_string()])
        .args(["--interval", "50ms", "--timeout", "20s"])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("failoverd drill");
    pg.primary.stopped();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let all = report["figures"]["all_servers_ms"]
        .as_u64()
        .expect("every server");
    let first = report["figures"]["first_server_ms"].as_u64().unwrap();
    let returned = report["figures"]["command_returned_ms"]
        .as_u64()
        .expect("when the command returned");
    // When the promotion was done, from the command's start (the drill's clock).
    let command_started_unix_ms = report["run"]["started_unix_ms"].as_u64().unwrap()
        + report["run"]["broken_at_ms"].as_u64().unwrap();
    let promoted = std::fs::read_to_string(&done_file)
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        .saturating_sub(command_started_unix_ms);
    eprintln!(
        "postgres promote drill: promote command → promoted (pg_ctl returned) {promoted} ms, first server {first} ms, every server (2) {all} ms, the command returned at {returned} ms (… && sleep 2; check interval {INTERVAL_MS} ms, poll 50 ms)"
    );
    assert!(returned >= 2000, "{report}");
    // The switch is timed, not the command's return: every server within a second of
    // the promotion (probes every 250 ms, rise 2), long before the command returned.
    // On a quiet machine the promotion takes ~0.1 s, so that is < 1 s from the start.
    assert!(
        all < promoted + 1000 && all + 1500 < returned,
        "the switch, not the command's return, is timed (promoted at {promoted} ms): {report}"
    );
    assert!(text.contains("| every server |"), "{text}");
    assert!(text.contains("The command returned after"), "{text}");
    assert!(out.path().join("timeline.svg").exists());
}

/// TLS through rustls: `verify-full` with the CA passes (and without it names the
/// unknown issuer), `require` accepts any certificate, `disable` speaks plain TCP.
#[test]
fn postgres_checks_speak_tls_and_verify_the_server() {
    let bin = require!(PgBin::find());
    let a = Ipv4Addr::new(127, 0, 14, 9);
    let port = free_port(&[a]);
    let pki = crate::support::backend::TestPki::new();
    let leaf = pki.leaf("db.example.test", false);
    let _pg = PgNode::primary_with_tls(
        &bin,
        SocketAddr::new(a.into(), port),
        Some((&leaf.pem.0, &leaf.pem.1)),
    );
    let mut pw = tempfile::NamedTempFile::new().unwrap();
    use std::io::Write;
    writeln!(pw, "{PASSWORD}").unwrap();
    let mut config = String::from(SERVER_HEAD);
    let ca = pki.ca_file.display().to_string();
    for (name, keys) in [
        (
            "verified",
            format!(
                "role = \"primary\"\nsslmode = \"verify-full\"\nhost = \"db.example.test\"\nca_file = \"{ca}\""
            ),
        ),
        (
            "unknown",
            "role = \"primary\"\nsslmode = \"verify-full\"\nhost = \"db.example.test\"".to_owned(),
        ),
        (
            "required",
            "role = \"primary\"\nsslmode = \"require\"".to_owned(),
        ),
        ("plain", "role = \"primary\"".to_owned()),
    ] {
        config.push_str(&check(name, port, pw.path(), &keys));
        config.push_str(&format!(
            "[pools.{name}]\ncheck = \"{name}\"\nendpoints = [{{ address = \"{a}\", name = \"db\" }}]\n"
        ));
    }
    let (_server, admin) = start(&config);
    let want = [
        ("verified/db", "primary"),
        ("unknown/db", "certificate issuer unknown"),
        ("required/db", "primary"),
        ("plain/db", "primary"),
    ];
    let all = wait_until(Duration::from_secs(15), || {
        want.iter()
            .all(|(endpoint, reason)| local_reason(admin, endpoint) == *reason)
    });
    let got: Vec<(String, String)> = want
        .iter()
        .map(|(e, _)| (e.to_string(), local_reason(admin, e)))
        .collect();
    assert!(all, "{got:?}");
}

/// Runs `failoverd ctl --server ADMIN ARGS` (no tokens: loopback may change); its
/// output, which must be a success.
fn ctl(admin: SocketAddr, args: &[&str]) -> String {
    let output = std::process::Command::new(binary())
        .arg("ctl")
        .env_remove("FAILOVERD_TOKEN")
        .args(["--server", &format!("http://{admin}")])
        .args(args)
        .output()
        .expect("failoverd ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "ctl {args:?}: {text}");
    text
}
