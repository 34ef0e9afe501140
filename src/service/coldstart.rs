//! Where a starting server's health comes from before its probes have spoken: the
//! saved state file, then its peers' current view, then defaults — so a restart does
//! not answer with endpoints that are known to be down.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::admin::api::PeerState;
use crate::config::{ColdStart, Config};
use crate::health::board::Restored;
use crate::health::overrides::{Action, Entry, Stamp, Target};
use crate::health::persist;
use crate::health::report::{SIGNATURE_HEADER, verify};
use crate::model::{EndpointIndex, HealthState};
use crate::probe::reporter::unix_ms;

/// How long a starting server waits for its peers.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether an endpoint may start from a remembered state: unless every record using
/// its pool says `cold_start = "assume-up"`.
fn remembers(config: &Config, endpoint: EndpointIndex) -> bool {
    let pool = config.endpoint(endpoint).pool;
    let using: Vec<&crate::config::DynamicRecord> = config
        .records
        .iter()
        .filter(|r| {
            r.pools.all_lists().iter().any(|list| list.contains(&pool))
                || matches!(r.all_down, crate::config::AllDown::Fallback(p) if p == pool)
        })
        .collect();
    using.is_empty() || using.iter().any(|r| r.cold_start == ColdStart::LastKnown)
}

/// Builds the starting state: state file first, then peers (which know the present).
pub(crate) async fn initial(config: &Config, own_vantage: &str) -> Restored {
    let mut initial = Restored::default();
    let labels: BTreeMap<String, EndpointIndex> = (0..config.endpoints.len())
        .map(|i| {
            (
                config.endpoint_label(EndpointIndex(i as u32)),
                EndpointIndex(i as u32),
            )
        })
        .collect();
    if let Some(path) = &config.health.state_file {
        match persist::load(path) {
            Ok(Some(saved)) => {
                tracing::info!(path = %path.display(), endpoints = saved.endpoints.len(), "health state restored");
                let elapsed = unix_ms().saturating_sub(saved.saved_at_ms);
                for (label, endpoint) in &saved.endpoints {
                    if endpoint.penalty > 0.0 || endpoint.suppressed {
                        // Decayed by the time the server was down; the endpoint's own
                        // check's half-life is applied by the board from here on.
                        let half_life = half_life_of(config, labels.get(label).copied());
                        let decay = (-(elapsed as f64 / 1000.0) / half_life).exp2();
                        initial.damping.insert(
                            label.clone(),
                            (endpoint.penalty * decay, endpoint.suppressed),
                        );
                    }
                }
                initial.states = saved
                    .endpoints
                    .into_iter()
                    .map(|(k, v)| (k, v.state))
                    .collect();
                initial.overrides = saved.overrides;
                initial.primaries = saved.primaries;
                // Forces of an older state file: older than any override made since.
                initial.overrides.extend(
                    saved
                        .forced
                        .into_iter()
                        .map(|(label, state)| legacy_force(label, state)),
                );
            }
            Ok(None) => tracing::info!(path = %path.display(), "no saved health state yet"),
            Err(error) => {
                tracing::warn!(%error, "saved health state unusable; starting without it")
            }
        }
    }
    if !config.health.servers.is_empty() {
        let peers = ask_peers(config, own_vantage).await;
        if !peers.is_empty() {
            tracing::info!(endpoints = peers.len(), "health state taken from peers");
        }
        initial.states.extend(peers);
    }
    // Endpoints whose records all assume up forget what was saved.
    initial
        .states
        .retain(|label, _| labels.get(label).is_some_and(|&e| remembers(config, e)));
    initial
}

/// An endpoint force from a state file written before overrides were replicated.
fn legacy_force(label: String, state: HealthState) -> Entry {
    Entry {
        target: Target::Endpoint(label),
        action: Some(match state {
            HealthState::Up => Action::ForceUp,
            HealthState::Down => Action::ForceDown,
        }),
        by: "state file".to_owned(),
        reason: "forced before an upgrade".to_owned(),
        at_ms: 0,
        expires_at_ms: None,
        stamp: Stamp::default(),
    }
}

/// Half-life in seconds of an endpoint's damping (the default when it has none, or
/// the endpoint is gone).
fn half_life_of(config: &Config, endpoint: Option<EndpointIndex>) -> f64 {
    endpoint
        .and_then(|e| config.endpoint_check(e)?.damping)
        .unwrap_or_default()
        .half_life
        .as_secs_f64()
        .max(1e-3)
}

/// Asks every server for its decided states; per endpoint, the majority of the peers
/// that answered (with a valid signature) wins.
async fn ask_peers(config: &Config, own_vantage: &str) -> BTreeMap<String, HealthState> {
    let Ok(client) = crate::probe::tls::http_client_builder()
        .no_proxy()
        .timeout(PEER_TIMEOUT)
        .build()
    else {
        return BTreeMap::new();
    };
    // A fresh nonce the peers must sign back: an answer recorded earlier is useless.
    let nonce = format!("{:032x}", super::plane::process_nonce());
    let requests = config.health.servers.iter().map(|server| {
        // The nonce is hex: no URL escaping needed.
        let request = client
            .get(format!("{server}/v1/state?nonce={nonce}"))
            .send();
        async move {
            let response = request.await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let signature = response
                .headers()
                .get(SIGNATURE_HEADER)?
                .to_str()
                .ok()?
                .to_owned();
            let body = response.bytes().await.ok()?;
            Some((signature, body))
        }
    });
    let answers = tokio::time::timeout(PEER_TIMEOUT * 2, futures_util::future::join_all(requests))
        .await
        .unwrap_or_default();
    let mut votes: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for (signature, body) in answers.into_iter().flatten() {
        let Ok(state) = serde_json::from_slice::<PeerState>(&body) else {
            continue;
        };
        if state.vantage == own_vantage {
            continue;
        }
        let secret = config
            .vantage_by_name(&state.vantage)
            .and_then(|v| config.vantages[usize::from(v.0)].secret.clone());
        let authentic = secret.is_some_and(|s| verify(&s, &body, &signature));
        let recent = state.nonce == nonce;
        if !authentic || !recent {
            tracing::warn!(peer = ?state.vantage, "ignoring unauthenticated or stale peer state");
            continue;
        }
        for (endpoint, health) in state.endpoints {
            let entry = votes.entry(endpoint).or_default();
            match health {
                HealthState::Up => entry.0 += 1,
                HealthState::Down => entry.1 += 1,
            }
        }
    }
    votes
        .into_iter()
        .filter(|(_, (up, down))| up != down)
        .map(|(endpoint, (up, down))| {
            (
                endpoint,
                if down > up {
                    HealthState::Down
                } else {
                    HealthState::Up
                },
            )
        })
        .collect()
}
