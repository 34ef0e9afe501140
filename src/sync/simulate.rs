//! Test support: Route 53's documented semantics for change batches, as a pure model
//! (the rules moto does not enforce), used to check plans and batches.
//!
//! - a batch is atomic: all changes apply or none;
//! - CREATE fails when the (name, type, set identifier) exists;
//! - DELETE fails unless the record set matches exactly (TTL, values, routing, …);
//! - UPSERT creates or replaces;
//! - an alias must point at a record set that exists in the zone;
//! - every batch is within the request limits.

use std::collections::BTreeMap;

use super::batch::{Action, Batch};
use super::model::{CurrentState, HealthCheckRef, RecordKey, RecordSet, canonical_name};
use super::plan::{HealthCheckChange, Plan};

/// Applies one batch to a zone's record sets, atomically.
pub(crate) fn apply_batch(
    records: &mut BTreeMap<RecordKey, RecordSet>,
    batch: &Batch,
) -> Result<(), String> {
    if !batch.within_limits() {
        return Err(format!("batch over the limits: {:?}", batch.cost()));
    }
    let mut next = records.clone();
    for change in batch.changes() {
        let key = &change.record.key;
        match change.action {
            Action::Create => {
                if next.contains_key(key) {
                    return Err(format!("CREATE {key}: already exists"));
                }
                next.insert(key.clone(), change.record.clone());
            }
            Action::Upsert => {
                next.insert(key.clone(), change.record.clone());
            }
            Action::Delete => match next.get(key) {
                Some(existing) if *existing == change.record => {
                    next.remove(key);
                }
                Some(_) => return Err(format!("DELETE {key}: values do not match")),
                None => return Err(format!("DELETE {key}: not found")),
            },
        }
        if change.action != Action::Delete
            && let Some(alias) = &change.record.alias
        {
            let target = canonical_name(&alias.dns_name);
            if !next.keys().any(|k| k.name == target) {
                return Err(format!("{key}: alias target {target} does not exist"));
            }
        }
    }
    *records = next;
    Ok(())
}

/// Applies a whole plan to a copy of `current` the way the agent does (health
/// checks, then every zone's batches, then health-check deletes); `batch_limit`
/// stops after that many batches per zone (a run that failed midway).
pub(crate) fn apply_plan(
    current: &CurrentState,
    plan: &Plan,
    batch_limit: usize,
) -> Result<CurrentState, String> {
    let mut state = current.clone();
    let mut created = BTreeMap::new();
    for change in &plan.health_checks {
        match change {
            HealthCheckChange::Create { key, spec, tags } => {
                let id = format!("hc-{}-{}", key.replace('/', "-"), state.health_checks.len());
                created.insert(key.clone(), id.clone());
                state.health_checks.push(super::model::ExistingHealthCheck {
                    id,
                    caller_reference: "test".into(),
                    version: 1,
                    spec: spec.clone(),
                    tags: tags.clone(),
                });
            }
            HealthCheckChange::Update { id, new, tags, .. } => {
                let check = state
                    .health_checks
                    .iter_mut()
                    .find(|c| &c.id == id)
                    .ok_or_else(|| format!("no health check {id}"))?;
                check.spec = new.clone();
                check.version += 1;
                check.tags.extend(tags.clone());
            }
            HealthCheckChange::Delete { .. } => {}
        }
    }
    for zone_plan in &plan.zones {
        let zone = state
            .zones
            .iter_mut()
            .find(|z| z.zone == zone_plan.zone)
            .ok_or("zone missing")?;
        let mut records: BTreeMap<RecordKey, RecordSet> = zone
            .records
            .iter()
            .map(|r| (r.key.clone(), r.clone()))
            .collect();
        let mut resolved = zone_plan.clone();
        for change in &mut resolved.changes {
            if let super::plan::RecordChange::Create { new }
            | super::plan::RecordChange::Update { new, .. } = change
                && let Some(HealthCheckRef::Key(key)) = &new.health_check
            {
                let id = created.get(key).ok_or("unresolved health check")?;
                new.health_check = Some(HealthCheckRef::Id(id.clone()));
            }
        }
        let (batches, rejected) = super::batch::batches(&resolved);
        if !rejected.is_empty() {
            return Err(format!("rejected locally: {rejected:?}"));
        }
        for batch in batches.iter().take(batch_limit) {
            apply_batch(&mut records, batch)?;
        }
        zone.records = records.into_values().collect();
    }
    if batch_limit == usize::MAX {
        for change in &plan.health_checks {
            if let HealthCheckChange::Delete { id, .. } = change {
                state.health_checks.retain(|c| &c.id != id);
            }
        }
    }
    Ok(state)
}
