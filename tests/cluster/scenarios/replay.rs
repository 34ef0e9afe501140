//! Scenario 4: the agent reports to s1 through a recording proxy; its reports saying
//! "west down" are recorded during a real outage. After west has recovered, s1 is
//! restarted (with a state file, then without one) and every recorded report is
//! replayed verbatim, headers and all: each must be refused (4xx), and s1's answer
//! must not move. The proxy withholds the agent's live reports during each restart
//! and replay, as someone on the path would.

use std::time::{Duration, Instant};

use crate::backend::Mode;
use crate::dns::Watcher;
use crate::figures::{Checks, Figures};
use crate::fixture::{
    Cluster, NODES, Options, WEST, after, counted_vote, observe_until, vantage_of, wait_until,
};
use crate::http;
use crate::proxy::Recorded;
use crate::support::require;

/// Most reports replayed per round.
const MAX_REPLAYS: usize = 30;
/// Reports "west down" recorded before the outage ends, at the least.
const WANT_RECORDED: usize = 10;
/// How long s1's answer is watched after a replay.
const AFTER_REPLAY: Duration = Duration::from_secs(3);

/// Whether a recorded report's body says west is down.
fn says_west_down(report: &Recorded) -> bool {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&report.body) else {
        return false;
    };
    body["verdicts"].as_array().is_some_and(|verdicts| {
        verdicts
            .iter()
            .any(|v| v["endpoint"] == WEST && v["state"] == "down")
    })
}

