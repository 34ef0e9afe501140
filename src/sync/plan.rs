//! The planner: current Route 53 state + desired state → a [`Plan`] of creates,
//! updates and deletes. Pure: no I/O, no clock; the same inputs always give the same
//! plan, in the same order.
//!
//! Steps, in order:
//! 1. Health checks: ours are those tagged with our owner id (or, untagged, created
//!    with our caller-reference prefix). Each desired check keeps a matching existing
//!    check, updates one in place (protocol and interval cannot change), or is
//!    created; every other check of ours is deleted.
//! 2. Per zone, ownership: markers (see [`super::owner`]) name the record sets we own.
//! 3. Each desired record set is resolved (alias zone id, health-check ids) and
//!    compared with the current one: equal → nothing; owned → update; absent →
//!    create, unless a foreign record set holds the key or shares its name and type
//!    (or a CNAME is involved), which is a conflict: reported, never overwritten.
//! 4. Owned record sets no longer desired are deleted, with the exact current values.
//! 5. Safety: more than 30 % of owned record sets updated or deleted (once there are
//!    10 or more), or any change to the apex NS/SOA, refuses the plan unless forced.
//!    Changes health alone explains are not counted: those of a set whose marker
//!    holds the same configuration fingerprint as the record it is planned from
//!    (same configuration, different health or overrides). A configuration edit —
//!    a TTL, the pools' order, a weight, an endpoint — always counts, in native and
//!    mirror mode alike.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::desired::{DesiredRecord, DesiredState, RecordSource, Unsupported};
use super::model::{
    CurrentState, ExistingHealthCheck, HealthCheckRef, HealthCheckSpec, RecordKey, RecordSet,
    RecordType, bare_id,
};
use super::owner::{
    TAG_ENDPOINT, TAG_NAME, TAG_OWNER, caller_reference_prefix, is_marker_name, marker_for,
    parse_marker,
};

/// Share of owned record sets a plan may update or delete without `--force`.
pub(crate) const MAX_CHANGE_PERCENT: usize = 30;
/// Owned record sets below which the change share is not checked.
pub(crate) const MIN_RECORDS_FOR_GUARD: usize = 10;

/// Errors of planning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum PlanError {
    /// A desired zone was not read.
    #[error("hosted zone {0} was not read")]
    MissingZone(String),
}

/// Settings of a plan.
#[derive(Clone, Debug)]
pub(crate) struct PlanOptions {
    /// Our owner id.
    pub owner_id: String,
    /// Whether the safety guard is overridden.
    pub force: bool,
    /// Most owned record sets (percent) updated without `--force`.
    pub max_update_percent: u32,
    /// Most owned record sets (percent) deleted without `--force`.
    pub max_delete_percent: u32,
}

impl PlanOptions {
    /// Options with the default guard (30 % each).
    pub(crate) fn new(owner_id: impl Into<String>, force: bool) -> Self {
        Self {
            owner_id: owner_id.into(),
            force,
            max_update_percent: MAX_CHANGE_PERCENT as u32,
            max_delete_percent: MAX_CHANGE_PERCENT as u32,
        }
    }
}

/// A change to one record set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // Plans are small; boxing would only add noise.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum RecordChange {
    /// Create a record set that does not exist.
    Create {
        /// The record set.
        new: RecordSet,
    },
    /// Replace an owned record set (UPSERT).
    Update {
        /// As read.
        old: RecordSet,
        /// As desired.
        new: RecordSet,
    },
    /// Delete an owned record set, with the values just read.
    Delete {
        /// As read.
        old: RecordSet,
    },
}

impl RecordChange {
    /// The key changed.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn key(&self) -> &RecordKey {
        match self {
            Self::Create { new } | Self::Update { new, .. } => &new.key,
            Self::Delete { old } => &old.key,
        }
    }

    /// Whether this changes an ownership marker.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn is_marker(&self) -> bool {
        is_marker_name(&self.key().name) && self.key().record_type == RecordType::Txt
    }

    /// `create`, `update` or `delete`.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn action_name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Delete { .. } => "delete",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Create { .. } => 0,
            Self::Update { .. } => 1,
            Self::Delete { .. } => 2,
        }
    }
}

