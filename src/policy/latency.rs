//! Latency steering: each client region is answered by the healthy pool with the
//! lowest round-trip time as this deployment's own vantage points of that region
//! measure it, with hysteresis (pure: time is passed in).
//!
//! - Every vantage point smooths each endpoint's RTT with an [`Ewma`] and reports it
//!   with its verdicts; a server keeps the latest per vantage point and endpoint in an
//!   [`RttTable`].
//! - A pool's RTT from a vantage point is the median of its usable endpoints' RTTs;
//!   from a region, the median over the region's vantage points that measured it
//!   ([`region_pool_rtt`]). A region with no vantage point uses `[geo]
//!   default_region`'s; clients placed in no region too.
//! - [`step`] moves a region to a better pool only when it is faster by more than
//!   `min_gain` *and* `min_gain_percent`, has stayed so for `hold`, and the region has
//!   not moved within `hold`. A region whose pool stops being up moves at once (that
//!   is failover, not steering). Failover order breaks ties and decides while RTTs
//!   are missing.
//! - The choice is made when the health plane decides, per record and region
//!   ([`LatencyMemory`]); the answers put the chosen pool first and the others in
//!   failover order behind it ([`ordered`]), so the DNS path does what a geo record
//!   does (one lookup of the client's region).

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{Config, DynamicRecord, LatencySteering};
use crate::health::HealthSnapshot;
use crate::model::{EndpointIndex, PoolIndex, RecordIndex, RegionIndex, VantageIndex};

/// An RTT reported again only when it moved by more than this fraction of the last
/// reported value (delta reports stay flat while RTTs jitter a little).
pub const REPORT_CHANGE: f64 = 0.05;

/// Exponentially weighted moving average of one endpoint's RTT with a time constant
/// (`[health] rtt_window`): a sample `dt` after the last one weighs `1 - e^(-dt/window)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ewma {
    /// The average, microseconds.
    pub value_us: f64,
    /// When the last sample came.
    pub at: Duration,
}

impl Ewma {
    /// The average after a first sample.
    pub fn first(sample_us: f64, now: Duration) -> Self {
        Self {
            value_us: sample_us,
            at: now,
        }
    }

    /// Folds in a sample taken at `now`.
    pub fn update(&mut self, sample_us: f64, now: Duration, window: Duration) {
        let dt = now.saturating_sub(self.at).as_secs_f64();
        let weight = if window.is_zero() {
            1.0
        } else {
            1.0 - (-dt / window.as_secs_f64()).exp()
        };
        self.value_us += weight * (sample_us - self.value_us);
        self.at = now;
    }
}

/// Whether an RTT moved enough since `last` to be reported again.
pub fn moved(last: Option<u32>, now: Option<u32>) -> bool {
    match (last, now) {
        (Some(a), Some(b)) => {
            (f64::from(a) - f64::from(b)).abs() > REPORT_CHANGE * f64::from(a.max(1))
        }
        (a, b) => a.is_some() != b.is_some(),
    }
}

/// One RTT as a server holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtt {
    /// Smoothed RTT, microseconds.
    pub us: u32,
    /// When its vantage point last vouched for it (a report, or a local probe).
    pub at: Duration,
}

/// The latest smoothed RTT per vantage point and endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RttTable {
    entries: HashMap<(VantageIndex, EndpointIndex), Rtt>,
}

impl RttTable {
    /// Sets (Some) or clears (None) an RTT; returns whether it moved by more than
    /// [`REPORT_CHANGE`].
    pub fn set(
        &mut self,
        vantage: VantageIndex,
        endpoint: EndpointIndex,
        us: Option<u32>,
        now: Duration,
    ) -> bool {
        let before = self.entries.get(&(vantage, endpoint)).map(|r| r.us);
        match us {
            Some(us) => {
                self.entries
                    .insert((vantage, endpoint), Rtt { us, at: now });
            }
            None => {
                self.entries.remove(&(vantage, endpoint));
            }
        }
        moved(before, us)
    }

    /// A report from `vantage` vouches for every RTT it sent before (deltas leave out
    /// those that did not move).
    pub fn vouch(&mut self, vantage: VantageIndex, now: Duration) {
        for ((v, _), rtt) in &mut self.entries {
            if *v == vantage {
                rtt.at = now;
            }
        }
    }

    /// Forgets RTTs nobody vouched for within `staleness`.
    pub fn expire(&mut self, now: Duration, staleness: Duration) {
        self.entries
            .retain(|_, rtt| now.saturating_sub(rtt.at) <= staleness);
    }

    /// The RTT `vantage` measured to `endpoint`, microseconds.
    pub fn get(&self, vantage: VantageIndex, endpoint: EndpointIndex) -> Option<u32> {
        self.entries.get(&(vantage, endpoint)).map(|r| r.us)
    }

