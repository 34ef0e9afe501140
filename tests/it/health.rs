//! The health plane end to end: real backends broken in every way, probes, quorum
//! across vantage points, persistence — all observed through real DNS queries.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::support::backend::{Backend, Mode, TestPki};
use crate::support::dns::{expect_addresses, sorted_addresses};
use crate::support::{TestServer, wait_until};

const A: &str = "127.0.0.2";
const B: &str = "127.0.0.3";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Two backends on the same port (one per address).
fn backends(cert: Option<crate::support::backend::ServerCert>) -> (Backend, Backend) {
    let a = Backend::start(ip(A), 0, cert.clone());
    let b = Backend::start(ip(B), a.addr.port(), cert);
    (a, b)
}

/// A config with pool `web` (A and B, probed by `check`) answered by multivalue
/// `app.example.test`.
fn config(check: &str, extra: &str) -> String {
    format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "../zones"
files = ["example.test.zone"]
[checks.probe]
{check}
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
rise = 2
fall = 2
[pools.web]
check = "probe"
endpoints = [{{ address = "{A}", name = "a" }}, {{ address = "{B}", name = "b" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 5
policy = "multivalue"
pools = ["web"]
{extra}
"#
    )
}

fn answer(server: SocketAddr) -> Vec<String> {
    sorted_addresses(server, "app.example.test.")
}

fn both() -> Vec<String> {
    vec![A.to_owned(), B.to_owned()]
}

fn expect_answer(server: SocketAddr, want: &[&str], within: Duration) {
    expect_addresses(server, "app.example.test.", want, within);
}

fn local_reason(server: &TestServer, endpoint: &str) -> String {
    let status = server.service().status();
    status
        .endpoints
        .iter()
        .find(|e| e.endpoint == endpoint)
        .and_then(|e| e.local.as_ref())
        .map(|l| l.reason.clone())
        .unwrap_or_default()
}

/// Breaks B in `mode`, expects it out of the answer with `reason`, heals it.
fn break_and_heal(server: &TestServer, backend: &Backend, mode: Mode, reason: &str) {
    backend.set(mode.clone());
    expect_answer(server.addr, &[A], Duration::from_secs(10));
    let seen = local_reason(server, "web/b");
    assert!(
        seen.contains(reason),
        "{mode:?}: reason {seen:?} lacks {reason:?}"
    );
    backend.set(Mode::Healthy);
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
}

#[test]
fn http_failures_take_an_endpoint_down_and_recovery_brings_it_back() {
    let (_a, b) = backends(None);
    let port = b.addr.port();
    let server = TestServer::start(&config(
        &format!("type = \"http\"\nport = {port}\npath = \"/health\"\nexpect_body = \"ok\""),
        "",
    ));
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    break_and_heal(&server, &b, Mode::Refuse, "refused");
    break_and_heal(&server, &b, Mode::Blackhole, "timeout");
    break_and_heal(&server, &b, Mode::Status(503), "status 503");
    break_and_heal(&server, &b, Mode::Body("maintenance".into()), "body lacks");
}

#[test]
fn https_certificate_problems_take_an_endpoint_down() {
    let pki = TestPki::new();
    let (_a, b) = backends(Some(pki.leaf("backend.test", false)));
    let port = b.addr.port();
    let check = format!(
        "type = \"https\"\nport = {port}\nhost = \"backend.test\"\nca_file = {:?}",
        pki.ca_file.display().to_string()
    );
    let server = TestServer::start(&config(&check, ""));
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    b.set_cert(pki.leaf("backend.test", true));
    expect_answer(server.addr, &[A], Duration::from_secs(10));
    assert!(local_reason(&server, "web/b").contains("certificate expired"));
    b.set_cert(pki.leaf("other.test", false));
    let mut reason = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            reason = local_reason(&server, "web/b");
            reason.contains("not valid for the host name")
        }),
        "reason {reason:?}"
    );
    assert_eq!(answer(server.addr), [A]);
    b.set_cert(pki.leaf("backend.test", false));
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    break_and_heal(&server, &b, Mode::Status(503), "status 503");
}

#[test]
fn an_opted_out_check_accepts_any_certificate() {
    let pki = TestPki::new();
    let (_a, _b) = backends(Some(pki.leaf("other.test", true)));
    let port = _a.addr.port();
    let server = TestServer::start(&config(
        &format!("type = \"https\"\nport = {port}\nhost = \"backend.test\"\ntls_verify = false"),
        "",
    ));
    assert!(wait_until(Duration::from_secs(10), || local_reason(
        &server, "web/a"
    )
    .contains("status 200")));
    assert_eq!(answer(server.addr), both());
}

