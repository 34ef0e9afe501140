//! Operator control across a cluster of three servers: every change made through
//! `failoverd ctl` (the real binary) reaches every server's answers over a real
//! socket, survives a restart, reaches a server that was down when it was made, and
//! ends by itself when it expires; callers without the right token, and malformed
//! bodies, change nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use failoverd::testing::service::StartOptions;

use crate::support::dns::{expect_addresses, sorted_addresses};
use crate::support::{SERVER_HEAD, TestServer, ctl_with, http, wait_until};

pub(crate) const OPERATE: &str = "operate-token-of-the-oncall-0123";
pub(crate) const READ: &str = "read-token-of-the-dashboard-0123";
pub(crate) const NAME: &str = "app.example.test";
pub(crate) const A: &str = "127.0.0.2";
pub(crate) const B: &str = "127.0.0.3";
pub(crate) const C: &str = "127.0.0.4";

/// Server `n` (1–3) of the cluster: vantage `vN`, no health checks (operators
/// decide), failover eu → us. `servers`: the peers' admin addresses.
fn config(dir: &Path, n: usize, servers: &[SocketAddr]) -> String {
    config_with(dir, n, servers, "")
}

/// As [`config`], with `admin` (TOML tables) before the tokens.
fn config_with(dir: &Path, n: usize, servers: &[SocketAddr], admin: &str) -> String {
    let servers: Vec<String> = servers.iter().map(|a| format!("\"http://{a}\"")).collect();
    let dir = dir.display();
    format!(
        r#"{SERVER_HEAD}
[pools.eu]
endpoints = [{{ address = "{A}", name = "a" }}, {{ address = "{B}", name = "b" }}]
[pools.us]
endpoints = [{{ address = "{C}", name = "c" }}]
[[records]]
name = "{NAME}"
type = "A"
ttl = 5
policy = "failover"
pools = ["eu", "us"]
[vantages.v1]
secret = "secret-of-server-v1-0123456789"
[vantages.v2]
secret = "secret-of-server-v2-0123456789"
[vantages.v3]
secret = "secret-of-server-v3-0123456789"
[health]
vantage = "v{n}"
staleness = "1s"
servers = [{servers}]
state_file = "{dir}/state-v{n}.json"
{admin}
[[admin.tokens]]
name = "oncall"
role = "operate"
file = "{dir}/operate.token"
[[admin.tokens]]
name = "dashboard"
role = "read"
file = "{dir}/read.token"
"#,
        servers = servers.join(", ")
    )
}

/// Three servers replicating overrides (also used by the traffic-dial tests).
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    pub(crate) admins: Vec<SocketAddr>,
    servers: Vec<Option<TestServer>>,
    /// TOML appended to every server's `[health]` table (more tables may follow).
    extra: String,
}

impl Cluster {
    pub(crate) fn start() -> Self {
        Self::start_with("")
    }

    /// As [`Cluster::start`], with `extra` TOML after every server's `[health]` keys.
    pub(crate) fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        crate::support::write_secret(dir.path().join("operate.token"), format!("{OPERATE}\n"));
        crate::support::write_secret(dir.path().join("read.token"), READ);
        let mut servers = Vec::new();
        let mut admins = Vec::new();
        for n in 1..=3 {
            let server = start(&config_with(dir.path(), n, &[], extra), None);
            admins.push(server.service().admin_address().unwrap());
            servers.push(Some(server));
        }
        let cluster = Self {
            dir,
            admins,
            servers,
            extra: extra.to_owned(),
        };
        // Now that every admin port is known, each server learns its peers.
        for n in 1..=3 {
            cluster.server(n).reload(&cluster.config(n)).unwrap();
        }
        cluster
    }

    fn config(&self, n: usize) -> String {
        config_with(self.dir.path(), n, &self.admins, &self.extra)
    }

    fn server(&self, n: usize) -> &TestServer {
        self.servers[n - 1].as_ref().expect("running")
    }

    pub(crate) fn dns(&self, n: usize) -> SocketAddr {
        self.server(n).addr
    }

    pub(crate) fn stop(&mut self, n: usize) {
        self.servers[n - 1] = None;
    }

    /// Starts server `n` again on its admin port, from its state file.
    pub(crate) fn restart(&mut self, n: usize) {
        self.servers[n - 1] = Some(start(&self.config(n), Some(self.admins[n - 1])));
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.admins.iter().map(|a| format!("http://{a}")).collect()
    }

    /// The file holding the operate token.
    pub(crate) fn token_file(&self) -> std::path::PathBuf {
        self.dir.path().join("operate.token")
    }

    /// Runs `failoverd ctl` against every server with the operate token.
    pub(crate) fn ctl(&self, args: &[&str]) -> (bool, String) {
        let token = self.token_file();
        ctl_with(&self.urls(), Some(&token), args)
    }

    /// Every running server answers `want` now (a change is confirmed only after its
    /// answers are swapped in).
    fn answers_now(&self, want: &[&str]) {
        for n in 1..=3 {
            if self.servers[n - 1].is_some() {
                assert_eq!(sorted_addresses(self.dns(n), NAME), want, "server {n}");
            }
        }
    }

    pub(crate) fn expect_everywhere(&self, want: &[&str]) {
        for n in 1..=3 {
            if self.servers[n - 1].is_some() {
                expect_addresses(self.dns(n), NAME, want, Duration::from_secs(3));
            }
        }
    }
}