/// A foreign record set in the way of a desired one; left untouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Conflict {
    /// The desired record set's key.
    pub key: RecordKey,
    /// The foreign record set(s) in the way.
    pub foreign: Vec<RecordKey>,
    /// Why it is a conflict.
    pub reason: String,
}

/// Why a plan is refused without `--force`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Refusal {
    /// Too large a share of owned record sets would change.
    TooMuchChange {
        /// The zone.
        zone: String,
        /// Owned record sets (markers excluded).
        owned: usize,
        /// `update` or `delete`.
        action: String,
        /// Of those, updated (or deleted) by configuration edits (changes health or
        /// overrides alone explain are not counted).
        changing: usize,
        /// The limit (`[route53] max_update_percent` / `max_delete_percent`).
        limit_percent: u32,
    },
    /// The apex NS or SOA would change.
    ApexChange {
        /// The record set.
        key: RecordKey,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooMuchChange {
                zone,
                owned,
                action,
                changing,
                limit_percent,
            } => write!(
                f,
                "{zone}: {changing} of {owned} owned record sets would be {action}d \
                 (more than {limit_percent} %, [route53] max_{action}_percent) by \
                 configuration edits (changes that health alone explains are not counted)"
            ),
            Self::ApexChange { key } => write!(f, "{key}: the zone apex NS/SOA would change"),
        }
    }
}

/// Changes to one hosted zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ZonePlan {
    /// Canonical zone name.
    pub zone: String,
    /// Hosted zone id.
    pub hosted_zone_id: String,
    /// Record set changes, ordered by key then action.
    pub changes: Vec<RecordChange>,
    /// Desired record sets blocked by foreign ones.
    pub conflicts: Vec<Conflict>,
    /// Owned record sets before the change (markers excluded).
    pub owned_records: usize,
    /// Keys of changes that come from mirror-mode records.
    pub mirror_keys: BTreeSet<RecordKey>,
    /// Keys of updates and deletes that health (or an operator override) alone
    /// explains: the set's marker holds the configuration fingerprint its record
    /// still has. The safety guard does not count them; every other update or delete
    /// is a configuration edit and counts.
    pub health_driven: BTreeSet<RecordKey>,
}

impl ZonePlan {
    /// Counts of (creates, updates, deletes), markers excluded.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for change in self.changes.iter().filter(|c| !c.is_marker()) {
            match change {
                RecordChange::Create { .. } => counts.0 += 1,
                RecordChange::Update { .. } => counts.1 += 1,
                RecordChange::Delete { .. } => counts.2 += 1,
            }
        }
        counts
    }
}

/// A change to one health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
// A plan holds a handful of these, built once per run: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum HealthCheckChange {
    /// Create a check (and tag it).
    Create {
        /// Its key (endpoint label).
        key: String,
        /// Settings.
        spec: HealthCheckSpec,
        /// Tags to set.
        tags: BTreeMap<String, String>,
    },
    /// Update a check in place and/or fix its tags.
    Update {
        /// Its key.
        key: String,
        /// Route 53 id.
        id: String,
        /// Version read (optimistic locking).
        version: i64,
        /// Settings read.
        old: HealthCheckSpec,
        /// Settings wanted.
        new: HealthCheckSpec,
        /// Tags to add or change (empty: tags are right).
        tags: BTreeMap<String, String>,
    },
    /// Delete a check of ours that is no longer wanted (after records stop using it).
    Delete {
        /// Its key, if tagged.
        key: Option<String>,
        /// Route 53 id.
        id: String,
        /// Settings read.
        old: HealthCheckSpec,
    },
}

impl HealthCheckChange {
    /// Whether the settings (not only tags) change.
    pub(crate) fn changes_settings(&self) -> bool {
        match self {
            Self::Update { old, new, .. } => old != new && !new.satisfied_by(old),
            _ => true,
        }
    }
}

