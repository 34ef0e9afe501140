//! Reloads keep what the health plane knows and apply every reloadable key; an
//! isolated server holds; agents start with their own secret only; readiness waits
//! for the first decision.

use std::net::SocketAddr;
use std::time::Duration;

use failoverd::testing::config::ConfigSource;
use failoverd::testing::service::{self, StartOptions};
use hickory_proto::rr::RecordType;

use crate::support::backend::{Backend, Mode};
use crate::support::dns::ask;
use crate::support::{TestAgent, TestServer, data_dir, http, wait_until};
use crate::vantage::{A, B, answer, cluster, config, expect_answer, metric};

fn agent_config(port: u16, admin: SocketAddr) -> String {
    config(port, &format!("\"http://{admin}\""))
}

fn metric_number(admin: SocketAddr, line_prefix: &str) -> u64 {
    metric(admin, line_prefix)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_reload_under_queries_keeps_health_and_remote_views() {
    let c = cluster();
    let port = c.a.addr.port();
    c.b.set(Mode::Refuse);
    expect_answer(c.server.addr, &[A], Duration::from_secs(10));
    // (A server is isolated for a moment at start, until its peers' reports arrive.)
    let isolations = metric_number(c.admin, "failoverd_isolations_total");
    let changed = config(port, "").replace("ttl = 5", "ttl = 7");
    std::thread::scope(|scope| {
        let reloads = scope.spawn(|| {
            for _ in 0..5 {
                c.server.reload(&changed).expect("reload");
            }
        });
        // B is down by quorum: no reload may bring it back, not even for a moment.
        let mut polls = 0;
        while !reloads.is_finished() || polls < 50 {
            assert_eq!(answer(c.server.addr), [A], "answer changed during a reload");
            polls += 1;
        }
        reloads.join().unwrap();
    });
    // (Shorter while the vantage points still disagree on B: state-aware TTL.)
    assert!(
        wait_until(Duration::from_secs(5), || {
            ask(c.server.addr, "app.example.test.", RecordType::A).answers[0].ttl == 7
        }),
        "the new TTL applies"
    );
    let status = c.server.service().status();
    let isolation = status.isolation.as_ref().expect("a server shows isolation");
    assert!(!isolation.isolated, "remote views survive the reloads");
    assert_eq!(
        metric_number(c.admin, "failoverd_isolations_total"),
        isolations,
        "never isolated by a reload"
    );
    assert_eq!(
        metric_number(c.admin, "failoverd_config_reloads_total{result=\"ok\"}"),
        5
    );
    assert!(status.last_reload.as_ref().is_some_and(|r| r.ok));
    // A refused reload keeps everything and is counted.
    assert!(c.server.reload("version = 1\n[pools.p]\n").is_err());
    assert_eq!(
        metric_number(c.admin, "failoverd_config_reloads_total{result=\"failed\"}"),
        1
    );
    assert_eq!(answer(c.server.addr), [A]);
    c.b.set(Mode::Healthy);
    expect_answer(c.server.addr, &[A, B], Duration::from_secs(10));
}

#[test]
fn a_rotated_secret_takes_effect_when_server_and_agent_reload() {
    let c = cluster();
    let port = c.a.addr.port();
    let rotate = |text: String| text.replace("secret-of-v2-0123456789", "rotated-v2-secret-abcdef");
    let v2_fresh = || {
        c.server
            .service()
            .status()
            .vantages
            .iter()
            .any(|v| v.name == "v2" && v.fresh)
    };
    assert!(wait_until(Duration::from_secs(5), v2_fresh));
    c.server.reload(&rotate(config(port, ""))).unwrap();
    // v2 still signs with the old secret: refused, and soon stale.
    assert!(wait_until(Duration::from_secs(5), || {
        metric_number(
            c.admin,
            "failoverd_reports_received_total{result=\"bad_signature\"}",
        ) > 0
            && !v2_fresh()
    }));
    c.agents[0]
        .reload(&rotate(agent_config(port, c.admin)))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), v2_fresh),
        "reports signed with the rotated secret are accepted"
    );
}

