//! Capacity-aware spill-over and trickle: the share of answers each pool of a record
//! gets (pure: numbers in, numbers out).
//!
//! Model (units: the record's `demand`, its peak traffic in capacity units):
//! - A pool's *limit* is its healthy capacity × `max_load` × its dial (the dial is
//!   1 until `ctl dial` feeds it). Its *load* is its share × demand.
//! - Each pool keeps its normal share (failover: all of it on the first pool;
//!   weighted: by weight) times its dial, up to its limit. What failed, drained,
//!   dialled-down or over-limit pools do not keep is the *excess*.
//! - The excess spills over the pools in proportion to their headroom (limit − load):
//!   proportional shares never exceed any pool's headroom, so one pass suffices.
//! - If the headroom of all pools together is smaller than the excess, every pool is
//!   filled to its limit and the rest goes by the plain policy (failover: to the first
//!   pool in order that can take traffic; weighted: by normal share), and the record
//!   is *overloaded*.
//!
//! Trickle mixes two plans: `(1 − t) × now + t × (the plan if the first pool
//! failed)`; without spill the second plan is "all on the next pool".

/// One pool of a record, as the spill-over sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PoolLoad {
    /// Capacity of its usable endpoints now (0: down, drained or held).
    pub capacity: f64,
    /// Fraction of its capacity it may be driven to (0 < x ≤ 1).
    pub max_load: f64,
    /// Its share when every pool is healthy (the shares sum to 1).
    pub normal: f64,
    /// The operator's traffic dial: the fraction of what it would get that it takes
    /// (1: all; 0: none). Always 1 until `ctl dial` feeds it.
    pub dial: f64,
}

impl PoolLoad {
    /// The most traffic it may take, in capacity units.
    pub(crate) fn limit(&self) -> f64 {
        (self.capacity * self.max_load * self.dial).max(0.0)
    }

    /// Whether it can take any traffic.
    pub(crate) fn open(&self) -> bool {
        self.limit() > 0.0
    }
}

/// How the rest is placed when every pool is at its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plain {
    /// All on the first pool in order that can take traffic.
    Failover,
    /// Over the pools that can take traffic, by normal share.
    Weighted,
}

/// Per-pool shares of answers (in the order given; they sum to 1).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Share of answers per pool.
    pub shares: Vec<f64>,
    /// Every pool is at its limit: the rest went by the plain policy.
    pub overloaded: bool,
}

/// The shares of `pools` for `demand` (> 0). None when no pool can take traffic
/// (the policy's degraded and all-down rules apply instead).
pub(crate) fn spill(pools: &[PoolLoad], demand: f64, plain: Plain) -> Option<Plan> {
    if !pools.iter().any(PoolLoad::open) || demand <= 0.0 {
        return None;
    }
    let limit_share: Vec<f64> = pools.iter().map(|p| p.limit() / demand).collect();
    let kept: Vec<f64> = pools
        .iter()
        .zip(&limit_share)
        .map(|(p, &limit)| (p.normal * p.dial).min(limit).max(0.0))
        .collect();
    let normal_total: f64 = pools.iter().map(|p| p.normal).sum();
    let excess = (normal_total.max(f64::MIN_POSITIVE) - kept.iter().sum::<f64>()).max(0.0);
    let headroom: Vec<f64> = limit_share
        .iter()
        .zip(&kept)
        .map(|(l, k)| (l - k).max(0.0))
        .collect();
    let room: f64 = headroom.iter().sum();
    let mut shares = kept;
    let overloaded = room + 1e-12 < excess;
    if !overloaded {
        if excess > 0.0 {
            for (s, h) in shares.iter_mut().zip(&headroom) {
                *s += excess * h / room;
            }
        }
    } else {
        for (s, h) in shares.iter_mut().zip(&headroom) {
            *s += h;
        }
        let rest = excess - room;
        match plain {
            Plain::Failover => {
                let first = pools.iter().position(PoolLoad::open)?;
                shares[first] += rest;
            }
            Plain::Weighted => {
                let open_normal: f64 = pools.iter().filter(|p| p.open()).map(|p| p.normal).sum();
                let open_count = pools.iter().filter(|p| p.open()).count() as f64;
                for (s, p) in shares.iter_mut().zip(pools) {
                    if p.open() {
                        *s += if open_normal > 0.0 {
                            rest * p.normal / open_normal
                        } else {
                            rest / open_count
                        };
                    }
                }
            }
        }
    }
    normalize(&mut shares);
    Some(Plan { shares, overloaded })
}

