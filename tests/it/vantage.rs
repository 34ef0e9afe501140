//! Three vantage points — a server and two probe agents with their own probers and
//! source addresses — deciding by quorum: an outage fails over, a partitioned or
//! flapping vantage point changes nothing, forged reports are refused and counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use failoverd::config::Secret;
use failoverd::health::report::{
    CHALLENGE_HEADER, Report, SIGNATURE_HEADER, VANTAGE_HEADER, Verdict, sign,
};
use failoverd::model::HealthState;
use failoverd::service::StartOptions;

use crate::support::backend::{Backend, Mode};
use crate::support::dns::{expect_addresses, sorted_addresses};
use crate::support::{TestAgent, TestServer, http, http_with_headers, poll_during, wait_until};

pub(crate) const A: &str = "127.0.0.2";
pub(crate) const B: &str = "127.0.0.3";
/// Each vantage point probes from its own loopback address.
const SOURCES: [(&str, &str); 3] = [
    ("v1", "127.0.0.11"),
    ("v2", "127.0.0.12"),
    ("v3", "127.0.0.13"),
];

pub(crate) fn config(port: u16, servers: &str) -> String {
    let mut text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "../zones"
files = ["example.test.zone"]
[regions.west]
[regions.east]
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "100ms"
timeout = "80ms"
rise = 2
fall = 2
[pools.web]
check = "web"
endpoints = [{{ address = "{A}", name = "a" }}, {{ address = "{B}", name = "b" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 5
policy = "multivalue"
pools = ["web"]
[health]
down_votes = 2
staleness = "1500ms"
push_interval = "100ms"
servers = [{servers}]
[admin]
listen = "127.0.0.1:0"
"#
    );
    for (i, (name, source)) in SOURCES.iter().enumerate() {
        let region = if i == 0 { "west" } else { "east" };
        text.push_str(&format!(
            "[vantages.{name}]\nregion = \"{region}\"\nsecret = \"secret-of-{name}-0123456789\"\nsource_address = \"{source}\"\n"
        ));
    }
    text
}

pub(crate) fn answer(server: SocketAddr) -> Vec<String> {
    sorted_addresses(server, "app.example.test.")
}

pub(crate) fn expect_answer(server: SocketAddr, want: &[&str], within: Duration) {
    expect_addresses(server, "app.example.test.", want, within);
}

/// Asserts the answer stays `want` for `period`.
fn answer_stays(server: SocketAddr, want: &[&str], period: Duration) {
    let polls = poll_during(period, |polls| {
        assert_eq!(answer(server), want, "answer changed after {polls} polls");
    });
    assert!(polls > 10);
}

pub(crate) struct Cluster {
    pub(crate) server: TestServer,
    pub(crate) admin: SocketAddr,
    pub(crate) agents: Vec<TestAgent>,
    pub(crate) a: Backend,
    pub(crate) b: Backend,
}

pub(crate) fn cluster() -> Cluster {
    let a = Backend::start(A.parse().unwrap(), 0, None);
    let b = Backend::start(B.parse().unwrap(), a.addr.port(), None);
    let port = a.addr.port();
    let options = StartOptions {
        vantage: Some("v1".into()),
        ..StartOptions::default()
    };
    let server = TestServer::start_with(&config(port, ""), options);
    let admin = server.service().admin_address().expect("admin API");
    let agent_config = config(port, &format!("\"http://{admin}\""));
    let agents = vec![
        TestAgent::start(&agent_config, "v2"),
        TestAgent::start(&agent_config, "v3"),
    ];
    // Every vantage point has voted on every endpoint.
    let voted = || {
        let status = server.service().status();
        status
            .endpoints
            .iter()
            .all(|e| ["v1", "v2", "v3"].iter().all(|v| e.votes.contains_key(*v)))
    };
    assert!(
        wait_until(Duration::from_secs(15), voted),
        "vantage points never all voted"
    );
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    Cluster {
        server,
        admin,
        agents,
        a,
        b,
    }
}

pub(crate) fn metric(admin: SocketAddr, line_prefix: &str) -> Option<String> {
    let (_, body) = http(admin, "GET", "/metrics", &[], b"");
    body.lines()
        .find(|l| l.starts_with(line_prefix))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
}

#[test]
fn an_outage_seen_by_a_quorum_fails_over_and_recovers() {
    let c = cluster();
    c.b.set(Mode::Refuse);
    expect_answer(c.server.addr, &[A], Duration::from_secs(10));
    let status = c.server.service().status();
    let b = status
        .endpoints
        .iter()
        .find(|e| e.endpoint == "web/b")
        .unwrap();
    assert!(
        b.votes.values().filter(|v| v.starts_with("down")).count() >= 2,
        "{:?}",
        b.votes
    );
    c.b.set(Mode::Healthy);
    expect_answer(c.server.addr, &[A, B], Duration::from_secs(10));
}

/// The names of the events the admin API lists.
fn event_names(admin: SocketAddr) -> Vec<String> {
    let (code, body) = http(admin, "GET", "/v1/events?since=0", &[], b"");
    assert_eq!(code, 200, "{body}");
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    events
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_cold_start_is_not_announced_as_isolation_but_a_lasting_one_is() {
    // Every server is isolated until the first reports arrive: that says nothing.
    let c = cluster();
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || started.elapsed()
        > Duration::from_millis(2000)
        && c.server
            .service()
            .status()
            .isolation
            .as_ref()
            .is_some_and(|i| !i.isolated)));
    let names = event_names(c.admin);
    assert!(!names.iter().any(|n| n == "isolated"), "{names:?}");
    assert_eq!(
        metric(c.admin, "failoverd_isolations_total").as_deref(),
        Some("0")
    );
    // A server whose agents never report: announced once the staleness window is
    // over, and counted.
    let options = StartOptions {
        vantage: Some("v1".into()),
        ..StartOptions::default()
    };
    let alone = TestServer::start_with(&config(c.a.addr.port(), ""), options);
    let admin = alone.service().admin_address().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || event_names(admin)
            .iter()
            .any(|n| n == "isolated")),
        "{:?}",
        event_names(admin)
    );
    assert_eq!(
        metric(admin, "failoverd_isolations_total").as_deref(),
        Some("1")
    );
}

