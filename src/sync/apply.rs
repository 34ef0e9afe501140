//! Applying a plan: health checks first, then each zone's batches (one change in
//! flight per zone, each waited for until INSYNC), then health-check deletes.
//!
//! A batch Route 53 rejects with `InvalidChangeBatch` is bisected: each half is sent
//! on its own, recursively, until the offending unit (a record set with its marker)
//! or atomic group is isolated
//! and reported; everything else is applied. Route 53 batches are atomic, so every
//! failure leaves a state the next plan converges from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::batch::{self, Action, Change, ChangeGroup};
use super::model::{HealthCheckRef, HealthCheckSpec, RecordKey, RecordSet};
use super::owner::caller_reference;
use super::plan::{HealthCheckChange, Plan, ZonePlan};
use super::route53::{ApiError, Propagation, Route53Client};

/// Errors that stop an apply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum ApplyError {
    /// The plan is unsafe or has unsupported records.
    #[error("plan refused: {0}")]
    Refused(String),
    /// A request failed after retries.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A change Route 53 (or a local rule) rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct FailedChange {
    /// The zone.
    pub zone: String,
    /// CREATE, UPSERT or DELETE.
    pub action: Action,
    /// The record set.
    pub key: RecordKey,
    /// Why.
    pub error: String,
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ApplyReport {
    /// Health checks created.
    pub health_checks_created: usize,
    /// Health checks updated (settings or tags).
    pub health_checks_updated: usize,
    /// Health checks deleted.
    pub health_checks_deleted: usize,
    /// Record-set changes applied.
    pub changes_applied: usize,
    /// Requests that applied changes.
    pub batches: usize,
    /// Changes rejected, each with the reason.
    pub failed: Vec<FailedChange>,
    /// Health-check changes that failed.
    pub failed_health_checks: Vec<String>,
    /// Longest time a change took to become INSYNC (ms).
    pub propagation_ms: u64,
    /// Changes still PENDING when `change_timeout` ran out.
    pub not_in_sync: Vec<String>,
}

impl ApplyReport {
    /// Whether everything in the plan was applied.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.failed_health_checks.is_empty()
    }

    fn absorb(&mut self, other: Self) {
        self.changes_applied += other.changes_applied;
        self.batches += other.batches;
        self.failed.extend(other.failed);
        self.propagation_ms = self.propagation_ms.max(other.propagation_ms);
        self.not_in_sync.extend(other.not_in_sync);
    }

    /// A one-paragraph summary.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn summary(&self) -> String {
        let mut text = format!(
            "applied {} record changes in {} request(s); health checks: {} created, {} updated, \
             {} deleted; propagation {:.1}s",
            self.changes_applied,
            self.batches,
            self.health_checks_created,
            self.health_checks_updated,
            self.health_checks_deleted,
            self.propagation_ms as f64 / 1000.0
        );
        for failed in &self.failed {
            text.push_str(&format!(
                "\n  rejected: {} {} in {}: {}",
                failed.action.as_str(),
                failed.key,
                failed.zone,
                failed.error
            ));
        }
        for failed in &self.failed_health_checks {
            text.push_str(&format!("\n  health check failed: {failed}"));
        }
        for change in &self.not_in_sync {
            text.push_str(&format!("\n  not INSYNC before change_timeout: {change}"));
        }
        text
    }
}

/// Applies a plan. Refuses plans that are unsafe (unless forced) or have unsupported
/// records.
pub(crate) async fn apply(
    client: Arc<Route53Client>,
    plan: &Plan,
) -> Result<ApplyReport, ApplyError> {
    if !plan.may_apply() {
        let mut reasons: Vec<String> = plan
            .unsupported
            .iter()
            .map(|u| format!("{}: {}", u.record, u.reason))
            .collect();
        if !plan.forced {
            reasons.extend(plan.refusals.iter().map(ToString::to_string));
        }
        return Err(ApplyError::Refused(reasons.join("; ")));
    }
    let mut report = ApplyReport::default();
    let metrics = client.metrics().clone();
    // 1. Health checks: creates and updates.
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    for change in &plan.health_checks {
        match change {
            HealthCheckChange::Create { key, spec, tags } => {
                let reference = caller_reference(&plan.owner_id, key, client.random());
                let spec = &with_created_children(spec, &created);
                match client.create_health_check(&reference, spec, tags).await {
                    Ok(id) => {
                        tracing::info!(endpoint = %key, id = %id, "health check created");
                        metrics.health_check_changed("create");
                        report.health_checks_created += 1;
                        created.insert(key.clone(), id);
                    }
                    Err(error) if error.is_retryable() => return Err(error.into()),
                    Err(error) => report
                        .failed_health_checks
                        .push(format!("create {key}: {error}")),
                }
            }
            HealthCheckChange::Update {
                key,
                id,
                version,
                old,
                new,
                tags,
            } => {
                let new = &with_created_children(new, &created);
                let result = async {
                    if change.changes_settings() {
                        client.update_health_check(id, *version, old, new).await?;
                    }
                    client.tag_health_check(id, tags).await
                }
                .await;
                match result {
                    Ok(()) => {
                        tracing::info!(endpoint = %key, id = %id, "health check updated");
                        metrics.health_check_changed("update");
                        report.health_checks_updated += 1;
                    }
                    Err(error) if error.is_retryable() => return Err(error.into()),
                    Err(error) => report
                        .failed_health_checks
                        .push(format!("update {key} ({id}): {error}")),
                }
            }
            HealthCheckChange::Delete { .. } => {}
        }
    }
    // 2. Record sets, zone by zone (zones run concurrently; changes to one zone are
    //    serialised).
    let mut tasks = tokio::task::JoinSet::new();
    for zone in plan.zones.iter().filter(|z| !z.changes.is_empty()) {
        let zone = resolve_created(zone, &created);
        let client = client.clone();
        tasks.spawn(async move { apply_zone(&client, zone).await });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(zone_report)) => report.absorb(zone_report),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join_error) => {
                first_error.get_or_insert(ApiError::Transient(format!(
                    "zone task failed: {join_error}"
                )));
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error.into());
    }
    // 3. Health checks no longer used: deleted after the records stopped using them.
    for change in &plan.health_checks {
        if let HealthCheckChange::Delete { key, id, .. } = change {
            match client.delete_health_check(id).await {
                Ok(()) => {
                    tracing::info!(endpoint = key.as_deref().unwrap_or("-"), id = %id, "health check deleted");
                    metrics.health_check_changed("delete");
                    report.health_checks_deleted += 1;
                }
                Err(error) if error.is_retryable() => return Err(error.into()),
                Err(error) => report
                    .failed_health_checks
                    .push(format!("delete {id}: {error}")),
            }
        }
    }
    metrics.changes_failed(report.failed.len() as u64);
    Ok(report)
}

