//! Counters, sharded per worker thread so the answer path never contends on a cache
//! line; read at scrape time by [`DnsCollector`] (names in [`super::names`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::names;
use super::registry::{Kind, family, labelled, single};

/// Zones counted apart (the last slot counts every zone past them).
pub(crate) const ZONE_SLOTS: usize = 64;

/// The slot of the zones past the first `ZONE_SLOTS - 1`.
pub(crate) const OTHER_ZONES_SLOT: u8 = (ZONE_SLOTS - 1) as u8;

/// Zone names by counter slot, for the whole process: a zone keeps its slot across
/// reloads (and every server of the process shares the names).
static ZONE_NAMES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The per-zone counter slot of zone `origin` (absolute, lower case): its own while
/// fewer than `ZONE_SLOTS - 1` zones were ever seen, else [`OTHER_ZONES_SLOT`].
/// Called when zones are loaded, never on the answer path.
pub(crate) fn zone_slot(origin: &str) -> u8 {
    let mut names = ZONE_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = names.iter().position(|n| n == origin) {
        return i as u8;
    }
    if names.len() < usize::from(OTHER_ZONES_SLOT) {
        names.push(origin.to_owned());
        return (names.len() - 1) as u8;
    }
    OTHER_ZONES_SLOT
}

/// The zone name of a counter slot (`(other)` for the shared one).
pub(crate) fn zone_slot_name(slot: usize) -> Option<String> {
    if slot == usize::from(OTHER_ZONES_SLOT) {
        return Some("(other)".to_owned());
    }
    ZONE_NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(slot)
        .cloned()
}

/// Records with `trickle` counted apart (the last slot counts every one past them).
pub(crate) const TRICKLE_SLOTS: usize = 32;

/// Records (name, type) by trickle counter slot, for the whole process.
static TRICKLE_RECORDS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// The trickle counter slot of a record (name, type): its own while fewer than
/// `TRICKLE_SLOTS - 1` records were ever given one, else the shared last slot.
/// Called when answers are built, never on the answer path.
pub(crate) fn trickle_slot(record: &str, rtype: &str) -> u8 {
    let mut names = TRICKLE_RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = names.iter().position(|(n, t)| n == record && t == rtype) {
        return i as u8;
    }
    if names.len() < TRICKLE_SLOTS - 1 {
        names.push((record.to_owned(), rtype.to_owned()));
        return (names.len() - 1) as u8;
    }
    (TRICKLE_SLOTS - 1) as u8
}

/// The record (name, type) of a trickle counter slot (`(other)` for the shared one).
pub(crate) fn trickle_slot_record(slot: usize) -> Option<(String, String)> {
    if slot == TRICKLE_SLOTS - 1 {
        return Some(("(other)".to_owned(), String::new()));
    }
    TRICKLE_RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(slot)
        .cloned()
}

/// Response codes counted separately; others go to `other`.
pub(crate) const COUNTED_RCODES: [(u16, &str); 7] = [
    (0, "noerror"),
    (1, "formerr"),
    (2, "servfail"),
    (3, "nxdomain"),
    (4, "notimp"),
    (5, "refused"),
    (16, "badvers"),
];

/// One worker's counters, on its own cache lines.
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct DnsCounters {
    responses: [AtomicU64; 8],
    dropped: AtomicU64,
    truncated: AtomicU64,
    internal_errors: AtomicU64,
    rrl_slipped: AtomicU64,
    rrl_dropped: AtomicU64,
    tcp_accepted: AtomicU64,
    tcp_rejected: AtomicU64,
    tcp_timeouts: AtomicU64,
    tcp_closed: AtomicU64,
    /// Responses per zone slot, per rcode slot.
    zone_responses: [[AtomicU64; 8]; ZONE_SLOTS],
    /// Trickle answers per trickle slot.
    trickle: [AtomicU64; TRICKLE_SLOTS],
}

