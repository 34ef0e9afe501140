//! Pushes this vantage point's verdicts to every server: on every change at once, and
//! every `push_interval` anyway (reports expire on the servers after `staleness`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::health::report::{Report, SIGNATURE_HEADER, Verdict, sign};

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Counters of the reporter.
#[derive(Debug, Default)]
pub struct ReporterMetrics {
    /// Reports delivered.
    pub sent: std::sync::atomic::AtomicU64,
    /// Deliveries that failed.
    pub failed: std::sync::atomic::AtomicU64,
}

/// Pushes reports until `shutdown`. `verdicts` carries the current verdict list; a
/// change triggers an immediate push.
pub async fn run(
    vantage: String,
    secret: Secret,
    servers: Vec<String>,
    push_interval: Duration,
    mut verdicts: watch::Receiver<Arc<Vec<Verdict>>>,
    metrics: Arc<ReporterMetrics>,
    shutdown: CancellationToken,
) {
    let client = match crate::probe::tls::http_client_builder()
        .no_proxy()
        .timeout(push_interval.max(Duration::from_millis(500)))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the report client; not reporting");
            return;
        }
    };
    // Starts above anything sent before a restart (µs since the epoch).
    let mut sequence = unix_ms().saturating_mul(1000);
    let mut ticker = tokio::time::interval(push_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            changed = verdicts.changed() => if changed.is_err() { return },
        }
        sequence += 1;
        let report = Report {
            vantage: vantage.clone(),
            sequence,
            sent_at_ms: unix_ms(),
            verdicts: verdicts.borrow_and_update().as_ref().clone(),
        };
        let Ok(body) = serde_json::to_vec(&report) else {
            continue;
        };
        let signature = sign(&secret, &body);
        let sends = servers.iter().cloned().map(|server| {
            let request = client
                .post(format!("{server}/v1/reports"))
                .header(SIGNATURE_HEADER, &signature)
                .header("content-type", "application/json")
                .body(body.clone());
            async move { (server, request.send().await) }
        });
        for (server, result) in futures_util::future::join_all(sends).await {
            use std::sync::atomic::Ordering::Relaxed;
            match result {
                Ok(response) if response.status().is_success() => {
                    metrics.sent.fetch_add(1, Relaxed);
                }
                Ok(response) => {
                    metrics.failed.fetch_add(1, Relaxed);
                    tracing::warn!(%server, status = %response.status(), "report refused");
                }
                Err(error) => {
                    metrics.failed.fetch_add(1, Relaxed);
                    tracing::debug!(%server, %error, "report not delivered");
                }
            }
        }
    }
}
