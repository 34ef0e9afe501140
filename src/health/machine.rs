//! The per-endpoint anti-flap state machine of one vantage point (pure; time is an
//! argument): `fall` consecutive failures take an endpoint down, `rise` consecutive
//! successes bring it back, but never before it has been down for `hold`.

use std::time::Duration;

use crate::config::Check;
use crate::model::HealthState;

/// Thresholds of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive successes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Minimum time down before going up.
    pub hold: Duration,
}

impl From<&Check> for Thresholds {
    fn from(check: &Check) -> Self {
        Self {
            rise: check.rise,
            fall: check.fall,
            hold: check.hold,
        }
    }
}

/// One endpoint's verdict as seen from one vantage point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    state: HealthState,
    successes: u32,
    failures: u32,
    /// When the endpoint went down (None: long enough ago, e.g. restored at start).
    down_since: Option<Duration>,
}

impl Machine {
    /// A machine starting in `state` (restored or assumed), with no hold pending.
    pub fn new(state: HealthState) -> Self {
        Self {
            state,
            successes: 0,
            failures: 0,
            down_since: None,
        }
    }

    /// The current verdict.
    pub fn state(&self) -> HealthState {
        self.state
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
        match self.state {
            HealthState::Up if self.failures >= thresholds.fall => {
                self.state = HealthState::Down;
                self.down_since = Some(now);
                Some(HealthState::Down)
            }
            HealthState::Down if self.successes >= thresholds.rise => {
                let held = self
                    .down_since
                    .is_none_or(|since| now.saturating_sub(since) >= thresholds.hold);
                if held {
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
}
