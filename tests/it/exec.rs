//! Exec checks run as a supervisor runs them, with real processes: every process of a
//! timed-out or dropped check is killed and reaped, a chatty check never blocks on a
//! full pipe, and the program sees a cleared environment (no secret of the server's).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use failoverd::testing::config::{Config, ConfigSource};
use failoverd::testing::probe::Prober;

use crate::support::{BinaryServer, data_dir, wait_until};

/// A config with one exec check (`command`, a TOML array) and one endpoint.
fn exec_config(command: &str, timeout: &str) -> Config {
    let text = format!(
        r#"
version = 1
[zones]
directory = "../zones"
files = ["example.test.zone"]
[checks.run]
type = "exec"
command = {command}
interval = "10s"
timeout = "{timeout}"
[pools.web]
check = "run"
endpoints = [{{ address = "127.0.0.2", name = "a" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
"#
    );
    Config::load(ConfigSource::from_text(text, data_dir().join("configs")))
        .unwrap_or_else(|d| panic!("invalid:\n{d}"))
        .0
}

/// A prober of the config's exec check, its endpoint labelled `label`.
fn prober(config: &Config, label: &str) -> Prober {
    Prober::new(&config.checks[0], &config.endpoints[0], label, None).expect("prober")
}

/// One process as /proc shows it.
struct Process {
    pid: u32,
    state: char,
    ppid: u32,
    pgrp: u32,
    command: String,
}

/// Every process /proc lists now.
fn processes() -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let command = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        Some(Process {
            pid,
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            pgrp: fields.get(2)?.parse().ok()?,
            command: if command.trim().is_empty() {
                format!("[{comm}]")
            } else {
                command.trim().to_owned()
            },
        })
    })
    .collect()
}

/// Processes in any of `groups` (zombies included), and live ones whose environment
/// carries `marker`.
fn left_behind(groups: &BTreeSet<u32>, marker: &str) -> Vec<Process> {
    processes()
        .into_iter()
        .filter(|p| {
            groups.contains(&p.pgrp)
                || std::fs::read(format!("/proc/{}/environ", p.pid))
                    .is_ok_and(|env| env.windows(marker.len()).any(|w| w == marker.as_bytes()))
        })
        .collect()
}

/// The process groups the checks wrote to `file` (one `$$` per line).
fn groups_in(file: &Path) -> BTreeSet<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn timed_out_and_dropped_exec_checks_leave_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("groups");
    // The shell records its group (its own pid: it leads it), then starts a
    // background `sleep 30` and waits on a foreground one: a grandchild that killing
    // the shell alone would orphan.
    let command = format!(
        r#"["sh", "-c", "echo $$ >> \"$0\"; sleep 30 & sleep 30; wait", {:?}]"#,
        pids.display().to_string()
    );
    let config = exec_config(&command, "300ms");
    // Dropped long before their own 5 s timeout, however slowly 50 shells start.
    let patient = exec_config(&command, "5s");
    let prefix = format!("leak-test-{}", std::process::id());
    let marker = format!("FAILOVERD_ENDPOINT={prefix}/");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (mut timed_out, mut dropped) = (0, 0);
    runtime.block_on(async {
        // 200 probes that time out, in batches of 50 at once.
        for batch in 0..4 {
            let probers: Vec<Prober> = (0..50)
                .map(|i| prober(&config, &format!("{prefix}/{batch}-{i}")))
                .collect();
            let outcomes = futures_util::future::join_all(probers.iter().map(Prober::probe)).await;
            for outcome in outcomes {
                assert!(!outcome.ok, "{outcome:?}");
                assert!(
                    outcome.reason.starts_with("timeout after 300 ms"),
                    "{outcome:?}"
                );
                timed_out += 1;
            }
        }
        // 50 probes dropped mid-run, as a reload or shutdown drops them.
        let probers: Vec<Prober> = (0..50)
            .map(|i| prober(&patient, &format!("{prefix}/dropped-{i}")))
            .collect();
        let cuts = futures_util::future::join_all(
            probers
                .iter()
                .map(|p| tokio::time::timeout(Duration::from_millis(500), p.probe())),
        )
        .await;
        for cut in cuts {
            if let Ok(outcome) = cut {
                panic!("the probe ended before it was dropped: {outcome:?}");
            }
            dropped += 1;
        }
    });
    let elapsed = started.elapsed();
    let groups = groups_in(&pids);
    let mut left = Vec::new();
    let clean = wait_until(Duration::from_secs(10), || {
        left = left_behind(&groups, &marker);
        left.is_empty()
    });
    let zombies = left.iter().filter(|p| p.state == 'Z').count();
    eprintln!(
        "FIGURES exec_kill probes_timed_out={timed_out} probes_dropped={dropped} groups_seen={} \
         processes_left={} zombies_left={zombies} elapsed_ms={}",
        groups.len(),
        left.len(),
        elapsed.as_millis()
    );
    assert!(
        groups.len() >= 200,
        "only {} checks got to record their group",
        groups.len()
    );
    let described: Vec<String> = left
        .iter()
        .map(|p| {
            format!(
                "{} {} ppid {} pgrp {}: {}",
                p.pid, p.state, p.ppid, p.pgrp, p.command
            )
        })
        .collect();
    assert!(clean, "left behind:\n{}", described.join("\n"));
    // The leaders were reaped by this process, the members came back to it and were
    // reaped too: none of them is anybody's zombie.
    let me = std::process::id();
    assert!(
        !processes()
            .iter()
            .any(|p| p.ppid == me && p.state == 'Z' && groups.contains(&p.pgrp)),
        "zombie children of the prober"
    );
    drop(runtime);
}