    /// Every RTT, sorted by vantage point and endpoint.
    pub fn all(&self) -> Vec<(VantageIndex, EndpointIndex, u32)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .map(|((v, e), rtt)| (*v, *e, rtt.us))
            .collect();
        out.sort_unstable();
        out
    }
}

/// Median of `values` (the lower middle one of an even count, so it is a measured
/// value); None when empty.
pub fn median(values: &mut [u32]) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[(values.len() - 1) / 2])
}

/// The vantage points whose measurements stand for clients of `region`: the
/// region's own, else `[geo] default_region`'s (also for clients of no region).
pub fn vantages_for(config: &Config, region: Option<RegionIndex>) -> Vec<VantageIndex> {
    let of = |r: Option<RegionIndex>| -> Vec<VantageIndex> {
        let Some(r) = r else { return Vec::new() };
        config
            .vantages
            .iter()
            .enumerate()
            .filter(|(_, v)| v.region == Some(r))
            .map(|(i, _)| VantageIndex(i as u16))
            .collect()
    };
    let own = of(region);
    if own.is_empty() {
        of(config.geo.default_region)
    } else {
        own
    }
}

/// Whether an endpoint may be answered (up, not drained).
fn usable(config: &Config, health: &HealthSnapshot, e: EndpointIndex) -> bool {
    health.state(e).is_up() && !config.endpoint(e).weight.is_drained() && !health.drained(e)
}

/// Whether a pool is up: at least `min_healthy` usable endpoints.
pub fn pool_up(config: &Config, health: &HealthSnapshot, pool: PoolIndex) -> bool {
    let p = config.pool(pool);
    p.endpoints
        .iter()
        .filter(|&&e| usable(config, health, e))
        .count() as u32
        >= p.min_healthy
}

/// A pool's RTT as `vantages` see it: per vantage point the median of its usable
/// endpoints' RTTs, then the median of those.
pub fn region_pool_rtt(
    config: &Config,
    health: &HealthSnapshot,
    rtts: &RttTable,
    vantages: &[VantageIndex],
    pool: PoolIndex,
) -> Option<u32> {
    let endpoints: Vec<EndpointIndex> = config
        .pool(pool)
        .endpoints
        .iter()
        .copied()
        .filter(|&e| usable(config, health, e))
        .collect();
    let mut per_vantage: Vec<u32> = vantages
        .iter()
        .filter_map(|&v| {
            let mut values: Vec<u32> = endpoints.iter().filter_map(|&e| rtts.get(v, e)).collect();
            median(&mut values)
        })
        .collect();
    median(&mut per_vantage)
}

/// One pool as [`step`] weighs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRtt {
    /// The pool.
    pub pool: PoolIndex,
    /// Whether it is up.
    pub up: bool,
    /// Its RTT from the region, microseconds (None: not measured).
    pub rtt_us: Option<u32>,
}

/// Where one client region of one record stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The pool answered first (None: not decided yet).
    pub current: Option<PoolIndex>,
    /// A better pool and since when it has been better by the margins.
    pub candidate: Option<(PoolIndex, Duration)>,
    /// When the region last moved (steering or failover).
    pub moved_at: Option<Duration>,
}

/// The best pool: the up pool with the lowest RTT (failover order breaks ties); the
/// first up pool when none has an RTT; None when no pool is up.
pub fn best(options: &[PoolRtt]) -> Option<PoolIndex> {
    let measured = options
        .iter()
        .filter(|o| o.up)
        .filter_map(|o| o.rtt_us.map(|r| (r, o.pool)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, p)| p);
    measured.or_else(|| options.iter().find(|o| o.up).map(|o| o.pool))
}

/// The next state of a region: `options` in failover order, at `now`.
pub fn step(slot: Slot, options: &[PoolRtt], settings: &LatencySteering, now: Duration) -> Slot {
    let Some(best) = best(options) else {
        // Nothing up: keep the choice; failover order and the all-down mode answer.
        return Slot {
            candidate: None,
            ..slot
        };
    };
    let of = |p: PoolIndex| options.iter().find(|o| o.pool == p);
    let current = match slot.current.and_then(of) {
        Some(c) if c.up => c,
        // First decision, or the current pool went down (or left the list): move now.
        _ => {
            return Slot {
                current: Some(best),
                candidate: None,
                moved_at: slot.current.map(|_| now),
            };
        }
    };
    if best == current.pool {
        return Slot {
            candidate: None,
            ..slot
        };
    }
    let better = match (current.rtt_us, of(best).and_then(|b| b.rtt_us)) {
        (Some(cur), Some(new)) => {
            let gain = f64::from(cur) - f64::from(new);
            gain > settings.min_gain.as_secs_f64() * 1e6
                && gain > f64::from(cur) * settings.min_gain_percent / 100.0
        }
        // The current pool is not measured (any more) but another is.
        (None, Some(_)) => true,
        _ => false,
    };
    if !better {
        return Slot {
            candidate: None,
            ..slot
        };
    }
    let since = match slot.candidate {
        Some((pool, since)) if pool == best => since,
        _ => now,
    };
    let held_long = now.saturating_sub(since) >= settings.hold;
    let rested = slot
        .moved_at
        .is_none_or(|at| now.saturating_sub(at) >= settings.hold);
    if held_long && rested {
        Slot {
            current: Some(best),
            candidate: None,
            moved_at: Some(now),
        }
    } else {
        Slot {
            candidate: Some((best, since)),
            ..slot
        }
    }
}

