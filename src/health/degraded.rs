//! Degraded endpoints (pure): is this probe slow, is the window's success ratio low.
//!
//! An endpoint that is up may be *degraded*: still answered, with its weight (and,
//! in spill-over records, its capacity) scaled by the check's `degraded_weight`. Each
//! vantage point judges every probe that **voted** (an abstention — a fault of the
//! prober's own — never reaches this module, so it is never slow and never failed):
//!
//! - **slow**: the probe passed, slower than `degraded_latency`;
//! - **low success ratio**: of the last `degraded_window` probes that voted, fewer
//!   than `degraded_success_ratio` passed (judged once the window is full, so one
//!   early failure is no ratio of 0).
//!
//! A probe judges the endpoint degraded when either holds. The vantage point's
//! degraded verdict follows these judgements the way its up/down verdict follows
//! probes: `fall` in a row to enter, `rise` in a row to leave, not before `hold` after
//! entering, and flap damping on entering ([`crate::health::machine`]); quorum then
//! decides degraded like down ([`crate::health::quorum`]).

use std::time::Duration;

pub use crate::config::DegradedRules;

/// The last probes that voted, newest in bit 0 (at most 64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Bit set: that probe failed.
    failed: u64,
    /// Probes held (at most the window's size).
    len: u32,
}

impl Window {
    /// Adds a probe's result, keeping the newest `size` (1..=64).
    pub fn push(&mut self, ok: bool, size: u32) {
        let size = size.clamp(1, 64);
        self.failed = (self.failed << 1) | u64::from(!ok);
        if size < 64 {
            self.failed &= (1u64 << size) - 1;
        }
        self.len = (self.len + 1).min(size);
    }

    /// Probes held.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether no probe is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Probes held that passed.
    pub fn passed(&self) -> u32 {
        self.len - self.failed.count_ones()
    }
}

/// Why a probe judges an endpoint degraded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Judgement {
    /// Not degraded.
    Fine,
    /// The probe passed slower than `degraded_latency`.
    Slow {
        /// The probe's latency.
        latency: Duration,
        /// `degraded_latency`.
        limit: Duration,
    },
    /// Too few probes of the window passed.
    LowSuccess {
        /// Probes that passed.
        passed: u32,
        /// Probes in the window.
        of: u32,
        /// `degraded_success_ratio`.
        ratio: f64,
    },
}

impl Judgement {
    /// Whether the endpoint is judged degraded.
    pub fn degraded(&self) -> bool {
        !matches!(self, Self::Fine)
    }

    /// Status text ("slow: 240 ms > 100 ms", "success 6/10 < 0.8"); empty when fine.
    pub fn reason(&self) -> String {
        match self {
            Self::Fine => String::new(),
            Self::Slow { latency, limit } => format!(
                "slow: {} ms > {} ms",
                latency.as_millis(),
                limit.as_millis()
            ),
            Self::LowSuccess { passed, of, ratio } => {
                format!("success {passed}/{of} < {ratio}")
            }
        }
    }
}

/// Whether a probe that passed (`ok`) in `latency` is slow under `rules`.
pub fn is_slow(ok: bool, latency: Duration, rules: &DegradedRules) -> bool {
    ok && rules.latency.is_some_and(|limit| latency > limit)
}

/// Whether the success ratio of `window` (full) is below `rules`' ratio.
pub fn low_success(window: &Window, rules: &DegradedRules) -> bool {
    rules.success_ratio.is_some_and(|ratio| {
        window.len() >= rules.window.clamp(1, 64)
            && f64::from(window.passed()) < ratio * f64::from(window.len())
    })
}

/// Judges one probe (`ok`, `latency`) with `window` already holding it.
pub fn judge(ok: bool, latency: Duration, window: &Window, rules: &DegradedRules) -> Judgement {
    if is_slow(ok, latency, rules) {
        return Judgement::Slow {
            latency,
            limit: rules.latency.unwrap_or_default(),
        };
    }
    if low_success(window, rules) {
        return Judgement::LowSuccess {
            passed: window.passed(),
            of: window.len(),
            ratio: rules.success_ratio.unwrap_or_default(),
        };
    }
    Judgement::Fine
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn rules(latency: Option<u64>, ratio: Option<f64>, window: u32) -> DegradedRules {
        DegradedRules {
            latency: latency.map(Duration::from_millis),
            success_ratio: ratio,
            window,
            weight: 0.25,
        }
    }

    #[test]
    fn a_probe_is_slow_only_when_it_passed_past_the_limit() {
        // (ok, latency ms, limit ms) → slow
        let table: &[(bool, u64, Option<u64>, bool)] = &[
            (true, 99, Some(100), false),
            (true, 100, Some(100), false),
            (true, 101, Some(100), true),
            (true, 5_000, Some(100), true),
            (false, 5_000, Some(100), false), // a failure is no slow probe
            (true, 5_000, None, false),       // latency off
        ];
        for &(ok, latency, limit, slow) in table {
            let r = rules(limit, None, 10);
            assert_eq!(
                is_slow(ok, MS(latency), &r),
                slow,
                "ok {ok}, {latency} ms, limit {limit:?}"
            );
        }
    }

    #[test]
    fn the_success_ratio_is_judged_over_a_full_window() {
        // (results oldest first, window, ratio) → low
        let table: &[(&str, u32, f64, bool)] = &[
            ("x", 4, 0.8, false),          // not full
            ("xxx", 4, 0.8, false),        // not full
            ("xxxx", 4, 0.8, true),        // 0/4
            ("oooo", 4, 0.8, false),       // 4/4
            ("oxoo", 4, 0.8, true),        // 3/4 = 0.75 < 0.8
            ("oxoo", 4, 0.75, false),      // 0.75 is not below 0.75
            ("xxxxoooo", 4, 0.8, false),   // only the newest 4 count
            ("ooooxooo", 4, 0.8, true),    // 3/4
            ("oxooxooxoo", 10, 0.8, true), // 7/10
            ("ooooooooox", 10, 0.9, false),
            ("oooooooooxx", 10, 0.9, true),
        ];
        for &(results, size, ratio, low) in table {
            let mut window = Window::default();
            for c in results.chars() {
                window.push(c == 'o', size);
            }
            assert_eq!(
                low_success(&window, &rules(None, Some(ratio), size)),
                low,
                "{results} over {size} at {ratio}: {window:?}"
            );
        }
    }

    #[test]
    fn a_window_of_64_keeps_every_bit() {
        let mut window = Window::default();
        for i in 0..100 {
            window.push(i % 4 != 0, 64);
        }
        assert_eq!((window.len(), window.passed()), (64, 48));
    }

    #[test]
    fn judgements_say_why() {
        let r = rules(Some(100), Some(0.8), 4);
        let mut window = Window::default();
        window.push(true, 4);
        assert_eq!(judge(true, MS(50), &window, &r), Judgement::Fine);
        let slow = judge(true, MS(240), &window, &r);
        assert!(slow.degraded());
        assert_eq!(slow.reason(), "slow: 240 ms > 100 ms");
        for ok in [false, true, true] {
            window.push(ok, 4);
        }
        let low = judge(true, MS(50), &window, &r);
        assert_eq!(
            low,
            Judgement::LowSuccess {
                passed: 3,
                of: 4,
                ratio: 0.8
            }
        );
        assert_eq!(low.reason(), "success 3/4 < 0.8");
        assert_eq!(Judgement::Fine.reason(), "");
    }
}