#[test]
fn a_chatty_check_is_read_as_it_runs() {
    let config = exec_config(
        r#"["sh", "-c", "head -c 1048576 /dev/zero >&2; head -c 1048576 /dev/zero; exit 0"]"#,
        "5s",
    );
    let failing = exec_config(
        r#"["sh", "-c", "head -c 1048576 /dev/zero; echo 'replica lag 42 s' >&2; head -c 1048576 /dev/zero >&2; exit 3"]"#,
        "5s",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (up, down) = runtime.block_on(async {
        (
            prober(&config, "web/a").probe().await,
            prober(&failing, "web/a").probe().await,
        )
    });
    eprintln!(
        "FIGURES exec_output stderr_bytes=1048576 stdout_bytes=1048576 ok={} reason={:?} latency_ms={} \
         failing_reason={:?}",
        up.ok,
        up.reason,
        up.latency.as_millis(),
        down.reason
    );
    assert!(up.ok, "{up:?}");
    assert_eq!(up.reason, "exit 0");
    assert!(!down.ok);
    assert_eq!(down.reason, "exit 3: replica lag 42 s");
}

#[test]
fn an_exec_check_sees_none_of_the_servers_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let path = dir.path().join("failoverd.toml");
    let text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
[zones]
directory = {zones:?}
files = ["example.test.zone"]
[vantages.here]
secret_env = "FAILOVERD_TEST_VANTAGE_SECRET"
[health]
vantage = "here"
[checks.env]
type = "exec"
command = ["sh", "-c", "env > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"", {out:?}]
env = ["FAILOVERD_TEST_PASSED"]
port = 8080
interval = "200ms"
[pools.web]
check = "env"
endpoints = [{{ address = "127.0.0.2", name = "a" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
"#,
        zones = data_dir().join("zones").display().to_string(),
        out = out.display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    let vantage_secret = "vantage-secret-0123456789abcdef";
    let aws_secret = "aws-secret-wJalrXUtnFEMI-K7MDENG";
    let _server = BinaryServer::start_with_env(
        &["--config", path.to_str().unwrap()],
        &[
            ("FAILOVERD_TEST_VANTAGE_SECRET", vantage_secret),
            ("AWS_SECRET_ACCESS_KEY", aws_secret),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE"),
            ("FAILOVERD_TEST_PASSED", "passed-through"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(20), || out.exists()),
        "the check never ran"
    );
    let env = std::fs::read_to_string(&out).unwrap();
    eprintln!("the exec check's environment:\n{env}");
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    let secrets_seen = [vantage_secret, aws_secret, "AKIAEXAMPLEEXAMPLE"]
        .iter()
        .filter(|s| env.contains(*s))
        .count();
    eprintln!(
        "FIGURES exec_env variables={} names={} secrets_seen={secrets_seen}",
        names.len(),
        names.join(",")
    );
    assert_eq!(secrets_seen, 0, "{env}");
    assert!(!env.contains("AWS_"), "{env}");
    for want in [
        "FAILOVERD_ADDRESS=127.0.0.2",
        "FAILOVERD_ENDPOINT=web/a",
        "FAILOVERD_PORT=8080",
        "FAILOVERD_TEST_PASSED=passed-through",
        "PATH=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "no {want} in:\n{env}"
        );
    }
    // Nothing else of the server's environment: what is left is the shell's own.
    let expected: BTreeSet<&str> = [
        "FAILOVERD_ADDRESS",
        "FAILOVERD_ENDPOINT",
        "FAILOVERD_PORT",
        "FAILOVERD_TEST_PASSED",
        "PATH",
        "LANG",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
    ]
    .into_iter()
    .collect();
    let unexpected: Vec<&&str> = names.iter().filter(|n| !expected.contains(*n)).collect();
    assert!(
        unexpected.is_empty(),
        "unexpected {unexpected:?} in:\n{env}"
    );
}
