//! The per-endpoint anti-flap state machine of one vantage point (pure; time is an
//! argument): `fall` consecutive failures take an endpoint down, `rise` consecutive
//! successes bring it back, but never before it has been down for `hold`, and never
//! while flap damping suppresses it ([`crate::health::damping`]).
//!
//! Beside it, the same rules decide whether an endpoint that is up is *degraded*
//! ([`crate::health::degraded`]): `fall` degraded judgements in a row enter it (each
//! entry is an outage for a damper of its own), `rise` fine ones in a row leave it,
//! not before `hold` after entering and not while that damper suppresses the way back.

use std::time::Duration;

use crate::config::Check;
use crate::health::damping::{Damper, DampingRules};
use crate::health::degraded::{self, DegradedRules, Judgement, Window};
use crate::model::HealthState;

/// Thresholds of a check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Consecutive successes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Minimum time down before going up.
    pub hold: Duration,
    /// Flap damping (None: off).
    pub damping: Option<DampingRules>,
    /// When an endpoint that is up is degraded (None: never).
    pub degraded: Option<DegradedRules>,
}

impl From<&Check> for Thresholds {
    fn from(check: &Check) -> Self {
        Self {
            rise: check.rise,
            fall: check.fall,
            hold: check.hold,
            damping: check.damping,
            degraded: check.degraded,
        }
    }
}

/// How soon a vantage point probes an endpoint again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Every `interval`.
    Normal,
    /// Every `fast_interval`: a verdict is in doubt (failures short of `fall`, or
    /// successes of a down endpoint short of `rise`).
    Fast,
    /// Every `down_interval`: down, with no success yet.
    Down,
}

/// One endpoint's verdict as seen from one vantage point.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    state: HealthState,
    /// The verdict by rise/fall alone (before hold and damping).
    raw: HealthState,
    successes: u32,
    failures: u32,
    /// When the endpoint went down (None: long enough ago, e.g. restored at start).
    down_since: Option<Duration>,
    /// Flap damping of this vantage point's verdict.
    damper: Damper,
    /// Whether probes have backed the state yet: a probe agreeing with the assumed
    /// or restored start, or `rise` / `fall` reached. Until then a probe that
    /// disagrees makes the machine abstain, and its first change is no flap.
    settled: bool,
    /// Whether the endpoint is degraded (see the module docs).
    degraded: Degraded,
}

/// The degraded verdict of one vantage point and what it follows.
#[derive(Clone, Debug, Default, PartialEq)]
struct Degraded {
    /// The last probes that voted.
    window: Window,
    /// The verdict after hold and damping.
    state: bool,
    /// The verdict by rise/fall alone.
    raw: bool,
    /// Judgements in a row that disagree with `raw`.
    against: u32,
    /// When it entered degraded.
    since: Option<Duration>,
    /// Flap damping of the degraded verdict (an entry counts as an outage).
    damper: Damper,
    /// The last probe's judgement.
    last: Option<Judgement>,
}

impl Machine {
    /// A machine starting in `state` (restored or assumed), with no hold pending.
    pub fn new(state: HealthState) -> Self {
        Self {
            state,
            raw: state,
            successes: 0,
            failures: 0,
            down_since: None,
            damper: Damper::default(),
            settled: false,
            degraded: Degraded::default(),
        }
    }

    /// Whether this vantage point judges the endpoint degraded (only while it is up).
    pub fn degraded(&self) -> bool {
        self.degraded.state && self.state == HealthState::Up
    }

    /// Why the last probe judged the endpoint degraded (None: it did not).
    pub fn degraded_reason(&self) -> Option<String> {
        self.degraded
            .last
            .filter(Judgement::degraded)
            .map(|j| j.reason())
    }

