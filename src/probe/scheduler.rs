//! One task per probed endpoint: probe every `interval` (plus jitter, so probes of many
//! endpoints do not align) and send every outcome to the health plane. The anti-flap
//! machines live in the health board, so they outlive a reload's new probers; the
//! board answers each outcome with the pace of the next probe — `fast_interval` while
//! a verdict is in doubt (fast confirm), `down_interval` while down.
//!
//! A prober that cannot be prepared for one endpoint (its check's TLS CA file is
//! unreadable, say) stops nobody else: that endpoint's task abstains every interval,
//! with the reason (a local fault: see [`super::fault`]).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::check::{ProbeOutcome, Prober};
use crate::config::Config;
use crate::health::LocalFault;
use crate::health::machine::Pace;
use crate::model::{EndpointIndex, RandomSource, SplitMix64};

/// How long a prober waits for the board's pace before it assumes the normal one (the
/// plane answers in microseconds unless it is busy, e.g. building a reload).
const PACE_WAIT: Duration = Duration::from_millis(20);

/// One probe result of this vantage point.
#[derive(Debug)]
pub(crate) struct ProbeEvent {
    /// Config generation the prober was started for.
    pub generation: u64,
    /// The endpoint (index in that generation's config).
    pub endpoint: EndpointIndex,
    /// What the probe saw.
    pub outcome: ProbeOutcome,
    /// When the probe finished.
    pub at: Instant,
    /// Where the board's pace for the next probe goes.
    pub pace: oneshot::Sender<Pace>,
}

/// Starts a probing task for every endpoint whose pool has a check.
pub(crate) fn spawn(
    config: &Config,
    generation: u64,
    events: mpsc::UnboundedSender<ProbeEvent>,
    shutdown: CancellationToken,
    seed: u64,
) -> JoinSet<()> {
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
        let prober = Prober::new(check, endpoint, &label, source).map_err(|error| {
            tracing::error!(
                endpoint = %label,
                %error,
                "cannot prepare this endpoint's probe; this vantage point abstains on it"
            );
            format!("local fault: client setup: {error}")
        });
        let interval = check.interval;
        let (fast, down) = (check.fast_interval, check.down_interval);
        let jitter = check.jitter;
        let events = events.clone();
        let shutdown = shutdown.clone();
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.spawn(async move {
            // Spread the first probes over one interval.
            let mut next = started + random_delay(&mut rng, interval);
            let mut spread = jitter;
            loop {
                let at = next + random_delay(&mut rng, spread);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                }
                let started = Instant::now();
                let outcome = match &prober {
                    Ok(prober) => tokio::select! {
                        _ = shutdown.cancelled() => return,
                        outcome = prober.probe() => outcome,
                    },
                    Err(reason) => ProbeOutcome::abstention(
                        LocalFault::ClientSetup,
                        Duration::ZERO,
                        reason.clone(),
                    ),
                };
                let (pace_tx, pace_rx) = oneshot::channel();
                let event = ProbeEvent {
                    generation,
                    endpoint: index,
                    outcome,
                    at: Instant::now(),
                    pace: pace_tx,
                };
                if events.send(event).is_err() {
                    return;
                }
                let pace = tokio::time::timeout(PACE_WAIT, pace_rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(Pace::Normal);
                let delay = match pace {
                    Pace::Normal => interval,
                    Pace::Fast => fast,
                    Pace::Down => down,
                };
                // Jitter in proportion to the pace, so fast probes stay fast.
                spread = jitter.mul_f64(delay.as_secs_f64() / interval.as_secs_f64());
                next = (started + delay).max(Instant::now());
            }
        });
    }
    tasks
}

fn random_delay(rng: &mut SplitMix64, max: Duration) -> Duration {
    let max_us = max.as_micros() as u64;
    if max_us == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(rng.below(max_us))
    }
}
