//! The admin HTTP API: reports from vantage points, status ("why is this the
//! answer?"), metrics, liveness and readiness, operator overrides.
//!
//! | method | path | who |
//! |---|---|---|
//! | POST | `/v1/reports` | a vantage point (signed report) |
//! | GET | `/v1/state` | a peer server starting cold (signed request or read token; signed answer) |
//! | GET | `/v1/identity` | anyone: which vantage point answers here (signed) |
//! | POST | `/v1/overrides/sync` | a peer server (signed both ways; agents get 403) |
//! | GET | `/v1/health` | read |
//! | GET | `/v1/status`, `/status` | read (public if `status` is) |
//! | GET | `/v1/endpoints`, `/v1/pools`, `/v1/records` | read: parts of status |
//! | GET | `/v1/overrides` | read |
//! | GET, POST | `/v1/explain` | read: the answer a client gets, and why (what-if) |
//! | GET | `/v1/events` | read (public if `status` is): recent events, `since_time=` from the journal; `follow=true` streams JSON lines |
//! | POST | `/v1/reload` | operate: reload the configuration file |
//! | GET | `/v1/stats` | read: DNS query statistics (`ctl stats`) |
//! | GET | `/v1/zone?name=` | read: a zone as served now, zone-file text (`ctl zone-read`) |
//! | POST | `/v1/overrides` | operate: make an override (a target, a pattern or a region) |
//! | POST | `/v1/overrides/release` | operate: release one (404 when nothing is in force) |
//! | PUT | `/v1/endpoints/{pool}/{name}/force` | operate: the older form of force / release |
//! | GET | `/`, `/ui` | anyone: the status page (it reads the API with the visitor's token) |
//! | GET | `/metrics` | read (public if `metrics` is) |
//! | GET | `/healthz`, `/readyz` | public by default |
//!
//! Who may call what is in [`auth`]; request bodies are strict ([`body`]).

pub(crate) mod attention;
pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod explain;
mod guard;
mod limits;
mod listen;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

pub(crate) use self::listen::{AdminError, Listen, ListenerStats, Peer, bind, connection_cap};

use self::auth::{Operator, Reader, SharedAccess, public};
use self::body::Strict;
use self::explain::{ExplainError, ExplainQuery, Explanation};
use crate::api::{
    self, ForceRequest, HealthView, OverrideRequest, OverridesView, ReleaseRequest, Status,
};
use crate::health::overrides::{Action, Change, Entry, OverrideError, Target};
use crate::health::report::{
    CHALLENGE_HEADER, ERROR_HEADER, ReportError, SIGNATURE_HEADER, VANTAGE_HEADER,
};
use crate::model::HealthState;
use crate::telemetry::events::{Event, EventLog};

/// Why a peer's override sync (or state request) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SyncError {
    /// Unknown sender, no secret, or a bad signature.
    #[error("not signed by a configured vantage point")]
    Unauthenticated,
    /// Signed by a vantage point that is not a server (an agent, or one not known
    /// as a server yet): override exchange is for servers only.
    #[error("{0}")]
    NotAServer(String),
    /// Not an override sync.
    #[error("malformed override sync")]
    Malformed,
    /// Sent too long ago (or from a clock far off).
    #[error("sent at a time too far from this server's clock")]
    Stale,
    /// The sender is this server.
    #[error("this is the sender itself")]
    Myself,
}

impl SyncError {
    /// Metric label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::NotAServer(_) => "not_a_server",
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::Myself => "myself",
        }
    }

    /// Every label, for metrics.
    pub(crate) const LABELS: [&'static str; 5] = [
        "unauthenticated",
        "not_a_server",
        "malformed",
        "stale",
        "myself",
    ];
}

