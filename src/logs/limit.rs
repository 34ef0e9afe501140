//! A token bucket per log site: [`TokenBucket`] is the pure core (time is passed
//! in); [`LogLimiter`] shares one between threads and reads the clock.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a site may log at once.
pub(crate) const BURST: u32 = 5;

/// After a burst, one more line per this period.
pub(crate) const REFILL: Duration = Duration::from_secs(10);

/// What was left out since the last line logged; shown after that line's message
/// (nothing when nothing was).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Suppressed {
    /// Lines left out.
    pub count: u64,
    /// From the first of them until this line.
    pub over: Duration,
}

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return Ok(());
        }
        // Whole seconds, rounded up: "in the last 0 s" would read as nothing.
        let seconds = self.over.as_secs() + u64::from(self.over.subsec_nanos() > 0);
        write!(
            f,
            " ({} more suppressed in the last {} s)",
            self.count,
            seconds.max(1)
        )
    }
}

/// A token bucket of `burst` tokens, one earned back every `refill`; every line
/// logged takes one, and a line without a token is counted instead.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    burst: u32,
    refill: Duration,
    tokens: u32,
    /// When the tokens were last counted (whole refills since then are still due).
    counted_at: Option<Instant>,
    suppressed: u64,
    first_suppressed: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) const fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst,
            refill,
            tokens: burst,
            counted_at: None,
            suppressed: 0,
            first_suppressed: None,
        }
    }

    /// Whether a line may be logged at `now`: `Some` with what was left out since
    /// the last one, or `None` (the line is counted as suppressed).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<Suppressed> {
        self.earn(now);
        if self.tokens == 0 {
            self.suppressed += 1;
            self.first_suppressed.get_or_insert(now);
            return None;
        }
        self.tokens -= 1;
        let over = self
            .first_suppressed
            .take()
            .map_or(Duration::ZERO, |first| now.saturating_duration_since(first));
        Some(Suppressed {
            count: std::mem::take(&mut self.suppressed),
            over,
        })
    }

    /// Adds the tokens earned since they were last counted.
    fn earn(&mut self, now: Instant) {
        let Some(counted_at) = self.counted_at else {
            self.counted_at = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(counted_at);
        let refill = self.refill.as_nanos().max(1);
        let earned = elapsed.as_nanos() / refill;
        if earned == 0 {
            return;
        }
        let room = u128::from(self.burst - self.tokens);
        if earned >= room {
            self.tokens = self.burst;
            self.counted_at = Some(now);
        } else {
            self.tokens += earned as u32;
            // Keep the part of a refill already under way.
            self.counted_at = Some(counted_at + self.refill * earned as u32);
        }
    }
}

/// A [`TokenBucket`] of [`BURST`] and [`REFILL`] shared between threads; one per log
/// site (a `static`, see [`crate::log_limited!`]). Taken only where a refusal is
/// logged, never on the DNS answer path.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    bucket: Mutex<TokenBucket>,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimiter {
    /// A limiter of [`BURST`] lines and one per [`REFILL`].
    pub(crate) const fn new() -> Self {
        Self {
            bucket: Mutex::new(TokenBucket::new(BURST, REFILL)),
        }
    }

    /// [`TokenBucket::admit`] now (tokio's clock, so paused time applies in tests).
    pub(crate) fn admit(&self) -> Option<Suppressed> {
        self.admit_at(tokio::time::Instant::now().into_std())
    }

    /// [`TokenBucket::admit`] at `now`.
    pub(crate) fn admit_at(&self, now: Instant) -> Option<Suppressed> {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, seconds: f64) -> Instant {
        start + Duration::from_secs_f64(seconds)
    }

    #[test]
    fn a_burst_then_one_line_per_refill_then_the_count_of_the_rest() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, Duration::from_secs(10));
        // 100 refusals in the first second: five lines, 95 counted.
        let logged: Vec<Suppressed> = (0..100)
            .filter_map(|i| bucket.admit(at(start, f64::from(i) / 100.0)))
            .collect();
        assert_eq!(logged, vec![Suppressed::default(); 5]);
        // Nothing until a token is earned back at 10 s.
        assert_eq!(bucket.admit(at(start, 9.9)), None);
        let next = bucket.admit(at(start, 10.0)).expect("a token at 10 s");
        assert_eq!(next.count, 96);
        assert_eq!(next.over, Duration::from_millis(9950)); // first left out at 0.05 s
        assert_eq!(next.to_string(), " (96 more suppressed in the last 10 s)");
        // One per 10 s while it goes on.
        assert_eq!(bucket.admit(at(start, 15.0)), None);
        let after = bucket.admit(at(start, 20.0)).expect("a token at 20 s");
        assert_eq!(after.count, 1);
        assert_eq!(after.to_string(), " (1 more suppressed in the last 5 s)");
    }

    #[test]
    fn a_quiet_site_earns_its_burst_back_but_no_more() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, Duration::from_secs(10));
        for i in 0..5 {
            assert!(bucket.admit(at(start, f64::from(i))).is_some());
        }
        assert!(bucket.admit(at(start, 5.0)).is_none());
        // An hour later: a full burst again, not 360 lines.
        let later = 3605.0;
        let first = bucket.admit(at(start, later)).expect("logged");
        assert_eq!(first.count, 1);
        for i in 1..5 {
            let line = bucket.admit(at(start, later + f64::from(i) / 10.0));
            assert_eq!(line, Some(Suppressed::default()));
        }
        assert!(bucket.admit(at(start, later + 1.0)).is_none());
    }

    #[test]
    fn part_of_a_refill_under_way_is_kept() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1, Duration::from_secs(10));
        assert!(bucket.admit(at(start, 0.0)).is_some());
        assert!(bucket.admit(at(start, 7.0)).is_none());
        assert!(bucket.admit(at(start, 10.0)).is_some()); // not 17 s
        assert!(bucket.admit(at(start, 19.0)).is_none());
        assert!(bucket.admit(at(start, 20.0)).is_some());
    }

    #[test]
    fn nothing_suppressed_shows_nothing() {
        assert_eq!(Suppressed::default().to_string(), "");
        let short = Suppressed {
            count: 3,
            over: Duration::from_millis(200),
        };
        assert_eq!(short.to_string(), " (3 more suppressed in the last 1 s)");
    }

    #[tokio::test(start_paused = true)]
    async fn the_shared_limiter_follows_tokios_clock() {
        let limiter = LogLimiter::new();
        let logged = (0..20).filter(|_| limiter.admit().is_some()).count();
        assert_eq!(logged, BURST as usize);
        tokio::time::advance(REFILL - Duration::from_millis(1)).await;
        assert_eq!(limiter.admit(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        let line = limiter.admit().expect("a token after one refill");
        assert_eq!(line.count, 16);
        assert_eq!(line.over, REFILL);
    }
}