/// A full plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Plan {
    /// Our owner id.
    pub owner_id: String,
    /// Health-check changes (creates and updates run first, deletes last).
    pub health_checks: Vec<HealthCheckChange>,
    /// Per-zone record changes.
    pub zones: Vec<ZonePlan>,
    /// Records that cannot be expressed (apply refuses while there are any).
    pub unsupported: Vec<Unsupported>,
    /// Why the plan is unsafe (apply refuses unless forced).
    pub refusals: Vec<Refusal>,
    /// Whether `--force` overrides the refusals.
    pub forced: bool,
    /// Notes that do not stop the plan.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether nothing would change.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn is_empty(&self) -> bool {
        self.health_checks.is_empty() && self.zones.iter().all(|z| z.changes.is_empty())
    }

    /// Record-set changes across zones (markers included).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn record_change_count(&self) -> usize {
        self.zones.iter().map(|z| z.changes.len()).sum()
    }

    /// Conflicts across zones.
    pub(crate) fn conflict_count(&self) -> usize {
        self.zones.iter().map(|z| z.conflicts.len()).sum()
    }

    /// Whether apply may go ahead: no unsupported records, and no refusals unless
    /// forced.
    pub(crate) fn may_apply(&self) -> bool {
        self.unsupported.is_empty() && (self.refusals.is_empty() || self.forced)
    }

    /// Renders the plan as JSON.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Renders the plan as a human-readable table.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Route 53 plan (owner {})", self.owner_id);
        if self.is_empty() {
            let _ = writeln!(out, "No changes.");
        }
        if !self.health_checks.is_empty() {
            let _ = writeln!(out, "\nHealth checks:");
            for change in &self.health_checks {
                let line = match change {
                    HealthCheckChange::Create { key, spec, .. } => {
                        format!("  + create  {key:<24} {}", describe_check(spec))
                    }
                    HealthCheckChange::Update {
                        key, id, old, new, ..
                    } => {
                        if change.changes_settings() {
                            format!(
                                "  ~ update  {key:<24} {} → {} ({id})",
                                describe_check(old),
                                describe_check(new)
                            )
                        } else {
                            format!("  ~ retag   {key:<24} ({id})")
                        }
                    }
                    HealthCheckChange::Delete { key, id, old } => format!(
                        "  - delete  {:<24} {} ({id})",
                        key.as_deref().unwrap_or("(untagged)"),
                        describe_check(old)
                    ),
                };
                let _ = writeln!(out, "{line}");
            }
        }
        for zone in &self.zones {
            let (creates, updates, deletes) = zone.counts();
            let markers = zone.changes.iter().filter(|c| c.is_marker()).count();
            let _ = writeln!(
                out,
                "\nZone {} ({}): {creates} to create, {updates} to update, {deletes} to delete \
                 (+{markers} ownership markers); {} owned record sets",
                zone.zone, zone.hosted_zone_id, zone.owned_records
            );
            let health_driven = zone
                .changes
                .iter()
                .filter(|c| zone.health_driven.contains(c.key()))
                .count();
            if health_driven > 0 {
                let _ = writeln!(
                    out,
                    "  ({health_driven} of the updates and deletes are health or overrides \
                     alone, marked ~h/-h; the safety guard counts only the others)"
                );
            }
            let rows: Vec<[String; 5]> = zone
                .changes
                .iter()
                .filter(|c| !c.is_marker())
                .map(|change| {
                    let key = change.key();
                    let health = if zone.health_driven.contains(key) {
                        "h"
                    } else {
                        ""
                    };
                    let (symbol, detail) = match change {
                        RecordChange::Create { new } => ("+", describe_record(new)),
                        RecordChange::Update { old, new } => ("~", describe_update(old, new)),
                        RecordChange::Delete { old } => ("-", describe_record(old)),
                    };
                    let symbol = format!("{symbol}{health}");
                    [
                        format!("{symbol} {}", change.action_name()),
                        key.name.clone(),
                        key.record_type.to_string(),
                        key.set_identifier.clone().unwrap_or_else(|| "-".into()),
                        detail,
                    ]
                })
                .collect();
            if !rows.is_empty() {
                let header = [
                    "ACTION".to_owned(),
                    "NAME".into(),
                    "TYPE".into(),
                    "SET".into(),
                    "DETAILS".into(),
                ];
                let mut widths = [0usize; 4];
                for row in std::iter::once(&header).chain(&rows) {
                    for (w, cell) in widths.iter_mut().zip(row.iter()) {
                        *w = (*w).max(cell.chars().count());
                    }
                }
                for row in std::iter::once(&header).chain(&rows) {
                    let _ = writeln!(
                        out,
                        "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                        row[0],
                        row[1],
                        row[2],
                        row[3],
                        row[4],
                        w0 = widths[0],
                        w1 = widths[1],
                        w2 = widths[2],
                        w3 = widths[3]
                    );
                }
            }
            for conflict in &zone.conflicts {
                let foreign: Vec<String> = conflict.foreign.iter().map(|k| k.to_string()).collect();
                let _ = writeln!(
                    out,
                    "  ! conflict {}: {} (foreign: {}); left untouched",
                    conflict.key,
                    conflict.reason,
                    foreign.join(", ")
                );
            }
        }
        if !self.unsupported.is_empty() {
            let _ = writeln!(out, "\nUnsupported (apply refuses until fixed):");
            for u in &self.unsupported {
                let _ = writeln!(out, "  x {}: {}", u.record, u.reason);
            }
        }
        if !self.refusals.is_empty() {
            let verdict = if self.forced {
                "Unsafe, but --force was given:"
            } else {
                "Refused (re-run apply with --force to override):"
            };
            let _ = writeln!(out, "\n{verdict}");
            for refusal in &self.refusals {
                let _ = writeln!(out, "  ! {refusal}");
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nWarnings:");
            for warning in &self.warnings {
                let _ = writeln!(out, "  - {warning}");
            }
        }
        out
    }
}

