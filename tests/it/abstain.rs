//! A prober's own faults never vote: the real server, its descriptor limit lowered
//! below what it has open (`prlimit`), keeps answering both healthy backends — its
//! probes abstain (EMFILE) instead of failing them out — and says so in status and
//! metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::backend::Backend;
use crate::support::dns::sorted_addresses;
use crate::support::require::tool;
use crate::support::{BinaryServer, data_dir, poll_during, require, wait_until};

const A: &str = "127.0.0.2";
const B: &str = "127.0.0.3";
const STALENESS: Duration = Duration::from_secs(1);

/// An HTTP/1.1 connection to the admin API kept open, so it serves requests while the
/// server cannot accept new connections.
struct KeepAlive {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl KeepAlive {
    fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect admin");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            reader: BufReader::new(stream),
            addr,
        }
    }

    /// GET `path`; the body.
    fn get(&mut self, path: &str) -> String {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut length = None;
        let mut chunked = false;
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.reader.read_line(&mut line).expect("response head");
            assert!(read > 0, "the admin API closed the kept connection");
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
            chunked |= header == "transfer-encoding: chunked";
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length.expect("content-length"), 0);
            self.reader.read_exact(&mut body).unwrap();
        }
        String::from_utf8(body).expect("UTF-8 body")
    }

    fn status(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.get("/v1/status")).expect("status JSON")
    }
}

/// The soft open-files limit of `pid`.
fn nofile(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files limit");
    line.split_whitespace()
        .nth(3)
        .expect("soft limit")
        .to_owned()
}

/// Runs `prlimit --pid PID --nofile=LIMIT`, exactly as printed.
fn prlimit(pid: u32, limit: &str) {
    let arg = format!("--nofile={limit}");
    let output = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &arg])
        .output()
        .expect("prlimit (util-linux)");
    assert!(
        output.status.success(),
        "prlimit --pid {pid} {arg}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// The endpoint `label` of a status.
fn endpoint<'s>(status: &'s serde_json::Value, label: &str) -> &'s serde_json::Value {
    status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == label)
        .unwrap_or_else(|| panic!("no {label} in {status}"))
}

/// A metric's value in a Prometheus text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics"))
}