    /// Judges one probe that voted (`ok` in `latency`) at `now` for the degraded
    /// verdict (see the module docs); returns the new verdict if it changed. Without
    /// degraded rules it does nothing.
    pub fn observe_degraded(
        &mut self,
        ok: bool,
        latency: Duration,
        now: Duration,
        thresholds: &Thresholds,
    ) -> Option<bool> {
        let rules = thresholds.degraded.as_ref()?;
        let before = self.degraded();
        let d = &mut self.degraded;
        if self.state == HealthState::Down {
            // Down is no degree of degraded: the judgement starts afresh once it is
            // back up (its damping penalty stays).
            *d = Degraded {
                damper: d.damper,
                ..Degraded::default()
            };
            return before.then_some(false);
        }
        d.window.push(ok, rules.window);
        let judgement = degraded::judge(ok, latency, &d.window, rules);
        d.last = Some(judgement);
        if judgement.degraded() == d.raw {
            d.against = 0;
        } else {
            d.against = d.against.saturating_add(1);
        }
        if !d.raw && d.against >= thresholds.fall {
            d.raw = true;
            d.against = 0;
            if let Some(rules) = &thresholds.damping {
                d.damper.on_down(now, rules);
            }
        } else if d.raw && d.against >= thresholds.rise {
            d.raw = false;
            d.against = 0;
        }
        if d.raw && !d.state {
            d.state = true;
            d.since = Some(now);
        } else if !d.raw && d.state {
            let held = d
                .since
                .is_none_or(|since| now.saturating_sub(since) >= thresholds.hold);
            let undamped = thresholds
                .damping
                .as_ref()
                .is_none_or(|rules| d.damper.allows_up(now, rules));
            if held && undamped {
                d.state = false;
                d.since = None;
            }
        }
        let after = self.degraded();
        (after != before).then_some(after)
    }

    /// The flap damping state.
    pub fn damper(&self) -> &Damper {
        &self.damper
    }

    /// How soon to probe again: fast while the verdict is in doubt.
    pub fn pace(&self, thresholds: &Thresholds) -> Pace {
        match (self.state, self.raw) {
            (HealthState::Up, _) if self.failures > 0 && self.failures < thresholds.fall => {
                Pace::Fast
            }
            (HealthState::Up, _) => Pace::Normal,
            (HealthState::Down, HealthState::Down)
                if self.successes > 0 && self.successes < thresholds.rise =>
            {
                Pace::Fast
            }
            (HealthState::Down, _) => Pace::Down,
        }
    }

    /// When a held or damped way back up could happen at the earliest (the verdict
    /// by rise alone is up, but hold or damping withholds it).
    pub fn withheld_until(&self, thresholds: &Thresholds) -> Option<Duration> {
        if self.state != HealthState::Down || self.raw != HealthState::Up {
            return None;
        }
        let hold = self.down_since.map(|since| since + thresholds.hold);
        let damping = thresholds
            .damping
            .as_ref()
            .and_then(|rules| self.damper.suppressed_until(rules));
        hold.into_iter().chain(damping).max()
    }

    /// Probes still needed before the verdict can change (None: it cannot change by
    /// probes alone right now, e.g. a steady verdict).
    pub fn probes_to_change(&self, thresholds: &Thresholds) -> Option<u32> {
        match self.pace(thresholds) {
            Pace::Fast if self.state == HealthState::Up => Some(thresholds.fall - self.failures),
            Pace::Fast => Some(thresholds.rise - self.successes),
            _ => None,
        }
    }

    /// The current verdict.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// The verdict this vantage point votes: none while its first probes contradict
    /// the state it started from (assumed or restored) short of `rise` / `fall`.
    pub fn verdict(&self) -> Option<HealthState> {
        self.settled.then_some(self.state)
    }

