//! The real binary: the embedded default, reloads, shutdown.

use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::dns::{addresses, ask};
use crate::support::{BinaryServer, data_dir, wait_until};

#[test]
fn embedded_default_serves_the_example_zone_and_dynamic_names() {
    // As `cargo run -- serve` does, on a free port instead of 5353.
    let server = BinaryServer::start(&["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let www = ask(server.addr, "www.gslb.example.com.", RecordType::A);
    assert!(www.metadata.authoritative);
    let mut got = addresses(&www);
    got.sort();
    assert_eq!(got, ["192.0.2.10", "192.0.2.11"]);
    let status = ask(server.addr, "status.gslb.example.com.", RecordType::TXT);
    assert_eq!(status.answers.len(), 1);
}

#[test]
fn the_embedded_default_keeps_a_drain_across_a_restart() {
    let args = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    let server = BinaryServer::start(&args);
    let admin = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .and_then(|line| crate::support::log_field(&line, "admin"))
        .expect("admin address");
    let url = vec![format!("http://{admin}")];
    let (ok, out) = crate::support::ctl_with(
        &url,
        None,
        &[
            "drain",
            "web-eu/eu-1",
            "--reason",
            "quick start",
            "--expires",
            "1h",
        ],
    );
    assert!(ok, "{out}");
    let dns = server.addr;
    let www = || addresses(&ask(dns, "www.gslb.example.com.", RecordType::A));
    assert!(wait_until(Duration::from_secs(2), || www() == ["192.0.2.11"]));
    // SIGKILL, then the same embedded default again: the drain is still in force from
    // the first answer on.
    let state_home = server.kill();
    let kept = state_home.path().join("failoverd/state.json");
    assert!(kept.exists(), "no state in {}", kept.display());
    let server = BinaryServer::start_in(state_home, &[], &args, &[]);
    let first = addresses(&ask(server.addr, "www.gslb.example.com.", RecordType::A));
    assert_eq!(
        first,
        ["192.0.2.11"],
        "the drained endpoint was answered after the restart"
    );
}

fn signal(server: &BinaryServer, signal: i32) {
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(server.pid() as i32, signal) };
    assert_eq!(rc, 0);
}

#[test]
fn a_bad_reload_keeps_the_last_good_config_and_a_good_one_applies() {
    let dir = tempfile::tempdir().unwrap();
    let zones = data_dir().join("zones");
    let config = dir.path().join("failoverd.toml");
    let write = |address: &str, weight: &str| {
        let text = format!(
            "version = 1\n[zones]\ndirectory = {:?}\n[pools.p]\nendpoints = [{{ address = {address:?}, weight = {weight} }}]\n\
             [[records]]\nname = \"app.example.test\"\ntype = \"A\"\npolicy = \"failover\"\npools = [\"p\"]\n",
            zones.display().to_string()
        );
        std::fs::write(&config, text).unwrap();
    };
    write("192.0.2.1", "1");
    let server = BinaryServer::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(
        addresses(&ask(server.addr, "app.example.test.", RecordType::A)),
        ["192.0.2.1"]
    );

    write("192.0.2.2", "-1");
    signal(&server, libc::SIGHUP);
    let line = server.wait_for_log("reload failed", Duration::from_secs(20));
    assert!(line.is_some(), "the failed reload is logged");
    assert_eq!(
        addresses(&ask(server.addr, "app.example.test.", RecordType::A)),
        ["192.0.2.1"]
    );

    write("192.0.2.2", "1");
    signal(&server, libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(20), || {
        addresses(&ask(server.addr, "app.example.test.", RecordType::A)) == ["192.0.2.2"]
    }));
}

