//! Endpoint health from a running failoverd server, for mirror mode: polls the admin
//! API's `GET {url}/v1/health` and publishes a [`HealthSnapshot`] on a watch channel
//! whenever it changes.
//!
//! The answer looks like
//! `{"generation": 7, "endpoints": [{"endpoint": "web-eu/eu-1", "state": "up"}, …]}`.
//! Endpoints missing from the answer keep the configuration's default (forced state,
//! else up); unknown endpoints are ignored. A server with `[[admin.tokens]]` answers
//! only with a bearer token of the `read` role (or `operate`): see
//! [`HealthFeed::with_token`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::overrides::Effects;
use crate::health::{EndpointHealth, HealthSnapshot, HealthSource, published};
use crate::model::{EndpointIndex, HealthState};

/// Errors of the health feed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum HealthFeedError {
    /// The URL is not a usable `http://` or `https://` URL.
    #[error("invalid health URL {0:?}: {1}")]
    Url(String, String),
    /// The request failed.
    #[error("GET {0}: {1}")]
    Request(String, String),
    /// The server answered with an error status.
    #[error("GET {0}: HTTP {1}")]
    Status(String, u16),
    /// The server wants a token and none was sent (HTTP 401).
    #[error(
        "GET {0}: HTTP 401: the server needs a bearer token of the read role; give \
         --token-file FILE (the token on its first line) or set FAILOVERD_TOKEN"
    )]
    NoToken(String),
    /// The server refused the token sent (HTTP 401 or 403).
    #[error(
        "GET {0}: HTTP {1}: the server refused the token from --token-file / \
         FAILOVERD_TOKEN; check it is one of the server's [[admin.tokens]] (role read \
         or operate)"
    )]
    TokenRefused(String, u16),
    /// The answer is not the expected JSON.
    #[error("GET {0}: bad JSON: {1}")]
    Json(String, String),
}

/// The JSON answer of `/v1/health`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HealthReport {
    /// Health generation (increases on every change).
    pub generation: u64,
    /// Per-endpoint states.
    pub endpoints: Vec<EndpointReport>,
    /// Records an operator failed over.
    #[serde(default)]
    pub failovers: Vec<FailoverReport>,
    /// `primary` records' last agreed primary.
    #[serde(default)]
    pub primaries: Vec<PrimaryReport>,
    /// Pools an operator dialled.
    #[serde(default)]
    pub dials: Vec<crate::api::PoolDial>,
}

/// One agreed primary of a [`HealthReport`].
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PrimaryReport {
    /// Owner name.
    pub record: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The endpoint (`pool/name`).
    pub endpoint: String,
}

/// One manual failover of a [`HealthReport`].
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct FailoverReport {
    /// Owner name.
    pub record: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The pool answered first.
    pub pool: String,
}

/// One endpoint of a [`HealthReport`].
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct EndpointReport {
    /// `pool/endpoint`.
    pub endpoint: String,
    /// `up` or `down`.
    pub state: HealthState,
    /// Drained by an operator.
    #[serde(default)]
    pub drained: bool,
    /// Forced to this state (operator or config).
    #[serde(default)]
    pub forced: Option<HealthState>,
}

impl HealthReport {
    /// The snapshot this report describes for `config`.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn snapshot(&self, config: &Config) -> HealthSnapshot {
        let reported: std::collections::HashMap<&str, EndpointHealth> = self
            .endpoints
            .iter()
            .map(|e| {
                let health = match e.forced {
                    Some(state) => EndpointHealth {
                        state,
                        source: HealthSource::Forced,
                    },
                    None => EndpointHealth {
                        state: e.state,
                        source: HealthSource::Observed,
                    },
                };
                (e.endpoint.as_str(), health)
            })
            .collect();
        let decided =
            published::decided_by_label(config, &[], |label| reported.get(label).copied());
        let drained_labels: std::collections::HashSet<&str> = self
            .endpoints
            .iter()
            .filter(|e| e.drained)
            .map(|e| e.endpoint.as_str())
            .collect();
        // An operator's drains and manual failovers shape mirror-mode answers too.
        let effects = Effects {
            forced: Vec::new(),
            drained: (0..config.endpoints.len())
                .map(|i| {
                    drained_labels.contains(config.endpoint_label(EndpointIndex(i as u32)).as_str())
                })
                .collect(),
            pins: config
                .records
                .iter()
                .map(|record| {
                    let failover = self
                        .failovers
                        .iter()
                        .find(|f| same_record(&f.record, &f.record_type, record))?;
                    config.pool_by_name(&failover.pool)
                })
                .collect(),
            dials: config
                .pools
                .iter()
                .map(|pool| {
                    let dial = self.dials.iter().find(|d| d.pool == pool.name)?;
                    crate::health::overrides::Percent::new(i64::from(dial.percent)).ok()
                })
                .collect(),
        };
        // The server's agreed primaries: a mirrored `primary` record answers what
        // the server answers (the last agreed primary while claims conflict).
        let primaries = config
            .records
            .iter()
            .map(|record| {
                let primary = self
                    .primaries
                    .iter()
                    .find(|p| same_record(&p.record, &p.record_type, record))?;
                config.endpoint_by_label(&primary.endpoint)
            })
            .collect();
        published::compose(decided, &effects, |_| primaries)
    }
}

/// Whether a record named in a report (name, type) is `record`.
fn same_record(name: &str, record_type: &str, record: &crate::config::DynamicRecord) -> bool {
    crate::sync::model::canonical_name(name) == crate::sync::model::canonical_name(&record.name)
        && record_type.eq_ignore_ascii_case(&record.record_type.to_string())
}

