//! Secret files (vantage secrets, admin tokens, the admin TLS key, TSIG secrets,
//! database passwords) that group or others may read are refused by check-config
//! and at start, each with its key path, its mode and the chmod that fixes it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{binary, data_dir, run_binary};

/// Writes `contents` to `dir/name` with `mode`.
fn file(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A config using one secret file of each kind (paths relative to its directory).
fn config(dir: &Path) -> PathBuf {
    let text = format!(
        r#"version = 1
[server]
listen = ["127.0.0.1:0"]
[zones]
directory = "{zones}"
files = ["example.test.zone"]
[checks.db]
type = "postgres"
port = 5432
role = "primary"
password_file = "secrets/pg-password"
[pools.web]
endpoints = [{{ address = "192.0.2.1", name = "a" }}]
[pools.db]
check = "db"
endpoints = [{{ address = "192.0.2.9", name = "pg" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
[[records]]
name = "db.example.test"
type = "A"
policy = "primary"
pools = ["db"]
[vantages.s1]
secret_file = "secrets/s1"
[health]
vantage = "s1"
[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "oncall"
role = "operate"
file = "secrets/oncall.token"
[admin.tls]
cert = "admin.crt"
key = "secrets/admin.key"
[[transfer.keys]]
name = "xfr-key"
secret_file = "secrets/xfr-key"
"#,
        zones = data_dir().join("zones").display()
    );
    let path = dir.join("failoverd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The secret files of [`config`], as (key path, file name), all made with `mode`.
fn secrets(dir: &Path, mode: u32) -> Vec<(&'static str, PathBuf)> {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    file(dir, "admin.crt", "not read by check-config\n", 0o644);
    vec![
        (
            "vantages.s1.secret_file",
            file(dir, "secrets/s1", "vantage-secret-s1-0123456789\n", mode),
        ),
        (
            "admin.tokens[0].file",
            file(
                dir,
                "secrets/oncall.token",
                "oncall-token-0123456789abcdef\n",
                mode,
            ),
        ),
        (
            "admin.tls.key",
            file(
                dir,
                "secrets/admin.key",
                "-----BEGIN PRIVATE KEY-----\n",
                mode,
            ),
        ),
        (
            "transfer.keys[0].secret_file",
            file(
                dir,
                "secrets/xfr-key",
                "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\n",
                mode,
            ),
        ),
        (
            "checks.db.password_file",
            file(dir, "secrets/pg-password", "pg-password\n", mode),
        ),
    ]
}

#[test]
fn secret_files_open_to_group_or_others_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let path = config.to_str().unwrap();
    let secrets = secrets(dir.path(), 0o644);
    let (ok, out) = run_binary(&["check-config", path]);
    assert!(!ok, "{out}");
    for (key, file) in &secrets {
        // e.g. "error: …/failoverd.toml:31: admin.tokens[0].file: …/secrets/oncall.token
        // has mode 0644: group or others can read it; run: chmod 600 …/secrets/oncall.token"
        let expected = format!(
            ": {key}: {0} has mode 0644: group or others can read it; run: chmod 600 {0}",
            file.display()
        );
        let line = out
            .lines()
            .find(|l| l.starts_with("error: ") && l.ends_with(&expected))
            .unwrap_or_else(|| panic!("no {expected:?} in:\n{out}"));
        eprintln!("{line}");
    }
    // The verdict is on stdout.
    let (_, verdict) = crate::support::run_binary_stdout(&["check-config", path]);
    assert!(verdict.contains(&format!("{path}: 5 errors")), "{verdict}");
    // The server does not start either, and says why.
    let (ok, out) = run_binary(&["serve", "--config", path]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("has mode 0644: group or others can read it; run: chmod 600"),
        "{out}"
    );
    // Each printed fix, run exactly as printed, makes the config pass.
    let (_, out) = run_binary(&["check-config", path]);
    for line in out.lines() {
        let Some((_, command)) = line.split_once("; run: ") else {
            continue;
        };
        let status = Command::new("sh").args(["-c", command]).status().unwrap();
        assert!(status.success(), "{command}");
    }
    let (ok, out) = run_binary(&["check-config", path, "--deny-warnings"]);
    assert!(ok, "{out}");
}

#[test]
fn group_readable_and_world_writable_are_refused_too_owner_only_modes_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let path = config.to_str().unwrap();
    for (mode, words) in [
        (0o640, "group or others can read it"),
        (0o602, "group or others can write it"),
    ] {
        secrets(dir.path(), mode);
        let (ok, out) = run_binary(&["check-config", path]);
        assert!(!ok, "{out}");
        assert_eq!(
            out.matches(&format!("has mode {mode:04o}: {words}"))
                .count(),
            5,
            "{out}"
        );
    }
    for mode in [0o600, 0o400] {
        secrets(dir.path(), mode);
        let (ok, out) = run_binary(&["check-config", path, "--deny-warnings"]);
        assert!(ok, "mode {mode:04o}: {out}");
    }
}

#[test]
fn an_agent_warns_about_another_vantage_points_exposed_secret() {
    // An agent needs only its own secret; another one lying open on its machine is a
    // warning, which --deny-warnings makes fatal. A server needs every secret:
    // there it is an error.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    file(
        dir.path(),
        "secrets/a1",
        "agent-secret-a1-0123456789\n",
        0o600,
    );
    let other = file(
        dir.path(),
        "secrets/s1",
        "server-secret-s1-0123456789\n",
        0o644,
    );
    let text = format!(
        r#"version = 1
[zones]
directory = "{zones}"
files = ["example.test.zone"]
[pools.web]
endpoints = [{{ address = "192.0.2.1", name = "a" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
[vantages.s1]
secret_file = "secrets/s1"
[vantages.a1]
secret_file = "secrets/a1"
[health]
servers = ["http://127.0.0.1:9"]
"#,
        zones = data_dir().join("zones").display()
    );
    let config = dir.path().join("failoverd.toml");
    std::fs::write(&config, text).unwrap();
    let path = config.to_str().unwrap();
    let agent = ["check-config", "--agent", "--vantage", "a1", path];
    let (ok, out) = run_binary(&agent);
    assert!(ok, "{out}");
    let warning = format!(
        "vantages.s1.secret_file: not used by this agent, but exposed: {0} has mode 0644: group or others can read it; run: chmod 600 {0}",
        other.display()
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("warning: ") && l.ends_with(&warning)),
        "{out}"
    );
    let (ok, out) = run_binary(&[&agent[..], &["--deny-warnings"]].concat());
    assert!(!ok, "{out}");
    let (ok, out) = run_binary(&["check-config", path]);
    assert!(!ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("error: ")
            && l.contains("vantages.s1.secret_file: ")
            && l.ends_with(&format!("run: chmod 600 {}", other.display()))),
        "{out}"
    );
    // And the agent itself starts (its own secret is fine), probing with the warning.
    let mut child = Command::new(binary())
        .args(["probe", "--config", path, "--vantage", "a1"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = crate::support::stderr_lines(&mut child);
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let ready = loop {
        match lines
            .recv_timeout(std::time::Duration::from_secs(20).saturating_sub(started.elapsed()))
        {
            Ok(line) if line.contains("probe agent ready") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|l| l.contains("not used by this agent, but exposed: ")),
        "{}",
        seen.join("\n")
    );
}