fn start(config: &str, admin: Option<SocketAddr>) -> TestServer {
    let admin = admin.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    TestServer::start_with(
        config,
        StartOptions {
            admin_listen: Some(admin),
            ..StartOptions::default()
        },
    )
}

pub(crate) fn post(
    admin: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    http(admin, "POST", path, &headers, body.as_bytes())
}

pub(crate) fn active_overrides(admin: SocketAddr) -> usize {
    let (status, body) = http(
        admin,
        "GET",
        "/v1/overrides",
        &[("authorization", &format!("Bearer {READ}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    view["active"].as_array().unwrap().len()
}

#[test]
fn overrides_made_through_ctl_reach_every_server_and_last() {
    let mut cluster = Cluster::start();
    cluster.expect_everywhere(&[A, B]);

    // Drain an endpoint: every server stops answering it.
    let (ok, out) = cluster.ctl(&["drain", "eu/a", "--reason", "kernel upgrade"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": ok drain endpoint eu/a").count(), 3, "{out}");
    cluster.answers_now(&[B]);

    // A whole pool out, and back.
    let (ok, out) = cluster.ctl(&["drain", "eu", "--reason", "region evacuation"]);
    assert!(ok, "{out}");
    cluster.answers_now(&[C]);
    let (ok, out) = cluster.ctl(&["undrain", "eu"]);
    assert!(ok, "{out}");
    cluster.answers_now(&[B]);

    // Manual failover of the record to us.
    let (ok, out) = cluster.ctl(&["failover", NAME, "--to", "us", "--reason", "dr drill"]);
    assert!(ok, "{out}");
    cluster.answers_now(&[C]);

    // A restarted server answers from its state file as before.
    cluster.stop(2);
    cluster.restart(2);
    assert_eq!(
        sorted_addresses(cluster.dns(2), NAME),
        [C],
        "after a restart"
    );

    // A server down while a change is made catches up from its peers once back.
    cluster.stop(3);
    let (ok, out) = cluster.ctl(&["release", NAME, "--reason", "drill over"]);
    assert!(!ok, "ctl must fail when a server did not confirm: {out}");
    assert_eq!(out.matches(": ok released").count(), 2, "{out}");
    assert!(out.contains("FAILED unreachable"), "{out}");
    cluster.restart(3);
    // (Its state file still holds the failover; the peers' release is newer.)
    expect_addresses(cluster.dns(3), NAME, &[B], Duration::from_secs(5));
    cluster.expect_everywhere(&[B]);

    // An override that expires releases itself everywhere.
    let (ok, out) = cluster.ctl(&[
        "force",
        "eu/b",
        "down",
        "--reason",
        "bad deploy",
        "--expires",
        "2s",
    ]);
    assert!(ok, "{out}");
    cluster.answers_now(&[C]);
    cluster.expect_everywhere(&[B]);
    let (ok, out) = cluster.ctl(&["undrain", "eu/a"]);
    assert!(ok, "{out}");
    cluster.answers_now(&[A, B]);
    for &admin in &cluster.admins {
        assert_eq!(active_overrides(admin), 0);
    }

    // Forced down is never answered, not even when everything is down (fail-open);
    // forcing down the last endpoint answered takes --allow-empty.
    for endpoint in ["eu/a", "eu/b"] {
        let (ok, out) = cluster.ctl(&["force", endpoint, "down", "--reason", "all out"]);
        assert!(ok, "{out}");
    }
    let (ok, out) = cluster.ctl(&["force", "us/c", "down", "--reason", "all out"]);
    assert!(!ok, "{out}");
    assert_eq!(
        out.matches("FAILED 409 Conflict: refused: app.example.test. A (every client) would have no pool at min_healthy").count(),
        3,
        "{out}"
    );
    cluster.answers_now(&[C]);
    let (ok, out) = cluster.ctl(&[
        "force",
        "us/c",
        "down",
        "--reason",
        "all out",
        "--allow-empty",
    ]);
    assert!(ok, "{out}");
    cluster.answers_now(&[]);
    let (ok, out) = cluster.ctl(&["--json", "overrides"]);
    assert!(ok, "{out}");
    let view: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view.as_array().unwrap().len(), 3);
    for server in view.as_array().unwrap() {
        assert_eq!(
            server["answer"]["active"].as_array().unwrap().len(),
            3,
            "{out}"
        );
    }
}

#[test]
fn callers_without_the_right_token_and_bad_bodies_change_nothing() {
    let cluster = Cluster::start();
    let admin = cluster.admins[0];
    let drain = r#"{"target": {"endpoint": "eu/a"}, "action": "drain", "reason": "x"}"#;
    // No token, a wrong one, a read-only one.
    assert_eq!(post(admin, "/v1/overrides", None, drain).0, 401);
    assert_eq!(
        post(
            admin,
            "/v1/overrides",
            Some("not-a-token-0123456789"),
            drain
        )
        .0,
        401
    );
    assert_eq!(post(admin, "/v1/overrides", Some(READ), drain).0, 403);
    let (ok, out) = ctl_with(&cluster.urls(), None, &["drain", "eu/a", "--reason", "x"]);
    assert!(!ok && out.contains("401"), "{out}");
    // Reads need a token too (healthz and readyz are public by default).
    assert_eq!(http(admin, "GET", "/v1/status", &[], b"").0, 401);
    assert_eq!(http(admin, "GET", "/healthz", &[], b"").0, 200);
    // Malformed bodies: 400, with a message.
    for body in [
        "",
        "{}",
        "not json",
        r#"{"target": {"endpoint": "eu/a"}, "action": "drain"}"#,
        r#"{"target": {"endpoint": "eu/a"}, "action": "drain", "reason": "x", "extra": 1}"#,
        r#"{"target": {"endpoint": "eu/a"}, "action": "dran", "reason": "x"}"#,
        r#"{"target": {"endpoint": "eu/a"}, "action": "drain", "reason": " "}"#,
        r#"{"target": {"endpoint": "eu/a"}, "action": "drain", "reason": "x", "expires_in": "soon"}"#,
        r#"{"target": {"pool": "eu"}, "action": "force_down", "reason": "x"}"#,
        r#"{"target": {"record": {"name": "app.example.test"}}, "action": {"failover": "nope"}, "reason": "x"}"#,
    ] {
        let (status, text) = post(admin, "/v1/overrides", Some(OPERATE), body);
        assert_eq!(status, 400, "{body} → {status} {text}");
        assert!(!text.trim().is_empty(), "{body}: no message");
    }
    let (status, _) = post(
        admin,
        "/v1/overrides",
        Some(OPERATE),
        r#"{"target": {"endpoint": "eu/zz"}, "action": "drain", "reason": "x"}"#,
    );
    assert_eq!(status, 404);
    // The older force call is strict too: `{}` or a typo no longer clears a force.
    let force = |body: &str| {
        let auth = format!("Bearer {OPERATE}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        http(
            admin,
            "PUT",
            "/v1/endpoints/eu/a/force",
            &headers,
            body.as_bytes(),
        )
        .0
    };
    for body in ["{}", r#"{"stat": "down"}"#] {
        assert_eq!(force(body), 400, "{body}");
    }
    for &admin in &cluster.admins {
        assert_eq!(active_overrides(admin), 0);
    }
    cluster.expect_everywhere(&[A, B]);
    // The right token works (and the older call still does).
    assert_eq!(force(r#"{"state": "down"}"#), 204);
    cluster.expect_everywhere(&[B]);
    assert!(wait_until(Duration::from_secs(3), || {
        cluster.admins.iter().all(|&a| active_overrides(a) == 1)
    }));
}

#[test]
fn the_admin_api_speaks_https_on_several_addresses() {
    use crate::support::backend::TestPki;
    let pki = TestPki::new();
    let leaf = pki.leaf("127.0.0.1", false);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("admin.crt"), dir.path().join("admin.key"));
    std::fs::write(&cert, &leaf.pem.0).unwrap();
    crate::support::write_secret(&key, &leaf.pem.1);
    crate::support::write_secret(dir.path().join("operate.token"), OPERATE);
    crate::support::write_secret(dir.path().join("read.token"), READ);
    let admin = format!(
        "[admin]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n[admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let text = config_with(dir.path(), 1, &[], &admin);
    let server = TestServer::start(&text);
    let admins = server.service().admin_addresses().to_vec();
    assert_eq!(admins.len(), 2, "both listeners bound");
    let urls: Vec<String> = admins.iter().map(|a| format!("https://{a}")).collect();
    let token = dir.path().join("operate.token");
    let ca = pki.ca_file.display().to_string();
    let (ok, out) = ctl_with(&urls, Some(&token), &["--ca-file", &ca, "status"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("== https://").count(), 2, "{out}");
    let (ok, out) = ctl_with(
        &urls[..1],
        Some(&token),
        &["--ca-file", &ca, "drain", "us", "--reason", "tls"],
    );
    assert!(ok, "{out}");
    expect_addresses(server.addr, NAME, &[A, B], Duration::from_secs(1));
    // Without the CA, the certificate is not trusted.
    let (ok, out) = ctl_with(&urls[..1], Some(&token), &["status"]);
    assert!(!ok, "{out}");
    // Plain HTTP on a TLS listener gets nowhere.
    assert_ne!(http(admins[0], "GET", "/healthz", &[], b"").0, 200);
}

/// The admin address a `failoverd serve` process logged.
fn logged_admin(server: &crate::support::BinaryServer) -> SocketAddr {
    let line = server
        .wait_for_log("admin API listening", Duration::from_secs(20))
        .expect("admin API starts");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in {line:?}"))
}

#[test]
fn events_stream_and_reload_go_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::write_secret(dir.path().join("operate.token"), OPERATE);
    crate::support::write_secret(dir.path().join("read.token"), READ);
    let path = dir.path().join("failoverd.toml");
    let text = config(dir.path(), 1, &[]).replace(
        "directory = \"../zones\"",
        &format!(
            "directory = \"{}\"",
            crate::support::data_dir().join("zones").display()
        ),
    );
    std::fs::write(&path, &text).unwrap();
    let server = crate::support::BinaryServer::start(&[
        "--config",
        path.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let admin = logged_admin(&server);
    let urls = vec![format!("http://{admin}")];
    let token = dir.path().join("operate.token");

    // A follower sees the change whether it connects before it (live) or after it
    // (the backlog it gets first).
    let follower = {
        let (urls, token) = (urls.clone(), token.clone());
        std::thread::spawn(move || {
            ctl_with(&urls, Some(&token), &["events", "--follow", "--for", "3s"])
        })
    };
    let (ok, out) = ctl_with(
        &urls,
        Some(&token),
        &["drain", "eu/a", "--reason", "disk full"],
    );
    assert!(ok, "{out}");
    let (_, followed) = follower.join().unwrap();
    assert!(
        followed.contains("override: operator override (made here)")
            && followed.contains("reason=disk full"),
        "{followed}"
    );
    let (ok, out) = ctl_with(&urls, Some(&token), &["--json", "events"]);
    assert!(ok, "{out}");
    let events: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = events[0]["answer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"override") && kinds.contains(&"record"),
        "{kinds:?}"
    );

    // Reload through the API: a good file is taken, a bad one refused with its errors.
    std::fs::write(&path, text.replace("ttl = 5", "ttl = 7")).unwrap();
    let (ok, out) = ctl_with(&urls, Some(&token), &["reload"]);
    assert!(ok && out.contains(": ok reloaded"), "{out}");
    expect_addresses(server.addr, NAME, &[B], Duration::from_secs(2));
    std::fs::write(&path, text.replace("ttl = 5", "ttl = \"soon\"")).unwrap();
    let (ok, out) = ctl_with(&urls, Some(&token), &["reload"]);
    assert!(
        !ok && out.contains("FAILED the running configuration stays") && out.contains("ttl"),
        "{out}"
    );
    assert_eq!(
        sorted_addresses(server.addr, NAME),
        [B],
        "still serving, override kept"
    );
    // A read token cannot reload.
    let read = dir.path().join("read.token");
    let (ok, out) = ctl_with(&urls, Some(&read), &["reload"]);
    assert!(!ok && out.contains("403"), "{out}");
}

/// Overrides that would change no answer are refused by every server (400, with the
/// reason), `ctl` prints the reason and exits 1, and nothing is kept: a manual
/// failover of a `primary` record (README: it does not apply there), a failover to
/// the pool already answered first, a drain of a pool no record uses.
#[test]
fn overrides_that_change_nothing_are_refused_through_ctl() {
    let config = format!(
        r#"{SERVER_HEAD}
[checks.pg]
type = "tcp"
port = 9
interval = "1s"
[pools.eu]
endpoints = [{{ address = "{A}", name = "a" }}, {{ address = "{B}", name = "b" }}]
[pools.us]
endpoints = [{{ address = "{C}", name = "c" }}]
[pools.db]
check = "pg"
endpoints = [{{ address = "127.0.0.5", name = "p" }}, {{ address = "127.0.0.6", name = "r" }}]
[pools.unused]
endpoints = [{{ address = "127.0.0.7", name = "x" }}]
[[records]]
name = "{NAME}"
type = "A"
ttl = 5
policy = "failover"
pools = ["eu", "us"]
[[records]]
name = "db.example.test"
type = "A"
ttl = 5
policy = "primary"
pools = ["db"]
"#
    );
    let servers = [start(&config, None), start(&config, None)];
    let admins: Vec<SocketAddr> = servers
        .iter()
        .map(|s| s.service().admin_address().unwrap())
        .collect();
    let urls: Vec<String> = admins.iter().map(|a| format!("http://{a}")).collect();
    let ctl = |args: &[&str]| ctl_with(&urls, None, args);
    for (args, reason) in [
        (
            &[
                "failover",
                "db.example.test",
                "--to",
                "db",
                "--reason",
                "drill",
            ][..],
            "is a primary record: it answers the one endpoint whose check claims primary, \
             so a manual failover does not apply",
        ),
        (
            &["failover", NAME, "--to", "eu", "--reason", "back"][..],
            "pool eu is already the first pool of app.example.test. A, and no gate holds it",
        ),
        (
            &["drain", "unused", "--reason", "tidy"][..],
            "no record answers from pool unused",
        ),
    ] {
        let (ok, out) = ctl(args);
        assert!(!ok, "ctl {args:?} must exit 1: {out}");
        for url in &urls {
            assert!(
                out.contains(&format!("{url}: FAILED")) && out.contains(reason),
                "ctl {args:?}: {out}"
            );
        }
        assert!(out.contains("changes nothing"), "{out}");
        eprintln!("ctl {args:?} →\n{out}");
    }
    // The API says the same with 400.
    let (code, body) = post(
        admins[0],
        "/v1/overrides",
        None,
        r#"{"target": {"record": {"name": "db.example.test"}}, "action": {"failover": "db"}, "reason": "drill", "by": "test"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("manual failover does not apply"), "{body}");
    for admin in &admins {
        assert_eq!(active_overrides(*admin), 0, "nothing refused is kept");
    }
    // What does change an answer still goes through.
    let (ok, out) = ctl(&["failover", NAME, "--to", "us", "--reason", "drill"]);
    assert!(ok, "{out}");
    for server in &servers {
        expect_addresses(server.addr, NAME, &[C], Duration::from_secs(2));
    }
}
