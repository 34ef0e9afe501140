//! Scenario 3: s1 loses its links to every peer and agent but still reaches the
//! backends; then the west backend really dies. The connected majority (s2, s3, a4)
//! fails over; s1 holds west with `isolation = "hold"` (the documented trade-off) and
//! follows its own probes with `isolation = "local"`. After the backend revives and the
//! links heal, every server answers west again.

use std::time::{Duration, Instant};

use crate::backend::Mode;
use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{
    Cluster, NODES, Options, SERVERS, after, is_fresh, observe_until, wait_until,
};
use crate::support::require;

/// Longest a failover or a recovery may take.
const DETECTION_BUDGET: Duration = Duration::from_secs(10);
/// How long s1 is watched after the kill (hold mode) at the least.
const HOLD_PERIOD: Duration = Duration::from_secs(5);

#[test]
fn peer_link_cut_with_real_backend_death_hold() {
    peer_link_cut_with_real_backend_death("hold", 3);
}

#[test]
fn peer_link_cut_with_real_backend_death_local() {
    peer_link_cut_with_real_backend_death("local", 4);
}

fn peer_link_cut_with_real_backend_death(mode: &'static str, subnet: u8) {
    let mut options = Options::new(subnet);
    options.isolation = Some(mode);
    let cluster = require!(Cluster::start(&options));
    let mut figures = Figures::new(&format!("peer_link_cut_{mode}"));
    let mut checks = Checks::default();
    let watchers: Vec<Watcher> = SERVERS
        .iter()
        .map(|s| Watcher::start(&cluster.net, cluster.addr(s)))
        .collect();
    let (west, east) = (cluster.addr("west"), cluster.addr("east"));

    // s1 loses every peer and agent (silently), not the backends.
    let peers: Vec<_> = NODES
        .iter()
        .filter(|n| **n != "s1")
        .map(|n| cluster.addr(n))
        .collect();
    cluster.net.drop_traffic("s1", &peers);
    let cut = Instant::now();
    let apart = wait_until(after(Duration::from_secs(6)), || {
        let s1 = cluster.status("s1");
        let s2 = cluster.status("s2");
        ["v2", "v3", "v4"].iter().all(|v| !is_fresh(&s1, v)) && !is_fresh(&s2, "v1")
    });
    figures.set_ms("apart_after_ms", apart.then(|| cut.elapsed()));
    checks.expect(
        apart,
        "s1 and its peers still heard from each other (fault not in effect)",
    );

    // The west backend dies for real.
    cluster.west.set(Mode::Refuse);
    let killed = Instant::now();
    for (server, watcher) in SERVERS.iter().zip(&watchers).skip(1) {
        let detection = watcher.time_until(killed, east, DETECTION_BUDGET);
        figures.set_ms(&format!("{server}_detection_ms"), detection);
        checks.expect(
            detection.is_some(),
            format!("{server} (connected majority) did not fail over to east"),
        );
    }
    let s1 = &watchers[0];
    match mode {
        "local" => {
            let detection = s1.time_until(killed, east, DETECTION_BUDGET);
            figures.set_ms("s1_detection_ms", detection);
            checks.expect(
                detection.is_some(),
                "s1 (isolation = local) did not fail over on its own probes",
            );
        }
        _ => {
            observe_until(killed + HOLD_PERIOD);
            let changes = s1.changes_during(cut, Instant::now());
            figures.set("s1_changes", changes.len());
            let first = changes
                .first()
                .map(|c| c.at.saturating_duration_since(killed));
            figures.set_ms("s1_first_change_ms", first);
            checks.expect(
                changes.is_empty(),
                format!("s1 (isolation = hold) changed its answer while cut off: {changes:?}"),
            );
        }
    }
    let revived_at = Instant::now();
    for (server, watcher) in SERVERS.iter().zip(&watchers).skip(1) {
        let changes = watcher.changes_during(cut, revived_at);
        figures.set(&format!("{server}_changes_while_dead"), changes.len());
        checks.expect(
            changes.len() == 1,
            format!("{server}: expected exactly west→east while west was dead: {changes:?}"),
        );
    }

    // The backend revives, then the links heal: everyone answers west.
    cluster.west.set(Mode::Healthy);
    let revived = Instant::now();
    for (server, watcher) in SERVERS.iter().zip(&watchers).skip(1) {
        let recovery = watcher.time_until(revived, west, DETECTION_BUDGET);
        figures.set_ms(&format!("{server}_recovery_ms"), recovery);
        checks.expect(
            recovery.is_some(),
            format!("{server} did not return to west"),
        );
    }
    cluster.net.heal("s1");
    let healed = Instant::now();
    let s1_back = s1.time_until(revived, west, DETECTION_BUDGET);
    figures.set_ms("s1_recovery_ms", s1_back);
    checks.expect(s1_back.is_some(), "s1 did not return to west");
    let rejoined = wait_until(after(Duration::from_secs(6)), || {
        let s1 = cluster.status("s1");
        ["v2", "v3", "v4"].iter().all(|v| is_fresh(&s1, v))
    });
    checks.expect(
        rejoined,
        "s1 did not hear from its peers again after healing",
    );
    let settle = Instant::now() + Duration::from_secs(1);
    observe_until(settle);
    for (server, watcher) in SERVERS.iter().zip(&watchers) {
        let latest = watcher.latest();
        checks.expect(
            latest.as_ref().is_some_and(|a| a.is(west)),
            format!("{server} answers {latest:?} after healing, not west"),
        );
        let after_heal = watcher.changes_during(healed.max(revived), Instant::now());
        checks.expect(
            after_heal.iter().all(|c| c.to.is(west)),
            format!("{server}: left west after healing: {after_heal:?}"),
        );
    }
    figures.print();
    checks.assert_all();
}