#[test]
fn sigterm_stops_the_server() {
    let mut server =
        BinaryServer::start(&["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    signal(&server, libc::SIGTERM);
    assert!(
        server
            .wait_for_log("shutting down", Duration::from_secs(20))
            .is_some()
    );
    assert!(wait_until(Duration::from_secs(20), || server.try_exited()));
}

#[test]
fn the_deploy_kit_installs_binary_units_man_pages_and_completions() {
    let dest = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/install.sh");
    let output = std::process::Command::new("sh")
        .arg(script)
        .arg(crate::support::binary())
        .env("DESTDIR", dest.path())
        .env("PREFIX", "/usr")
        .output()
        .expect("run install.sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let root = dest.path();
    for file in [
        "usr/bin/failoverd",
        "etc/systemd/system/failoverd.service",
        "etc/systemd/system/failoverd-probe.service",
        "usr/share/man/man1/failoverd.1",
        "usr/share/man/man1/failoverd-ctl-explain.1",
        "usr/share/bash-completion/completions/failoverd",
        "usr/share/zsh/site-functions/_failoverd",
        "usr/share/fish/vendor_completions.d/failoverd.fish",
        "etc/failoverd/tokens/oncall",
    ] {
        let meta = std::fs::metadata(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/failoverd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/failoverd"), "{unit}");
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/failoverd"))
            .unwrap();
    assert!(
        bash.contains("drain") && bash.contains("explain"),
        "completions name ctl's commands"
    );
    // The generated token is long enough for [[admin.tokens]], and mode 0600 (a
    // secret file group or others may read is refused).
    let token = std::fs::read_to_string(root.join("etc/failoverd/tokens/oncall")).unwrap();
    assert_eq!(token.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(root.join("etc/failoverd/tokens/oncall"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_documented_example_config_checks_clean() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let (ok, out) = crate::support::run_binary(&["check-config", path, "--deny-warnings"]);
    assert!(ok, "{out}");
}

/// `python3 -m http.server --bind ADDR 8080` serving an empty directory, killed on
/// drop.
struct DemoBackend {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl DemoBackend {
    fn start(addr: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", addr, "8080", "--directory"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect((addr, 8080)).is_ok()
        });
        assert!(up, "the demo backend on {addr}:8080 did not start");
        Self { child, _dir: dir }
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_first_minute_demo_fails_over_between_two_loopback_backends() {
    let server = BinaryServer::start(&["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let demo = |server: &BinaryServer| {
        let mut got = addresses(&ask(server.addr, "demo.gslb.example.com.", RecordType::A));
        got.sort();
        got
    };
    // Neither backend runs: the record fails open, so a bare machine still answers.
    assert_eq!(demo(&server), ["127.0.0.2"]);
    // Only the second runs: the first is seen down, the answer fails over.
    let _b = DemoBackend::start("127.0.0.3");
    assert!(wait_until(Duration::from_secs(5), || demo(&server) == ["127.0.0.3"]));
    // The first comes up: the answer returns to it.
    let a = DemoBackend::start("127.0.0.2");
    assert!(wait_until(Duration::from_secs(5), || demo(&server) == ["127.0.0.2"]));
    drop(a);
    let stopped = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || demo(&server) == ["127.0.0.3"]),
        "demo did not move to the second backend"
    );
    eprintln!("FIGURES demo failover_ms={}", stopped.elapsed().as_millis());
    assert!(stopped.elapsed() < Duration::from_secs(3));
    let _a = DemoBackend::start("127.0.0.2");
    assert!(wait_until(Duration::from_secs(5), || demo(&server) == ["127.0.0.2"]));
}

#[test]
fn runbook_prints_the_commands_for_a_record() {
    let output = std::process::Command::new(crate::support::binary())
        .args(["runbook", "www.gslb.example.com", "--type", "A"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("failoverd ctl --server http://127.0.0.1:9353 failover www.gslb.example.com. --type A --to web-us"), "{text}");
    let unknown = std::process::Command::new(crate::support::binary())
        .args(["runbook", "nope.gslb.example.com"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no dynamic record nope.gslb.example.com.")
    );
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_lone_server_idles_after_an_override() {
    // A server with no peers to share overrides with must not spin once one changes.
    let server = BinaryServer::start(&["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let line = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .expect("admin API");
    let admin: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .and_then(|a| a.parse().ok())
        .expect("admin address");
    let body =
        br#"{"target": {"endpoint": "web-eu/eu-1"}, "action": "drain", "reason": "idle test"}"#;
    let (status, text) = crate::support::http(
        admin,
        "POST",
        "/v1/overrides",
        &[("content-type", "application/json")],
        body,
    );
    assert_eq!(status, 200, "{text}");
    let before = cpu_ticks(server.pid());
    let started = std::time::Instant::now();
    // Throughout two seconds, the server's CPU time stays below a fifth of the
    // wall time (checked every poll, after the first half second).
    crate::support::poll_during(Duration::from_secs(2), |_| {
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed < 0.5 {
            return;
        }
        let used = (cpu_ticks(server.pid()) - before) as f64 / 100.0 / elapsed;
        assert!(
            used < 0.2,
            "the server used {:.0} % of a core while idle",
            used * 100.0
        );
    });
}

/// `failoverd runbook … | head -1`: the reader gone, the command ends quietly with
/// 141 (as a shell reports SIGPIPE), never with a panic on the broken pipe.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two descriptors this test then owns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // The reader is gone before the command writes a byte.
    // SAFETY: fds[0] is ours and closed once.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is ours; the Stdio takes it.
    let stdout = unsafe { std::process::Stdio::from_raw_fd(fds[1]) };
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let output = std::process::Command::new(crate::support::binary())
        .args(["runbook", "www.gslb.example.com", "--config"])
        .arg(&config)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{:?}", output.status);
}
