//! The reconcile loop: read → plan → guard → apply, once (`route53 plan|apply`) or
//! forever (`route53 sync`).
//!
//! ```text
//!   every sync_interval ─────────────┐
//!   health change ─(debounce)────────┼─▶ reconcile: read Route 53 → desired(health)
//!                                    │              → plan → guard → apply → metrics
//!   shutdown token ──────────────────┘
//! ```
//!
//! Health changes only matter to mirror-mode records; a configuration without any
//! waits for the next full run instead.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::apply::{ApplyError, ApplyReport, apply};
use super::desired::{DesiredState, desired_state};
use super::metrics::SyncMetrics;
use super::model::{CurrentState, ZoneState, canonical_name};
use super::plan::{Plan, PlanError, PlanOptions, plan};
use super::route53::{ApiError, ClientOptions, Route53Client};
use crate::config::{Config, Route53Config, Route53Mode};
use crate::health::HealthSnapshot;
use crate::zone::ZoneSet;

/// A burst of health changes is written at most this many `debounce` periods after
/// its first change.
pub(crate) const MAX_DEBOUNCE_FACTOR: u32 = 5;

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum AgentError {
    /// The configuration has no `[route53]` section.
    #[error("the configuration has no [route53] section")]
    NotConfigured,
    /// Reading from Route 53 failed.
    #[error("reading Route 53: {0}")]
    Read(ApiError),
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Applying failed or was refused.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// The outcome of one reconcile run.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RunReport {
    /// The plan computed.
    #[cfg_attr(
        not(feature = "testing"),
        expect(dead_code, reason = "read by the integration tests only")
    )]
    pub plan: Plan,
    /// What applying it did (None: nothing to apply).
    pub applied: Option<ApplyReport>,
}

/// The Route 53 sync agent for one configuration.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Agent {
    config: Arc<Config>,
    zones: Arc<ZoneSet>,
    route53: Route53Config,
    client: Arc<Route53Client>,
}