/// One-line description of a health check.
pub(crate) fn describe_check(spec: &HealthCheckSpec) -> String {
    let target = match (&spec.ip_address, &spec.fqdn) {
        (Some(ip), Some(host)) => format!("{ip} ({host})"),
        (Some(ip), None) => ip.clone(),
        (None, Some(host)) => host.clone(),
        (None, None) => "?".into(),
    };
    let mut text = format!(
        "{} {target}:{}{} every {}s, {} failures",
        spec.protocol.as_str(),
        spec.port.map_or_else(|| "-".into(), |p| p.to_string()),
        spec.resource_path.as_deref().unwrap_or(""),
        spec.request_interval,
        spec.failure_threshold
    );
    if !spec.regions.is_empty() {
        let _ = write!(text, ", regions {}", spec.regions.join(" "));
    }
    match (spec.disabled, spec.inverted) {
        (true, true) => text.push_str(", forced down"),
        (true, false) => text.push_str(", forced up"),
        (false, true) => text.push_str(", inverted"),
        (false, false) => {}
    }
    text
}

/// One-line description of a record set's content.
pub(crate) fn describe_record(set: &RecordSet) -> String {
    let mut parts = Vec::new();
    if !matches!(set.routing, super::model::Routing::Simple) {
        parts.push(set.routing.to_string());
    }
    if let Some(ttl) = set.ttl {
        parts.push(format!("ttl {ttl}"));
    }
    if let Some(alias) = &set.alias {
        parts.push(format!("alias → {}", alias.dns_name));
    }
    if let Some(hc) = &set.health_check {
        parts.push(format!("check {hc}"));
    }
    if !set.values.is_empty() {
        parts.push(set.values.join(" "));
    }
    parts.join(", ")
}

fn describe_update(old: &RecordSet, new: &RecordSet) -> String {
    let mut parts = Vec::new();
    if old.ttl != new.ttl {
        parts.push(format!(
            "ttl {} → {}",
            old.ttl.map_or_else(|| "-".into(), |t| t.to_string()),
            new.ttl.map_or_else(|| "-".into(), |t| t.to_string())
        ));
    }
    if old.routing != new.routing {
        parts.push(format!("{} → {}", old.routing, new.routing));
    }
    if old.alias.as_ref().map(|a| &a.dns_name) != new.alias.as_ref().map(|a| &a.dns_name) {
        let name = |s: &RecordSet| {
            s.alias
                .as_ref()
                .map_or_else(|| "-".into(), |a| a.dns_name.clone())
        };
        parts.push(format!("alias {} → {}", name(old), name(new)));
    }
    if old.health_check != new.health_check {
        let hc = |s: &RecordSet| {
            s.health_check
                .as_ref()
                .map_or_else(|| "-".into(), |h| h.to_string())
        };
        parts.push(format!("check {} → {}", hc(old), hc(new)));
    }
    if old.values != new.values {
        parts.push(format!(
            "{} → {}",
            old.values.join(" "),
            new.values.join(" ")
        ));
    }
    if parts.is_empty() {
        parts.push(describe_record(new));
    }
    parts.join(", ")
}

