//! The board's timer logic and state keeping, with time passed in.

use super::*;
use crate::config::ConfigSource;
use crate::health::report::Verdict;

const UP: HealthState = HealthState::Up;
const DOWN: HealthState = HealthState::Down;
const BOOT: u128 = 0xfeed;

/// Three vantage points (this server is v1), two endpoints probed every second with
/// rise 2 / fall 2 / hold 3 s; `extra` goes into `[health]`; `endpoints` lists the
/// pool's endpoint names (their order sets the indices).
fn config(extra: &str, endpoints: &[&str]) -> Config {
    config_with_check(extra, "", endpoints)
}

/// [`config`] with `check` lines added to the check.
fn config_with_check(extra: &str, check: &str, endpoints: &[&str]) -> Config {
    let list: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{{ address = \"192.0.2.{}\", name = \"{name}\" }}", i + 1))
        .collect();
    let text = format!(
        r#"
version = 1
[zones]
directory = "."
[regions.west]
[regions.east]
[checks.web]
type = "tcp"
port = 80
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
hold = "3s"
{check}
[pools.web]
check = "web"
endpoints = [{}]
[vantages.v1]
region = "west"
secret = "secret-of-v1-0123456789"
[vantages.v2]
region = "east"
secret = "secret-of-v2-0123456789"
[vantages.v3]
region = "east"
secret = "secret-of-v3-0123456789"
[health]
vantage = "v1"
staleness = "5s"
{extra}
"#,
        list.join(", ")
    );
    match Config::load(ConfigSource::from_text(text, ".")) {
        Ok((config, _)) => config,
        Err(diagnostics) => panic!("{diagnostics}"),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn probe(board: &mut Board, endpoint: u32, ok: bool, at: f64) -> LocalChange {
    board.observe_local(LocalObservation {
        generation: board.generation(),
        endpoint: EndpointIndex(endpoint),
        outcome: ProbeOutcome::vote(
            ok,
            Duration::from_millis(1),
            if ok { "ok" } else { "connect refused" }.into(),
        ),
        at: secs(at),
    })
}

struct Sender {
    vantage: &'static str,
    session: u64,
    sequence: u64,
}

impl Sender {
    fn new(vantage: &'static str, session: u64) -> Self {
        Self {
            vantage,
            session,
            sequence: 0,
        }
    }

    /// The next report, with verdicts `(label, state, age_ms)`.
    fn report(&mut self, challenge: String, verdicts: &[(&str, HealthState, u64)]) -> Report {
        self.sequence += 1;
        Report {
            vantage: self.vantage.into(),
            session: self.session,
            sequence: self.sequence,
            challenge,
            sent_at_ms: 0,
            base: None,
            verdicts: verdicts
                .iter()
                .map(|(endpoint, state, age_ms)| Verdict {
                    endpoint: (*endpoint).into(),
                    state: *state,
                    reason: String::new(),
                    age_ms: *age_ms,
                    rtt_us: None,
                    degraded: false,
                })
                .collect(),
        }
    }
}

fn states(board: &mut Board, at: f64) -> Vec<HealthState> {
    let (health, _) = board.decide(secs(at), 0);
    health.endpoints().iter().map(|h| h.state).collect()
}

fn send(
    board: &mut Board,
    sender: &mut Sender,
    at: f64,
    verdicts: &[(&str, HealthState, u64)],
) -> Result<bool, ReportError> {
    let report = sender.report(board.challenge(secs(at)), verdicts);
    board.accept_report(report, secs(at))
}

#[test]
fn a_quorum_decides_and_a_lonely_opinion_holds() {
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &Restored::default(), 0);
    let mut v2 = Sender::new("v2", 1);
    // v1 alone sees a down: it is isolated (needs 2 of 3) and holds.
    for t in [0.0, 1.0] {
        probe(&mut board, 0, false, t);
        probe(&mut board, 1, true, t);
    }
    assert_eq!(states(&mut board, 1.0), [UP, UP]);
    assert!(board.isolation().isolated);
    assert_eq!(board.isolation().missing, ["v2", "v3"]);
    // v2 agrees: a quorum of the configured three.
    send(
        &mut board,
        &mut v2,
        1.5,
        &[("web/a", DOWN, 0), ("web/b", UP, 0)],
    )
    .unwrap();
    assert_eq!(states(&mut board, 1.5), [DOWN, UP]);
    assert!(!board.isolation().isolated);
    // v2 goes silent: after staleness v1 is isolated again and keeps the state, even
    // while its own probes now see a back up.
    for t in [2.0, 3.0, 4.0, 5.0, 6.0, 7.0] {
        probe(&mut board, 0, true, t);
        probe(&mut board, 1, true, t);
    }
    assert_eq!(states(&mut board, 7.0), [DOWN, UP]);
    assert!(board.isolation().isolated);
}

#[test]
fn isolation_local_trusts_the_servers_own_probes() {
    let config = config(r#"isolation = "local""#, &["a", "b"]);
    let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
    for t in [0.0, 1.0] {
        probe(&mut board, 0, false, t);
        probe(&mut board, 1, true, t);
    }
    assert_eq!(states(&mut board, 1.0), [DOWN, UP]);
    assert!(board.isolation().isolated);
}

#[test]
fn verdicts_go_stale_by_the_time_they_were_observed() {
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    let down = [("web/a", DOWN, 0), ("web/b", UP, 0)];
    send(&mut board, &mut v2, 0.0, &down).unwrap();
    send(&mut board, &mut v3, 0.0, &down).unwrap();
    assert_eq!(states(&mut board, 0.0), [DOWN, UP]);
    // v3 keeps reporting, but its prober has stalled: its verdicts age past the
    // freshness bound (max(staleness 5 s, 2 × interval + timeout) = 5 s).
    send(
        &mut board,
        &mut v2,
        10.0,
        &[("web/a", UP, 0), ("web/b", UP, 0)],
    )
    .unwrap();
    let stalled = [("web/a", DOWN, 5_500), ("web/b", UP, 5_500)];
    send(&mut board, &mut v3, 10.0, &stalled).unwrap();
    let (_, tally) = board.decide(secs(10.0), 0);
    assert_eq!(tally.votes[0].down, 0, "v3's old verdict does not count");
    // A local prober that stopped: its verdict stops counting after 5 s too.
    for t in [10.0, 11.0] {
        probe(&mut board, 0, true, t);
    }
    let (_, tally) = board.decide(secs(15.9), 0);
    assert!(tally.names(tally.votes[0].up).any(|v| v == "v1"));
    let (_, tally) = board.decide(secs(16.1), 0);
    assert!(!tally.names(tally.votes[0].up).any(|v| v == "v1"));
}

#[test]
fn reports_need_this_boots_challenge_and_increasing_sequences() {
    let mut board = Board::new(&config("", &["a"]), BOOT, &Restored::default(), 0);
    let mut v2 = Sender::new("v2", 7);
    let verdicts = [("web/a", DOWN, 0)];
    // No challenge, another boot's, a malformed one, or one two epochs old (epoch =
    // staleness = 5 s): refused.
    let mut wrong = |challenge: &str, at: f64| {
        let report = v2.report(challenge.into(), &verdicts);
        board.accept_report(report, secs(at))
    };
    assert_eq!(wrong("", 0.0), Err(ReportError::Challenge));
    assert_eq!(
        wrong(&format!("{:032x}.0", BOOT + 1), 0.0),
        Err(ReportError::Challenge)
    );
    assert_eq!(wrong("nonsense", 0.0), Err(ReportError::Challenge));
    assert_eq!(
        wrong(&format!("{BOOT:032x}.0"), 10.0),
        Err(ReportError::Challenge)
    );
    assert_eq!(
        wrong(&format!("{BOOT:032x}.9"), 10.0),
        Err(ReportError::Challenge)
    );
    // The previous epoch's challenge is still good.
    assert_eq!(wrong(&format!("{BOOT:032x}.1"), 10.0), Ok(true));
    // A report is accepted once; an older one of the same session never.
    let mut v2 = Sender::new("v2", 7);
    v2.sequence = 100;
    let report = v2.report(board.challenge(secs(11.0)), &verdicts);
    assert_eq!(board.accept_report(report.clone(), secs(11.0)), Ok(false));
    assert_eq!(
        board.accept_report(report.clone(), secs(11.0)),
        Err(ReportError::Replay)
    );
    let mut older = report.clone();
    older.sequence = 50;
    assert_eq!(
        board.accept_report(older, secs(11.0)),
        Err(ReportError::Replay)
    );
    // The sender restarts (new session) with a clock that stepped back: its sequence
    // starts low again, and it is accepted at once.
    let mut restarted = Sender::new("v2", 8);
    let fresh = restarted.report(board.challenge(secs(12.0)), &[("web/a", UP, 0)]);
    assert_eq!(board.accept_report(fresh, secs(12.0)), Ok(true));
    // The retired session is over, even for a report never delivered before.
    let mut late = report;
    late.sequence = 1_000;
    assert_eq!(
        board.accept_report(late, secs(12.0)),
        Err(ReportError::Replay)
    );
    // Nothing of this boot passes a board of the next boot.
    let mut next_boot = Board::new(&config("", &["a"]), BOOT + 1, &Restored::default(), 0);
    let replay = restarted.report(board.challenge(secs(12.0)), &[("web/a", DOWN, 0)]);
    assert_eq!(
        next_boot.accept_report(replay, secs(0.5)),
        Err(ReportError::Challenge)
    );
}

#[test]
fn unknown_vantage_points_are_refused() {
    let mut board = Board::new(&config("", &["a"]), BOOT, &Restored::default(), 0);
    let mut stranger = Sender::new("v9", 1);
    let report = stranger.report(board.challenge(secs(0.0)), &[("web/a", DOWN, 0)]);
    assert_eq!(
        board.accept_report(report, secs(0.0)),
        Err(ReportError::UnknownVantage)
    );
}

#[test]
fn adopt_keeps_state_by_label_and_ignores_old_probe_results() {
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    // b goes down by quorum at t = 1; v1's machine for b is down since t = 1.
    for t in [0.0, 1.0] {
        probe(&mut board, 1, false, t);
        probe(&mut board, 0, true, t);
    }
    let b_down = [("web/a", UP, 0), ("web/b", DOWN, 0)];
    send(&mut board, &mut v2, 1.0, &b_down).unwrap();
    send(&mut board, &mut v3, 1.0, &b_down).unwrap();
    assert_eq!(states(&mut board, 1.0), [UP, DOWN]);
    // A reload puts a new endpoint first: every index shifts.
    board.adopt(&config("", &["new", "a", "b"]), 2);
    assert_eq!(board.generation(), 2);
    assert_eq!(
        states(&mut board, 1.1),
        [UP, UP, DOWN],
        "remote views re-mapped"
    );
    assert!(!board.isolation().isolated, "remote views kept");
    // A queued result of the old generation (index 1 was b, now a) is ignored.
    let stale = board.observe_local(LocalObservation {
        generation: 1,
        endpoint: EndpointIndex(1),
        outcome: ProbeOutcome::vote(false, Duration::ZERO, "old".into()),
        at: secs(1.2),
    });
    assert_eq!(stale, LocalChange::Ignored);
    // b's machine kept its hold time: two successes at t = 2, 3 are not enough
    // before t = 1 + 3 s.
    assert_eq!(probe(&mut board, 2, true, 2.0), LocalChange::Reason);
    assert_eq!(probe(&mut board, 2, true, 3.0), LocalChange::Unchanged);
    assert_eq!(probe(&mut board, 2, true, 4.0), LocalChange::Verdict(UP));
}

#[test]
fn forced_states_win_and_survive_adopt() {
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &Restored::default(), 0);
    board.set_forced(&[Some(DOWN), None]);
    assert_eq!(states(&mut board, 0.0), [DOWN, UP]);
    // Kept by label until the plane hands in the new config's forced states.
    board.adopt(&config("", &["b", "a"]), 2);
    assert_eq!(states(&mut board, 0.1), [UP, DOWN]);
    board.set_forced(&[None, None]);
    assert_eq!(states(&mut board, 0.2), [UP, UP]);
}

#[test]
fn ready_after_restored_state_or_a_first_probe() {
    let restored = Restored {
        states: [("web/a".to_owned(), DOWN)].into(),
        ..Restored::default()
    };
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &restored, 0);
    assert_eq!(states(&mut board, 0.0), [DOWN, UP]);
    assert!(!board.ready(), "b has neither a saved state nor a probe");
    probe(&mut board, 1, true, 0.5);
    board.decide(secs(0.5), 0);
    assert!(board.ready());
    // A restored down endpoint needs `rise` successes of its own machine.
    assert_eq!(probe(&mut board, 0, true, 0.5), LocalChange::Reason);
    assert_eq!(probe(&mut board, 0, true, 1.5), LocalChange::Verdict(UP));
}

