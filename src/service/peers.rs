//! Override exchange between servers: every server sends its whole override set
//! (signed by its vantage secret) to every peer in `[health] servers`, at once after a
//! change and every `staleness / 2` (at most 10 s), and merges the set each peer
//! signs back. So a server that was down or partitioned catches up within one round
//! after it can reach any peer. The sets are small (one entry per overridden target),
//! merging is idempotent, and a round changes nothing once all agree.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::plane::PlaneInput;
use crate::admin::api::OverrideSync;
use crate::config::Config;
use crate::dns::SharedSnapshot;
use crate::health::board::local_identity;
use crate::health::overrides::Entry;
use crate::health::report::{SIGNATURE_HEADER, VANTAGE_HEADER, sign, verify};
use crate::probe::reporter::unix_ms;

/// Shortest and longest time between rounds.
const MIN_ROUND: Duration = Duration::from_millis(500);
const MAX_ROUND: Duration = Duration::from_secs(10);

/// Whether a peer took the last round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reached {
    Yes,
    No,
}

/// Runs the exchange until `shutdown`. `servers_of` lists the peers of a config
/// (this server's own admin URLs left out).
pub(crate) fn spawn(
    shared: SharedSnapshot,
    mut overrides: watch::Receiver<Arc<Vec<Entry>>>,
    inputs: mpsc::Sender<PlaneInput>,
    servers_of: impl Fn(&Config) -> Vec<String> + Send + 'static,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let Ok(client) = crate::probe::tls::http_client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
        else {
            tracing::error!("cannot build the HTTP client for override sync");
            return;
        };
        let mut reached: BTreeMap<String, Reached> = BTreeMap::new();
        // URLs that turned out to be this server (by another name than its listen address).
        let mut myself: BTreeSet<String> = BTreeSet::new();
        loop {
            let config = shared.load().config.clone();
            let round = (config.health.staleness / 2).clamp(MIN_ROUND, MAX_ROUND);
            let (name, _) = local_identity(&config);
            let secret = config
                .health
                .vantage
                .and_then(|v| config.vantages[usize::from(v.0)].secret.clone());
            // Marked seen every round, sent or not (the wait below marks it too).
            let entries = overrides.borrow_and_update().as_ref().clone();
            let peers: Vec<String> = servers_of(&config)
                .into_iter()
                .filter(|s| !myself.contains(s))
                .collect();
            if let (Some(secret), false) = (secret, peers.is_empty()) {
                let sync = OverrideSync {
                    vantage: name.clone(),
                    sent_at_ms: unix_ms(),
                    entries,
                };
                let body = serde_json::to_vec(&sync).unwrap_or_default();
                let signature = sign(&secret, &body);
                let rounds = peers.iter().map(|peer| {
                    let (client, body, signature, name, config) = (
                        client.clone(),
                        body.clone(),
                        signature.clone(),
                        name.clone(),
                        config.clone(),
                    );
                    async move {
                        let url = format!("{}/v1/overrides/sync", peer.trim_end_matches('/'));
                        let result = client
                            .post(url)
                            .header(VANTAGE_HEADER, name)
                            .header(SIGNATURE_HEADER, signature)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        (peer.clone(), exchange(result, &config).await)
                    }
                });
                for (peer, outcome) in futures_util::future::join_all(rounds).await {
                    let now = match outcome {
                        Outcome::Merged(from, entries) => {
                            let (reply, _answer) = oneshot::channel();
                            let input = PlaneInput::PeerOverrides {
                                from,
                                entries,
                                reply,
                            };
                            let _ = inputs.send(input).await;
                            Reached::Yes
                        }
                        Outcome::Myself => {
                            myself.insert(peer.clone());
                            continue;
                        }
                        Outcome::Failed(why) => {
                            if reached.get(&peer) != Some(&Reached::No) {
                                // `why` may quote the peer's answer: escaped.
                                tracing::warn!(%peer, why = ?why, "cannot exchange overrides with peer");
                            }
                            Reached::No
                        }
                    };
                    if now == Reached::Yes && reached.get(&peer) == Some(&Reached::No) {
                        tracing::info!(%peer, "overrides exchanged with peer again");
                    }
                    reached.insert(peer, now);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = overrides.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(round) => {}
            }
        }
    });
}

enum Outcome {
    Merged(String, Vec<Entry>),
    Myself,
    Failed(String),
}

/// Checks a peer's answer: signed by a configured vantage point (not this one).
async fn exchange(result: reqwest::Result<reqwest::Response>, config: &Config) -> Outcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let status = response.status();
    let signature = response
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    if status == reqwest::StatusCode::CONFLICT && body.starts_with(b"this is the sender itself") {
        return Outcome::Myself;
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Outcome::Failed(format!("{status}: {}", text.trim()));
    }
    let Ok(sync) = serde_json::from_slice::<OverrideSync>(&body) else {
        return Outcome::Failed("malformed answer".to_owned());
    };
    let secret = config
        .vantage_by_name(&sync.vantage)
        .and_then(|v| config.vantages[usize::from(v.0)].secret.clone());
    match (secret, signature) {
        (Some(secret), Some(signature)) if verify(&secret, &body, &signature) => {
            Outcome::Merged(sync.vantage, sync.entries)
        }
        (None, _) => Outcome::Failed(format!(
            "{} is not a vantage point with a secret",
            sync.vantage
        )),
        _ => Outcome::Failed("answer not signed by the peer".to_owned()),
    }
}