/// A calculated check's children created by this apply, by id.
fn with_created_children(
    spec: &HealthCheckSpec,
    created: &BTreeMap<String, String>,
) -> HealthCheckSpec {
    let mut spec = spec.clone();
    for child in &mut spec.children {
        if let HealthCheckRef::Key(key) = child
            && let Some(id) = created.get(key)
        {
            *child = HealthCheckRef::Id(id.clone());
        }
    }
    spec.children.sort();
    spec
}

/// Replaces health-check keys of checks created by this apply with their ids.
fn resolve_created(zone: &ZonePlan, created: &BTreeMap<String, String>) -> ZonePlan {
    let mut zone = zone.clone();
    let fix = |set: &mut RecordSet| {
        if let Some(HealthCheckRef::Key(key)) = &set.health_check
            && let Some(id) = created.get(key)
        {
            set.health_check = Some(HealthCheckRef::Id(id.clone()));
        }
    };
    for change in &mut zone.changes {
        match change {
            super::plan::RecordChange::Create { new }
            | super::plan::RecordChange::Update { new, .. } => fix(new),
            super::plan::RecordChange::Delete { .. } => {}
        }
    }
    zone
}

/// Applies one zone's changes: batches in order, one at a time.
async fn apply_zone(client: &Route53Client, zone: ZonePlan) -> Result<ApplyReport, ApiError> {
    let mut report = ApplyReport::default();
    let (batches, rejected) = batch::batches(&zone);
    for r in rejected {
        report.failed.push(FailedChange {
            zone: zone.zone.clone(),
            action: r.change.action,
            key: r.change.record.key.clone(),
            error: r.reason,
        });
    }
    // Changes whose health check could not be created cannot be sent.
    let (batches, unresolved) = batch::drop_unresolved(batches);
    for change in unresolved {
        report.failed.push(FailedChange {
            zone: zone.zone.clone(),
            action: change.action,
            key: change.record.key.clone(),
            error: "its health check could not be created".into(),
        });
    }
    let lock = client.zone_lock(&zone.hosted_zone_id);
    let _in_flight = lock.lock().await;
    for (index, batch) in batches.into_iter().enumerate() {
        let mut queue: VecDeque<Vec<ChangeGroup>> = VecDeque::from([batch.groups]);
        while let Some(groups) = queue.pop_front() {
            let changes: Vec<Change> = groups.iter().flat_map(|g| g.changes.clone()).collect();
            if changes.is_empty() {
                continue;
            }
            let comment = format!("failoverd batch {}", index + 1);
            match client
                .change_and_wait(&zone.hosted_zone_id, &changes, &comment)
                .await
            {
                Ok((info, propagation)) => {
                    report.batches += 1;
                    report.changes_applied += changes.len();
                    count_applied(client, &changes);
                    match propagation {
                        Propagation::InSync(elapsed) => {
                            report.propagation_ms = report.propagation_ms.max(millis(elapsed));
                        }
                        Propagation::TimedOut(_) => report.not_in_sync.push(info.id.clone()),
                    }
                    tracing::info!(zone = %zone.zone, change = %info.id, changes = changes.len(), "change batch applied");
                }
                Err(ApiError::InvalidChangeBatch(message)) => match batch::bisect(groups) {
                    Some((left, right)) => {
                        tracing::info!(zone = %zone.zone, changes = changes.len(), "batch rejected; bisecting");
                        queue.push_front(right);
                        queue.push_front(left);
                    }
                    None => {
                        for change in changes {
                            tracing::warn!(zone = %zone.zone, action = change.action.as_str(), record = %change.record.key, error = ?message, "change rejected");
                            report.failed.push(FailedChange {
                                zone: zone.zone.clone(),
                                action: change.action,
                                key: change.record.key.clone(),
                                error: message.clone(),
                            });
                        }
                    }
                },
                Err(error) => return Err(error),
            }
        }
    }
    Ok(report)
}

fn count_applied(client: &Route53Client, changes: &[Change]) {
    for change in changes {
        let action = match change.action {
            Action::Create => "create",
            Action::Upsert => "update",
            Action::Delete => "delete",
        };
        client.metrics().changes_applied(action, 1);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
