//! Scenario 6: s1 reloads five times (SIGHUP) under a bounded query load while west
//! is dead — the same file, an invalid file (refused, the running configuration kept,
//! then restored), a changed file (TTL 5 → 7), and the same file twice more. No query
//! may go unanswered beyond a tiny bound, none may be answered wrong (west, or
//! anything but east), and the health state must survive every reload. NEW flavour
//! also rotates the agent's secret (servers first, then the agent) and checks that
//! the agent's reports are accepted again.

use std::time::{Duration, Instant};

use crate::backend::Mode;
use crate::config::{Flavour, write_atomically};
use crate::dns::{self, LOAD_TIMEOUT, Load, WWW, Watcher};
use crate::figures::{Checks, Figures};
use crate::fixture::{
    Cluster, EAST, NODES, Options, SERVERS, WEST, after, counted_vote, is_fresh, observe_until,
    wait_until,
};
use crate::http::metric;
use crate::support::require;

/// Load: threads, queries a second per thread, duration, cap.
const THREADS: usize = 4;
const RATE: u32 = 2000;
const PERIOD: Duration = Duration::from_secs(10);
const MAX_QUERIES: u64 = 4 * 2000 * 10;
/// Time between reloads.
const SPACING: Duration = Duration::from_millis(1500);
/// How long a reload may take to be logged.
const RELOAD_BUDGET: Duration = Duration::from_secs(5);

/// Whether a log line reports a successful reload.
fn reloaded(line: &str) -> bool {
    line.contains("reloaded")
}

/// Whether a log line reports a refused reload.
fn reload_failed(line: &str) -> bool {
    line.contains("reload") && line.contains("fail")
}

/// `failoverd_config_reloads_total{result}` of `server` (NEW builds), if exported.
fn reload_count(cluster: &Cluster, server: &str, result: &str) -> Option<f64> {
    let prefix = format!("failoverd_config_reloads_total{{result=\"{result}\"}}");
    metric(&cluster.metrics(server), &prefix)
}

/// Waits until `server` has reported a reload with `result` ("ok" or "failed") since
/// log line `mark`: in its log, or by its reload counter rising above `before`.
fn wait_reload(
    cluster: &Cluster,
    server: &str,
    mark: usize,
    result: &str,
    before: Option<f64>,
) -> bool {
    let matches: fn(&str) -> bool = if result == "ok" {
        reloaded
    } else {
        reload_failed
    };
    wait_until(after(RELOAD_BUDGET), || {
        let node = cluster.node(server);
        node.wait_for_line(mark, Duration::ZERO, matches).is_some()
            || matches!(
                (before, reload_count(cluster, server, result)),
                (Some(before), Some(now)) if now > before
            )
    })
}

#[test]
fn sighup_under_query_load() {
    let mut cluster = require!(Cluster::start(&Options::new(7)));
    let mut figures = Figures::new("sighup_under_load");
    let mut checks = Checks::default();
    let east = cluster.addr("east");

    // West is dead at the time of every reload.
    let watchers: Vec<Watcher> = SERVERS
        .iter()
        .map(|s| Watcher::start(&cluster.net, cluster.addr(s)))
        .collect();
    cluster.west.set(Mode::Refuse);
    let killed = Instant::now();
    for (server, watcher) in SERVERS.iter().zip(&watchers) {
        let failover = watcher.time_until(killed, east, Duration::from_secs(10));
        assert!(failover.is_some(), "{server} did not fail over to east");
    }
    drop(watchers);

    let load = Load::start(
        &cluster.net,
        cluster.addr("s1"),
        THREADS,
        RATE,
        PERIOD,
        MAX_QUERIES,
        east,
    );
    let begin = Instant::now();
    let path = cluster.paths["s1"].clone();
    let mut reloads_ok = 0;
    let mut reloads_refused = 0;
    let mut ttl_seen = None;
    for step in 0..5 {
        observe_until(begin + SPACING * (step + 1));
        let mark = cluster.node("s1").log_mark();
        let result = if step == 1 { "failed" } else { "ok" };
        let before = reload_count(&cluster, "s1", result);
        match step {
            1 => write_atomically(&path, "version = 1\n[server\nlisten = nonsense\n"),
            2 => {
                cluster.config.ttl = 7;
                cluster.rewrite("s1");
            }
            _ => {}
        }
        cluster.node("s1").hangup();
        let done = wait_reload(&cluster, "s1", mark, result, before);
        if step == 1 {
            let refused = done;
            reloads_refused += usize::from(refused);
            checks.expect(
                refused,
                "the invalid configuration was not reported as refused",
            );
            cluster.rewrite("s1"); // restore the valid file
        } else {
            let ok = done;
            reloads_ok += usize::from(ok);
            checks.expect(ok, format!("reload {} was not reported", step + 1));
        }
        if step == 2 {
            ttl_seen = dns::ask(&cluster.net, cluster.addr("s1"), WWW).and_then(|r| r.ttl);
        }
        let running = cluster.node_mut("s1").running();
        checks.expect(running, format!("s1 stopped after reload {}", step + 1));
    }
    let (counts, wrong_examples) = load.finish();
    let elapsed = begin.elapsed();
    // A query is lost only if a datagram is: ≤ 4 are in flight at any time, so no
    // socket buffer can overflow; 1 in 10,000 allows for a scheduling stall longer
    // than the 1 s reply timeout on a loaded 2-core machine.
    let allowed_timeouts = counts.sent / 10_000;
    figures.set("queries_sent", counts.sent);
    figures.set("answered", counts.answered);
    figures.set("timeouts", counts.timeouts);
    figures.set("timeouts_allowed", allowed_timeouts);
    figures.set("wrong", counts.wrong);
    figures.set("qps", (counts.sent as f64 / elapsed.as_secs_f64()).round());
    figures.set("reloads_ok", reloads_ok);
    figures.set("reloads_refused", reloads_refused);
    figures.set(
        "ttl_after_change",
        ttl_seen.map_or("-".to_owned(), |t| t.to_string()),
    );
    checks.expect(
        counts.timeouts <= allowed_timeouts,
        format!(
            "{} of {} queries got no reply within {LOAD_TIMEOUT:?} (allowed {allowed_timeouts})",
            counts.timeouts, counts.sent
        ),
    );
    checks.expect(
        counts.wrong == 0,
        format!("{} wrong answers, e.g. {wrong_examples:?}", counts.wrong),
    );
    checks.expect(
        counts.sent >= 20_000,
        format!("only {} queries sent", counts.sent),
    );
    checks.expect(
        ttl_seen == Some(7),
        format!("TTL after the change is {ttl_seen:?}, not 7"),
    );
    let state = cluster.status("s1");
    let west_state = crate::fixture::endpoint_status(&state, WEST).map(|e| e["state"].clone());
    checks.expect(
        west_state.as_ref().is_some_and(|s| *s == "down"),
        format!("s1 forgot that west is down: {west_state:?}"),
    );

    if cluster.config.flavour == Flavour::New {
        let metrics = cluster.metrics("s1");
        let ok = metric(&metrics, "failoverd_config_reloads_total{result=\"ok\"}");
        let failed = metric(
            &metrics,
            "failoverd_config_reloads_total{result=\"failed\"}",
        );
        figures.set(
            "metric_reloads_ok",
            ok.map_or("-".to_owned(), |v| v.to_string()),
        );
        figures.set(
            "metric_reloads_failed",
            failed.map_or("-".to_owned(), |v| v.to_string()),
        );
        checks.expect(
            ok == Some(4.0) && failed == Some(1.0),
            format!("reload metrics ok={ok:?} failed={failed:?}, expected 4 and 1"),
        );
        rotate_agent_secret(&mut cluster, &mut figures, &mut checks);
    } else {
        figures.set("rotation", "skipped");
    }
    figures.print();
    checks.assert_all();
}