/// Computes the plan.
pub(crate) fn plan(
    current: &CurrentState,
    desired: &DesiredState,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut warnings: BTreeSet<String> = desired.warnings.iter().cloned().collect();
    let (health_checks, resolution) = plan_health_checks(current, desired, options, &mut warnings);
    let mut zones = Vec::new();
    let mut refusals = Vec::new();
    for desired_zone in &desired.zones {
        let current_zone = current
            .zones
            .iter()
            .find(|z| z.zone == desired_zone.zone)
            .ok_or_else(|| PlanError::MissingZone(desired_zone.zone.clone()))?;
        let zone_plan = plan_zone(
            &current_zone.zone,
            &current_zone.hosted_zone_id,
            &current_zone.records,
            desired_zone.records.values(),
            &resolution,
            &options.owner_id,
            &mut warnings,
        );
        let mut zone_plan = zone_plan;
        if !desired.frozen.is_empty() {
            // A frozen record set keeps its marker too: a marker change goes only
            // when every set it claims is frozen.
            let frozen = |key: &RecordKey| {
                desired
                    .frozen
                    .contains(&(key.name.clone(), key.record_type.clone()))
            };
            zone_plan.changes.retain(|change| {
                if !change.is_marker() {
                    return !frozen(change.key());
                }
                let set = match change {
                    RecordChange::Create { new } | RecordChange::Update { new, .. } => new,
                    RecordChange::Delete { old } => old,
                };
                let claims = parse_marker(set).unwrap_or_default();
                claims.is_empty() || !claims.iter().all(|claim| frozen(&claim.key))
            });
        }
        refusals.extend(guard(&zone_plan, options));
        zones.push(zone_plan);
    }
    Ok(Plan {
        owner_id: options.owner_id.clone(),
        health_checks,
        zones,
        unsupported: desired.unsupported.clone(),
        refusals,
        forced: options.force,
        warnings: warnings.into_iter().collect(),
    })
}

/// The tags a health check of ours carries.
pub(crate) fn health_check_tags(owner: &str, key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_OWNER.to_owned(), owner.to_owned()),
        (TAG_ENDPOINT.to_owned(), key.to_owned()),
        (TAG_NAME.to_owned(), format!("failoverd {key}")),
    ])
}

/// Whether a health check is ours, and its key if tagged.
fn ownership(check: &ExistingHealthCheck, owner: &str) -> Option<Option<String>> {
    match check.tags.get(TAG_OWNER) {
        Some(tag) if tag == owner => Some(check.tags.get(TAG_ENDPOINT).cloned()),
        Some(_) => None,
        None if check
            .caller_reference
            .starts_with(&caller_reference_prefix(owner)) =>
        {
            Some(None)
        }
        None => None,
    }
}

