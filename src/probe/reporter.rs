//! Pushes this vantage point's verdicts to every server, one task per server so an
//! unreachable server delays nobody else: on every change at once, and every
//! `push_interval` anyway (reports expire on the servers after `staleness`).
//!
//! Each report carries the receiving server's challenge (learnt from its responses;
//! a server that restarted answers 409 with its new one, and the report is sent again
//! at once) and the next sequence number of this process's session. Reports are
//! deltas on the last one the server accepted (see [`crate::health::report`]): only
//! changed verdicts, and those whose prober has not refreshed them for nearly as long
//! as they stay fresh, with their age; a full report after a resync, a change of the endpoint
//! set, and every [`FULL_REPORT_EVERY`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::health::report::{
    CHALLENGE_HEADER, ERROR_HEADER, FULL_REPORT_EVERY, Report, SIGNATURE_HEADER, VANTAGE_HEADER,
    Verdict, sign,
};
use crate::model::HealthState;

pub use crate::runtime::clock::unix_ms;

/// How often a server that stays unreachable is warned about again.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// This process's verdicts as the plane last published them; `age_ms` is as of `as_of`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalVerdicts {
    /// Verdicts, ages as of `as_of`.
    pub verdicts: Vec<Verdict>,
    /// Per verdict, how long (ms) a verdict on it stays fresh on the servers: one
    /// older than that less two push intervals is reported with its age.
    pub fresh_for_ms: Vec<u64>,
    /// When the ages were computed.
    pub as_of: Instant,
}

impl Default for LocalVerdicts {
    fn default() -> Self {
        Self {
            verdicts: Vec::new(),
            fresh_for_ms: Vec::new(),
            as_of: Instant::now(),
        }
    }
}

/// Delivery counters of one server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Reports accepted.
    pub delivered: AtomicU64,
    /// Reports the server refused (4xx/5xx).
    pub refused: AtomicU64,
    /// Reports that could not be delivered (connection, timeout).
    pub failed: AtomicU64,
    /// Whether the last attempt succeeded.
    pub reachable: AtomicBool,
}

/// Counters of the reporter, per server URL.
#[derive(Debug, Default)]
pub struct ReporterMetrics {
    servers: Mutex<BTreeMap<String, Arc<ServerStats>>>,
}

impl ReporterMetrics {
    /// The counters of `server` (created on first use).
    pub fn server(&self, server: &str) -> Arc<ServerStats> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.entry(server.to_owned()).or_default().clone()
    }

    /// Keeps only the counters of `servers` (after a reload).
    pub fn retain(&self, servers: &[String]) {
        let mut map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|name, _| servers.contains(name));
    }

    /// Every server's counters, by URL.
    pub fn snapshot(&self) -> Vec<(String, Arc<ServerStats>)> {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Who reports, and how often.
#[derive(Clone, Debug)]
pub struct ReporterSettings {
    /// This vantage point.
    pub vantage: String,
    /// Its secret.
    pub secret: Secret,
    /// Random id of this process (survives reloads).
    pub session: u64,
    /// Next sequence number of the session (shared by every server's task and kept
    /// across reloads, so sequences only grow).
    pub sequence: Arc<AtomicU64>,
    /// Push period.
    pub push_interval: Duration,
    /// The servers' staleness: the longest back-off while a server is unreachable.
    pub staleness: Duration,
}

/// Starts one reporting task per server; they stop with `shutdown`.
pub fn spawn(
    settings: &ReporterSettings,
    servers: &[String],
    verdicts: &watch::Receiver<Arc<LocalVerdicts>>,
    metrics: &Arc<ReporterMetrics>,
    shutdown: &CancellationToken,
) {
    metrics.retain(servers);
    let client = match crate::runtime::http::http_client_builder()
        .no_proxy()
        // A full report of many endpoints to a busy server takes a while; one slower
        // than half the staleness is of no use. (Each server has its own task, so a
        // slow one delays nobody else.)
        .timeout((settings.staleness / 2).clamp(Duration::from_secs(1), Duration::from_secs(10)))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the report client; not reporting");
            return;
        }
    };
    for server in servers {
        let task = ServerReporter {
            server: server.clone(),
            settings: settings.clone(),
            client: client.clone(),
            stats: metrics.server(server),
            challenge: String::new(),
            acked: None,
            last_full: None,
            need_full: true,
        };
        tokio::spawn(task.run(verdicts.clone(), shutdown.clone()));
    }
}

