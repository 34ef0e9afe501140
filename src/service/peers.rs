//! Override exchange between servers: every server sends its whole override set to
//! every peer in `[health] servers` at once after a change and every `staleness / 2`
//! (at most 10 s), and merges the set each peer signs back. So a server that was down
//! or partitioned catches up within one round after it can reach any peer. The sets
//! are small (one entry per overridden target), merging is idempotent, and a round
//! changes nothing once all agree.
//!
//! Each peer has a task of its own, with its own timeouts and back-off, so a peer that
//! is cut off or slow delays nobody else. Before its first push a task asks the URL
//! who answers there (`GET /v1/identity`, signed): that is how servers learn which
//! vantage points are servers (see [`crate::health::peering`]). Everything is signed
//! with the peer key, never with the report secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::plane::PlaneInput;
use crate::api::{Identity, OverrideSync};
use crate::config::{Config, Secret};
use crate::dns::SharedSnapshot;
use crate::health::board::local_identity;
use crate::health::overrides::Entry;
use crate::health::peering::{KnownServers, sign_peer, verify_peer};
use crate::health::report::{SIGNATURE_HEADER, VANTAGE_HEADER};
use crate::probe::reporter::unix_ms;
use crate::runtime::Backoff;

/// Shortest and longest time between rounds.
const MIN_ROUND: Duration = Duration::from_millis(500);
const MAX_ROUND: Duration = Duration::from_secs(10);

/// Time to connect to a peer, and for a whole exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the set of peers is compared with the configuration.
const CONFIG_CHECK: Duration = Duration::from_millis(500);

/// What every peer task shares.
#[derive(Clone)]
pub(crate) struct Exchange {
    /// The current snapshot (its config names this server and its peers).
    pub(crate) shared: SharedSnapshot,
    /// This server's overrides, as the plane publishes them.
    pub(crate) overrides: watch::Receiver<Arc<Vec<Entry>>>,
    /// Where merged entries go.
    pub(crate) inputs: mpsc::Sender<PlaneInput>,
    /// Vantage points seen answering at server URLs.
    pub(crate) known: Arc<KnownServers>,
    /// Woken when a peer unknown as a server signed something: look again.
    pub(crate) nudge: Arc<Notify>,
    /// While true (a replacing process takes over), nothing is exchanged.
    pub(crate) paused: watch::Receiver<bool>,
}

/// Runs the exchange until `shutdown`: one task per URL `servers_of` lists for the
/// current config (this server's own admin URLs left out).
pub(crate) fn spawn(
    exchange: Exchange,
    servers_of: impl Fn(&Config) -> Vec<String> + Send + 'static,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let Ok(client) = crate::runtime::http::http_client_builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(EXCHANGE_TIMEOUT)
            .build()
        else {
            tracing::error!("cannot build the HTTP client for override exchange");
            return;
        };
        let mut running: BTreeMap<String, CancellationToken> = BTreeMap::new();
        loop {
            let config = exchange.shared.load().config.clone();
            let wanted = servers_of(&config);
            running.retain(|url, token| {
                let keep = wanted.contains(url);
                if !keep {
                    token.cancel();
                }
                keep
            });
            for url in wanted {
                if running.contains_key(&url) {
                    continue;
                }
                let token = shutdown.child_token();
                let peer = PeerTask {
                    url: url.clone(),
                    client: client.clone(),
                    exchange: exchange.clone(),
                };
                tokio::spawn(peer.run(token.clone()));
                running.insert(url, token);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CONFIG_CHECK) => {}
            }
        }
    });
}

/// The exchange with one peer URL.
struct PeerTask {
    url: String,
    client: reqwest::Client,
    exchange: Exchange,
}

/// How one attempt went.
enum Outcome {
    /// Exchanged (and merged what the peer sent).
    Exchanged,
    /// The URL is this server.
    Myself,
    /// Failed: retried after a back-off.
    Failed(String),
}

