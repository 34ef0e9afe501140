//! When a signed snapshot is re-signed: a pure schedule (time and randomness come in
//! as arguments), driven by a timer in the plane.
//!
//! Signatures made at `t` are valid from `t - inception_offset` to
//! `t + signature_validity`. They are re-made `refresh` after `t` (validation keeps
//! `refresh ≤ validity / 2`), less a random jitter of up to a tenth of `refresh` so
//! the servers of a cluster do not all re-sign at once — or sooner, when a key is
//! published, activated, retired or deleted.

use std::time::Duration;

/// Unix second at which to re-sign signatures made at `signed_at`. `random` is any
/// random number (its value modulo the jitter span is used); `key_event` is the
/// next key state change, if any.
pub(crate) fn next_resign(
    signed_at: u64,
    refresh: Duration,
    random: u64,
    key_event: Option<u64>,
) -> u64 {
    let refresh = refresh.as_secs().max(1);
    let span = (refresh / 10).max(1);
    let due = signed_at + refresh - random % span;
    match key_event {
        Some(event) if event > signed_at => due.min(event),
        _ => due,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn re_signing_is_due_before_refresh_with_jitter_and_never_after_expiry() {
        let refresh = Duration::from_secs(7 * DAY);
        let validity = 14 * DAY;
        for random in [0, 1, 12_345, u64::MAX] {
            let at = next_resign(1_000_000, refresh, random, None);
            assert!(at <= 1_000_000 + 7 * DAY);
            assert!(at > 1_000_000 + 6 * DAY, "jitter is at most a tenth");
            assert!(at < 1_000_000 + validity);
        }
        // Jitter differs between draws.
        assert_ne!(
            next_resign(0, refresh, 1, None),
            next_resign(0, refresh, 2, None)
        );
    }

    #[test]
    fn a_key_event_brings_re_signing_forward() {
        let refresh = Duration::from_secs(7 * DAY);
        assert_eq!(next_resign(100, refresh, 0, Some(100 + DAY)), 100 + DAY);
        assert_eq!(next_resign(100, refresh, 0, Some(50)), 100 + 7 * DAY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_running_server_never_serves_past_expiry_under_paused_time() {
        // Simulate a year of re-signing with the timer the plane uses.
        let refresh = Duration::from_secs(7 * DAY);
        let validity = 14 * DAY;
        let start = tokio::time::Instant::now();
        let mut signed_at = 0u64;
        let mut seed = 7u64;
        while signed_at < 365 * DAY {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let due = next_resign(signed_at, refresh, seed, None);
            tokio::time::sleep_until(start + Duration::from_secs(due)).await;
            let now = (tokio::time::Instant::now() - start).as_secs();
            assert!(now < signed_at + validity, "served an expired signature");
            signed_at = now;
        }
    }
}
