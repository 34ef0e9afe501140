//! A confirmation means the change is on disk: `ctl` returning ok, then SIGKILL at
//! once, then a restart from the state file alone, loses nothing; and a state
//! directory that cannot be written refuses changes (503) and fails readiness instead
//! of confirming what a crash would lose.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::dns::{expect_addresses, sorted_addresses};
use crate::support::require::{root, tool};
use crate::support::{
    BACKEND_A, BACKEND_B, BinaryServer, binary, ctl_with, http, require, serve_config,
    two_backend_config, wait_until,
};

const NAME: &str = "app.example.test";

fn config(port: u16, state: &Path) -> String {
    format!(
        "{}[health]\nstate_file = \"{}\"\n",
        two_backend_config(port, "interval = \"300ms\"\ntimeout = \"250ms\""),
        state.display()
    )
}

/// The override a server holds for `target` (as JSON), active or ended.
fn held(admin: SocketAddr, target: &serde_json::Value) -> Option<serde_json::Value> {
    let (status, body) = http(admin, "GET", "/v1/overrides", &[], b"");
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    ["active", "ended"]
        .iter()
        .flat_map(|k| view[k].as_array().cloned().unwrap_or_default())
        .find(|e| &e["target"] == target)
}

#[test]
fn a_confirmed_change_survives_a_kill_at_once() {
    let _turn = crate::one_at_a_time();
    let a = Backend::start(BACKEND_A.parse().unwrap(), 0, None);
    let _b = Backend::start(BACKEND_B.parse().unwrap(), a.addr.port(), None);
    let dir = tempfile::tempdir().unwrap();
    let text = config(a.addr.port(), &dir.path().join("state/state.json"));
    // (ctl arguments, the target as the API shows it, whether it is a release)
    let changes: [(&[&str], serde_json::Value, bool); 6] = [
        (
            &["drain", "web/a"],
            serde_json::json!({"endpoint": "web/a"}),
            false,
        ),
        (
            &["force", "web/b", "down"],
            serde_json::json!({"endpoint": "web/b"}),
            false,
        ),
        (
            &["release", "web/a"],
            serde_json::json!({"endpoint": "web/a"}),
            true,
        ),
        (&["drain", "web"], serde_json::json!({"pool": "web"}), false),
        (
            &["release", "web/b"],
            serde_json::json!({"endpoint": "web/b"}),
            true,
        ),
        (
            &["release", "web"],
            serde_json::json!({"pool": "web"}),
            true,
        ),
    ];
    let rounds = 100;
    let (mut lost, mut confirmed) = (Vec::new(), 0);
    let (mut server, mut admin) = serve_config(dir.path(), &text, &[]);
    for round in 0..rounds {
        let (args, target, release) = &changes[round % changes.len()];
        let reason = format!("round {round}");
        let url = format!("http://{admin}");
        let mut command: Vec<&str> = args.to_vec();
        command.extend(["--reason", &reason]);
        // Some rounds leave no endpoint in service: made anyway (this is about
        // keeping what was confirmed, not about the safety checks).
        if !*release {
            command.push("--allow-empty");
        }
        let (ok, out) = ctl_with(std::slice::from_ref(&url), None, &command);
        assert!(ok, "round {round}: {out}");
        confirmed += 1;
        // SIGKILL the moment ctl returned; then a restart from the state file alone.
        drop(server);
        (server, admin) = serve_config(dir.path(), &text, &[]);
        let entry = held(admin, target);
        let kept = entry.as_ref().is_some_and(|e| {
            e["reason"] == reason.as_str() && e.get("action").is_none() == *release
        });
        if !kept {
            lost.push(format!(
                "round {round}: confirmed {args:?}, restarted with {entry:?}"
            ));
        }
    }
    println!(
        "FIGURES durability rounds={rounds} confirmed={confirmed} lost={}",
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "confirmed changes lost:\n{}",
        lost.join("\n")
    );
}

#[test]
fn a_read_only_state_directory_refuses_changes_and_fails_readiness() {
    let _turn = crate::one_at_a_time();
    require!(root("a mount namespace"), tool("nsenter"));
    let a = Backend::start(BACKEND_A.parse().unwrap(), 0, None);
    let _b = Backend::start(BACKEND_B.parse().unwrap(), a.addr.port(), None);
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    let state = state_dir.join("state.json");
    let text = config(a.addr.port(), &state);
    // The server runs in a mount namespace of its own, its state directory a tmpfs
    // the test can turn read-only (a read-only file system stops root too).
    let state_arg = state_dir.display().to_string();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        "mount -t tmpfs -o size=4m tmpfs \"$0\" && exec \"$@\"",
        &state_arg,
    ];
    let (server, admin) = serve_config(dir.path(), &text, &wrapper);
    let url = vec![format!("http://{admin}")];
    let in_namespace = |args: &[&str]| {
        let status = Command::new("nsenter")
            .args(["-t", &server.pid().to_string(), "-m", "--"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    };
    expect_addresses(
        server.addr,
        NAME,
        &[BACKEND_A, BACKEND_B],
        Duration::from_secs(10),
    );
    let (ok, out) = ctl_with(&url, None, &["drain", "web/a", "--reason", "writable"]);
    assert!(ok, "{out}");
    expect_addresses(server.addr, NAME, &[BACKEND_B], Duration::from_secs(1));
    // Ready once the first probes decided.
    assert!(wait_until(Duration::from_secs(5), || {
        http(admin, "GET", "/readyz", &[], b"").0 == 200
    }));

    in_namespace(&["mount", "-o", "remount,ro", &state_arg]);
    let (ok, out) = ctl_with(
        &url,
        None,
        &["drain", "web/b", "--reason", "read-only", "--allow-empty"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("503") && out.contains("state file"), "{out}");
    // Nothing changed: the answers, the overrides.
    assert_eq!(sorted_addresses(server.addr, NAME), [BACKEND_B]);
    assert!(held(admin, &serde_json::json!({"endpoint": "web/b"})).is_none());
    assert!(wait_until(Duration::from_secs(1), || {
        let (status, body) = http(admin, "GET", "/readyz", &[], b"");
        status == 503 && body.contains("state file")
    }));
    let metrics = http(admin, "GET", "/metrics", &[], b"").1;
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("failoverd_state_save_failures_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap();
    assert!(failures >= 1, "{metrics}");
    let status = http(admin, "GET", "/v1/status", &[], b"").1;
    assert!(status.contains("\"error\":"), "{status}");
    // check-config says so too, seen from the server's namespace.
    let check = Command::new("nsenter")
        .args([
            "-t",
            &server.pid().to_string(),
            "-m",
            "--",
            binary(),
            "check-config",
        ])
        .arg(dir.path().join("failoverd.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{stderr}");
    assert!(stderr.contains("health.state_file"), "{stderr}");

    // Writable again: readiness comes back by itself, and changes are taken.
    in_namespace(&["mount", "-o", "remount,rw", &state_arg]);
    assert!(wait_until(Duration::from_secs(2), || {
        http(admin, "GET", "/readyz", &[], b"").0 == 200
    }));
    let (ok, out) = ctl_with(
        &url,
        None,
        &["release", "web/a", "--reason", "writable again"],
    );
    assert!(ok, "{out}");
    expect_addresses(
        server.addr,
        NAME,
        &[BACKEND_A, BACKEND_B],
        Duration::from_secs(1),
    );
    println!(
        "FIGURES read-only state dir: change=503 readyz=503 save_failures={failures} check_config=error recovered=yes"
    );
    drop::<BinaryServer>(server);
}