#[test]
fn a_partitioned_vantage_point_changes_nothing() {
    let c = cluster();
    // v3 can reach nothing: both backends drop its connections.
    c.a.drop_from(Some("127.0.0.13".parse().unwrap()));
    c.b.drop_from(Some("127.0.0.13".parse().unwrap()));
    let partitioned = || {
        c.server
            .service()
            .status()
            .vantages
            .iter()
            .any(|v| v.name == "v3" && v.partitioned)
    };
    // Until v3 is flagged, and all the while, the answer must not move.
    let flagged = wait_until(Duration::from_secs(10), || {
        assert_eq!(
            answer(c.server.addr),
            [A, B],
            "answer changed while v3 lost its network"
        );
        partitioned()
    });
    assert!(flagged, "v3 never flagged as partitioned");
    assert_eq!(
        metric(c.admin, "failoverd_vantage_partitioned{vantage=\"v3\"}").as_deref(),
        Some("1")
    );
    answer_stays(c.server.addr, &[A, B], Duration::from_secs(2));
    // A real outage is still seen by the two healthy vantage points.
    c.b.set(Mode::Refuse);
    expect_answer(c.server.addr, &[A], Duration::from_secs(10));
    c.b.set(Mode::Healthy);
    c.a.drop_from(None);
    c.b.drop_from(None);
    expect_answer(c.server.addr, &[A, B], Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(10), || !partitioned()),
        "v3 recovers"
    );
}

#[test]
fn a_flapping_vantage_point_does_not_flap_answers() {
    let c = cluster();
    let v3: std::net::IpAddr = "127.0.0.13".parse().unwrap();
    // v3 alone sees B come and go every 250 ms for 4 s.
    let mut dropped = false;
    let mut next_flip = Instant::now();
    let polls = poll_during(Duration::from_secs(4), |polls| {
        if Instant::now() >= next_flip {
            dropped = !dropped;
            c.b.drop_from(dropped.then_some(v3));
            next_flip += Duration::from_millis(250);
        }
        assert_eq!(
            answer(c.server.addr),
            [A, B],
            "answer flapped after {polls} polls"
        );
    });
    c.b.drop_from(None);
    assert!(polls > 50);
}