/// Trickle: `(1 − t) × now + t × failed`, where `failed` is the plan if the first
/// pool failed.
pub(crate) fn trickle(now: &[f64], failed: &[f64], t: f64) -> Vec<f64> {
    let mut shares: Vec<f64> = now
        .iter()
        .zip(failed)
        .map(|(n, f)| (1.0 - t) * n + t * f)
        .collect();
    normalize(&mut shares);
    shares
}

/// The shares of a record *without* spill-over when some of its pools are dialled
/// (`dials` < 1): each `open` pool keeps its dial of what it would get, and the rest
/// goes on by the plain policy —
/// - failover: to the next open pool in order, which keeps its dial of that, and so
///   on down the list;
/// - weighted: to the open pools without a dial, by normal share (`normal`, renormalized
///   over the open pools).
///
/// What no pool takes (the last open pools are dialled too) returns to the pools that
/// answer, in proportion. None when no open pool keeps anything (every open pool is
/// dialled to 0: the dials are set aside, as drains are when nothing else can be
/// answered) or nothing is open.
pub(crate) fn dialled(
    normal: &[f64],
    dials: &[f64],
    open: &[bool],
    plain: Plain,
) -> Option<Vec<f64>> {
    let mut shares = vec![0.0; dials.len()];
    match plain {
        Plain::Failover => {
            let mut rest = 1.0;
            for (i, _) in open.iter().enumerate().filter(|(_, o)| **o) {
                let take = rest * dials[i].clamp(0.0, 1.0);
                shares[i] = take;
                rest -= take;
            }
        }
        Plain::Weighted => {
            let total: f64 = normal
                .iter()
                .zip(open)
                .filter(|(_, o)| **o)
                .map(|(n, _)| n)
                .sum();
            if total <= 0.0 {
                return None;
            }
            for i in (0..dials.len()).filter(|&i| open[i]) {
                shares[i] = normal[i] / total * dials[i].clamp(0.0, 1.0);
            }
            let excess = 1.0 - shares.iter().sum::<f64>();
            let undialled: f64 = (0..dials.len())
                .filter(|&i| open[i] && dials[i] >= 1.0)
                .map(|i| normal[i] / total)
                .sum();
            if undialled > 0.0 {
                for i in (0..dials.len()).filter(|&i| open[i] && dials[i] >= 1.0) {
                    shares[i] += excess * (normal[i] / total) / undialled;
                }
            }
        }
    }
    if shares.iter().sum::<f64>() <= 0.0 {
        return None;
    }
    normalize(&mut shares);
    Some(shares)
}

