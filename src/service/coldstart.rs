//! Where a starting server's health comes from before its probes have spoken: the
//! saved state file, then its peers' current view, then defaults — so a restart does
//! not answer with endpoints that are known to be down.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::PeerState;
use crate::config::{ColdStart, Config};
use crate::health::board::{History, Restored};
use crate::health::overrides::{Action, Entry, Stamp, Target, check_entry};
use crate::health::peering::{KnownServers, request_text, sign_peer, verify_peer};
use crate::health::persist;
use crate::health::report::{SIGNATURE_HEADER, VANTAGE_HEADER};
use crate::model::{EndpointIndex, HealthState};
use crate::probe::reporter::unix_ms;

/// How long a starting server waits for its peers (when none answers).
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// How long it waits for more peers once one has answered: a peer cut off from the
/// network delays a start by this much, not by the timeout.
const MORE_ANSWERS: Duration = Duration::from_millis(50);

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
/// Peers that answer are learned as servers.
/// `handed`: the state of the process this one replaces, used instead of the state
/// file.
pub(crate) async fn initial(
    config: &Config,
    own_vantage: &str,
    known: &KnownServers,
    handed: Option<persist::SavedState>,
) -> Restored {
    let mut initial = Restored::default();
    let labels: BTreeMap<String, EndpointIndex> = (0..config.endpoints.len())
        .map(|i| {
            (
                config.endpoint_label(EndpointIndex(i as u32)),
                EndpointIndex(i as u32),
            )
        })
        .collect();
    let saved = match (handed, &config.health.state_file) {
        (Some(state), _) => {
            tracing::info!("health state and overrides handed over by the process replaced");
            Ok(Some(state))
        }
        (None, Some(path)) => persist::load(path),
        (None, None) => Ok(None),
    };
    let from = config
        .health
        .state_file
        .as_ref()
        .map_or_else(String::new, |p| p.display().to_string());
    {
        match saved {
            Ok(Some(saved)) => {
                tracing::info!(path = %from, endpoints = saved.endpoints.len(), "health state restored");
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
                initial.history = saved
                    .endpoints
                    .iter()
                    .map(|(label, e)| {
                        let history = History {
                            changed_at_ms: e.changed_at_ms,
                            changes: e.changes,
                            downs: e.downs,
                            down_ms: e.down_ms,
                        };
                        (label.clone(), (e.state, history))
                    })
                    .collect();
                initial.counted_since_ms = saved.counted_since_ms;
                initial.states = saved
                    .endpoints
                    .into_iter()
                    .map(|(k, v)| (k, v.state))
                    .collect();
                let now_ms = unix_ms();
                initial.overrides = saved
                    .overrides
                    .into_iter()
                    .filter(|entry| match check_entry(entry, None, now_ms) {
                        Ok(()) => true,
                        Err(why) => {
                            tracing::warn!(on = %entry.target, %why, "override in the state file ignored");
                            false
                        }
                    })
                    .collect();
                initial.primaries = saved.primaries;
                // Forces of an older state file: older than any override made since.
                initial.overrides.extend(
                    saved
                        .forced
                        .into_iter()
                        .map(|(label, state)| legacy_force(label, state)),
                );
            }
            Ok(None) if from.is_empty() => {}
            Ok(None) => tracing::info!(path = %from, "no saved health state yet"),
            Err(error) => {
                tracing::warn!(%error, "saved health state unusable; starting without it")
            }
        }
    }
    if !config.health.servers.is_empty() {
        let (peers, overrides) = ask_peers(config, own_vantage, known).await;
        if !peers.is_empty() || !overrides.is_empty() {
            tracing::info!(
                endpoints = peers.len(),
                overrides = overrides.len(),
                "health state and overrides taken from peers"
            );
        }
        initial.states.extend(peers);
        initial.overrides.extend(overrides);
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
        stamp: Stamp {
            origin: "state-file".to_owned(),
            ..Stamp::default()
        },
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

/// Asks every server for its decided states and overrides, all at once, with a
/// request signed by this server's peer key; takes the answers that come within
/// [`MORE_ANSWERS`] of the first (or [`PEER_TIMEOUT`] if none comes). Per endpoint, the
/// majority of the peers that answered (with a valid signature) wins; overrides are
/// checked like a sync's.
async fn ask_peers(
    config: &Config,
    own_vantage: &str,
    known: &KnownServers,
) -> (BTreeMap<String, HealthState>, Vec<Entry>) {
    use futures_util::StreamExt;
    let Ok(client) = crate::runtime::http::http_client_builder()
        .no_proxy()
        .connect_timeout(PEER_TIMEOUT)
        .timeout(PEER_TIMEOUT)
        .build()
    else {
        return (BTreeMap::new(), Vec::new());
    };
    // A fresh nonce the peers must sign back: an answer recorded earlier is useless.
    let nonce = format!("{:032x}", super::plane::process_nonce());
    let own_secret = config
        .health
        .vantage
        .and_then(|v| config.vantages[usize::from(v.0)].secret.clone());
    let signature = own_secret
        .as_ref()
        .map(|secret| sign_peer(secret, &request_text("/v1/state", &nonce)));
    let mut requests: futures_util::stream::FuturesUnordered<_> = config
        .health
        .servers
        .iter()
        .map(|server| {
            // The nonce is hex: no URL escaping needed.
            let mut request = client.get(format!("{server}/v1/state?nonce={nonce}"));
            if let Some(signature) = &signature {
                request = request
                    .header(VANTAGE_HEADER, own_vantage)
                    .header(SIGNATURE_HEADER, signature);
            }
            async move {
                let response = request.send().await.ok()?;
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
        })
        .collect();
    let mut votes: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut overrides = Vec::new();
    let now_ms = unix_ms();
    let mut deadline = tokio::time::Instant::now() + PEER_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline, requests.next()).await;
        let (signature, body) = match next {
            Ok(Some(Some(answer))) => answer,
            Ok(Some(None)) => continue,
            Ok(None) | Err(_) => break,
        };
        let Ok(state) = serde_json::from_slice::<PeerState>(&body) else {
            continue;
        };
        if state.vantage == own_vantage {
            continue;
        }
        let secret = config
            .vantage_by_name(&state.vantage)
            .and_then(|v| config.vantages[usize::from(v.0)].secret.clone());
        let authentic = secret.is_some_and(|s| verify_peer(&s, &body, &signature));
        let recent = state.nonce == nonce;
        if !authentic || !recent {
            tracing::warn!(peer = ?state.vantage, "ignoring unauthenticated or stale peer state");
            continue;
        }
        // It answered, signed, at a server URL: a server.
        known.learn(&state.vantage);
        for (endpoint, health) in state.endpoints {
            let entry = votes.entry(endpoint).or_default();
            match health {
                HealthState::Up => entry.0 += 1,
                HealthState::Down => entry.1 += 1,
            }
        }
        for entry in state.overrides {
            match check_entry(&entry, Some(config), now_ms) {
                Ok(()) => overrides.push(entry),
                Err(why) => {
                    tracing::warn!(peer = %state.vantage, on = %entry.target, %why, "override from a peer refused")
                }
            }
        }
        deadline = deadline.min(tokio::time::Instant::now() + MORE_ANSWERS);
    }
    let states = votes
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
        .collect();
    (states, overrides)
}
