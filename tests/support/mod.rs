//! The one test support tree, shared by every test binary (`mod support;` in
//! `tests/*.rs`, `#[path = "../support/mod.rs"]` in `tests/it/main.rs`): servers
//! in-process or as the real binary, a DNS client over real sockets (messages built
//! and parsed with hickory-proto, independent of our encoder), peers and validators
//! to compare with, PostgreSQL, the Route 53 harness over moto ([`moto`]), the
//! network-namespace cluster ([`cluster`]), and [`require!`] for what a test needs
//! from the machine.

#![allow(dead_code, unreachable_pub)]

pub mod require;

pub mod backend;
pub mod cluster;
pub mod delay;
pub mod dns;
pub mod moto;
pub mod peers;
pub mod postgres;
pub mod validators;

pub(crate) use require::require;
pub use require::{Missing, Need};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use failoverd::config::ConfigSource;
use failoverd::service::{self, Service, StartOptions};

/// Logs to the test output when `RUST_LOG` is set (debugging aid).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Directory of test data.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Backend addresses of [`two_backend_config`].
pub const BACKEND_A: &str = "127.0.0.2";
/// The second backend address.
pub const BACKEND_B: &str = "127.0.0.3";

/// A server config with pool `web` (endpoints a = [`BACKEND_A`] and b = [`BACKEND_B`],
/// HTTP-checked on `port` with the check keys `check`) answered by multivalue
/// `app.example.test` (TTL 5).
pub fn two_backend_config(port: u16, check: &str) -> String {
    format!(
        r#"{SERVER_HEAD}
[checks.web]
type = "http"
port = {port}
{check}
[pools.web]
check = "web"
endpoints = [{{ address = "{BACKEND_A}", name = "a" }}, {{ address = "{BACKEND_B}", name = "b" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 5
policy = "multivalue"
pools = ["web"]
"#
    )
}

/// The start of a test server's config: version, DNS on an ephemeral loopback port,
/// the `example.test` zone.
pub const SERVER_HEAD: &str = r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "../zones"
files = ["example.test.zone"]"#;

/// The integration config text.
pub fn integration_config() -> String {
    std::fs::read_to_string(data_dir().join("configs/integration.toml")).expect("integration.toml")
}

/// A service (server or agent) running in this process, on a runtime of its own.
struct InProcess {
    service: Option<Service>,
    runtime: tokio::runtime::Runtime,
}

impl InProcess {
    fn start(config: &str, options: StartOptions, agent: bool) -> Self {
        init_logging();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(if agent { 1 } else { 2 })
            .enable_all()
            .build()
            .expect("runtime");
        let reader = if agent {
            service::Reader::Agent {
                vantage: options.vantage.clone(),
            }
        } else {
            service::Reader::Server
        };
        let source = ConfigSource::from_text(config, data_dir().join("configs")).read_by(reader);
        let loaded = match service::load(source) {
            Ok(loaded) => loaded,
            Err(diagnostics) => panic!("test config invalid:\n{diagnostics}"),
        };
        let service = runtime
            .block_on(async {
                if agent {
                    Service::start_agent(loaded, options).await
                } else {
                    Service::start_with(loaded, options).await
                }
            })
            .expect("service starts");
        Self {
            service: Some(service),
            runtime,
        }
    }

    fn service(&self) -> &Service {
        self.service.as_ref().expect("running")
    }

    fn reload(&self, config: &str) -> Result<(), failoverd::config::Diagnostics> {
        let source = ConfigSource::from_text(config, data_dir().join("configs"));
        self.runtime
            .block_on(self.service().reload(source))
            .map(|_| ())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            self.runtime.block_on(service.shutdown());
        }
    }
}

/// A server running in this process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    inner: InProcess,
}

impl TestServer {
    /// Starts a server from config text whose relative paths resolve against
    /// `tests/data/configs`.
    pub fn start(config: &str) -> Self {
        Self::start_with(config, StartOptions::default())
    }

    /// As [`TestServer::start`], with start-up options.
    pub fn start_with(config: &str, options: StartOptions) -> Self {
        let inner = InProcess::start(config, options, false);
        let addr = inner.service().addresses()[0];
        Self { addr, inner }
    }

    /// As [`TestServer::start`], with the admin API on an ephemeral loopback port;
    /// returns the server and that port.
    pub fn with_admin(config: &str) -> (Self, SocketAddr) {
        let server = Self::start_with(
            config,
            StartOptions {
                admin_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..StartOptions::default()
            },
        );
        let admin = server.service().admin_address().expect("admin API");
        (server, admin)
    }

    /// The integration config.
    pub fn integration() -> Self {
        Self::start(&integration_config())
    }

    /// The running service.
    pub fn service(&self) -> &Service {
        self.inner.service()
    }

    /// Reloads the server from config text (paths relative to `tests/data/configs`).
    pub fn reload(&self, config: &str) -> Result<(), failoverd::config::Diagnostics> {
        self.inner.reload(config)
    }
}

/// A probe agent (`failoverd probe`) running in this process.
pub struct TestAgent {
    inner: InProcess,
}

impl TestAgent {
    /// Starts an agent for `vantage` from config text.
    pub fn start(config: &str, vantage: &str) -> Self {
        Self::start_with(config, vantage, None)
    }

    /// As [`TestAgent::start`], with an admin API on `admin` if given.
    pub fn start_with(config: &str, vantage: &str, admin: Option<SocketAddr>) -> Self {
        let options = StartOptions {
            vantage: Some(vantage.to_owned()),
            admin_listen: admin,
            ..StartOptions::default()
        };
        Self {
            inner: InProcess::start(config, options, true),
        }
    }

    /// The running agent.
    pub fn service(&self) -> &Service {
        self.inner.service()
    }

    /// Reloads the agent from config text.
    pub fn reload(&self, config: &str) -> Result<(), failoverd::config::Diagnostics> {
        self.inner.reload(config)
    }
}

/// A minimal HTTP/1.1 request over a real socket; returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, body, _) = http_with_headers(addr, method, path, headers, body);
    (status, body)
}

