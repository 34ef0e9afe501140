//! `failoverd ctl` says what happened, through the real binary against real servers:
//! a release that ends nothing fails and names what is in force; a change that
//! would leave a record with no healthy pool (or break a `[[safety]]` rule) is
//! refused unless `--allow-empty`; patterns and regions change every match or none;
//! `ctl stats` and `ctl zone-read` show the server's counters and the zone as served;
//! and the messages of refusals, unreachable servers and bare `HOST:PORT` servers.

use std::net::SocketAddr;
use std::time::Duration;

use failoverd::testing::service::StartOptions;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::dns::{ask, expect_addresses, query, rcode, sorted_addresses, tcp};
use crate::support::{SERVER_HEAD, TestServer, ctl_with, http, run_binary_stdout};

const EU1: &str = "192.0.2.10";
const EU2: &str = "192.0.2.11";
const US1: &str = "198.51.100.10";
const SPARE: &str = "203.0.113.20";
const SOLO: &str = "203.0.113.30";

/// No health checks (operators decide); www fails over eu → us → spare; api eu → us;
/// solo has one endpoint; a rule keeps one of the web regions in service.
fn config(extra: &str) -> String {
    format!(
        r#"{SERVER_HEAD}
[regions.eu]
networks = ["192.0.2.0/24"]
[regions.us]
networks = ["198.51.100.0/24"]
[pools.web-eu]
region = "eu"
endpoints = [{{ address = "{EU1}", name = "eu-1" }}, {{ address = "{EU2}", name = "eu-2" }}]
[pools.web-us]
region = "us"
endpoints = [{{ address = "{US1}", name = "us-1" }}]
[pools.spare]
endpoints = [{{ address = "{SPARE}", name = "s" }}]
[pools.solo]
endpoints = [{{ address = "{SOLO}", name = "x" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 5
policy = "failover"
pools = ["web-eu", "web-us", "spare"]
[[records]]
name = "api.example.test"
type = "A"
ttl = 5
policy = "failover"
pools = ["web-eu", "web-us"]
[[records]]
name = "solo.example.test"
type = "A"
ttl = 5
policy = "failover"
pools = ["solo"]
[[safety]]
name = "a web region"
pools = ["web-eu", "web-us"]
min_in_service = 1
{extra}
"#
    )
}

struct Server {
    server: TestServer,
    admin: SocketAddr,
}

impl Server {
    fn start(config: &str) -> Self {
        let server = TestServer::start_with(
            config,
            StartOptions {
                admin_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..StartOptions::default()
            },
        );
        let admin = server.service().admin_address().unwrap();
        Self { server, admin }
    }

    fn url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// `failoverd ctl --server URL ARGS…`: (exit success, stdout and stderr).
    fn ctl(&self, args: &[&str]) -> (bool, String) {
        ctl_with(&[self.url()], None, args)
    }

    fn dns(&self) -> SocketAddr {
        self.server.addr
    }

    fn events(&self) -> String {
        http(self.admin, "GET", "/v1/events", &[], b"").1
    }
}

#[test]
fn a_release_that_ends_nothing_fails_naming_what_is_in_force() {
    let s = Server::start(&config(""));
    let (ok, out) = s.ctl(&[
        "failover",
        "api.example.test",
        "--to",
        "web-us",
        "--reason",
        "dr",
    ]);
    assert!(ok, "{out}");
    expect_addresses(s.dns(), "api.example.test", &[US1], Duration::from_secs(2));
    // A typed release of an untyped failover: nothing ends; what is in force is named.
    let (ok, out) = s.ctl(&[
        "release",
        "api.example.test",
        "--type",
        "a",
        "--reason",
        "x",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAILED 404 Not Found: record api.example.test. A has nothing in force; in force: failover to web-us on record api.example.test. (untyped: it covers every type of the name; release it without --type)"),
        "{out}"
    );
    assert!(
        out.contains("nothing changed: no server confirmed"),
        "{out}"
    );
    assert_eq!(sorted_addresses(s.dns(), "api.example.test"), [US1]);
    // A typo: the target is unknown.
    let (ok, out) = s.ctl(&["release", "apl.example.test"]);
    assert!(!ok);
    assert!(
        out.contains("404 Not Found: no record apl.example.test. in the configuration"),
        "{out}"
    );
    // An endpoint with nothing of its own, under a drained pool.
    let (ok, out) = s.ctl(&["drain", "spare", "--reason", "maintenance"]);
    assert!(ok, "{out}");
    let (ok, out) = s.ctl(&["undrain", "spare/s"]);
    assert!(!ok);
    assert!(
        out.contains("endpoint spare/s has nothing in force; in force: drain on pool spare (the whole pool: undrain spare)"),
        "{out}"
    );
    // Over HTTP the same: 404, and nothing logged.
    let (status, text) = http(
        s.admin,
        "POST",
        "/v1/overrides/release",
        &[("content-type", "application/json")],
        br#"{"target": {"endpoint": "web-eu/eu-1"}}"#,
    );
    assert_eq!(status, 404, "{text}");
    assert!(!s.events().contains("override_released"), "{}", s.events());
    // The untyped release ends it (and a typed failover of the name with it).
    let (ok, out) = s.ctl(&[
        "failover",
        "app.example.test",
        "--type",
        "A",
        "--to",
        "web-us",
        "--reason",
        "t",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = s.ctl(&["release", "api.example.test", "--reason", "over"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(": ok released record api.example.test."),
        "{out}"
    );
    expect_addresses(
        s.dns(),
        "api.example.test",
        &[EU1, EU2],
        Duration::from_secs(2),
    );
    let (ok, out) = s.ctl(&["release", "app.example.test", "--reason", "over"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(": ok released record app.example.test. A"),
        "{out}"
    );
    eprintln!("FIGURES release-ends-nothing typed_of_untyped=404 typo=404 http=404 logged=none");
}

#[test]
fn a_release_some_servers_hold_and_others_do_not_is_made() {
    // Two servers that do not exchange overrides: one holds a drain, the other not
    // (it was away when it was made, or took the release from a peer already).
    let (one, two) = (Server::start(&config("")), Server::start(&config("")));
    let (ok, out) = one.ctl(&["drain", "spare", "--reason", "one only"]);
    assert!(ok, "{out}");
    let both = [one.url(), two.url()];
    let (ok, out) = ctl_with(&both, None, &["undrain", "spare", "--reason", "over"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{}: ok released pool spare", one.url())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: ok nothing in force here (the release reaches it from a server that made it)",
            two.url()
        )),
        "{out}"
    );
    // Nothing in force anywhere: a failure.
    let (ok, out) = ctl_with(&both, None, &["undrain", "spare", "--reason", "again"]);
    assert!(!ok, "{out}");
    assert_eq!(
        out.matches("FAILED 404 Not Found: pool spare has nothing in force")
            .count(),
        2,
        "{out}"
    );
}

#[test]
fn a_change_that_would_leave_no_healthy_pool_is_refused_unless_allowed() {
    let s = Server::start(&config(""));
    // The last endpoint of solo: refused, with what it would answer.
    let (ok, out) = s.ctl(&["drain", "solo/x", "--reason", "test"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("409 Conflict: refused: solo.example.test. A (every client) would have no pool at min_healthy (solo 0 of 1 usable) and would answer degraded: solo/x (unchanged)"),
        "{out}"
    );
    let (ok, out) = s.ctl(&["force", "solo/x", "down", "--reason", "test"]);
    assert!(!ok);
    assert!(out.contains("would answer nothing (NODATA)"), "{out}");
    assert_eq!(sorted_addresses(s.dns(), "solo.example.test"), [SOLO]);
    // --allow-empty makes it.
    let (ok, out) = s.ctl(&[
        "force",
        "solo/x",
        "down",
        "--reason",
        "test",
        "--allow-empty",
    ]);
    assert!(ok, "{out}");
    expect_addresses(s.dns(), "solo.example.test", &[], Duration::from_secs(2));
    // The rule: one web region stays in service (app still has spare, so it is the
    // rule that refuses).
    let (ok, out) = s.ctl(&["drain", "web-eu", "--reason", "evacuate"]);
    assert!(ok, "{out}");
    let (ok, out) = s.ctl(&["drain", "web-us", "--reason", "evacuate"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "refused: api.example.test. A (every client) would have no pool at min_healthy"
        ),
        "{out}"
    );
    let rule = config("").replace(
        "pools = [\"web-eu\", \"web-us\"]\n[[records]]\nname = \"solo",
        "pools = [\"web-eu\", \"web-us\", \"spare\"]\n[[records]]\nname = \"solo",
    );
    let s = Server::start(&rule);
    let (ok, out) = s.ctl(&["drain", "web-eu", "--reason", "evacuate"]);
    assert!(ok, "{out}");
    let (ok, out) = s.ctl(&["drain", "web-us", "--reason", "evacuate"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("refused: safety rule a web region: 0 of its pools (web-eu, web-us) would stay in service, fewer than min_in_service = 1"),
        "{out}"
    );
    // The same over HTTP: 409, then allow_empty.
    let body = br#"{"target": {"pool": "web-us"}, "action": "drain", "reason": "r"}"#;
    let json = [("content-type", "application/json")];
    assert_eq!(http(s.admin, "POST", "/v1/overrides", &json, body).0, 409);
    let body =
        br#"{"target": {"pool": "web-us"}, "action": "drain", "reason": "r", "allow_empty": true}"#;
    assert_eq!(http(s.admin, "POST", "/v1/overrides", &json, body).0, 200);
    expect_addresses(
        s.dns(),
        "app.example.test",
        &[SPARE],
        Duration::from_secs(2),
    );
}

#[test]
fn patterns_and_regions_change_every_match_or_none() {
    let s = Server::start(&config(""));
    let (ok, out) = s.ctl(&["drain", "web-eu/*", "--reason", "kernel"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(": ok 2 changes: drain endpoint web-eu/eu-1, drain endpoint web-eu/eu-2 by"),
        "{out}"
    );
    expect_addresses(s.dns(), "app.example.test", &[US1], Duration::from_secs(2));
    let (ok, out) = s.ctl(&["undrain", "web-eu/*"]);
    assert!(ok, "{out}");
    expect_addresses(
        s.dns(),
        "app.example.test",
        &[EU1, EU2],
        Duration::from_secs(2),
    );
    // A region: its pools (one here).
    let (ok, out) = s.ctl(&["drain", "--region", "eu", "--reason", "evacuate"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(": ok 1 changes: drain pool web-eu") || out.contains(": ok drain pool web-eu"),
        "{out}"
    );
    expect_addresses(s.dns(), "app.example.test", &[US1], Duration::from_secs(2));
    let (ok, out) = s.ctl(&["undrain", "--region", "eu"]);
    assert!(ok, "{out}");
    // Nothing matches: refused, naming what there is.
    let (ok, out) = s.ctl(&["drain", "web-ap/*", "--reason", "x"]);
    assert!(!ok);
    assert!(
        out.contains("404 Not Found: endpoint web-ap/* matches nothing in the configuration (there are: solo/x, spare/s, web-eu/eu-1, web-eu/eu-2, web-us/us-1)"),
        "{out}"
    );
    // All or nothing: forcing every web endpoint down breaks the rule, so none is.
    let (ok, out) = s.ctl(&["force", "web-*/*", "down", "--reason", "x"]);
    assert!(!ok, "{out}");
    assert!(out.contains("409 Conflict"), "{out}");
    let (ok, out) = s.ctl(&["--json", "overrides"]);
    assert!(ok);
    let view: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        view[0]["answer"]["active"].as_array().unwrap().len(),
        0,
        "{out}"
    );
    // A region's endpoints forced, then released with the region.
    let (ok, out) = s.ctl(&["force", "--region", "us", "down", "--reason", "x"]);
    assert!(ok, "{out}");
    let (ok, out) = s.ctl(&["release", "--region", "us"]);
    assert!(ok, "{out}");
    assert!(out.contains("released endpoint web-us/us-1"), "{out}");
}

#[test]
fn ctl_stats_counts_queries_by_rcode_zone_rrl_and_tcp() {
    let s = Server::start(&config(""));
    for _ in 0..5 {
        let reply = ask(s.dns(), "app.example.test", RecordType::A);
        assert_eq!(rcode(&reply), ResponseCode::NoError);
    }
    for _ in 0..3 {
        ask(s.dns(), "nowhere.example.test", RecordType::A);
    }
    ask(s.dns(), "elsewhere.invalid", RecordType::A);
    tcp(s.dns(), &query("app.example.test", RecordType::A));
    let (ok, out) = s.ctl(&["--json", "stats"]);
    assert!(ok, "{out}");
    let view: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stats = &view[0]["answer"];
    assert_eq!(stats["responses"]["noerror"], 6, "{stats:#}");
    assert_eq!(stats["responses"]["nxdomain"], 3, "{stats:#}");
    assert_eq!(stats["responses"]["refused"], 1, "{stats:#}");
    let zone = &stats["zones"]["example.test."];
    assert_eq!(zone["noerror"], 6, "{stats:#}");
    assert_eq!(zone["nxdomain"], 3, "{stats:#}");
    assert_eq!(stats["tcp"]["accepted"], 1, "{stats:#}");
    assert!(stats["rrl"].get("limited").is_some(), "{stats:#}");
    let (ok, table) = s.ctl(&["stats"]);
    assert!(ok, "{table}");
    assert!(
        table.contains("responses  10 (noerror 6, nxdomain 3, refused 1, servfail 0)"),
        "{table}"
    );
    assert!(table.contains("example.test."), "{table}");
    // The same numbers in /metrics.
    let metrics = http(s.admin, "GET", "/metrics", &[], b"").1;
    assert!(
        metrics.contains(
            "failoverd_dns_zone_responses_total{zone=\"example.test.\",rcode=\"nxdomain\"} 3"
        ),
        "{metrics}"
    );
    eprintln!("FIGURES ctl stats noerror=6 nxdomain=3 refused=1 tcp=1 zone=example.test.");
}

#[test]
fn ctl_zone_read_prints_the_zone_as_served_in_zone_file_text() {
    let s = Server::start(&config(""));
    let (ok, text) = s.ctl(&["zone-read", "EXAMPLE.test"]);
    assert!(ok, "{text}");
    for want in [
        "example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 2026010101 3600 900 604800 120",
        "example.test.\t3600\tIN\tTXT\t\"apex\"",
        "; app.example.test. A: dynamic, healthy (pool web-eu)",
        "app.example.test.\t5\tIN\tA\t192.0.2.10",
        "*.wild.example.test.\t3600\tIN\tA\t192.0.2.99",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // As served now: after a drain, the standby.
    let (ok, out) = s.ctl(&["drain", "web-eu", "--reason", "r"]);
    assert!(ok, "{out}");
    let (_, now) = s.ctl(&["zone-read", "example.test"]);
    assert!(
        now.contains("; app.example.test. A: dynamic, failover (operator) to web-us"),
        "{now}"
    );
    assert!(
        now.contains("app.example.test.\t5\tIN\tA\t198.51.100.10"),
        "{now}"
    );
    // The text is a zone file: a config serving it alone checks clean.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.test.zone"), &now).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "version = 1\n[zones]\ndirectory = \".\"\n").unwrap();
    let (ok, verdict) = run_binary_stdout(&["check-config", config.to_str().unwrap()]);
    assert!(ok, "{verdict}\n{now}");
    // A zone not served: 404, naming those that are.
    let (ok, out) = s.ctl(&["zone-read", "example.com"]);
    assert!(!ok);
    assert!(
        out.contains("404 Not Found: no zone example.com. is served here (zones: example.test.)"),
        "{out}"
    );
}

#[test]
fn ctl_messages_say_what_happened() {
    let s = Server::start(&config(""));
    // A server given as HOST:PORT is an http:// URL.
    let (ok, out) = ctl_with(&[s.admin.to_string()], None, &["status"]);
    assert!(ok, "{out}");
    // Nothing listening: "connection refused", and the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, out) = ctl_with(&[format!("127.0.0.1:{port}")], None, &["status"]);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "FAILED unreachable: connection refused at http://127.0.0.1:{port}/v1/status"
        )),
        "{out}"
    );
    // One server confirms, one does not know the target: no promise that it catches
    // up; one unreachable: it does.
    let other = Server::start(&config("").replace("name = \"x\"", "name = \"y\""));
    let (ok, out) = ctl_with(
        &[s.url(), other.url(), format!("http://127.0.0.1:{port}")],
        None,
        &["force", "solo/x", "up", "--reason", "three servers"],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("1 of 3 servers could not be reached or could not keep it now; each takes the change from a server that holds it once it reaches one"),
        "{out}"
    );
    assert!(
        out.contains("1 of 3 servers do not have this target in their configuration: they do not take the change from their peers either"),
        "{out}"
    );
    // Who made it: the login name when $USER is unset (cron, env -i).
    let output = std::process::Command::new(crate::support::binary())
        .env_clear()
        .args([
            "ctl",
            "--server",
            &s.url(),
            "drain",
            "web-us/us-1",
            "--reason",
            "who",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let view = http(s.admin, "GET", "/v1/overrides", &[], b"").1;
    assert!(
        view.contains(&format!("\"by\":\"anonymous ({})\"", me.trim())),
        "{view}"
    );
    // A bad URL is refused before anything is sent, with the fix.
    let (ok, out) = ctl_with(&["ftp://x".to_owned()], None, &["status"]);
    assert!(!ok);
    assert!(
        out.contains("--server ftp://x: ftp is not an admin API URL; give http://HOST:PORT or https://HOST:PORT"),
        "{out}"
    );
}

#[test]
fn the_readme_ctl_examples_run_against_the_embedded_default() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Operations: overrides, ctl, explain")
        .nth(1)
        .expect("the README's Operations section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("its first sh block");
    assert!(block.starts_with("C=\"failoverd ctl\""), "{block}");
    let server = crate::support::BinaryServer::start(&[
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let line = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .expect("admin API starts");
    let admin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .unwrap_or_else(|| panic!("no admin address in {line:?}"));
    // The one substitution: this test's server instead of 127.0.0.1:9353.
    let script = block.replacen(
        "C=\"failoverd ctl\"",
        &format!("C=\"failoverd ctl --server {admin}\""),
        1,
    );
    let bin_dir = std::path::Path::new(crate::support::binary())
        .parent()
        .unwrap();
    let output = std::process::Command::new("sh")
        .args(["-ec", &format!("set -x\n{script}")])
        .current_dir(root)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("FAILOVERD_TOKEN")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    let commands = block.lines().filter(|l| l.starts_with("$C ")).count();
    eprintln!("FIGURES readme ctl examples run={commands} failed=0");
}
