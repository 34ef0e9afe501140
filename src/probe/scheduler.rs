//! One task per probed endpoint: probe every `interval` (plus jitter, so probes of many
//! endpoints do not align) and send every outcome to the health plane. The anti-flap
//! machines live in the health board, so they outlive a reload's new probers.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::check::{ProbeError, ProbeOutcome, Prober};
use crate::config::Config;
use crate::model::{EndpointIndex, RandomSource, SplitMix64};

/// One probe result of this vantage point.
#[derive(Clone, Debug)]
pub struct ProbeEvent {
    /// Config generation the prober was started for.
    pub generation: u64,
    /// The endpoint (index in that generation's config).
    pub endpoint: EndpointIndex,
    /// What the probe saw.
    pub outcome: ProbeOutcome,
    /// When the probe finished.
    pub at: Instant,
}

/// Starts a probing task for every endpoint whose pool has a check.
pub fn spawn(
    config: &Config,
    generation: u64,
    events: mpsc::UnboundedSender<ProbeEvent>,
    shutdown: CancellationToken,
    seed: u64,
) -> Result<JoinSet<()>, ProbeError> {
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let source = config
        .health
        .vantage
        .and_then(|v| config.vantages[usize::from(v.0)].source_address);
    for (i, endpoint) in config.endpoints.iter().enumerate() {
        let index = EndpointIndex(i as u32);
        let Some(check) = config.endpoint_check(index) else {
            continue;
        };
        let label = config.endpoint_label(index);
        let prober = Prober::new(check, endpoint, &label, source)?;
        let interval = check.interval;
        let jitter = check.jitter;
        let events = events.clone();
        let shutdown = shutdown.clone();
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.spawn(async move {
            // Spread the first probes over one interval.
            let mut next = started + random_delay(&mut rng, interval);
            loop {
                let at = next + random_delay(&mut rng, jitter);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                }
                let outcome = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    outcome = prober.probe() => outcome,
                };
                let event = ProbeEvent {
                    generation,
                    endpoint: index,
                    outcome,
                    at: Instant::now(),
                };
                if events.send(event).is_err() {
                    return;
                }
                next += interval;
                let now = Instant::now();
                if next + interval < now {
                    next = now; // fell behind (suspended): do not burst to catch up
                }
            }
        });
    }
    Ok(tasks)
}

fn random_delay(rng: &mut SplitMix64, max: Duration) -> Duration {
    let max_us = max.as_micros() as u64;
    if max_us == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(rng.below(max_us))
    }
}