/// What one delivery came to.
enum Delivery {
    Accepted,
    /// The server wants another challenge (it restarted, or ours expired) or a full
    /// report: send again at once.
    Rechallenged,
    Refused(reqwest::StatusCode, String),
    Failed(String),
}

/// What a report said per endpoint: state, whether degraded, reason, whether
/// reported as not refreshed, and the RTT the server holds.
type Said = HashMap<String, (HealthState, bool, String, bool, Option<u32>)>;

struct ServerReporter {
    server: String,
    settings: ReporterSettings,
    client: reqwest::Client,
    stats: Arc<ServerStats>,
    challenge: String,
    /// The last report the server accepted: its sequence and what it said (state,
    /// reason, whether reported as not refreshed) per endpoint.
    acked: Option<(u64, Said)>,
    last_full: Option<Instant>,
    need_full: bool,
}

impl ServerReporter {
    async fn run(
        mut self,
        mut verdicts: watch::Receiver<Arc<LocalVerdicts>>,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(self.settings.push_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        let mut retry_at = Instant::now();
        let mut failures: u64 = 0;
        let mut warned_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
                changed = verdicts.changed() => if changed.is_err() { return },
            }
            if Instant::now() < retry_at {
                continue; // backing off an unreachable server
            }
            let current = verdicts.borrow_and_update().clone();
            let mut outcome = self.deliver(&current).await;
            if matches!(outcome, Delivery::Rechallenged) {
                outcome = self.deliver(&current).await;
            }
            use Ordering::Relaxed;
            let problem = match outcome {
                Delivery::Accepted => {
                    self.stats.delivered.fetch_add(1, Relaxed);
                    None
                }
                Delivery::Rechallenged => {
                    self.stats.refused.fetch_add(1, Relaxed);
                    Some("the server refused our challenge twice".to_owned())
                }
                Delivery::Refused(status, text) => {
                    self.stats.refused.fetch_add(1, Relaxed);
                    Some(format!("refused with {status}: {}", text.trim()))
                }
                Delivery::Failed(error) => {
                    self.stats.failed.fetch_add(1, Relaxed);
                    Some(error)
                }
            };
            match problem {
                None => {
                    if failures > 0 {
                        tracing::info!(server = %self.server, failures, "reports reach the server again");
                    }
                    self.stats.reachable.store(true, Relaxed);
                    failures = 0;
                    warned_at = None;
                    backoff = Duration::ZERO;
                }
                Some(problem) => {
                    self.stats.reachable.store(false, Relaxed);
                    failures += 1;
                    let now = Instant::now();
                    if warned_at.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                        tracing::warn!(
                            server = %self.server,
                            failures,
                            // May quote the server's answer: escaped.
                            problem = ?problem,
                            "cannot report to server"
                        );
                        warned_at = Some(now);
                    }
                    let cap = (self.settings.staleness / 2).max(self.settings.push_interval);
                    backoff = (backoff * 2).clamp(self.settings.push_interval, cap);
                    retry_at = now + backoff;
                }
            }
        }
    }

    async fn deliver(&mut self, current: &LocalVerdicts) -> Delivery {
        let now = Instant::now();
        let extra = now.saturating_duration_since(current.as_of).as_millis() as u64;
        let margin = 2 * self.settings.push_interval.as_millis() as u64;
        let entries: Vec<(Verdict, bool)> = current
            .verdicts
            .iter()
            .zip(
                current
                    .fresh_for_ms
                    .iter()
                    .chain(std::iter::repeat(&u64::MAX)),
            )
            .map(|(v, &fresh_for)| {
                let stall_after = fresh_for.saturating_sub(margin);
                let age_ms = v.age_ms + extra;
                let verdict = Verdict {
                    age_ms,
                    ..v.clone()
                };
                (verdict, age_ms > stall_after)
            })
            .collect();
        let same_endpoints = self.acked.as_ref().is_some_and(|(_, acked)| {
            acked.len() == entries.len()
                && entries.iter().all(|(v, _)| acked.contains_key(&v.endpoint))
        });
        let full = self.need_full
            || !same_endpoints
            || self
                .last_full
                .is_none_or(|at| now.duration_since(at) >= FULL_REPORT_EVERY);
        let (base, verdicts): (Option<u64>, Vec<Verdict>) = match (&self.acked, full) {
            (Some((base, acked)), false) => {
                let changed = entries
                    .iter()
                    .filter(|(v, stalled)| {
                        acked.get(&v.endpoint).is_none_or(
                            |(state, degraded, reason, was_stalled, rtt)| {
                                *state != v.state
                                    || *degraded != v.degraded
                                    || *reason != v.reason
                                    || *stalled
                                    || *was_stalled
                                    || crate::policy::latency::moved(*rtt, v.rtt_us)
                            },
                        )
                    })
                    .map(|(v, _)| v.clone())
                    .collect();
                (Some(*base), changed)
            }
            _ => (None, entries.iter().map(|(v, _)| v.clone()).collect()),
        };
        let sequence = self.settings.sequence.fetch_add(1, Ordering::Relaxed);
        let verdicts_degraded = verdicts.iter().any(|v| v.degraded);
        let report = Report {
            vantage: self.settings.vantage.clone(),
            session: self.settings.session,
            sequence,
            challenge: self.challenge.clone(),
            sent_at_ms: unix_ms(),
            base,
            verdicts,
        };
        let Ok(body) = serde_json::to_vec(&report) else {
            return Delivery::Failed("cannot encode the report".to_owned());
        };
        let signature = sign(&self.settings.secret, &body);
        let request = self
            .client
            .post(format!("{}/v1/reports", self.server))
            .header(SIGNATURE_HEADER, signature)
            .header(VANTAGE_HEADER, &self.settings.vantage)
            .header("content-type", "application/json")
            .body(body);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Delivery::Failed(error.to_string()),
        };
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let offered = header(CHALLENGE_HEADER);
        let error = header(ERROR_HEADER);
        let conflict = status == reqwest::StatusCode::CONFLICT;
        let rechallenged = conflict && offered.as_ref().is_some_and(|c| *c != self.challenge);
        let resync = conflict && error.as_deref() == Some("resync");
        if let Some(challenge) = offered {
            self.challenge = challenge;
        }
        if status.is_success() {
            // A delta leaves out RTTs that barely moved: the server keeps the one
            // it was last sent, so that is what the next delta compares with.
            let sent: std::collections::HashSet<&str> = report
                .verdicts
                .iter()
                .map(|v| v.endpoint.as_str())
                .collect();
            let said = entries
                .into_iter()
                .map(|(v, stalled)| {
                    let rtt = if sent.contains(v.endpoint.as_str()) {
                        v.rtt_us
                    } else {
                        self.acked
                            .as_ref()
                            .and_then(|(_, acked)| acked.get(&v.endpoint))
                            .and_then(|said| said.4)
                    };
                    (v.endpoint, (v.state, v.degraded, v.reason, stalled, rtt))
                })
                .collect();
            self.acked = Some((sequence, said));
            if full {
                self.last_full = Some(now);
            }
            self.need_full = false;
            Delivery::Accepted
        } else if resync {
            self.need_full = true;
            Delivery::Rechallenged
        } else if rechallenged {
            Delivery::Rechallenged
        } else {
            let mut text = response.text().await.unwrap_or_default();
            if error.as_deref() == Some("malformed") && verdicts_degraded {
                // A server of an earlier version does not know degraded verdicts.
                text.push_str(
                    " (this report carries a degraded verdict, which servers before degraded endpoints refuse: upgrade the servers first)",
                );
            }
            Delivery::Refused(status, text)
        }
    }
}