#[test]
fn replayed_reports_are_refused_across_a_restart() {
    let mut options = Options::new(5);
    options.agent_via_proxy = true;
    options.state_files = vec!["s1"];
    let mut cluster = require!(Cluster::start(&options));
    let mut figures = Figures::new("replayed_reports");
    let mut checks = Checks::default();
    let (west, east) = (cluster.addr("west"), cluster.addr("east"));
    let proxy = cluster.proxy.as_ref().expect("proxy");
    let proxy_ok = proxy
        .recorded()
        .iter()
        .any(|r| (200..300).contains(&r.status));
    assert!(
        proxy_ok,
        "no report of the agent went through the proxy on {} to s1",
        proxy.listen
    );

    // A real outage (west answers 503): the agent's reports say west is down.
    let watcher = Watcher::start(&cluster.net, cluster.addr("s1"));
    cluster.west.set(Mode::Status(503));
    let killed = Instant::now();
    let failover = watcher.time_until(killed, east, Duration::from_secs(10));
    figures.set_ms("s1_failover_ms", failover);
    assert!(failover.is_some(), "s1 did not fail over to east");
    // Reports are picked by their body (verdict west down); should the body format
    // not be readable, every report recorded during the outage is taken instead.
    let recorded_enough = wait_until(after(Duration::from_secs(8)), || {
        let recorded = cluster.proxy.as_ref().expect("proxy").recorded();
        recorded.iter().filter(|r| says_west_down(r)).count() >= WANT_RECORDED
            || recorded.iter().filter(|r| r.at >= killed).count() >= 3 * WANT_RECORDED
    });
    assert!(
        recorded_enough,
        "fewer than {WANT_RECORDED} 'west down' reports recorded"
    );
    cluster.west.set(Mode::Healthy);
    let revived = Instant::now();
    let recovered = watcher.time_until(revived, west, Duration::from_secs(10));
    figures.set_ms("s1_recovery_ms", recovered);
    assert!(recovered.is_some(), "s1 did not return to west");
    let all_up = wait_until(after(Duration::from_secs(10)), || {
        let status = cluster.status("s1");
        NODES.iter().all(|n| {
            counted_vote(&status, WEST, &vantage_of(n)).is_some_and(|v| v.starts_with("up"))
        })
    });
    assert!(all_up, "not every vantage point sees west up again");
    drop(watcher);
    let recorded = cluster.proxy.as_ref().expect("proxy").recorded();
    // The reports saying "west down" first (with delta-encoded reports often a single
    // one), then every other report recorded during the outage.
    let mut replays: Vec<Recorded> = recorded
        .iter()
        .filter(|r| says_west_down(r))
        .cloned()
        .collect();
    let west_down = replays.len();
    replays.extend(
        recorded
            .iter()
            .filter(|r| r.at >= killed && r.at < revived && !says_west_down(r))
            .cloned(),
    );
    replays.truncate(MAX_REPLAYS);
    figures.set("recorded", recorded.len());
    figures.set("recorded_west_down", west_down);

    for (round, state_file) in [("with_state", true), ("without_state", false)] {
        cluster
            .proxy
            .as_ref()
            .expect("proxy")
            .withhold_reports(true);
        if !state_file {
            cluster.files.get_mut("s1").expect("s1").state_file = None;
            cluster.rewrite("s1");
        }
        cluster.restart("s1");
        let watcher = Watcher::start(&cluster.net, cluster.addr("s1"));
        let restarted = Instant::now();
        let first = wait_until(after(Duration::from_secs(5)), || {
            watcher.first_answer_since(restarted).is_some()
        });
        checks.expect(
            first,
            format!("{round}: s1 gave no DNS answer after restarting"),
        );
        let first_answer = watcher.first_answer_since(restarted);

        let admin = cluster.admin("s1");
        let batch = replays.clone();
        let responses: Vec<http::Response> = cluster.net.run_in("a4", move || {
            batch
                .iter()
                .map(|r| http::request(admin, "POST", &r.path, &r.headers, &r.body))
                .collect()
        });
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        let challenged = responses
            .iter()
            .filter(|r| r.header("x-failoverd-challenge").is_some())
            .count();
        let replayed = Instant::now();
        let accepted = statuses.iter().filter(|s| (200..300).contains(*s)).count();
        let refused_4xx = statuses.iter().filter(|s| (400..500).contains(*s)).count();
        observe_until(replayed + AFTER_REPLAY);
        let from = first_answer.as_ref().map_or(restarted, |s| s.at);
        let changes = watcher.changes_since(from);
        figures.set(&format!("{round}_replays"), statuses.len());
        figures.set(&format!("{round}_accepted"), accepted);
        figures.set(&format!("{round}_refused_4xx"), refused_4xx);
        figures.set(&format!("{round}_statuses"), summarize(&statuses));
        figures.set(&format!("{round}_with_challenge_header"), challenged);
        figures.set(&format!("{round}_changes"), changes.len());
        checks.expect(
            accepted == 0 && refused_4xx == statuses.len(),
            format!(
                "{round}: replayed reports were not all refused: {}",
                summarize(&statuses)
            ),
        );
        checks.expect(
            first_answer.as_ref().is_some_and(|s| s.answer.is(west)),
            format!(
                "{round}: s1's first answer after restarting was {:?}, not west",
                first_answer.as_ref().map(|s| s.answer.text())
            ),
        );
        checks.expect(
            changes.is_empty(),
            format!("{round}: s1's answer changed after the replay: {changes:?}"),
        );

        // The genuine agent gets through again.
        let proxy = cluster.proxy.as_ref().expect("proxy");
        let before = proxy.recorded().len();
        proxy.withhold_reports(false);
        let released = Instant::now();
        let accepted_again = wait_until(after(Duration::from_secs(5)), || {
            proxy.recorded()[before..]
                .iter()
                .any(|r| (200..300).contains(&r.status))
        });
        figures.set_ms(
            &format!("{round}_agent_accepted_again_ms"),
            accepted_again.then(|| released.elapsed()),
        );
        checks.expect(
            accepted_again,
            format!("{round}: the agent's live reports were not accepted after the restart"),
        );
    }
    figures.print();
    checks.assert_all();
}

/// `status×count` pairs, e.g. `409x28,204x2`.
fn summarize(statuses: &[u16]) -> String {
    let mut counts: std::collections::BTreeMap<u16, usize> = Default::default();
    for status in statuses {
        *counts.entry(*status).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}x{n}"))
        .collect::<Vec<_>>()
        .join(",")
}
