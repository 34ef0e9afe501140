//! The per-endpoint anti-flap state machine of one vantage point (pure; time is an
//! argument): `fall` consecutive failures take an endpoint down, `rise` consecutive
//! successes bring it back, but never before it has been down for `hold`, and never
//! while flap damping suppresses it ([`crate::health::damping`]).

use std::time::Duration;

use crate::config::Check;
use crate::health::damping::{Damper, DampingRules};
use crate::model::HealthState;

/// Thresholds of a check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Thresholds {
    /// Consecutive successes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Minimum time down before going up.
    pub hold: Duration,
    /// Flap damping (None: off).
    pub damping: Option<DampingRules>,
}

impl From<&Check> for Thresholds {
    fn from(check: &Check) -> Self {
        Self {
            rise: check.rise,
            fall: check.fall,
            hold: check.hold,
            damping: check.damping,
        }
    }
}

/// How soon a vantage point probes an endpoint again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
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
pub(crate) struct Machine {
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
}

impl Machine {
    /// A machine starting in `state` (restored or assumed), with no hold pending.
    pub(crate) fn new(state: HealthState) -> Self {
        Self {
            state,
            raw: state,
            successes: 0,
            failures: 0,
            down_since: None,
            damper: Damper::default(),
            settled: false,
        }
    }

    /// The flap damping state.
    #[cfg(test)]
    pub(crate) fn damper(&self) -> &Damper {
        &self.damper
    }

    /// How soon to probe again: fast while the verdict is in doubt.
    pub(crate) fn pace(&self, thresholds: &Thresholds) -> Pace {
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
    pub(crate) fn withheld_until(&self, thresholds: &Thresholds) -> Option<Duration> {
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
    pub(crate) fn probes_to_change(&self, thresholds: &Thresholds) -> Option<u32> {
        match self.pace(thresholds) {
            Pace::Fast if self.state == HealthState::Up => Some(thresholds.fall - self.failures),
            Pace::Fast => Some(thresholds.rise - self.successes),
            _ => None,
        }
    }

    /// The current verdict.
    pub(crate) fn state(&self) -> HealthState {
        self.state
    }

    /// The verdict this vantage point votes: none while its first probes contradict
    /// the state it started from (assumed or restored) short of `rise` / `fall`.
    pub(crate) fn verdict(&self) -> Option<HealthState> {
        self.settled.then_some(self.state)
    }

    /// Feeds one probe result at time `now` (any monotonic clock); returns the new
    /// state if it changed.
    pub(crate) fn observe(
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
}