#[test]
fn reports_with_a_bad_signature_are_rejected_and_counted() {
    let c = cluster();
    let mut forged = Report {
        vantage: "v2".into(),
        session: 42,
        sequence: 1,
        challenge: String::new(),
        sent_at_ms: failoverd::probe::reporter::unix_ms(),
        base: None,
        verdicts: ["web/a", "web/b"]
            .iter()
            .map(|e| Verdict {
                endpoint: (*e).into(),
                state: HealthState::Down,
                reason: "forged".into(),
                age_ms: 0,
                rtt_us: None,
                degraded: false,
            })
            .collect(),
    };
    let body = serde_json::to_vec(&forged).unwrap();
    let wrong = sign(&Secret::new("not-the-secret-of-v2-at-all"), &body);
    let before = metric(
        c.admin,
        "failoverd_reports_received_total{result=\"bad_signature\"}",
    );
    assert_eq!(before.as_deref(), Some("0"));
    let post = |body: &[u8], signature: Option<&str>| {
        let mut headers = vec![(VANTAGE_HEADER, "v2"), ("content-type", "application/json")];
        if let Some(signature) = signature {
            headers.push((SIGNATURE_HEADER, signature));
        }
        http_with_headers(c.admin, "POST", "/v1/reports", &headers, body)
    };
    for _ in 0..3 {
        assert_eq!(post(&body, Some(&wrong)).0, 401);
    }
    assert_eq!(post(&body, None).0, 401, "unsigned");
    // The body is authenticated before it is parsed: signed garbage is malformed.
    let secret = Secret::new("secret-of-v2-0123456789");
    assert_eq!(post(b"not json", Some(&sign(&secret, b"not json"))).0, 400);
    assert_eq!(
        metric(
            c.admin,
            "failoverd_reports_received_total{result=\"bad_signature\"}"
        )
        .as_deref(),
        Some("4")
    );
    answer_stays(c.server.addr, &[A, B], Duration::from_millis(500));
    // The right secret without this server's challenge: 409, with the challenge.
    let right = sign(&secret, &body);
    let (status, _, headers) = post(&body, Some(&right));
    assert_eq!(status, 409, "no challenge");
    let challenge = headers[CHALLENGE_HEADER].clone();
    // With it, accepted (the report is then outvoted by v1 and v3); once only.
    forged.challenge = challenge;
    forged.sequence = u64::MAX - 1;
    let body = serde_json::to_vec(&forged).unwrap();
    let right = sign(&secret, &body);
    assert_eq!(post(&body, Some(&right)).0, 204);
    assert_eq!(post(&body, Some(&right)).0, 409, "a replay is refused");
    // Headers must name the signer: a v2 report presented as v3's is refused.
    let (status, _, _) = http_with_headers(
        c.admin,
        "POST",
        "/v1/reports",
        &[
            (VANTAGE_HEADER, "v3"),
            (SIGNATURE_HEADER, &right),
            ("content-type", "application/json"),
        ],
        &body,
    );
    assert_eq!(status, 401);
}

#[test]
fn status_explains_the_answer() {
    let c = cluster();
    let (code, body) = http(c.admin, "GET", "/status", &[], b"");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record = &status["records"][0];
    assert_eq!(record["name"], "app.example.test.");
    assert_eq!(record["answers"][0]["outcome"], "healthy");
    let endpoint = &status["endpoints"][1];
    assert_eq!(endpoint["endpoint"], "web/b");
    assert_eq!(endpoint["votes"]["v1"], "up", "{endpoint}");
    assert!(
        endpoint["local"]["reason"]
            .as_str()
            .unwrap()
            .contains("status 200"),
        "{endpoint}"
    );
    let (code, body) = http(c.admin, "GET", "/v1/health", &[], b"");
    assert_eq!(code, 200);
    assert!(body.contains("\"web/b\""), "{body}");
    assert_eq!(http(c.admin, "GET", "/readyz", &[], b"").0, 200);
    // An operator override from loopback.
    let (code, _) = http(
        c.admin,
        "PUT",
        "/v1/endpoints/web/b/force",
        &[("content-type", "application/json")],
        br#"{"state":"down"}"#,
    );
    assert_eq!(code, 204);
    expect_answer(c.server.addr, &[A], Duration::from_secs(5));
    let (code, _) = http(
        c.admin,
        "PUT",
        "/v1/endpoints/web/b/force",
        &[("content-type", "application/json")],
        br#"{"state":null}"#,
    );
    assert_eq!(code, 204);
    expect_answer(c.server.addr, &[A, B], Duration::from_secs(5));
}

/// The config a server and an agent share may name the server's state file: the
/// agent (which restores nothing and decides nothing) never writes it, so an agent
/// beside a server cannot clobber it, and its read-only unit logs no errors.
#[test]
fn an_agent_leaves_the_servers_state_file_alone() {
    let a = Backend::start(A.parse().unwrap(), 0, None);
    let b = Backend::start(B.parse().unwrap(), a.addr.port(), None);
    let port = a.addr.port();
    let options = StartOptions {
        vantage: Some("v1".into()),
        ..StartOptions::default()
    };
    let server = TestServer::start_with(&config(port, ""), options);
    let admin = server.service().admin_address().expect("admin API");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let shared = config(port, &format!("\"http://{admin}\"")).replace(
        "[health]\n",
        &format!("[health]\nstate_file = {:?}\n", state.display().to_string()),
    );
    let _agent = TestAgent::start(&shared, "v2");
    let voted = || {
        let status = server.service().status();
        status.endpoints.iter().all(|e| e.votes.contains_key("v2"))
    };
    assert!(wait_until(Duration::from_secs(15), voted), "v2 never voted");
    // A change the agent decides on (it used to save its state then).
    drop(b);
    let b_down = || {
        let status = server.service().status();
        status.endpoints.iter().any(|e| {
            e.endpoint == "web/b" && e.votes.get("v2").is_some_and(|v| v.starts_with("down"))
        })
    };
    assert!(
        wait_until(Duration::from_secs(15), b_down),
        "v2 never saw b down"
    );
    assert!(!state.exists(), "the agent wrote {}", state.display());
}