impl Agent {
    /// An agent using `client`.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(
        config: Arc<Config>,
        zones: Arc<ZoneSet>,
        client: Arc<Route53Client>,
    ) -> Result<Self, AgentError> {
        let route53 = config.route53.clone().ok_or(AgentError::NotConfigured)?;
        Ok(Self {
            config,
            zones,
            route53,
            client,
        })
    }

    /// Connects to Route 53 with the configuration's `[route53]` settings.
    pub(crate) async fn connect(
        config: Arc<Config>,
        zones: Arc<ZoneSet>,
        options: ClientOptions,
    ) -> Result<Self, AgentError> {
        let route53 = config.route53.clone().ok_or(AgentError::NotConfigured)?;
        let metrics = Arc::new(SyncMetrics::default());
        let client = Route53Client::connect(&route53, options, metrics).await;
        Self::new(config, zones, Arc::new(client))
    }

    /// The agent's metrics.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn metrics(&self) -> &Arc<SyncMetrics> {
        self.client.metrics()
    }

    /// Whether any record is synced in mirror mode (so health changes matter).
    pub(crate) fn has_mirror_records(&self) -> bool {
        self.config
            .records
            .iter()
            .any(|r| r.route53 == Route53Mode::Mirror)
    }

    /// Reads every configured hosted zone and every health check.
    pub(crate) async fn read(&self) -> Result<CurrentState, AgentError> {
        let mut zones = Vec::new();
        for hosted in &self.route53.zones {
            let zone = canonical_name(&hosted.zone);
            let id = match &hosted.hosted_zone_id {
                Some(id) => id.clone(),
                None => self
                    .client
                    .hosted_zone_id(&zone)
                    .await
                    .map_err(AgentError::Read)?,
            };
            let records = self
                .client
                .list_all_record_sets(&id)
                .await
                .map_err(AgentError::Read)?;
            zones.push(ZoneState {
                zone,
                hosted_zone_id: super::model::bare_id(&id).to_owned(),
                records,
            });
        }
        let health_checks = self
            .client
            .list_all_health_checks()
            .await
            .map_err(AgentError::Read)?;
        Ok(CurrentState {
            zones,
            health_checks,
        })
    }

    /// The desired state for a health snapshot.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn desired(&self, health: &HealthSnapshot) -> DesiredState {
        desired_state(&self.config, &self.zones, health)
    }

    /// Reads Route 53 and plans (a dry run).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn plan(
        &self,
        health: &HealthSnapshot,
        force: bool,
    ) -> Result<Plan, AgentError> {
        self.plan_desired(self.desired(health), force).await
    }

    /// Plans without live health: mirror-mode record sets are left exactly as Route 53
    /// has them (the plan says so in a warning), everything else is planned.
    pub(crate) async fn plan_without_live_health(&self, force: bool) -> Result<Plan, AgentError> {
        let mut desired = self.desired(&HealthSnapshot::from_config(&self.config));
        desired.freeze_mirror_records();
        self.plan_desired(desired, force).await
    }

    async fn plan_desired(&self, desired: DesiredState, force: bool) -> Result<Plan, AgentError> {
        let current = self.read().await?;
        let plan = plan(
            &current,
            &desired,
            &PlanOptions {
                max_update_percent: self.route53.max_update_percent,
                max_delete_percent: self.route53.max_delete_percent,
                ..PlanOptions::new(self.route53.owner_id.clone(), force)
            },
        )?;
        let (mut creates, mut updates, mut deletes) = (0, 0, 0);
        for zone in &plan.zones {
            let (c, u, d) = zone.counts();
            creates += c;
            updates += u;
            deletes += d;
        }
        self.metrics().plan_sizes(
            creates as u64,
            updates as u64,
            deletes as u64,
            plan.conflict_count() as u64,
            plan.health_checks.len() as u64,
        );
        tracing::info!(
            creates,
            updates,
            deletes,
            conflicts = plan.conflict_count(),
            health_checks = plan.health_checks.len(),
            refusals = plan.refusals.len(),
            unsupported = plan.unsupported.len(),
            "Route 53 plan"
        );
        Ok(plan)
    }

    /// Applies a plan.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn apply(&self, plan: &Plan) -> Result<ApplyReport, AgentError> {
        Ok(apply(self.client.clone(), plan).await?)
    }

    /// One full run: read → plan → guard → apply (when there is anything to do).
    /// Updates the run metrics.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn reconcile(
        &self,
        health: &HealthSnapshot,
        force: bool,
    ) -> Result<RunReport, AgentError> {
        let metrics = self.metrics().clone();
        let result = async {
            let plan = self.plan(health, force).await?;
            if plan.is_empty() && plan.unsupported.is_empty() {
                return Ok(RunReport {
                    plan,
                    applied: None,
                });
            }
            let applied = self.apply(&plan).await?;
            Ok(RunReport {
                plan,
                applied: Some(applied),
            })
        }
        .await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match &result {
            Ok(report) if report.applied.as_ref().is_none_or(ApplyReport::is_complete) => {
                metrics.run("ok", now);
                tracing::info!(
                    changes = report.applied.as_ref().map_or(0, |a| a.changes_applied),
                    "Route 53 in sync"
                );
            }
            Ok(report) => {
                metrics.run("error", now);
                if let Some(applied) = &report.applied {
                    tracing::warn!(summary = %applied.summary(), "Route 53 partly in sync");
                }
            }
            Err(AgentError::Apply(ApplyError::Refused(reason))) => {
                metrics.run("refused", now);
                tracing::error!(reason = %reason, "Route 53 plan refused; run `failoverd route53 apply --force` after reviewing it");
            }
            Err(error) => {
                metrics.run("error", now);
                tracing::error!(error = %error, "Route 53 reconcile failed");
            }
        }
        result
    }

    /// As [`Agent::run`], but with mirror-mode records nothing is written until the
    /// first live health arrives on `health` (its initial value is only the
    /// configuration's): a restart during an outage never writes config-derived
    /// health over the servers' live decision.
    pub(crate) async fn run_live(
        &self,
        mut health: watch::Receiver<Arc<HealthSnapshot>>,
        shutdown: CancellationToken,
    ) {
        if self.has_mirror_records() {
            tracing::info!("waiting for live health before writing mirror-mode records");
            let mut waited = 0u32;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = health.changed() => match changed {
                        Ok(()) => break,
                        Err(_) => return,
                    },
                    () = tokio::time::sleep(Duration::from_secs(10)) => {
                        waited += 10;
                        tracing::warn!(
                            waited_s = waited,
                            "still no live health from --health-url; nothing is written until it answers"
                        );
                    }
                }
            }
            tracing::info!("live health received");
        }
        self.run(health, shutdown).await;
    }

    /// Runs until `shutdown`: a full reconcile every `sync_interval` (and at start),
    /// and, for mirror-mode records, a reconcile `debounce` after health stops
    /// changing — but no later than [`MAX_DEBOUNCE_FACTOR`] × `debounce` after the
    /// first change, so a flapping endpoint cannot hold every update back.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn run(
        &self,
        mut health: watch::Receiver<Arc<HealthSnapshot>>,
        shutdown: CancellationToken,
    ) {
        let interval = self.route53.sync_interval;
        let debounce = self.route53.debounce;
        let mirror = self.has_mirror_records();
        let mut next_full = Instant::now();
        let mut pending: Option<Instant> = None;
        let mut first_change: Option<Instant> = None;
        let mut health_open = true;
        loop {
            let debounce_deadline =
                pending.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next_full) => {
                    let snapshot = health.borrow_and_update().clone();
                    let _ = self.reconcile(&snapshot, false).await;
                    next_full = Instant::now() + interval;
                    pending = None;
                    first_change = None;
                }
                () = tokio::time::sleep_until(debounce_deadline), if pending.is_some() => {
                    let snapshot = health.borrow_and_update().clone();
                    tracing::info!("health changed; updating mirror-mode records");
                    let _ = self.reconcile(&snapshot, false).await;
                    pending = None;
                    first_change = None;
                }
                changed = health.changed(), if health_open => {
                    match changed {
                        Ok(()) if mirror => {
                            let now = Instant::now();
                            let first = *first_change.get_or_insert(now);
                            let latest = first + debounce * MAX_DEBOUNCE_FACTOR;
                            pending = Some((now + debounce).min(latest));
                        }
                        Ok(()) => {}
                        Err(_) => health_open = false,
                    }
                }
            }
        }
    }
}