fn plan_health_checks(
    current: &CurrentState,
    desired: &DesiredState,
    options: &PlanOptions,
    warnings: &mut BTreeSet<String>,
) -> (Vec<HealthCheckChange>, BTreeMap<String, HealthCheckRef>) {
    let owner = &options.owner_id;
    let mut by_key: BTreeMap<String, Vec<&ExistingHealthCheck>> = BTreeMap::new();
    let mut deletes = Vec::new();
    let mut ours: Vec<&ExistingHealthCheck> = current
        .health_checks
        .iter()
        .filter(|c| ownership(c, owner).is_some())
        .collect();
    ours.sort_by(|a, b| a.id.cmp(&b.id));
    for check in ours {
        match ownership(check, owner).flatten() {
            Some(key) => by_key.entry(key).or_default().push(check),
            // Created by a run that stopped before tagging it: never referenced.
            None => deletes.push(HealthCheckChange::Delete {
                key: None,
                id: check.id.clone(),
                old: check.spec.clone(),
            }),
        }
    }
    let mut changes = Vec::new();
    let mut resolution: BTreeMap<String, HealthCheckRef> = BTreeMap::new();
    // Endpoint checks first, then calculated checks over them (their children are
    // resolved to the ids just decided; created before, deleted after them).
    let (calculated, plain): (Vec<_>, Vec<_>) = desired
        .health_checks
        .iter()
        .partition(|(_, spec)| spec.is_calculated());
    for (key, spec) in plain.into_iter().chain(calculated) {
        let resolved;
        let spec = if spec.is_calculated() {
            let mut children: Vec<HealthCheckRef> = spec
                .children
                .iter()
                .map(|child| match child {
                    HealthCheckRef::Key(k) => resolution.get(k).cloned().unwrap_or(child.clone()),
                    id => id.clone(),
                })
                .collect();
            children.sort();
            resolved = HealthCheckSpec {
                children,
                ..spec.clone()
            };
            &resolved
        } else {
            spec
        };
        let candidates = by_key.remove(key).unwrap_or_default();
        let tags = health_check_tags(owner, key);
        let keep = candidates
            .iter()
            .position(|c| spec.satisfied_by(&c.spec))
            .or_else(|| candidates.iter().position(|c| spec.updatable_from(&c.spec)));
        match keep {
            Some(index) => {
                let check = candidates[index];
                resolution.insert(
                    key.clone(),
                    HealthCheckRef::Id(bare_id(&check.id).to_owned()),
                );
                let missing_tags: BTreeMap<String, String> = tags
                    .into_iter()
                    .filter(|(k, v)| check.tags.get(k) != Some(v))
                    .collect();
                if !spec.satisfied_by(&check.spec) || !missing_tags.is_empty() {
                    changes.push(HealthCheckChange::Update {
                        key: key.clone(),
                        id: check.id.clone(),
                        version: check.version,
                        old: check.spec.clone(),
                        new: spec.clone(),
                        tags: missing_tags,
                    });
                }
            }
            None => {
                if let Some(old) = candidates.first() {
                    warnings.insert(format!(
                        "health check {key}: {} (UpdateHealthCheck cannot do that); a new check \
                         replaces the old one",
                        spec.replacement_reason(&old.spec)
                    ));
                }
                resolution.insert(key.clone(), HealthCheckRef::Key(key.clone()));
                changes.push(HealthCheckChange::Create {
                    key: key.clone(),
                    spec: spec.clone(),
                    tags,
                });
            }
        }
        for (i, check) in candidates.iter().enumerate() {
            if Some(i) != keep {
                deletes.push(HealthCheckChange::Delete {
                    key: Some(key.clone()),
                    id: check.id.clone(),
                    old: check.spec.clone(),
                });
            }
        }
    }
    for (key, checks) in by_key {
        for check in checks {
            deletes.push(HealthCheckChange::Delete {
                key: Some(key.clone()),
                id: check.id.clone(),
                old: check.spec.clone(),
            });
        }
    }
    // A calculated check goes before its children (Route 53 refuses to delete a
    // check that a calculated one still uses).
    deletes.sort_by_key(|d| match d {
        HealthCheckChange::Delete { old, .. } => !old.is_calculated(),
        _ => true,
    });
    changes.extend(deletes);
    (changes, resolution)
}

/// Resolves a desired record set against the zone: alias targets get the zone id,
/// health-check keys the id of an existing check (or stay keys for checks the plan
/// creates).
fn resolve(
    mut set: RecordSet,
    zone_id: &str,
    resolution: &BTreeMap<String, HealthCheckRef>,
) -> RecordSet {
    if let Some(alias) = &mut set.alias
        && alias.hosted_zone_id.is_empty()
    {
        alias.hosted_zone_id = bare_id(zone_id).to_owned();
    }
    if let Some(HealthCheckRef::Key(key)) = &set.health_check
        && let Some(resolved) = resolution.get(key)
    {
        set.health_check = Some(resolved.clone());
    }
    set
}

