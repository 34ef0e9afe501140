//! The runbook's commands run as printed: every command of the runbook of every record
//! of the example configurations, against the real binary serving them; and, with
//! backends that are up, every probe command makes the request its check makes and
//! passes exactly when the check does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use failoverd::testing::ops::runbook::{RunbookCommand, commands};

use crate::support::backend::{Backend, Mode, TestPki};
use crate::support::{BinaryServer, binary, http, wait_until, write_secret};

/// A server started from a test copy of a configuration.
struct Served {
    server: BinaryServer,
    admin: SocketAddr,
    config: PathBuf,
    token: Option<String>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Writes `text` as `failoverd.toml` in a fresh directory (with `files` beside it)
    /// and serves it on ephemeral ports.
    fn start(text: &str, files: &[(&str, &str)], extra: &[&str], token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, contents) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_secret(&path, contents);
        }
        let config = dir.path().join("failoverd.toml");
        std::fs::write(&config, text).unwrap();
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let server = BinaryServer::start(&args);
        let line = server
            .wait_for_log("admin API listening", Duration::from_secs(20))
            .expect("admin API starts");
        let admin = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("admin="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no admin address in {line:?}"));
        let served = Self {
            server,
            admin,
            config,
            token: token.map(str::to_owned),
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(20), || served.get("/readyz").0 == 200),
            "the server did not become ready"
        );
        served
    }

    fn get(&self, path: &str) -> (u16, String) {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("authorization", b)])
            .unwrap_or_default();
        http(self.admin, "GET", path, &headers, b"")
    }

    /// Whether this server's own last probe of `endpoint` passed (a vote up).
    fn local_probe_passed(&self, endpoint: &str) -> bool {
        let (status, text) = self.get("/v1/status");
        assert_eq!(status, 200, "{text}");
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        status["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint"] == endpoint)
            .and_then(|e| e.get("local"))
            .is_some_and(|local| {
                local["ok"] == true
                    && local.get("abstaining") != Some(&serde_json::Value::Bool(true))
            })
    }

    /// `failoverd runbook NAME` for this server.
    fn runbook(&self, name: &str) -> String {
        let output = Command::new(binary())
            .args(["runbook", name, "--config"])
            .arg(&self.config)
            .args(["--server", &format!("http://{}", self.admin)])
            .args(["--dns", &self.server.addr.to_string()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// What one command did.
struct Ran {
    command: RunbookCommand,
    code: Option<i32>,
    output: String,
}

/// Runs `command` with `sh -c` in `cwd`, the binary first on the PATH.
fn run(command: &RunbookCommand, cwd: &Path, token: Option<&str>) -> Ran {
    let bin_dir = Path::new(binary()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut sh = Command::new("sh");
    sh.args(["-c", &command.line])
        .current_dir(cwd)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("FAILOVERD_TOKEN");
    if let Some(token) = token {
        sh.env("FAILOVERD_TOKEN", token);
    }
    let output = sh.output().expect("run sh");
    Ran {
        command: command.clone(),
        code: output.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The unique record names of a config text.
fn record_names(text: &str) -> Vec<String> {
    let value: toml::Value = toml::from_str(text).unwrap();
    let mut names: Vec<String> = value["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.dedup();
    names
}

/// Runs every command of the runbook of every record of `text` against `served`:
/// each must exit 0 — but a probe command, whose exit status must be the check's
/// verdict (the endpoints of the example configurations are documentation
/// addresses nobody answers at: their checks fail, and so must the commands), and
/// the drill, which may refuse to start when the endpoint is not in every answer
/// (here: the health the example's unreachable endpoints have). Returns the
/// commands run.
fn run_every_runbook(served: &Served, text: &str) -> usize {
    let cwd = tempfile::tempdir().unwrap();
    let mut ran = 0;
    let mut failures = Vec::new();
    for name in record_names(text) {
        let book = served.runbook(&name);
        let found = commands(&book);
        assert!(found.len() >= 3, "too few commands in:\n{book}");
        for command in found {
            let result = run(&command, cwd.path(), served.token.as_deref());
            ran += 1;
            let passed = result.code == Some(0);
            let fine = match &result.command.probe {
                Some(endpoint) => passed == served.local_probe_passed(endpoint),
                None if result.command.line.starts_with("failoverd drill") => {
                    passed || result.output.contains("nothing to drill")
                }
                None => passed,
            };
            if !fine {
                failures.push(format!(
                    "{}\n  exit {:?}\n  {}",
                    result.command.line,
                    result.code,
                    result.output.trim().replace('\n', "\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    ran
}

#[test]
fn every_runbook_command_of_config_example_toml_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = std::fs::read_to_string(root.join("config/example.toml")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut text = original.clone();
    for (from, to) in [
        (
            "directory = \"../zones\"".to_owned(),
            format!("directory = \"{}\"", root.join("zones").display()),
        ),
        (
            "state_file = \"/var/lib/failoverd/state.json\"".to_owned(),
            format!(
                "state_file = \"{}\"",
                state.path().join("state.json").display()
            ),
        ),
        // No peers: this test's server is alone.
        (
            "servers = [\"http://127.0.0.1:9353\"]".to_owned(),
            "servers = []".to_owned(),
        ),
    ] {
        assert!(text.contains(&from), "config/example.toml lacks {from}");
        text = text.replace(&from, &to);
    }
    let served = Served::start(&text, &[], &[], None);
    let ran = run_every_runbook(&served, &original);
    eprintln!("FIGURES runbook config/example.toml commands_run={ran}");
}

#[test]
fn every_runbook_command_of_the_deploy_example_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/example");
    let original = std::fs::read_to_string(root.join("failoverd.toml")).unwrap();
    let text = original.replace(
        "directory = \"zones\"",
        &format!("directory = \"{}\"", root.join("zones").display()),
    );
    assert_ne!(text, original, "the deploy example's zones directory moved");
    let token = "runbook-test-token-0123456789";
    let files = [
        ("secrets/s1", "secret-of-s1-for-the-runbook-test"),
        ("secrets/s2", "secret-of-s2-for-the-runbook-test"),
        ("secrets/s3", "secret-of-s3-for-the-runbook-test"),
        ("secrets/a4", "secret-of-a4-for-the-runbook-test"),
        ("secrets/oncall.token", token),
    ];
    let served = Served::start(&text, &files, &["--vantage", "s1"], Some(token));
    let ran = run_every_runbook(&served, &original);
    eprintln!("FIGURES runbook deploy/example/failoverd.toml commands_run={ran}");
}

/// A DNS server on 127.0.1.5 answering every query NOERROR with one A record.
fn dns_backend() -> SocketAddr {
    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, Record, rdata::A};
    let socket = std::net::UdpSocket::bind("127.0.1.5:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            for q in query.queries.iter() {
                reply.add_query(q.clone());
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    60,
                    RData::A(A::new(192, 0, 2, 1)),
                ));
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
    });
    addr
}

#[test]
fn probe_commands_make_the_request_of_their_check_and_agree_with_it() {
    let pki = TestPki::new();
    let https = Backend::start(
        "127.0.0.1".parse().unwrap(),
        0,
        Some(pki.leaf("app.example.test", false)),
    );
    https.set(Mode::Status(202));
    let tcp = Backend::start("127.0.1.4".parse().unwrap(), 0, None);
    let dns = dns_backend();
    let pwned = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "{zones}"
files = ["example.test.zone"]
[checks.web]
type = "https"
port = {https_port}
method = "POST"
path = "/health?a=1&b=$(touch${{IFS}}{pwned}/x)&c=[1-2]{{a,b}}"
host = "app.example.test"
headers = {{ "X-Probe" = "it's me" }}
expect_status = [204, "200-202"]
expect_body = "ok"
ca_file = "{ca}"
interval = "1s"
timeout = "800ms"
rise = 1
fall = 1
[checks.port]
type = "tcp"
port = {tcp_port}
interval = "1s"
timeout = "800ms"
rise = 1
fall = 1
[checks.resolver]
type = "dns"
port = {dns_port}
query_name = "health.example.net"
query_type = "A"
interval = "1s"
timeout = "800ms"
rise = 1
fall = 1
[checks.script]
type = "exec"
command = ["sh", "-c", "test \"$1\" = 127.0.1.6 && test \"$FAILOVERD_ENDPOINT\" = x/x", "x", "{{address}}"]
interval = "1s"
timeout = "800ms"
rise = 1
fall = 1
[pools.web]
check = "web"
endpoints = [{{ address = "127.0.0.1", name = "w" }}]
[pools.tcp]
check = "port"
endpoints = [{{ address = "127.0.1.4", name = "t" }}]
[pools.dns]
check = "resolver"
endpoints = [{{ address = "127.0.1.5", name = "d" }}]
[pools.x]
check = "script"
endpoints = [{{ address = "127.0.1.6", name = "x" }}]
[[records]]
name = "r1.example.test"
type = "A"
ttl = 1
policy = "failover"
pools = ["tcp", "web"]
[[records]]
name = "r2.example.test"
type = "A"
ttl = 1
policy = "failover"
pools = ["web", "tcp"]
[[records]]
name = "r3.example.test"
type = "A"
ttl = 1
policy = "weighted"
pools = ["web", "dns"]
[[records]]
name = "r4.example.test"
type = "A"
ttl = 1
policy = "failover"
pools = ["web", "x"]
"#,
        zones = crate::support::data_dir().join("zones").display(),
        https_port = https.addr.port(),
        tcp_port = tcp.addr.port(),
        dns_port = dns.port(),
        pwned = pwned.path().display(),
        ca = pki.ca_file.display(),
    );
    let served = Served::start(&config, &[], &[], None);
    let every = ["web/w", "tcp/t", "dns/d", "x/x"];
    assert!(
        wait_until(Duration::from_secs(20), || every
            .iter()
            .all(|e| served.local_probe_passed(e))),
        "the checks did not pass: {}",
        served.get("/v1/status").1
    );
    let cwd = tempfile::tempdir().unwrap();
    let mut probed = std::collections::BTreeSet::new();
    for name in [
        "r1.example.test",
        "r2.example.test",
        "r3.example.test",
        "r4.example.test",
    ] {
        let book = served.runbook(name);
        for command in commands(&book) {
            let result = run(&command, cwd.path(), None);
            assert_eq!(
                result.code,
                Some(0),
                "{}\n{}\nin:\n{book}",
                command.line,
                result.output
            );
            if let Some(endpoint) = &command.probe {
                probed.insert(endpoint.clone());
            }
        }
    }
    assert_eq!(
        probed.into_iter().collect::<Vec<_>>(),
        ["dns/d", "tcp/t", "web/w", "x/x"]
    );
    // Nothing in the check's path ran in a shell.
    assert_eq!(std::fs::read_dir(pwned.path()).unwrap().count(), 0);
    // The HTTPS probe command and the check sent the same request.
    let heads: std::collections::BTreeSet<String> =
        https.requests().iter().map(|r| normalized(r)).collect();
    assert_eq!(
        heads.len(),
        1,
        "the probe command and the check sent different requests: {:?}",
        heads
            .iter()
            .map(|h| h.replace("\r", ""))
            .collect::<Vec<_>>()
    );
    let head = heads.into_iter().next().unwrap();
    assert!(
        head.starts_with("POST /health?a=1&b=$(touch${IFS}"),
        "{head}"
    );
    // A status the check refuses: the command fails too.
    https.set(Mode::Status(503));
    let web = commands(&served.runbook("r1.example.test"))
        .into_iter()
        .find(|c| c.probe.as_deref() == Some("web/w"))
        .unwrap();
    let refused = run(&web, cwd.path(), None);
    assert_eq!(refused.code, Some(1), "{}", refused.output);
    assert!(
        refused.output.contains("status 503: down"),
        "{}",
        refused.output
    );
    assert!(wait_until(Duration::from_secs(10), || !served
        .local_probe_passed("web/w")));
    https.set(Mode::Body("not it".into()));
    let body = run(&web, cwd.path(), None);
    assert_eq!(body.code, Some(1), "{}", body.output);
    drop(tcp);
    let tcp_probe = commands(&served.runbook("r2.example.test"))
        .into_iter()
        .find(|c| c.probe.as_deref() == Some("tcp/t"))
        .unwrap();
    assert_ne!(run(&tcp_probe, cwd.path(), None).code, Some(0));
}

/// A request head with the lines both clients send, in one order (method and target,
/// host, user agent, the check's header), lower-case names.
fn normalized(head: &str) -> String {
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default().to_owned();
    let mut kept: Vec<String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .filter(|(name, _)| ["host", "user-agent", "x-probe"].contains(&name.as_str()))
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    kept.sort();
    format!("{first}\n{}", kept.join("\n"))
}