/// Scales shares to sum to exactly 1 (float rounding).
fn normalize(shares: &mut [f64]) {
    let total: f64 = shares.iter().sum();
    if total > 0.0 {
        for s in shares.iter_mut() {
            *s /= total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(capacity: f64, max_load: f64, normal: f64) -> PoolLoad {
        PoolLoad {
            capacity,
            max_load,
            normal,
            dial: 1.0,
        }
    }

    fn rounded(plan: &Plan) -> Vec<f64> {
        plan.shares
            .iter()
            .map(|s| (s * 1000.0).round() / 1000.0)
            .collect()
    }

    #[test]
    fn dials_without_spill_by_table() {
        use Plain::{Failover, Weighted};
        // (normal, dials, open, plain) → shares (None: the dials are set aside)
        #[allow(clippy::type_complexity)]
        let table: &[(&[f64], &[f64], &[bool], Plain, Option<&[f64]>)] = &[
            // Failover, a at 10 %: the rest to b (the next pool).
            (
                &[1.0, 0.0, 0.0],
                &[0.1, 1.0, 1.0],
                &[true, true, true],
                Failover,
                Some(&[0.1, 0.9, 0.0]),
            ),
            // a at 0 %: a drain that keeps its checks.
            (
                &[1.0, 0.0, 0.0],
                &[0.0, 1.0, 1.0],
                &[true, true, true],
                Failover,
                Some(&[0.0, 1.0, 0.0]),
            ),
            // b down: the rest skips it to c.
            (
                &[1.0, 0.0, 0.0],
                &[0.5, 1.0, 1.0],
                &[true, false, true],
                Failover,
                Some(&[0.5, 0.0, 0.5]),
            ),
            // a 50 %, b 50 % of the rest, c the last quarter.
            (
                &[1.0, 0.0, 0.0],
                &[0.5, 0.5, 1.0],
                &[true, true, true],
                Failover,
                Some(&[0.5, 0.25, 0.25]),
            ),
            // Nowhere else to go: a keeps all.
            (
                &[1.0, 0.0],
                &[0.1, 1.0],
                &[true, false],
                Failover,
                Some(&[1.0, 0.0]),
            ),
            // Every open pool at 0 %: set aside.
            (&[1.0, 0.0], &[0.0, 0.0], &[true, true], Failover, None),
            // Weighted 50/50, a at 50 %: a 25 %, b the rest.
            (
                &[0.5, 0.5],
                &[0.5, 1.0],
                &[true, true],
                Weighted,
                Some(&[0.25, 0.75]),
            ),
            // Weighted 50/25/25, a at 0 %: b and c by weight.
            (
                &[0.5, 0.25, 0.25],
                &[0.0, 1.0, 1.0],
                &[true, true, true],
                Weighted,
                Some(&[0.0, 0.5, 0.5]),
            ),
            // Every pool dialled: each keeps its part, renormalized.
            (
                &[0.5, 0.5],
                &[0.5, 0.25],
                &[true, true],
                Weighted,
                Some(&[0.667, 0.333]),
            ),
        ];
        for (normal, dials, open, plain, want) in table {
            let got = dialled(normal, dials, open, *plain).map(|s| {
                s.iter()
                    .map(|x| (x * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            });
            assert_eq!(
                got.as_deref(),
                *want,
                "{normal:?} {dials:?} {open:?} {plain:?}"
            );
        }
    }

    #[test]
    fn shares_by_table() {
        // (capacities, max_load, normal shares, demand, plain) → (shares, overloaded)
        #[allow(clippy::type_complexity)]
        let table: &[(&[f64], f64, &[f64], f64, Plain, &[f64], bool)] = &[
            // All healthy, demand within the first pool's limit: failover as usual.
            (
                &[100.0, 50.0, 50.0],
                0.8,
                &[1.0, 0.0, 0.0],
                80.0,
                Plain::Failover,
                &[1.0, 0.0, 0.0],
                false,
            ),
            // The brief's case: a (100) fails, demand 80 → b and c 40 each = their limits.
            (
                &[0.0, 50.0, 50.0],
                0.8,
                &[1.0, 0.0, 0.0],
                80.0,
                Plain::Failover,
                &[0.0, 0.5, 0.5],
                false,
            ),
            // Less demand: split by headroom (b 50, c 25 → 2:1).
            (
                &[0.0, 50.0, 25.0],
                0.8,
                &[1.0, 0.0, 0.0],
                30.0,
                Plain::Failover,
                &[0.0, 0.667, 0.333],
                false,
            ),
            // More than b and c can take: both at their limit, the rest on b (next in order).
            (
                &[0.0, 50.0, 50.0],
                0.8,
                &[1.0, 0.0, 0.0],
                100.0,
                Plain::Failover,
                &[0.0, 0.6, 0.4],
                true,
            ),
            // A half-failed first pool keeps its limit, the excess spills.
            (
                &[50.0, 50.0, 50.0],
                0.8,
                &[1.0, 0.0, 0.0],
                80.0,
                Plain::Failover,
                &[0.5, 0.25, 0.25],
                false,
            ),
            // Weighted 1:1:1 over 100/50/50 at demand 160 (all limits): by capacity.
            (
                &[100.0, 50.0, 50.0],
                0.8,
                &[0.334, 0.333, 0.333],
                160.0,
                Plain::Weighted,
                &[0.5, 0.25, 0.25],
                false,
            ),
            // Weighted, c failed: its share goes to a and b by headroom.
            (
                &[100.0, 50.0, 0.0],
                0.8,
                &[0.5, 0.25, 0.25],
                80.0,
                Plain::Weighted,
                &[0.667, 0.333, 0.0],
                false,
            ),
            // Weighted overload: all at limit, the rest by weight.
            (
                &[10.0, 10.0, 0.0],
                1.0,
                &[0.5, 0.25, 0.25],
                40.0,
                Plain::Weighted,
                &[0.583, 0.417, 0.0],
                true,
            ),
        ];
        for (i, &(caps, max_load, normal, demand, plain, want, overloaded)) in
            table.iter().enumerate()
        {
            let pools: Vec<PoolLoad> = caps
                .iter()
                .zip(normal)
                .map(|(&c, &n)| pool(c, max_load, n))
                .collect();
            let plan = spill(&pools, demand, plain).expect("a plan");
            assert_eq!(rounded(&plan), want, "row {i}");
            assert_eq!(plan.overloaded, overloaded, "row {i}");
        }
    }

    #[test]
    fn nothing_open_is_no_plan_and_a_dial_scales_the_limit() {
        let down = [pool(0.0, 0.8, 1.0), pool(0.0, 0.8, 0.0)];
        assert_eq!(spill(&down, 10.0, Plain::Failover), None);
        // a dialled to 50 %: half of its traffic spills to b.
        let pools = [
            PoolLoad {
                dial: 0.5,
                ..pool(100.0, 1.0, 1.0)
            },
            pool(100.0, 1.0, 0.0),
        ];
        let plan = spill(&pools, 100.0, Plain::Failover).unwrap();
        assert_eq!(rounded(&plan), [0.5, 0.5]);
        // Dialled to 0: a drain that keeps its checks.
        let pools = [
            PoolLoad {
                dial: 0.0,
                ..pool(100.0, 1.0, 1.0)
            },
            pool(100.0, 1.0, 0.0),
        ];
        assert_eq!(
            rounded(&spill(&pools, 100.0, Plain::Failover).unwrap()),
            [0.0, 1.0]
        );
    }

    #[test]
    fn trickle_mixes_the_plan_with_the_failed_over_one() {
        let shares = trickle(&[1.0, 0.0, 0.0], &[0.0, 0.5, 0.5], 0.01);
        let want = [0.99, 0.005, 0.005];
        for (s, w) in shares.iter().zip(want) {
            assert!((s - w).abs() < 1e-12, "{shares:?}");
        }
    }

    proptest! {
        /// Shares sum to 1, no pool is above its limit unless the record is
        /// overloaded, a pool that cannot take traffic gets none, and when overloaded
        /// (failover) only the first open pool in order is above its limit.
        #[test]
        fn shares_sum_to_one_within_limits_in_failover_order(
            caps in proptest::collection::vec(prop_oneof![Just(0.0), 1.0f64..200.0], 1..6),
            max_load in 0.1f64..=1.0,
            demand in 1.0f64..400.0,
            weighted in any::<bool>(),
        ) {
            let n = caps.len();
            let pools: Vec<PoolLoad> = caps
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let normal = if weighted { 1.0 / n as f64 } else if i == 0 { 1.0 } else { 0.0 };
                    pool(c, max_load, normal)
                })
                .collect();
            let plain = if weighted { Plain::Weighted } else { Plain::Failover };
            let Some(plan) = spill(&pools, demand, plain) else {
                prop_assert!(caps.iter().all(|&c| c == 0.0));
                return Ok(());
            };
            let total: f64 = plan.shares.iter().sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "sum {}", total);
            for (i, (s, p)) in plan.shares.iter().zip(&pools).enumerate() {
                prop_assert!(*s >= 0.0);
                if !p.open() {
                    prop_assert!(*s == 0.0, "closed pool {} got {}", i, s);
                }
                let over = s * demand > p.limit() * (1.0 + 1e-9) + 1e-9;
                if over {
                    prop_assert!(plan.overloaded, "pool {} over its limit: {:?}", i, plan);
                    if !weighted {
                        let first = pools.iter().position(PoolLoad::open).unwrap();
                        prop_assert_eq!(i, first, "only the first open pool takes the rest");
                    }
                }
            }
            if plan.overloaded {
                // Every open pool is at (or above) its limit.
                for (s, p) in plan.shares.iter().zip(&pools) {
                    if p.open() {
                        prop_assert!(s * demand >= p.limit() * (1.0 - 1e-9) - 1e-9);
                    }
                }
            }
            // Failover with its first pool open and within its limit keeps everything.
            if !weighted && pools[0].open() && demand <= pools[0].limit() {
                prop_assert!((plan.shares[0] - 1.0).abs() < 1e-9);
            }
        }
    }
}
