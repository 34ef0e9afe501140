//! Scenario 2: a server cut off from every peer and agent *and* from the west
//! backends (healthy for everyone else) keeps answering west with `isolation = "hold"`
//! — its lone view is no quorum — and says so in `/status` and `/metrics`.

use std::time::{Duration, Instant};

use crate::config::Flavour;
use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{
    Cluster, NODES, Options, SERVERS, WEST, after, endpoint_status, is_fresh, observe_until,
    wait_until,
};
use crate::http::metric;
use crate::support::require;

/// How long s1 stays isolated.
const PERIOD: Duration = Duration::from_secs(8);

#[test]
fn isolated_server_blind_to_a_healthy_region_holds() {
    let mut options = Options::new(2);
    options.isolation = Some("hold");
    let cluster = require!(Cluster::start(&options));
    let mut figures = Figures::new("isolated_server");
    let mut checks = Checks::default();
    let watchers: Vec<Watcher> = SERVERS
        .iter()
        .map(|s| Watcher::start(&cluster.net, cluster.addr(s)))
        .collect();
    let west = cluster.addr("west");

    let mut cut_off: Vec<_> = NODES
        .iter()
        .filter(|n| **n != "s1")
        .map(|n| cluster.addr(n))
        .collect();
    cut_off.push(west);
    cluster.net.drop_traffic("s1", &cut_off);
    let begin = Instant::now();

    // The fault is in effect: s1's own probe sees west down (its status or its log
    // says so), and its peers' reports have gone stale.
    let blind = wait_until(after(PERIOD), || {
        let status = cluster.status("s1");
        let local_down = endpoint_status(&status, WEST)
            .is_some_and(|e| e["local"]["verdict"] == "down")
            || cluster
                .node("s1")
                .wait_for_line(0, Duration::ZERO, |l| {
                    l.contains(WEST) && l.contains("down")
                })
                .is_some();
        let alone = ["v2", "v3", "v4"].iter().all(|v| !is_fresh(&status, v));
        local_down && alone
    });
    figures.set_ms("s1_blind_after_ms", blind.then(|| begin.elapsed()));
    checks.expect(
        blind,
        "s1 never saw west down while alone (fault not in effect)",
    );

    let mut isolation_seen = None;
    let mut metric_seen = None;
    if cluster.config.flavour == Flavour::New {
        let status = cluster.status("s1");
        let isolation = &status["isolation"];
        isolation_seen = Some(isolation["isolated"] == true);
        figures.set(
            "s1_isolation",
            isolation.to_string().replace(['"', ' '], ""),
        );
        checks.expect(
            isolation["isolated"] == true && isolation["mode"] == "hold",
            format!("s1 /status isolation should say isolated in hold mode: {isolation}"),
        );
        let isolated = metric(&cluster.metrics("s1"), "failoverd_isolated");
        metric_seen = isolated;
        checks.expect(
            isolated == Some(1.0),
            format!("s1 /metrics failoverd_isolated should be 1, is {isolated:?}"),
        );
    }
    figures.set(
        "s1_status_isolated",
        isolation_seen.map_or("-".to_owned(), |b| b.to_string()),
    );
    figures.set(
        "s1_metric_isolated",
        metric_seen.map_or("-".to_owned(), |v| v.to_string()),
    );
    observe_until(begin + PERIOD);
    let end = Instant::now();
    cluster.net.heal("s1");

    for (server, watcher) in SERVERS.iter().zip(&watchers) {
        let changes = watcher.changes_during(begin, end);
        figures.set(&format!("{server}_changes"), changes.len());
        let first = changes
            .first()
            .map(|c| c.at.saturating_duration_since(begin));
        figures.set_ms(&format!("{server}_first_change_ms"), first);
        checks.expect(
            changes.is_empty(),
            format!("{server}: answers changed while s1 was isolated: {changes:?}"),
        );
        let polls = watcher.answered_during(begin, end);
        checks.expect(
            polls > 150,
            format!("{server}: only {polls} polls answered"),
        );
    }
    figures.print();
    checks.assert_all();
}
