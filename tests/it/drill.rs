//! `failoverd drill` end to end: a server, a real caching resolver in front of it
//! (Debian's unbound, stub zone to the server, on loopback), and both modes — a
//! cluster-wide force, and a command that breaks the backend for real so the probes
//! must notice. The report's figures: detection and recovery at the server, and at the
//! resolver no later than the TTL allows. The break and restore commands return 2 s
//! after their effect (`… && sleep 2`): the servers are polled while they run, so the
//! figures are the effect's, and the report says when each command returned.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use failoverd::testing::service::StartOptions;
use hickory_proto::rr::RecordType;

use crate::support::dns::{addresses, query, udp};
use crate::support::require::{Missing, Need, install_hint};
use crate::support::{SERVER_HEAD, TestServer, binary, require, wait_until};

const TTL: u32 = 2;

fn config(dir: &Path) -> String {
    format!(
        r#"{SERVER_HEAD}
[checks.file]
type = "exec"
command = ["sh", "-c", "test ! -e \"$0/broken-$FAILOVERD_ADDRESS\"", "{dir}"]
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2
[pools.web]
check = "file"
endpoints = [{{ address = "127.0.0.2", name = "a" }}, {{ address = "127.0.0.3", name = "b" }}]
[[records]]
name = "drill.example.test"
type = "A"
ttl = {TTL}
min_ttl = 1
policy = "multivalue"
pools = ["web"]
"#,
        dir = dir.display()
    )
}

/// unbound on a free loopback port, stub zone example.test to `server`; killed on drop.
struct Unbound {
    addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Debian's unbound (in /usr/sbin, which a user's PATH may lack).
fn unbound_binary() -> Need<&'static str> {
    ["/usr/sbin/unbound", "/usr/bin/unbound"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| Missing::new("unbound", install_hint("unbound")))
}

impl Unbound {
    fn start(binary: &str, server: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-tcp: yes\n  \
                 access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  username: \"\"\n  \
                 chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  logfile: \"\"\n  \
                 use-syslog: no\n  verbosity: 1\n  num-threads: 1\n  module-config: \"iterator\"\n  \
                 qname-minimisation: no\n  local-zone: \"test.\" nodefault\n  domain-insecure: \"example.test\"\n  \
                 prefetch: no\n  serve-expired: no\n  cache-min-ttl: 0\n\
                 stub-zone:\n  name: \"example.test\"\n  stub-addr: 127.0.0.1@{sp}\n",
                d = dir.path().display(),
                sp = server.port()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let unbound = Self {
            addr,
            child,
            _dir: dir,
        };
        let up = wait_until(Duration::from_secs(10), || {
            crate::support::dns::raw_udp_wait(
                addr,
                &query("drill.example.test.", RecordType::A)
                    .to_vec()
                    .unwrap(),
                Duration::from_millis(200),
            )
            .is_some()
        });
        assert!(up, "unbound did not answer on {addr}");
        unbound
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drill(
    admin: SocketAddr,
    dns: SocketAddr,
    resolver: SocketAddr,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let output = Command::new(binary())
        .args([
            "drill",
            "drill.example.test",
            "--endpoint",
            "web/b",
            "--interval",
            "50ms",
            "--timeout",
            "20s",
        ])
        .args([
            "--server",
            &format!("http://{admin}"),
            "--dns",
            &dns.to_string(),
        ])
        .args(["--resolver", &resolver.to_string(), "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run failoverd drill");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["report.md", "timeline.svg"] {
        assert!(out.join(file).exists(), "{file} written");
    }
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn a_drill_measures_detection_and_recovery_at_the_server_and_through_unbound() {
    let unbound = require!(unbound_binary());
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        &config(dir.path()),
        StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StartOptions::default()
        },
    );
    let admin = server.service().admin_address().unwrap();
    let both = || {
        let mut got = addresses(&udp(
            server.addr,
            &query("drill.example.test.", RecordType::A),
        ));
        got.sort();
        got == ["127.0.0.2", "127.0.0.3"]
    };
    assert!(wait_until(Duration::from_secs(5), both));
    let unbound = Unbound::start(unbound, server.addr);
    let keep = std::env::var_os("FAILOVERD_DRILL_REPORT").map(std::path::PathBuf::from);
    for mode in ["force", "command"] {
        let out = keep
            .clone()
            .map_or_else(|| dir.path().join(mode), |k| k.join(mode));
        let broken = dir.path().join("broken-127.0.0.3");
        let extra: Vec<String> = match mode {
            "force" => vec!["--mode".into(), "force".into()],
            _ => vec![
                "--mode".into(),
                "command".into(),
                "--break".into(),
                format!("touch {} && sleep 2", broken.display()),
                "--restore".into(),
                format!("rm -f {} && sleep 2", broken.display()),
            ],
        };
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let report = drill(admin, server.addr, unbound.addr, &out, &extra);
        let f = &report["figures"];
        let ms = |key: &str| {
            f[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{mode}: {key} not measured: {f}"))
        };
        eprintln!(
            "FIGURES drill mode={mode} detection_ms={} all_servers_out_ms={} resolver_out_ms={} recovery_ms={} all_servers_back_ms={} resolver_back_ms={}",
            ms("detection_ms"),
            ms("all_servers_out_ms"),
            ms("resolver_out_ms"),
            ms("recovery_detection_ms"),
            ms("all_servers_back_ms"),
            ms("resolver_back_ms")
        );
        // The resolver follows within the TTL: unbound counts it in whole seconds (up
        // to one more), plus a poll.
        let bound = (u64::from(TTL) + 1) * 1000 + 200;
        assert!(
            ms("resolver_out_ms") <= ms("all_servers_out_ms") + bound,
            "{f}"
        );
        assert!(
            ms("resolver_back_ms") <= ms("all_servers_back_ms") + bound,
            "{f}"
        );
        if mode == "command" {
            // The probes must have seen it: fall 2 at 200 ms (fast confirm) at the least.
            assert!(ms("detection_ms") >= 100, "{f}");
            // Polled while the commands ran: the times are the probes', well before
            // the commands returned (2 s after their effect).
            eprintln!(
                "FIGURES drill mode=command break_returned_ms={} restore_returned_ms={}",
                ms("break_returned_ms"),
                ms("restore_returned_ms")
            );
            assert!(ms("break_returned_ms") >= 2000, "{f}");
            assert!(ms("restore_returned_ms") >= 2000, "{f}");
            assert!(
                ms("all_servers_out_ms") + 500 < ms("break_returned_ms"),
                "{f}"
            );
            assert!(
                ms("all_servers_back_ms") + 500 < ms("restore_returned_ms"),
                "{f}"
            );
            let report = std::fs::read_to_string(out.join("report.md")).unwrap();
            assert!(
                report.contains("every server was polled while they ran"),
                "{report}"
            );
        }
        assert!(!broken.exists(), "restored");
    }
    assert!(
        wait_until(Duration::from_secs(5), both),
        "every endpoint is back after the drills"
    );
}
