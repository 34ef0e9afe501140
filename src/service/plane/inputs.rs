//! The plane's inputs other than operator overrides: probe results, signed reports,
//! reloads; and what it tells the reporters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Plane, stamp, state_file};
use crate::config::Config;
use crate::dns::Snapshot;
use crate::dns::xfr::TransferState;
use crate::health::LocalFault;
use crate::health::board::{LocalChange, LocalObservation};
use crate::health::report::{self, ReportError};
use crate::ops::status::millis;
use crate::probe::reporter::{LocalVerdicts, unix_ms};
use crate::probe::scheduler::ProbeEvent;
use crate::zone::ZoneSet;

impl Plane {
    /// Adopts a new configuration: the board keeps state by label; the answers are
    /// rebuilt off the async workers; probers restart for the new generation (their
    /// queued results of the old one are ignored by the board).
    pub(super) async fn reload(
        &mut self,
        config: Arc<Config>,
        zones: ZoneSet,
        keys: Option<Arc<crate::dnssec::KeyRing>>,
        shutdown: &CancellationToken,
    ) {
        let next = self.board.generation() + 1;
        self.board.adopt(&config, next);
        self.reset_steering();
        self.effects = self.overrides.effects(&config, unix_ms());
        self.board.set_forced(&self.effects.forced);
        let (decided, _) = self.board.decide(self.now(), unix_ms());
        let health = self.published(&config, decided);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let build_config = config.clone();
        let build_health = health.clone();
        let transfer = self.transfer.clone();
        let signing = keys.map(|keys| crate::dnssec::Signing {
            keys,
            now: crate::dnssec::keys::unix_now(),
        });
        let built = tokio::task::spawn_blocking(move || {
            Snapshot::build_signed(
                build_config,
                zones,
                build_health,
                generation,
                signing.as_ref(),
            )
            .map(|snapshot| stamp(transfer.as_deref(), snapshot))
        })
        .await;
        match built {
            Ok(Err(error)) => {
                tracing::error!(%error, "signing the reloaded zones failed; keeping the current answers");
                return;
            }
            Ok(Ok(snapshot)) => {
                self.shared.store(snapshot);
                self.transfer.as_deref().map(TransferState::announce);
            }
            Err(error) => {
                tracing::error!(%error, "building the reloaded answers failed");
                return;
            }
        }
        self.published = health;
        self.saver
            .configure(state_file(self.role, &config), &self.metrics);
        self.config = config;
        self.start_probes(shutdown);
        self.dirty = true;
        self.save_state();
    }

