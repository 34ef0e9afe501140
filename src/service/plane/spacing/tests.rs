//! The spacing of status rebuilds and saves, on paused time.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_cheap_job_runs_at_once_a_costly_one_waits_factor_times_its_cost() {
    let mut spacing = Spacing::new(20, Duration::from_secs(2));
    assert!(spacing.due(), "never run: due");
    // A cheap run (no time passes on a paused clock): due again at once.
    spacing.ran(Instant::now());
    assert!(spacing.due());
    // A run that took 50 ms: next due 20 × 50 ms = 1 s after it ended.
    let started = Instant::now();
    tokio::time::advance(Duration::from_millis(50)).await;
    spacing.ran(started);
    assert!(!spacing.due());
    tokio::time::advance(Duration::from_millis(999)).await;
    assert!(!spacing.due());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(spacing.due());
}

#[tokio::test(start_paused = true)]
async fn the_wait_is_at_least_a_tick_and_at_most_the_longest() {
    let mut spacing = Spacing::new(50, Duration::from_secs(5));
    // 2 ms × 50 = 100 ms, raised to one tick (250 ms).
    let started = Instant::now();
    tokio::time::advance(Duration::from_millis(2)).await;
    spacing.ran(started);
    tokio::time::advance(TICK - Duration::from_millis(1)).await;
    assert!(!spacing.due());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(spacing.due());
    // 1 s × 50 = 50 s, capped at 5 s.
    let started = Instant::now();
    tokio::time::advance(Duration::from_secs(1)).await;
    spacing.ran(started);
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(!spacing.due());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(spacing.due());
}
