//! Server-to-server exchange (operator overrides, state at a cold start, identity):
//! who may take part, and the key it is signed with.
//!
//! - **Its own key.** Peer messages are signed with a key derived from the sender's
//!   vantage secret and a purpose label, never with the secret itself, so nothing a
//!   server signs for a peer can pass as a report, and the other way round.
//! - **Servers only.** Agents report; they never change overrides. A vantage point is
//!   a server when the config says `role = "server"`, or — without a role — once it
//!   has answered, signed, at one of the URLs in `[health] servers` (an agent is not
//!   found there). `role = "agent"` is never taken as a server.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, Secret, VantageRole};
use crate::health::report::{sign, verify};

/// Purpose label of the derived peer key.
const PEER_KEY_LABEL: &[u8] = b"failoverd peer exchange v1";

/// The key peer messages of a vantage point are signed with: HMAC-SHA256 of the
/// purpose label under its secret.
pub(crate) fn peer_key(secret: &Secret) -> Secret {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose())
        .expect("HMAC takes keys of any length");
    mac.update(PEER_KEY_LABEL);
    Secret::new(mac.finalize().into_bytes().to_vec())
}

/// Signature header value of a peer message `body` from the holder of `secret`.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn sign_peer(secret: &Secret, body: &[u8]) -> String {
    sign(&peer_key(secret), body)
}

/// Whether `header` is the signature of a peer message `body` by `secret`'s holder.
pub(crate) fn verify_peer(secret: &Secret, body: &[u8], header: &str) -> bool {
    verify(&peer_key(secret), body, header)
}

/// What is signed to ask a peer for its state or identity: the path and the nonce.
pub(crate) fn request_text(path: &str, nonce: &str) -> Vec<u8> {
    format!("GET {path}?nonce={nonce}").into_bytes()
}

/// Where a vantage point stands in peer exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// A server: its exchange is taken.
    Server,
    /// A probe agent (by the config): refused, 403.
    Agent,
    /// Not known as a server yet (no role, not yet seen at a server URL): refused,
    /// 403, and this server looks at its peers' URLs again.
    Unknown,
}

/// The vantage points seen answering at the URLs of `[health] servers`.
#[derive(Debug, Default)]
pub(crate) struct KnownServers(ArcSwap<BTreeSet<String>>);

impl KnownServers {
    /// A new, empty set.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Notes that `vantage` answered, signed, at a server URL.
    pub(crate) fn learn(&self, vantage: &str) {
        if !self.0.load().contains(vantage) {
            self.0.rcu(|known| {
                let mut known = BTreeSet::clone(known);
                known.insert(vantage.to_owned());
                known
            });
        }
    }

    /// Where `vantage` stands under `config`.
    pub(crate) fn standing(&self, config: &Config, vantage: &str) -> Standing {
        standing(config, vantage, &self.0.load())
    }
}

/// Where `vantage` stands (pure): the config's role first, then what was learned.
pub(crate) fn standing(config: &Config, vantage: &str, learned: &BTreeSet<String>) -> Standing {
    let role = config
        .vantage_by_name(vantage)
        .and_then(|v| config.vantages[usize::from(v.0)].role);
    match role {
        Some(VantageRole::Server) => Standing::Server,
        Some(VantageRole::Agent) => Standing::Agent,
        None if learned.contains(vantage) => Standing::Server,
        None => Standing::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn config() -> Config {
        let text = r#"
version = 1
[vantages.s1]
secret = "secret-of-s1-0123456789"
role = "server"
[vantages.s2]
secret = "secret-of-s2-0123456789"
[vantages.a4]
secret = "secret-of-a4-0123456789"
role = "agent"
"#;
        match Config::load(ConfigSource::from_text(text.to_owned(), ".")) {
            Ok((config, _)) => config,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn roles_from_the_config_win_and_the_rest_is_learned() {
        let config = config();
        let mut learned = BTreeSet::new();
        assert_eq!(standing(&config, "s1", &learned), Standing::Server);
        assert_eq!(standing(&config, "s2", &learned), Standing::Unknown);
        assert_eq!(standing(&config, "a4", &learned), Standing::Agent);
        assert_eq!(standing(&config, "nobody", &learned), Standing::Unknown);
        learned.insert("s2".to_owned());
        learned.insert("a4".to_owned());
        assert_eq!(standing(&config, "s2", &learned), Standing::Server);
        // An agent by the config stays one, whatever answers where.
        assert_eq!(standing(&config, "a4", &learned), Standing::Agent);
    }

    #[test]
    fn peer_signatures_are_not_report_signatures() {
        let secret = Secret::new("secret-of-s1-0123456789");
        let body = br#"{"vantage":"s1"}"#;
        let as_peer = sign_peer(&secret, body);
        assert!(verify_peer(&secret, body, &as_peer));
        assert!(
            !verify(&secret, body, &as_peer),
            "a peer signature is no report"
        );
        assert!(!verify_peer(&secret, body, &sign(&secret, body)));
    }
}
