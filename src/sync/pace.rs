//! Request pacing: a token bucket for the API request rate and exponential backoff
//! with jitter for throttled requests. The arithmetic is pure (time and randomness
//! are arguments); [`crate::sync::route53`] applies it with tokio's clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::RandomSource;

/// A token bucket: `burst` requests at once, refilled at `rate` per second.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. `rate` > 0, `burst` ≥ 1.
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: if rate > 0.0 { rate } else { 1.0 },
            burst,
            tokens: burst,
            updated: now,
        }
    }

    /// Takes one token at `now`, returning how long the caller must wait before
    /// sending (zero when a token was available). Waiting callers queue: each one
    /// reserves the next token.
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// How throttled or transiently failing requests are retried.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RetryPolicy {
    /// Attempts in total (≥ 1).
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Longest a network or server failure is retried, in all.
    pub transient_budget: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 200 ms doubling to 20 s: about a minute of sustained throttling
    /// before a request gives up.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            transient_budget: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0 for the first retry): exponential, capped,
    /// with "equal jitter" (half fixed, half random), so concurrent clients spread out
    /// but never retry immediately.
    pub(crate) fn delay(&self, retry: u32, rng: &mut dyn RandomSource) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let half = exponential / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.below(nanos.max(1)))
    }
}

/// How GetChange is polled until a change is INSYNC.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PollPolicy {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for PollPolicy {
    /// 1 s doubling to 10 s (Route 53 usually reaches INSYNC within 60 s).
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

impl PollPolicy {
    /// Delay before poll number `poll` (0-based).
    pub(crate) fn delay(&self, poll: u32) -> Duration {
        self.initial
            .saturating_mul(1u32.checked_shl(poll.min(20)).unwrap_or(u32::MAX))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SplitMix64;

    #[test]
    fn bucket_allows_burst_then_paces_at_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 10, start);
        for _ in 0..10 {
            assert_eq!(bucket.take(start), Duration::ZERO);
        }
        // The 11th waits one refill interval (200 ms), the 12th two.
        let wait = bucket.take(start);
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-9, "{wait:?}");
        let wait = bucket.take(start);
        assert!((wait.as_secs_f64() - 0.4).abs() < 1e-9, "{wait:?}");
        // After 10 s the bucket is full again (capped at the burst).
        let later = start + Duration::from_secs(10);
        for _ in 0..10 {
            assert_eq!(bucket.take(later), Duration::ZERO);
        }
        assert!(bucket.take(later) > Duration::ZERO);
    }

    #[test]
    fn sustained_rate_matches_configuration() {
        // 100 requests as fast as allowed take (100 - burst) / rate seconds.
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 10, start);
        let mut now = start;
        for _ in 0..100 {
            now += bucket.take(now);
        }
        let elapsed = (now - start).as_secs_f64();
        assert!((elapsed - 18.0).abs() < 1e-6, "{elapsed}");
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let mut rng = SplitMix64::new(1);
        let mut seen = std::collections::BTreeSet::new();
        for retry in 0..10 {
            let full = (Duration::from_millis(100) * 2u32.pow(retry)).min(Duration::from_secs(2));
            for _ in 0..50 {
                let d = policy.delay(retry, &mut rng);
                assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
                seen.insert(d);
            }
        }
        assert!(seen.len() > 100, "jitter should vary delays");
        assert_eq!(
            PollPolicy::default().delay(10),
            Duration::from_secs(10),
            "poll delay caps"
        );
    }
}
