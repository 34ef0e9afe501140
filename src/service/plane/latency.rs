//! The plane's part in latency steering: it averages this vantage point's own probe
//! round trips, keeps every vantage point's reported RTTs, feeds the pure
//! [`LatencyMemory`] at every decision (and when RTTs move or a hold ends), and hands
//! the choices to the answers through the health snapshot.
//!
//! What an RTT sample is, per check type: `tcp` — the TCP connect; `http` — request
//! start to response headers on a fresh connection (connect, TLS handshake for
//! https, time to first byte); `dns` — the query's round trip. `exec` and `postgres`
//! checks give none (their endpoints have no RTT; latency records then fall back to
//! failover order for them). Only passing probes give samples.

use std::collections::HashMap;
use std::time::Duration;

use super::Plane;
use crate::api::EndpointRtt;
use crate::config::{CheckKind, Config};
use crate::health::HealthSnapshot;
use crate::health::report::Verdict;
use crate::model::EndpointIndex;
use crate::policy::latency::{Ewma, LatencyMemory, RttTable};
use crate::probe::scheduler::ProbeEvent;

/// RTT state of a plane.
#[derive(Debug, Default)]
pub(crate) struct Steering {
    /// This process's averages per endpoint.
    ewma: HashMap<EndpointIndex, Ewma>,
    /// Every vantage point's latest RTTs (this one's included).
    rtts: RttTable,
    /// Latency records' choices per client region.
    memory: LatencyMemory,
    /// An RTT moved by more than the report threshold since the last look.
    moved: bool,
}

/// Whether probes of this kind measure a round trip.
fn measures(kind: &CheckKind) -> bool {
    matches!(
        kind,
        CheckKind::Tcp { .. } | CheckKind::Http(_) | CheckKind::Dns(_)
    )
}

impl Plane {
    /// Every RTT held, for status (and from there metrics and explain).
    pub(super) fn rtt_status(&self) -> Vec<EndpointRtt> {
        let config = &self.config;
        self.steering
            .rtts
            .all()
            .into_iter()
            .filter_map(|(v, e, us)| {
                let vantage = config.vantages.get(usize::from(v.0))?;
                Some(EndpointRtt {
                    vantage: vantage.name.clone(),
                    region: vantage
                        .region
                        .map(|r| config.regions[usize::from(r.0)].name.clone()),
                    endpoint: config.endpoint_label(e),
                    rtt_ms: f64::from(us) / 1000.0,
                })
            })
            .collect()
    }

    /// Folds a passing probe's latency into this vantage point's average.
    pub(super) fn rtt_sample(&mut self, event: &ProbeEvent) {
        let outcome = &event.outcome;
        if !outcome.ok || outcome.fault.is_some() || event.generation != self.board.generation() {
            return;
        }
        let config = &self.config;
        let Some(endpoint) = config.endpoints.get(event.endpoint.0 as usize) else {
            return;
        };
        let kind = config
            .pool(endpoint.pool)
            .check
            .map(|c| &config.checks[c.0 as usize].kind);
        if !kind.is_some_and(measures) {
            return;
        }
        let now = event.at.saturating_duration_since(self.started);
        let sample = outcome.latency.as_secs_f64() * 1e6;
        let window = config.health.rtt_window;
        let average = self
            .steering
            .ewma
            .entry(event.endpoint)
            .and_modify(|e| e.update(sample, now, window))
            .or_insert_with(|| Ewma::first(sample, now));
        let us = average.value_us.round().clamp(1.0, f64::from(u32::MAX)) as u32;
        if let Some(vantage) = config.health.vantage {
            if self
                .steering
                .rtts
                .set(vantage, event.endpoint, Some(us), now)
            {
                self.steering.moved = true;
                self.dirty = true;
            }
        }
    }

    /// Fills this vantage point's averages into its verdicts (for the reports).
    pub(super) fn fill_rtts(&self, verdicts: &mut [Verdict]) {
        for verdict in verdicts {
            verdict.rtt_us = self
                .config
                .endpoint_by_label(&verdict.endpoint)
                .and_then(|e| self.steering.ewma.get(&e))
                .map(|a| a.value_us.round().clamp(1.0, f64::from(u32::MAX)) as u32);
        }
    }

    /// Takes the RTTs of a report the board accepted: `(endpoint label, rtt)`; a full
    /// report replaces what its sender said before.
    pub(super) fn rtt_report(
        &mut self,
        vantage: &str,
        full: bool,
        rtts: Vec<(String, Option<u32>)>,
    ) {
        let Some(v) = self.config.vantage_by_name(vantage) else {
            return;
        };
        if Some(v) == self.config.health.vantage {
            return; // our own measurements come from our probes
        }
        let now = self.now();
        let mut moved = false;
        if full {
            let listed: Vec<EndpointIndex> = rtts
                .iter()
                .filter_map(|(label, _)| self.config.endpoint_by_label(label))
                .collect();
            for (vantage, endpoint, _) in self.steering.rtts.all() {
                if vantage == v && !listed.contains(&endpoint) {
                    moved |= self.steering.rtts.set(v, endpoint, None, now);
                }
            }
        }
        for (label, rtt) in rtts {
            if let Some(e) = self.config.endpoint_by_label(&label) {
                moved |= self.steering.rtts.set(v, e, rtt, now);
            }
        }
        self.steering.rtts.vouch(v, now);
        if moved {
            self.steering.moved = true;
            self.dirty = true;
        }
    }

    /// Forgets RTTs no report or probe vouched for within the staleness.
    pub(super) fn expire_rtts(&mut self) {
        let staleness = self.config.health.staleness;
        let now = self.now();
        let before = self.steering.rtts.all().len();
        self.steering.rtts.expire(now, staleness);
        if self.steering.rtts.all().len() != before {
            self.steering.moved = true;
            self.dirty = true;
        }
    }

    /// A new configuration: endpoints and records are indexed anew.
    pub(super) fn reset_steering(&mut self) {
        self.steering = Steering::default();
    }

    /// The health with every latency record's choice per client region, stepped at
    /// `now` from `health` (without choices) and the RTTs held.
    pub(super) fn steer(&mut self, config: &Config, health: HealthSnapshot) -> HealthSnapshot {
        if config.records.iter().all(|r| r.latency.is_none()) {
            return health;
        }
        let now = self.now();
        self.steering
            .memory
            .observe(config, &health, &self.steering.rtts, now);
        self.steering.moved = false;
        health.with_latency(self.steering.memory.choices(config))
    }

    /// Whether latency choices should be stepped without a health decision: an RTT
    /// moved, or a hold ends.
    pub(super) fn steering_due(&self, now: Duration) -> bool {
        if self.config.records.iter().all(|r| r.latency.is_none()) {
            return false;
        }
        self.steering.moved
            || self
                .steering
                .memory
                .next_due(&self.config)
                .is_some_and(|at| at <= now)
    }
}
