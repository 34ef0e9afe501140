//! Table-driven and property tests of the policy engine.

use proptest::prelude::*;

use super::*;
use crate::config::ConfigSource;
use crate::model::{HealthState, RecordIndex, SplitMix64};

/// Builds a config with pools `p0..pN` (one endpoint list of weights each) and one
/// record using them in order.
fn config(pools: &[(Vec<u32>, u32)], selection: &str, all_down: &str, max: u16) -> Config {
    let mut text = String::from("version = 1\n");
    let mut address = 0u32;
    for (i, (weights, min_healthy)) in pools.iter().enumerate() {
        text.push_str(&format!(
            "[pools.p{i}]\nmin_healthy = {min_healthy}\nendpoints = [\n"
        ));
        for w in weights {
            address += 1;
            text.push_str(&format!(
                "  {{ address = \"10.0.{}.{}\", weight = {w} }},\n",
                address / 256,
                address % 256
            ));
        }
        text.push_str("]\n");
    }
    let names: Vec<String> = (0..pools.len()).map(|i| format!("\"p{i}\"")).collect();
    text.push_str(&format!(
        "[pools.fallback]\nendpoints = [{{ address = \"192.0.2.1\" }}]\n\
         [[records]]\nname = \"www.example.\"\ntype = \"A\"\npolicy = \"{selection}\"\n\
         pools = [{}]\nmax_answers = {max}\nall_down = \"{all_down}\"\n",
        names.join(", ")
    ));
    if all_down == "fallback" {
        text.push_str("fallback_pool = \"fallback\"\n");
    }
    match Config::load(ConfigSource::from_text(text.clone(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn run(config: &Config, health: &HealthSnapshot, seed: u64) -> Answer {
    let record = &config.records[RecordIndex(0).0 as usize];
    answer(config, record, None, health, &mut SplitMix64::new(seed))
}

fn states(config: &Config, down: &[usize]) -> HealthSnapshot {
    HealthSnapshot::from_states((0..config.endpoints.len()).map(|i| {
        if down.contains(&i) {
            HealthState::Down
        } else {
            HealthState::Up
        }
    }))
}

#[test]
fn failover_takes_first_pool_with_enough_healthy_endpoints() {
    let config = config(&[(vec![1, 1], 2), (vec![1], 1)], "failover", "fail-open", 8);
    let a = run(&config, &states(&config, &[]), 1);
    assert_eq!(
        a.outcome,
        Outcome::Healthy {
            pool: Some(PoolIndex(0))
        }
    );
    assert_eq!(a.endpoints.len(), 2);
    // One of two down: p0 has 1 < min_healthy 2 → p1.
    let a = run(&config, &states(&config, &[0]), 1);
    assert_eq!(
        a.outcome,
        Outcome::Healthy {
            pool: Some(PoolIndex(1))
        }
    );
    assert_eq!(a.endpoints, vec![EndpointIndex(2)]);
    // p1 down too: degraded, only the healthy endpoint of p0.
    let a = run(&config, &states(&config, &[0, 2]), 1);
    assert_eq!(a.outcome, Outcome::Degraded);
    assert_eq!(a.endpoints, vec![EndpointIndex(1)]);
}

#[test]
fn all_down_modes() {
    let all = [0, 1, 2];
    let open = config(&[(vec![1, 1], 1), (vec![1], 1)], "failover", "fail-open", 8);
    let a = run(&open, &states(&open, &all), 1);
    assert_eq!(a.outcome, Outcome::FailOpen);
    assert_eq!(a.endpoints.len(), 2, "fail-open answers the primary pool");
    assert_eq!(a.ttl, open.records[0].all_down_ttl);
    let fallback = config(&[(vec![1, 1], 1), (vec![1], 1)], "failover", "fallback", 8);
    let a = run(&fallback, &states(&fallback, &[0, 1, 2, 3]), 1);
    assert!(matches!(a.outcome, Outcome::Fallback { .. }));
    assert_eq!(a.endpoints, vec![EndpointIndex(3)]);
    let nodata = config(&[(vec![1, 1], 1)], "weighted", "nodata", 1);
    let a = run(&nodata, &states(&nodata, &[0, 1]), 1);
    assert_eq!(a.outcome, Outcome::NoData);
    assert!(a.endpoints.is_empty());
}

#[test]
fn the_ttl_is_clamped_to_the_earliest_possible_change() {
    let c = config(&[(vec![1, 1], 1), (vec![1], 1)], "failover", "fail-open", 8);
    let ttl = c.records[0].ttl.0;
    assert!(ttl > 3, "the default TTL leaves room to shorten");
    // Endpoint 2 (second pool) may change in 3 s: the failover answer depends on it.
    let doubt = |d: Vec<Option<u32>>| states(&c, &[]).with_doubt(d);
    assert_eq!(run(&c, &doubt(vec![None, None, Some(3)]), 1).ttl, Ttl(3));
    // Shorter than min_ttl (1 by default) is clamped up; longer than ttl down.
    assert_eq!(run(&c, &doubt(vec![Some(0), None, None]), 1).ttl, Ttl(1));
    assert_eq!(
        run(&c, &doubt(vec![Some(ttl + 100), None, None]), 1).ttl,
        Ttl(ttl)
    );
    // The fallback pool is not considered; all-down keeps its own TTL.
    assert_eq!(
        run(&c, &doubt(vec![None, None, None, Some(2)]), 1).ttl,
        Ttl(ttl)
    );
    let all_down = states(&c, &[0, 1, 2]).with_doubt(vec![Some(2); 4]);
    assert_eq!(run(&c, &all_down, 1).ttl, c.records[0].all_down_ttl);
}

#[test]
fn slow_start_scales_weights_shares_multivalue_and_hands_a_failover_pool_over() {
    let ramp = |c: &Config, share: u16, on: &[usize]| {
        states(c, &[]).with_ramp(
            (0..c.endpoints.len())
                .map(|i| on.contains(&i).then_some(share))
                .collect(),
        )
    };
    let count = |c: &Config, health: &HealthSnapshot, endpoint: u32| {
        (0..2000u64)
            .filter(|&seed| {
                run(c, health, seed)
                    .endpoints
                    .contains(&EndpointIndex(endpoint))
            })
            .count()
    };
    // Weighted: endpoint 0 at 20 % of its weight 10 → weight 2 against 10 (in
    // thousandths: 2000 against 10000).
    let weighted = config(&[(vec![10, 10], 1)], "weighted", "fail-open", 1);
    let health = ramp(&weighted, 200, &[0]);
    let decision = decide(&weighted, &weighted.records[0], &[PoolIndex(0)], &health);
    assert_eq!(decision.candidates[0].weight, 2000);
    assert_eq!(decision.candidates[1].weight, 10_000);
    let share = count(&weighted, &health, 0) as f64 / 2000.0;
    assert!((share - 2.0 / 12.0).abs() < 0.04, "{share}");
    // Multivalue: endpoint 1 is in about 30 % of the answers, endpoint 0 in all.
    let multi = config(&[(vec![1, 1], 1)], "multivalue", "fail-open", 8);
    let health = ramp(&multi, 300, &[1]);
    assert_eq!(count(&multi, &health, 0), 2000);
    let share = count(&multi, &health, 1) as f64 / 2000.0;
    assert!((share - 0.3).abs() < 0.04, "{share}");
    // Failover: the primary pool (endpoints 0 and 1) comes back at 40 %; the
    // secondary (endpoint 2) keeps the rest of the answers.
    let failover = config(&[(vec![1, 1], 1), (vec![1], 1)], "failover", "fail-open", 8);
    let health = ramp(&failover, 400, &[0, 1]);
    let decision = decide(
        &failover,
        &failover.records[0],
        &[PoolIndex(0), PoolIndex(1)],
        &health,
    );
    let handover = decision.handover.as_ref().expect("a handover");
    assert_eq!((handover.pool, handover.share), (PoolIndex(1), 400));
    let share = count(&failover, &health, 2) as f64 / 2000.0;
    assert!((share - 0.6).abs() < 0.04, "{share}");
    // One endpoint of the primary at full share: no handover.
    let health = ramp(&failover, 400, &[1]);
    let decision = decide(
        &failover,
        &failover.records[0],
        &[PoolIndex(0), PoolIndex(1)],
        &health,
    );
    assert!(decision.handover.is_none());
}

#[test]
fn drained_endpoints_are_skipped_unless_nothing_else_remains() {
    let config = config(&[(vec![0, 5], 1)], "weighted", "fail-open", 1);
    for seed in 0..50 {
        assert_eq!(
            run(&config, &states(&config, &[]), seed).endpoints,
            vec![EndpointIndex(1)]
        );
    }
    // The undrained one is down: the drained but healthy one is served (degraded).
    let a = run(&config, &states(&config, &[1]), 3);
    assert_eq!(
        (a.outcome, a.endpoints),
        (Outcome::Degraded, vec![EndpointIndex(0)])
    );
}

#[test]
fn weights_are_respected() {
    let config = config(&[(vec![1, 2, 7], 1)], "weighted", "fail-open", 1);
    let health = states(&config, &[]);
    let record = &config.records[0];
    let decision = decide(&config, record, pools_for(record, None), &health);
    let mut rng = SplitMix64::new(42);
    let mut counts = [0u32; 3];
    let mut out = Vec::new();
    let n = 100_000;
    for _ in 0..n {
        decision.sample(&mut rng, &mut out);
        counts[out[0].0 as usize] += 1;
    }
    for (i, w) in [1.0, 2.0, 7.0].iter().enumerate() {
        let share = f64::from(counts[i]) / f64::from(n);
        assert!((share - w / 10.0).abs() < 0.01, "{counts:?}");
    }
}

#[test]
fn multivalue_answers_all_healthy_up_to_max() {
    let config = config(
        &[(vec![1, 1, 1], 1), (vec![1, 1], 1)],
        "multivalue",
        "fail-open",
        4,
    );
    let a = run(&config, &states(&config, &[1]), 9);
    assert_eq!(a.endpoints.len(), 4);
    assert!(!a.endpoints.contains(&EndpointIndex(1)));
}

#[test]
fn geo_picks_the_region_pool_list() {
    let text = r#"
        version = 1
        [regions.eu]
        networks = ["10.0.0.0/8"]
        [regions.us]
        networks = ["11.0.0.0/8"]
        [geo]
        default_region = "us"
        [pools.web-eu]
        region = "eu"
        endpoints = [{ address = "192.0.2.1" }]
        [pools.web-us]
        region = "us"
        endpoints = [{ address = "192.0.2.2" }]
        [[records]]
        name = "www.example."
        type = "A"
        policy = "geo"
        [records.geo]
        eu = ["web-eu", "web-us"]
        default = ["web-us", "web-eu"]
    "#;
    let (config, _) = Config::load(ConfigSource::from_text(text, ".")).unwrap();
    let map = GeoMap::new(&config);
    let record = &config.records[0];
    let health = HealthSnapshot::from_config(&config);
    let mut rng = SplitMix64::new(1);
    let eu = map.locate("10.1.2.3".parse().unwrap(), 32).region;
    assert_eq!(
        answer(&config, record, eu, &health, &mut rng).endpoints,
        vec![EndpointIndex(0)]
    );
    let other = map.locate("172.16.0.1".parse().unwrap(), 32).region;
    assert_eq!(
        answer(&config, record, other, &health, &mut rng).endpoints,
        vec![EndpointIndex(1)]
    );
    // eu's pool down → fails over to us.
    let health = health.with(
        EndpointIndex(0),
        crate::health::EndpointHealth {
            state: HealthState::Down,
            source: crate::health::HealthSource::Observed,
        },
    );
    assert_eq!(
        answer(&config, record, eu, &health, &mut rng).endpoints,
        vec![EndpointIndex(1)]
    );
}

/// Pools (weights, min_healthy), selection, all-down mode, max answers, health, seed.
type Scenario = (Vec<(Vec<u32>, u32)>, usize, usize, u16, Vec<bool>, u64);

fn scenario() -> impl Strategy<Value = Scenario> {
    let pool = prop::collection::vec(0u32..5, 1..5).prop_flat_map(|weights| {
        let n = weights.len() as u32;
        (Just(weights), 1..=n)
    });
    (
        prop::collection::vec(pool, 1..4),
        0usize..3,
        0usize..3,
        1u16..6,
    )
        .prop_flat_map(|(pools, selection, mode, max)| {
            let endpoints: usize = pools.iter().map(|(w, _)| w.len()).sum::<usize>() + 1;
            (
                Just(pools),
                Just(selection),
                Just(mode),
                Just(max),
                prop::collection::vec(any::<bool>(), endpoints),
                any::<u64>(),
            )
        })
}

proptest! {
    #[test]
    fn answers_are_never_accidentally_empty_and_prefer_healthy(
        (pools, selection, mode, max, up, seed) in scenario()
    ) {
        let selection = ["failover", "weighted", "multivalue"][selection];
        let mode = ["fail-open", "fallback", "nodata"][mode];
        let config = config(&pools, selection, mode, max);
        let health = HealthSnapshot::from_states(up.iter().map(|&u| if u { HealthState::Up } else { HealthState::Down }));
        let a = run(&config, &health, seed);
        let record_endpoints: Vec<EndpointIndex> = pools_for(&config.records[0], None)
            .iter()
            .flat_map(|&p| config.pool(p).endpoints.clone())
            .collect();
        let any_up = record_endpoints.iter().any(|&e| health.state(e).is_up());
        // Never empty unless the mode is nodata (and then only when nothing is up).
        if a.endpoints.is_empty() {
            prop_assert_eq!(mode, "nodata");
            prop_assert!(!any_up);
            prop_assert_eq!(a.outcome, Outcome::NoData);
        }
        // Only healthy endpoints while any is healthy.
        if any_up {
            for e in &a.endpoints {
                prop_assert!(health.state(*e).is_up(), "{:?} answered while down", e);
            }
        }
        prop_assert!(a.endpoints.len() <= usize::from(config.records[0].max_answers));
        let mut distinct = a.endpoints.clone();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(distinct.len(), a.endpoints.len());
    }
}

/// Pools a (100), b (50), c (50) with `max_load = 0.8`, one endpoint each, and a
/// record over them with `extra` keys.
fn spill_config(policy: &str, extra: &str) -> Config {
    let text = format!(
        "version = 1\n\
         [pools.a]\ncapacity = 100\nmax_load = 0.8\nendpoints = [{{ address = \"10.0.0.1\" }}]\n\
         [pools.b]\ncapacity = 50\nmax_load = 0.8\nendpoints = [{{ address = \"10.0.0.2\" }}]\n\
         [pools.c]\ncapacity = 50\nmax_load = 0.8\nendpoints = [{{ address = \"10.0.0.3\" }}]\n\
         [[records]]\nname = \"www.example.\"\ntype = \"A\"\npolicy = \"{policy}\"\n\
         pools = [\"a\", \"b\", \"c\"]\n{extra}\n"
    );
    match Config::load(ConfigSource::from_text(text.clone(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn shares_of(decision: &Decision) -> Vec<f64> {
    decision
        .shares
        .as_ref()
        .map(|s| {
            s.pools
                .iter()
                .map(|p| (p.share * 1000.0).round() / 1000.0)
                .collect()
        })
        .unwrap_or_default()
}

/// Draws `n` answers from a decision and returns each pool's fraction.
fn drawn(config: &Config, decision: &Decision, n: u32) -> Vec<f64> {
    let mut rng = SplitMix64::new(7);
    let mut counts = vec![0u32; config.pools.len()];
    let mut out = Vec::new();
    for _ in 0..n {
        decision.sample(&mut rng, &mut out);
        counts[config.endpoint(out[0]).pool.0 as usize] += 1;
    }
    counts
        .iter()
        .map(|&c| f64::from(c) / f64::from(n))
        .collect()
}

#[test]
fn spill_spreads_a_failed_pool_by_headroom_and_the_cascade_does_not() {
    let config = spill_config("failover", "spill = true");
    let record = &config.records[0];
    let pools = pools_for(record, None);
    // All healthy: a answers alone (default demand = a's 100 × 0.8 = 80 fits).
    let decision = decide(&config, record, pools, &states(&config, &[]));
    assert_eq!(shares_of(&decision), [1.0, 0.0, 0.0]);
    // a fails: its 80 go to b and c by headroom (40 each), at their limits.
    let decision = decide(&config, record, pools, &states(&config, &[0]));
    assert_eq!(shares_of(&decision), [0.0, 0.5, 0.5]);
    let shares = decision.shares.as_ref().unwrap();
    assert!(!shares.overloaded);
    assert_eq!(
        shares.summary(&config),
        "spill: a failed; b 50% (load 40/40), c 50% (load 40/40)"
    );
    for (got, want) in drawn(&config, &decision, 20_000)
        .iter()
        .zip([0.0, 0.5, 0.5])
    {
        assert!((got - want).abs() < 0.02, "drawn {got}, share {want}");
    }
    // More demand than b and c can take: both at their limit, the rest on b.
    let config = spill_config("failover", "spill = true\ndemand = 100");
    let decision = decide(&config, &config.records[0], pools, &states(&config, &[0]));
    assert_eq!(shares_of(&decision), [0.0, 0.6, 0.4]);
    assert!(decision.shares.as_ref().unwrap().overloaded);
    // Without spill the whole share lands on b (the cascade).
    let config = spill_config("failover", "");
    let decision = decide(&config, &config.records[0], pools, &states(&config, &[0]));
    assert!(decision.shares.is_none());
    assert_eq!(drawn(&config, &decision, 1000), [0.0, 1.0, 0.0]);
}

#[test]
fn weighted_spill_and_trickle() {
    // Weighted 1:1:1: a's share stays, c's failed share goes to a and b by headroom.
    let config = spill_config("weighted", "spill = true\ndemand = 80");
    let record = &config.records[0];
    let pools = pools_for(record, None);
    let decision = decide(&config, record, pools, &states(&config, &[2]));
    // kept a 1/3, b 1/3 (b's limit 40/80 = 1/2); c's 1/3 by headroom 2/3 : 1/6.
    assert_eq!(shares_of(&decision), [0.6, 0.4, 0.0]);
    // Trickle 1 %: a 99 %, b 1 % (no spill: the next pool up).
    let config = spill_config("failover", "trickle = 0.01");
    let record = &config.records[0];
    let decision = decide(&config, record, pools, &states(&config, &[]));
    assert_eq!(shares_of(&decision), [0.99, 0.01, 0.0]);
    let got = drawn(&config, &decision, 100_000);
    assert!((got[1] - 0.01).abs() < 0.002, "{got:?}");
    // b down: the trickle goes to c; a down: no trickle, c... b answers alone.
    let decision = decide(&config, record, pools, &states(&config, &[1]));
    assert_eq!(shares_of(&decision), [0.99, 0.0, 0.01]);
    let decision = decide(&config, record, pools, &states(&config, &[0]));
    assert!(decision.shares.is_none());
    assert_eq!(
        decision.outcome,
        Outcome::Healthy {
            pool: Some(PoolIndex(1))
        }
    );
    // With spill, the trickle goes where a's traffic would go if it failed.
    let config = spill_config("failover", "spill = true\ntrickle = 0.02");
    let record = &config.records[0];
    let decision = decide(&config, record, pools, &states(&config, &[]));
    assert_eq!(shares_of(&decision), [0.98, 0.01, 0.01]);
    // An operator's failover to b: no trickle (a is not answering).
    let config = spill_config("failover", "trickle = 0.01");
    let record = &config.records[0];
    let decision = decide_pinned(
        &config,
        record,
        pools,
        Some(PoolIndex(1)),
        &states(&config, &[]),
    );
    assert!(decision.shares.is_none());
}

#[test]
fn spill_and_trickle_keys_are_checked_with_their_paths() {
    let load = |text: &str| {
        let text = format!(
            "version = 1\n[pools.a]\nendpoints = [{{ address = \"10.0.0.1\" }}]\n\
             [pools.b]\ncapacity = 5\nendpoints = [{{ address = \"10.0.0.2\", capacity = 3 }}]\n\
             [pools.c]\nmax_load = 1.5\nendpoints = [{{ address = \"10.0.0.3\", capacity = 2 }}, \
             {{ address = \"10.0.0.4\" }}]\n{text}"
        );
        match Config::load(ConfigSource::from_text(text, ".")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let errors = load(
        "[[records]]\nname = \"www.example.\"\ntype = \"A\"\npolicy = \"multivalue\"\n\
         pools = [\"a\"]\nspill = true\ntrickle = 0.9\ndemand = -1\n",
    );
    for expected in [
        "pools.b.capacity: set capacity on the pool or on its endpoints, not both",
        "pools.c.endpoints: 1 of 2 endpoints declare a capacity",
        "pools.c.max_load: 1.5 is out of range",
        "records[0].spill: spill applies to failover and weighted records, not multivalue",
        "records[0].spill: spill needs a capacity for every pool of the record; set [pools.a] capacity",
        "records[0].trickle: trickle applies to failover records, not multivalue",
        "records[0].demand: -1 is not a positive number",
    ] {
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
    let errors = load(
        "[[records]]\nname = \"www.example.\"\ntype = \"A\"\npolicy = \"failover\"\n\
         pools = [\"a\"]\ntrickle = 0.6\ndemand = 5\n",
    );
    assert!(
        errors.contains("records[0].trickle: 0.6 is out of range"),
        "{errors}"
    );
    assert!(
        errors.contains("records[0].demand: demand is only used with spill = true"),
        "{errors}"
    );
}

/// `states` with endpoints `degraded` at a weight factor of `permille`.
fn degraded(config: &Config, down: &[usize], degraded: &[usize], permille: u16) -> HealthSnapshot {
    states(config, down).with_degraded(
        (0..config.endpoints.len())
            .map(|i| degraded.contains(&i).then_some(permille))
            .collect(),
    )
}

#[test]
fn a_degraded_endpoint_keeps_answering_at_its_scaled_share() {
    let count = |c: &Config, health: &HealthSnapshot, endpoint: u32| {
        (0..4000u64)
            .filter(|&seed| {
                run(c, health, seed)
                    .endpoints
                    .first()
                    .is_some_and(|e| *e == EndpointIndex(endpoint))
            })
            .count() as f64
            / 4000.0
    };
    // Weighted, weights 1 and 1: the degraded one at 0.25 → 0.25 / 1.25 = 20 %.
    let weighted = config(&[(vec![1, 1], 1)], "weighted", "fail-open", 1);
    let health = degraded(&weighted, &[], &[0], 250);
    let decision = decide(&weighted, &weighted.records[0], &[PoolIndex(0)], &health);
    let weights: Vec<u32> = decision.candidates.iter().map(|c| c.weight).collect();
    assert_eq!(weights, [250, 1000], "a weight of 1 scales too");
    assert_eq!(decision.outcome, Outcome::Healthy { pool: None });
    let share = count(&weighted, &health, 0);
    assert!((share - 0.2).abs() < 0.03, "{share}");
    // Multivalue: the degraded endpoint is in about 25 % of the answers.
    let multi = config(&[(vec![1, 1], 1)], "multivalue", "fail-open", 8);
    let health = degraded(&multi, &[], &[1], 250);
    let within = (0..4000u64)
        .filter(|&seed| {
            run(&multi, &health, seed)
                .endpoints
                .contains(&EndpointIndex(1))
        })
        .count() as f64
        / 4000.0;
    assert!((within - 0.25).abs() < 0.03, "{within}");
    // Failover: a degraded primary is still the primary (no handover to the
    // standby); inside its pool it is picked less.
    let failover = config(&[(vec![1, 1], 1), (vec![1], 1)], "failover", "fail-open", 1);
    let health = degraded(&failover, &[], &[0, 1], 250);
    let decision = decide(
        &failover,
        &failover.records[0],
        &[PoolIndex(0), PoolIndex(1)],
        &health,
    );
    assert!(decision.handover.is_none());
    assert_eq!(
        decision.outcome,
        Outcome::Healthy {
            pool: Some(PoolIndex(0))
        }
    );
    let health = degraded(&failover, &[], &[0], 250);
    assert!((count(&failover, &health, 0) - 0.2).abs() < 0.03);
    // Degraded is up: min_healthy counts it, and a down endpoint is not degraded.
    let health = degraded(&failover, &[1], &[0], 250);
    let decision = decide(
        &failover,
        &failover.records[0],
        &[PoolIndex(0), PoolIndex(1)],
        &health,
    );
    assert_eq!(
        decision.outcome,
        Outcome::Healthy {
            pool: Some(PoolIndex(0))
        }
    );
}

#[test]
fn a_degraded_endpoints_capacity_scales_in_spill_over() {
    // a fails; demand 40 spreads over b and c by headroom: 20/20 when both are fine,
    // 8/32 when b (capacity 50 × 0.25, limit 10) is degraded.
    let config = spill_config("failover", "spill = true\ndemand = 40");
    let record = &config.records[0];
    let pools = pools_for(record, None);
    let decision = decide(&config, record, pools, &states(&config, &[0]));
    assert_eq!(shares_of(&decision), [0.0, 0.5, 0.5]);
    let decision = decide(&config, record, pools, &degraded(&config, &[0], &[1], 250));
    assert_eq!(shares_of(&decision), [0.0, 0.2, 0.8]);
    assert!(!decision.shares.as_ref().unwrap().overloaded);
}
