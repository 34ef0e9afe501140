//! Adaptive flap damping (pure; time is an argument), after BGP route flap damping
//! (RFC 2439, RFC 7196): every outage adds a penalty that decays exponentially with a
//! half-life. When the penalty reaches `suppress` the endpoint is *suppressed*: it may
//! go down at any time, but it is not put back until the penalty has decayed below
//! `reuse`. The penalty is capped at the value that decays to `reuse` in exactly
//! `max_suppress`, so an endpoint that has stopped flapping is back within
//! `max_suppress` of its last outage.
//!
//! With the defaults (penalty 1000 per outage, half-life 5 s, suppress 1500, reuse
//! 750, max_suppress 30 s):
//! - one outage and recovery is never delayed (1000 < 1500);
//! - a second outage within one half-life of the first suppresses the endpoint (1000 ×
//!   2^(−t/5 s) + 1000 ≥ 1500 for t ≤ 5 s), so a backend flapping every few hundred
//!   milliseconds changes the answer about three times, then stays out;
//! - once it stops flapping it is back after the penalty decays to 750: one half-life
//!   after a second outage, and never more than 30 s after the last one.
//!
//! Taking a failing endpoint out is never delayed: damping only withholds the way back.

use std::time::Duration;

pub(crate) use crate::config::DampingRules;

/// The damping state of one endpoint (as one vantage point sees it, or as decided).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Damper {
    /// Penalty as of `at`.
    penalty: f64,
    /// When `penalty` was last set.
    at: Duration,
    /// Whether the way back is withheld.
    suppressed: bool,
}

impl Damper {
    /// A damper restored with a penalty as of `at` (state file, reload).
    pub(crate) fn restored(penalty: f64, at: Duration, suppressed: bool) -> Self {
        Self {
            penalty: penalty.max(0.0),
            at,
            suppressed,
        }
    }

    /// The penalty at `now`, decayed.
    pub(crate) fn penalty(&self, now: Duration, rules: &DampingRules) -> f64 {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        let half_life = rules.half_life.as_secs_f64().max(1e-3);
        self.penalty * (-elapsed / half_life).exp2()
    }

    /// Records an outage at `now`.
    pub(crate) fn on_down(&mut self, now: Duration, rules: &DampingRules) {
        self.penalty = (self.penalty(now, rules) + rules.penalty).min(rules.ceiling());
        self.at = now;
        if self.penalty >= rules.suppress {
            self.suppressed = true;
        }
    }

    /// Whether the endpoint may come back up at `now`; a suppression whose penalty
    /// has decayed below `reuse` ends here.
    pub(crate) fn allows_up(&mut self, now: Duration, rules: &DampingRules) -> bool {
        if self.suppressed && self.penalty(now, rules) < rules.reuse {
            self.suppressed = false;
        }
        !self.suppressed
    }

    /// Whether the way back is withheld (as of the last call).
    pub(crate) fn is_suppressed(&self) -> bool {
        self.suppressed
    }

    /// When a suppression ends if no outage comes first (None: not suppressed).
    pub(crate) fn suppressed_until(&self, rules: &DampingRules) -> Option<Duration> {
        if !self.suppressed {
            return None;
        }
        let half_lives = (self.penalty / rules.reuse).log2().max(0.0);
        Some(self.at + rules.half_life.mul_f64(half_lives))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: DampingRules = DampingRules::DEFAULT;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn one_outage_is_never_delayed() {
        let mut d = Damper::default();
        d.on_down(at(0), &R);
        assert!(d.allows_up(at(1), &R));
        // Another outage a long time later: still not suppressed.
        d.on_down(at(60_000), &R);
        assert!(d.allows_up(at(60_001), &R));
    }

    #[test]
    fn a_second_outage_within_a_half_life_suppresses_until_reuse() {
        let mut d = Damper::default();
        d.on_down(at(0), &R);
        assert!(d.allows_up(at(300), &R));
        d.on_down(at(600), &R);
        assert!(d.is_suppressed());
        assert!(!d.allows_up(at(601), &R));
        // Penalty ≈ 1958 at 600 ms; it reaches 750 after log2(1958/750) × 5 s ≈ 6.9 s.
        let until = d.suppressed_until(&R).unwrap();
        assert!(until > at(7_000) && until < at(7_700), "{until:?}");
        assert!(!d.allows_up(until - at(10), &R));
        assert!(d.allows_up(until + at(10), &R));
        assert!(!d.is_suppressed());
    }

    #[test]
    fn a_flapping_endpoint_is_back_within_max_suppress_of_its_last_outage() {
        let mut d = Damper::default();
        // Down every 600 ms for a minute: the penalty hits the ceiling.
        for i in 0..100 {
            d.on_down(at(i * 600), &R);
        }
        let last = at(99 * 600);
        assert!(d.penalty(last, &R) <= R.ceiling() + 1e-6);
        let until = d.suppressed_until(&R).unwrap();
        assert!(until <= last + R.max_suppress + at(1), "{until:?}");
        assert!(!d.allows_up(last + at(20_000), &R));
        assert!(d.allows_up(last + R.max_suppress + at(10), &R));
    }

    #[test]
    fn the_penalty_halves_every_half_life() {
        let mut d = Damper::default();
        d.on_down(at(0), &R);
        assert!((d.penalty(at(5_000), &R) - 500.0).abs() < 1e-6);
        assert!((d.penalty(at(10_000), &R) - 250.0).abs() < 1e-6);
    }
}
