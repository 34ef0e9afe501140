//! Patterns and regions expanded into the concrete targets they match.

use crate::config::Config;
use crate::model::{EndpointIndex, PoolIndex};

use super::*;

/// The concrete targets `target` names under `config` for `action` (None: a
/// release): itself when it is one target; every target of its kind whose name
/// matches a pattern (`web-eu/*`, `web-*`, `*.example.com.`); for a region, its pools
/// (a drain), their endpoints (a force), or both (a release ends what is in force on
/// either). A pattern or region matching nothing is an error naming what there is.
pub(crate) fn expand(
    config: &Config,
    target: &Target,
    action: Option<&Action>,
) -> Result<Vec<Target>, OverrideError> {
    let no_match = |known: Vec<String>| OverrideError::NoMatch {
        pattern: target.clone(),
        known: summarize(known),
    };
    let matching = |pattern: &str, names: Vec<String>, make: fn(String) -> Target| {
        let found: Vec<Target> = names
            .iter()
            .filter(|n| glob_match(pattern, n))
            .cloned()
            .map(make)
            .collect();
        if found.is_empty() {
            Err(no_match(names))
        } else {
            Ok(found)
        }
    };
    match target {
        Target::Endpoint(pattern) if is_pattern(pattern) => {
            let labels = (0..config.endpoints.len())
                .map(|e| config.endpoint_label(EndpointIndex(e as u32)))
                .collect();
            matching(pattern, labels, Target::Endpoint)
        }
        Target::Pool(pattern) if is_pattern(pattern) => {
            let names = config.pools.iter().map(|p| p.name.clone()).collect();
            matching(pattern, names, Target::Pool)
        }
        Target::Record { name, record_type } if is_pattern(name) => {
            let mut names: Vec<String> = config
                .records
                .iter()
                .filter(|r| record_type.is_none_or(|t| t == r.record_type))
                .map(|r| r.name.clone())
                .collect();
            names.dedup();
            let found: Vec<Target> = names
                .iter()
                .filter(|n| glob_match(name, n))
                .map(|n| Target::Record {
                    name: n.clone(),
                    record_type: *record_type,
                })
                .collect();
            if found.is_empty() {
                Err(no_match(names))
            } else {
                Ok(found)
            }
        }
        Target::Region(region) => {
            let Some(index) = config.regions.iter().position(|r| r.name == *region) else {
                return Err(no_match(
                    config
                        .regions
                        .iter()
                        .map(|r| format!("region {}", r.name))
                        .collect(),
                ));
            };
            let pools: Vec<PoolIndex> = (0..config.pools.len())
                .map(|p| PoolIndex(p as u32))
                .filter(|&p| {
                    config
                        .pool(p)
                        .region
                        .is_some_and(|r| usize::from(r.0) == index)
                })
                .collect();
            if pools.is_empty() {
                return Err(no_match(vec![format!("no pool has region = \"{region}\"")]));
            }
            let as_pools = pools
                .iter()
                .map(|&p| Target::Pool(config.pool(p).name.clone()));
            let as_endpoints = pools.iter().flat_map(|&p| {
                config
                    .pool(p)
                    .endpoints
                    .iter()
                    .map(|&e| Target::Endpoint(config.endpoint_label(e)))
            });
            match action {
                Some(Action::Drain | Action::Dial(_)) => Ok(as_pools.collect()),
                Some(Action::ForceUp | Action::ForceDown) => Ok(as_endpoints.collect()),
                Some(action @ Action::Failover(_)) => Err(OverrideError::Mismatch {
                    action: action.clone(),
                    kind: "region",
                    allowed: "drain or force; fail records over by name",
                }),
                None => Ok(as_pools.chain(as_endpoints).collect()),
            }
        }
        other => Ok(vec![other.clone()]),
    }
}

/// At most 8 names, then how many more.
pub(super) fn summarize(mut names: Vec<String>) -> String {
    names.sort();
    names.dedup();
    let count = names.len();
    if count > 8 {
        names.truncate(8);
        format!("{}, … {count} in all", names.join(", "))
    } else if count == 0 {
        "there are none".to_owned()
    } else {
        format!("there are: {}", names.join(", "))
    }
}

/// Unix milliseconds as an RFC 3339 time (seconds).
pub(super) fn format_ms(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}