/// As [`http`], also returning the response headers (names in lower case).
pub fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, std::collections::BTreeMap<String, String>) {
    let host = addr.to_string();
    let mut all = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    http_exactly(addr, method, path, &all, body)
}

/// An HTTP/1.1 request with exactly `headers` (no Host unless given) besides
/// `connection` and `content-length`: (status, body, response headers).
pub fn http_exactly(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, std::collections::BTreeMap<String, String>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, body, headers)
}

/// The real binary, killed on drop.
pub struct BinaryServer {
    pub addr: SocketAddr,
    child: Child,
    pub log: mpsc::Receiver<String>,
    /// Its XDG_STATE_HOME (where the embedded default keeps its state).
    state_home: tempfile::TempDir,
}

/// The lines a child writes to its (piped) stderr, as they come.
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The value of field `name` in a log line of either format: `name=VALUE` (text)
/// or `"name":"VALUE"` (JSON).
pub fn log_field(line: &str, name: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json["fields"][name].as_str().map(str::to_owned);
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
}

/// Writes a secret file (a token, a key, a password) with mode 0600, as failoverd
/// requires of every secret file.
pub fn write_secret(path: impl AsRef<std::path::Path>, contents: impl AsRef<[u8]>) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()));
    file.write_all(contents.as_ref()).unwrap();
}

/// Path of the built binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_failoverd")
}

impl BinaryServer {
    /// Runs `failoverd serve ARGS…` and waits (60 s deadline) for its listening line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_wrapped(&[], args)
    }

    /// As [`BinaryServer::start`], run by `wrapper` (a command and its arguments that
    /// end with the program to run, e.g. `prlimit --nofile=256:256 --`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), wrapper, args, &[])
    }

    /// As [`BinaryServer::start`], with these variables added to its environment.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), &[], args, env)
    }

    /// As [`BinaryServer::start_wrapped`], with `state_home` as its XDG_STATE_HOME
    /// (where the embedded default keeps its state; a restart that should find it
    /// again gets the same one) and `env` added to its environment.
    pub fn start_in(
        state_home: tempfile::TempDir,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        let mut child = command
            .env("XDG_STATE_HOME", state_home.path())
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn failoverd");
        let rx = stderr_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = log_field(&line, "udp").and_then(|a| a.parse().ok()) {
                        return Self {
                            addr,
                            child,
                            log: rx,
                            state_home,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "failoverd did not start within 60 s; output:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits (with a deadline) for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Stops the server (SIGKILL) and hands back its XDG_STATE_HOME.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let state_home = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.state_home, state_home)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn try_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `failoverd ctl` against `servers` (with the token file, if any) and `args`;
/// returns (exit success, stdout and stderr).
pub fn ctl_with(
    servers: &[String],
    token: Option<&std::path::PathBuf>,
    args: &[&str],
) -> (bool, String) {
    let mut command = Command::new(binary());
    command.arg("ctl").env_remove("FAILOVERD_TOKEN");
    for server in servers {
        command.args(["--server", server]);
    }
    if let Some(token) = token {
        command.arg("--token-file").arg(token);
    }
    let output = command.args(args).output().expect("run failoverd ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes `text` as `failoverd.toml` in `dir` (zones from the test data: a
/// `directory = "../zones"` line is pointed there) and runs `failoverd serve` on it
/// under `wrapper` (e.g. `["prlimit", "--nofile=256:256", "--"]`), with the admin API
/// on an ephemeral loopback port. Returns the server and its admin address.
pub fn serve_config(
    dir: &std::path::Path,
    text: &str,
    wrapper: &[&str],
) -> (BinaryServer, SocketAddr) {
    let path = dir.join("failoverd.toml");
    let text = text.replace(
        "directory = \"../zones\"",
        &format!("directory = \"{}\"", data_dir().join("zones").display()),
    );
    std::fs::write(&path, text).expect("write config");
    let server = BinaryServer::start_wrapped(
        wrapper,
        &[
            "--config",
            path.to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let line = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .expect("admin API starts");
    let admin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in {line:?}"));
    (server, admin)
}

/// Runs `failoverd ARGS…` to completion; returns (exit success, stderr).
pub fn run_binary(args: &[&str]) -> (bool, String) {
    let output = Command::new(binary())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run failoverd");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the binary; returns whether it succeeded and its standard output.
pub fn run_binary_stdout(args: &[&str]) -> (bool, String) {
    let output = Command::new(binary())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run failoverd");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Calls `check` every 20 ms for `period` (it asserts whatever must hold
/// throughout); returns how many times it ran.
pub fn poll_during(period: Duration, mut check: impl FnMut(usize)) -> usize {
    let deadline = Instant::now() + period;
    let mut polls = 0;
    while Instant::now() < deadline {
        check(polls);
        polls += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    polls
}

/// Polls `condition` every 10 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