#[test]
fn an_isolated_server_holds_its_answers_when_a_backend_dies() {
    let mut c = cluster();
    c.agents.clear(); // v2 and v3 stop: v1 hears only itself (needs 2 of 3)
    assert!(
        wait_until(Duration::from_secs(5), || {
            c.server
                .service()
                .status()
                .isolation
                .as_ref()
                .is_some_and(|i| i.isolated && i.missing == ["v2", "v3"])
        }),
        "isolation is shown with the missing vantage points"
    );
    assert_eq!(metric(c.admin, "failoverd_isolated").as_deref(), Some("1"));
    c.b.set(Mode::Refuse);
    // Its own probes see B down within a second; an isolated server holds.
    assert!(wait_until(Duration::from_secs(5), || {
        let status = c.server.service().status();
        status.endpoints[1]
            .local
            .as_ref()
            .is_some_and(|l| l.verdict == failoverd::testing::model::HealthState::Down)
    }));
    crate::support::poll_during(Duration::from_secs(1), |polls| {
        assert_eq!(
            answer(c.server.addr),
            [A, B],
            "answer moved after {polls} polls"
        );
    });
}

/// The cluster config with v1's and v3's secrets in unset environment variables.
fn config_with_absent_secrets(port: u16, servers: &str) -> String {
    config(port, servers)
        .replace(
            "secret = \"secret-of-v1-0123456789\"",
            "secret_env = \"FAILOVERD_TEST_UNSET_SECRET_V1\"",
        )
        .replace(
            "secret = \"secret-of-v3-0123456789\"",
            "secret_env = \"FAILOVERD_TEST_UNSET_SECRET_V3\"",
        )
}

#[test]
fn an_agent_needs_only_its_own_secret_and_binds_no_admin_port_unless_asked() {
    // The servers' admin port is taken; an agent sharing their config must not need it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let unreachable = "\"http://127.0.0.1:9\"";
    let text = config_with_absent_secrets(1, unreachable).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"{busy}\""),
    );
    assert!(text.contains(&busy.to_string()));
    let agent = TestAgent::start(&text, "v2");
    assert_eq!(agent.service().admin_address(), None);
    // A server cannot run without every secret: each missing one is named.
    let errors = service::load(ConfigSource::from_text(
        text.clone(),
        data_dir().join("configs"),
    ))
    .err()
    .expect("a server needs every secret")
    .to_string();
    assert!(
        errors.contains("FAILOVERD_TEST_UNSET_SECRET_V1"),
        "{errors}"
    );
    assert!(
        errors.contains("FAILOVERD_TEST_UNSET_SECRET_V3"),
        "{errors}"
    );
    // Asked for one, it serves metrics: the unreachable server is shown.
    let watched = TestAgent::start_with(&text, "v2", Some("127.0.0.1:0".parse().unwrap()));
    let admin = watched.service().admin_address().expect("admin when asked");
    let line = "failoverd_report_server_reachable{server=\"http://127.0.0.1:9\"}";
    assert!(
        wait_until(Duration::from_secs(5), || {
            metric(admin, line).as_deref() == Some("0")
                && metric_number(
                    admin,
                    "failoverd_reports_sent_total{server=\"http://127.0.0.1:9\",result=\"failed\"}",
                ) > 0
        }),
        "an unreachable server shows in the agent's metrics"
    );
}

#[test]
fn readyz_waits_for_the_first_decision() {
    // A backend that never answers: the first verdict comes only after the timeout.
    let backend = Backend::start("127.0.0.2".parse().unwrap(), 0, None);
    backend.set(Mode::Blackhole);
    let text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
[zones]
directory = "../zones"
files = ["example.test.zone"]
[checks.web]
type = "http"
port = {}
interval = "1s"
timeout = "800ms"
[pools.web]
check = "web"
endpoints = [{{ address = "127.0.0.2", name = "a" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
[admin]
listen = "127.0.0.1:0"
"#,
        backend.addr.port()
    );
    let server = TestServer::start_with(&text, StartOptions::default());
    let admin = server.service().admin_address().unwrap();
    assert_eq!(http(admin, "GET", "/readyz", &[], b"").0, 503);
    assert!(!server.service().status().ready);
    assert!(
        wait_until(Duration::from_secs(5), || http(
            admin,
            "GET",
            "/readyz",
            &[],
            b""
        )
        .0 == 200),
        "ready after the first probe verdict"
    );
}