#[test]
fn a_server_out_of_descriptors_abstains_and_keeps_answering_both_backends() {
    require!(tool("prlimit"));
    let a = Backend::start(A.parse().unwrap(), 0, None);
    let _b = Backend::start(B.parse().unwrap(), a.addr.port(), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failoverd.toml");
    // Both healthy backends of a record that fails closed (nodata) when both are
    // down: failing them out for our own fault would empty the answer.
    let text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = {zones:?}
files = ["example.test.zone"]
[health]
staleness = "{staleness}ms"
push_interval = "200ms"
[checks.web]
type = "http"
port = {port}
interval = "200ms"
timeout = "150ms"
jitter = "20ms"
rise = 2
fall = 2
[pools.web]
check = "web"
endpoints = [{{ address = "{A}", name = "a" }}, {{ address = "{B}", name = "b" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 1
policy = "multivalue"
pools = ["web"]
all_down = "nodata"
"#,
        zones = data_dir().join("zones").display().to_string(),
        staleness = STALENESS.as_millis(),
        port = a.addr.port(),
    );
    std::fs::write(&path, text).unwrap();
    let server = BinaryServer::start(&[
        "--config",
        path.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let line = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .expect("admin API");
    let admin: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .and_then(|a| a.parse().ok())
        .expect("admin address");
    let name = "app.example.test.";
    let both = vec![A.to_owned(), B.to_owned()];
    let mut api = KeepAlive::open(admin);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let status = api.status();
            ["web/a", "web/b"]
                .iter()
                .all(|e| endpoint(&status, e)["local"]["ok"] == true)
        }),
        "both backends probed up"
    );
    assert_eq!(sorted_addresses(server.addr, name), both);

    let pid = server.pid();
    let soft = nofile(pid);
    let open = open_fds(pid);
    // Below what it has open (0, 1 and 2 stay): no new descriptor can be had.
    let limit = 3;
    assert!(limit < open, "{open} descriptors open");
    // The soft limit is what EMFILE follows; the hard one stays, so the soft one can
    // be raised back without CAP_SYS_RESOURCE.
    let lowered = format!("{limit}:");
    prlimit(pid, &lowered);
    let window = STALENESS * 3;
    let started = Instant::now();
    let mut answered_both = 0;
    let polls = poll_during(window, |_| {
        let got = sorted_addresses(server.addr, name);
        assert_eq!(
            got,
            both,
            "{} ms into the descriptor shortage",
            started.elapsed().as_millis()
        );
        answered_both += 1;
    });
    // Still short of descriptors: the kept connection shows why.
    let during = api.status();
    prlimit(pid, &format!("{soft}:"));
    assert_eq!(nofile(pid), soft);
    let restored_at = Instant::now();
    let after = api.status();
    let metrics = api.get("/metrics");
    for label in ["web/a", "web/b"] {
        let local = &endpoint(&during, label)["local"];
        assert_eq!(
            local["abstained"], "local fault: too many open files (EMFILE)",
            "{label}: {local}"
        );
        assert_eq!(local["abstaining"], true, "{label}: {local}");
        assert_eq!(local["verdict"], "up", "{label}: {local}");
        assert_eq!(endpoint(&during, label)["state"], "up");
    }
    let vantage = |status: &serde_json::Value| {
        status["vantages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "local")
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(vantage(&during)["impaired"], true, "{during}");
    assert_eq!(vantage(&during)["fresh"], false, "stale by now: {during}");
    assert_eq!(
        endpoint(&after, "web/a")["local"]["abstained"],
        "local fault: too many open files (EMFILE)",
        "{after}"
    );
    let abstentions = metric(
        &metrics,
        "failoverd_probe_abstentions_total{reason=\"fd_exhausted\"}",
    );
    assert!(abstentions >= 2.0, "{metrics}");
    assert_eq!(metric(&metrics, "failoverd_vantage_impaired"), 1.0);
    // Descriptors again: the probes vote, the verdicts are fresh, the flag clears
    // one staleness after the last abstention.
    assert!(
        wait_until(STALENESS * 5, || {
            let status = api.status();
            vantage(&status)["fresh"] == true
                && ["web/a", "web/b"].iter().all(|e| {
                    let local = &endpoint(&status, e)["local"];
                    local["ok"] == true && local["abstaining"].is_null()
                })
        }),
        "probes vote again: {}",
        api.status()
    );
    assert!(
        wait_until(STALENESS * 5, || {
            metric(&api.get("/metrics"), "failoverd_vantage_impaired") == 0.0
        }),
        "impaired clears"
    );
    let cleared_after = restored_at.elapsed();
    assert_eq!(sorted_addresses(server.addr, name), both);
    let events = api.get("/v1/events");
    assert!(
        events.contains("probe_impaired") && events.contains("probe_recovered"),
        "{events}"
    );
    eprintln!(
        "FIGURES probe_abstain fds_open={open} nofile={lowered} window_ms={} dns_polls={polls} \
         both_answered={answered_both} fd_exhausted_abstentions={abstentions} \
         impaired_cleared_after_ms={}",
        window.as_millis(),
        cleared_after.as_millis()
    );
}

#[test]
fn a_probe_that_cannot_be_prepared_or_started_abstains_alone() {
    let a = Backend::start(A.parse().unwrap(), 0, None);
    // Three pools: one probed normally, one whose TLS CA file is missing (its prober
    // cannot be built), one whose exec program does not exist.
    let text = format!(
        r#"{head}
[checks.web]
type = "http"
port = {port}
interval = "100ms"
[checks.tls]
type = "https"
port = {port}
ca_file = "no-such-ca.pem"
interval = "100ms"
[checks.run]
type = "exec"
command = ["/nonexistent/failoverd-check"]
interval = "100ms"
[pools.web]
check = "web"
endpoints = [{{ address = "{A}", name = "a" }}]
[pools.tls]
check = "tls"
endpoints = [{{ address = "{B}", name = "b" }}]
[pools.run]
check = "run"
endpoints = [{{ address = "127.0.0.4", name = "c" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web", "tls", "run"]
"#,
        head = crate::support::SERVER_HEAD,
        port = a.addr.port(),
    );
    let server = crate::support::TestServer::start_with(
        &text,
        failoverd::testing::service::StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    );
    let admin = server.service().admin_address().expect("admin API");
    let local = |label: &str| {
        server
            .service()
            .status()
            .endpoints
            .iter()
            .find(|e| e.endpoint == label)
            .and_then(|e| e.local.clone())
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            local("web/a").is_some_and(|l| l.ok)
                && local("tls/b").is_some_and(|l| l.abstaining)
                && local("run/c").is_some_and(|l| l.abstaining)
        }),
        "web/a {:?}, tls/b {:?}, run/c {:?}",
        local("web/a"),
        local("tls/b"),
        local("run/c")
    );
    // check-config saw it coming.
    let source = failoverd::testing::config::ConfigSource::from_text(
        text.clone(),
        crate::support::data_dir().join("configs"),
    );
    let warnings = failoverd::testing::service::load(source)
        .unwrap()
        .warnings
        .to_string();
    assert!(
        warnings.contains("checks.tls.ca_file: cannot read no-such-ca.pem")
            && warnings.contains("would abstain"),
        "{warnings}"
    );
    let tls = local("tls/b").unwrap().abstained.unwrap();
    assert!(
        tls.starts_with("local fault: client setup: TLS setup: ") && tls.contains("no-such-ca.pem"),
        "{tls}"
    );
    let run = local("run/c").unwrap().abstained.unwrap();
    assert!(
        run.starts_with("local fault: cannot run /nonexistent/failoverd-check: "),
        "{run}"
    );
    // Never voted down: the endpoints keep their (assumed) state.
    let status = server.service().status();
    for label in ["tls/b", "run/c"] {
        let e = status
            .endpoints
            .iter()
            .find(|e| e.endpoint == label)
            .unwrap();
        assert_eq!(e.state.to_string(), "up", "{label}");
        assert!(!e.local.as_ref().unwrap().ok);
    }
    let (code, metrics) = crate::support::http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    let client_setup = metric(
        &metrics,
        "failoverd_probe_abstentions_total{reason=\"client_setup\"}",
    );
    let spawn_failed = metric(
        &metrics,
        "failoverd_probe_abstentions_total{reason=\"spawn_failed\"}",
    );
    assert!(client_setup >= 1.0 && spawn_failed >= 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "failoverd_vantage_impaired"), 1.0);
    eprintln!(
        "FIGURES probe_abstain_setup client_setup={client_setup} spawn_failed={spawn_failed} \
         tls_reason={tls:?} exec_reason={run:?}"
    );
}