/// A client of one server's `/v1/health`.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HealthFeed {
    url: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl HealthFeed {
    /// A feed from a server's admin base URL (`http://host:port` or `https://…`).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(base_url: &str) -> Result<Self, HealthFeedError> {
        let url = format!("{}/v1/health", base_url.trim_end_matches('/'));
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HealthFeedError::Url(url, "use http:// or https://".into()));
        }
        let client = crate::runtime::http::http_client_builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| HealthFeedError::Url(url.clone(), e.to_string()))?;
        Ok(Self {
            url,
            client,
            token: None,
        })
    }

    /// The `/v1/health` URL polled.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Sends `token` as a bearer token with every request (a server with
    /// `[[admin.tokens]]` needs one of the `read` role).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Fetches the current report.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn fetch(&self) -> Result<HealthReport, HealthFeedError> {
        let url = self.url.clone();
        let mut request = self.client.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| HealthFeedError::Request(url.clone(), e.to_string()))?;
        let status = response.status().as_u16();
        match (status, &self.token) {
            (200, _) => {}
            (401, None) => return Err(HealthFeedError::NoToken(url)),
            (401 | 403, Some(_)) => return Err(HealthFeedError::TokenRefused(url, status)),
            _ => return Err(HealthFeedError::Status(url, status)),
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| HealthFeedError::Request(url.clone(), e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| HealthFeedError::Json(url, e.to_string()))
    }

    /// Polls every `interval` until `shutdown`, publishing changed snapshots. Errors
    /// are logged and the last snapshot is kept.
    pub(crate) async fn run(
        self,
        config: Arc<Config>,
        interval: Duration,
        sender: watch::Sender<Arc<HealthSnapshot>>,
        shutdown: CancellationToken,
    ) {
        let mut generation = None;
        loop {
            match self.fetch().await {
                Ok(report) => {
                    let snapshot = report.snapshot(&config);
                    // The first answer is always published: `sync` waits for live
                    // health before it writes mirror-mode records.
                    let first = generation.is_none();
                    let changed = sender.send_if_modified(|current| {
                        if **current == snapshot && !first {
                            false
                        } else {
                            *current = Arc::new(snapshot);
                            true
                        }
                    });
                    if changed || generation != Some(report.generation) {
                        tracing::debug!(generation = report.generation, changed, "health report");
                    }
                    generation = Some(report.generation);
                }
                Err(error) => {
                    tracing::warn!(error = %crate::logs::Escaped(&error), "cannot read health; keeping the last known")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_maps_labels_and_keeps_defaults_for_missing_endpoints() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/route53.toml");
        let (config, _) = Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let report: HealthReport = serde_json::from_str(
            r#"{"generation": 7, "endpoints": [
                {"endpoint": "web-eu/eu-1", "state": "down"},
                {"endpoint": "web-us/us-2", "state": "up"},
                {"endpoint": "nowhere/x", "state": "down"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.generation, 7);
        let snapshot = report.snapshot(&config);
        let label = |i: u32| config.endpoint_label(EndpointIndex(i));
        assert_eq!(label(0), "web-eu/eu-1");
        assert_eq!(snapshot.state(EndpointIndex(0)), HealthState::Down);
        assert_eq!(snapshot.state(EndpointIndex(1)), HealthState::Up);
        assert_eq!(
            snapshot.get(EndpointIndex(1)).map(|h| h.source),
            Some(HealthSource::Assumed)
        );
        assert_eq!(
            snapshot.get(EndpointIndex(3)).map(|h| h.source),
            Some(HealthSource::Observed)
        );
        assert_eq!(snapshot.last_primary(crate::model::RecordIndex(0)), None);
        assert!(HealthFeed::new("https://example.com").is_ok());
        assert!(HealthFeed::new("ftp://example.com").is_err());
        assert!(HealthFeed::new("http://127.0.0.1:9353/").is_ok());
    }

    #[test]
    fn report_carries_drains_failovers_and_agreed_primaries_into_the_published_health() {
        let text = r#"
version = 1
[pools.db]
endpoints = [{ address = "10.0.0.1", name = "a" }, { address = "10.0.0.2", name = "b" }]
[pools.web]
endpoints = [{ address = "10.0.1.1", name = "w" }]
[pools.sorry]
endpoints = [{ address = "10.0.2.1", name = "s" }]
[[records]]
name = "db.example."
type = "A"
policy = "primary"
pools = ["db"]
[[records]]
name = "www.example."
type = "A"
policy = "failover"
pools = ["web", "sorry"]
"#;
        let (config, _) =
            Config::load(crate::config::ConfigSource::from_text(text.to_owned(), "."))
                .unwrap_or_else(|e| panic!("{e}"));
        let report: HealthReport = serde_json::from_str(
            r#"{"generation": 3, "endpoints": [
                {"endpoint": "db/a", "state": "up"},
                {"endpoint": "db/b", "state": "up", "drained": true}],
              "failovers": [{"record": "WWW.example", "type": "a", "pool": "sorry"}],
              "primaries": [{"record": "db.example.", "type": "A", "endpoint": "db/b"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let snapshot = report.snapshot(&config);
        assert!(snapshot.drained(EndpointIndex(1)));
        assert_eq!(
            snapshot.pin(crate::model::RecordIndex(1)),
            config.pool_by_name("sorry")
        );
        assert_eq!(
            snapshot.last_primary(crate::model::RecordIndex(0)),
            Some(EndpointIndex(1))
        );
    }
}