impl Default for DnsCounters {
    fn default() -> Self {
        Self {
            responses: Default::default(),
            dropped: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            internal_errors: AtomicU64::new(0),
            rrl_slipped: AtomicU64::new(0),
            rrl_dropped: AtomicU64::new(0),
            tcp_accepted: AtomicU64::new(0),
            tcp_rejected: AtomicU64::new(0),
            tcp_timeouts: AtomicU64::new(0),
            tcp_closed: AtomicU64::new(0),
            zone_responses: std::array::from_fn(|_| Default::default()),
            trickle: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl DnsCounters {
    /// Counts a rate-limited response sent truncated.
    pub(crate) fn rrl_slipped(&self) {
        self.rrl_slipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rate-limited response not sent.
    pub(crate) fn rrl_dropped(&self) {
        self.rrl_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted TCP connection.
    pub(crate) fn tcp_accepted(&self) {
        self.tcp_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a TCP connection refused by a connection limit.
    pub(crate) fn tcp_rejected(&self) {
        self.tcp_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a TCP connection closed by the idle timeout.
    pub(crate) fn tcp_timeout(&self) {
        self.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a closed TCP connection (one that was accepted).
    pub(crate) fn tcp_closed(&self) {
        self.tcp_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a response to a query in the zone of counter slot `zone` (None: in no
    /// zone served, or not parsed).
    pub(crate) fn response_in(&self, rcode: u16, zone: Option<u8>) {
        let slot = COUNTED_RCODES
            .iter()
            .position(|(code, _)| *code == rcode)
            .unwrap_or(7);
        self.responses[slot].fetch_add(1, Ordering::Relaxed);
        if let Some(zone) = zone.and_then(|z| self.zone_responses.get(usize::from(z))) {
            zone[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a dropped datagram.
    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a truncated response.
    pub(crate) fn truncated(&self) {
        self.truncated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an internal error.
    pub(crate) fn internal_error(&self) {
        self.internal_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a trickle answer of the record in trickle slot `slot`.
    pub(crate) fn trickle(&self, slot: u8) {
        if let Some(counter) = self.trickle.get(usize::from(slot)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Totals across shards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnsTotals {
    /// Responses per [`COUNTED_RCODES`] entry, then `other`.
    pub responses: [u64; 8],
    /// Dropped datagrams.
    pub dropped: u64,
    /// Truncated responses.
    pub truncated: u64,
    /// Internal errors.
    pub internal_errors: u64,
    /// Rate-limited responses sent truncated.
    pub rrl_slipped: u64,
    /// Rate-limited responses not sent.
    pub rrl_dropped: u64,
    /// TCP connections accepted.
    pub tcp_accepted: u64,
    /// TCP connections refused by a connection limit.
    pub tcp_rejected: u64,
    /// TCP connections closed by the idle timeout.
    pub tcp_timeouts: u64,
    /// Accepted TCP connections since closed.
    pub tcp_closed: u64,
    /// Responses per zone slot (see [`zone_slot`]), per [`COUNTED_RCODES`] entry
    /// then `other`; empty until a shard is summed.
    pub zones: Vec<[u64; 8]>,
    /// Trickle answers per trickle slot (see [`trickle_slot`]); empty until a
    /// shard is summed.
    pub trickle: Vec<u64>,
}

impl DnsTotals {
    /// Rate-limited responses (slipped plus dropped).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn rrl_limited(&self) -> u64 {
        self.rrl_slipped + self.rrl_dropped
    }

    /// TCP connections open now.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn tcp_open(&self) -> u64 {
        self.tcp_accepted.saturating_sub(self.tcp_closed)
    }
}

/// All DNS counters of a server.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnsMetrics {
    shards: Arc<std::sync::Mutex<Vec<Arc<DnsCounters>>>>,
}

impl DnsMetrics {
    /// A new shard for one worker (taken once, at worker start).
    pub(crate) fn shard(&self) -> Arc<DnsCounters> {
        let shard = Arc::new(DnsCounters::default());
        if let Ok(mut shards) = self.shards.lock() {
            shards.push(shard.clone());
        }
        shard
    }

    /// Sums every shard.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn totals(&self) -> DnsTotals {
        let mut totals = DnsTotals::default();
        let Ok(shards) = self.shards.lock() else {
            return totals;
        };
        for shard in shards.iter() {
            for (t, c) in totals.responses.iter_mut().zip(&shard.responses) {
                *t += c.load(Ordering::Relaxed);
            }
            totals.dropped += shard.dropped.load(Ordering::Relaxed);
            totals.truncated += shard.truncated.load(Ordering::Relaxed);
            totals.internal_errors += shard.internal_errors.load(Ordering::Relaxed);
            totals.rrl_slipped += shard.rrl_slipped.load(Ordering::Relaxed);
            totals.rrl_dropped += shard.rrl_dropped.load(Ordering::Relaxed);
            totals.tcp_accepted += shard.tcp_accepted.load(Ordering::Relaxed);
            totals.tcp_rejected += shard.tcp_rejected.load(Ordering::Relaxed);
            totals.tcp_timeouts += shard.tcp_timeouts.load(Ordering::Relaxed);
            totals.tcp_closed += shard.tcp_closed.load(Ordering::Relaxed);
            totals.trickle.resize(TRICKLE_SLOTS, 0);
            for (t, c) in totals.trickle.iter_mut().zip(&shard.trickle) {
                *t += c.load(Ordering::Relaxed);
            }
            totals.zones.resize(ZONE_SLOTS, [0; 8]);
            for (total, counted) in totals.zones.iter_mut().zip(&shard.zone_responses) {
                for (t, c) in total.iter_mut().zip(counted) {
                    *t += c.load(Ordering::Relaxed);
                }
            }
        }
        totals
    }
}

/// The answer path's counters on `/metrics`: the shards summed at scrape time.
#[derive(Clone, Debug, Default)]
pub(crate) struct DnsCollector(pub DnsMetrics);

impl Collector for DnsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let totals = self.0.totals();
        let rcodes = || {
            COUNTED_RCODES
                .iter()
                .map(|(_, label)| *label)
                .chain(std::iter::once("other"))
        };
        labelled(
            &mut encoder,
            names::DNS_RESPONSES_TOTAL,
            "DNS responses by response code.",
            Kind::Counter,
            "rcode",
            rcodes().zip(totals.responses),
        )?;
        let mut zones = family(
            &mut encoder,
            names::DNS_ZONE_RESPONSES_TOTAL,
            "DNS responses per zone, by response code.",
            Kind::Counter,
        )?;
        for (slot, counts) in totals.zones.iter().enumerate() {
            if counts.iter().all(|&c| c == 0) {
                continue;
            }
            let Some(zone) = zone_slot_name(slot) else {
                continue;
            };
            for (rcode, &count) in rcodes().zip(counts) {
                zones.sample(&[("zone", &zone), ("rcode", rcode)], count)?;
            }
        }
        let mut trickle = family(
            &mut encoder,
            names::RECORD_TRICKLE_ANSWERS_TOTAL,
            "Answers given from a trickle pool (after the answering first pool) of records with trickle.",
            Kind::Counter,
        )?;
        for (slot, &count) in totals.trickle.iter().enumerate() {
            let Some((record, rtype)) = trickle_slot_record(slot) else {
                continue;
            };
            if count == 0 && slot == TRICKLE_SLOTS - 1 {
                continue;
            }
            trickle.sample(&[("record", &record), ("type", &rtype)], count)?;
        }
        for (name, help, value) in [
            (
                names::DNS_DROPPED_TOTAL,
                "Datagrams dropped without a response.",
                totals.dropped,
            ),
            (
                names::DNS_TRUNCATED_TOTAL,
                "UDP responses truncated (TC).",
                totals.truncated,
            ),
            (
                names::DNS_INTERNAL_ERRORS_TOTAL,
                "Internal errors on the answer path.",
                totals.internal_errors,
            ),
            (
                names::DNS_RRL_LIMITED_TOTAL,
                "UDP responses over their rate limit (slipped plus dropped).",
                totals.rrl_limited(),
            ),
            (
                names::DNS_RRL_SLIPPED_TOTAL,
                "Rate-limited UDP responses sent truncated (TC, no records).",
                totals.rrl_slipped,
            ),
            (
                names::DNS_RRL_DROPPED_TOTAL,
                "Rate-limited UDP responses not sent.",
                totals.rrl_dropped,
            ),
            (
                names::DNS_TCP_CONNECTIONS_TOTAL,
                "TCP connections accepted.",
                totals.tcp_accepted,
            ),
            (
                names::DNS_TCP_REJECTED_TOTAL,
                "TCP connections closed at once by a connection limit.",
                totals.tcp_rejected,
            ),
            (
                names::DNS_TCP_TIMEOUTS_TOTAL,
                "TCP connections closed by the idle timeout.",
                totals.tcp_timeouts,
            ),
        ] {
            single(&mut encoder, name, help, Kind::Counter, value)?;
        }
        single(
            &mut encoder,
            names::DNS_TCP_OPEN,
            "TCP connections open now.",
            Kind::Gauge,
            totals.tcp_open(),
        )
    }
}

/// The latest durations of something (the last 4096), for exact quantiles in metrics.
#[derive(Debug, Default)]
pub(crate) struct LatencyWindow {
    samples: std::sync::Mutex<std::collections::VecDeque<f64>>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl LatencyWindow {
    const KEPT: usize = 4096;

    /// Records one duration.
    pub(crate) fn record(&self, duration: std::time::Duration) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == Self::KEPT {
            samples.pop_front();
        }
        samples.push_back(duration.as_secs_f64());
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    /// `(q, seconds)` for each quantile over the kept samples (empty: none yet), the
    /// count and the sum in seconds of every sample ever recorded.
    pub(crate) fn summary(&self, quantiles: &[f64]) -> (Vec<(f64, f64)>, u64, f64) {
        let mut sorted: Vec<f64> = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        sorted.sort_by(f64::total_cmp);
        let values = if sorted.is_empty() {
            Vec::new()
        } else {
            quantiles
                .iter()
                .map(|&q| {
                    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                    (q, sorted[rank - 1])
                })
                .collect()
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (values, self.count.load(Ordering::Relaxed), sum)
    }
}

/// A Prometheus histogram of durations: cumulative counts per fixed bucket, lock-free.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then +Inf.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

/// Buckets for decisions and probes: 0.5 ms … 10 s.
pub(crate) const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Self::new(LATENCY_BUCKETS)
    }
}

impl Histogram {
    /// A histogram with upper bounds `bounds` (ascending) and +Inf.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub(crate) fn observe(&self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    /// `(upper bound, count)` per bound (not cumulative), the sum in seconds and
    /// the count of every duration recorded (the +Inf bucket's).
    pub(crate) fn read(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let buckets = self.bounds.iter().copied().zip(counts.iter().copied());
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets.collect(), sum, counts.iter().sum())
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_count_each_duration_once() {
        let h = Histogram::new(&[0.01, 0.1]);
        for ms in [5, 50, 50, 500] {
            h.observe(Duration::from_millis(ms));
        }
        let (buckets, sum, count) = h.read();
        assert_eq!(buckets, [(0.01, 1), (0.1, 2)]);
        assert_eq!(count, 4);
        assert!((sum - 0.605).abs() < 1e-9, "{sum}");
    }
}