/// Plans one zone: `desired` are its desired record sets.
pub(crate) fn plan_zone<'a>(
    zone: &str,
    zone_id: &str,
    current: &[RecordSet],
    desired: impl IntoIterator<Item = &'a DesiredRecord>,
    resolution: &BTreeMap<String, HealthCheckRef>,
    owner: &str,
    warnings: &mut BTreeSet<String>,
) -> ZonePlan {
    let mut by_key: BTreeMap<&RecordKey, &RecordSet> = BTreeMap::new();
    for record in current {
        if let Some(first) = by_key.insert(&record.key, record)
            && first != record
        {
            warnings.insert(format!(
                "{}: Route 53 returned two record sets with this identity; using the last",
                record.key
            ));
        }
    }
    let mut owned_keys: BTreeSet<RecordKey> = BTreeSet::new();
    let mut our_markers: BTreeSet<RecordKey> = BTreeSet::new();
    // The configuration fingerprint each owned set was written from.
    let mut written_from: BTreeMap<RecordKey, Option<String>> = BTreeMap::new();
    for record in current {
        if let Some(claims) = parse_marker(record) {
            let mut ours = false;
            for claim in claims.into_iter().filter(|c| c.owner == owner) {
                written_from.insert(claim.key.clone(), claim.config);
                owned_keys.insert(claim.key);
                ours = true;
            }
            if ours {
                our_markers.insert(record.key.clone());
            }
        }
    }
    let owned = |key: &RecordKey| owned_keys.contains(key) || our_markers.contains(key);
    let owned_records = by_key
        .keys()
        .filter(|k| owned_keys.contains(k) && !our_markers.contains(k))
        .count();
    // Foreign record sets by (name, type) and by name.
    let mut foreign_by_type: BTreeMap<(&str, &RecordType), Vec<&RecordKey>> = BTreeMap::new();
    let mut foreign_by_name: BTreeMap<&str, Vec<&RecordKey>> = BTreeMap::new();
    for key in by_key.keys().filter(|k| !owned(k)) {
        foreign_by_type
            .entry((key.name.as_str(), &key.record_type))
            .or_default()
            .push(key);
        foreign_by_name
            .entry(key.name.as_str())
            .or_default()
            .push(key);
    }
    let mut wanted: BTreeMap<RecordKey, RecordSet> = BTreeMap::new();
    let mut mirror_keys = BTreeSet::new();
    let mut conflicts = Vec::new();
    // The configuration fingerprint of each desired set, and every fingerprint the
    // zone's desired records have.
    let mut wanted_from: BTreeMap<RecordKey, &str> = BTreeMap::new();
    let mut fingerprints: BTreeSet<&str> = BTreeSet::new();
    for record in desired {
        let is_mirror = matches!(record.source, RecordSource::Mirror { .. });
        let fingerprint = record.source.config_fingerprint();
        let set = resolve(record.set.clone(), zone_id, resolution);
        let marker = marker_for(&set.key, zone, owner, fingerprint);
        let key = &set.key;
        if !owned(key) {
            let conflict = conflict_for(
                key,
                &marker.key,
                &by_key,
                &owned,
                &foreign_by_type,
                &foreign_by_name,
            );
            if let Some((foreign, reason)) = conflict {
                conflicts.push(Conflict {
                    key: key.clone(),
                    foreign,
                    reason,
                });
                continue;
            }
        }
        if is_mirror {
            mirror_keys.insert(set.key.clone());
            mirror_keys.insert(marker.key.clone());
        }
        if let Some(fingerprint) = fingerprint {
            wanted_from.insert(set.key.clone(), fingerprint);
            fingerprints.insert(fingerprint);
        }
        wanted.insert(marker.key.clone(), marker);
        wanted.insert(set.key.clone(), set);
    }
    let mut changes = Vec::new();
    for (key, want) in &wanted {
        match by_key.get(key) {
            Some(current) if !current.same_content(want) => changes.push(RecordChange::Update {
                old: (*current).clone(),
                new: want.clone(),
            }),
            Some(_) => {}
            None => changes.push(RecordChange::Create { new: want.clone() }),
        }
    }
    for (key, current) in &by_key {
        if owned(key) && !wanted.contains_key(*key) {
            changes.push(RecordChange::Delete {
                old: (*current).clone(),
            });
        }
    }
    changes.sort_by(|a, b| a.key().cmp(b.key()).then(a.rank().cmp(&b.rank())));
    // Health alone explains a change when the set was written from the configuration
    // its record still has: an update planned from the same fingerprint, or a delete
    // of a set whose record is still desired with it (an endpoint that left the
    // answers). A marker without a fingerprint (a static record, or one written
    // before fingerprints) explains nothing.
    let health_driven = changes
        .iter()
        .filter(|c| !c.is_marker())
        .filter_map(|change| {
            let key = change.key();
            let written = written_from.get(key)?.as_deref()?;
            let same_config = match change {
                RecordChange::Update { .. } => wanted_from.get(key) == Some(&written),
                RecordChange::Delete { .. } => fingerprints.contains(written),
                RecordChange::Create { .. } => false,
            };
            same_config.then(|| key.clone())
        })
        .collect();
    ZonePlan {
        zone: zone.to_owned(),
        hosted_zone_id: bare_id(zone_id).to_owned(),
        changes,
        conflicts,
        owned_records,
        mirror_keys,
        health_driven,
    }
}