    /// Feeds one probe result at time `now` (any monotonic clock); returns the new
    /// state if it changed.
    pub fn observe(
        &mut self,
        ok: bool,
        now: Duration,
        thresholds: &Thresholds,
    ) -> Option<HealthState> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
        }
        let was_settled = self.settled;
        self.settled |= ok == self.state.is_up();
        // What rise/fall alone say; damping counts its flaps even while it withholds
        // the way back, so a backend that keeps flapping stays out.
        match self.raw {
            HealthState::Up if self.failures >= thresholds.fall => {
                self.raw = HealthState::Down;
                if let (Some(rules), true) = (&thresholds.damping, was_settled) {
                    self.damper.on_down(now, rules);
                }
                self.settled = true;
            }
            HealthState::Down if self.successes >= thresholds.rise => {
                self.raw = HealthState::Up;
                self.settled = true;
            }
            _ => {}
        }
        match (self.state, self.raw) {
            (HealthState::Up, HealthState::Down) => {
                self.state = HealthState::Down;
                self.down_since = Some(now);
                Some(HealthState::Down)
            }
            (HealthState::Down, HealthState::Up) => {
                let held = self
                    .down_since
                    .is_none_or(|since| now.saturating_sub(since) >= thresholds.hold);
                let undamped = thresholds
                    .damping
                    .as_ref()
                    .is_none_or(|rules| self.damper.allows_up(now, rules));
                if held && undamped {
                    self.state = HealthState::Up;
                    self.down_since = None;
                    Some(HealthState::Up)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        rise: 2,
        fall: 3,
        hold: Duration::from_secs(10),
        damping: None,
        degraded: None,
    };

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn falls_after_consecutive_failures_only() {
        let mut m = Machine::new(HealthState::Up);
        assert_eq!(m.observe(false, at(0), &T), None);
        assert_eq!(m.observe(false, at(1), &T), None);
        assert_eq!(
            m.observe(true, at(2), &T),
            None,
            "a success resets the count"
        );
        assert_eq!(m.observe(false, at(3), &T), None);
        assert_eq!(m.observe(false, at(4), &T), None);
        assert_eq!(m.observe(false, at(5), &T), Some(HealthState::Down));
    }

    #[test]
    fn rises_after_consecutive_successes_and_the_hold_time() {
        let mut m = Machine::new(HealthState::Up);
        for t in 0..3 {
            m.observe(false, at(t), &T);
        }
        assert_eq!(m.state(), HealthState::Down);
        assert_eq!(m.observe(true, at(1_000), &T), None);
        assert_eq!(
            m.observe(true, at(2_000), &T),
            None,
            "rise met but hold not over"
        );
        assert_eq!(m.observe(true, at(9_000), &T), None);
        assert_eq!(m.observe(true, at(10_002), &T), Some(HealthState::Up));
        // A failure between successes restarts the rise count.
        let mut m = Machine::new(HealthState::Down);
        assert_eq!(m.observe(true, at(0), &T), None);
        assert_eq!(m.observe(false, at(1), &T), None);
        assert_eq!(m.observe(true, at(2), &T), None);
        assert_eq!(
            m.observe(true, at(3), &T),
            Some(HealthState::Up),
            "restored down state has no hold"
        );
    }

    #[test]
    fn probes_come_fast_while_a_verdict_is_in_doubt() {
        let mut m = Machine::new(HealthState::Up);
        assert_eq!(m.pace(&T), Pace::Normal);
        m.observe(false, at(0), &T);
        assert_eq!(m.pace(&T), Pace::Fast);
        assert_eq!(m.probes_to_change(&T), Some(2));
        m.observe(false, at(1), &T);
        m.observe(false, at(2), &T);
        assert_eq!(m.state(), HealthState::Down);
        assert_eq!(m.pace(&T), Pace::Down);
        m.observe(true, at(3), &T);
        assert_eq!(m.pace(&T), Pace::Fast, "on the way up");
        assert_eq!(m.probes_to_change(&T), Some(1));
        m.observe(true, at(4), &T);
        assert_eq!(
            m.pace(&T),
            Pace::Down,
            "rise met, waiting for the hold time"
        );
        m.observe(true, at(10_005), &T);
        assert_eq!(m.state(), HealthState::Up);
        assert_eq!(m.pace(&T), Pace::Normal);
    }

    #[test]
    fn a_flapping_endpoint_stays_out_while_damped() {
        let t = Thresholds {
            rise: 1,
            fall: 1,
            hold: Duration::ZERO,
            damping: Some(DampingRules::DEFAULT),
            degraded: None,
        };
        let mut m = Machine::new(HealthState::Up);
        let mut changes = 0;
        // Up 300 ms, down 300 ms, probed every 100 ms, for 20 s.
        for step in 0..200u64 {
            let ok = (step / 3) % 2 == 0;
            changes += usize::from(m.observe(ok, at(step * 100), &t).is_some());
        }
        assert!(changes <= 4, "{changes} changes");
        assert_eq!(m.state(), HealthState::Down);
        // Stable again: back within max_suppress (30 s) of the last outage.
        let mut back = None;
        for step in 200..600u64 {
            if m.observe(true, at(step * 100), &t) == Some(HealthState::Up) {
                back = Some(step * 100);
                break;
            }
        }
        let back = back.expect("back up");
        assert!(back <= 19_800 + 30_000, "back at {back} ms");
    }

    fn degraded_rules(latency_ms: u64, ratio: Option<f64>) -> Thresholds {
        Thresholds {
            degraded: Some(DegradedRules {
                latency: Some(Duration::from_millis(latency_ms)),
                success_ratio: ratio,
                window: 4,
                weight: 0.25,
            }),
            ..T
        }
    }

    #[test]
    fn slow_probes_enter_degraded_after_fall_and_leave_after_rise_and_hold() {
        let t = degraded_rules(100, None); // rise 2, fall 3, hold 10 s
        let mut m = Machine::new(HealthState::Up);
        let slow = Duration::from_millis(250);
        let fast = Duration::from_millis(20);
        assert_eq!(m.observe_degraded(true, slow, at(0), &t), None);
        assert_eq!(m.observe_degraded(true, slow, at(1), &t), None);
        assert_eq!(
            m.observe_degraded(true, fast, at(2), &t),
            None,
            "a fine probe resets the count"
        );
        assert_eq!(m.observe_degraded(true, slow, at(3), &t), None);
        assert_eq!(m.observe_degraded(true, slow, at(4), &t), None);
        assert_eq!(m.observe_degraded(true, slow, at(5), &t), Some(true));
        assert!(m.degraded());
        assert_eq!(
            m.degraded_reason().as_deref(),
            Some("slow: 250 ms > 100 ms")
        );
        assert_eq!(m.state(), HealthState::Up, "degraded is not down");
        // Fast again: rise (2) met at once, but not before hold (10 s).
        assert_eq!(m.observe_degraded(true, fast, at(1_000), &t), None);
        assert_eq!(m.observe_degraded(true, fast, at(2_000), &t), None);
        assert_eq!(m.observe_degraded(true, fast, at(10_004), &t), None);
        assert_eq!(m.observe_degraded(true, fast, at(10_005), &t), Some(false));
        assert_eq!(m.degraded_reason(), None);
    }

    #[test]
    fn a_flaky_endpoint_is_degraded_not_down_and_down_is_no_degree_of_degraded() {
        let t = Thresholds {
            fall: 2,
            hold: Duration::ZERO,
            ..degraded_rules(1_000, Some(0.8))
        };
        let mut m = Machine::new(HealthState::Up);
        let mut entered = None;
        // Every third probe fails: never `fall` failures in a row, 2/3 < 0.8 passing.
        for step in 0..12u64 {
            let ok = step % 3 != 2;
            m.observe(ok, at(step), &t);
            if m.observe_degraded(ok, Duration::from_millis(5), at(step), &t) == Some(true) {
                entered.get_or_insert(step);
            }
            assert_eq!(m.state(), HealthState::Up, "step {step}");
        }
        assert!(entered.is_some() && m.degraded(), "{m:?}");
        assert!(m.degraded_reason().unwrap().starts_with("success "));
        // Down: not degraded, and the judgement starts afresh.
        m.observe(false, at(20), &t);
        m.observe(false, at(21), &t);
        assert_eq!(m.state(), HealthState::Down);
        assert!(!m.degraded());
        assert_eq!(
            m.observe_degraded(false, Duration::from_millis(5), at(21), &t),
            None
        );
        m.observe(true, at(30), &t);
        m.observe(true, at(31), &t);
        assert_eq!(m.state(), HealthState::Up);
        assert_eq!(
            m.observe_degraded(true, Duration::from_millis(5), at(31), &t),
            None
        );
        assert!(!m.degraded(), "a fresh window after an outage");
    }

    #[test]
    fn a_flapping_degraded_verdict_is_damped() {
        let t = Thresholds {
            rise: 1,
            fall: 1,
            hold: Duration::ZERO,
            damping: Some(DampingRules::DEFAULT),
            ..degraded_rules(100, None)
        };
        let mut m = Machine::new(HealthState::Up);
        let mut changes = 0;
        // Slow 300 ms, fast 300 ms, probed every 100 ms, for 20 s.
        for step in 0..200u64 {
            let latency = Duration::from_millis(if (step / 3) % 2 == 0 { 250 } else { 10 });
            changes += usize::from(
                m.observe_degraded(true, latency, at(step * 100), &t)
                    .is_some(),
            );
        }
        assert!(changes <= 4, "{changes} changes");
        assert!(m.degraded());
    }
}
