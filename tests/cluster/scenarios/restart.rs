//! Scenario 5: west dies and every server fails over; s1 is SIGKILLed and restarted
//! while west is still dead — once from its state file, once without one (it asks its
//! peers). From its first DNS answer on it must answer east, never west; when west
//! revives it goes back. `/readyz` turning 200 is timed against the first answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::backend::Mode;
use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{Cluster, Options, SERVERS, after, observe_until, wait_until};
use crate::http;
use crate::net::Net;
use crate::support::require;

/// How long s1 is watched after its first answer while west is still dead.
const WATCH_AFTER_START: Duration = Duration::from_secs(3);
/// Longest a failover or a recovery may take.
const BUDGET: Duration = Duration::from_secs(10);

/// Polls `GET /readyz` on `admin` from `role`'s namespace every 20 ms until it is
/// 200 (returns when) or `within` has passed (None).
fn ready_at(
    net: &Net,
    role: &str,
    admin: SocketAddr,
    within: Duration,
) -> std::thread::JoinHandle<Option<Instant>> {
    net.spawn_in(role, move || {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if http::get(admin, "/readyz").status == 200 {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    })
}

/// Signed milliseconds from `from` to `to`.
fn signed_ms(from: Instant, to: Instant) -> i128 {
    if to >= from {
        (to - from).as_millis() as i128
    } else {
        -((from - to).as_millis() as i128)
    }
}

#[test]
fn restart_mid_incident_keeps_the_failover() {
    let mut options = Options::new(6);
    options.state_files = vec!["s1"];
    let mut cluster = require!(Cluster::start(&options));
    let mut figures = Figures::new("restart_mid_incident");
    let mut checks = Checks::default();
    let (west, east) = (cluster.addr("west"), cluster.addr("east"));
    let watchers: Vec<Watcher> = SERVERS
        .iter()
        .map(|s| Watcher::start(&cluster.net, cluster.addr(s)))
        .collect();

    cluster.west.set(Mode::Refuse);
    let killed = Instant::now();
    for (server, watcher) in SERVERS.iter().zip(&watchers) {
        let detection = watcher.time_until(killed, east, BUDGET);
        figures.set_ms(&format!("{server}_failover_ms"), detection);
        assert!(detection.is_some(), "{server} did not fail over to east");
    }
    drop(watchers);
    let state_path = cluster.dir.path().join("s1-state.json");
    let saved = wait_until(after(Duration::from_secs(5)), || state_path.exists());
    assert!(saved, "s1 wrote no state file at {}", state_path.display());

    for (round, state_file) in [("with_state", true), ("without_state", false)] {
        if !state_file {
            cluster.files.get_mut("s1").expect("s1").state_file = None;
            cluster.rewrite("s1");
        }
        cluster.kill("s1");
        let restarted = Instant::now();
        let watcher = Watcher::start(&cluster.net, cluster.addr("s1"));
        let ready = ready_at(
            &cluster.net,
            "s1",
            cluster.admin("s1"),
            Duration::from_secs(20),
        );
        cluster.relaunch("s1");
        let answered = wait_until(after(Duration::from_secs(10)), || {
            watcher.first_answer_since(restarted).is_some()
        });
        checks.expect(
            answered,
            format!("{round}: s1 gave no DNS answer after restarting"),
        );
        let first = watcher.first_answer_since(restarted);
        // Where its start-up health came from, as its log says (a figure only).
        let source = if cluster
            .node("s1")
            .wait_for_log("restored", Duration::ZERO)
            .is_some()
        {
            "state_file"
        } else if cluster
            .node("s1")
            .wait_for_log("peers", Duration::ZERO)
            .is_some()
        {
            "peers"
        } else {
            "-"
        };
        figures.set(&format!("{round}_logged_source"), source);
        let first_at = first.as_ref().map_or_else(Instant::now, |s| s.at);
        observe_until(first_at + WATCH_AFTER_START);
        let changes = watcher.changes_since(first_at);
        let ready = ready.join().expect("readyz poller");
        figures.set(
            &format!("{round}_first_answer"),
            first.as_ref().map_or("-".to_owned(), |s| {
                if s.answer.is(east) {
                    "east".to_owned()
                } else {
                    s.answer.text()
                }
            }),
        );
        figures.set_ms(
            &format!("{round}_first_answer_after_kill_ms"),
            first.as_ref().map(|s| s.at - restarted),
        );
        figures.set(&format!("{round}_changes"), changes.len());
        figures.set(
            &format!("{round}_readyz_minus_first_answer_ms"),
            ready.map_or("-".to_owned(), |r| signed_ms(first_at, r).to_string()),
        );
        checks.expect(
            first.as_ref().is_some_and(|s| s.answer.is(east)),
            format!(
                "{round}: s1's first answer after restarting was {:?}, not east",
                first.as_ref().map(|s| s.answer.text())
            ),
        );
        checks.expect(
            changes.is_empty(),
            format!("{round}: s1 changed its answer while west was still dead: {changes:?}"),
        );
        checks.expect(
            ready.is_some(),
            format!("{round}: /readyz never turned 200"),
        );
    }

    let watcher = Watcher::start(&cluster.net, cluster.addr("s1"));
    cluster.west.set(Mode::Healthy);
    let revived = Instant::now();
    let recovery = watcher.time_until(revived, west, BUDGET);
    figures.set_ms("s1_recovery_ms", recovery);
    checks.expect(
        recovery.is_some(),
        "s1 did not go back to west after it revived",
    );
    figures.print();
    checks.assert_all();
}