/// The board's clock driven by tokio's paused time, as the plane drives it.
#[tokio::test(start_paused = true)]
async fn staleness_and_challenge_epochs_under_paused_time() {
    let start = tokio::time::Instant::now();
    let now = || start.elapsed();
    let mut board = Board::new(&config("", &["a"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    for sender in [&mut v2, &mut v3] {
        let report = sender.report(board.challenge(now()), &[("web/a", DOWN, 0)]);
        board.accept_report(report, now()).unwrap();
    }
    assert_eq!(board.decide(now(), 0).0.state(EndpointIndex(0)), DOWN);
    // A report held back (captured) now, replayed later.
    let held = v2.report(board.challenge(now()), &[("web/a", UP, 0)]);
    // Just inside staleness (5 s) the quorum still holds; just past it, isolation.
    tokio::time::advance(Duration::from_millis(4_999)).await;
    board.decide(now(), 0);
    assert!(!board.isolation().isolated);
    tokio::time::advance(Duration::from_millis(2)).await;
    let (health, _) = board.decide(now(), 0);
    assert!(board.isolation().isolated);
    assert_eq!(health.state(EndpointIndex(0)), DOWN, "held while isolated");
    // Two epochs (2 × staleness) later the held report's challenge has expired.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(
        board.accept_report(held, now()),
        Err(ReportError::Challenge)
    );
}

#[test]
fn a_board_with_nothing_to_probe_is_never_isolated() {
    let mut text = config("", &["a"]);
    text.pools[0].check = None;
    text.checks.clear();
    let mut board = Board::new(&text, BOOT, &Restored::default(), 0);
    board.decide(secs(1.0), 0);
    assert!(!board.isolation().isolated);
}

#[test]
fn the_decided_state_is_damped_too() {
    let mut board = Board::new(&config("", &["a"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    let mut vote = |board: &mut Board, state, at: f64| {
        for sender in [&mut v2, &mut v3] {
            send(board, sender, at, &[("web/a", state, 0)]).unwrap();
        }
        states(board, at)[0]
    };
    // Up first (a first verdict is no flap), then the quorum's verdict flaps:
    // down, up, down within a second.
    assert_eq!(vote(&mut board, UP, 0.0), UP);
    assert_eq!(vote(&mut board, DOWN, 0.1), DOWN);
    assert_eq!(vote(&mut board, UP, 0.3), UP, "one outage is not delayed");
    assert_eq!(vote(&mut board, DOWN, 0.6), DOWN);
    assert_eq!(vote(&mut board, UP, 0.9), DOWN, "the way back is withheld");
    let damping = board.damping(EndpointIndex(0), secs(0.9)).unwrap();
    let until = damping.suppressed_until.expect("suppressed");
    assert!(damping.penalty > 1500.0);
    // Outages while suppressed add to the penalty; once it decays, the votes win.
    assert_eq!(vote(&mut board, UP, until.as_secs_f64() - 0.1), DOWN);
    assert_eq!(vote(&mut board, UP, until.as_secs_f64() + 0.1), UP);
    // The state file keeps the penalty.
    let saved = board.decided_states(until + secs(0.1));
    assert!(saved["web/a"].penalty > 0.0);
}

#[test]
fn a_first_verdict_is_no_flap() {
    // An endpoint that is down when the server starts (assumed up until then) comes
    // back without a penalty: only changes of a decided state count.
    let mut board = Board::new(&config("", &["a"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    for sender in [&mut v2, &mut v3] {
        send(&mut board, sender, 0.0, &[("web/a", DOWN, 0)]).unwrap();
    }
    assert_eq!(states(&mut board, 0.0), [DOWN]);
    let penalty = board
        .damping(EndpointIndex(0), secs(0.0))
        .map_or(0.0, |d| d.penalty);
    assert_eq!(penalty, 0.0);
    // Nor does this process's own first fall.
    for t in [0.0, 1.0] {
        probe(&mut board, 0, false, t);
    }
    let probe_state = board
        .local_probe(EndpointIndex(0), secs(1.0))
        .map(|p| p.verdict);
    assert_eq!(probe_state, Some(DOWN));
    assert_eq!(
        board.known[0]
            .local
            .as_ref()
            .unwrap()
            .machine
            .damper()
            .penalty(secs(1.0), &DampingRules::default()),
        0.0
    );
}

#[test]
fn an_endpoint_coming_back_ramps_up_in_steps() {
    let text = config("", &["a"])
        .source
        .text
        .replace("hold = \"3s\"", "hold = \"0s\"\nslow_start = \"10s\"");
    let config = Config::load(ConfigSource::from_text(text, ".")).unwrap().0;
    let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    let mut vote = |board: &mut Board, state, at: f64| {
        for sender in [&mut v2, &mut v3] {
            send(board, sender, at, &[("web/a", state, 0)]).unwrap();
        }
        board.decide(secs(at), 0).0
    };
    let up = vote(&mut board, UP, 0.0);
    assert_eq!(
        up.share(EndpointIndex(0)),
        1000,
        "the first decision does not ramp"
    );
    vote(&mut board, DOWN, 1.0);
    let back = vote(&mut board, UP, 100.0);
    assert_eq!(back.share(EndpointIndex(0)), 100);
    assert_eq!(
        back.doubt(EndpointIndex(0)),
        Some(1),
        "the next step is a second away"
    );
    assert_eq!(vote(&mut board, UP, 105.5).share(EndpointIndex(0)), 600);
    assert_eq!(vote(&mut board, UP, 110.0).share(EndpointIndex(0)), 1000);
}

#[test]
fn a_decision_is_due_only_on_new_input_or_when_time_may_change_it() {
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    assert!(board.due(secs(0.0)));
    let up = [("web/a", UP, 0), ("web/b", UP, 0)];
    send(&mut board, &mut v2, 0.0, &up).unwrap();
    send(&mut board, &mut v3, 0.0, &up).unwrap();
    board.decide(secs(0.0), 0);
    assert!(!board.due(secs(0.1)), "nothing new");
    // The same verdicts again: no decision needed, but the expiry moves on.
    send(&mut board, &mut v2, 1.0, &up).unwrap();
    assert!(!board.due(secs(1.0)));
    // Time alone: v3's report goes stale after 5 s (staleness).
    assert!(board.due(secs(5.01)));
    board.decide(secs(5.01), 0);
    assert!(board.isolation().isolated);
    assert!(!board.due(secs(5.02)));
    // A changed verdict is due at once.
    send(
        &mut board,
        &mut v2,
        5.1,
        &[("web/a", DOWN, 0), ("web/b", UP, 0)],
    )
    .unwrap();
    assert!(board.due(secs(5.1)));
}

#[test]
fn deltas_build_on_the_report_accepted_last() {
    let mut board = Board::new(&config("", &["a", "b"]), BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    let full = [("web/a", UP, 0), ("web/b", UP, 0)];
    send(&mut board, &mut v2, 0.0, &full).unwrap();
    send(&mut board, &mut v3, 0.0, &full).unwrap();
    let delta = |board: &mut Board, sender: &mut Sender, base: u64, at: f64, verdicts| {
        let mut report = sender.report(board.challenge(secs(at)), verdicts);
        report.base = Some(base);
        board.accept_report(report, secs(at))
    };
    // A delta naming only b: a keeps its verdict, confirmed now.
    assert_eq!(
        delta(&mut board, &mut v2, 1, 4.0, &[("web/b", DOWN, 0)]),
        Ok(true)
    );
    assert_eq!(
        delta(&mut board, &mut v3, 1, 4.0, &[("web/b", DOWN, 0)]),
        Ok(true)
    );
    let (health, tally) = board.decide(secs(8.0), 0);
    assert_eq!(health.state(EndpointIndex(1)), DOWN);
    assert_eq!(
        tally.votes[0].up.count_ones(),
        2,
        "a is still fresh: confirmed by the deltas"
    );
    // A stalled verdict is named in every delta with its age: the delta does not
    // confirm it, so it goes stale by that age (5 s here) however often deltas come.
    assert_eq!(
        delta(&mut board, &mut v2, 2, 8.0, &[("web/a", UP, 4_000)]),
        Ok(false)
    );
    assert_eq!(
        delta(&mut board, &mut v2, 3, 8.9, &[("web/a", UP, 5_500)]),
        Ok(false)
    );
    let (_, tally) = board.decide(secs(8.9), 0);
    assert_eq!(
        tally.names(tally.votes[0].up).collect::<Vec<_>>(),
        ["v3"],
        "v2's stalled verdict on a no longer counts"
    );
    assert_eq!(
        tally.names(tally.votes[1].down).collect::<Vec<_>>(),
        ["v2", "v3"],
        "v2's verdict on b, left out of the delta, is confirmed by it"
    );
    // A delta on a report the board did not accept last: resync.
    assert_eq!(
        delta(&mut board, &mut v2, 1, 8.5, &[("web/b", UP, 0)]),
        Err(ReportError::Resync)
    );
    // A delta from a session it never saw (the board restarted): resync as well.
    let mut fresh_board = Board::new(&config("", &["a", "b"]), BOOT + 1, &Restored::default(), 0);
    assert_eq!(
        delta(&mut fresh_board, &mut v2, 5, 0.1, &[("web/b", UP, 0)]),
        Err(ReportError::Resync)
    );
}

/// Damping, fast confirm, slow start and the state-aware TTL, driven by tokio's paused
/// clock as the plane drives the board.
mod paused {
    use super::*;

    fn clock() -> impl Fn() -> Duration {
        let start = tokio::time::Instant::now();
        move || start.elapsed()
    }

    async fn advance(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    fn vote(
        board: &mut Board,
        senders: &mut [Sender; 2],
        state: HealthState,
        now: Duration,
    ) -> HealthSnapshot {
        for sender in senders.iter_mut() {
            let report = sender.report(board.challenge(now), &[("web/a", state, 0)]);
            board.accept_report(report, now).unwrap();
        }
        board.decide(now, 0).0
    }

    #[tokio::test(start_paused = true)]
    async fn damping_withholds_a_flapping_endpoint_until_its_penalty_decays() {
        let now = clock();
        let mut board = Board::new(&config("", &["a"]), BOOT, &Restored::default(), 0);
        let mut senders = [Sender::new("v2", 1), Sender::new("v3", 1)];
        vote(&mut board, &mut senders, UP, now()); // a first verdict is no flap
        advance(100).await;
        vote(&mut board, &mut senders, DOWN, now());
        advance(300).await;
        assert_eq!(
            vote(&mut board, &mut senders, UP, now()).state(EndpointIndex(0)),
            UP
        );
        advance(300).await;
        vote(&mut board, &mut senders, DOWN, now());
        advance(300).await;
        let held = vote(&mut board, &mut senders, UP, now());
        assert_eq!(held.state(EndpointIndex(0)), DOWN, "suppressed");
        let until = board
            .damping(EndpointIndex(0), now())
            .unwrap()
            .suppressed_until
            .unwrap();
        // The TTL of answers depending on it: the time until it may come back.
        let ttl = held.doubt(EndpointIndex(0)).unwrap();
        assert_eq!(ttl, (until - now()).as_secs_f64().ceil() as u32);
        // Reports keep saying up; once the penalty has decayed it is back.
        while now() < until {
            advance(1_000).await;
            let health = vote(&mut board, &mut senders, UP, now());
            let expected = if now() < until { DOWN } else { UP };
            assert_eq!(health.state(EndpointIndex(0)), expected, "at {:?}", now());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fast_confirm_paces_probes_while_a_verdict_is_in_doubt() {
        let now = clock();
        let text = config("", &["a"])
            .source
            .text
            .replace("fall = 2", "fall = 3");
        let config = Config::load(ConfigSource::from_text(text, ".")).unwrap().0;
        let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
        let probe_at = |board: &mut Board, ok: bool, at: Duration| {
            board.observe_local(LocalObservation {
                generation: board.generation(),
                endpoint: EndpointIndex(0),
                outcome: ProbeOutcome::vote(ok, Duration::ZERO, String::new()),
                at,
            });
            board.pace(EndpointIndex(0))
        };
        assert_eq!(probe_at(&mut board, true, now()), Pace::Normal);
        advance(1_000).await;
        assert_eq!(probe_at(&mut board, false, now()), Pace::Fast);
        // Two probes short of fall 3 at fast_interval (interval / 5 = 200 ms): the TTL
        // of answers depending on it is rounded up to 1 s.
        assert_eq!(board.decide(now(), 0).0.doubt(EndpointIndex(0)), Some(1));
        advance(200).await;
        assert_eq!(probe_at(&mut board, false, now()), Pace::Fast);
        advance(200).await;
        assert_eq!(probe_at(&mut board, false, now()), Pace::Down);
        assert_eq!(board.decide(now(), 0).0.doubt(EndpointIndex(0)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_steps_follow_the_clock() {
        let now = clock();
        let text = config("", &["a"])
            .source
            .text
            .replace("hold = \"3s\"", "hold = \"0s\"\nslow_start = \"5s\"");
        let config = Config::load(ConfigSource::from_text(text, ".")).unwrap().0;
        let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
        let mut senders = [Sender::new("v2", 1), Sender::new("v3", 1)];
        vote(&mut board, &mut senders, UP, now());
        advance(1_000).await;
        vote(&mut board, &mut senders, DOWN, now());
        advance(60_000).await;
        let mut shares = Vec::new();
        for _ in 0..11 {
            let health = vote(&mut board, &mut senders, UP, now());
            shares.push(health.share(EndpointIndex(0)));
            advance(500).await;
        }
        assert_eq!(
            shares,
            [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000]
        );
    }
}

/// A probe of `endpoint` at `at` that failed for a local fault (EMFILE).
fn abstain(board: &mut Board, endpoint: u32, at: f64) -> LocalChange {
    board.observe_local(LocalObservation {
        generation: board.generation(),
        endpoint: EndpointIndex(endpoint),
        outcome: ProbeOutcome::abstention(
            crate::health::LocalFault::FdExhausted,
            Duration::from_micros(20),
            "local fault: too many open files (EMFILE)".into(),
        ),
        at: secs(at),
    })
}

#[test]
fn an_abstention_leaves_the_machine_and_the_state_alone() {
    let config = config("", &["a", "b"]);
    let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 2), Sender::new("v3", 3));
    for t in [0.0, 1.0] {
        probe(&mut board, 0, true, t);
        probe(&mut board, 1, true, t);
    }
    let both_up = [("web/a", UP, 0), ("web/b", UP, 0)];
    send(&mut board, &mut v2, 1.0, &both_up).unwrap();
    send(&mut board, &mut v3, 1.0, &both_up).unwrap();
    assert_eq!(states(&mut board, 1.0), [UP, UP]);
    let machine = |board: &Board, i: usize| board.known[i].local.as_ref().unwrap().machine.clone();
    let before = (machine(&board, 0), machine(&board, 1));
    // Ten probes of each endpoint fail for want of a descriptor: no vote, no new
    // input to decide on, the machines and their pace untouched.
    for k in 0..10 {
        let t = 2.0 + f64::from(k) * 0.2;
        let first = if k == 0 {
            LocalChange::Abstained
        } else {
            LocalChange::Unchanged
        };
        assert_eq!(abstain(&mut board, 0, t), first, "probe {k}");
        assert_eq!(abstain(&mut board, 1, t), first, "probe {k}");
        assert_eq!(board.pace(EndpointIndex(0)), Pace::Normal);
    }
    assert!(!board.changed, "an abstention is no input to a decision");
    assert_eq!((machine(&board, 0), machine(&board, 1)), before);
    assert_eq!(states(&mut board, 3.9), [UP, UP]);
    let view = board.local_probe(EndpointIndex(0), secs(3.9)).unwrap();
    assert_eq!(view.verdict, UP);
    assert!(view.abstaining);
    assert_eq!(view.last.map(|o| o.ok), Some(true), "the last vote is kept");
    let (abstention, age) = view.abstained.unwrap();
    assert_eq!(
        abstention.reason,
        "local fault: too many open files (EMFILE)"
    );
    assert_eq!(age, secs(3.9) - secs(3.8));
    assert!(board.impaired(secs(3.9)));
    // The reports say why the verdict ages.
    let verdicts = board.local_verdicts(secs(3.9));
    assert_eq!(verdicts[0].0.state, UP);
    assert_eq!(verdicts[0].0.age_ms, 2900, "the age of the last vote");
    assert_eq!(
        verdicts[0].0.reason,
        "abstained: local fault: too many open files (EMFILE)"
    );
    // The same failures as votes take the endpoint down here (fall 2).
    let mut voting = Board::new(&config, BOOT, &Restored::default(), 0);
    for t in [0.0, 1.0] {
        probe(&mut voting, 0, true, t);
    }
    probe(&mut voting, 0, false, 2.0);
    assert_eq!(
        probe(&mut voting, 0, false, 2.2),
        LocalChange::Verdict(DOWN)
    );
    // A vote after the abstentions counts again, and ends them.
    assert_eq!(probe(&mut board, 0, true, 4.0), LocalChange::Reason);
    assert!(
        !board
            .local_probe(EndpointIndex(0), secs(4.0))
            .unwrap()
            .abstaining
    );
}

#[test]
fn an_abstaining_verdict_goes_stale_after_staleness() {
    // This server (v1) alone probes; staleness 5 s, so a verdict stays fresh 5 s.
    let config = config("", &["a"]);
    let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
    for t in [0.0, 1.0] {
        probe(&mut board, 0, true, t);
    }
    let fresh = |board: &mut Board, at: f64| board.decide(secs(at), 0).1.fresh.contains("v1");
    assert!(fresh(&mut board, 1.0));
    // From t = 2 every probe abstains; the verdict of t = 1 stays fresh until t = 6.
    for t in [2.0, 3.0, 4.0, 5.0] {
        abstain(&mut board, 0, t);
    }
    assert!(fresh(&mut board, 5.9), "fresh within staleness");
    assert!(
        board.due(secs(6.01)),
        "the verdict's expiry wakes a decision"
    );
    for t in [6.0, 7.0, 8.0] {
        abstain(&mut board, 0, t);
    }
    assert!(
        !fresh(&mut board, 8.0),
        "stale: counted like a missing voter"
    );
    assert!(board.isolation().missing.contains(&"v1".to_owned()));
    assert_eq!(states(&mut board, 8.0), [UP], "held, not failed out");
    assert_eq!(board.local_verdicts(secs(8.0))[0].0.age_ms, 7000);
    // Impaired until staleness after the last abstention (t = 8).
    assert!(board.impaired(secs(13.0)));
    assert!(!board.impaired(secs(13.1)));
    assert!(
        board
            .local_probe(EndpointIndex(0), secs(13.1))
            .unwrap()
            .abstained
            .is_none()
    );
    // A vote makes it fresh again, and calls for a decision at once.
    assert!(!board.due(secs(9.0)));
    probe(&mut board, 0, true, 9.0);
    assert!(board.due(secs(9.0)), "fresh again is new input");
    assert!(fresh(&mut board, 9.0));
}

#[test]
fn an_endpoint_abstained_on_from_the_start_shows_it() {
    let config = config("", &["a"]);
    let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
    assert!(board.local_probe(EndpointIndex(0), secs(0.0)).is_none());
    assert_eq!(abstain(&mut board, 0, 0.5), LocalChange::Abstained);
    let view = board.local_probe(EndpointIndex(0), secs(0.5)).unwrap();
    assert!(view.last.is_none() && view.abstaining);
    assert!(
        board.local_verdicts(secs(0.5)).is_empty(),
        "nothing to report"
    );
    assert_eq!(
        board.last_abstention().map(|(e, o)| (e, o.reason.as_str())),
        Some((
            EndpointIndex(0),
            "local fault: too many open files (EMFILE)"
        ))
    );
}

#[test]
fn history_counts_changes_and_downs_and_survives_a_restore() {
    let saved = History {
        changed_at_ms: 1_000,
        changes: 3,
        downs: 2,
        down_ms: 500,
    };
    let restored = Restored {
        states: [("web/a".to_owned(), DOWN), ("web/b".to_owned(), UP)].into(),
        // b was saved down: its peers say up now, so its last change is now.
        history: [
            ("web/a".to_owned(), (DOWN, saved)),
            ("web/b".to_owned(), (DOWN, saved)),
        ]
        .into(),
        ..Restored::default()
    };
    let config = config("down_votes = 1\nisolation = \"local\"", &["a", "b", "c"]);
    let mut board = Board::new(&config, BOOT, &restored, 5_000);
    board.decide(secs(0.0), 5_000);
    assert_eq!(
        board.history(EndpointIndex(0)),
        Some(saved),
        "same state: kept"
    );
    assert_eq!(
        board.history(EndpointIndex(1)),
        Some(History {
            changed_at_ms: 5_000,
            ..saved
        })
    );
    // c had no decision yet: its first, down, counts as a down (an outage), not a
    // change.
    probe(&mut board, 2, false, 0.5);
    probe(&mut board, 2, false, 1.5);
    board.decide(secs(1.5), 6_500);
    assert_eq!(
        board.history(EndpointIndex(2)),
        Some(History {
            changed_at_ms: 6_500,
            changes: 0,
            downs: 1,
            down_ms: 0
        })
    );
    // a comes back up: a change, and the time it was down since its last change.
    probe(&mut board, 0, true, 2.0);
    probe(&mut board, 0, true, 3.0);
    board.decide(secs(3.0), 9_000);
    assert_eq!(
        board.history(EndpointIndex(0)),
        Some(History {
            changed_at_ms: 9_000,
            changes: 4,
            downs: 2,
            down_ms: 500 + 8_000
        })
    );
    // What the state file keeps.
    let kept = board.decided_states(secs(3.0));
    assert_eq!(kept["web/a"].history.down_ms, 8_500);
    assert_eq!(kept["web/c"].history.downs, 1);
}

#[test]
fn degraded_is_decided_by_quorum_and_abstentions_are_never_slow() {
    let config = config_with_check("", r#"degraded_latency = "100ms""#, &["a", "b"]);
    let mut board = Board::new(&config, BOOT, &Restored::default(), 0);
    let (mut v2, mut v3) = (Sender::new("v2", 1), Sender::new("v3", 1));
    let timed = |board: &mut Board, endpoint: u32, ms: u64, at: f64| {
        board.observe_local(LocalObservation {
            generation: board.generation(),
            endpoint: EndpointIndex(endpoint),
            outcome: ProbeOutcome::vote(true, Duration::from_millis(ms), "ok".into()),
            at: secs(at),
        })
    };
    let send_degraded = |board: &mut Board, sender: &mut Sender, at: f64, a: bool| {
        let mut report = sender.report(
            board.challenge(secs(at)),
            &[("web/a", UP, 0), ("web/b", UP, 0)],
        );
        report.verdicts[0].degraded = a;
        board.accept_report(report, secs(at)).unwrap();
    };
    // v1 (this server) sees a slow (fall = 2), b fast; b's probes also abstain for
    // a local fault after 5 s — an abstention is never slow.
    assert_eq!(timed(&mut board, 0, 250, 0.0), LocalChange::Reason);
    assert_eq!(timed(&mut board, 0, 250, 1.0), LocalChange::Degraded(true));
    timed(&mut board, 1, 5, 0.0);
    timed(&mut board, 1, 5, 1.0);
    for t in [1.2, 1.4, 1.6] {
        board.observe_local(LocalObservation {
            generation: board.generation(),
            endpoint: EndpointIndex(1),
            outcome: ProbeOutcome::abstention(
                crate::health::LocalFault::FdExhausted,
                Duration::from_secs(5),
                "local fault: too many open files (EMFILE)".into(),
            ),
            at: secs(t),
        });
    }
    let local = board.local_probe(EndpointIndex(1), secs(1.6)).unwrap();
    assert!(!local.degraded.0, "abstentions are never slow");
    let local = board.local_probe(EndpointIndex(0), secs(1.6)).unwrap();
    assert_eq!(
        local.degraded,
        (true, Some("slow: 250 ms > 100 ms".to_owned()))
    );
    // v2 sees a fine: one degraded vote of three moves nothing.
    send_degraded(&mut board, &mut v2, 1.5, false);
    let (health, tally) = board.decide(secs(1.5), 0);
    assert_eq!(health.degraded(EndpointIndex(0)), None);
    assert_eq!(tally.describe_votes(0)["v1"], "degraded");
    // v3 sees it slow too: a quorum of degraded votes.
    send_degraded(&mut board, &mut v3, 1.6, true);
    let (health, _) = board.decide(secs(1.6), 0);
    assert_eq!(health.state(EndpointIndex(0)), UP, "degraded is up");
    assert_eq!(health.degraded(EndpointIndex(0)), Some(250));
    assert_eq!(health.degraded(EndpointIndex(1)), None);
    // This server's reports carry its degraded verdict.
    let verdicts = board.local_verdicts(secs(1.6));
    assert!(
        verdicts
            .iter()
            .any(|(v, _)| v.endpoint == "web/a" && v.degraded)
    );
    assert!(
        verdicts
            .iter()
            .any(|(v, _)| v.endpoint == "web/b" && !v.degraded)
    );
    // v3 sees it fine again: v2 and v3 are a quorum of fine votes.
    send_degraded(&mut board, &mut v3, 2.0, false);
    let (health, _) = board.decide(secs(2.0), 0);
    assert_eq!(health.degraded(EndpointIndex(0)), None);
    // A forced endpoint is never degraded.
    send_degraded(&mut board, &mut v3, 2.5, true);
    send_degraded(&mut board, &mut v2, 2.5, true);
    let (health, _) = board.decide(secs(2.5), 0);
    assert_eq!(health.degraded(EndpointIndex(0)), Some(250));
    board.set_forced(&[Some(UP), None]);
    let (health, _) = board.decide(secs(2.5), 0);
    assert_eq!(health.degraded(EndpointIndex(0)), None);
}