#[test]
fn tcp_checks_follow_connectability() {
    let (_a, b) = backends(None);
    let port = b.addr.port();
    let server = TestServer::start(&config(&format!("type = \"tcp\"\nport = {port}"), ""));
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    break_and_heal(&server, &b, Mode::Refuse, "refused");
}

#[test]
fn exec_and_dns_checks_work() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("down-b");
    let script = dir.path().join("check.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n[ \"$1\" = \"{B}\" ] && [ -e {:?} ] && {{ echo 'replica lag' >&2; exit 2; }}\nexit 0\n", flag.display().to_string()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = TestServer::start(&config(
        &format!(
            "type = \"exec\"\ncommand = [{:?}, \"{{address}}\"]",
            script.display().to_string()
        ),
        "",
    ));
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    std::fs::write(&flag, "").unwrap();
    expect_answer(server.addr, &[A], Duration::from_secs(10));
    assert!(local_reason(&server, "web/b").contains("exit 2: replica lag"));
    std::fs::remove_file(&flag).unwrap();
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
}

#[test]
fn dns_checks_query_the_endpoint() {
    let resolver = TestServer::integration();
    let port = resolver.addr.port();
    let text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
[zones]
directory = "../zones"
files = ["example.test.zone"]
[checks.answers]
type = "dns"
port = {port}
query_name = "www.example.test"
interval = "100ms"
rise = 1
fall = 1
[checks.missing]
type = "dns"
port = {port}
query_name = "nothing.example.test"
interval = "100ms"
rise = 1
fall = 1
[pools.good]
check = "answers"
endpoints = [{{ address = "127.0.0.1" }}]
[pools.bad]
check = "missing"
endpoints = [{{ address = "127.0.0.1" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["bad", "good"]
"#
    );
    let server = TestServer::start(&text);
    let mut reasons = (String::new(), String::new());
    assert!(
        wait_until(Duration::from_secs(10), || {
            reasons = (
                local_reason(&server, "good/127.0.0.1"),
                local_reason(&server, "bad/127.0.0.1"),
            );
            reasons.0.contains("NOERROR, 2 answers") && reasons.1.contains("NXDOMAIN")
        }),
        "{reasons:?}"
    );
    let status = server.service().status();
    let record = &status.records[0];
    assert_eq!(record.answers[0].outcome, "failover");
    assert_eq!(record.answers[0].pool.as_deref(), Some("good"));
}

#[test]
fn hold_delays_failback() {
    let (_a, b) = backends(None);
    let port = b.addr.port();
    let server = TestServer::start(&config(
        &format!("type = \"tcp\"\nport = {port}\nhold = \"1500ms\""),
        "",
    ));
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    b.set(Mode::Refuse);
    expect_answer(server.addr, &[A], Duration::from_secs(10));
    let down_at = Instant::now();
    b.set(Mode::Healthy);
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
    assert!(
        down_at.elapsed() >= Duration::from_millis(1400),
        "came back after {:?}, before the 1.5 s hold",
        down_at.elapsed()
    );
}

#[test]
fn a_restarted_server_answers_without_the_down_endpoint_from_its_first_query() {
    let (_a, b) = backends(None);
    let port = b.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let extra = format!("[health]\nstate_file = {:?}\n", state.display().to_string());
    let text = config(&format!("type = \"tcp\"\nport = {port}"), &extra);
    b.set(Mode::Refuse);
    {
        let server = TestServer::start(&text);
        expect_answer(server.addr, &[A], Duration::from_secs(10));
        assert!(wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&state)
                .is_ok_and(|s| s.contains("\"web/b\"") && s.contains("down"))
        }));
    }
    // Restart while B is still down: the very first answer leaves it out.
    let server = TestServer::start(&text);
    assert_eq!(answer(server.addr), [A], "first query after restart");
    let status = server.service().status();
    let b_status = status
        .endpoints
        .iter()
        .find(|e| e.endpoint == "web/b")
        .unwrap();
    assert_eq!(format!("{:?}", b_status.state), "Down");
    b.set(Mode::Healthy);
    expect_answer(server.addr, &[A, B], Duration::from_secs(10));
}