/// Rotates a4's secret: servers' files and the agent's, SIGHUP to the servers, then to
/// the agent; the agent's reports must be accepted by s1 again.
fn rotate_agent_secret(cluster: &mut Cluster, figures: &mut Figures, checks: &mut Checks) {
    cluster.config.vantage_mut("v4").secret = "rotated-secret-of-v4-0123456789".to_owned();
    for node in NODES {
        cluster.rewrite(node);
    }
    for server in SERVERS {
        let mark = cluster.node(server).log_mark();
        let before = reload_count(cluster, server, "ok");
        cluster.node(server).hangup();
        let ok = wait_reload(cluster, server, mark, "ok", before);
        checks.expect(ok, format!("{server} did not reload the rotated secret"));
    }
    let bad = |cluster: &Cluster| {
        metric(
            &cluster.metrics("s1"),
            "failoverd_reports_received_total{result=\"bad_signature\"}",
        )
        .unwrap_or(0.0)
    };
    // The agent still signs with the old secret: s1 refuses it.
    let before = bad(cluster);
    let refused = wait_until(after(Duration::from_secs(5)), || bad(cluster) > before);
    checks.expect(
        refused,
        "s1 did not refuse the agent's reports signed with the old secret",
    );
    // …until the agent's last accepted report has gone stale.
    let stale = wait_until(after(Duration::from_secs(5)), || {
        !is_fresh(&cluster.status("s1"), "v4")
    });
    checks.expect(
        stale,
        "the agent stayed fresh on s1 although its reports were refused",
    );
    let mark = cluster.node("a4").log_mark();
    cluster.node("a4").hangup();
    let hup = Instant::now();
    // Accepted again: v4 fresh with a counted vote, and no new bad signatures.
    let mut accepted_at = None;
    let accepted = wait_until(after(Duration::from_secs(8)), || {
        let status = cluster.status("s1");
        let voting = is_fresh(&status, "v4")
            && counted_vote(&status, EAST, "v4").is_some()
            && counted_vote(&status, WEST, "v4").is_some();
        if !voting {
            return false;
        }
        accepted_at.get_or_insert_with(Instant::now);
        // A quiet period: no new bad signatures for 500 ms.
        let quiet_from = bad(cluster);
        observe_until(Instant::now() + Duration::from_millis(500));
        bad(cluster) == quiet_from
    });
    let agent_reloaded = cluster
        .node("a4")
        .wait_for_line(mark, Duration::from_secs(1), reloaded)
        .is_some();
    figures.set("agent_reload_logged", agent_reloaded);
    figures.set_ms(
        "rotation_reaccepted_ms",
        accepted.then(|| accepted_at.map_or(hup.elapsed(), |a| a - hup)),
    );
    checks.expect(
        accepted,
        "the agent's reports were not accepted again after rotating its secret",
    );
    let running = cluster.node_mut("a4").running();
    checks.expect(running, "the agent stopped on SIGHUP");
}