type ConflictFound = Option<(Vec<RecordKey>, String)>;

fn conflict_for(
    key: &RecordKey,
    marker_key: &RecordKey,
    by_key: &BTreeMap<&RecordKey, &RecordSet>,
    owned: &dyn Fn(&RecordKey) -> bool,
    foreign_by_type: &BTreeMap<(&str, &RecordType), Vec<&RecordKey>>,
    foreign_by_name: &BTreeMap<&str, Vec<&RecordKey>>,
) -> ConflictFound {
    let list = |keys: &[&RecordKey]| keys.iter().map(|k| (*k).clone()).collect::<Vec<_>>();
    if by_key.contains_key(key) {
        return Some((
            vec![key.clone()],
            "a record set with this name, type and set identifier exists and is not owned by us"
                .into(),
        ));
    }
    if by_key.contains_key(marker_key) && !owned(marker_key) {
        return Some((
            vec![marker_key.clone()],
            "its ownership marker name is taken by a foreign record set".into(),
        ));
    }
    if let Some(foreign) = foreign_by_type.get(&(key.name.as_str(), &key.record_type)) {
        return Some((
            list(foreign),
            "foreign record sets have the same name and type (routing policies would mix)".into(),
        ));
    }
    let names = foreign_by_name.get(key.name.as_str());
    if key.record_type == RecordType::Cname
        && let Some(foreign) = names
    {
        return Some((
            list(foreign),
            "a CNAME cannot share its name with foreign record sets".into(),
        ));
    }
    if let Some(foreign) = names {
        let cnames: Vec<&RecordKey> = foreign
            .iter()
            .copied()
            .filter(|k| k.record_type == RecordType::Cname)
            .collect();
        if !cnames.is_empty() {
            return Some((list(&cnames), "a foreign CNAME holds this name".into()));
        }
    }
    None
}

/// The safety guard of one zone: too large a share of owned record sets updated, or
/// deleted, refuses the plan (once the zone owns [`MIN_RECORDS_FOR_GUARD`]), as does
/// any change to the apex NS or SOA. Changes that health or operator overrides alone
/// explain ([`ZonePlan::health_driven`]: same configuration fingerprint) are not
/// counted, so an outage is written however many record sets it rewrites; every
/// configuration edit is counted, in native and mirror mode alike.
pub(crate) fn guard(zone: &ZonePlan, options: &PlanOptions) -> Vec<Refusal> {
    let health_driven = |change: &RecordChange| zone.health_driven.contains(change.key());
    let counted = |update: bool| {
        zone.changes
            .iter()
            .filter(|c| !c.is_marker() && !health_driven(c))
            .filter(|c| match c {
                RecordChange::Update { .. } => update,
                RecordChange::Delete { .. } => !update,
                RecordChange::Create { .. } => false,
            })
            .count()
    };
    let mut refusals = Vec::new();
    for (action, changing, limit) in [
        ("update", counted(true), options.max_update_percent),
        ("delete", counted(false), options.max_delete_percent),
    ] {
        if zone.owned_records >= MIN_RECORDS_FOR_GUARD
            && changing * 100 > zone.owned_records * limit as usize
        {
            refusals.push(Refusal::TooMuchChange {
                zone: zone.zone.clone(),
                owned: zone.owned_records,
                action: action.to_owned(),
                changing,
                limit_percent: limit,
            });
        }
    }
    for change in &zone.changes {
        let key = change.key();
        if key.name == zone.zone && matches!(key.record_type, RecordType::Ns | RecordType::Soa) {
            refusals.push(Refusal::ApexChange { key: key.clone() });
        }
    }
    refusals
}

#[cfg(test)]
mod tests;
