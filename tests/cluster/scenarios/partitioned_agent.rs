//! Scenario 1: a probe agent that loses its path to every backend, then to every
//! server, changes no answer anywhere.

use std::time::{Duration, Instant};

use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{
    Cluster, Options, SERVERS, WEST, after, is_fresh, is_partitioned, observe_until, raw_vote,
    wait_until,
};
use crate::support::require;

/// How long each fault lasts.
const PHASE: Duration = Duration::from_secs(8);
/// How long the agent stays cut off from the servers.
const CUT: Duration = Duration::from_secs(5);

#[test]
fn partitioned_agent_changes_nothing() {
    let cluster = require!(Cluster::start(&Options::new(1)));
    let mut figures = Figures::new("partitioned_agent");
    let mut checks = Checks::default();
    let watchers: Vec<Watcher> = SERVERS
        .iter()
        .map(|s| Watcher::start(&cluster.net, cluster.addr(s)))
        .collect();
    let begin = Instant::now();

    // Phase 1: the agent's probes reach no backend (silently dropped).
    cluster
        .net
        .drop_traffic("a4", &[cluster.addr("west"), cluster.addr("east")]);
    let dropped = Instant::now();
    // The fault is in effect: s1 shows the agent's vote on west down, or flags the
    // agent partitioned, or the agent logs its verdict on west going down.
    let seen_down = wait_until(after(PHASE), || {
        let status = cluster.status("s1");
        raw_vote(&status, WEST, "v4").is_some_and(|v| v.starts_with("down"))
            || is_partitioned(&status, "v4")
            || cluster
                .node("a4")
                .wait_for_line(0, Duration::ZERO, |l| {
                    l.contains(WEST) && l.contains("down")
                })
                .is_some()
    });
    figures.set_ms("agent_down_seen_ms", seen_down.then(|| dropped.elapsed()));
    checks.expect(
        seen_down,
        "s1 never saw the agent vote west down (fault not in effect)",
    );
    let flagged = wait_until(after(Duration::from_secs(2)), || {
        is_partitioned(&cluster.status("s1"), "v4")
    });
    figures.set("agent_flagged_partitioned", flagged);
    observe_until(dropped + PHASE);
    let phase1_end = Instant::now();

    // Phase 2: the agent is cut off from everything (its hub port goes down).
    cluster.net.heal("a4");
    cluster.net.cut("a4");
    let cut = Instant::now();
    let stale = wait_until(after(CUT), || !is_fresh(&cluster.status("s1"), "v4"));
    figures.set_ms("agent_stale_ms", stale.then(|| cut.elapsed()));
    checks.expect(stale, "s1 still had a fresh report from the cut-off agent");
    observe_until(cut + CUT);
    let end = Instant::now();
    cluster.net.reconnect("a4");

    for (server, watcher) in SERVERS.iter().zip(&watchers) {
        let phase1 = watcher.changes_during(begin, phase1_end);
        let phase2 = watcher.changes_during(phase1_end, end);
        let polls = watcher.answered_during(begin, end);
        figures.set(&format!("{server}_changes"), phase1.len() + phase2.len());
        figures.set(&format!("{server}_polls"), polls);
        checks.expect(
            phase1.is_empty(),
            format!("{server}: answers changed while the agent reached no backend: {phase1:?}"),
        );
        checks.expect(
            phase2.is_empty(),
            format!("{server}: answers changed while the agent was cut off: {phase2:?}"),
        );
        checks.expect(
            polls > 200,
            format!("{server}: only {polls} polls answered"),
        );
    }
    figures.print();
    checks.assert_all();
}