    pub(super) fn probe_event(&mut self, event: ProbeEvent) {
        let counter = match event.outcome.fault {
            Some(fault) => {
                let i = LocalFault::ALL.iter().position(|f| *f == fault);
                i.map(|i| &self.metrics.abstentions[i])
            }
            None if event.outcome.ok => Some(&self.metrics.probes_ok),
            None => Some(&self.metrics.probes_failed),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.rtt_sample(&event);
        let at = event.at.saturating_duration_since(self.started);
        let reason = event.outcome.reason.clone();
        let latency = event.outcome.latency;
        if event.outcome.fault.is_none() {
            self.metrics.probe_latency.observe(latency);
        }
        let observation = LocalObservation {
            generation: event.generation,
            endpoint: event.endpoint,
            outcome: event.outcome,
            at,
        };
        let change = self.board.observe_local(observation);
        if matches!(change, LocalChange::Verdict(_) | LocalChange::Degraded(_)) {
            self.pending(event.at);
        }
        if event.generation == self.board.generation() {
            let _ = event.pace.send(self.board.pace(event.endpoint));
        }
        match change {
            LocalChange::Ignored | LocalChange::Unchanged => {}
            LocalChange::Reason => self.dirty = true,
            LocalChange::Abstained => {
                self.dirty = true;
                // The reports say why this vantage point's verdict stops being fresh.
                self.publish_verdicts(false);
                self.note_impairment();
            }
            LocalChange::Degraded(degraded) => {
                let why = self
                    .board
                    .local_probe(event.endpoint, at)
                    .and_then(|p| p.degraded.1)
                    .unwrap_or_else(|| "probes fine again".to_owned());
                crate::event!(
                    self.events,
                    info,
                    "probe_degraded",
                    "local degraded verdict changed",
                    vantage = self.board.local_name(),
                    endpoint = self.config.endpoint_label(event.endpoint),
                    degraded = degraded,
                    reason = why,
                    latency_ms = millis(latency),
                );
                self.dirty = true;
                self.publish_verdicts(true);
            }
            LocalChange::Verdict(state) => {
                crate::event!(
                    self.events,
                    info,
                    "probe_verdict",
                    "local verdict changed",
                    vantage = self.board.local_name(),
                    endpoint = self.config.endpoint_label(event.endpoint),
                    state = state,
                    reason = reason,
                    latency_ms = millis(latency),
                );
                self.dirty = true;
                self.publish_verdicts(true);
            }
        }
    }

    /// Announces, on the edge only, that this process's probes began abstaining (a
    /// local fault) or have not abstained for `staleness`.
    pub(super) fn note_impairment(&mut self) {
        let impaired = self.board.impaired(self.now());
        if impaired == self.impaired {
            return;
        }
        self.impaired = impaired;
        self.metrics.impaired.store(impaired, Ordering::Relaxed);
        self.dirty = true;
        if impaired {
            let (endpoint, reason) = self
                .board
                .last_abstention()
                .map(|(e, o)| (self.config.endpoint_label(e), o.reason.clone()))
                .unwrap_or_default();
            crate::event!(
                self.events,
                warn,
                "probe_impaired",
                "this vantage point's own probes fail for a local fault: they abstain instead of voting, and its verdicts go stale",
                vantage = self.board.local_name(),
                endpoint = endpoint,
                reason = reason,
            );
        } else {
            crate::event!(
                self.events,
                info,
                "probe_recovered",
                "no local fault for the staleness window; this vantage point's probes vote again",
                vantage = self.board.local_name(),
            );
        }
    }

    /// Publishes this process's verdicts to the reporters; `notify` when a verdict
    /// or reason changed (an immediate push), silently when only ages moved on.
    fn publish_verdicts(&mut self, notify: bool) {
        let now = self.now();
        let (mut verdicts, bounds): (Vec<_>, Vec<_>) =
            self.board.local_verdicts(now).into_iter().unzip();
        self.fill_rtts(&mut verdicts);
        let fresh = LocalVerdicts {
            verdicts,
            fresh_for_ms: bounds
                .into_iter()
                .map(|fresh_for: Duration| fresh_for.as_millis() as u64)
                .collect(),
            as_of: Instant::now(),
        };
        self.verdicts.send_if_modified(|current| {
            let changed = current.verdicts.len() != fresh.verdicts.len()
                || current.verdicts.iter().zip(&fresh.verdicts).any(|(a, b)| {
                    a.endpoint != b.endpoint || a.state != b.state || a.reason != b.reason
                });
            *current = Arc::new(fresh);
            changed || notify
        });
    }

    pub(super) fn refresh_verdict_ages(&mut self) {
        self.publish_verdicts(false);
    }

    pub(super) fn report(
        &mut self,
        body: &[u8],
        vantage: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(), ReportError> {
        let received = Instant::now();
        self.metrics
            .report_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let config = &self.config;
        let result = report::authenticate(body, vantage, signature, |name| {
            config
                .vantage_by_name(name)
                .and_then(|v| config.vantages[usize::from(v.0)].secret.clone())
        })
        .and_then(|report| {
            let full = report.base.is_none();
            let rtts: Vec<(String, Option<u32>)> = report
                .verdicts
                .iter()
                .map(|v| (v.endpoint.clone(), v.rtt_us))
                .collect();
            let sender = report.vantage.clone();
            self.board
                .accept_report(report, self.started.elapsed())
                .map(|changed| (changed, sender, full, rtts))
        });
        let result = result.map(|(changed, sender, full, rtts)| {
            self.rtt_report(&sender, full, rtts);
            changed
        });
        match result {
            Ok(changed) => {
                self.metrics
                    .reports_accepted
                    .fetch_add(1, Ordering::Relaxed);
                if changed {
                    self.pending(received);
                    self.dirty = true;
                }
                Ok(())
            }
            Err(error) => {
                if let Some(counter) = self.metrics.reports_rejected.get(error.label()) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // A restarted server re-challenges every sender once: not worth a warning.
                // Anyone can send one: at most a few lines (the metric counts each),
                // the vantage name from the request header escaped by Debug.
                if error == ReportError::Challenge {
                    tracing::debug!(vantage = ?vantage, reason = %error, "report re-challenged");
                } else {
                    crate::log_limited!(warn, "report rejected", vantage = ?vantage, reason = %error);
                }
                Err(error)
            }
        }
    }
}
