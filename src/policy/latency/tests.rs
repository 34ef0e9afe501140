//! Unit tests of latency steering's pure parts: the EWMA, the median-of-region RTT
//! and the hysteresis (time passed in as it would pass).

use std::time::Duration;

use super::*;
use crate::config::{Config, ConfigSource};
use crate::model::HealthState;

const MS: u32 = 1000;

fn settings() -> LatencySteering {
    LatencySteering {
        min_gain: Duration::from_millis(10),
        min_gain_percent: 10.0,
        hold: Duration::from_secs(30),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn opts(rtts: &[(u32, bool, Option<u32>)]) -> Vec<PoolRtt> {
    rtts.iter()
        .map(|&(p, up, rtt)| PoolRtt {
            pool: PoolIndex(p),
            up,
            rtt_us: rtt.map(|ms| ms * MS),
        })
        .collect()
}

#[test]
fn ewma_follows_a_step_by_its_time_constant() {
    let window = secs(10);
    let mut e = Ewma::first(10_000.0, secs(0));
    // One time constant after a step to 110 ms it has come 63 % of the way.
    for t in 1..=10 {
        e.update(110_000.0, secs(t), window);
    }
    let expected = 10_000.0 + 100_000.0 * (1.0 - (-1.0f64).exp());
    assert!((e.value_us - expected).abs() < 1.0, "{}", e.value_us);
    // Sample spacing does not matter, only elapsed time: one sample 10 s later
    // lands at the same point.
    let mut once = Ewma::first(10_000.0, secs(0));
    once.update(110_000.0, secs(10), window);
    assert!((once.value_us - expected).abs() < 1.0);
    // A zero window follows every sample.
    let mut raw = Ewma::first(10_000.0, secs(0));
    raw.update(42_000.0, secs(1), Duration::ZERO);
    assert_eq!(raw.value_us, 42_000.0);
}

#[test]
fn reports_repeat_an_rtt_only_when_it_moved_more_than_five_percent() {
    assert!(!moved(Some(100_000), Some(104_000)));
    assert!(moved(Some(100_000), Some(106_000)));
    assert!(moved(Some(100_000), Some(94_000)));
    assert!(moved(None, Some(1)));
    assert!(moved(Some(1), None));
    assert!(!moved(None, None));
}

fn three_regions() -> Config {
    let text = r#"
        version = 1
        [regions.eu]
        networks = ["10.1.0.0/16"]
        [regions.us]
        networks = ["10.2.0.0/16"]
        [regions.ap]
        networks = ["10.3.0.0/16"]
        [geo]
        default_region = "eu"
        [vantages.eu-1]
        region = "eu"
        [vantages.eu-2]
        region = "eu"
        [vantages.eu-3]
        region = "eu"
        [vantages.us-1]
        region = "us"
        [pools.web-eu]
        endpoints = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }]
        [pools.web-us]
        endpoints = [{ address = "198.51.100.1" }]
        [[records]]
        name = "www.example.com."
        type = "A"
        policy = "latency"
        pools = ["web-eu", "web-us"]
        hold = "30s"
    "#;
    Config::load(ConfigSource::from_text(text, ".")).unwrap().0
}

