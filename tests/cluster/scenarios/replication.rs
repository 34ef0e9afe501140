//! Scenario 9: override replication that no peer can stall. s3 is cut off from every
//! other node (silently dropped, as a dead link is). Then, 20 times each:
//!
//! - a drain, and then its release, made through `ctl` on one connected server reaches
//!   the other connected server's answers (each peer has an exchange task of its own,
//!   so the unreachable s3 delays nothing);
//! - a connected server restarted without a state file answers with every override
//!   from its first answer: it asks every reachable peer at once and starts once the
//!   first has answered (it does not wait for s3).
//!
//! Both cover all four origin/peer combinations of s1 and s2. And `ctl --wait quorum`
//! says ok once two of the three servers hold a change, where the default (every
//! server) says it failed.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{Cluster, NODES, Options, WEST};
use crate::support::require;

/// The most a change may take to reach the connected peer's answers.
const REACH_BUDGET: Duration = Duration::from_millis(100);
/// The most a restarted server may take, from its start, to answer with the overrides.
const RESTART_BUDGET: Duration = Duration::from_millis(500);
/// Trials of each kind.
const TRIALS: usize = 20;

#[test]
fn an_unreachable_server_stalls_no_override_replication() {
    let mut cluster = require!(Cluster::start(&Options::new(9)));
    let mut figures = Figures::new("replication");
    let mut checks = Checks::default();
    let (west, east) = (cluster.addr("west"), cluster.addr("east"));
    let others: Vec<_> = NODES
        .iter()
        .filter(|n| **n != "s3")
        .map(|n| cluster.addr(n))
        .collect();
    cluster.net.drop_traffic("s3", &others);

    // Drains and releases made on one connected server, seen at the other.
    let mut watchers = [
        Watcher::start(&cluster.net, cluster.addr("s1")),
        Watcher::start(&cluster.net, cluster.addr("s2")),
    ];
    let mut reach = Vec::new();
    for trial in 0..TRIALS {
        let (origin, peer) = if trial % 2 == 0 { (0, 1) } else { (1, 0) };
        let names = ["s1", "s2"];
        for (args, want) in [(&["drain", WEST][..], east), (&["undrain", WEST][..], west)] {
            let reason = format!("trial {trial}");
            let mut args = args.to_vec();
            args.extend(["--reason", &reason]);
            let (ok, out, confirmed) = ctl(&cluster, names[origin], &[names[origin]], &args);
            checks.expect(ok, format!("{args:?} on {}: {out}", names[origin]));
            let seen = watchers[peer].time_until(confirmed, want, Duration::from_secs(3));
            checks.expect(
                seen.is_some_and(|t| t <= REACH_BUDGET),
                format!(
                    "{args:?} made on {} reached {} after {seen:?} (budget {REACH_BUDGET:?})",
                    names[origin], names[peer]
                ),
            );
            reach.push((
                format!("{}->{} {}", names[origin], names[peer], args[0]),
                seen,
            ));
        }
    }
    for watcher in &mut watchers {
        watcher.stop();
    }
    let reach_ms: Vec<f64> = reach
        .iter()
        .filter_map(|(_, t)| t.map(|t| t.as_secs_f64() * 1000.0))
        .collect();
    figures.set("reach_trials", reach.len());
    figures.set(
        "reach_max_ms",
        format!("{:.0}", reach_ms.iter().cloned().fold(0.0, f64::max)),
    );
    figures.set("reach_median_ms", format!("{:.0}", median(&reach_ms)));

    // `--wait quorum`: two of three hold the drain; the default wants all three.
    let (ok, out, _) = ctl(
        &cluster,
        "s1",
        &["s1", "s2", "s3"],
        &["drain", WEST, "--reason", "quorum", "--timeout", "1s"],
    );
    checks.expect(
        !ok,
        format!("without --wait quorum, s3's silence is a failure: {out}"),
    );
    let (ok, out, _) = ctl(
        &cluster,
        "s1",
        &["s1", "s2", "s3"],
        &[
            "undrain",
            WEST,
            "--reason",
            "quorum",
            "--timeout",
            "1s",
            "--wait",
            "quorum",
        ],
    );
    checks.expect(
        ok && out.contains("2 of 3 servers hold the change"),
        format!("--wait quorum: {out}"),
    );
    figures.set(
        "wait_quorum_with_one_of_three_cut_off",
        if ok { "ok" } else { "failed" },
    );

    // Restarts without a state file: the overrides come from a connected peer.
    let mut restarts = Vec::new();
    for trial in 0..TRIALS {
        let combination = trial % 4;
        let origin = if combination < 2 { "s1" } else { "s2" };
        let restarted = if combination % 2 == 0 { "s1" } else { "s2" };
        let other = if restarted == "s1" { "s2" } else { "s1" };
        let reason = format!("restart trial {trial}");
        let (ok, out, _) = ctl(
            &cluster,
            origin,
            &[origin],
            &["drain", WEST, "--reason", &reason],
        );
        checks.expect(ok, format!("drain on {origin}: {out}"));
        // Both connected servers hold it before the restart.
        let both = Watcher::start(&cluster.net, cluster.addr(other));
        checks.expect(
            both.time_until(Instant::now(), east, Duration::from_secs(2))
                .is_some(),
            format!("{other} never took the drain"),
        );
        drop(both);
        cluster.kill(restarted);
        let watcher = Watcher::start(&cluster.net, cluster.addr(restarted));
        let started = Instant::now();
        cluster.relaunch(restarted);
        let first = loop {
            if let Some(sample) = watcher.first_answer_since(started) {
                break Some(sample);
            }
            if started.elapsed() > Duration::from_secs(5) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = first
            .as_ref()
            .map(|s| s.at.saturating_duration_since(started));
        let right = first.as_ref().is_some_and(|s| s.answer.is(east));
        checks.expect(
            right && took.is_some_and(|t| t <= RESTART_BUDGET),
            format!(
                "{restarted} restarted without a state file (drain made on {origin}): first answer {:?} after {took:?}",
                first.map(|s| s.answer.text())
            ),
        );
        restarts.push((format!("{origin}/{restarted}"), took));
        let (ok, out, _) = ctl(
            &cluster,
            other,
            &["s1", "s2"],
            &["undrain", WEST, "--reason", &reason],
        );
        checks.expect(ok, format!("undrain: {out}"));
        let back = Watcher::start(&cluster.net, cluster.addr(restarted));
        checks.expect(
            back.time_until(Instant::now(), west, Duration::from_secs(2))
                .is_some(),
            format!("{restarted} never took the release"),
        );
    }
    let restart_ms: Vec<f64> = restarts
        .iter()
        .filter_map(|(_, t)| t.map(|t| t.as_secs_f64() * 1000.0))
        .collect();
    figures.set("restart_trials", restarts.len());
    figures.set(
        "restart_first_answer_max_ms",
        format!("{:.0}", restart_ms.iter().cloned().fold(0.0, f64::max)),
    );
    figures.set(
        "restart_first_answer_median_ms",
        format!("{:.0}", median(&restart_ms)),
    );
    figures.print();
    checks.assert_all();
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `failoverd ctl` from `from`'s namespace against `servers`, with the operate
/// token; returns (success, output, when it returned).
fn ctl(cluster: &Cluster, from: &str, servers: &[&str], args: &[&str]) -> (bool, String, Instant) {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &cluster.net.ns(from)])
        .arg(crate::node::binary())
        .args(["ctl", "--token-file"])
        .arg(cluster.config.token_file());
    for server in servers {
        command.args(["--server", &format!("http://{}", cluster.admin(server))]);
    }
    let output = command.args(args).output().expect("run failoverd ctl");
    let returned = Instant::now();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        returned,
    )
}