impl PeerTask {
    async fn run(mut self, stop: CancellationToken) {
        let mut overrides = self.exchange.overrides.clone();
        let mut identity: Option<String> = None;
        let mut backoff = Backoff::default();
        let mut failing = false;
        loop {
            let config = self.exchange.shared.load().config.clone();
            let round = (config.health.staleness / 2).clamp(MIN_ROUND, MAX_ROUND);
            let (name, _) = local_identity(&config);
            let secret = config
                .health
                .vantage
                .and_then(|v| config.vantages[usize::from(v.0)].secret.clone());
            // Marked seen before the push: a change made meanwhile wakes the next one.
            let entries = overrides.borrow_and_update().as_ref().clone();
            let mut paused = self.exchange.paused.clone();
            if *paused.borrow_and_update() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = paused.changed() => {}
                }
                continue;
            }
            let outcome = match &secret {
                None => Outcome::Failed("this server has no vantage secret".to_owned()),
                Some(secret) => {
                    self.attempt(&config, &name, secret, entries, &mut identity)
                        .await
                }
            };
            let wait = match outcome {
                Outcome::Exchanged => {
                    if failing {
                        tracing::info!(peer = %self.url, "overrides exchanged with peer again");
                    }
                    failing = false;
                    backoff.reset();
                    round
                }
                Outcome::Myself => {
                    // Another name of this server: nothing to exchange; look again
                    // now and then (the URL may come to name another server).
                    identity = None;
                    MAX_ROUND
                }
                Outcome::Failed(why) => {
                    if !failing {
                        // `why` may quote the peer's answer: escaped.
                        tracing::warn!(peer = %self.url, why = ?why, "cannot exchange overrides with peer");
                    }
                    failing = true;
                    identity = None;
                    backoff
                        .next_delay()
                        .max(Duration::from_millis(100))
                        .min(round)
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = overrides.changed() => if changed.is_err() { return },
                _ = self.exchange.nudge.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Learns who answers at the URL (once), then pushes `entries` and merges the
    /// answer.
    async fn attempt(
        &mut self,
        config: &Config,
        name: &str,
        secret: &Secret,
        entries: Vec<Entry>,
        identity: &mut Option<String>,
    ) -> Outcome {
        let peer = match identity {
            Some(peer) => peer.clone(),
            None => match self.identify(config).await {
                Ok(peer) => {
                    *identity = Some(peer.clone());
                    peer
                }
                Err(why) => return Outcome::Failed(why),
            },
        };
        if peer == name {
            return Outcome::Myself;
        }
        let sync = OverrideSync {
            vantage: name.to_owned(),
            sent_at_ms: unix_ms(),
            entries,
        };
        let body = serde_json::to_vec(&sync).unwrap_or_default();
        let signature = sign_peer(secret, &body);
        let url = format!("{}/v1/overrides/sync", self.url.trim_end_matches('/'));
        let sent = self
            .client
            .post(url)
            .header(VANTAGE_HEADER, name)
            .header(SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let (body, signature) = match signed_answer(sent).await {
            Ok(answer) => answer,
            Err(why) if why.starts_with("409") && why.contains("this is the sender itself") => {
                return Outcome::Myself;
            }
            Err(why) => return Outcome::Failed(why),
        };
        let Ok(answer) = serde_json::from_slice::<OverrideSync>(&body) else {
            return Outcome::Failed("malformed answer".to_owned());
        };
        if answer.vantage != peer || !signed_by(config, &peer, &body, &signature) {
            return Outcome::Failed(format!("answer not signed by {peer}"));
        }
        let (reply, _answer) = oneshot::channel();
        let input = PlaneInput::PeerOverrides {
            from: peer,
            entries: answer.entries,
            reply,
        };
        let _ = self.exchange.inputs.send(input).await;
        Outcome::Exchanged
    }

    /// Asks who answers at the URL; a signed answer from a configured vantage point
    /// makes it a known server.
    async fn identify(&self, config: &Config) -> Result<String, String> {
        let nonce = format!("{:032x}", super::plane::process_nonce());
        let url = format!(
            "{}/v1/identity?nonce={nonce}",
            self.url.trim_end_matches('/')
        );
        let (body, signature) = signed_answer(self.client.get(url).send().await).await?;
        let identity: Identity =
            serde_json::from_slice(&body).map_err(|_| "malformed identity".to_owned())?;
        if identity.nonce != nonce || !signed_by(config, &identity.vantage, &body, &signature) {
            return Err(format!(
                "identity not signed by a configured vantage point ({:?})",
                identity.vantage
            ));
        }
        self.exchange.known.learn(&identity.vantage);
        Ok(identity.vantage)
    }
}

/// The body and signature of a successful answer (or why there is none).
async fn signed_answer(
    sent: reqwest::Result<reqwest::Response>,
) -> Result<(axum::body::Bytes, String), String> {
    let response = sent.map_err(|e| describe(&e))?;
    let status = response.status();
    let signature = response
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.map_err(|e| describe(&e))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("{}: {}", status.as_u16(), text.trim()));
    }
    let signature = signature.ok_or_else(|| "answer not signed".to_owned())?;
    Ok((body, signature))
}

/// Whether `body` is signed with the peer key of `vantage` under `config`.
fn signed_by(config: &Config, vantage: &str, body: &[u8], signature: &str) -> bool {
    config
        .vantage_by_name(vantage)
        .and_then(|v| config.vantages[usize::from(v.0)].secret.clone())
        .is_some_and(|secret| verify_peer(&secret, body, signature))
}

/// A transport error with its cause ("connection refused", "timed out").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