#[test]
fn a_region_weighs_the_median_of_its_vantage_points_and_borrows_the_default_regions() {
    let config = three_regions();
    let health = HealthSnapshot::from_config(&config);
    let v = |name: &str| config.vantage_by_name(name).unwrap();
    let e = |label: &str| config.endpoint_by_label(label).unwrap();
    let mut rtts = RttTable::default();
    let now = secs(1);
    // web-eu from eu-1: endpoints 10 and 30 ms → 10 (lower middle); eu-2: 12;
    // eu-3: 200 (an outlier vantage point). Median of 10, 12, 200 → 12.
    rtts.set(v("eu-1"), e("web-eu/192.0.2.1"), Some(10 * MS), now);
    rtts.set(v("eu-1"), e("web-eu/192.0.2.2"), Some(30 * MS), now);
    rtts.set(v("eu-2"), e("web-eu/192.0.2.1"), Some(12 * MS), now);
    rtts.set(v("eu-3"), e("web-eu/192.0.2.2"), Some(200 * MS), now);
    rtts.set(v("eu-1"), e("web-us/198.51.100.1"), Some(90 * MS), now);
    rtts.set(v("us-1"), e("web-us/198.51.100.1"), Some(8 * MS), now);
    rtts.set(v("us-1"), e("web-eu/192.0.2.1"), Some(95 * MS), now);
    let eu = Some(RegionIndex(0));
    let us = Some(RegionIndex(1));
    let ap = Some(RegionIndex(2));
    let web_eu = PoolIndex(0);
    let web_us = PoolIndex(1);
    let rtt = |region, pool| {
        region_pool_rtt(
            &config,
            &health,
            &rtts,
            &vantages_for(&config, region),
            pool,
        )
    };
    assert_eq!(rtt(eu, web_eu), Some(12 * MS));
    assert_eq!(rtt(eu, web_us), Some(90 * MS));
    assert_eq!(rtt(us, web_us), Some(8 * MS));
    // ap has no vantage point: eu's (the default region) stand for it, as for
    // clients of no region.
    assert_eq!(vantages_for(&config, ap), vantages_for(&config, eu));
    assert_eq!(vantages_for(&config, None), vantages_for(&config, eu));
    assert_eq!(rtt(ap, web_eu), Some(12 * MS));
    // A down endpoint's RTT no longer counts: eu-1 then sees web-eu at 30 ms, eu-3
    // nothing; median of 30 and 12 → 12 (lower middle).
    let down = health.with(
        e("web-eu/192.0.2.1"),
        crate::health::EndpointHealth {
            state: HealthState::Down,
            source: crate::health::HealthSource::Observed,
        },
    );
    let vantages = vantages_for(&config, eu);
    assert_eq!(
        region_pool_rtt(&config, &down, &rtts, &vantages, web_eu),
        Some(30 * MS)
    );
    // The memory answers each region by its own vantage points.
    let mut memory = LatencyMemory::default();
    assert!(memory.observe(&config, &health, &rtts, now));
    let choices = memory.choices(&config);
    assert_eq!(choices[0][0], Some(web_eu), "eu");
    assert_eq!(choices[0][1], Some(web_us), "us");
    assert_eq!(choices[0][2], Some(web_eu), "ap borrows eu's view");
    assert_eq!(choices[0][3], Some(web_eu), "no region");
    assert_eq!(
        ordered(&[web_eu, web_us], Some(web_us)),
        vec![web_us, web_eu]
    );
}

#[test]
fn the_first_choice_is_the_fastest_and_failover_order_breaks_ties_and_gaps() {
    let s = settings();
    let first = step(
        Slot::default(),
        &opts(&[(0, true, Some(50)), (1, true, Some(20))]),
        &s,
        secs(0),
    );
    assert_eq!(first.current, Some(PoolIndex(1)));
    assert_eq!(first.moved_at, None, "placing a region is not a move");
    let tie = step(
        Slot::default(),
        &opts(&[(0, true, Some(20)), (1, true, Some(20))]),
        &s,
        secs(0),
    );
    assert_eq!(tie.current, Some(PoolIndex(0)));
    let none = step(
        Slot::default(),
        &opts(&[(0, true, None), (1, true, None)]),
        &s,
        secs(0),
    );
    assert_eq!(none.current, Some(PoolIndex(0)));
    let down_first = step(
        Slot::default(),
        &opts(&[(0, false, Some(1)), (1, true, None)]),
        &s,
        secs(0),
    );
    assert_eq!(down_first.current, Some(PoolIndex(1)));
}

