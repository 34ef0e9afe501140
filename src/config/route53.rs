//! `[route53]` → [`Route53Config`].

use std::collections::HashSet;
use std::time::Duration;

use super::defaults::route53 as defaults;
use super::diagnostics::KeyPath;
use super::spec::Route53Spec;
use super::validate::{Validator, check_identifier, normalize_name};

/// How the Route 53 agent handles a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Route53Mode {
    /// Route 53 routing policies and health checks do the failover.
    Native,
    /// failoverd's verdicts decide; plain record sets are rewritten on change.
    Mirror,
    /// Not synced.
    Off,
}

/// The Route 53 sync agent's settings.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Route53Config {
    /// AWS region of the client.
    pub region: String,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Ownership id.
    pub owner_id: String,
    /// Sustained requests per second.
    pub max_requests_per_second: f64,
    /// Request burst.
    pub burst: u32,
    /// Mirror-mode debounce.
    pub debounce: Duration,
    /// Bound on waiting for INSYNC.
    pub change_timeout: Duration,
    /// Full reconciliation interval of `route53 sync`.
    pub sync_interval: Duration,
    /// The safety guard: most owned record sets (percent) a plan may update, and
    /// delete, without `--force` (health-driven mirror changes are not counted).
    pub max_update_percent: u32,
    /// See `max_update_percent`.
    pub max_delete_percent: u32,
    /// Hosted zones.
    pub zones: Vec<Route53Zone>,
}

/// A hosted zone kept in sync.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Route53Zone {
    /// Zone name, lower case with trailing dot.
    pub zone: String,
    /// Hosted zone id (None: look up by name).
    pub hosted_zone_id: Option<String>,
    /// Whether static zone-file records are synced too.
    pub sync_static: bool,
}

impl Validator<'_> {
    pub(super) fn route53(&mut self, spec: &Route53Spec) -> Option<Route53Config> {
        let path = KeyPath::root().key("route53");
        let owner_id = spec
            .owner_id
            .clone()
            .unwrap_or_else(|| defaults::OWNER_ID.into());
        if let Err(e) = check_identifier(&owner_id) {
            self.error(path.key("owner_id"), e);
        }
        match spec.mode.as_deref().unwrap_or(defaults::MODE) {
            "native" | "mirror" => {}
            other => self.error(
                path.key("mode"),
                format!("{other:?} is not \"native\" or \"mirror\""),
            ),
        }
        let rate = spec
            .max_requests_per_second
            .unwrap_or(defaults::MAX_REQUESTS_PER_SECOND);
        if !(rate > 0.0 && rate <= 100.0) {
            self.error(
                path.key("max_requests_per_second"),
                format!("{rate} is out of range (0, 100]"),
            );
        }
        let burst =
            self.ranged(path.key("burst"), spec.burst, defaults::BURST, 1..=1000, "") as u32;
        let debounce = self.duration(
            path.key("debounce"),
            spec.debounce.as_deref(),
            defaults::DEBOUNCE,
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let change_timeout = self.duration(
            path.key("change_timeout"),
            spec.change_timeout.as_deref(),
            defaults::CHANGE_TIMEOUT,
            Duration::from_secs(1)..=Duration::from_secs(3600),
        );
        let sync_interval = self.duration(
            path.key("sync_interval"),
            spec.sync_interval.as_deref(),
            defaults::SYNC_INTERVAL,
            Duration::from_secs(1)..=Duration::from_secs(86_400),
        );
        let max_update_percent = self.ranged(
            path.key("max_update_percent"),
            spec.max_update_percent,
            defaults::MAX_UPDATE_PERCENT,
            0..=100,
            "",
        ) as u32;
        let max_delete_percent = self.ranged(
            path.key("max_delete_percent"),
            spec.max_delete_percent,
            defaults::MAX_DELETE_PERCENT,
            0..=100,
            "",
        ) as u32;
        if spec.zones.is_empty() {
            self.error(
                path.key("zones"),
                "list the hosted zones to sync ([[route53.zones]] zone = \"...\")",
            );
        }
        let mut zones = Vec::new();
        let mut seen = HashSet::new();
        for (i, zone) in spec.zones.iter().enumerate() {
            match normalize_name(&zone.zone) {
                Ok(name) if seen.insert(name.clone()) => zones.push(Route53Zone {
                    zone: name,
                    hosted_zone_id: zone.hosted_zone_id.clone(),
                    sync_static: zone.sync_static.unwrap_or(defaults::SYNC_STATIC),
                }),
                Ok(name) => self.error(
                    path.key("zones").index(i).key("zone"),
                    format!("{name} is listed twice"),
                ),
                Err(e) => self.error(path.key("zones").index(i).key("zone"), e),
            }
        }
        Some(Route53Config {
            region: spec
                .region
                .clone()
                .unwrap_or_else(|| defaults::REGION.into()),
            endpoint_url: spec.endpoint_url.clone(),
            owner_id,
            max_requests_per_second: rate,
            burst,
            debounce,
            change_timeout,
            sync_interval,
            max_update_percent,
            max_delete_percent,
            zones,
        })
    }
}