/// When a slot may move next without new input (its candidate's hold ends, or the
/// region's rest after a move), if it has a candidate.
pub fn due(slot: &Slot, settings: &LatencySteering) -> Option<Duration> {
    let (_, since) = slot.candidate?;
    let held = since + settings.hold;
    Some(match slot.moved_at {
        Some(at) => held.max(at + settings.hold),
        None => held,
    })
}

/// `list` with `chosen` first and the others in their order.
pub fn ordered(list: &[PoolIndex], chosen: Option<PoolIndex>) -> Vec<PoolIndex> {
    let mut out = Vec::with_capacity(list.len());
    if let Some(c) = chosen.filter(|c| list.contains(c)) {
        out.push(c);
    }
    out.extend(list.iter().copied().filter(|p| Some(*p) != chosen));
    out
}

/// Region slots of a record: one per configured region, then one for clients of no
/// region.
pub fn slot_of(config: &Config, region: Option<RegionIndex>) -> usize {
    region.map_or(config.regions.len(), |r| usize::from(r.0))
}

/// The region of slot `slot` (None: clients of no region).
pub fn region_of_slot(config: &Config, slot: usize) -> Option<RegionIndex> {
    (slot < config.regions.len()).then_some(RegionIndex(slot as u16))
}

/// The pools a region weighs, in failover order, with health and RTT.
pub fn options(
    config: &Config,
    record: &DynamicRecord,
    region: Option<RegionIndex>,
    health: &HealthSnapshot,
    rtts: &RttTable,
) -> Vec<PoolRtt> {
    let vantages = vantages_for(config, region);
    super::pools_for(record, region)
        .iter()
        .map(|&pool| PoolRtt {
            pool,
            up: pool_up(config, health, pool),
            rtt_us: region_pool_rtt(config, health, rtts, &vantages, pool),
        })
        .collect()
}

/// Every latency record's choice per client region, kept between decisions.
#[derive(Clone, Debug, Default)]
pub struct LatencyMemory {
    slots: HashMap<(RecordIndex, usize), Slot>,
}

impl LatencyMemory {
    /// Steps every latency record's regions with the health and RTTs of now; returns
    /// whether a choice changed.
    pub fn observe(
        &mut self,
        config: &Config,
        health: &HealthSnapshot,
        rtts: &RttTable,
        now: Duration,
    ) -> bool {
        let mut changed = false;
        let mut kept = HashMap::new();
        for (r, record) in config.records.iter().enumerate() {
            let Some(settings) = &record.latency else {
                continue;
            };
            let record_index = RecordIndex(r as u32);
            for slot in 0..=config.regions.len() {
                let region = region_of_slot(config, slot);
                let before = self
                    .slots
                    .get(&(record_index, slot))
                    .copied()
                    .unwrap_or_default();
                let options = options(config, record, region, health, rtts);
                let after = step(before, &options, settings, now);
                changed |= after.current != before.current;
                kept.insert((record_index, slot), after);
            }
        }
        self.slots = kept;
        changed
    }

    /// The earliest time a choice may change without new input.
    pub fn next_due(&self, config: &Config) -> Option<Duration> {
        self.slots
            .iter()
            .filter_map(|((r, _), slot)| {
                let settings = config.records.get(r.0 as usize)?.latency.as_ref()?;
                due(slot, settings)
            })
            .min()
    }

    /// Per record, the chosen pool per region slot (empty for other records).
    pub fn choices(&self, config: &Config) -> Vec<Vec<Option<PoolIndex>>> {
        config
            .records
            .iter()
            .enumerate()
            .map(|(r, record)| {
                if record.latency.is_none() {
                    return Vec::new();
                }
                (0..=config.regions.len())
                    .map(|slot| {
                        self.slots
                            .get(&(RecordIndex(r as u32), slot))
                            .and_then(|s| s.current)
                    })
                    .collect()
            })
            .collect()
    }

    /// Where one record's region slot stands.
    pub fn slot(&self, record: RecordIndex, slot: usize) -> Option<Slot> {
        self.slots.get(&(record, slot)).copied()
    }
}

#[cfg(test)]
mod tests;