#[test]
fn a_better_pool_takes_over_only_past_both_margins_and_after_hold() {
    let s = settings();
    let mut slot = step(
        Slot::default(),
        &opts(&[(0, true, Some(50)), (1, true, Some(60))]),
        &s,
        secs(0),
    );
    assert_eq!(slot.current, Some(PoolIndex(0)));
    // 8 ms better: under min_gain (10 ms) although 16 %.
    slot = step(
        slot,
        &opts(&[(0, true, Some(50)), (1, true, Some(42))]),
        &s,
        secs(1),
    );
    assert_eq!((slot.current, slot.candidate), (Some(PoolIndex(0)), None));
    // From 500 ms, 40 ms better is 8 %: under min_gain_percent.
    slot = step(
        slot,
        &opts(&[(0, true, Some(500)), (1, true, Some(460))]),
        &s,
        secs(2),
    );
    assert_eq!((slot.current, slot.candidate), (Some(PoolIndex(0)), None));
    // 50 → 30 ms: both margins. It must stay better for the hold (30 s).
    let better = opts(&[(0, true, Some(50)), (1, true, Some(30))]);
    slot = step(slot, &better, &s, secs(10));
    assert_eq!(slot.candidate, Some((PoolIndex(1), secs(10))));
    assert_eq!(due(&slot, &s), Some(secs(40)));
    slot = step(slot, &better, &s, secs(39));
    assert_eq!(slot.current, Some(PoolIndex(0)));
    // A dip below the margins restarts the hold.
    slot = step(
        slot,
        &opts(&[(0, true, Some(50)), (1, true, Some(45))]),
        &s,
        secs(39),
    );
    assert_eq!(slot.candidate, None);
    slot = step(slot, &better, &s, secs(40));
    slot = step(slot, &better, &s, secs(69));
    assert_eq!(slot.current, Some(PoolIndex(0)));
    slot = step(slot, &better, &s, secs(70));
    assert_eq!(slot.current, Some(PoolIndex(1)));
    assert_eq!(slot.moved_at, Some(secs(70)));
}

#[test]
fn a_region_moves_at_most_once_per_hold_but_at_once_when_its_pool_goes_down() {
    let s = LatencySteering {
        hold: secs(10),
        ..settings()
    };
    let a_fast = opts(&[(0, true, Some(20)), (1, true, Some(80))]);
    let b_fast = opts(&[(0, true, Some(80)), (1, true, Some(20))]);
    let mut slot = step(Slot::default(), &a_fast, &s, secs(0));
    // Flip the better path every 5 s for 10 minutes (simulated; every second is a
    // step): with a 10 s hold the better pool never stays better long enough.
    let mut moves = 0;
    let mut t = 1;
    while t <= 600 {
        let input = if (t / 5) % 2 == 0 { &a_fast } else { &b_fast };
        let next = step(slot, input, &s, secs(t));
        moves += usize::from(next.current != slot.current);
        slot = next;
        t += 1;
    }
    assert_eq!(moves, 0);
    // Flip every 15 s: each flip outlives the hold, yet moves are at least a hold
    // apart: at most 600 / 10.
    let mut moved_at: Vec<u64> = Vec::new();
    for t in 601..=1200 {
        let input = if (t / 15) % 2 == 0 { &a_fast } else { &b_fast };
        let next = step(slot, input, &s, secs(t));
        if next.current != slot.current {
            moved_at.push(t);
        }
        slot = next;
    }
    assert!(!moved_at.is_empty() && moved_at.len() <= 60, "{moved_at:?}");
    assert!(
        moved_at.windows(2).all(|w| w[1] - w[0] >= 10),
        "{moved_at:?}"
    );
    // The pool answering goes down: the region moves now, hold or not.
    let current = slot.current.unwrap();
    let down: Vec<PoolRtt> = opts(&[(0, true, Some(50)), (1, true, Some(50))])
        .into_iter()
        .map(|mut o| {
            o.up = o.pool != current;
            o
        })
        .collect();
    let after = step(slot, &down, &s, secs(1201));
    assert_ne!(after.current, Some(current));
    assert_eq!(after.moved_at, Some(secs(1201)));
}

#[tokio::test(start_paused = true)]
async fn with_paused_time_a_move_comes_exactly_one_hold_after_the_gain() {
    // The plane passes `started.elapsed()` on tokio's clock; paused time makes the
    // hold exact.
    let s = settings();
    let started = tokio::time::Instant::now();
    let now = || started.elapsed();
    let mut slot = step(
        Slot::default(),
        &opts(&[(0, true, Some(30)), (1, true, Some(90))]),
        &s,
        now(),
    );
    tokio::time::advance(secs(5)).await;
    let better = opts(&[(0, true, Some(90)), (1, true, Some(30))]);
    slot = step(slot, &better, &s, now());
    let gained = now();
    loop {
        tokio::time::advance(Duration::from_millis(250)).await;
        slot = step(slot, &better, &s, now());
        if slot.current == Some(PoolIndex(1)) {
            break;
        }
    }
    assert_eq!(now() - gained, s.hold);
}