/// What the admin API needs from the running service.
#[async_trait::async_trait]
pub(crate) trait AdminBackend: Send + Sync + 'static {
    /// Authenticates and applies a report; also returns the current challenge.
    async fn submit_report(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> (Result<(), ReportError>, String);
    /// Makes an operator's override or release on this server: the entries made.
    async fn change_override(&self, change: Change) -> Result<Vec<Entry>, OverrideError>;
    /// Takes a peer's signed overrides; answers with this server's, signed (body,
    /// signature).
    async fn sync_overrides(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> Result<(Vec<u8>, Option<String>), SyncError>;
    /// Every override and release this server knows.
    fn overrides(&self) -> OverridesView;
    /// Reloads the configuration from where the process read it.
    async fn reload(&self) -> Result<api::ReloadStatus, String>;
    /// Recent events.
    fn events(&self) -> Arc<EventLog>;
    /// The answer a client gets now (or under assumptions), and why.
    fn explain(&self, query: &ExplainQuery) -> Result<Explanation, ExplainError>;
    /// Current status.
    fn status(&self) -> Arc<Status>;
    /// Decided state per endpoint.
    fn health(&self) -> HealthView;
    /// Signed decided states and overrides (body, signature) echoing `nonce`, if this
    /// server has a vantage secret.
    fn peer_state(&self, nonce: String) -> Option<(Vec<u8>, String)>;
    /// Checks a peer's signed request (`text`, see
    /// [`crate::health::peering::request_text`]): signed by a server's peer key.
    fn check_peer_request(
        &self,
        vantage: Option<String>,
        signature: Option<String>,
        text: &[u8],
    ) -> Result<(), SyncError>;
    /// This server's vantage name signed with its peer key, echoing `nonce` (None: not
    /// a server, or no secret).
    fn identity(&self, nonce: String) -> Option<(Vec<u8>, String)>;
    /// Prometheus text.
    fn metrics(&self) -> String;
    /// DNS query statistics (the counters of [`Self::metrics`], grouped).
    fn stats(&self) -> api::Stats {
        api::Stats::from_metrics(&self.metrics())
    }
    /// A zone as served now, in zone-file text (heavy for a large zone: called off
    /// the async workers).
    fn zone_text(&self, zone: &str) -> Result<String, crate::dns::zone_text::ZoneReadError>;
    /// Whether the server can serve and keep changes: start-up complete, the state
    /// file writable (Err: why not).
    fn ready(&self) -> Result<(), String>;
}

/// The running service as the handlers reach it.
pub(crate) type Backend = Arc<dyn AdminBackend>;

/// What every handler gets.
#[derive(Clone)]
struct AppState {
    backend: Backend,
    access: SharedAccess,
}

impl FromRef<AppState> for SharedAccess {
    fn from_ref(state: &AppState) -> Self {
        state.access.clone()
    }
}

impl FromRef<AppState> for Backend {
    fn from_ref(state: &AppState) -> Self {
        state.backend.clone()
    }
}

/// Every route of the admin API, behind the cross-site guard ([`guard`]).
pub(crate) fn router(backend: Backend, access: SharedAccess) -> Router {
    Router::new()
        .route("/v1/reports", post(submit_report))
        .route("/v1/state", get(peer_state))
        .route("/v1/identity", get(identity))
        .route("/v1/overrides/sync", post(sync_overrides))
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/endpoints", get(endpoints))
        .route("/v1/pools", get(pools))
        .route("/v1/records", get(records))
        .route("/status", get(status))
        .route("/v1/overrides", get(list_overrides).post(make_override))
        .route("/v1/overrides/release", post(release_override))
        .route("/v1/endpoints/{pool}/{name}/force", put(force))
        .route("/v1/explain", get(explain_get).post(explain_post))
        .route("/v1/events", get(events))
        .route("/v1/reload", post(reload))
        .route("/v1/stats", get(stats))
        .route("/v1/zone", get(zone_read))
        .route("/", get(page))
        .route("/ui", get(page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .layer(axum::middleware::from_fn_with_state(
            access.clone(),
            guard::guard,
        ))
        .with_state(AppState { backend, access })
}

async fn submit_report(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (result, challenge) = backend
        .submit_report(
            body,
            header_of(&headers, VANTAGE_HEADER),
            header_of(&headers, SIGNATURE_HEADER),
        )
        .await;
    let challenge = [(header::HeaderName::from_static(CHALLENGE_HEADER), challenge)];
    match result {
        Ok(()) => (StatusCode::NO_CONTENT, challenge).into_response(),
        Err(error) => {
            let status = match error {
                ReportError::Malformed => StatusCode::BAD_REQUEST,
                ReportError::UnknownVantage | ReportError::BadSignature => StatusCode::UNAUTHORIZED,
                ReportError::Challenge | ReportError::Replay | ReportError::Resync => {
                    StatusCode::CONFLICT
                }
            };
            let why = [(
                header::HeaderName::from_static(ERROR_HEADER),
                error.label().to_owned(),
            )];
            (status, challenge, why, format!("{error}\n")).into_response()
        }
    }
}

fn header_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `GET /v1/state?nonce=…`.
#[derive(serde::Deserialize)]
struct StateQuery {
    #[serde(default)]
    nonce: String,
}

/// Accepts a nonce of at most 64 hex digits (what peers send).
fn nonce_ok(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.len() <= 64 && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /v1/state?nonce=…`: for a peer starting cold. Needs a read token when tokens
/// are configured, or a request signed by a server's peer key (servers have no
/// tokens); the answer is signed with this server's peer key.
async fn peer_state(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<StateQuery>,
) -> Response {
    if !nonce_ok(&query.nonce) {
        return bad_request("nonce: 1 to 64 hex digits");
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let by_token = auth::authorize(
        &state.access.load(),
        auth::Need::Read(None),
        bearer,
        Some(peer.0),
    );
    if let Err(refusal) = by_token {
        let text = crate::health::peering::request_text("/v1/state", &query.nonce);
        let signed = state.backend.check_peer_request(
            header_of(&headers, VANTAGE_HEADER),
            header_of(&headers, SIGNATURE_HEADER),
            &text,
        );
        match signed {
            Ok(()) => {}
            Err(SyncError::Unauthenticated) => return refusal.into_response(),
            Err(error) => return sync_refused(error),
        }
    }
    match state.backend.peer_state(query.nonce) {
        Some((body, signature)) => signed_json(body, signature),
        None => (StatusCode::NOT_FOUND, "this server has no vantage secret\n").into_response(),
    }
}

/// `GET /v1/identity?nonce=…`: which vantage point answers here, signed (how servers
/// learn which vantage points are servers).
async fn identity(
    State(backend): State<Backend>,
    axum::extract::Query(query): axum::extract::Query<StateQuery>,
) -> Response {
    if !nonce_ok(&query.nonce) {
        return bad_request("nonce: 1 to 64 hex digits");
    }
    match backend.identity(query.nonce) {
        Some((body, signature)) => signed_json(body, signature),
        None => (
            StatusCode::NOT_FOUND,
            "not a server with a vantage secret\n",
        )
            .into_response(),
    }
}

fn signed_json(body: Vec<u8>, signature: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::HeaderName::from_static(SIGNATURE_HEADER), signature),
        ],
        body,
    )
        .into_response()
}

fn sync_refused(error: SyncError) -> Response {
    let status = match error {
        SyncError::Unauthenticated => StatusCode::UNAUTHORIZED,
        SyncError::NotAServer(_) => StatusCode::FORBIDDEN,
        SyncError::Malformed => StatusCode::BAD_REQUEST,
        SyncError::Stale | SyncError::Myself => StatusCode::CONFLICT,
    };
    (status, format!("{error}\n")).into_response()
}

async fn sync_overrides(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = backend
        .sync_overrides(
            body,
            header_of(&headers, VANTAGE_HEADER),
            header_of(&headers, SIGNATURE_HEADER),
        )
        .await;
    match result {
        Ok((body, signature)) => {
            let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            if let Some(signature) = signature.and_then(|s| s.parse().ok()) {
                response
                    .headers_mut()
                    .insert(header::HeaderName::from_static(SIGNATURE_HEADER), signature);
            }
            response
        }
        Err(error) => sync_refused(error),
    }
}

async fn health(_: Reader, State(backend): State<Backend>) -> Response {
    axum::Json(backend.health()).into_response()
}

async fn status(_: Reader<{ public::STATUS }>, State(backend): State<Backend>) -> Response {
    axum::Json(backend.status().as_ref().clone()).into_response()
}

/// The status page: one HTML file, no data in it (it reads the API with the
/// visitor's token), no external assets.
const PAGE: &str = include_str!("page.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn endpoints(_: Reader, State(backend): State<Backend>) -> Response {
    axum::Json(backend.status().endpoints.clone()).into_response()
}

async fn pools(_: Reader, State(backend): State<Backend>) -> Response {
    axum::Json(backend.status().pools.clone()).into_response()
}

async fn records(_: Reader, State(backend): State<Backend>) -> Response {
    axum::Json(backend.status().records.clone()).into_response()
}

async fn metrics(_: Reader<{ public::METRICS }>, State(backend): State<Backend>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            crate::telemetry::registry::CONTENT_TYPE,
        )],
        backend.metrics(),
    )
        .into_response()
}

/// `GET /v1/stats`: DNS responses by rcode and per zone, RRL, TCP, transfers.
async fn stats(_: Reader, State(backend): State<Backend>) -> Response {
    axum::Json(backend.stats()).into_response()
}

/// `GET /v1/zone?name=ZONE`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneQuery {
    name: String,
}

/// `GET /v1/zone?name=ZONE`: the zone as served now, in zone-file text (404 for a
/// zone not served).
async fn zone_read(
    _: Reader,
    State(backend): State<Backend>,
    query: Result<axum::extract::Query<ZoneQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return bad_request("expected name=ZONE");
    };
    let rendered = tokio::task::spawn_blocking(move || backend.zone_text(&query.name)).await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, "text/dns; charset=utf-8")], text).into_response(),
        Ok(Err(error)) => (StatusCode::NOT_FOUND, format!("{error}\n")).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the zone failed\n",
        )
            .into_response(),
    }
}

async fn healthz(_: Reader<{ public::HEALTHZ }>) -> &'static str {
    "ok\n"
}

async fn ready(_: Reader<{ public::READYZ }>, State(backend): State<Backend>) -> Response {
    match backend.ready() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn list_overrides(_: Reader, State(backend): State<Backend>) -> Response {
    axum::Json(backend.overrides()).into_response()
}

/// `POST /v1/reload`: 200 with the outcome (`ok: false` and the errors when the new
/// configuration is refused; the running one stays), 503 if nobody can reload.
async fn reload(Operator(caller): Operator, State(backend): State<Backend>) -> Response {
    tracing::info!(by = %caller.name, "reload asked for through the admin API");
    match backend.reload().await {
        Ok(status) => axum::Json(status).into_response(),
        Err(message) => (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response(),
    }
}

/// `GET /v1/events?since=SEQ&since_time=TIME&limit=N&follow=true`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    since_time: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

/// A time in a query: Unix milliseconds, or RFC 3339 (`2026-12-07T10:00:00Z`).
fn parse_time(text: &str) -> Option<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Some(ms);
    }
    let at = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Recent events as JSON (newest last), after sequence number `since` or (from the
/// journal, when older than memory holds) at or after `since_time`; with
/// `follow=true`, JSON lines: those, then every new event as it happens (an empty
/// line every 15 s keeps the stream open through proxies). Public when `status` is
/// (the status page reads both).
async fn events(
    _: Reader<{ public::STATUS }>,
    State(backend): State<Backend>,
    query: Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return bad_request(
            "expected since=SEQ, since_time=UNIX_MS|RFC3339, limit=N, follow=true|false",
        );
    };
    let since_time = match query.since_time.as_deref().map(parse_time) {
        None => None,
        Some(Some(ms)) => Some(ms),
        Some(None) => {
            return bad_request(
                "since_time: expected Unix milliseconds or an RFC 3339 time (2026-12-07T10:00:00Z)",
            );
        }
    };
    let log = backend.events();
    let limit = query.limit.unwrap_or(usize::MAX);
    // Subscribed before the backlog is read: nothing falls between the two.
    let live = query.follow.then(|| log.subscribe());
    let backlog = match since_time {
        None => log.since(query.since, limit),
        Some(ms) => {
            let log = log.clone();
            let since = query.since;
            tokio::task::spawn_blocking(move || {
                let mut events = log.since_time(ms, limit);
                events.retain(|e| e.seq > since);
                events
            })
            .await
            .unwrap_or_default()
        }
    };
    let Some(live) = live else {
        return axum::Json(backlog).into_response();
    };
    let last = backlog.last().map_or(query.since, |e| e.seq);
    let line = |event: &Event| {
        let mut text = serde_json::to_vec(event).unwrap_or_default();
        text.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(text))
    };
    let first = futures_util::stream::iter(backlog.iter().map(line).collect::<Vec<_>>());
    let rest = futures_util::stream::unfold((live, last), move |(mut live, last)| async move {
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(15), live.recv()).await;
            match next {
                Err(_) => return Some((Ok(Bytes::from_static(b"\n")), (live, last))),
                Ok(Ok(event)) if event.seq <= last => continue,
                Ok(Ok(event)) => {
                    let seq = event.seq;
                    return Some((line(&event), (live, seq)));
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(first.chain(rest)),
    )
        .into_response()
}

/// `GET /v1/explain?name=…&type=…&client=…&ecs=…&assume=POOL/NAME=down` (`assume`
/// repeatable).
async fn explain_get(
    _: Reader,
    State(backend): State<Backend>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let mut parsed = ExplainQuery::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "name" => parsed.name = value,
            "type" => {
                match serde_json::from_value(serde_json::Value::String(value.to_ascii_uppercase()))
                {
                    Ok(t) => parsed.record_type = Some(t),
                    Err(_) => {
                        return bad_request(&format!("type {value:?}: expected A, AAAA or CNAME"));
                    }
                }
            }
            "client" => match value.parse() {
                Ok(addr) => parsed.client = Some(addr),
                Err(_) => return bad_request(&format!("client {value:?} is not an IP address")),
            },
            "ecs" => match value
                .parse::<ipnet::IpNet>()
                .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => parsed.ecs = Some(net),
                Err(_) => {
                    return bad_request(&format!(
                        "ecs {value:?} is not a subnet (e.g. 192.0.2.0/24)"
                    ));
                }
            },
            "assume" => parsed.assume.push(value),
            other => {
                return bad_request(&format!(
                    "unknown parameter {other:?} (name, type, client, ecs, assume)"
                ));
            }
        }
    }
    explained(backend.as_ref(), &parsed)
}

/// `POST /v1/explain` with an [`ExplainQuery`] body.
async fn explain_post(
    _: Reader,
    State(backend): State<Backend>,
    Strict(query): Strict<ExplainQuery>,
) -> Response {
    explained(backend.as_ref(), &query)
}

fn explained(backend: &dyn AdminBackend, query: &ExplainQuery) -> Response {
    if query.name.trim().is_empty() {
        return bad_request("name is needed");
    }
    match backend.explain(query) {
        Ok(explanation) => axum::Json(explanation).into_response(),
        Err(error @ ExplainError::UnknownRecord(_)) => {
            (StatusCode::NOT_FOUND, format!("{error}\n")).into_response()
        }
        Err(error) => bad_request(&error.to_string()),
    }
}

/// "token name (by)" for an override's `by`.
fn who(caller: &auth::Caller, by: Option<&str>) -> String {
    match by.map(str::trim).filter(|b| !b.is_empty()) {
        Some(by) => format!("{} ({by})", caller.name),
        None => caller.name.clone(),
    }
}

async fn make_override(
    Operator(caller): Operator,
    State(backend): State<Backend>,
    Strict(request): Strict<OverrideRequest>,
) -> Response {
    if request.reason.trim().is_empty() {
        return bad_request("an override needs a reason");
    }
    let expires_in_ms = match request
        .expires_in
        .as_deref()
        .map(crate::config::parse_duration)
    {
        None => None,
        Some(Ok(d)) if !d.is_zero() => Some(d.as_millis() as u64),
        Some(Ok(_)) => return bad_request("expires_in must be more than zero"),
        Some(Err(e)) => return bad_request(&format!("expires_in: {e}")),
    };
    let target = normalized(request.target);
    let selector = target.is_selector();
    let change = Change {
        target,
        action: Some(request.action),
        by: who(&caller, request.by.as_deref()),
        reason: request.reason,
        expires_in_ms,
        allow_empty: request.allow_empty,
    };
    changed(selector, backend.change_override(change).await)
}

async fn release_override(
    Operator(caller): Operator,
    State(backend): State<Backend>,
    Strict(request): Strict<ReleaseRequest>,
) -> Response {
    let target = normalized(request.target);
    let selector = target.is_selector();
    let change = Change {
        target,
        action: None,
        by: who(&caller, request.by.as_deref()),
        reason: request.reason.unwrap_or_else(|| "released".to_owned()),
        expires_in_ms: None,
        allow_empty: false,
    };
    changed(selector, backend.change_override(change).await)
}

/// The older form: force an endpoint up or down, or release it (`state: null`).
async fn force(
    Operator(caller): Operator,
    State(backend): State<Backend>,
    Path((pool, name)): Path<(String, String)>,
    Strict(request): Strict<ForceRequest>,
) -> Response {
    let change = Change {
        target: Target::Endpoint(format!("{pool}/{name}")),
        action: request.state.map(|state| match state {
            HealthState::Up => Action::ForceUp,
            HealthState::Down => Action::ForceDown,
        }),
        by: caller.name,
        reason: request.reason.unwrap_or_else(|| "forced".to_owned()),
        expires_in_ms: None,
        allow_empty: false,
    };
    match backend.change_override(change).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => override_error(error),
    }
}

/// Record names are matched absolute and in lower case.
fn normalized(target: Target) -> Target {
    match target {
        Target::Record { name, record_type } => Target::record(&name, record_type),
        other => other,
    }
}

/// 200 with the entry made, or (a pattern or region, or several entries)
/// [`api::ChangeOutcome`]; else the error's status.
fn changed(selector: bool, result: Result<Vec<Entry>, OverrideError>) -> Response {
    match result {
        Ok(mut entries) if entries.len() == 1 && !selector => {
            axum::Json(entries.remove(0)).into_response()
        }
        Ok(entries) => axum::Json(api::ChangeOutcome { entries }).into_response(),
        Err(error) => override_error(error),
    }
}

/// The header naming why a change was refused ([`OverrideError::label`]).
pub(crate) const REFUSAL_HEADER: &str = "failoverd-refusal";

/// 404 for a target that is not there (or a pattern matching none) and a release
/// with nothing to end; 409 for a change a safety check refuses; 507 when full; 503
/// when it cannot be kept now; 400 otherwise. The `failoverd-refusal` header names
/// the reason.
fn override_error(error: OverrideError) -> Response {
    let status = match error.root() {
        OverrideError::UnknownTarget(_)
        | OverrideError::NoMatch { .. }
        | OverrideError::NothingInForce { .. } => StatusCode::NOT_FOUND,
        OverrideError::Unsafe(_) => StatusCode::CONFLICT,
        OverrideError::Full => StatusCode::INSUFFICIENT_STORAGE,
        OverrideError::NotSaved(_) | OverrideError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let label = [(
        header::HeaderName::from_static(REFUSAL_HEADER),
        error.label(),
    )];
    (status, label, format!("{error}\n")).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}
