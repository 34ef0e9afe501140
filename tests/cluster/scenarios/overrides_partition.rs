//! Scenario 7: operator overrides across a partition. s3 is cut off from the other
//! servers (not from the backends or its clients); an operator drains the west
//! endpoint through `failoverd ctl` sent to every server: s1 and s2 confirm and fail
//! over at once, s3 does not confirm (ctl exits 1). Once the partition heals, s3 takes
//! the drain from its peers within a sync round and answers east too; a release made
//! then reaches all three.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::Flavour;
use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{Cluster, NODES, Options, SERVERS, WEST};
use crate::support::require;

/// Longest s3 may take to catch up once healed (staleness 1.5 s: rounds of 750 ms).
const CATCH_UP_BUDGET: Duration = Duration::from_secs(5);

#[test]
fn an_override_made_during_a_partition_reaches_the_cut_off_server_when_it_heals() {
    if Flavour::from_env() == Flavour::Legacy {
        eprintln!("SKIP: the previous release has no replicated overrides");
        return;
    }
    let cluster = require!(Cluster::start(&Options::new(8)));
    let mut figures = Figures::new("overrides_partition");
    let mut checks = Checks::default();
    let watchers: Vec<Watcher> = SERVERS
        .iter()
        .map(|s| Watcher::start(&cluster.net, cluster.addr(s)))
        .collect();
    let (west, east) = (cluster.addr("west"), cluster.addr("east"));

    // s3 loses the other servers and the agent, silently.
    let others: Vec<_> = NODES
        .iter()
        .filter(|n| **n != "s3")
        .map(|n| cluster.addr(n))
        .collect();
    cluster.net.drop_traffic("s3", &others);

    let asked = Instant::now();
    let drain = ctl(&cluster, &["drain", WEST, "--reason", "partition drill"]);
    checks.expect(
        !drain.0,
        format!("ctl must fail: s3 cannot confirm\n{}", drain.1),
    );
    checks.expect(
        drain.1.matches(": ok drain").count() == 2,
        format!("s1 and s2 must confirm:\n{}", drain.1),
    );
    for (server, watcher) in SERVERS.iter().zip(&watchers).take(2) {
        // From ctl's start: its 2 s wait for s3 comes after s1 and s2 confirmed.
        let moved = watcher.time_until(asked, east, Duration::from_secs(4));
        figures.set_ms(&format!("{server}_answer_change_ms"), moved);
        checks.expect(
            moved.is_some(),
            format!("{server} did not answer east after the drain"),
        );
    }
    let s3 = &watchers[2];
    checks.expect(
        s3.latest().is_some_and(|a| a.is(west)),
        "s3 (cut off) changed its answer without the drain",
    );

    cluster.net.heal("s3");
    let healed = Instant::now();
    let caught_up = s3.time_until(healed, east, CATCH_UP_BUDGET);
    figures.set_ms("s3_catch_up_after_heal_ms", caught_up);
    checks.expect(
        caught_up.is_some(),
        "s3 did not take the drain from its peers after healing",
    );

    let asked = Instant::now();
    let release = ctl(&cluster, &["undrain", WEST]);
    checks.expect(
        release.0,
        format!("release not confirmed by every server:\n{}", release.1),
    );
    for (server, watcher) in SERVERS.iter().zip(&watchers) {
        let back = watcher.time_until(asked, west, Duration::from_secs(2));
        figures.set_ms(&format!("{server}_release_ms"), back);
        checks.expect(
            back.is_some(),
            format!("{server} did not answer west after the release"),
        );
    }
    figures.print();
    checks.assert_all();
}

/// Runs `failoverd ctl` against every server from s1's namespace, with the operate
/// token; returns (success, output).
fn ctl(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &cluster.net.ns("s1")])
        .arg(crate::node::binary())
        .args(["ctl", "--timeout", "2s", "--token-file"])
        .arg(cluster.config.token_file());
    for server in SERVERS {
        command.args(["--server", &format!("http://{}", cluster.admin(server))]);
    }
    let output = command.args(args).output().expect("run failoverd ctl");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
